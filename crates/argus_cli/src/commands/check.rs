//! `argus check`: load and validate a configuration, its policies and value lists; report every problem.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: the embedded starter configuration).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Policy directory (`*.toml` rules, `lists/*.toml` value lists); default: the embedded starter pack
    /// when no --config is given.
    #[arg(long, short)]
    policies: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = super::load_config(a.config.as_deref())?;
    let policies = super::load_policies(&cfg, a.policies.as_deref(), a.config.is_some())?;
    println!(
        "ok: {} event types, {} features over {} series, {} delayed labels",
        cfg.schema.public_type_names().len(),
        cfg.features.features.len(),
        cfg.features.series.len(),
        cfg.schema.labels.len()
    );
    if let Some(p) = policies {
        let rules: usize = p.policies.by_type.iter().flatten().map(|x| x.rules.len()).sum();
        let checkpoints = p.policies.by_type.iter().flatten().count();
        println!(
            "ok: {rules} rules on {checkpoints} checkpoints, {} value lists, {} tests, policy version {}",
            p.policies.lists.lists.len(),
            p.tests.len(),
            p.policies.version
        );
    }
    Ok(())
}
