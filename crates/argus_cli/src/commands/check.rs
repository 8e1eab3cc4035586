//! `argus check`: load and validate a configuration, report every problem.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: the embedded starter configuration).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = super::load_config(a.config.as_deref())?;
    println!(
        "ok: {} event types, {} features over {} series, {} delayed labels",
        cfg.schema.public_type_names().len(),
        cfg.features.features.len(),
        cfg.features.series.len(),
        cfg.schema.labels.len()
    );
    Ok(())
}
