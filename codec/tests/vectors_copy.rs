//! The repository's golden vectors (`codec/vectors/packme`) are a byte-for-byte copy of the
//! project's shared folder. Where that folder is beside the checkout
//! (`../shared/vectors/packme`), every file must be identical; elsewhere (a clone on its
//! own) the check is skipped with a note.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use support::vectors_dir;

mod support;

/// Every file under `dir`, by its path relative to `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(path.strip_prefix(root).unwrap().to_owned(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_vectors_are_an_exact_copy_of_the_shared_folder() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/packme");
    if !shared.is_dir() {
        // Straight to stderr, past the test harness's capture of `eprintln!`, so the skip
        // shows in a normal `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "vectors_copy: skipped: no ../shared/vectors/packme beside the checkout, so \
             codec/vectors/packme is not compared with it"
        );
        return;
    }
    let (copy, original) = (files(&vectors_dir()), files(&shared));
    assert!(
        copy.contains_key(Path::new("vectors.json")),
        "vectors.json in the copy"
    );
    let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&copy),
        names(&original),
        "codec/vectors/packme and {} hold different files (see codec/vectors/README.md to refresh the copy)",
        shared.display()
    );
    for (name, bytes) in &copy {
        assert!(
            *bytes == original[name],
            "codec/vectors/packme/{} differs from {} (see codec/vectors/README.md to refresh the copy)",
            name.display(),
            shared.join(name).display()
        );
    }
}
