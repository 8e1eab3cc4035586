//! Event time: parsing, formatting and calendar arithmetic in UTC, without a clock.
//!
//! Argus's core never reads the wall clock: all time is event time, milliseconds since the Unix epoch.

/// Milliseconds in one second/minute/hour/day.
pub const SEC: i64 = 1_000;
pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

/// Earliest and latest event times accepted (1970-01-01 .. 9999-12-31).
pub const MIN_TIME: i64 = 0;
pub const MAX_TIME: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day of week, 0 = Monday … 6 = Sunday, of a UTC time shifted by `offset_ms`.
pub fn weekday(ms: i64, offset_ms: i64) -> u32 {
    let days = (ms + offset_ms).div_euclid(DAY);
    // 1970-01-01 was a Thursday (3).
    ((days + 3).rem_euclid(7)) as u32
}

/// Hour of day 0..=23 of a UTC time shifted by `offset_ms`.
pub fn hour_of_day(ms: i64, offset_ms: i64) -> u32 {
    ((ms + offset_ms).rem_euclid(DAY) / HOUR) as u32
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        v = v.checked_mul(10)?.checked_add((c - b'0') as u32)?;
    }
    Some(v)
}

/// Parses `YYYY-MM-DD[T| ]hh:mm:ss[.fraction][Z|±hh:mm]` (RFC 3339, or a naive time taken as UTC)
/// and a bare date `YYYY-MM-DD` (midnight UTC). Returns milliseconds since the epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = num(&b[0..4])? as i64;
    let mo = num(&b[5..7])?;
    let d = num(&b[8..10])?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * DAY;
    if b.len() == 10 {
        return in_range(ms);
    }
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b.len() < 19
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let h = num(&b[11..13])?;
    let mi = num(&b[14..16])?;
    let sec = num(&b[17..19])?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += h as i64 * HOUR + mi as i64 * MIN + sec.min(59) as i64 * SEC;
    let mut i = 19;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut milli = 0i64;
        for k in 0..3 {
            milli = milli * 10 + frac.get(k).map_or(0, |c| (c - b'0') as i64);
        }
        ms += milli;
    }
    let rest = &b[i..];
    match rest {
        [] | [b'Z'] | [b'z'] => {}
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let oh = num(&[*hh1, *hh2])? as i64;
            let om = num(&[*mm1, *mm2])? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * HOUR + om * MIN;
            ms += if *sign == b'+' { -off } else { off };
        }
        _ => return None,
    }
    in_range(ms)
}

fn in_range(ms: i64) -> Option<i64> {
    (MIN_TIME..=MAX_TIME).contains(&ms).then_some(ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2018-04-01T00:00:31.000Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339(ms, &mut s);
    s
}

/// Appends [`format_rfc3339`]'s text to `out` without allocating (the feature tables' hot path).
pub fn write_rfc3339(ms: i64, out: &mut String) {
    let days = ms.div_euclid(DAY);
    let rem = ms.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        out.push_str(&format_rfc3339_slow(ms));
        return;
    }
    let mut b = [0u8; 24];
    let mut put = |at: usize, v: i64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m as i64, 2);
    put(8, d as i64, 2);
    put(11, rem / HOUR, 2);
    put(14, (rem % HOUR) / MIN, 2);
    put(17, (rem % MIN) / SEC, 2);
    put(20, rem % SEC, 3);
    b[4] = b'-';
    b[7] = b'-';
    b[10] = b'T';
    b[13] = b':';
    b[16] = b':';
    b[19] = b'.';
    b[23] = b'Z';
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

fn format_rfc3339_slow(ms: i64) -> String {
    let days = ms.div_euclid(DAY);
    let rem = ms.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / HOUR,
        (rem % HOUR) / MIN,
        (rem % MIN) / SEC,
        rem % SEC
    )
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s`, `250ms`, `2w` or a sum like `1d12h`.
/// Returns milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "ms" => 1,
            "s" => SEC,
            "m" => MIN,
            "h" => HOUR,
            "d" => DAY,
            "w" => 7 * DAY,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_naive() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_datetime("2018-04-01 00:00:31"),
            Some(1_522_540_831_000)
        );
        assert_eq!(
            parse_datetime("2018-04-01T02:00:31.5+02:00"),
            Some(1_522_540_831_500)
        );
        assert_eq!(parse_datetime("2018-04-01"), Some(1_522_540_800_000));
        for bad in [
            "",
            "2018-13-01",
            "2018-02-30",
            "2018-04-01X00:00:00",
            "2018-04-01T25:00:00",
            "2018-04-01T00:00:00+",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_round_trip_and_weekday() {
        for days in [-1000, 0, 17_622, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2018-04-01 was a Sunday.
        assert_eq!(weekday(1_522_540_831_000, 0), 6);
        assert_eq!(hour_of_day(1_522_540_831_000, 0), 0);
        assert_eq!(
            format_rfc3339(1_522_540_831_500),
            "2018-04-01T00:00:31.500Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * DAY));
        assert_eq!(parse_duration("1d12h"), Some(DAY + 12 * HOUR));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("2w"), Some(14 * DAY));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("x"), None);
    }
}
