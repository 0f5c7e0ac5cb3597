//! Generates Rust for the golden-vector manifests in `codec/vectors/packme/manifests` (the
//! repository's copy of the shared vectors) into `OUT_DIR/vectors.rs`.
//!
//! Not through `packme::build::Config`: that passes every compiler warning on as a
//! `cargo:warning`, and this manifest set has one on purpose (`quirks.json`'s WideChild
//! reproduces the reference's flag-overflow layout). It is expected here, so it is not
//! printed on every build; packme's test `the_flag_overflow_layout_is_a_warning` asserts
//! that the compiler reports it for these manifests.
use std::path::Path;

use packme::codegen::{generate, Options};
use packme::schema::Schema;

fn main() {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/packme/manifests");
    // A directory makes cargo rerun the script when anything in it changes.
    println!("cargo:rerun-if-changed={}", manifests.display());
    let schema = Schema::compile_dir(&manifests)
        .unwrap_or_else(|e| panic!("cannot compile the vector manifests:\n{e}"));
    let code = generate(&schema, &Options { json: true })
        .unwrap_or_else(|e| panic!("cannot generate Rust for the vector manifests:\n{e}"))
        .single_file();
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("vectors.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
