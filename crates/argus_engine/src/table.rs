//! Point-in-time feature tables: one row per accepted event, written as CSV or Parquet, plus summary
//! statistics per feature.

use argus_event::{Schema, TypeId, Value};
use argus_features::{FeatureSet, Out};
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde::Serialize;
use std::io::{self, Write};
use std::sync::Arc;

/// A consumer of feature rows (and, when the engine has policies, of decisions).
pub trait RowSink {
    fn write(&mut self, id: &str, ty: TypeId, time: i64, features: &[Value]) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
    /// The decision of the event whose row was just written.
    fn decision(&mut self, _d: &argus_policy::Decision) -> io::Result<()> {
        Ok(())
    }
    /// The accepted event itself, with the value of its own label column as it arrived (before the
    /// engine took it out for delayed release), and its features: for training tables.
    fn labelled(
        &mut self,
        _ev: &argus_event::Event,
        _label: Option<f64>,
        _features: &[Value],
    ) -> io::Result<()> {
        Ok(())
    }
    /// Findings of the graph detectors, as they are made (before the event that triggered them).
    fn findings(&mut self, _f: &[crate::graph::Finding]) -> io::Result<()> {
        Ok(())
    }
}

/// Findings as NDJSON, one line each (`argus replay --findings`).
pub struct FindingsLog<W: Write> {
    w: W,
    pub count: usize,
}

impl<W: Write> FindingsLog<W> {
    pub fn new(w: W) -> Self {
        FindingsLog { w, count: 0 }
    }
}

impl<W: Write> RowSink for FindingsLog<W> {
    fn write(&mut self, _id: &str, _ty: TypeId, _time: i64, _features: &[Value]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
    fn findings(&mut self, f: &[crate::graph::Finding]) -> io::Result<()> {
        for x in f {
            serde_json::to_writer(&mut self.w, x)?;
            self.w.write_all(b"\n")?;
        }
        self.count += f.len();
        Ok(())
    }
}

/// Decisions as NDJSON, one line per decided event.
pub struct DecisionLog<W: Write> {
    w: W,
}

impl<W: Write> DecisionLog<W> {
    pub fn new(w: W) -> Self {
        DecisionLog { w }
    }
}

impl<W: Write> RowSink for DecisionLog<W> {
    fn write(&mut self, _: &str, _: TypeId, _: i64, _: &[Value]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
    fn decision(&mut self, d: &argus_policy::Decision) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, d)?;
        self.w.write_all(b"\n")
    }
}

/// CSV: `event_id,event_time,event_type,<feature…>`; nulls are empty, booleans 1/0, decimals exact,
/// floats in shortest round-trip form.
pub struct CsvTable<W: Write> {
    w: io::BufWriter<W>,
    schema: Arc<Schema>,
    buf: String,
    line: Vec<u8>,
}

/// Appends one CSV field to `line` as the `csv` crate's default writer would (`,` between fields,
/// `\n` after a record; quoted, with `"` doubled, when it holds `,`, `"`, `\n` or `\r`). Written by hand
/// because the table's millions of fields went through the crate's general state machine at about
/// 100 instructions each (callgrind, BENCHMARKS.md); `csv_fields_match_the_csv_crate` checks the
/// bytes against the crate.
fn put_field(line: &mut Vec<u8>, field: &[u8], first: bool) {
    if !first {
        line.push(b',');
    }
    if field
        .iter()
        .any(|&b| b == b',' || b == b'"' || b == b'\n' || b == b'\r')
    {
        line.push(b'"');
        for &b in field {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(field);
    }
}

impl<W: Write> CsvTable<W> {
    pub fn new(inner: W, schema: Arc<Schema>, features: &FeatureSet) -> io::Result<Self> {
        let mut w = io::BufWriter::with_capacity(1 << 16, inner);
        let mut line = Vec::new();
        for (i, h) in ["event_id", "event_time", "event_type"]
            .into_iter()
            .chain(features.names())
            .enumerate()
        {
            put_field(&mut line, h.as_bytes(), i == 0);
        }
        line.push(b'\n');
        w.write_all(&line)?;
        line.clear();
        Ok(CsvTable {
            w,
            schema,
            buf: String::new(),
            line,
        })
    }

    pub fn into_inner(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// Appends `f` as Rust's `Display` writes it (the shortest digits that read back to `f`, never an
/// exponent), through Ryū, which finds the same digits several times faster; numbers Ryū writes with
/// an exponent (below 1e-5 or from 1e16 in magnitude) or with 16 digits or more go through `Display`
/// itself (the test below compares both on a million values).
fn render_f64(f: f64, buf: &mut String) {
    use std::fmt::Write as _;
    let mut b = ryu::Buffer::new();
    let s = if f.is_finite() {
        b.format_finite(f)
    } else {
        "e"
    };
    // Where 17 digits are needed, more than one string reads back to `f` and Ryū and `Display` may
    // pick different ones: those (and exponents) take the slow path.
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if s.contains('e') || digits >= 16 {
        let _ = write!(buf, "{f}");
    } else {
        buf.push_str(s.strip_suffix(".0").unwrap_or(s));
    }
}

/// Writes a value as CSV text into `buf`.
pub fn render(v: &Value, buf: &mut String) {
    buf.clear();
    match v {
        Value::Null => {}
        Value::Bool(b) => buf.push(if *b { '1' } else { '0' }),
        Value::Int(i) => buf.push_str(itoa::Buffer::new().format(*i)),
        Value::Dec(d) => argus_event::value::write_decimal(*d, buf),
        Value::Float(f) => render_f64(*f, buf),
        Value::Str(s) => buf.push_str(s),
        Value::Time(t) => argus_event::time::write_rfc3339(*t, buf),
    }
}

impl<W: Write> RowSink for CsvTable<W> {
    fn write(&mut self, id: &str, ty: TypeId, time: i64, features: &[Value]) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        put_field(line, id.as_bytes(), true);
        self.buf.clear();
        argus_event::time::write_rfc3339(time, &mut self.buf);
        put_field(line, self.buf.as_bytes(), false);
        put_field(line, self.schema.get(ty).name.as_bytes(), false);
        for v in features {
            render(v, &mut self.buf);
            put_field(line, self.buf.as_bytes(), false);
        }
        line.push(b'\n');
        self.w.write_all(line)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

enum Col {
    I64(Vec<i64>, Vec<i16>),
    F64(Vec<f64>, Vec<i16>),
    Bool(Vec<bool>, Vec<i16>),
    Bytes(Vec<ByteArray>, Vec<i16>),
}

/// Parquet (Snappy) with one typed column per feature (INT64, DOUBLE, BOOLEAN, UTF8, TIMESTAMP_MILLIS),
/// optional so that nulls stay nulls; row groups of `ROW_GROUP` rows.
pub struct ParquetTable<W: Write + Send> {
    writer: Option<SerializedFileWriter<W>>,
    schema: Arc<Schema>,
    outs: Vec<Out>,
    ids: Vec<ByteArray>,
    times: Vec<i64>,
    types: Vec<ByteArray>,
    cols: Vec<Col>,
}

pub const ROW_GROUP: usize = 65_536;

fn pq_err(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e.to_string())
}

impl<W: Write + Send> ParquetTable<W> {
    pub fn new(inner: W, schema: Arc<Schema>, features: &FeatureSet) -> io::Result<Self> {
        let mut msg = String::from(
            "message argus_features {\n  required binary event_id (UTF8);\n  required int64 event_time (TIMESTAMP(MILLIS,true));\n  required binary event_type (UTF8);\n",
        );
        let outs: Vec<Out> = features.features.iter().map(|f| f.out).collect();
        for (f, o) in features.features.iter().zip(&outs) {
            let t = match o {
                Out::Int => "int64",
                Out::Dec | Out::Float => "double",
                Out::Bool => "boolean",
                Out::Time => "int64",
                Out::Str => "binary",
            };
            let ann = match o {
                Out::Time => " (TIMESTAMP(MILLIS,true))",
                Out::Str => " (UTF8)",
                _ => "",
            };
            msg.push_str(&format!("  optional {t} {}{ann};\n", f.name));
        }
        msg.push('}');
        let pschema = Arc::new(parse_message_type(&msg).map_err(pq_err)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        );
        let writer = SerializedFileWriter::new(inner, pschema, props).map_err(pq_err)?;
        let cols = outs
            .iter()
            .map(|o| match o {
                Out::Int | Out::Time => Col::I64(vec![], vec![]),
                Out::Dec | Out::Float => Col::F64(vec![], vec![]),
                Out::Bool => Col::Bool(vec![], vec![]),
                Out::Str => Col::Bytes(vec![], vec![]),
            })
            .collect();
        Ok(ParquetTable {
            writer: Some(writer),
            schema,
            outs,
            ids: vec![],
            times: vec![],
            types: vec![],
            cols,
        })
    }

    fn flush_group(&mut self) -> io::Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut rg = w.next_row_group().map_err(pq_err)?;
        let mut idx = 0usize;
        while let Some(mut c) = rg.next_column().map_err(pq_err)? {
            match idx {
                0 => {
                    c.typed::<ByteArrayType>()
                        .write_batch(&self.ids, None, None)
                        .map_err(pq_err)?;
                }
                1 => {
                    c.typed::<Int64Type>()
                        .write_batch(&self.times, None, None)
                        .map_err(pq_err)?;
                }
                2 => {
                    c.typed::<ByteArrayType>()
                        .write_batch(&self.types, None, None)
                        .map_err(pq_err)?;
                }
                i => match &self.cols[i - 3] {
                    Col::I64(v, d) => {
                        c.typed::<Int64Type>()
                            .write_batch(v, Some(d), None)
                            .map_err(pq_err)?;
                    }
                    Col::F64(v, d) => {
                        c.typed::<DoubleType>()
                            .write_batch(v, Some(d), None)
                            .map_err(pq_err)?;
                    }
                    Col::Bool(v, d) => {
                        c.typed::<BoolType>()
                            .write_batch(v, Some(d), None)
                            .map_err(pq_err)?;
                    }
                    Col::Bytes(v, d) => {
                        c.typed::<ByteArrayType>()
                            .write_batch(v, Some(d), None)
                            .map_err(pq_err)?;
                    }
                },
            }
            c.close().map_err(pq_err)?;
            idx += 1;
        }
        rg.close().map_err(pq_err)?;
        self.ids.clear();
        self.times.clear();
        self.types.clear();
        for c in &mut self.cols {
            match c {
                Col::I64(v, d) => (v.clear(), d.clear()),
                Col::F64(v, d) => (v.clear(), d.clear()),
                Col::Bool(v, d) => (v.clear(), d.clear()),
                Col::Bytes(v, d) => (v.clear(), d.clear()),
            };
        }
        Ok(())
    }
}

impl<W: Write + Send> RowSink for ParquetTable<W> {
    fn write(&mut self, id: &str, ty: TypeId, time: i64, features: &[Value]) -> io::Result<()> {
        self.ids.push(ByteArray::from(id));
        self.times.push(time);
        self.types
            .push(ByteArray::from(self.schema.get(ty).name.as_str()));
        for ((c, v), o) in self.cols.iter_mut().zip(features).zip(&self.outs) {
            match c {
                Col::I64(vals, d) => match v {
                    Value::Int(i) | Value::Time(i) => {
                        vals.push(*i);
                        d.push(1)
                    }
                    Value::Bool(b) => {
                        vals.push(*b as i64);
                        d.push(1)
                    }
                    _ => d.push(0),
                },
                Col::F64(vals, d) => match v.as_f64() {
                    Some(x) if !v.is_null() => {
                        vals.push(x);
                        d.push(1)
                    }
                    _ => d.push(0),
                },
                Col::Bool(vals, d) => match v {
                    Value::Bool(b) => {
                        vals.push(*b);
                        d.push(1)
                    }
                    _ => d.push(0),
                },
                Col::Bytes(vals, d) => match v {
                    Value::Null => d.push(0),
                    other => {
                        let mut s = String::new();
                        render(other, &mut s);
                        vals.push(ByteArray::from(s.as_str()));
                        d.push(1)
                    }
                },
            }
            let _ = o;
        }
        if self.ids.len() >= ROW_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush_group()?;
        if let Some(w) = self.writer.take() {
            w.close().map_err(pq_err)?;
        }
        Ok(())
    }
}

/// Summary statistics of one feature over a replay.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FeatureSummary {
    pub name: String,
    pub non_null: u64,
    pub nulls: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    #[serde(skip)]
    sum: f64,
}

/// Collects [`FeatureSummary`]s.
pub struct SummarySink {
    pub features: Vec<FeatureSummary>,
}

impl SummarySink {
    pub fn new(fs: &FeatureSet) -> Self {
        SummarySink {
            features: fs
                .features
                .iter()
                .map(|f| FeatureSummary {
                    name: f.name.clone(),
                    ..Default::default()
                })
                .collect(),
        }
    }
}

impl RowSink for SummarySink {
    fn write(&mut self, _id: &str, _ty: TypeId, _time: i64, features: &[Value]) -> io::Result<()> {
        for (s, v) in self.features.iter_mut().zip(features) {
            if v.is_null() {
                s.nulls += 1;
                continue;
            }
            s.non_null += 1;
            if let Some(x) = v.as_f64() {
                s.sum += x;
                s.min = Some(s.min.map_or(x, |m| m.min(x)));
                s.max = Some(s.max.map_or(x, |m| m.max(x)));
            }
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        for s in &mut self.features {
            if s.non_null > 0 && s.min.is_some() {
                s.mean = Some(s.sum / s.non_null as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn csv_fields_match_the_csv_crate() {
        let fields: &[&str] = &[
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "line\nbreak",
            "cr\ronly",
            "\"",
            ",",
            " spaced ",
            "é,ü",
            "#hash",
            "tab\there",
            "\"\"",
            "end\n",
        ];
        for a in fields {
            for b in fields {
                let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
                w.write_record([*a, *b, "x"]).unwrap();
                let want = w.into_inner().unwrap();
                let mut line = Vec::new();
                put_field(&mut line, a.as_bytes(), true);
                put_field(&mut line, b.as_bytes(), false);
                put_field(&mut line, b"x", false);
                line.push(b'\n');
                assert_eq!(
                    String::from_utf8_lossy(&line),
                    String::from_utf8_lossy(&want),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    use super::*;

    /// The fast float rendering writes exactly what `Display` writes, over every exponent range.
    #[test]
    fn floats_render_as_display_writes_them() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = String::new();
        let mut check = |f: f64| {
            buf.clear();
            render(&Value::Float(f), &mut buf);
            assert_eq!(buf, format!("{f}"), "{f:e}");
        };
        for f in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e15,
            1e16,
            1e-5,
            1e-6,
            123456.789,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            check(f);
        }
        for _ in 0..350_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                check(f);
            }
            // Values of the size features have: amounts, averages, ratios.
            check((x % 10_000_000) as f64 / 1000.0);
            check((x % 1000) as f64 / ((x >> 32) % 997 + 1) as f64);
        }
    }
}
