//! `argus rings`: dense blocks (rings) in an edge file — rows (e.g. buyers, raters, users) × columns
//! (sellers, ratees, items), optionally × time — by greedy peeling (argus_graph::fraudar, ::tensor); or
//! the graph detectors' findings over an event file, through the engine and its `[graph]`.

use anyhow::Context;
use argus_graph::{peel_many, peel_tensor, Bipartite, Weighting};
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Edge file: one `row,column` (or whitespace-separated) pair per line; further columns are
    /// ignored unless --time-column names one, as are lines starting with `#` or `%`. Small integer
    /// ids are used as indices as they are; other ids are numbered in order of appearance.
    #[arg(long, conflicts_with = "events", required_unless_present = "events")]
    edges: Option<PathBuf>,
    /// Edge weighting (two modes): `plain` (average degree), `log` (FRAUDAR's camouflage-resistant
    /// column weights), `sqrt`.
    #[arg(long, default_value = "log", value_parser = ["plain", "log", "sqrt"])]
    weighting: String,
    /// Blocks to find (each found block's edges are removed before the next).
    #[arg(long, default_value_t = 1)]
    blocks: usize,
    /// Time as a third mode: the (1-based) column of the edge file holding a Unix time in seconds;
    /// blocks are then rows × columns × periods, dense together in the same periods (M-Zoom's greedy
    /// peel, arithmetic-average density; repeated edges in a period count).
    #[arg(long)]
    time_column: Option<usize>,
    /// The period of the time mode (`1d`, `7d`, …).
    #[arg(long, default_value = "7d", requires = "time_column")]
    bucket: String,
    /// Event file (NDJSON): replay it through the engine with the configuration's `[graph]` and print
    /// the detectors' findings, one JSON object per line.
    #[arg(long)]
    events: Option<PathBuf>,
    #[command(flatten)]
    setup: super::Setup,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match (&a.events, &a.edges) {
        (Some(events), _) => run_events(&a, events),
        (None, Some(edges)) => run_edges(&a, edges),
        (None, None) => anyhow::bail!("give --edges FILE or --events FILE"),
    }
}

fn run_events(a: &Args, path: &std::path::Path) -> anyhow::Result<()> {
    let (cfg, policies) = a.setup.load()?;
    if cfg.graph.is_none() {
        anyhow::bail!("the configuration has no [graph] section: nothing to detect (see docs/graph.md; e.g. --config examples/simulator/graph.toml)");
    }
    let mut engine = argus_engine::Engine::new(cfg);
    if let Some(p) = policies {
        engine.set_policies(std::sync::Arc::new(p.policies));
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut log = argus_engine::FindingsLog::new(BufWriter::new(std::io::stdout().lock()));
    let start = Instant::now();
    let stats = {
        let mut sinks: Vec<&mut dyn argus_engine::RowSink> = vec![&mut log];
        argus_engine::replay(
            &mut engine,
            std::io::BufReader::with_capacity(1 << 20, f),
            argus_engine::Format::Ndjson,
            &mut sinks,
            None,
            &mut |_| {},
        )?
    };
    let (accounts, links, edges) = engine.graph_size().unwrap_or_default();
    eprintln!(
        "{} events ({} accepted) in {:.1} s: {} findings; graph now {accounts} accounts, {links} links, {edges} block edges",
        stats.records,
        stats.accepted,
        start.elapsed().as_secs_f64(),
        log.count
    );
    Ok(())
}

fn run_edges(a: &Args, path: &std::path::Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bucket_s = match a.time_column {
        Some(0) => anyhow::bail!("--time-column counts from 1"),
        Some(_) => argus_event::time::parse_duration(&a.bucket)
            .filter(|&ms| ms >= 1000)
            .map(|ms| ms / 1000)
            .with_context(|| format!("--bucket: invalid duration `{}`", a.bucket))?,
        None => 0,
    };
    let mut raw: Vec<(String, String, i64)> = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('%') {
            continue;
        }
        let fields: Vec<&str> = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if fields.len() < 2 {
            anyhow::bail!("{}:{}: expected `row,column`", path.display(), n + 1);
        }
        let period = match a.time_column {
            Some(c) => {
                let v = fields
                    .get(c - 1)
                    .with_context(|| format!("{}:{}: no column {c}", path.display(), n + 1))?;
                let secs: f64 =
                    v.parse()
                        .ok()
                        .filter(|x: &f64| x.is_finite())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "{}:{}: column {c} `{v}` is not a Unix time",
                                path.display(),
                                n + 1
                            )
                        })?;
                (secs as i64).div_euclid(bucket_s)
            }
            None => 0,
        };
        raw.push((fields[0].to_string(), fields[1].to_string(), period));
    }
    // Integer ids are indices only when they are dense enough to allocate by; sparse or huge ones
    // (an id of 4,000,000,000 would size the graph by it) are numbered in order of appearance.
    let limit = (raw.len() as u64)
        .saturating_mul(4)
        .saturating_add(1_000_000);
    let numeric = raw.iter().all(|(r, c, _)| matches!((r.parse::<u32>(), c.parse::<u32>()), (Ok(a), Ok(b)) if (a.max(b) as u64) < limit));
    let (mut rows, mut cols): (HashMap<String, u32>, HashMap<String, u32>) =
        (HashMap::new(), HashMap::new());
    let (mut row_names, mut col_names): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let id = |map: &mut HashMap<String, u32>, names: &mut Vec<String>, s: &str| -> u32 {
        if numeric {
            return s.parse().unwrap_or(0);
        }
        *map.entry(s.to_string()).or_insert_with(|| {
            names.push(s.to_string());
            names.len() as u32 - 1
        })
    };
    let edges: Vec<(u32, u32)> = raw
        .iter()
        .map(|(r, c, _)| {
            (
                id(&mut rows, &mut row_names, r),
                id(&mut cols, &mut col_names, c),
            )
        })
        .collect();
    let name = |names: &[String], i: u32| {
        if numeric {
            i.to_string()
        } else {
            names[i as usize].clone()
        }
    };
    let mut out = std::io::stdout().lock();
    if a.time_column.is_some() {
        // The periods that occur, numbered densely in time order (an outlying time cannot size the
        // tensor); printed back as each period's start (Unix seconds).
        let mut periods: Vec<i64> = raw.iter().map(|r| r.2).collect();
        periods.sort_unstable();
        periods.dedup();
        let mut coords = Vec::with_capacity(edges.len() * 3);
        for (&(r, c), (_, _, p)) in edges.iter().zip(&raw) {
            coords.extend([r, c, periods.binary_search(p).unwrap_or(0) as u32]);
        }
        let mass = vec![1.0; edges.len()];
        let start = Instant::now();
        let blocks = peel_tensor(3, &coords, &mass, a.blocks);
        let secs = start.elapsed().as_secs_f64();
        let blocks: Vec<serde_json::Value> = blocks
            .iter()
            .map(|b| {
                serde_json::json!({
                    "rows": b.modes[0].iter().map(|&i| name(&row_names, i)).collect::<Vec<_>>(),
                    "cols": b.modes[1].iter().map(|&i| name(&col_names, i)).collect::<Vec<_>>(),
                    "periods": b.modes[2].iter().map(|&p| periods[p as usize].saturating_mul(bucket_s)).collect::<Vec<_>>(),
                    "mass": b.mass,
                    "density": b.density,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"entries": edges.len(), "modes": ["row", "column", "period"], "bucket_seconds": bucket_s, "seconds": secs, "blocks": blocks})
        )?;
        return Ok(());
    }
    let g = Bipartite::from_edges(edges);
    let w = match a.weighting.as_str() {
        "plain" => Weighting::Plain,
        "sqrt" => Weighting::Sqrt,
        _ => Weighting::Log,
    };
    let start = Instant::now();
    let blocks = peel_many(&g, w, a.blocks);
    let secs = start.elapsed().as_secs_f64();
    let blocks: Vec<serde_json::Value> = blocks
        .iter()
        .map(|b| {
            serde_json::json!({
                "rows": b.rows.iter().map(|&i| name(&row_names, i)).collect::<Vec<_>>(),
                "cols": b.cols.iter().map(|&i| name(&col_names, i)).collect::<Vec<_>>(),
                "density": b.density,
            })
        })
        .collect();
    writeln!(
        out,
        "{}",
        serde_json::json!({"rows": g.rows, "cols": g.cols, "edges": g.edges(), "weighting": a.weighting, "seconds": secs,
                           "edges_per_second": g.edges() as f64 * blocks.len().max(1) as f64 / secs.max(1e-9), "blocks": blocks})
    )?;
    Ok(())
}
