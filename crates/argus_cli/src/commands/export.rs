//! `argus export`: a server's event log (its data directory) as Hive-partitioned Parquet tables —
//! events (tokenized), decisions and point-in-time features, by date and event type — that Spark,
//! Hive, DuckDB and pyarrow read as they are. It reads the log without changing it, so it runs beside
//! a live server.

use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The configuration the server runs (default: the embedded starter configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The server's data directory (its `log/` and `snapshots/`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where the tables go (`events/`, `decisions/`, `features/` under it).
    #[arg(long, short)]
    out: PathBuf,
    /// Events at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    #[arg(long)]
    from: Option<String>,
    /// Events before this time (RFC 3339, or a date `YYYY-MM-DD`).
    #[arg(long)]
    to: Option<String>,
    /// Leave out the feature table (which runs the engine over the whole log).
    #[arg(long)]
    no_features: bool,
}

fn time(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    let Some(s) = v else { return Ok(None) };
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.clone()
    };
    argus_event::time::parse_datetime(&full)
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("--{flag}: `{s}` is not an RFC 3339 time or a date"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = super::load_config_without_models(a.config.as_deref())?;
    let from = time("from", &a.from)?;
    let to = time("to", &a.to)?;
    if let (Some(f), Some(t)) = (from, to) {
        anyhow::ensure!(f < t, "--from must be before --to");
    }
    let r = argus_server::core::export::export(argus_server::core::export::ExportSpec {
        config: &cfg,
        data_dir: &a.data_dir,
        out: &a.out,
        from,
        to,
        features: !a.no_features,
        after: 0,
    })
    .map_err(|e| anyhow::anyhow!("export: {e}"))?;
    eprintln!(
        "argus export: {} events, {} decisions, {} feature rows from log records {}–{} into {} files under {} in {} ms",
        r.events,
        r.decisions,
        r.feature_rows,
        r.first_record,
        r.last_record,
        r.files.len(),
        a.out.display(),
        r.millis
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
