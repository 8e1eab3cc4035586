//! `argus replay`: recorded events → point-in-time feature table (CSV/Parquet) and summary statistics,
//! through exactly the engine code that serves live traffic.

use anyhow::Context;
use argus_engine::{
    CsvTable, DecisionLog, Engine, FindingsLog, Format, ParquetTable, RowSink, SummarySink,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    setup: super::Setup,
    /// Input file (`.ndjson`, `.csv`, optionally `.gz`), or `-` for stdin.
    #[arg(long, short, default_value = "-")]
    input: String,
    /// Input format; guessed from the file name when absent (stdin: ndjson).
    #[arg(long, value_parser = ["ndjson", "csv"])]
    format: Option<String>,
    /// Write the feature table as CSV.
    #[arg(long)]
    out_csv: Option<PathBuf>,
    /// Write the feature table as Parquet.
    #[arg(long)]
    out_parquet: Option<PathBuf>,
    /// Write summary statistics (JSON).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Write every decision (NDJSON, one line per decided event).
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Write refused records with their errors (NDJSON).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write the graph detectors' findings (NDJSON; needs `[graph]` in the configuration).
    #[arg(long)]
    findings: Option<PathBuf>,
    /// Restore engine state from this snapshot before replaying.
    #[arg(long)]
    restore: Option<PathBuf>,
    /// Save engine state to this snapshot after replaying.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    quiet: bool,
    /// Sort the input by event time before replaying it (for files not in time order): at most
    /// `--sort-buffer` events are held in memory, more are sorted in runs on disk and merged.
    #[arg(long)]
    sort: bool,
    /// Events held in memory by `--sort` (default 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    sort_buffer: usize,
    /// Ground truth of the input (`argus simulate`'s `*.truth.ndjson`, same order as the events):
    /// print the catch report.
    #[arg(long)]
    truth: Option<PathBuf>,
    #[command(flatten)]
    catch: super::simulate::CatchOut,
}

struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (cfg, policies) = a.setup.load()?;
    let mut engine = match &a.restore {
        Some(p) => {
            Engine::load_snapshot(cfg, p).with_context(|| format!("restoring {}", p.display()))?
        }
        None => Engine::new(cfg),
    };
    if let Some(p) = policies {
        engine.set_policies(std::sync::Arc::new(p.policies));
    }
    let name = a.input.trim_end_matches(".gz");
    let format = match a.format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::Ndjson,
        None if name.ends_with(".csv") => Format::Csv,
        None => Format::Ndjson,
    };
    let read_bytes = Arc::new(AtomicU64::new(0));
    let (raw, total): (Box<dyn Read>, Option<u64>) = if a.input == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = File::open(&a.input).with_context(|| format!("opening {}", a.input))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let counted = Counting {
        inner: raw,
        n: read_bytes.clone(),
    };
    let input: Box<dyn BufRead> = if a.input.ends_with(".gz") {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, counted)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, counted))
    };

    let schema = engine.schema().clone();
    let features = engine.features().clone();
    let mut csv_sink = match &a.out_csv {
        Some(p) => Some(CsvTable::new(
            BufWriter::with_capacity(
                1 << 20,
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            schema.clone(),
            &features,
        )?),
        None => None,
    };
    let mut pq_sink = match &a.out_parquet {
        Some(p) => Some(ParquetTable::new(
            BufWriter::with_capacity(
                1 << 20,
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            schema.clone(),
            &features,
        )?),
        None => None,
    };
    let mut summary = SummarySink::new(&features);
    let mut decision_log = match &a.decisions {
        Some(p) => Some(DecisionLog::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
        None => None,
    };
    let mut rejects = match &a.rejects {
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    if a.findings.is_some() && engine.config.graph.is_none() {
        anyhow::bail!(
            "--findings needs a [graph] section in the configuration (see docs/graph.md)"
        );
    }
    let mut findings_log = match &a.findings {
        Some(p) => Some(FindingsLog::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
        None => None,
    };
    let mut catch = match &a.truth {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            Some(argus_sim::CatchReport::new(argus_sim::TruthReader::new(
                BufReader::with_capacity(1 << 20, f),
            )))
        }
        None => None,
    };
    let mut sinks: Vec<&mut dyn RowSink> = vec![&mut summary];
    if let Some(c) = catch.as_mut() {
        sinks.push(c);
    }
    if let Some(s) = csv_sink.as_mut() {
        sinks.push(s);
    }
    if let Some(s) = pq_sink.as_mut() {
        sinks.push(s);
    }
    if let Some(s) = decision_log.as_mut() {
        sinks.push(s);
    }
    if let Some(s) = findings_log.as_mut() {
        sinks.push(s);
    }

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let start = Instant::now();
    // Rows without an id column get `<file name>:<record number>`.
    let name = std::path::Path::new(&a.input)
        .file_name()
        .map_or_else(|| "stdin".to_string(), |n| n.to_string_lossy().into_owned());
    let opts = argus_engine::replay::Options {
        name,
        sort: a.sort.then_some(a.sort_buffer),
    };
    let stats = argus_engine::replay::replay_with(
        &mut engine,
        input,
        format,
        &opts,
        &mut sinks,
        rejects.as_mut().map(|w| w as &mut dyn Write),
        &mut |s| {
            bar.set_position(read_bytes.load(Ordering::Relaxed));
            bar.set_message(format!("{} events", s.records));
        },
    )?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(sinks);
    if let Some(w) = rejects.as_mut() {
        w.flush()?;
    }
    if let Some(p) = &a.snapshot {
        engine
            .save_snapshot(p)
            .with_context(|| format!("writing snapshot {}", p.display()))?;
    }
    let memory = engine.feature_state().memory(&features);
    // What changed answers without failing: printed even with --quiet, and kept in the summary.
    let warnings = stats.warnings(&engine);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let report = serde_json::json!({
        "input": a.input,
        "records": stats.records,
        "accepted": stats.accepted,
        "duplicates": stats.duplicates,
        "too_late": stats.too_late,
        "rejected": stats.rejected,
        "labels_released": stats.labels_released,
        "labels_pending": stats.labels_pending,
        "seconds": secs,
        "events_per_sec": stats.records as f64 / secs.max(1e-9),
        "stages": stats.stages,
        "warnings": warnings,
        "state": {
            "keys": engine.feature_state().key_count(),
            "entities": memory,
            "stats": engine.feature_state().stats(),
            "partitions": engine.feature_state().partition_memory(),
        },
        "features": summary.features,
        "policy": stats.policy,
        "graph": engine.graph_size().map(|(accounts, links, edges)| serde_json::json!({"accounts": accounts, "links": links, "block_edges": edges, "findings": findings_log.as_ref().map(|f| f.count)})),
    });
    if let Some(p) = &a.summary {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if !a.quiet {
        let mut w = std::io::stdout().lock();
        writeln!(
            w,
            "replayed {} records in {:.2} s ({:.0} events/s): {} accepted, {} duplicates, {} too late, {} rejected {:?}",
            stats.records,
            secs,
            stats.records as f64 / secs.max(1e-9),
            stats.accepted,
            stats.duplicates,
            stats.too_late,
            stats.rejected_total(),
            stats.rejected
        )?;
        writeln!(
            w,
            "delayed labels: {} released, {} pending at end of input",
            stats.labels_released, stats.labels_pending
        )?;
        writeln!(
            w,
            "{:<44} {:>10} {:>10} {:>14} {:>14} {:>14}",
            "feature", "non-null", "null", "min", "mean", "max"
        )?;
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        for s in &summary.features {
            writeln!(
                w,
                "{:<44} {:>10} {:>10} {:>14} {:>14} {:>14}",
                s.name,
                s.non_null,
                s.nulls,
                f(s.min),
                f(s.mean),
                f(s.max)
            )?;
        }
        if let Some(r) = &stats.policy {
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
            writeln!(
                w,
                "decisions: {} {:?}; {} with rule errors",
                r.decisions, r.actions, r.with_errors
            )?;
            writeln!(
                w,
                "{:<44} {:>8} {:>8} {:>10} {:>10} {:>14} {:>14}",
                "rule", "hits", "mode", "precision", "recall", "money caught", "money missed"
            )?;
            for (name, rr) in &r.rules {
                let mode = if rr.shadow { "shadow" } else { "enforce" };
                writeln!(
                    w,
                    "{:<44} {:>8} {:>8} {:>10} {:>10} {:>14.2} {:>14.2}",
                    name,
                    rr.hits,
                    mode,
                    pct(rr.precision),
                    pct(rr.recall),
                    rr.money_caught,
                    rr.money_missed
                )?;
            }
            let l = &r.labelled;
            if l.events > 0 {
                writeln!(
                    w,
                    "overall against labels: {} positives, {} caught (recall {}), {} false positives (precision {}); money caught {:.2} of {:.2}, lost {:.2}",
                    l.positives, l.caught, pct(l.recall), l.false_positives, pct(l.precision), l.money_caught, l.money_positive, l.money_lost
                )?;
            }
            for (pair, n) in r.overlap.iter().take(20) {
                writeln!(w, "overlap {pair}: {n}")?;
            }
        }
    }
    if let Some(c) = &catch {
        let r = c.finish();
        a.catch
            .write(&r, &format!("Argus catch report — {}", a.input))?;
    }
    Ok(())
}
