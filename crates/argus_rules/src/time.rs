//! Timestamps (RFC 3339) and durations (`1h30m`, `1.5s`, `-300ms`) in milliseconds, without a clock.

const DAY: i64 = 86_400_000;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in milliseconds.
pub const MIN_TIME: i64 = -62_135_596_800_000;
pub const MAX_TIME: i64 = 253_402_300_799_999;
/// The largest duration: what 64-bit nanoseconds hold (about ±292 years), as CEL implementations use.
pub const MAX_DURATION: u64 = 9_223_372_036_854;

/// (year, month 1–12, day 1–31) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from(y: i64, m: i64, d: i64) -> i64 {
    days_from_civil(y, m, d)
}

/// RFC 3339 in UTC, with milliseconds only when non-zero (`2009-02-13T23:31:30Z`).
pub fn format_rfc3339(ms: i64) -> String {
    let (y, mo, d) = civil_from_days(ms.div_euclid(DAY));
    let r = ms.rem_euclid(DAY);
    let frac = if r % 1000 == 0 {
        String::new()
    } else {
        format!(".{:03}", r % 1000)
    };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        r / 3_600_000,
        (r / 60_000) % 60,
        (r / 1000) % 60
    )
}

/// CEL's duration rendering: seconds with a fraction when needed (`1000000s`, `1.5s`).
pub fn format_duration(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", s.trim_end_matches('0'))
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)` → milliseconds since the epoch (years 0001–9999).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        s.get(r)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|x| x.parse().ok())
    };
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let _ = days_from;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || se > 60
        || y < 1
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b[i] == b'.' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st {
            return None;
        }
        for k in 0..3 {
            ms = ms * 10
                + b.get(st + k)
                    .filter(|c| c.is_ascii_digit() && st + k < i)
                    .map_or(0, |c| (c - b'0') as i64);
        }
    }
    let off = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sg @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (n(i + 1..i + 3)?, n(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3_600_000 + om * 60_000;
            if *sg == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let t = days_from_civil(y, mo, d) * DAY + h * 3_600_000 + mi * 60_000 + se.min(59) * 1000 + ms
        - off;
    (MIN_TIME..=MAX_TIME).contains(&t).then_some(t)
}

/// CEL duration strings: a sign, then one or more `<decimal><unit>` with units h, m, s, ms, us, ns.
/// Sub-millisecond parts are truncated (Argus's unit is the millisecond).
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (unit_ns, len) = if rest.starts_with("ms") {
            (1e6, 2)
        } else if rest.starts_with("us") {
            (1e3, 2)
        } else if rest.starts_with("ns") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3.6e12, 1)
        } else if rest.starts_with('m') {
            (6e10, 1)
        } else if rest.starts_with('s') {
            (1e9, 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        let part = num * unit_ns;
        // Beyond the range whatever follows: refuse before converting (no saturation, no overflow).
        if !part.is_finite() || part > MAX_DURATION as f64 * 1e6 {
            return None;
        }
        total_ns = total_ns.checked_add(part.round() as i128)?;
        if total_ns > MAX_DURATION as i128 * 1_000_000 {
            return None;
        }
    }
    // Durations are limited to what 64-bit nanoseconds hold (MAX_DURATION).
    if total_ns > MAX_DURATION as i128 * 1_000_000 {
        return None;
    }
    let ms = (total_ns / 1_000_000) as i64;
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_rfc3339("2018-04-01T02:00:31.5+02:00"),
            Some(1_522_540_831_500)
        );
        assert_eq!(parse_rfc3339("2018-04-01 00:00:31Z"), None);
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("1.5s"), Some(1500));
        assert_eq!(parse_duration("-300ms"), Some(-300));
        assert_eq!(parse_duration("1x"), None);
    }
}
