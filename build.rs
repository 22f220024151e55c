//! With the `bert` feature, torch-sys links libtorch but sets no rpath: record the directory the
//! libraries came from (`$LIBTORCH/lib`, see `scripts/bert-deps.sh`) so `gema` and the tests run
//! without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BERT").is_none() {
        return;
    }
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
