//! Wall-clock time as stored in Redis and shown to operators.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_secs() -> i64 {
    (unix_ms() / 1000) as i64
}

/// A span of time for operators, in the largest unit that fits and
/// rounded down ("350 ms", "42 s", "5 min", "3 h", "12 d"): the dashboard
/// and the CLI show ages and "last success" alike.
pub fn elapsed_text(ms: u64) -> String {
    const SECOND: u64 = 1000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match ms {
        0..SECOND => format!("{ms} ms"),
        SECOND..MINUTE => format!("{} s", ms / SECOND),
        MINUTE..HOUR => format!("{} min", ms / MINUTE),
        HOUR..DAY => format!("{} h", ms / HOUR),
        _ => format!("{} d", ms / DAY),
    }
}

/// A time an operator gives (a search's `since` / `until`): unix ms, an
/// RFC 3339 time with `Z` or an offset (`2026-12-06T22:00:00+01:00`, as
/// `date -Iseconds` prints it), the same with a space for the `T`, without
/// seconds, or without a zone (UTC), or a date alone (its midnight, UTC).
pub fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let refused = || format!("{text:?} is neither unix ms nor an RFC 3339 time");
    let (local, offset_ms) =
        split_offset(text).unwrap_or((text.strip_suffix(['Z', 'z']).unwrap_or(text), 0));
    let utc = match local.len() {
        // `2026-12-06`, and `2026-12-06T22:00` (as a browser's date
        // and time fields write them).
        10 => format!("{local}T00:00:00Z"),
        16 => format!("{local}:00Z"),
        _ => format!("{local}Z"),
    };
    let ms = humantime::parse_rfc3339_weak(&utc)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .ok_or_else(refused)?
        .as_millis() as i64;
    u64::try_from(ms - offset_ms).map_err(|_| refused())
}

/// `(time without its offset, offset in ms)` for a time ending in
/// `+HH:MM` / `-HH:MM` (humantime reads UTC only).
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let at = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..at)?, text.get(at..)?.as_bytes());
    let sign = match offset[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |pair: &[u8]| -> Option<i64> {
        pair.iter().try_fold(0, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    if offset[3] != b':' || !local.contains(['T', 't', ' ']) {
        return None;
    }
    let (hours, minutes) = (digits(&offset[1..3])?, digits(&offset[4..6])?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((local, sign * (hours * 60 + minutes) * 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_the_largest_unit_that_fits() {
        assert_eq!(elapsed_text(0), "0 ms");
        assert_eq!(elapsed_text(999), "999 ms");
        assert_eq!(elapsed_text(4_200), "4 s");
        assert_eq!(elapsed_text(125_000), "2 min");
        assert_eq!(elapsed_text(7_300_000), "2 h");
        assert_eq!(elapsed_text(3 * 86_400_000 + 1), "3 d");
    }

    #[test]
    fn times_are_unix_ms_or_rfc3339() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14 22:13:20"), Ok(1_700_000_000_000));
        // An offset is the local time's distance from UTC.
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T17:43:20-04:30"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20+00:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("2023-11-14"), Ok(1_699_920_000_000));
        assert_eq!(parse_time("2023-11-14T22:13"), Ok(1_699_999_980_000));
        assert_eq!(parse_time("2023-11-14T23:13+01:00"), Ok(1_699_999_980_000));
        for bad in [
            "yesterday",
            "2023-11-14T22:13:20+25:00",
            "2023-11-14T22:13:20+1:000",
            "2023-11-1",
            "1970-01-01T00:30:00+01:00",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
