//! The crate's integration tests as one binary (one link, and the shared dependencies
//! instantiated once, instead of one test binary per file): `cargo test -p argus_cluster --test all <file>::`
//! runs one file's tests.

mod common;

mod erasure;
mod ownership;
mod shares;
mod tail;
