//! The crate's integration tests as one binary (one link, and the shared dependencies
//! instantiated once, instead of one test binary per file): `cargo test -p argus_server --test all <file>::`
//! runs one file's tests.

mod common;

mod api;
mod cases;
mod connections;
mod damage;
mod lifecycle;
mod lookups;
mod partitions;
mod security;
