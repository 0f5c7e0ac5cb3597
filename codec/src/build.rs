//! Compiling manifests from a build script, in the style of `prost-build`.
//!
//! ```no_run
//! // build.rs: compile the manifests in `packme/` into `OUT_DIR/packme.rs`
//! packme::build::Config::new("packme").json(true).compile("packme").unwrap();
//! ```
//!
//! ```ignore
//! // src/lib.rs
//! pub mod proto {
//!     packme::include_generated!("packme");
//! }
//! ```
//!
//! The generated file goes to `OUT_DIR/<name>.rs`; cargo is told to rerun the script when
//! the manifest directory or any manifest in it changes. Warnings of the compiler (such as
//! the reference's flag-overflow layout) are passed on as `cargo:warning` lines.

use std::path::{Path, PathBuf};

use crate::codegen::{generate, Options};
use crate::schema::{CompileError, Schema};

/// What to compile and how.
#[derive(Debug, Clone)]
pub struct Config {
    manifests: PathBuf,
    options: Options,
}

/// Why a build-script compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The manifests are invalid.
    #[error("{0}")]
    Manifests(#[from] CompileError),
    /// `OUT_DIR` is not set (not running inside a build script).
    #[error("OUT_DIR is not set: call packme::build from a build script")]
    NoOutDir,
    /// Writing the generated file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Config {
    /// Compiles the manifests of `dir` (relative to the crate root when relative).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            manifests: dir.as_ref().to_owned(),
            options: Options::default(),
        }
    }

    /// Also generate JSON conversions ([`crate::json`]).
    pub fn json(mut self, enabled: bool) -> Self {
        self.options.json = enabled;
        self
    }

    /// Generates `OUT_DIR/<name>.rs` and prints the cargo directives.
    pub fn compile(&self, name: &str) -> Result<PathBuf, BuildError> {
        let out_dir = std::env::var_os("OUT_DIR").ok_or(BuildError::NoOutDir)?;
        let path = Path::new(&out_dir).join(format!("{name}.rs"));
        self.compile_to(&path)?;
        Ok(path)
    }

    /// Generates the single-file output at `path` and prints the cargo directives.
    pub fn compile_to(&self, path: &Path) -> Result<(), BuildError> {
        println!("cargo:rerun-if-changed={}", self.manifests.display());
        if let Ok(entries) = std::fs::read_dir(&self.manifests) {
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
        let schema = Schema::compile_dir(&self.manifests)?;
        for warning in &schema.warnings {
            println!("cargo:warning=packme: {warning}");
        }
        let code = generate(&schema, &self.options)?.single_file();
        std::fs::write(path, code).map_err(|source| BuildError::Write {
            path: path.to_owned(),
            source,
        })
    }
}
