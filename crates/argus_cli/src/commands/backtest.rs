//! `argus backtest`: a draft policy directory over a server's event log (its data directory), beside
//! the running policies, through the engine's own path; prints the summary and writes the per-event
//! decision diff. It reads the log without changing it, so it runs beside a live server.

use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The configuration (as the server runs it; default: the embedded starter configuration) and
    /// the draft policy directory (`--policies`, repeatable) to backtest.
    #[command(flatten)]
    setup: super::Setup,
    /// The server's data directory (its `log/` and `snapshots/`).
    #[arg(long)]
    data_dir: PathBuf,
    /// The policies to compare against (what runs now); default: the embedded starter pack when no
    /// --config is given.
    #[arg(long)]
    control: Vec<PathBuf>,
    /// Write every changed decision here as NDJSON (default: none; the summary counts them).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Changed decisions kept for --out.
    #[arg(long, default_value_t = 1_000_000)]
    max_changes: usize,
    /// At most this many logged events (0: all).
    #[arg(long, default_value_t = 0)]
    max_events: u64,
    /// Event types that label their actor, as `type` (fraud) or `type=legit`.
    #[arg(long, default_values_t = ["chargeback".to_string(), "fraud.confirmed".to_string(), "legit.confirmed=legit".to_string()])]
    label: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = super::load_config(a.setup.config.as_deref())?;
    if a.setup.policies.is_empty() {
        anyhow::bail!("give the draft to backtest with --policies DIR");
    }
    let candidate = super::load_policies(&cfg, &a.setup.policies, true)?
        .ok_or_else(|| anyhow::anyhow!("the draft has no policies"))?;
    let control = super::load_policies(&cfg, &a.control, a.setup.config.is_some())?
        .ok_or_else(|| anyhow::anyhow!("give the running policies with --control DIR"))?;
    let label_types = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((t, "legit")) => Ok((t.to_string(), false)),
            Some((t, "fraud")) | Some((t, "")) => Ok((t.to_string(), true)),
            Some((_, x)) => Err(anyhow::anyhow!("--label {l}: `{x}` is not fraud or legit")),
            None => Ok((l.clone(), true)),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let r = argus_server::core::backtest::backtest(argus_server::core::backtest::BacktestSpec {
        config: &cfg,
        data_dir: &a.data_dir,
        control: control.policies,
        candidate: candidate.policies,
        label_types,
        max_changes: if a.out.is_some() { a.max_changes } else { 0 },
        max_events: a.max_events,
    })
    .map_err(|e| anyhow::anyhow!("backtest: {e}"))?;
    if let Some(p) = &a.out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p)?);
        for c in &r.changes {
            serde_json::to_writer(&mut w, c)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    println!("{}", serde_json::to_string_pretty(&r.summary)?);
    Ok(())
}
