//! One module per subcommand.

pub mod audit;
pub mod backtest;
pub mod check;
pub mod export;
pub mod init;
pub mod replay;
pub mod rings;
pub mod schema;
pub mod serve;
pub mod simulate;
pub mod test;
pub mod train;
pub mod versions;

use anyhow::Context;
use argus_engine::Config;
use std::path::{Path, PathBuf};

/// The configuration and policies a command works with (shared by `check`, `test` and `replay`).
#[derive(clap::Args, Clone)]
pub struct Setup {
    /// Configuration file (default: the embedded starter configuration).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Policy directory (`*.toml` rules, `lists/*.toml` value lists); default: the embedded starter pack
    /// when no --config is given. Repeat it to load several directories together.
    #[arg(long, short)]
    pub policies: Vec<PathBuf>,
}

impl Setup {
    /// The configuration and, when there are any, the policies.
    pub fn load(&self) -> anyhow::Result<(Config, Option<argus_policy::Loaded>)> {
        let cfg = load_config(self.config.as_deref())?;
        let policies = load_policies(&cfg, &self.policies, self.config.is_some())?;
        Ok((cfg, policies))
    }
}

/// The URL of a server's store: `--database`, else ARGUS_CASES_DATABASE, else `cases.db` in the
/// data directory (which must exist: a tool reading a store never creates one).
pub fn store_url(data_dir: &Path, database: Option<&str>) -> anyhow::Result<String> {
    let database = database
        .map(str::to_string)
        .or_else(|| std::env::var("ARGUS_CASES_DATABASE").ok());
    match database {
        Some(u) if !u.is_empty() => Ok(u),
        _ => {
            let f = data_dir.join("cases.db");
            if !f.exists() {
                anyhow::bail!(
                    "{} does not exist: give the server's --data-dir, or --database",
                    f.display()
                );
            }
            Ok(format!("sqlite://{}?mode=rw", f.display()))
        }
    }
}

/// The embedded default configuration: the starter features over the built-in schema.
pub const STARTER_CONFIG: &str = include_str!("../../../../examples/starter/argus.toml");

/// Loads `path`, or the embedded starter configuration when none is given.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    load_config_with(path, Config::load)
}

/// As [`load_config`], without reading `[[models]]` files (their declarations are checked).
pub fn load_config_without_models(path: Option<&Path>) -> anyhow::Result<Config> {
    load_config_with(path, Config::load_without_models)
}

fn load_config_with(
    path: Option<&Path>,
    load: fn(&Path) -> Result<Config, argus_engine::ConfigLoadError>,
) -> anyhow::Result<Config> {
    let cfg = match path {
        Some(p) => load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::from_str(STARTER_CONFIG, Path::new("."))
            .context("loading the embedded starter configuration")?,
    };
    // Once per process: a reload loads the configuration again.
    static WARNED: std::sync::Once = std::sync::Once::new();
    if cfg.secret_is_default {
        WARNED.call_once(|| eprintln!("warning: pseudonymizing with the built-in development secret; set ARGUS_PII_SECRET or privacy.secret in production"));
    }
    // Settings that change answers (`argus check` shows them too), once per process.
    static FEATURES: std::sync::Once = std::sync::Once::new();
    FEATURES.call_once(|| {
        for w in &cfg.features.warnings {
            eprintln!("warning: {w}");
        }
    });
    Ok(cfg)
}

/// The embedded starter policy pack (`policies/` in the repository): one line per file.
const STARTER_POLICIES: &[(&str, &str)] = &[
    (
        "policies/account_integrity.toml",
        include_str!("../../../../policies/account_integrity.toml"),
    ),
    (
        "policies/account_takeover.toml",
        include_str!("../../../../policies/account_takeover.toml"),
    ),
    (
        "policies/incentive_abuse.toml",
        include_str!("../../../../policies/incentive_abuse.toml"),
    ),
    (
        "policies/payment_fraud.toml",
        include_str!("../../../../policies/payment_fraud.toml"),
    ),
    (
        "policies/marketplace_integrity.toml",
        include_str!("../../../../policies/marketplace_integrity.toml"),
    ),
    (
        "policies/information_leakage.toml",
        include_str!("../../../../policies/information_leakage.toml"),
    ),
    (
        "policies/reviews.toml",
        include_str!("../../../../policies/reviews.toml"),
    ),
    (
        "policies/click_farm.toml",
        include_str!("../../../../policies/click_farm.toml"),
    ),
    (
        "policies/payouts.toml",
        include_str!("../../../../policies/payouts.toml"),
    ),
];

const STARTER_LISTS: &[(&str, &str)] = &[
    (
        "policies/lists/banned_users.toml",
        include_str!("../../../../policies/lists/banned_users.toml"),
    ),
    (
        "policies/lists/blocked_devices.toml",
        include_str!("../../../../policies/lists/blocked_devices.toml"),
    ),
    (
        "policies/lists/trusted_users.toml",
        include_str!("../../../../policies/lists/trusted_users.toml"),
    ),
    (
        "policies/lists/disposable_domains.toml",
        include_str!("../../../../policies/lists/disposable_domains.toml"),
    ),
    (
        "policies/lists/new_user_coupons.toml",
        include_str!("../../../../policies/lists/new_user_coupons.toml"),
    ),
];

/// Policies for a run: `--policies DIR` (one or more), else the embedded starter pack with the embedded configuration,
/// else none (a custom configuration without policies computes features only).
pub fn load_policies(
    cfg: &Config,
    dirs: &[PathBuf],
    config_given: bool,
) -> anyhow::Result<Option<argus_policy::Loaded>> {
    let owned = |v: &[(&str, &str)]| -> argus_policy::Sources {
        v.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    };
    let loaded = match dirs {
        [d] => argus_policy::load_dir(d, &cfg.schema, &cfg.features, &cfg.pseudonymizer),
        [_, ..] => {
            let (mut policies, mut lists) = (Vec::new(), Vec::new());
            for d in dirs {
                let (p, l) = argus_policy::read_dir(d)
                    .map_err(|e| anyhow::anyhow!("invalid policies:\n{e}"))?;
                policies.extend(p);
                lists.extend(l);
            }
            argus_policy::load_sources(
                &policies,
                &lists,
                &cfg.schema,
                &cfg.features,
                &cfg.pseudonymizer,
            )
        }
        [] if !config_given => argus_policy::load_sources(
            &owned(STARTER_POLICIES),
            &owned(STARTER_LISTS),
            &cfg.schema,
            &cfg.features,
            &cfg.pseudonymizer,
        ),
        [] => return Ok(None),
    };
    match loaded {
        Ok(l) => Ok(Some(l)),
        Err(e) => anyhow::bail!("invalid policies:\n{e}"),
    }
}
