//! Compiles `packme/world.json`, the benchmark's world-state update.
fn main() {
    if let Err(e) = packme::build::Config::new("packme").compile("world") {
        panic!("packme manifests:\n{e}");
    }
}
