//! `argus train` and `argus eval`: gradient-boosted tree models from the engine's own point-in-time
//! features and labels (argus_model), evaluated on a later time window.

use anyhow::{bail, Context};
use argus_engine::dataset::Rows;
use argus_engine::{Engine, Format, RowSink};
use argus_event::time::DAY;
use argus_model::{metrics, ModelFile, Params, Table, TrainingInfo};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What both commands read: events, and which of them are the model's rows.
#[derive(clap::Args, Clone)]
pub struct Data {
    #[command(flatten)]
    setup: super::Setup,
    /// Recorded events (`.ndjson`, `.csv`, optionally `.gz`).
    #[arg(long, short)]
    input: String,
    /// Input format; guessed from the file name when absent.
    #[arg(long, value_parser = ["ndjson", "csv"])]
    format: Option<String>,
    /// The event type the model scores (default: the type carrying the label).
    #[arg(long)]
    event: Option<String>,
    /// The delayed label to learn (default: the first declared label).
    #[arg(long)]
    label: Option<String>,
    /// How long after an event its label is known (default: the label's configured delay).
    #[arg(long)]
    delay: Option<String>,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: Data,
    /// First day of training (YYYY-MM-DD, UTC).
    #[arg(long)]
    train_from: String,
    /// Days of training.
    #[arg(long, default_value_t = 7)]
    train_days: u32,
    /// The training window as a duration (`36h`, `90m`), instead of whole days; `--train-from` may
    /// then be a time (RFC 3339).
    #[arg(long)]
    train_window: Option<String>,
    /// Days evaluated after the training window and the label delay (0 = none).
    #[arg(long, default_value_t = 7)]
    test_days: u32,
    /// The test window as a duration, instead of whole days.
    #[arg(long)]
    test_window: Option<String>,
    /// Which test rows count: `plain` (every row of the test days) or `handbook` (the Fraud Detection
    /// Handbook's: on each test day, actors with a positive label already known are left out).
    #[arg(long, value_enum, default_value_t = Protocol::Plain)]
    protocol: Protocol,
    /// Share of the training window, at its end in time, held out for early stopping.
    #[arg(long, default_value_t = 0.2)]
    valid_fraction: f64,
    /// Model inputs (comma-separated feature names; default: every number and boolean feature of the
    /// type, leaving out strings and timestamps such as `first_seen`, which must be named).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// Training parameters (TOML: trees, max_depth, learning_rate, lambda, min_child_weight,
    /// min_split_gain, max_bins, scale_pos_weight, early_stopping_rounds).
    #[arg(long)]
    params: Option<PathBuf>,
    #[arg(long)]
    trees: Option<usize>,
    #[arg(long)]
    max_depth: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Weight of positive rows: a number, or `auto` (negatives / positives).
    #[arg(long)]
    scale_pos_weight: Option<String>,
    /// Model name (default: the label's name, or `--model`'s).
    #[arg(long)]
    name: Option<String>,
    /// Train the model `[[models]]` declares under this name: its event type, its `inputs`, and its
    /// `path` as the output (unless `--out` is given).
    #[arg(long)]
    model: Option<String>,
    /// Write the model here (default with `--model`: the declared path).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write the training and test tables as CSV into this folder (for reference libraries).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Write the metrics as JSON.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// k of precision/recall@k and Card Precision@k.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Keep the model early stopping chose, trained without the validation rows. By default it is
    /// refit on the whole window (validation rows included) with the number of trees early stopping
    /// chose: the newest rows are the most like the ones it will score.
    #[arg(long)]
    no_refit: bool,
    /// Balanced bagging: this many models, each on all positives and a sample of negatives
    /// (`--negatives-per-positive`), averaged in log-odds (ranks, not calibrated probabilities).
    #[arg(long, default_value_t = 1)]
    bags: usize,
    /// Negatives kept per positive in each bag (0 = all).
    #[arg(long, default_value_t = 0.0)]
    negatives_per_positive: f64,
    /// What to train: `gbdt` (supervised), `hbos` (an unsupervised anomaly score: no labels needed),
    /// or `pu` (positive-unlabelled: only confirmed positives are known; every other row is
    /// unlabelled, not negative).
    #[arg(long, value_enum, default_value_t = Method::Gbdt)]
    method: Method,
    /// `hbos`: histogram bins per feature.
    #[arg(long, default_value_t = 20)]
    bins: usize,
    /// Keep only this share of the training window's positive labels (chosen by the row's actor and
    /// time, deterministically); the others become unlabelled. For measuring few-label training: the
    /// test rows keep every label.
    #[arg(long, default_value_t = 1.0)]
    keep_positives: f64,
}

/// What `argus train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Gbdt,
    Hbos,
    Pu,
}

/// Whether a training row's positive label is kept under `--keep-positives` (a hash of its actor
/// and time against the share).
fn kept(rows: &Rows, r: usize, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let h =
        xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", rows.actor[r], rows.time[r]).as_bytes());
    (h as f64 / u64::MAX as f64) < share
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    data: Data,
    /// The model (Argus, XGBoost JSON or LightGBM text; inputs matched to features by name).
    #[arg(long, short)]
    model: PathBuf,
    /// First evaluated day (YYYY-MM-DD).
    #[arg(long)]
    from: String,
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// The evaluated window as a duration (`12h`), instead of whole days; `--from` may be a time.
    #[arg(long)]
    window: Option<String>,
    /// Write each evaluated row's score (CSV: time, actor, label, score).
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Positives from this day on, once known, leave their customers out of later test days (default:
    /// the model's training start, else `--from`).
    #[arg(long)]
    known_from: Option<String>,
    /// Which rows count (see `argus train --protocol`).
    #[arg(long, value_enum, default_value_t = Protocol::Plain)]
    protocol: Protocol,
    #[arg(long)]
    report_json: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    k: usize,
}

/// The test protocol of `argus train` and `argus eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Every row of the test days.
    Plain,
    /// The Fraud Detection Handbook's: actors with a positive label known by a test day are left out
    /// of that day.
    Handbook,
}

/// A day (`YYYY-MM-DD`, its midnight UTC) or a time (RFC 3339), as epoch milliseconds.
fn day_ms(s: &str) -> anyhow::Result<i64> {
    argus_event::time::parse_datetime(&format!("{s}T00:00:00Z"))
        .or_else(|| argus_event::time::parse_datetime(s))
        .with_context(|| format!("`{s}` is not a date (YYYY-MM-DD) or a time (RFC 3339)"))
}

/// A window: `--…-window` (a duration such as `36h`) when given, else whole days.
fn window_ms(window: &Option<String>, days: u32, flag: &str) -> anyhow::Result<i64> {
    match window {
        Some(w) => argus_event::time::parse_duration(w)
            .with_context(|| format!("{flag}: `{w}` is not a duration (e.g. `36h`, `90m`, `2d`)")),
        None => Ok(days as i64 * DAY),
    }
}

struct Resolved {
    engine: Engine,
    event_type: argus_event::TypeId,
    label: String,
    delay_ms: i64,
}

/// The engine, event type, label and delay the data options (and, with `--model`, the declared
/// model's event type) name. Without `--label`, the label is the one carried by the event type when
/// one is named, else the first declared.
fn resolve(d: &Data, model: Option<&str>) -> anyhow::Result<Resolved> {
    // The `[[models]]` files are not read: training writes them, and eval names its model.
    let cfg = super::load_config_without_models(d.setup.config.as_deref())?;
    let schema = cfg.schema.clone();
    let declared_event = model.and_then(|m| {
        cfg.declared_models
            .iter()
            .find(|x| x.config.name == m)
            .map(|x| x.config.event.clone())
    });
    let named_type = match d.event.as_deref().or(declared_event.as_deref()) {
        Some(n) => Some(
            schema
                .type_id(n)
                .with_context(|| format!("unknown event type `{n}`"))?,
        ),
        None => None,
    };
    let spec = match (&d.label, named_type) {
        (Some(n), _) => schema
            .labels
            .iter()
            .find(|l| &l.name == n)
            .with_context(|| format!("no label `{n}` in the schema"))?,
        (None, Some(ty)) => {
            let on: Vec<_> = schema
                .labels
                .iter()
                .filter(|l| l.source_type == ty)
                .collect();
            match on.as_slice() {
                [one] => *one,
                [] => bail!(
                    "`{}` carries no delayed label; name one with --label",
                    schema.get(ty).name
                ),
                several => bail!(
                    "`{}` carries several labels ({}); name one with --label",
                    schema.get(ty).name,
                    several
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        (None, None) => schema.labels.first().context(
            "the schema declares no delayed label (a field with `label = { name, delay }`)",
        )?,
    };
    let event_type = named_type.unwrap_or(spec.source_type);
    let delay_ms = match &d.delay {
        Some(s) => argus_event::time::parse_duration(s)
            .with_context(|| format!("`{s}` is not a duration"))?,
        None => spec.delay_ms,
    };
    Ok(Resolved {
        engine: Engine::new(cfg),
        event_type,
        label: spec.name.clone(),
        delay_ms,
    })
}

/// Replays the input into `rows`.
fn collect(d: &Data, engine: &mut Engine, rows: &mut Rows) -> anyhow::Result<()> {
    let name = d.input.trim_end_matches(".gz");
    let format = match d.format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::Ndjson,
        None if name.ends_with(".csv") => Format::Csv,
        None => Format::Ndjson,
    };
    let f = File::open(&d.input).with_context(|| format!("opening {}", d.input))?;
    let input: Box<dyn BufRead> = if d.input.ends_with(".gz") {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut sinks: Vec<&mut dyn RowSink> = vec![rows];
    let name = std::path::Path::new(&d.input)
        .file_name()
        .map_or_else(|| "stdin".to_string(), |n| n.to_string_lossy().into_owned());
    let opts = argus_engine::replay::Options { name, sort: None };
    argus_engine::replay::replay_with(engine, input, format, &opts, &mut sinks, None, &mut |_| {})?;
    Ok(())
}

fn table(rows: &Rows, idx: &[usize]) -> Table {
    let mut t = Table {
        features: rows.names.clone(),
        x: Vec::with_capacity(idx.len() * rows.names.len()),
        y: Vec::with_capacity(idx.len()),
    };
    for &r in idx {
        t.x.extend_from_slice(rows.row(r));
        t.y.push(rows.label[r].is_some_and(|l| l != 0.0));
    }
    t
}

/// The test set: rows in `[from, from + days)`; with the handbook's protocol, leaving out, on each test
/// day, the actors with a positive label known by then (time in `[known_from, day − delay)`).
fn test_rows(
    rows: &Rows,
    from: i64,
    end: i64,
    known_from: i64,
    delay: i64,
    protocol: Protocol,
) -> Vec<usize> {
    if protocol == Protocol::Plain {
        return (0..rows.len())
            .filter(|&r| rows.time[r] >= from && rows.time[r] < end)
            .collect();
    }
    let positives: Vec<(i64, &str)> = (0..rows.len())
        .filter(|&r| rows.label[r].is_some_and(|l| l != 0.0))
        .map(|r| (rows.time[r], rows.actor[r].as_str()))
        .collect();
    let mut keep = Vec::new();
    let mut d0 = from;
    while d0 < end {
        let d1 = (d0 + DAY).min(end);
        let known: HashSet<&str> = positives
            .iter()
            .filter(|(t, _)| *t >= known_from && *t < d0 - delay)
            .map(|(_, a)| *a)
            .collect();
        keep.extend((0..rows.len()).filter(|&r| {
            rows.time[r] >= d0 && rows.time[r] < d1 && !known.contains(rows.actor[r].as_str())
        }));
        d0 = d1;
    }
    keep
}

#[derive(serde::Serialize)]
struct Evaluation {
    rows: usize,
    positives: usize,
    auc: Option<f64>,
    average_precision: Option<f64>,
    precision_at_k: f64,
    recall_at_k: f64,
    card_precision_at_k: f64,
    k: usize,
}

fn evaluate(scores: &[f64], rows: &Rows, idx: &[usize], k: usize) -> Evaluation {
    let labels: Vec<bool> = idx
        .iter()
        .map(|&r| rows.label[r].is_some_and(|l| l != 0.0))
        .collect();
    let day: Vec<i64> = idx.iter().map(|&r| rows.time[r].div_euclid(DAY)).collect();
    let mut ids: BTreeMap<&str, u64> = BTreeMap::new();
    let card: Vec<u64> = idx
        .iter()
        .map(|&r| {
            let n = ids.len() as u64;
            *ids.entry(rows.actor[r].as_str()).or_insert(n)
        })
        .collect();
    let (p, r) = metrics::precision_recall_at_k(scores, &labels, k);
    Evaluation {
        rows: idx.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        auc: metrics::roc_auc(scores, &labels),
        average_precision: metrics::average_precision(scores, &labels),
        precision_at_k: p,
        recall_at_k: r,
        card_precision_at_k: metrics::card_precision_at_k(&day, &card, scores, &labels, k).0,
        k,
    }
}

fn print_eval(name: &str, e: &Evaluation) {
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
    println!(
        "{name:<12} rows {:>8}  positives {:>6}  AUC {}  AP {}  P@{k} {:.4}  R@{k} {:.4}  CP@{k} {:.4}",
        e.rows,
        e.positives,
        f(e.auc),
        f(e.average_precision),
        e.precision_at_k,
        e.recall_at_k,
        e.card_precision_at_k,
        k = e.k
    );
}

fn export(dir: &std::path::Path, name: &str, rows: &Rows, idx: &[usize]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut w = std::io::BufWriter::new(File::create(dir.join(name))?);
    writeln!(w, "time_ms,day,actor,label,{}", rows.names.join(","))?;
    for &r in idx {
        write!(
            w,
            "{},{},{},{}",
            rows.time[r],
            rows.time[r].div_euclid(DAY),
            rows.actor[r].replace(',', "_"),
            u8::from(rows.label[r].is_some_and(|l| l != 0.0))
        )?;
        for v in rows.row(r) {
            if v.is_nan() {
                write!(w, ",")?;
            } else {
                write!(w, ",{v}")?;
            }
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

/// What `--model` takes from `[[models]]`: the name, event type, inputs and output path.
struct Target {
    name: Option<String>,
    features: Vec<String>,
    out: PathBuf,
}

/// Resolves `--model` against the configuration's `[[models]]` (the event type in `res` too), or the
/// plain options without it.
fn target(a: &TrainArgs, res: &mut Resolved) -> anyhow::Result<Target> {
    let Some(name) = &a.model else {
        let out = a
            .out
            .clone()
            .context("--out is required (or --model, to write the file `[[models]]` declares)")?;
        return Ok(Target {
            name: a.name.clone(),
            features: a.features.clone(),
            out,
        });
    };
    let declared = &res.engine.config.declared_models;
    let Some(d) = declared.iter().find(|d| &d.config.name == name) else {
        let names: Vec<&str> = declared.iter().map(|d| d.config.name.as_str()).collect();
        bail!(
            "--model {name}: the configuration declares no such model{}",
            if names.is_empty() {
                " (it has no [[models]])".to_string()
            } else {
                format!(" (it declares {})", names.join(", "))
            }
        );
    };
    let ty = res
        .engine
        .schema()
        .type_id(&d.config.event)
        .context("the declared event type")?;
    if a.data.event.is_some() && ty != res.event_type {
        bail!(
            "--event names another type than `[[models]] {name}`'s event (`{}`)",
            d.config.event
        );
    }
    res.event_type = ty;
    if a.name.as_ref().is_some_and(|n| n != name) {
        bail!("--name differs from --model; the model's name is its `[[models]]` name");
    }
    let features = match (&d.config.inputs, a.features.is_empty()) {
        (Some(_), false) => bail!(
            "`[[models]] {name}` declares its inputs; leave out --features (or edit `inputs`)"
        ),
        (Some(i), true) => i.clone(),
        (None, _) => a.features.clone(),
    };
    Ok(Target {
        name: Some(name.clone()),
        features,
        out: a.out.clone().unwrap_or_else(|| d.path.clone()),
    })
}

pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    let mut res = resolve(&a.data, a.model.as_deref())?;
    let target = target(&a, &mut res)?;
    let from = day_ms(&a.train_from)?;
    let train_ms = window_ms(&a.train_window, a.train_days, "--train-window")?;
    let test_ms = window_ms(&a.test_window, a.test_days, "--test-window")?;
    if train_ms <= 0 || !(0.0..0.9).contains(&a.valid_fraction) {
        bail!("the training window must be positive and --valid-fraction in [0, 0.9)");
    }
    let train_end = from + train_ms;
    let deploy = train_end + res.delay_ms;
    let test_end = deploy + test_ms;
    let mut rows = Rows::new(
        res.engine.features(),
        res.event_type,
        &target.features,
        from,
        test_end.max(train_end),
    )
    .map_err(anyhow::Error::msg)?;
    let t0 = Instant::now();
    collect(&a.data, &mut res.engine, &mut rows)?;
    let replay_s = t0.elapsed().as_secs_f64();
    if !(0.0..=1.0).contains(&a.keep_positives) {
        bail!("--keep-positives is a share, 0 to 1");
    }
    // Only confirmed positives are known to `pu` (and under --keep-positives, only some of them):
    // every other training row is unlabelled, which `pu` and `hbos` may learn from too.
    if a.method == Method::Pu || a.keep_positives < 1.0 {
        for r in 0..rows.len() {
            if rows.time[r] >= train_end {
                continue;
            }
            let pos = rows.label[r].is_some_and(|l| l != 0.0) && kept(&rows, r, a.keep_positives);
            rows.label[r] = match (pos, a.method) {
                (true, _) => Some(1.0),
                (false, Method::Pu) => Some(0.0),
                (false, _) => rows.label[r].map(|_| 0.0),
            };
        }
    }
    // Training rows: labelled events of the window, all known by `deploy` (for `hbos`, every event
    // of the window); the latest part validates.
    let mut train_idx: Vec<usize> = (0..rows.len())
        .filter(|&r| {
            rows.time[r] < train_end && (a.method == Method::Hbos || rows.label[r].is_some())
        })
        .collect();
    train_idx.sort_by_key(|&r| (rows.time[r], r));
    if train_idx.is_empty() {
        bail!(
            "no labelled `{}` events between {} and {}",
            res.engine.schema().get(res.event_type).name,
            a.train_from,
            argus_event::time::format_rfc3339(train_end)
        );
    }
    let cut = ((train_idx.len() as f64) * (1.0 - a.valid_fraction)) as usize;
    let (fit_idx, valid_idx) = train_idx.split_at(cut.max(1));
    let mut params: Params = match &a.params {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => Params::default(),
    };
    if let Some(t) = a.trees {
        params.trees = t;
    }
    if let Some(d) = a.max_depth {
        params.max_depth = d;
    }
    if let Some(l) = a.learning_rate {
        params.learning_rate = l;
    }
    match a.scale_pos_weight.as_deref() {
        Some("auto") => params.scale_pos_weight = None,
        Some(s) => {
            params.scale_pos_weight = Some(
                s.parse()
                    .with_context(|| format!("--scale-pos-weight `{s}`"))?,
            )
        }
        None => {}
    }
    let fit = table(&rows, fit_idx);
    let valid = table(&rows, valid_idx);
    let t1 = Instant::now();
    let (model, log) = if a.method == Method::Hbos {
        let m = argus_model::hbos::train_hbos(&fit, a.bins).map_err(anyhow::Error::msg)?;
        let log = argus_model::TrainLog {
            best_iteration: m.trees.len(),
            ..Default::default()
        };
        (m, log)
    } else {
        argus_model::train::train_bagged(
            &fit,
            (!valid_idx.is_empty()).then_some(&valid),
            &params,
            a.bags,
            a.negatives_per_positive,
            1,
        )
        .map_err(anyhow::Error::msg)?
    };
    let train_s = t1.elapsed().as_secs_f64();
    let vscores: Vec<f64> = valid_idx
        .iter()
        .map(|&r| model.score(rows.row(r)))
        .collect();
    let vlabels: Vec<bool> = valid.y.clone();
    let mut m = BTreeMap::new();
    if let Some(x) = metrics::roc_auc(&vscores, &vlabels) {
        m.insert("validation_auc".to_string(), x);
    }
    if let Some(x) = metrics::average_precision(&vscores, &vlabels) {
        m.insert("validation_average_precision".to_string(), x);
    }
    let all = table(&rows, &train_idx);
    // Refit on the whole window, the most recent rows included, with the trees early stopping chose.
    // Positive-unlabelled: the labelling rate is estimated before the refit, on validation rows the
    // model has not seen (applied after it; see below).
    let pu_rate = if a.method == Method::Pu {
        let pos: Vec<f64> = valid_idx
            .iter()
            .filter(|&&r| rows.label[r].is_some_and(|l| l != 0.0))
            .map(|&r| model.score(rows.row(r)))
            .collect();
        if pos.is_empty() {
            bail!("--method pu: no confirmed positive among the validation rows to estimate the labelling rate; widen the window or --valid-fraction");
        }
        Some((
            (pos.iter().sum::<f64>() / pos.len() as f64).clamp(1e-6, 1.0),
            pos.len(),
        ))
    } else {
        None
    };
    let (mut model, train_s) = if a.no_refit || valid_idx.is_empty() {
        (model, train_s)
    } else if a.method == Method::Hbos {
        let t2 = Instant::now();
        let m = argus_model::hbos::train_hbos(&all, a.bins).map_err(anyhow::Error::msg)?;
        (m, train_s + t2.elapsed().as_secs_f64())
    } else {
        let refit = Params {
            trees: log.best_iteration.max(1),
            early_stopping_rounds: 0,
            ..params.clone()
        };
        let t2 = Instant::now();
        let (m2, _) = argus_model::train(&all, None, &refit).map_err(anyhow::Error::msg)?;
        (m2, train_s + t2.elapsed().as_secs_f64())
    };
    // Positive-unlabelled (Elkan & Noto, KDD 2008): the model learnt P(labelled | x); with c, the mean
    // score of the validation positives (the share of positives that get labelled), P(positive | x)
    // = P(labelled | x) / c, which for rare positives is the logistic of the margin less ln c.
    if let Some((c, n)) = pu_rate {
        model.base -= c.ln();
        m.insert("pu_label_rate".to_string(), c);
        println!("positive-unlabelled: labelling rate c = {c:.4} (mean score of {n} validation positives); scores divided by it");
    }
    let info = TrainingInfo {
        checkpoint: res.engine.schema().get(res.event_type).name.clone(),
        label: res.label.clone(),
        label_delay: format!("{}ms", res.delay_ms),
        window_start: argus_event::time::format_rfc3339(from),
        window_end: argus_event::time::format_rfc3339(train_end),
        deploy_from: argus_event::time::format_rfc3339(deploy),
        rows: if !a.no_refit {
            train_idx.len()
        } else {
            fit_idx.len()
        } as u64,
        positives: if !a.no_refit { &all } else { &fit }
            .y
            .iter()
            .filter(|&&y| y)
            .count() as u64,
        validation_rows: valid_idx.len() as u64,
        data_hash: argus_model::file::data_hash(&all),
        params: params.clone(),
        best_iteration: log.best_iteration,
        seconds: train_s,
    };
    let name = target.name.clone().unwrap_or_else(|| res.label.clone());
    let file = ModelFile {
        format: argus_model::file::FORMAT.into(),
        name: name.clone(),
        version: format!(
            "{}+{}",
            argus_event::time::format_rfc3339(train_end)
                .get(..10)
                .unwrap_or(""),
            &info.data_hash[..8]
        ),
        training: info,
        metrics: m.clone(),
        model,
    };
    std::fs::write(&target.out, file.to_json().context("encoding the model")?)
        .with_context(|| format!("writing {}", target.out.display()))?;
    println!(
        "trained `{name}` on {} rows ({} positive) of {} .. {}, {} features: {} trees (of {}), {:.2} s (replay {:.1} s); validation AUC {:.4}, AP {:.4} on {} rows",
        file.training.rows,
        file.training.positives,
        a.train_from,
        argus_event::time::format_rfc3339(train_end),
        rows.names.len(),
        log.best_iteration,
        params.trees,
        train_s,
        replay_s,
        m.get("validation_auc").unwrap_or(&f64::NAN),
        m.get("validation_average_precision").unwrap_or(&f64::NAN),
        valid_idx.len()
    );
    let mut report = serde_json::json!({"model": target.out, "train_rows": fit_idx.len(), "validation_rows": valid_idx.len(), "train_seconds": train_s, "best_iteration": log.best_iteration, "validation": m});
    if test_ms > 0 {
        let test_idx = test_rows(&rows, deploy, test_end, from, res.delay_ms, a.protocol);
        let scorer = argus_model::Scorer::new(&file.model).map_err(anyhow::Error::msg)?;
        let scores: Vec<f64> = test_idx
            .iter()
            .map(|&r| scorer.score(rows.row(r)))
            .collect();
        let e = evaluate(&scores, &rows, &test_idx, a.k);
        print_eval("test", &e);
        report["test"] = serde_json::to_value(&e)?;
        if let Some(dir) = &a.export {
            export(dir, "test.csv", &rows, &test_idx)?;
        }
    }
    if let Some(dir) = &a.export {
        export(dir, "train.csv", &rows, fit_idx)?;
        export(dir, "valid.csv", &rows, valid_idx)?;
    }
    if let Some(p) = &a.report_json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let mut res = resolve(&a.data, None)?;
    let text = std::fs::read_to_string(&a.model)
        .with_context(|| format!("reading {}", a.model.display()))?;
    let (model, file) =
        argus_model::load_model(&text).with_context(|| format!("loading {}", a.model.display()))?;
    let from = day_ms(&a.from)?;
    let known_from = match (&a.known_from, &file) {
        (Some(s), _) => day_ms(s)?,
        (None, Some(f)) => {
            argus_event::time::parse_datetime(&f.training.window_start).unwrap_or(from)
        }
        (None, None) => from,
    };
    let to = from + window_ms(&a.window, a.days, "--window")?;
    let mut rows = Rows::new(
        res.engine.features(),
        res.event_type,
        &model.features,
        known_from.min(from),
        to,
    )
    .map_err(|e| {
        anyhow::anyhow!("the model's inputs do not match the configuration's features: {e}")
    })?;
    collect(&a.data, &mut res.engine, &mut rows)?;
    let idx = test_rows(&rows, from, to, known_from, res.delay_ms, a.protocol);
    let scorer = argus_model::Scorer::new(&model).map_err(anyhow::Error::msg)?;
    let scores: Vec<f64> = idx.iter().map(|&r| scorer.score(rows.row(r))).collect();
    if let Some(p) = &a.scores {
        let mut w = std::io::BufWriter::new(
            File::create(p).with_context(|| format!("writing {}", p.display()))?,
        );
        writeln!(w, "time,actor,label,score")?;
        for (&r, sc) in idx.iter().zip(&scores) {
            writeln!(
                w,
                "{},{},{},{sc}",
                argus_event::time::format_rfc3339(rows.time[r]),
                rows.actor[r].replace(',', "_"),
                rows.label[r].map_or(String::new(), |l| l.to_string())
            )?;
        }
        w.flush()?;
    }
    let e = evaluate(&scores, &rows, &idx, a.k);
    print_eval("eval", &e);
    if let Some(p) = &a.report_json {
        std::fs::write(p, serde_json::to_string_pretty(&e)?)?;
    }
    Ok(())
}
