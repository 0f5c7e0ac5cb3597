//! Compiles `packme/*.json` (the ConnectMe seed's manifest) into `OUT_DIR/manifest.rs`.
fn main() {
    if let Err(e) = packme::build::Config::new("packme").compile("manifest") {
        panic!("packme manifests:\n{e}");
    }
}
