//! `argus serve`: the decision API on the embedded default (starter configuration and policy pack,
//! data in `./argus-data`), or on a given configuration.

use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Clone)]
pub struct Args {
    #[command(flatten)]
    setup: super::Setup,
    /// Address to listen on (overrides `server.listen` and ARGUS_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory: event log and snapshots (overrides `server.data_dir` and ARGUS_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Join a cluster: the NATS servers of its JetStream log, comma-separated
    /// (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`; overrides `cluster.servers` and ARGUS_CLUSTER).
    #[arg(long, value_name = "NATS_URLS")]
    cluster: Option<String>,
}

/// The server's settings from a configuration's `[server]`, `[cases]`, `[lifecycle]` and
/// `[cluster]` and the environment (`ARGUS_CLUSTER` from `cluster` when given): what `serve`
/// starts with, and what `check` checks.
pub fn settings_of(
    cfg: &argus_engine::Config,
    cluster: Option<&str>,
) -> anyhow::Result<argus_server::Settings> {
    let env = |k: &str| std::env::var(k).ok();
    let mut settings = argus_server::Settings::resolve(&cfg.server, env)
        .map_err(|e| anyhow::anyhow!("invalid server settings:\n  {}", e.join("\n  ")))?;
    settings.cases = argus_server::settings::cases(&cfg.cases, env)
        .map_err(|e| anyhow::anyhow!("invalid [cases]:\n  {}", e.join("\n  ")))?;
    settings.lifecycle = argus_server::settings::lifecycle(&cfg.lifecycle, env)
        .map_err(|e| anyhow::anyhow!("invalid [lifecycle]:\n  {}", e.join("\n  ")))?;
    let cluster_env = |k: &str| match (k, cluster) {
        ("ARGUS_CLUSTER", Some(c)) => Some(c.to_string()),
        _ => std::env::var(k).ok(),
    };
    settings.cluster = argus_server::settings::cluster(&cfg.cluster, cluster_env)
        .map_err(|e| anyhow::anyhow!("invalid [cluster]:\n  {}", e.join("\n  ")))?;
    Ok(settings)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    // Colour codes only on a terminal: a redirected log stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_max_level(tracing::Level::INFO)
        .init();
    let initial = a.setup.load()?;
    let mut settings = settings_of(&initial.0, a.cluster.as_deref())?;
    if let Some(l) = a.listen {
        settings.listen = l;
    }
    if let Some(d) = a.data_dir {
        settings.data_dir = d;
    }
    // Every reload reads the same sources again: the files when given, else the embedded pack.
    let setup = a.setup.clone();
    let loader: argus_server::Loader = Arc::new(move || setup.load());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(argus_server::serve(settings, loader, Some(initial)))
}
