//! Cron maths: 5-field crontab lines and `@hourly`-style macros (croner) in
//! IANA time zones (jiff), parsed once into a [`Schedule`] that walks its
//! fire times. A leaf: imports nothing of tend (no runbook, store,
//! scheduler, engine, serve, api or cli).
//!
//! Daylight saving follows croner: a time that happens twice matches at
//! both instants and a time that does not exist is skipped, except that a
//! job at a fixed time (minute and hour each a single value) runs once on
//! both change days (see the scheduler's module doc for the rules as users
//! see them).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A parsed crontab line: five fields (no seconds, no year) or a macro such
/// as `@daily`. Lines of the same text share one parsed form in this
/// process, since croner keeps a table of 5,001 bytes per line (one per
/// year it can match): 10,000 triggers would otherwise hold 50 MiB.
#[derive(Debug, Clone, PartialEq)]
pub struct Line(Arc<croner::Cron>);

impl Line {
    pub fn parse(expr: &str) -> Result<Line, croner::errors::CronError> {
        static PARSED: Mutex<Option<HashMap<String, Weak<croner::Cron>>>> = Mutex::new(None);
        let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
        let parsed = parsed.get_or_insert_with(HashMap::new);
        if let Some(cron) = parsed.get(expr).and_then(Weak::upgrade) {
            return Ok(Line(cron));
        }
        let cron = Arc::new(
            croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .build()
                .parse(expr)?,
        );
        // Now and then, forget the lines no schedule holds any more.
        if parsed.len() >= 1024 && parsed.len().is_power_of_two() {
            parsed.retain(|_, c| c.strong_count() > 0);
        }
        parsed.insert(expr.to_string(), Arc::downgrade(&cron));
        Ok(Line(cron))
    }
}

/// A parsed cron line in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    line: Line,
    tz: TimeZone,
}

impl Schedule {
    pub fn new(line: Line, tz: TimeZone) -> Schedule {
        Schedule { line, tz }
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // Not `iter_after`, which copies the line first.
        self.line.0.find_next_occurrence(&after.to_zoned(self.tz.clone()), false).ok().map(|z| z.timestamp())
    }

    /// The next `n` fires strictly after `after`.
    pub fn next_fires(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        self.line.0.iter_after(after.to_zoned(self.tz.clone())).take(n).map(|z| z.timestamp()).collect()
    }

    /// The last `cap` fires from `from` (inclusive) to `until` (inclusive).
    pub fn fires_between(&self, from: Timestamp, until: Timestamp, cap: usize) -> Vec<Timestamp> {
        /// Bounds the walk when tend was down for very long with a frequent schedule.
        const MAX_WALK: usize = 1_000_000;
        let start = from.checked_sub(jiff::SignedDuration::from_millis(1)).unwrap_or(from);
        let all: Vec<Timestamp> = self
            .line
            .0
            .iter_after(start.to_zoned(self.tz.clone()))
            .map(|z| z.timestamp())
            .take_while(|ts| *ts <= until)
            .take(MAX_WALK)
            .collect();
        all[all.len().saturating_sub(cap)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(expr: &str, tz: &str) -> Schedule {
        Schedule::new(Line::parse(expr).unwrap(), TimeZone::get(tz).unwrap())
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn local(t: Timestamp, tz: &str) -> String {
        t.to_zoned(TimeZone::get(tz).unwrap()).strftime("%Y-%m-%d %H:%M %Z").to_string()
    }

    #[test]
    fn a_fixed_time_job_runs_once_on_the_spring_forward_day() {
        // 2026-03-08: New York skips 02:00-03:00.
        let t = schedule("30 2 * * *", "America/New_York");
        let fires: Vec<String> =
            t.next_fires(at("2026-03-07T12:00:00Z"), 3).into_iter().map(|f| local(f, "America/New_York")).collect();
        assert_eq!(fires, vec!["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT", "2026-03-10 02:30 EDT"]);
    }

    #[test]
    fn a_fixed_time_job_runs_once_on_the_fall_back_day() {
        // 2026-10-25: Paris repeats 02:00-03:00.
        let t = schedule("30 2 * * *", "Europe/Paris");
        let fires: Vec<String> =
            t.next_fires(at("2026-10-24T12:00:00Z"), 2).into_iter().map(|f| local(f, "Europe/Paris")).collect();
        assert_eq!(fires, vec!["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]);
    }

    #[test]
    fn interval_jobs_follow_real_time_through_the_repeated_hour() {
        let t = schedule("*/30 * * * *", "Europe/Paris");
        let fires: Vec<String> =
            t.next_fires(at("2026-10-24T23:45:00Z"), 4).into_iter().map(|f| f.to_string()).collect();
        // 01:30 CEST, 02:00 CEST, 02:30 CEST, then 02:00 CET: every 30 real minutes.
        assert_eq!(
            fires,
            vec!["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
        );
    }

    #[test]
    fn macros_work() {
        let t = schedule("@hourly", "UTC");
        assert_eq!(t.next_after(at("2026-01-01T10:15:00Z")).unwrap().to_string(), "2026-01-01T11:00:00Z");
    }

    #[test]
    fn fires_between_includes_both_ends_and_keeps_the_last_ones() {
        let t = schedule("0 * * * *", "UTC");
        let fires: Vec<String> = t
            .fires_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T13:00:00Z"), 10)
            .into_iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(
            fires,
            ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z"]
        );
        let last = t.fires_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T13:00:00Z"), 1);
        assert_eq!(last, [at("2026-01-01T13:00:00Z")]);
    }

    #[test]
    fn lines_of_the_same_text_share_one_parsed_form() {
        let (a, b) = (Line::parse("17 3 * * *").unwrap(), Line::parse("17 3 * * *").unwrap());
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert!(!Arc::ptr_eq(&a.0, &Line::parse("18 3 * * *").unwrap().0));
        assert_eq!(Line::parse("61 * * * *").unwrap_err().to_string(), "Component error: Number out of bounds.");
    }
}
