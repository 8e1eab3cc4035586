//! `argus rings`: dense blocks (rings) in an edge file — rows (e.g. buyers, raters, users) × columns
//! (sellers, ratees, items) — by greedy peeling (argus_graph::fraudar).

use anyhow::Context;
use argus_graph::{peel_many, Bipartite, Weighting};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Edge file: one `row,column` (or whitespace-separated) pair per line; further columns are
    /// ignored, as are lines starting with `#` or `%`. Integer ids are used as indices as they are;
    /// other ids are numbered in order of appearance.
    #[arg(long)]
    edges: PathBuf,
    /// Edge weighting: `plain` (average degree), `log` (FRAUDAR's camouflage-resistant column
    /// weights), `sqrt`.
    #[arg(long, default_value = "log", value_parser = ["plain", "log", "sqrt"])]
    weighting: String,
    /// Blocks to find (each found block's edges are removed before the next).
    #[arg(long, default_value_t = 1)]
    blocks: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let f = std::fs::File::open(&a.edges).with_context(|| format!("opening {}", a.edges.display()))?;
    let mut raw: Vec<(String, String)> = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('%') {
            continue;
        }
        let mut it = t.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty());
        match (it.next(), it.next()) {
            (Some(r), Some(c)) => raw.push((r.to_string(), c.to_string())),
            _ => anyhow::bail!("{}:{}: expected `row,column`", a.edges.display(), n + 1),
        }
    }
    let numeric = raw.iter().all(|(r, c)| r.parse::<u32>().is_ok() && c.parse::<u32>().is_ok());
    let (mut rows, mut cols): (HashMap<String, u32>, HashMap<String, u32>) = (HashMap::new(), HashMap::new());
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
    let edges: Vec<(u32, u32)> = raw.iter().map(|(r, c)| (id(&mut rows, &mut row_names, r), id(&mut cols, &mut col_names, c))).collect();
    let g = Bipartite::from_edges(edges);
    let w = match a.weighting.as_str() {
        "plain" => Weighting::Plain,
        "sqrt" => Weighting::Sqrt,
        _ => Weighting::Log,
    };
    let start = Instant::now();
    let blocks = peel_many(&g, w, a.blocks);
    let secs = start.elapsed().as_secs_f64();
    let name = |names: &[String], i: u32| if numeric { i.to_string() } else { names[i as usize].clone() };
    let out: Vec<serde_json::Value> = blocks
        .iter()
        .map(|b| {
            serde_json::json!({
                "rows": b.rows.iter().map(|&i| name(&row_names, i)).collect::<Vec<_>>(),
                "cols": b.cols.iter().map(|&i| name(&col_names, i)).collect::<Vec<_>>(),
                "density": b.density,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"rows": g.rows, "cols": g.cols, "edges": g.edges(), "weighting": a.weighting, "seconds": secs,
                           "edges_per_second": g.edges() as f64 * blocks.len().max(1) as f64 / secs.max(1e-9), "blocks": out})
    );
    Ok(())
}
