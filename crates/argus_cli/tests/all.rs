//! The crate's integration tests as one binary (one link, and the shared dependencies
//! instantiated once, instead of one test binary per file): `cargo test -p argus_cli --test all <file>::`
//! runs one file's tests.

mod common;

mod audit;
mod cli;
mod console;
mod crash;
mod deadlines;
mod erasure;
mod export;
mod guard;
mod onboarding;
mod partitions;
mod rings;
mod simulate;
mod sso;
mod train;
