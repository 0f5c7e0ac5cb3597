//! Generates Rust for the golden-vector manifests in `shared/vectors/packme/manifests`.
fn main() {
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/packme/manifests");
    if let Err(e) = packme::build::Config::new(manifests)
        .json(true)
        .compile("vectors")
    {
        panic!("cannot compile the vector manifests:\n{e}");
    }
}
