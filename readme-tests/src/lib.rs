//! The code blocks of the repository's `README.md`, compiled (and, unless marked
//! `no_run`, run) as doc-tests by `cargo test`: the README is the first thing users copy
//! from, so it must build against the crates as they are. `build.rs` compiles the
//! manifest the README shows, so `packme::include_generated!("manifest")` in a block
//! includes the Rust generated from it. Not published.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;
