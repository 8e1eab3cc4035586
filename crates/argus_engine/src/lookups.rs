//! `[[lookups]]`: lookup tables read from CSV or Parquet files when the configuration loads (and on
//! every reload), and the fields they add to the schema (see [`argus_event::lookup`]).

use argus_event::lookup::{LookupCell, Lookups, Match, Table};
use argus_event::schema::LookupFields;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One `[[lookups]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    pub name: String,
    /// CSV (with a header row; `.csv` or `.csv.gz`) or Parquet (`.parquet`), relative to the
    /// configuration file that declares it.
    pub file: String,
    /// `exact` (default), `ip_range` or `int_range`.
    #[serde(rename = "match", default = "exact")]
    pub matching: String,
    /// The key column (`exact`).
    pub key: Option<String>,
    /// The first and last value of each row's range, inclusive (`ip_range`, `int_range`).
    pub range: Option<[String; 2]>,
    /// The event field looked up, on every event type that has it (a derived attribute such as
    /// `card_bin` or `ip` itself, looked up before it is pseudonymized).
    pub input: String,
    /// New event field → the table column it takes its value from.
    pub fields: BTreeMap<String, String>,
}

fn exact() -> String {
    "exact".into()
}

/// Reads every declared table; returns the fields to add to the schema and the tables, or every
/// problem.
pub fn load(
    decls: &[(LookupConfig, std::path::PathBuf)],
) -> (Vec<LookupFields>, Lookups, Vec<String>) {
    let mut errors = Vec::new();
    let mut fields = Vec::new();
    let mut tables = Lookups::default();
    for (i, (c, base)) in decls.iter().enumerate() {
        let at = format!("lookups.{}", c.name);
        if decls[..i].iter().any(|(o, _)| o.name == c.name) {
            errors.push(format!("{at}: declared twice"));
            continue;
        }
        // A table that fails still declares its fields (with an empty table), so that features and
        // rules naming them do not add errors of their own to the one that matters.
        let table = load_one(c, base).unwrap_or_else(|e| {
            errors.push(format!("{at}: {e}"));
            let columns = value_columns(c);
            Table::empty(&c.name, Match::Exact, columns)
        });
        let columns = table.columns.clone();
        fields.push(LookupFields {
            table: tables.tables.len() as u16,
            name: c.name.clone(),
            input: c.input.clone(),
            fields: c
                .fields
                .iter()
                .map(|(f, col)| {
                    let k = columns.iter().position(|x| x == col).unwrap_or(0);
                    (f.clone(), k as u16)
                })
                .collect(),
            columns,
        });
        tables.tables.push(table);
    }
    (fields, tables, errors)
}

fn load_one(c: &LookupConfig, base: &Path) -> Result<Table, String> {
    let matching = Match::parse(&c.matching).ok_or_else(|| {
        format!(
            "match: `{}` is not `exact`, `ip_range` or `int_range`",
            c.matching
        )
    })?;
    let key: Vec<String> = match (matching, &c.key, &c.range) {
        (Match::Exact, Some(k), None) => vec![k.clone()],
        (Match::Exact, _, _) => {
            return Err("an `exact` lookup names its `key` column (and no `range`)".into())
        }
        (_, None, Some(r)) => r.to_vec(),
        (_, _, _) => {
            return Err(format!(
                "a `{}` lookup names its `range = [\"from\", \"to\"]` columns (and no `key`)",
                c.matching
            ))
        }
    };
    if c.fields.is_empty() {
        return Err("fields: name at least one `new_field = \"column\"`".into());
    }
    for f in c.fields.keys() {
        if f.is_empty()
            || !f
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Err(format!(
                "fields: `{f}` is not a field name (lower-case letters, digits, `_`)"
            ));
        }
    }
    let columns = value_columns(c);
    let path = base.join(&c.file);
    let (header, rows) = read_rows(&path).map_err(|e| format!("file: {}: {e}", path.display()))?;
    let pos = |name: &String| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{} has no column `{name}` (its columns: {})",
                path.display(),
                header.join(", ")
            )
        })
    };
    let key_at = key.iter().map(pos).collect::<Result<Vec<_>, _>>()?;
    let col_at = columns.iter().map(pos).collect::<Result<Vec<_>, _>>()?;
    let rows = rows.into_iter().map(|r| {
        let get = |i: &usize| r.get(*i).cloned().unwrap_or_default();
        (
            key_at.iter().map(get).collect(),
            col_at.iter().map(get).collect(),
        )
    });
    Table::build(&c.name, matching, columns, rows)
}

/// The table columns `fields` names, each once, in order of first mention.
fn value_columns(c: &LookupConfig) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for col in c.fields.values() {
        if !columns.contains(col) {
            columns.push(col.clone());
        }
    }
    columns
}

/// The header and the rows of a CSV or Parquet file, every value as text.
fn read_rows(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let name = path.to_string_lossy();
    if name.ends_with(".parquet") {
        return read_parquet(path);
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader: Box<dyn std::io::Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

fn read_parquet(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).map_err(|e| e.to_string())? {
        let row = row.map_err(|e| e.to_string())?;
        rows.push(
            row.get_column_iter()
                .map(|(_, f)| match f {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    Ok((header, rows))
}

/// The cell a configuration's decoders read their tables from.
pub fn cell(l: Lookups) -> LookupCell {
    LookupCell::new(l)
}
