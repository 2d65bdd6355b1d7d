//! Rebuilds this crate when the README or the guides it runs as doc tests change.
//!
//! Cargo tracks files that `include_str!` reads from outside the crate by their absolute path.
//! Two checkouts sharing one target dir (CI's mirror and a working copy) build the same units, so
//! an edit in one checkout could be judged against the other's files and missed. Paths given
//! here are kept relative to this crate, so each checkout checks its own files.
fn main() {
    println!("cargo:rerun-if-changed=../../README.md");
    println!("cargo:rerun-if-changed=../../docs/guide");
}
