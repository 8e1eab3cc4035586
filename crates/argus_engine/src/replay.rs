//! Replay: recorded events (NDJSON or mapped CSV) through the same [`Engine::process`] path as live traffic.

use crate::engine::{Engine, ProcessError, Processed, Source};
use crate::table::RowSink;
use argus_event::{Decoder, Event, Rejection, TypeId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Write};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

/// What a replay did with its input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayStats {
    pub records: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub too_late: u64,
    /// Rejected records by error code.
    pub rejected: BTreeMap<String, u64>,
    pub labels_released: u64,
    pub labels_pending: u64,
    /// Decisions, when the engine has policies.
    pub policy: Option<crate::report::PolicyReport>,
    /// Where the time went, per stage and thread ([`crate::engine::RunTimes`]).
    pub stages: crate::engine::RunTimes,
}

impl ReplayStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// What the replay did that changes answers without failing anything, each as a sentence that
    /// says what happened and what to change (printed at the end of `argus replay`): events too late,
    /// lifetime state dropped after `idle_ttl`, exact-window caps, observations before their bucket
    /// ring. Empty when none happened.
    pub fn warnings(&self, engine: &Engine) -> Vec<String> {
        let fs = engine.features();
        let st = engine.feature_state().stats();
        let mut w = Vec::new();
        if self.too_late > 0 {
            w.push(format!(
                "{} of {} records were too late (more than allowed_lateness = {} behind the newest event time) and were not applied. If the input is not in time order, replay it with --sort, or raise [settings] allowed_lateness.",
                self.too_late,
                self.records,
                duration_text(fs.allowed_lateness_ms)
            ));
        }
        if st.lifetime_dropped > 0 {
            w.push(format!(
                "{} lifetime states were dropped because their key had no event for idle_ttl = {}: for those keys first_seen, age, last_value and lifetime counts started again. If that is not what these features mean, raise [settings] idle_ttl, or set it to \"never\" (memory then grows with the keys).",
                st.lifetime_dropped,
                duration_text(fs.idle_ttl_ms)
            ));
        }
        if st.exact_cap_evictions > 0 {
            let cap = fs
                .series
                .iter()
                .filter_map(|s| match s.mode {
                    argus_features::config::SeriesMode::Exact { max_entries, .. } => {
                        Some(max_entries)
                    }
                    _ => None,
                })
                .min()
                .unwrap_or(0);
            w.push(format!(
                "{} observations were dropped by the max_entries cap of exact windows (the smallest cap is {cap} per key): counts, sums and distinct counts over those windows are too low for the busiest keys. Raise max_entries (per feature or in [settings]), or use mode = \"bucketed\" for them.",
                st.exact_cap_evictions
            ));
        }
        if st.bucket_too_old > 0 {
            w.push(format!(
                "{} late observations fell before their bucketed window's ring and were not counted; raise [settings] allowed_lateness (the ring covers it) or send events in time order.",
                st.bucket_too_old
            ));
        }
        w
    }
}

/// A duration as configuration writes it (`90d`, `12h`, `5m`, `30s`, `250ms`; `never`).
pub fn duration_text(ms: i64) -> String {
    use argus_event::time::{DAY, HOUR, MIN, SEC};
    match ms {
        i64::MAX => "never".into(),
        0 => "0s".into(),
        m if m % DAY == 0 => format!("{}d", m / DAY),
        m if m % HOUR == 0 => format!("{}h", m / HOUR),
        m if m % MIN == 0 => format!("{}m", m / MIN),
        m if m % SEC == 0 => format!("{}s", m / SEC),
        m => format!("{m}ms"),
    }
}

/// Errors that stop a replay (I/O); bad records never do.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Mapping(String),
}

struct Outputs<'a, 'b> {
    sinks: &'a mut [&'b mut dyn RowSink],
    rejects: Option<&'a mut (dyn Write + 'b)>,
}

/// Replays `input` through `engine`, writing one row per accepted event to every sink and one JSON line
/// per refused record to `rejects`. `progress` is called every 65,536 records. The events go through
/// [`Engine::run`]: the feature partitions on worker threads, everything else in input order here.
pub fn replay<'a, 'b, R: BufRead>(
    engine: &mut Engine,
    input: R,
    format: Format,
    sinks: &'a mut [&'b mut dyn RowSink],
    rejects: Option<&'a mut (dyn Write + 'b)>,
    progress: &mut dyn FnMut(&ReplayStats),
) -> Result<ReplayStats, ReplayError> {
    let opts = Options {
        name: "input".into(),
        sort: None,
    };
    replay_with(engine, input, format, &opts, sinks, rejects, progress)
}

/// How [`replay_with`] reads its input.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The input's name: a CSV mapping without an `id` column gives each row `<name>:<record number>`.
    pub name: String,
    /// Sort the input by time first, holding at most this many events in memory (more are sorted in
    /// runs on disk and merged): for input that is not in time order.
    pub sort: Option<usize>,
}

/// [`replay`] with [`Options`].
pub fn replay_with<'a, 'b, R: BufRead>(
    engine: &mut Engine,
    input: R,
    format: Format,
    opts: &Options,
    sinks: &'a mut [&'b mut dyn RowSink],
    rejects: Option<&'a mut (dyn Write + 'b)>,
    progress: &mut dyn FnMut(&ReplayStats),
) -> Result<ReplayStats, ReplayError> {
    let name = opts.name.as_str();
    let mut stats = ReplayStats::default();
    let released_before = engine.counters().labels_released;
    if engine.policies().is_some() {
        stats.policy = Some(crate::report::PolicyReport::default());
    }
    let records: Box<dyn Records + '_> = match format {
        Format::Ndjson => Box::new(NdjsonRecords {
            input,
            line: Vec::new(),
            n: 0,
        }),
        Format::Csv => Box::new(CsvRecords::new(engine, input, name)?),
    };
    let records: Box<dyn Records + '_> = match opts.sort {
        Some(limit) => Box::new(crate::sort::SortedRecords::new(records, limit)),
        None => records,
    };
    let amount_slots = (0..engine.schema().types.len())
        .map(|t| engine.schema().get(t as TypeId).slot("amount"))
        .collect();
    let mut src = ReplaySource {
        records,
        lines: Default::default(),
        undelivered: Vec::new(),
        stats: &mut stats,
        out: Outputs { sinks, rejects },
        progress,
        amount_slots,
    };
    let stages = engine.run(&mut src)?;
    for (line, errors) in std::mem::take(&mut src.undelivered) {
        src.reject(line, errors)?;
    }
    for s in src.out.sinks.iter_mut() {
        s.finish()?;
    }
    drop(src);
    stats.stages = stages;
    stats.labels_released = engine.counters().labels_released - released_before;
    if let Some(r) = stats.policy.as_mut() {
        r.finish();
    }
    stats.labels_pending = engine.pending_labels() as u64;
    Ok(stats)
}

/// A record's line (NDJSON) or record number (CSV), and the record decoded or refused.
pub(crate) type Numbered = (u64, Result<Event, Rejection>);

/// Input records, each decoded into an event or refused, with its line or record number.
pub(crate) trait Records {
    fn next(&mut self, dec: &Decoder) -> Result<Option<Numbered>, ReplayError>;
}

/// The replay's side of [`Engine::run`]: reads records, reports refusals, and hands each
/// [`Processed`](crate::engine::Processed) to the sinks and the policy report.
struct ReplaySource<'s, 'a, 'b> {
    records: Box<dyn Records + 's>,
    /// Per event handed to the engine and not yet answered, in order: its record number, and the
    /// records refused by the decoder just before it (written to `rejects` in record order).
    lines: std::collections::VecDeque<(u64, Vec<(u64, serde_json::Value)>)>,
    /// Decoder refusals since the last event handed over.
    undelivered: Vec<(u64, serde_json::Value)>,
    stats: &'s mut ReplayStats,
    out: Outputs<'a, 'b>,
    progress: &'s mut dyn FnMut(&ReplayStats),
    /// Per event type, its `amount` field (money in the policy report).
    amount_slots: Vec<Option<usize>>,
}

impl ReplaySource<'_, '_, '_> {
    /// The record number of the event the engine answers now, after writing the decoder's refusals
    /// that came before it.
    fn answered(&mut self) -> io::Result<u64> {
        let (line, before) = self.lines.pop_front().unwrap_or_default();
        for (l, errors) in before {
            self.reject(l, errors)?;
        }
        Ok(line)
    }

    fn reject(&mut self, line: u64, errors: serde_json::Value) -> io::Result<()> {
        if let Some(w) = self.out.rejects.as_deref_mut() {
            serde_json::to_writer(
                &mut *w,
                &serde_json::json!({"record": line, "errors": errors}),
            )?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

impl Source for ReplaySource<'_, '_, '_> {
    type Error = ReplayError;

    fn next(&mut self, dec: &Decoder) -> Result<Option<Event>, ReplayError> {
        loop {
            let Some((line, decoded)) = self.records.next(dec)? else {
                return Ok(None);
            };
            self.stats.records += 1;
            if self.stats.records.is_multiple_of(65_536) {
                (self.progress)(self.stats);
            }
            match decoded {
                Ok(ev) => {
                    let before = std::mem::take(&mut self.undelivered);
                    self.lines.push_back((line, before));
                    return Ok(Some(ev));
                }
                Err(r) => {
                    *self.stats.rejected.entry(r.code().to_string()).or_default() += 1;
                    let errors = serde_json::to_value(&r.errors).unwrap_or_default();
                    self.undelivered.push((line, errors));
                }
            }
        }
    }

    fn refused(&mut self, _ev: &Event, e: ProcessError) -> Result<(), ReplayError> {
        match e {
            ProcessError::Duplicate(_) => self.stats.duplicates += 1,
            ProcessError::TooLate { .. } => self.stats.too_late += 1,
        }
        let line = self.answered()?;
        let errors = serde_json::json!([{"path": "", "code": e.code(), "message": e.to_string()}]);
        Ok(self.reject(line, errors)?)
    }

    fn processed(&mut self, p: Processed<'_>) -> Result<(), ReplayError> {
        self.answered()?;
        let ev = p.event;
        // Ground truth for the report and training tables: the event's own label (the first
        // declared label column with a value); non-zero / true is positive.
        let label = p.labels.first().map(|l| l.value.as_f64().unwrap_or(0.0));
        let truth = label.map(|v| v != 0.0);
        if !p.findings.is_empty() {
            for s in self.out.sinks.iter_mut() {
                s.findings(&p.findings)?;
            }
        }
        self.stats.accepted += 1;
        for s in self.out.sinks.iter_mut() {
            s.write(&ev.id, ev.ty, ev.time, p.features)?;
            s.labelled(ev, label, p.features)?;
        }
        if let Some(d) = &p.decision {
            let amount = self.amount_slots[ev.ty as usize]
                .and_then(|s| ev.fields[s].as_f64())
                .unwrap_or(0.0);
            if let Some(r) = self.stats.policy.as_mut() {
                r.add(d, truth, amount);
            }
            for s in self.out.sinks.iter_mut() {
                s.decision(d)?;
            }
        }
        Ok(())
    }
}

struct NdjsonRecords<R> {
    input: R,
    line: Vec<u8>,
    n: u64,
}

impl<R: BufRead> Records for NdjsonRecords<R> {
    fn next(&mut self, dec: &Decoder) -> Result<Option<Numbered>, ReplayError> {
        loop {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            self.n += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.n, dec.decode_bytes(&self.line))));
        }
    }
}

/// A time in `format` (strptime directives) as epoch milliseconds; times without an offset or zone
/// in the value are in `zone`.
fn parse_formatted(text: &str, format: &str, zone: &jiff::tz::TimeZone) -> Result<i64, String> {
    let tm = jiff::fmt::strtime::parse(format, text.trim()).map_err(|e| e.to_string())?;
    // A zone name in the value (`%Q`) first, then an offset (`%z`), then the configured zone.
    if tm.iana_time_zone().is_some() {
        let z = tm.to_zoned_datetime().map_err(|e| e.to_string())?;
        return Ok(z.timestamp().as_millisecond());
    }
    let ts = match tm.to_timestamp() {
        Ok(ts) => ts,
        Err(_) => {
            let dt = tm.to_datetime().map_err(|e| e.to_string())?;
            dt.to_zoned_datetime(zone.clone())
                .map_err(|e| e.to_string())?
                .timestamp()
        }
    };
    Ok(ts.as_millisecond())
}

struct TypeMap {
    ty: TypeId,
    /// (slot, column index, column name)
    cols: Vec<(usize, usize, String)>,
}

struct CsvRecords<R> {
    rdr: csv::Reader<R>,
    headers: Vec<String>,
    rec: csv::ByteRecord,
    line: u64,
    /// The id column, or the name that ids are made from (`<name>:<record number>`).
    id_c: Option<usize>,
    name: String,
    /// `[csv] time_format` and the zone of times without an offset.
    time_format: Option<(String, jiff::tz::TimeZone)>,
    time_c: usize,
    type_c: Option<usize>,
    actor: (usize, String),
    field_cols: Vec<(String, usize, String)>,
    schema: std::sync::Arc<argus_event::Schema>,
    fixed: Option<TypeMap>,
    by_type: HashMap<String, Result<TypeMap, argus_event::FieldError>>,
    /// `[[csv.events]]`: per event of a row, its columns, time column and id suffix (`/<type>`).
    several: Vec<(TypeMap, usize, String)>,
    /// Events of the current row not handed out yet.
    pending: std::collections::VecDeque<Numbered>,
}

impl<R: BufRead> CsvRecords<R> {
    fn new(engine: &Engine, input: R, name: &str) -> Result<Self, ReplayError> {
        let Some(m) = engine.config.csv.clone() else {
            return Err(ReplayError::Mapping(
                "CSV input needs a [csv] column mapping in the configuration".into(),
            ));
        };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(m.delimiter as u8)
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let headers: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
        let col = |name: &str| -> Result<usize, ReplayError> {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                ReplayError::Mapping(format!(
                    "CSV has no column `{name}` (columns: {})",
                    headers.join(", ")
                ))
            })
        };
        let id_c = m.id.as_deref().map(col).transpose()?;
        let zone = match &m.time_zone {
            Some(z) => jiff::tz::TimeZone::get(z)
                .map_err(|e| ReplayError::Mapping(format!("csv.time_zone: `{z}`: {e}")))?,
            None => jiff::tz::TimeZone::UTC,
        };
        let time_c = match &m.time {
            Some(t) => col(t)?,
            None => usize::MAX,
        };
        let actor_c = col(&m.actor)?;
        let type_c = m.type_column.as_deref().map(col).transpose()?;
        let mut field_cols = Vec::new();
        for (f, c) in &m.fields {
            field_cols.push((f.clone(), col(c)?, c.clone()));
        }
        let mut r = CsvRecords {
            rdr,
            headers: headers.clone(),
            rec: csv::ByteRecord::new(),
            line: 1,
            id_c,
            name: name.to_string(),
            time_format: m.time_format.clone().map(|f| (f, zone)),
            time_c,
            type_c,
            actor: (actor_c, m.actor.clone()),
            field_cols,
            schema: engine.schema().clone(),
            fixed: None,
            by_type: HashMap::new(),
            several: Vec::new(),
            pending: Default::default(),
        };
        for e in &m.events {
            let ty = r.schema.type_id(&e.event_type).ok_or_else(|| {
                ReplayError::Mapping(format!("unknown event type `{}`", e.event_type))
            })?;
            let mut tm = r.build(ty);
            let et = r.schema.get(ty);
            for (f, c) in &e.fields {
                if let Some(slot) = et.slot(f) {
                    tm.cols.retain(|(s, _, _)| *s != slot);
                    tm.cols.push((slot, col(c)?, c.clone()));
                }
            }
            let tc = match &e.time {
                Some(t) => col(t)?,
                None => time_c,
            };
            r.several.push((tm, tc, format!("/{}", e.event_type)));
        }
        if let Some(t) = &m.event_type {
            let ty = r
                .schema
                .type_id(t)
                .ok_or_else(|| ReplayError::Mapping(format!("unknown event type `{t}`")))?;
            r.fixed = Some(r.build(ty));
        }
        Ok(r)
    }

    fn build(&self, ty: TypeId) -> TypeMap {
        let et = self.schema.get(ty);
        let mut cols = vec![(argus_event::ACTOR_SLOT, self.actor.0, self.actor.1.clone())];
        for (f, ci, cname) in &self.field_cols {
            if let Some(s) = et
                .slot(f)
                .filter(|&s| s != argus_event::ACTOR_SLOT && et.fields[s].derived_from.is_none())
            {
                cols.push((s, *ci, cname.clone()));
            }
        }
        TypeMap { ty, cols }
    }
}

impl<R: BufRead> Records for CsvRecords<R> {
    fn next(&mut self, dec: &Decoder) -> Result<Option<Numbered>, ReplayError> {
        if let Some(n) = self.pending.pop_front() {
            return Ok(Some(n));
        }
        if self.several.is_empty() {
            return self.next_single(dec);
        }
        // Several events per row: every one whose time cell is filled, in declaration order.
        while self.pending.is_empty() {
            if !self.rdr.read_byte_record(&mut self.rec)? {
                return Ok(None);
            }
            self.line += 1;
            for k in 0..self.several.len() {
                let (tm, tc, suffix) = &self.several[k];
                let filled = self.rec.get(*tc).is_some_and(|c| !c.is_empty());
                if filled {
                    let n = self.decode_row(dec, self.line, tm, *tc, suffix);
                    self.pending.push_back(n);
                }
            }
        }
        Ok(self.pending.pop_front())
    }
}

impl<R: BufRead> CsvRecords<R> {
    fn next_single(&mut self, dec: &Decoder) -> Result<Option<Numbered>, ReplayError> {
        if !self.rdr.read_byte_record(&mut self.rec)? {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if let (None, Some(tc)) = (&self.fixed, self.type_c) {
            let name = match self.rec.get(tc).map(std::str::from_utf8) {
                Some(Ok(s)) => s,
                _ => "",
            };
            if !self.by_type.contains_key(name) {
                let v = dec.type_for(name).map(|ty| self.build(ty));
                self.by_type.insert(name.to_string(), v);
            }
        }
        let rec = &self.rec;
        let get = |i: usize| rec.get(i).map(std::str::from_utf8);
        let tm: &TypeMap = match (&self.fixed, self.type_c) {
            (Some(f), _) => f,
            (None, Some(tc)) => {
                let name = match get(tc) {
                    Some(Ok(s)) => s,
                    _ => "",
                };
                match &self.by_type[name] {
                    Ok(tm) => tm,
                    Err(e) => {
                        let r = Rejection {
                            errors: vec![e.clone()],
                        };
                        return Ok(Some((line, Err(r))));
                    }
                }
            }
            (None, None) => {
                unreachable!("the configuration check requires `type` or `type_column`")
            }
        };
        Ok(Some(self.decode_row(dec, line, tm, self.time_c, "")))
    }

    /// One event of the current row: type map `tm`, time from column `time_c`, the row's id with
    /// `suffix` appended.
    fn decode_row(
        &self,
        dec: &Decoder,
        line: u64,
        tm: &TypeMap,
        time_c: usize,
        suffix: &str,
    ) -> Numbered {
        let rec = &self.rec;
        let get = |i: usize| rec.get(i).map(std::str::from_utf8);
        let mut bad = None;
        let mut vals: Vec<(usize, &str, &str)> = Vec::with_capacity(tm.cols.len());
        let headers = &self.headers;
        let text = |i: usize, bad: &mut Option<String>| match get(i) {
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                *bad = Some(headers[i].clone());
                ""
            }
            None => "",
        };
        let id: std::borrow::Cow<'_, str> = match self.id_c {
            Some(c) if suffix.is_empty() => text(c, &mut bad).into(),
            Some(c) => format!("{}{suffix}", text(c, &mut bad)).into(),
            None => format!("{}:{line}{suffix}", self.name).into(),
        };
        let id = id.as_ref();
        let time_text = text(time_c, &mut bad);
        let parsed;
        let time = match &self.time_format {
            Some((f, zone)) if !time_text.is_empty() => match parse_formatted(time_text, f, zone)
                .and_then(|ms| {
                    if (argus_event::time::MIN_TIME..=argus_event::time::MAX_TIME).contains(&ms) {
                        Ok(ms)
                    } else {
                        Err(format!(
                            "it reads as {}, outside 1970..9999 (two-digit years need %y, not %Y)",
                            jiff::Timestamp::from_millisecond(ms)
                                .map_or_else(|_| ms.to_string(), |t| t.to_string())
                        ))
                    }
                }) {
                Ok(ms) => {
                    parsed = ms.to_string();
                    parsed.as_str()
                }
                Err(e) => {
                    let r = Rejection {
                        errors: vec![argus_event::FieldError {
                            path: format!("/{}", headers[time_c]),
                            code: "invalid_time",
                            message: format!(
                                "`{}` does not match csv.time_format `{f}`: {e}",
                                argus_event::decode::quote_value(time_text)
                            ),
                        }],
                    };
                    return (line, Err(r));
                }
            },
            _ => time_text,
        };
        for (slot, ci, cname) in &tm.cols {
            vals.push((*slot, cname.as_str(), text(*ci, &mut bad)));
        }
        let decoded = match bad {
            Some(c) => Err(Rejection {
                errors: vec![argus_event::FieldError {
                    path: format!("/{c}"),
                    code: "invalid_utf8",
                    message: "column is not valid UTF-8".into(),
                }],
            }),
            None => dec.decode_text(tm.ty, id, time, &vals),
        };
        (line, decoded)
    }
}
