fn main() {
    println!("gema");
}
