//! `argus check`: load and validate a configuration, its policies and value lists; report every problem.

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    setup: super::Setup,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (cfg, policies) = a.setup.load()?;
    // What `serve` would refuse (an outside test: `pause_after = 0` passed here).
    super::serve::settings_of(&cfg, None)?;
    println!(
        "ok: {} event types, {} features over {} series, {} delayed labels",
        cfg.schema.public_type_names().len(),
        cfg.features.features.len(),
        cfg.features.series.len(),
        cfg.schema.labels.len()
    );
    if let Some(p) = policies {
        let rules: usize = p
            .policies
            .by_type
            .iter()
            .flatten()
            .map(|x| x.rules.len())
            .sum();
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
