//! Typed values carried by events and produced by features.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Fixed-point scale of [`Value::Dec`]: six decimal places ("micro-units").
pub const DEC_SCALE: i64 = 1_000_000;

/// One typed value. Decimals (money) are fixed-point integers in micro-units, never floats,
/// so sums are exact and independent of the order in which events arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    /// Decimal in micro-units (value × 10⁶).
    Dec(i64),
    Float(f64),
    Str(std::sync::Arc<str>),
    /// Milliseconds since the Unix epoch, UTC.
    Time(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as fixed-point micro-units, for numeric aggregation. `None` for non-numeric values.
    pub fn as_micros(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(i.saturating_mul(DEC_SCALE)),
            Value::Dec(d) => Some(*d),
            Value::Float(f) if f.is_finite() => Some((f * DEC_SCALE as f64).round() as i64),
            Value::Bool(b) => Some(if *b { DEC_SCALE } else { 0 }),
            Value::Time(t) => Some(t.saturating_mul(DEC_SCALE)),
            _ => None,
        }
    }

    /// Numeric value as f64 (decimals converted from micro-units).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Dec(d) => Some(*d as f64 / DEC_SCALE as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Time(t) => Some(*t as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Feeds a canonical, type-tagged byte encoding of the value to `out` (used for key hashing).
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Dec(d) => {
                out.push(3);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(4);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(5);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Time(t) => {
                out.push(6);
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
    }

    /// 64-bit digest of the value (distinct counting).
    pub fn digest64(&self) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed as h;
        match self {
            Value::Null => h(&[], 0),
            Value::Bool(b) => h(&[*b as u8], 1),
            Value::Int(i) => h(&i.to_le_bytes(), 2),
            Value::Dec(d) => h(&d.to_le_bytes(), 3),
            Value::Float(f) => h(&f.to_bits().to_le_bytes(), 4),
            Value::Str(s) => h(s.as_bytes(), 5),
            Value::Time(t) => h(&t.to_le_bytes(), 6),
        }
    }

    /// JSON rendering (decimals as numbers with up to six decimals, times as RFC 3339).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Dec(d) => serde_json::Number::from_f64(*d as f64 / DEC_SCALE as f64)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Time(t) => serde_json::Value::String(crate::time::format_rfc3339(*t)),
        }
    }
}

/// Formats a decimal in micro-units exactly, without trailing zeros (`57160000` → `57.16`).
pub fn format_decimal(micros: i64) -> String {
    let mut s = String::with_capacity(24);
    write_decimal(micros, &mut s);
    s
}

/// Appends [`format_decimal`]'s text to `out` (no allocation of its own: feature tables write one
/// per decimal value).
pub fn write_decimal(micros: i64, out: &mut String) {
    let abs = micros.unsigned_abs();
    let int = abs / DEC_SCALE as u64;
    let frac = abs % DEC_SCALE as u64;
    if micros < 0 {
        out.push('-');
    }
    out.push_str(itoa::Buffer::new().format(int));
    if frac != 0 {
        // Six digits with leading zeros, trailing zeros dropped.
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.push('.');
        out.extend(digits[..len].iter().map(|&d| d as char));
    }
}

/// Parses a decimal string into micro-units: exact up to six fractional digits; more digits are rounded
/// half away from zero at the sixth (`85.64999999999999` → `85.65`, a common float artefact in exports);
/// exponent notation goes through f64 and is rounded the same way.
pub fn parse_decimal(s: &str) -> Option<i64> {
    parse_decimal_plain(s).or_else(|| {
        let t = s.trim();
        if !t.bytes().any(|b| b == b'e' || b == b'E') {
            return None;
        }
        let f: f64 = t.parse().ok()?;
        let m = (f * DEC_SCALE as f64).round();
        (m.is_finite() && m.abs() < 9.0e18).then_some(m as i64)
    })
}

fn parse_decimal_plain(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (kept, rest) = frac_part.split_at(frac_part.len().min(6));
    let round_up = rest.as_bytes().first().is_some_and(|&d| d >= b'5');
    let int: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut frac: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    for _ in kept.len()..6 {
        frac *= 10;
    }
    let v = int
        .checked_mul(DEC_SCALE)?
        .checked_add(frac)?
        .checked_add(round_up as i64)?;
    Some(if neg { -v } else { v })
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{}", *b as u8),
            Value::Int(i) => write!(f, "{i}"),
            Value::Dec(d) => f.write_str(&format_decimal(*d)),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Time(t) => f.write_str(&crate::time::format_rfc3339(*t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_exactly() {
        for (s, m) in [
            ("57.16", 57_160_000),
            ("-0.5", -500_000),
            ("10", 10_000_000),
            (".25", 250_000),
            ("0.000001", 1),
        ] {
            assert_eq!(parse_decimal(s), Some(m), "{s}");
        }
        assert_eq!(format_decimal(57_160_000), "57.16");
        assert_eq!(format_decimal(-500_000), "-0.5");
        // The text of the first implementation (through `format!`), for the edges and a spread.
        let reference = |m: i64| {
            let abs = m.unsigned_abs();
            let (int, frac) = (abs / DEC_SCALE as u64, abs % DEC_SCALE as u64);
            let mut s = if m < 0 {
                format!("-{int}")
            } else {
                int.to_string()
            };
            if frac != 0 {
                s.push('.');
                s.push_str(format!("{frac:06}").trim_end_matches('0'));
            }
            s
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for m in [
            0,
            1,
            -1,
            10,
            999_999,
            1_000_000,
            -1_000_001,
            i64::MIN,
            i64::MAX,
            100_000,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as i64) >> (x % 60)
        })) {
            assert_eq!(format_decimal(m), reference(m), "{m}");
        }
        assert_eq!(parse_decimal("85.64999999999999"), Some(85_650_000));
        assert_eq!(parse_decimal("-0.0000005"), Some(-1));
        assert_eq!(parse_decimal("1.0000001"), Some(1_000_000));
        assert_eq!(parse_decimal("1.5e3"), Some(1_500_000_000));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("."), None);
        assert_eq!(parse_decimal("99999999999999999999"), None);
    }
}
