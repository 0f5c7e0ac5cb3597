//! Compiles the manifest the README shows (its `packme/manifest.json` block) into
//! `OUT_DIR/manifest.rs`, as the README's own build.rs does in a user's crate, so the
//! README's code blocks are tested against the very manifest they are shown with.
use std::path::Path;

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("the repository's README.md");
    let manifest = manifest_block(&text)
        .expect("README.md shows `packme/manifest.json` followed by a ```json block");
    let dir = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("packme");
    std::fs::create_dir_all(&dir).expect("OUT_DIR/packme");
    std::fs::write(dir.join("manifest.json"), manifest).expect("OUT_DIR/packme/manifest.json");
    packme::build::Config::new(&dir)
        .compile("manifest")
        .unwrap_or_else(|e| panic!("README.md's manifest:\n{e}"));
}

/// The first ```json block after the line that names `packme/manifest.json`.
fn manifest_block(readme: &str) -> Option<String> {
    let mut lines = readme
        .lines()
        .skip_while(|line| !line.contains("`packme/manifest.json`"));
    lines.find(|line| line.trim_start().starts_with("```json"))?;
    let block: Vec<&str> = lines
        .take_while(|line| !line.trim_start().starts_with("```"))
        .collect();
    Some(block.join("\n"))
}
