//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/data` beside the repository (or `ARGUS_DATA_DIR`). `None`, with a message, when absent:
/// CI always has it; a contributor's machine may not.
pub fn data_file(rel: &str) -> Option<PathBuf> {
    let base = std::env::var_os("ARGUS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"));
    let p = base.join(rel);
    if p.exists() {
        Some(p)
    } else {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI): a missing input is a failure, not a skip"
        );
        eprintln!(
            "SKIPPED: {} not found (set ARGUS_DATA_DIR); CI runs this test with the data",
            p.display()
        );
        None
    }
}
