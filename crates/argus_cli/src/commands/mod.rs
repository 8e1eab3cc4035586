//! One module per subcommand.

pub mod check;
pub mod replay;
pub mod schema;

use anyhow::Context;
use argus_engine::Config;
use std::path::Path;

/// The embedded default configuration: the starter features over the built-in schema.
pub const STARTER_CONFIG: &str = include_str!("../../../../examples/starter/argus.toml");

/// Loads `path`, or the embedded starter configuration when none is given.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let cfg = match path {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::from_str(STARTER_CONFIG, Path::new(".")).context("loading the embedded starter configuration")?,
    };
    if cfg.secret_is_default {
        eprintln!("warning: pseudonymizing with the built-in development secret; set ARGUS_PII_SECRET or privacy.secret in production");
    }
    Ok(cfg)
}
