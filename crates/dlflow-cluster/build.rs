//! Rebuilds this crate when the embedded Python package (`python/dlflow`) changes.
//!
//! Cargo tracks files that `include_str!` reads from outside the crate by their absolute path.
//! Two checkouts sharing one target dir (CI's mirror and a working copy) build the same units, so
//! an edit in one checkout could be judged against the other's files and missed. Paths given
//! here are kept relative to this crate, so each checkout checks its own files.
fn main() {
    println!("cargo:rerun-if-changed=../../python/dlflow");
}
