//! The code `packme` generates for the golden-vector manifests, compiled as a crate so the
//! tests can hold it to every vector and so `cargo clippy` checks generated code too.

packme::include_generated!("vectors");
