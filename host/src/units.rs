//! Parses and prints human units: durations ("500ms", "5s", "10m", "1h"),
//! byte sizes ("64MiB", "512KiB", "1GiB", "4096") and instants (RFC 3339
//! UTC, as the API and `--json` write them). Pure functions, no I/O.

use std::time::Duration;

/// Parses a duration such as `"500ms"`, `"5s"`, `"1.5s"`, `"10m"` or `"1h"`.
/// A bare number is not accepted: the unit is required so `timeout: 30` is
/// never mistaken for milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} has no unit; expected e.g. \"500ms\", \"5s\", \"10m\" or \"1h\""))?;
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("duration {text:?} does not start with a number; expected e.g. \"5s\""))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!("duration {text:?} has unknown unit {other:?}; expected ms, s, m, h or d"));
        }
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("duration {text:?} is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size such as `"64MiB"`, `"512KiB"`, `"1GiB"`, `"10MB"` or a
/// bare number of bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("size {text:?} does not start with a number; expected e.g. \"64MiB\""))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => {
            return Err(format!("size {text:?} has unknown unit {other:?}; expected B, KiB, MiB, GiB, KB, MB or GB"));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Prints bytes with a binary unit, e.g. `64 MiB`, `1.5 GiB`, `512 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if value.fract() == 0.0 { format!("{value:.0} {unit}") } else { format!("{value:.1} {unit}") }
}

/// Prints a duration compactly, e.g. `250ms`, `5s`, `1.5s`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{}µs", d.as_micros())
    } else if ms < 1000.0 {
        format!("{}ms", ms.round())
    } else if d.as_secs_f64() < 120.0 {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{s:.1}s") }
    } else {
        format!("{}m", (d.as_secs_f64() / 60.0).round())
    }
}

/// An instant stored as Unix epoch milliseconds, written as RFC 3339 in
/// UTC with milliseconds: `2026-12-02T07:56:18.943Z`. Every timestamp of
/// the API and of `--json` output is written this way (the width is fixed,
/// so they also sort as text).
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Outside jiff's range (years -9999 to 9999): clamp, never panic.
        Err(_) if ms < 0 => "-009999-01-01T00:00:00.000Z".to_string(),
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

/// `#[serde(serialize_with = "units::rfc3339_field")]` for an `i64` of
/// epoch milliseconds (see [`rfc3339`]); pair it with
/// `#[schema(value_type = String, format = DateTime)]`.
pub fn rfc3339_field<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// [`rfc3339_field`] for an `Option<i64>`: `null` stays `null`.
pub fn rfc3339_option<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration(" 1h ").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("30").unwrap_err(),
            "duration \"30\" has no unit; expected e.g. \"500ms\", \"5s\", \"10m\" or \"1h\""
        );
        assert_eq!(
            parse_duration("5 parsecs").unwrap_err(),
            "duration \"5 parsecs\" has unknown unit \"parsecs\"; expected ms, s, m, h or d"
        );
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(
            parse_bytes("64 mebibytes").unwrap_err(),
            "size \"64 mebibytes\" has unknown unit \"mebibytes\"; expected B, KiB, MiB, GiB, KB, MB or GB"
        );
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(format_bytes(100), "100 B");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn instants_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_796_197_178_943), "2026-12-02T07:39:38.943Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_774_746_000_000), "2026-03-29T01:00:00.000Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
