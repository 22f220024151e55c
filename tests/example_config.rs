//! The example config file documents the real defaults.

use gema::config::Config;

#[test]
fn example_config_parses_to_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/gema.example.toml");
    let parsed: Config = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = Config::default();
    assert_eq!(format!("{:?}", parsed), format!("{:?}", d));
}
