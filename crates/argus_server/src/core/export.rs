//! Parquet export for the big-data stack: a data directory's log as three Hive-partitioned tables,
//!
//! ```text
//! <out>/events/date=YYYY-MM-DD/type=<event type>/part-<first record>.parquet
//! <out>/decisions/date=YYYY-MM-DD/type=<event type>/part-<first record>.parquet
//! <out>/features/date=YYYY-MM-DD/type=<event type>/part-<first record>.parquet
//! ```
//!
//! by the event's time (UTC date) and type. Events are as logged: personal data tokenized. Features
//! are point in time: the engine's own path run again over the log (from a snapshot when retention
//! cut it), as a backtest does. Files are Snappy-compressed Parquet written to a temporary name and
//! renamed, so a reader never sees half a file; the same range exported again replaces the same
//! files. The log is read without changing it, so an export runs beside a live server.

use super::backtest::start_state;
use super::*;
use crate::wal::LogReader;
use argus_engine::table::{ParquetTable, RowSink};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// What to export.
pub struct ExportSpec<'a> {
    pub config: &'a Config,
    pub data_dir: &'a Path,
    pub out: &'a Path,
    /// Event time range, milliseconds: `[from, to)`; `None` is open.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Write the feature table too (runs the engine over the log).
    pub features: bool,
    /// Only the log records after this one (continuous export: what the last run wrote).
    pub after: u64,
}

/// What an export wrote.
#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
    pub events: u64,
    pub decisions: u64,
    pub feature_rows: u64,
    pub files: Vec<PathBuf>,
    pub first_record: u64,
    pub last_record: u64,
    pub millis: u128,
}

const EVENTS_SCHEMA: &str = "message argus_events {
  required binary event_id (UTF8);
  required int64 event_time (TIMESTAMP(MILLIS,true));
  required binary event_type (UTF8);
  optional binary actor (UTF8);
  required int64 log_seq;
  required binary data (UTF8);
}";

const DECISIONS_SCHEMA: &str = "message argus_decisions {
  required binary event_id (UTF8);
  required int64 event_time (TIMESTAMP(MILLIS,true));
  required binary checkpoint (UTF8);
  required binary action (UTF8);
  required double score;
  required binary policy_version (UTF8);
  required binary fired (UTF8);
  required binary decision (UTF8);
  required int64 log_seq;
}";

/// Rows of one partition of the events or decisions table, written as one row group at the end.
#[derive(Default)]
struct Rows {
    first: u64,
    strs: Vec<Vec<ByteArray>>,
    ints: Vec<Vec<i64>>,
    dbls: Vec<Vec<f64>>,
    /// Definition levels of the optional `actor` column (events only).
    actor_def: Vec<i16>,
}

/// A column's physical kind in order, for the writer.
#[derive(Clone, Copy)]
enum K {
    S(usize),
    SOpt(usize),
    I(usize),
    D(usize),
}

const EVENTS_COLS: &[K] = &[K::S(0), K::I(0), K::S(1), K::SOpt(2), K::I(1), K::S(3)];
const DECISIONS_COLS: &[K] = &[
    K::S(0),
    K::I(0),
    K::S(1),
    K::S(2),
    K::D(0),
    K::S(3),
    K::S(4),
    K::S(5),
    K::I(1),
];

fn pq(e: parquet::errors::ParquetError) -> String {
    e.to_string()
}

/// A temporary name of this process's own beside `path`: two exporters (a lease changing hands in a
/// cluster) never write into one file; the rename publishes a whole file either way.
fn tmp_path(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    path.with_extension(format!("parquet.{}-{n}.tmp", std::process::id()))
}

/// `dir/part-<first>.parquet`, through a temporary file and a rename.
fn part_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("part-{first:020}.parquet"))
}

fn write_rows(path: &Path, schema: &str, cols: &[K], rows: &Rows) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let schema = Arc::new(parse_message_type(schema).map_err(pq)?);
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(pq)?;
    let mut rg = w.next_row_group().map_err(pq)?;
    let mut i = 0;
    while let Some(mut c) = rg.next_column().map_err(pq)? {
        match cols[i] {
            K::S(k) => {
                c.typed::<ByteArrayType>()
                    .write_batch(&rows.strs[k], None, None)
                    .map_err(pq)?;
            }
            K::SOpt(k) => {
                c.typed::<ByteArrayType>()
                    .write_batch(&rows.strs[k], Some(&rows.actor_def), None)
                    .map_err(pq)?;
            }
            K::I(k) => {
                c.typed::<Int64Type>()
                    .write_batch(&rows.ints[k], None, None)
                    .map_err(pq)?;
            }
            K::D(k) => {
                c.typed::<DoubleType>()
                    .write_batch(&rows.dbls[k], None, None)
                    .map_err(pq)?;
            }
        }
        c.close().map_err(pq)?;
        i += 1;
    }
    rg.close().map_err(pq)?;
    let f = w.into_inner().map_err(pq)?;
    f.sync_all().map_err(|e| e.to_string())?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn rows(strs: usize, ints: usize, dbls: usize, first: u64) -> Rows {
    Rows {
        first,
        strs: vec![Vec::new(); strs],
        ints: vec![Vec::new(); ints],
        dbls: vec![Vec::new(); dbls],
        actor_def: Vec::new(),
    }
}

/// `date=YYYY-MM-DD/type=<type>`.
fn partition(time: i64, ty: &str) -> PathBuf {
    let day = argus_event::time::format_rfc3339(time);
    PathBuf::from(format!("date={}", &day[..10])).join(format!("type={ty}"))
}

/// Exports the log's events in the time range (see the module's documentation).
pub fn export(s: ExportSpec<'_>) -> Result<ExportReport, String> {
    let t0 = Instant::now();
    let log = s.data_dir.join("log");
    if !log.is_dir() {
        return Err(format!(
            "{} is not an Argus data directory (it has no log/): give the directory `argus serve` writes (its --data-dir)",
            s.data_dir.display()
        ));
    }
    let schema = s.config.schema.clone();
    let mut reader = LogReader::open(&log).map_err(|e| e.to_string())?;
    let first = reader.first_seq();
    let (mut engine, from_seq) = if s.features {
        let (mut e, from, _) = start_state(s.config, s.data_dir, first)?;
        e.clear_policies();
        (Some(e), from)
    } else {
        (None, 0)
    };
    let fset = engine.as_ref().map(|e| e.features().clone());
    let in_range = |t: i64| s.from.is_none_or(|f| t >= f) && s.to.is_none_or(|to| t < to);
    let mut events: BTreeMap<PathBuf, Rows> = BTreeMap::new();
    let mut decisions: BTreeMap<PathBuf, Rows> = BTreeMap::new();
    // Per partition: the temporary file, its writer, the file's name.
    let mut features: BTreeMap<PathBuf, (PathBuf, ParquetTable<std::fs::File>, PathBuf)> =
        BTreeMap::new();
    let mut rep = ExportReport {
        last_record: s.after,
        ..Default::default()
    };
    let mut scratch = String::new();
    while let Some((seq, kind, payload)) = reader.read_next_ref().map_err(|e| e.to_string())? {
        if kind != KIND_EVENT {
            continue;
        }
        let Some((head, st, decision)) = split_event(payload) else {
            return Err(format!("record {seq}: unreadable event record"));
        };
        let ev = load_event(&schema, st).map_err(|e| format!("record {seq}: {e}"))?;
        // The features as of this event (the state the live decision read), when the engine must
        // be brought past it anyway.
        let feats = match engine.as_mut() {
            Some(e) if seq > from_seq => match e.apply(&ev) {
                Ok(p) => Some(p.features.to_vec()),
                Err(_) => None,
            },
            _ => None,
        };
        if seq <= s.after || !in_range(ev.time) {
            continue;
        }
        let et = schema.get(head.ty);
        let part = partition(ev.time, &et.name);
        rep.first_record = if rep.first_record == 0 {
            seq
        } else {
            rep.first_record
        };
        rep.last_record = seq;
        // Events: the logged (tokenized) event, its fields as one JSON object.
        let r = events
            .entry(part.clone())
            .or_insert_with(|| rows(4, 2, 0, seq));
        let data: serde_json::Map<String, Json> = ev
            .fields
            .iter()
            .zip(&et.fields)
            .filter(|(v, _)| !v.is_null())
            .map(|(v, f)| (f.name.clone(), value_json(v)))
            .collect();
        let actor = ev
            .fields
            .get(argus_event::schema::ACTOR_SLOT)
            .filter(|v| !v.is_null());
        r.strs[0].push(ByteArray::from(ev.id.as_str()));
        r.ints[0].push(ev.time);
        r.strs[1].push(ByteArray::from(et.name.as_str()));
        match actor {
            Some(a) => {
                scratch.clear();
                argus_engine::table::render(a, &mut scratch);
                r.strs[2].push(ByteArray::from(scratch.as_str()));
                r.actor_def.push(1);
            }
            None => r.actor_def.push(0),
        }
        r.ints[1].push(seq as i64);
        r.strs[3].push(ByteArray::from(Json::Object(data).to_string().as_str()));
        rep.events += 1;
        // Decisions.
        if !decision.is_empty() {
            let d: Json = serde_json::from_slice(decision)
                .map_err(|e| format!("record {seq}: unreadable decision: {e}"))?;
            let r = decisions
                .entry(part.clone())
                .or_insert_with(|| rows(6, 2, 1, seq));
            let s = |k: &str| d.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            let fired: Vec<Json> = d
                .get("fired")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(|f| f.get("rule").cloned()).collect())
                .unwrap_or_default();
            r.strs[0].push(ByteArray::from(ev.id.as_str()));
            r.ints[0].push(ev.time);
            r.strs[1].push(ByteArray::from(s("checkpoint").as_str()));
            r.strs[2].push(ByteArray::from(s("action").as_str()));
            r.dbls[0].push(d.get("score").and_then(Json::as_f64).unwrap_or(0.0));
            r.strs[3].push(ByteArray::from(s("policy_version").as_str()));
            r.strs[4].push(ByteArray::from(Json::Array(fired).to_string().as_str()));
            r.strs[5].push(ByteArray::from(decision));
            r.ints[1].push(seq as i64);
            rep.decisions += 1;
        }
        // Features.
        if let Some(f) = feats {
            if !features.contains_key(&part) {
                let dir = s.out.join("features").join(&part);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = part_path(&dir, seq);
                let tmp = tmp_path(&path);
                let file =
                    std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
                let Some(fset) = &fset else { continue };
                let t = ParquetTable::new(file, schema.clone(), fset).map_err(|e| e.to_string())?;
                features.insert(part.clone(), (tmp, t, path));
            }
            if let Some((_, t, _)) = features.get_mut(&part) {
                t.write(&ev.id, ev.ty, ev.time, &f)
                    .map_err(|e| e.to_string())?;
                rep.feature_rows += 1;
            }
        }
    }
    for (part, r) in &events {
        let path = part_path(&s.out.join("events").join(part), r.first);
        write_rows(&path, EVENTS_SCHEMA, EVENTS_COLS, r)?;
        rep.files.push(path);
    }
    for (part, r) in &decisions {
        let path = part_path(&s.out.join("decisions").join(part), r.first);
        write_rows(&path, DECISIONS_SCHEMA, DECISIONS_COLS, r)?;
        rep.files.push(path);
    }
    for (_, (tmp, mut t, path)) in features {
        t.finish().map_err(|e| e.to_string())?;
        drop(t);
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        rep.files.push(path);
    }
    rep.millis = t0.elapsed().as_millis();
    Ok(rep)
}

/// The continuous export's cursor: the last log record exported (`_argus_export_cursor` in the
/// output directory; readers skip names starting with `_`).
pub fn cursor_path(out: &Path) -> PathBuf {
    out.join("_argus_export_cursor")
}

/// One run of the continuous export: the records after the cursor, then the cursor moved (written
/// after the files, so that a crash between the two repeats the run into the same file names).
/// Moved by each erasure (before it renames the log, and again before it empties the export): a
/// continuous export round that began before throws its files away, so that no file read from the
/// log before the renaming survives it.
pub static ERASURE_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn export_new(config: &Config, data_dir: &Path, out: &Path) -> Result<ExportReport, String> {
    let epoch = ERASURE_EPOCH.load(Ordering::SeqCst);
    let after = match std::fs::read_to_string(cursor_path(out)) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a record number", cursor_path(out).display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(format!("{}: {e}", cursor_path(out).display())),
    };
    let rep = export(ExportSpec {
        config,
        data_dir,
        out,
        from: None,
        to: None,
        features: false,
        after,
    })?;
    if ERASURE_EPOCH.load(Ordering::SeqCst) != epoch {
        for f in &rep.files {
            let _ = std::fs::remove_file(f);
        }
        return Err("an erasure ran during this round: its files were discarded; the next round writes them again".into());
    }
    if rep.last_record > after {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        argus_engine::engine::write_atomically(
            &cursor_path(out),
            rep.last_record.to_string().as_bytes(),
        )
        .map_err(|e| format!("{}: {e}", cursor_path(out).display()))?;
        // An erasure that emptied the folder meanwhile: its files are gone, so the cursor goes too
        // (the next round exports from the start of the renamed log).
        if ERASURE_EPOCH.load(Ordering::SeqCst) != epoch {
            let _ = std::fs::remove_file(cursor_path(out));
            for f in &rep.files {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    Ok(rep)
}

/// The tables the export writes under its folder (and the only folders it deletes from).
pub const TABLES: [&str; 3] = ["events", "decisions", "features"];

/// Export retention: deletes every `date=YYYY-MM-DD` partition (of the export's tables) whose whole
/// day is before `before` (milliseconds). The number deleted.
pub fn prune(out: &Path, before: i64) -> std::io::Result<usize> {
    let mut n = 0;
    for t in TABLES {
        let Ok(days) = std::fs::read_dir(out.join(t)) else {
            continue;
        };
        for d in days.flatten() {
            let name = d.file_name().to_string_lossy().to_string();
            let Some(day) = name.strip_prefix("date=") else {
                continue;
            };
            let Some(start) = argus_event::time::parse_datetime(&format!("{day}T00:00:00Z")) else {
                continue;
            };
            if start + 86_400_000 <= before {
                std::fs::remove_dir_all(d.path())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The continuous export: [`export_new`] every `every`, on a thread of its own, until the process
/// ends. Failures are logged and retried at the next run. With a `gate` (a cluster node), it runs
/// only while the gate is open: while this node holds the export's lease.
pub fn spawn_continuous(
    config: Config,
    data_dir: PathBuf,
    out: PathBuf,
    every: Duration,
    retention: Option<Duration>,
    gate: Option<Arc<AtomicBool>>,
) {
    let r = std::thread::Builder::new()
        .name("argus-export".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            if gate.as_ref().is_some_and(|g| !g.load(Ordering::SeqCst)) {
                continue;
            }
            if let Some(keep) = retention {
                let now = crate::core::now_ms();
                match prune(&out, now - keep.as_millis() as i64) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("export retention: {n} day partitions deleted"),
                    Err(e) => tracing::error!("export retention in {}: {e}", out.display()),
                }
            }
            match export_new(&config, &data_dir, &out) {
                Ok(r) if r.events > 0 => tracing::info!(
                    events = r.events,
                    decisions = r.decisions,
                    files = r.files.len(),
                    last_record = r.last_record,
                    "exported the log to {}",
                    out.display()
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("continuous export to {}: {e}", out.display()),
            }
        });
    if let Err(e) = r {
        tracing::error!("no continuous export: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retention_deletes_whole_days_before_the_cut_in_every_table() {
        let d = tempfile::tempdir().unwrap();
        for t in ["events", "decisions"] {
            for day in ["2026-11-01", "2026-11-02", "2026-11-03"] {
                let p = d
                    .path()
                    .join(t)
                    .join(format!("date={day}"))
                    .join("type=order.create");
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join("part-1.parquet"), b"x").unwrap();
            }
        }
        std::fs::write(d.path().join("_argus_export_cursor"), b"7").unwrap();
        // The cut is noon on the 3rd: the 1st and 2nd end before it, the 3rd does not.
        let cut = argus_event::time::parse_datetime("2026-11-03T12:00:00Z").unwrap();
        assert_eq!(super::prune(d.path(), cut).unwrap(), 4);
        assert!(!d.path().join("events/date=2026-11-02").exists());
        assert!(d.path().join("events/date=2026-11-03").exists());
        assert!(d.path().join("_argus_export_cursor").exists());
        assert_eq!(super::prune(d.path(), cut).unwrap(), 0);
    }
}
