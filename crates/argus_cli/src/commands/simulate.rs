//! `argus simulate`: a labelled e-commerce world (argus_sim) as NDJSON, optionally replayed straight
//! through the engine into the catch report.

use anyhow::Context;
use argus_sim::{SimConfig, Summary, TruthRec};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// World configuration (TOML: seed, days, start, users, attack_scale, camouflage, [scenarios.<name>]).
    #[arg(long)]
    world: Option<PathBuf>,
    /// Random seed (same seed and configuration ⇒ the same bytes).
    #[arg(long)]
    seed: Option<u64>,
    /// Days of activity.
    #[arg(long)]
    days: Option<u32>,
    /// Honest shoppers.
    #[arg(long)]
    users: Option<u32>,
    /// Camouflage of every attack, 0 (naive) to 1 (careful).
    #[arg(long)]
    camouflage: Option<f64>,
    /// Multiplies the number of attack campaigns.
    #[arg(long)]
    attack_scale: Option<f64>,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Events as NDJSON to this file, or `-` for stdout.
    #[arg(long, short)]
    out: Option<String>,
    /// Ground truth, one line per event, to this file (default with --out FILE: FILE's name with
    /// `.truth.ndjson`).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Print generation statistics (JSON) to stderr.
    #[arg(long)]
    stats: bool,
    /// Write each order's ground truth as a delayed-label column `fraud`, for `argus train` (needs
    /// `--config examples/simulator/labels.toml` or a configuration declaring it); with `--text`,
    /// each review's and listing's too (examples/simulator/text.toml).
    #[arg(long)]
    labels: bool,
    /// Write review text into `review.create` as `text` (honest reviews, and brushing rings' copies
    /// or paraphrases of their templates), and sellers' listings as `listing.create` events (honest
    /// descriptions, and brushing sellers' copies or paraphrases of one shared kit); needs `--config
    /// examples/simulator/text.toml` or a configuration declaring the field and the type.
    #[arg(long)]
    text: bool,
    /// Replay the world through the engine (configuration and policies below; default: the starter
    /// pack) and print the catch report, instead of writing the events.
    #[arg(long)]
    report: bool,
    /// With --report: write the graph detectors' findings (NDJSON; needs `[graph]`, e.g.
    /// `--config examples/simulator/graph.toml`).
    #[arg(long, requires = "report")]
    findings: Option<PathBuf>,
    #[command(flatten)]
    setup: super::Setup,
    #[command(flatten)]
    catch: CatchOut,
}

/// Where the catch report goes besides the terminal (shared with `argus replay --truth`).
#[derive(clap::Args, Clone)]
pub struct CatchOut {
    /// Write the catch report as JSON.
    #[arg(long)]
    pub catch_json: Option<PathBuf>,
    /// Write the catch chart (SVG): accounts caught per scenario and honest friction, by day.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

impl CatchOut {
    pub fn write(&self, r: &argus_sim::Report, title: &str) -> anyhow::Result<()> {
        r.write_table(&mut std::io::stdout().lock())?;
        if let Some(p) = &self.catch_json {
            std::fs::write(p, serde_json::to_string_pretty(r)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(p) = &self.chart {
            std::fs::write(p, argus_sim::chart::svg(r, title))
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }
}

/// The world as a byte stream for the replay, handing each event's truth to the report beside it.
struct WorldReader {
    g: argus_sim::Generator,
    buf: Vec<u8>,
    pos: usize,
    truth: Rc<RefCell<VecDeque<TruthRec>>>,
}

impl Read for WorldReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(evs) = self.g.next_day() else {
                return Ok(0);
            };
            self.buf.clear();
            self.pos = 0;
            self.g.render(&evs, &mut self.buf, None);
            let mut q = self.truth.borrow_mut();
            q.extend(evs.iter().map(|e| TruthRec {
                id: argus_sim::event::event_id(e.id),
                actor: format!("u{}", e.actor),
                truth: e.truth,
            }));
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `argus simulate --report`: generate and replay in one process, on the engine's one code path.
fn report(a: &Args, cfg: &SimConfig) -> anyhow::Result<()> {
    let (ecfg, policies) = a.setup.load()?;
    let Some(policies) = policies else {
        anyhow::bail!("--report needs policies: give --policies DIR with --config")
    };
    let mut engine = argus_engine::Engine::new(ecfg);
    engine.set_policies(std::sync::Arc::new(policies.policies));
    let queue = Rc::new(RefCell::new(VecDeque::new()));
    let reader = WorldReader {
        g: argus_sim::Generator::new(cfg)?,
        buf: Vec::new(),
        pos: 0,
        truth: queue.clone(),
    };
    let mut catch = argus_sim::CatchReport::new(queue);
    if a.findings.is_some() && engine.config.graph.is_none() {
        anyhow::bail!(
            "--findings needs a [graph] section in the configuration (see docs/graph.md)"
        );
    }
    let mut findings = match &a.findings {
        Some(p) => Some(argus_engine::FindingsLog::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        ))),
        None => None,
    };
    let start = Instant::now();
    let stats = {
        let mut sinks: Vec<&mut dyn argus_engine::RowSink> = vec![&mut catch];
        if let Some(f) = findings.as_mut() {
            sinks.push(f);
        }
        argus_engine::replay(
            &mut engine,
            std::io::BufReader::with_capacity(1 << 20, reader),
            argus_engine::Format::Ndjson,
            &mut sinks,
            None,
            &mut |_| {},
        )?
    };
    eprintln!(
        "simulated and replayed {} events in {:.1} s: {} accepted, {} rejected",
        stats.records,
        start.elapsed().as_secs_f64(),
        stats.accepted,
        stats.rejected_total()
    );
    let r = catch.finish();
    let title = format!(
        "Argus catch report — seed {}, {} days, {} users, camouflage {}",
        cfg.seed,
        cfg.days,
        cfg.users,
        cfg.camouflage
            .map_or("default".to_string(), |c| c.to_string())
    );
    a.catch.write(&r, &title)
}

pub fn config(a: &Args) -> anyhow::Result<SimConfig> {
    let mut cfg = match &a.world {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => SimConfig::default(),
    };
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(d) = a.days {
        cfg.days = d;
    }
    if let Some(u) = a.users {
        cfg.users = u;
    }
    if let Some(c) = a.camouflage {
        cfg.camouflage = Some(c);
    }
    if let Some(s) = a.attack_scale {
        cfg.attack_scale = s;
    }
    cfg.labels |= a.labels;
    cfg.text |= a.text;
    if !a.only.is_empty() {
        for (s, _, _) in argus_sim::SCENARIOS {
            let on = a.only.iter().any(|n| n == s.name());
            cfg.scenarios
                .entry(s.name().to_string())
                .or_default()
                .enabled = Some(on);
        }
        for n in &a.only {
            if argus_sim::Scenario::from_name(n).is_none() {
                let known: Vec<_> = argus_sim::SCENARIOS
                    .iter()
                    .map(|(s, _, _)| s.name())
                    .collect();
                anyhow::bail!("unknown scenario `{n}` (known: {})", known.join(", "));
            }
        }
    }
    // Everything is checked before any file is created.
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    if a.report {
        return report(&a, &cfg);
    }
    let start = Instant::now();
    let out = a.out.clone().unwrap_or_else(|| "-".into());
    let truth_path = a.truth.clone().or_else(|| {
        (out != "-")
            .then(|| PathBuf::from(format!("{}.truth.ndjson", out.trim_end_matches(".ndjson"))))
    });
    let mut events: Box<dyn Write> = if out == "-" {
        Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&out).with_context(|| format!("creating {out}"))?,
        ))
    };
    let mut truth = match &truth_path {
        Some(p) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let summary: Summary = argus_sim::generate(
        &cfg,
        &mut events,
        truth.as_mut().map(|t| t as &mut dyn Write),
    )?;
    let secs = start.elapsed().as_secs_f64();
    if a.stats || out != "-" {
        let stats = serde_json::json!({
            "seconds": secs,
            "events_per_sec": summary.events as f64 / secs.max(1e-9),
            "events_file": out,
            "truth_file": truth_path,
            "summary": summary,
        });
        eprintln!("{}", serde_json::to_string_pretty(&stats)?);
    }
    Ok(())
}
