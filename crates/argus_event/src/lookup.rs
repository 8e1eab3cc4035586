//! Lookup tables: a key, or a number or IP address within a range, to a row of values (IP ranges →
//! country, card BIN → issuing country, merchant → category). A table is declared in `[[lookups]]`
//! (`argus_engine::config` reads its CSV or Parquet file); each of its `fields` becomes a derived
//! field of every event type that has the table's `input` field, filled at ingest like `email_domain`
//! (for a personal-data input such as `ip`, from the value before it is pseudonymized). Features,
//! rules and the graph read these fields like any other; the log keeps them as decoded, so recovery
//! and replay of the log do not depend on later versions of the table.
//!
//! The tables' contents live in a [`LookupCell`] shared by every clone of a decoder, so that a reload
//! swaps them for all at once (the declaration, and so the schema, must stay the same).

use crate::value::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// How a table matches its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The input's text equals the key column's.
    Exact,
    /// The input is an IPv4 or IPv6 address within `[from, to]` (inclusive; IPv4 as IPv4-mapped).
    IpRange,
    /// The input is an integer within `[from, to]` (inclusive).
    IntRange,
}

impl Match {
    pub fn parse(s: &str) -> Option<Match> {
        match s {
            "exact" => Some(Match::Exact),
            "ip_range" => Some(Match::IpRange),
            "int_range" => Some(Match::IntRange),
            _ => None,
        }
    }
}

/// One loaded table.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// The value columns, in the order rows hold them.
    pub columns: Vec<String>,
    pub matching: Match,
    exact: HashMap<Box<str>, u32>,
    /// (from, to, row), sorted by `from`, not overlapping.
    ranges: Vec<(u128, u128, u32)>,
    rows: Vec<Box<[Value]>>,
}

/// A range bound or input as a number on one line: IPv4 addresses as IPv4-mapped IPv6, integers
/// offset so that their order is kept.
fn ordinal(m: Match, s: &str) -> Option<u128> {
    let s = s.trim();
    match m {
        Match::Exact => None,
        Match::IpRange => match s.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some(u128::from(a.to_ipv6_mapped())),
            IpAddr::V6(a) => Some(u128::from(a)),
        },
        Match::IntRange => s
            .parse::<i64>()
            .ok()
            .map(|v| (v as i128 - i64::MIN as i128) as u128),
    }
}

impl Table {
    /// Builds a table from its rows: per row, the key (one column for `Exact`, `from` and `to` for
    /// ranges) and the value columns' texts. Refuses, quoting the row (1-based, after the header), a
    /// key given twice, an unparsable bound, a range whose end is before its start, and ranges that
    /// overlap (an input would match two rows).
    /// A table with no rows (every lookup misses): what a table that failed to load declares, so
    /// that its fields exist.
    pub fn empty(name: &str, matching: Match, columns: Vec<String>) -> Table {
        Table {
            name: name.to_string(),
            columns,
            matching,
            exact: HashMap::new(),
            ranges: Vec::new(),
            rows: Vec::new(),
        }
    }

    pub fn build(
        name: &str,
        matching: Match,
        columns: Vec<String>,
        rows: impl IntoIterator<Item = (Vec<String>, Vec<String>)>,
    ) -> Result<Table, String> {
        let mut t = Table::empty(name, matching, columns);
        for (n, (key, values)) in rows.into_iter().enumerate() {
            let row = t.rows.len() as u32;
            let at = || format!("lookup `{name}`, row {}", n + 1);
            match matching {
                Match::Exact => {
                    let k = key.first().map(|s| s.trim()).unwrap_or_default();
                    if k.is_empty() {
                        return Err(format!("{}: the key is empty", at()));
                    }
                    if t.exact.insert(k.into(), row).is_some() {
                        return Err(format!(
                            "{}: the key `{k}` is given twice (a key has one row)",
                            at()
                        ));
                    }
                }
                Match::IpRange | Match::IntRange => {
                    let what = if matching == Match::IpRange {
                        "an IP address"
                    } else {
                        "an integer"
                    };
                    let bound = |i: usize| {
                        let s = key.get(i).map(String::as_str).unwrap_or_default();
                        ordinal(matching, s).ok_or_else(|| format!("{}: `{s}` is not {what}", at()))
                    };
                    let (from, to) = (bound(0)?, bound(1)?);
                    if to < from {
                        return Err(format!(
                            "{}: the range ends ({}) before it starts ({})",
                            at(),
                            key[1].trim(),
                            key[0].trim()
                        ));
                    }
                    t.ranges.push((from, to, row));
                }
            }
            t.rows.push(
                values
                    .into_iter()
                    .map(|v| {
                        let v = v.trim();
                        if v.is_empty() {
                            Value::Null
                        } else {
                            Value::Str(v.into())
                        }
                    })
                    .collect(),
            );
        }
        t.ranges.sort_unstable();
        for w in t.ranges.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(format!(
                    "lookup `{name}`: rows {} and {} overlap (an input would match both)",
                    w[0].2 + 1,
                    w[1].2 + 1
                ));
            }
        }
        Ok(t)
    }

    /// The row `input` matches, if any.
    pub fn find(&self, input: &str) -> Option<&[Value]> {
        let row = match self.matching {
            Match::Exact => *self.exact.get(input.trim())?,
            m => {
                let x = ordinal(m, input)?;
                let i = self.ranges.partition_point(|r| r.0 <= x);
                let (_, to, row) = *self.ranges.get(i.checked_sub(1)?)?;
                if x > to {
                    return None;
                }
                row
            }
        };
        self.rows.get(row as usize).map(|r| &r[..])
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Every table, by the index `Derivation::Lookup` names.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    pub tables: Vec<Table>,
}

/// The current tables, shared by every clone of a decoder and swapped whole by a reload.
#[derive(Debug, Clone, Default)]
pub struct LookupCell(Arc<RwLock<Arc<Lookups>>>);

impl LookupCell {
    pub fn new(l: Lookups) -> LookupCell {
        LookupCell(Arc::new(RwLock::new(Arc::new(l))))
    }

    /// The tables as of now.
    pub fn current(&self) -> Arc<Lookups> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the tables for every decoder sharing this cell.
    pub fn replace(&self, l: Lookups) {
        match self.0.write() {
            Ok(mut g) => *g = Arc::new(l),
            Err(p) => *p.into_inner() = Arc::new(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&[&str], &str)]) -> Vec<(Vec<String>, Vec<String>)> {
        v.iter()
            .map(|(k, val)| {
                (
                    k.iter().map(|s| s.to_string()).collect(),
                    vec![val.to_string()],
                )
            })
            .collect()
    }

    #[test]
    fn exact_and_ranges_match_and_bad_tables_are_refused() {
        let t = Table::build(
            "bins",
            Match::Exact,
            vec!["country".into()],
            rows(&[(&["411111"], "US"), (&["535522"], "SG")]),
        )
        .unwrap();
        assert_eq!(t.find("535522"), Some(&[Value::Str("SG".into())][..]));
        assert_eq!(t.find("999999"), None);
        let ip = Table::build(
            "geo",
            Match::IpRange,
            vec!["country".into()],
            rows(&[
                (&["81.2.69.0", "81.2.69.255"], "GB"),
                (&["1.0.0.0", "1.0.0.255"], "AU"),
                (&["2001:db8::", "2001:db8::ffff"], "ZZ"),
            ]),
        )
        .unwrap();
        assert_eq!(ip.find("81.2.69.10"), Some(&[Value::Str("GB".into())][..]));
        assert_eq!(ip.find("81.2.70.0"), None);
        assert_eq!(ip.find("1.0.0.0"), Some(&[Value::Str("AU".into())][..]));
        assert_eq!(ip.find("2001:db8::1"), Some(&[Value::Str("ZZ".into())][..]));
        assert_eq!(ip.find("0.0.0.1"), None);
        assert_eq!(ip.find("not an ip"), None);
        let ints = Table::build(
            "amounts",
            Match::IntRange,
            vec!["band".into()],
            rows(&[(&["-10", "0"], "neg"), (&["1", "100"], "small")]),
        )
        .unwrap();
        assert_eq!(ints.find("-3"), Some(&[Value::Str("neg".into())][..]));
        assert_eq!(ints.find("100"), Some(&[Value::Str("small".into())][..]));
        assert_eq!(ints.find("101"), None);
        for (m, r, want) in [
            (
                Match::Exact,
                rows(&[(&["a"], "1"), (&["a"], "2")]),
                "given twice",
            ),
            (
                Match::IpRange,
                rows(&[
                    (&["1.0.0.0", "1.0.0.9"], "x"),
                    (&["1.0.0.5", "1.0.1.0"], "y"),
                ]),
                "overlap",
            ),
            (
                Match::IpRange,
                rows(&[(&["1.0.0.9", "1.0.0.0"], "x")]),
                "before it starts",
            ),
            (
                Match::IntRange,
                rows(&[(&["x", "3"], "x")]),
                "`x` is not an integer",
            ),
        ] {
            let e = Table::build("t", m, vec!["v".into()], r).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
