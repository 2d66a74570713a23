//! The fault switches a user flips with `POST /admin/faults`, which admin
//! action cures each one, and the parsing of a partial update with an exact
//! error for every bad field. Imports only `input`; knows nothing of time,
//! HTTP or the simulation that reads the switches.

use crate::input;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Most extra latency a fault may add, in milliseconds. By default 60 000
/// (one minute).
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Share of requests a bad release fails. By default 0.3 (30 %).
pub const BAD_RELEASE_ERROR_RATE: f64 = 0.3;

/// A body `POST /admin/faults` accepts, shown in its error messages.
pub const FAULTS_EXAMPLE: &str = r#"{"latency_ms": 300}"#;

/// One fault switch; its name is its field in the JSON of
/// `POST /admin/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Extra latency added to every request and health check.
    LatencyMs,
    /// Share of requests that fail with 500.
    ErrorRate,
    /// A runaway workload worth one whole replica of CPU.
    HighCpu,
    /// A memory leak: memory usage grows while it is on.
    MemoryGrowth,
    /// A poisoned cache: every lookup misses.
    CacheMisses,
    /// The service answers 503 to everything, health checks included.
    Down,
    /// A bad release: 30 % of requests fail, health checks pass.
    BadRelease,
}

impl Fault {
    /// Every fault, in the order the API and the README list them.
    pub const ALL: [Fault; 7] = [
        Fault::LatencyMs,
        Fault::ErrorRate,
        Fault::HighCpu,
        Fault::MemoryGrowth,
        Fault::CacheMisses,
        Fault::Down,
        Fault::BadRelease,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::LatencyMs => "latency_ms",
            Fault::ErrorRate => "error_rate",
            Fault::HighCpu => "high_cpu",
            Fault::MemoryGrowth => "memory_growth",
            Fault::CacheMisses => "cache_misses",
            Fault::Down => "down",
            Fault::BadRelease => "bad_release",
        }
    }

    /// The admin action that cures this fault.
    pub fn cure(self) -> Cure {
        match self {
            Fault::LatencyMs | Fault::ErrorRate | Fault::MemoryGrowth | Fault::Down => Cure::Restart,
            Fault::HighCpu => Cure::Scale,
            Fault::CacheMisses => Cure::CacheClear,
            Fault::BadRelease => Cure::Nothing,
        }
    }

    /// What the field accepts, as error messages say it.
    fn expected(self) -> String {
        match self {
            Fault::LatencyMs => format!("a whole number of milliseconds from 0 to {MAX_LATENCY_MS}"),
            Fault::ErrorRate => "a number from 0 to 1".to_string(),
            _ => "true or false".to_string(),
        }
    }

    fn parse_value(self, value: &serde_json::Value) -> Option<Setting> {
        match self {
            Fault::LatencyMs => value.as_u64().filter(|ms| *ms <= MAX_LATENCY_MS).map(Setting::Millis),
            Fault::ErrorRate => value.as_f64().filter(|r| (0.0..=1.0).contains(r)).map(Setting::Rate),
            _ => value.as_bool().map(Setting::Switch),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFault(pub String);

impl fmt::Display for UnknownFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.as_str()).collect();
        write!(f, "unknown fault \"{}\": expected one of {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownFault {}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Fault, UnknownFault> {
        Fault::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| UnknownFault(s.to_string()))
    }
}

/// What cures a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cure {
    /// `POST /admin/restart` switches the fault off.
    Restart,
    /// `POST /admin/scale` with more replicas absorbs the fault: the switch
    /// stays on (it is load from outside), its effect is divided across the
    /// replicas, and scaling back down brings it back.
    Scale,
    /// `POST /admin/cache/clear` switches the fault off.
    CacheClear,
    /// No admin action: only an operator switching it off
    /// (`POST /admin/faults` or `DELETE /admin/faults`).
    Nothing,
}

impl Cure {
    pub fn as_str(self) -> &'static str {
        match self {
            Cure::Restart => "restart",
            Cure::Scale => "scale",
            Cure::CacheClear => "cache clear",
            Cure::Nothing => "nothing",
        }
    }

    /// Whether this action turns the fault's switch off (scaling only
    /// absorbs its effect).
    pub fn switches_off(self) -> bool {
        matches!(self, Cure::Restart | Cure::CacheClear)
    }
}

impl fmt::Display for Cure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of every switch, as `GET /admin/faults` shows it. All off by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Faults {
    pub latency_ms: u64,
    pub error_rate: f64,
    pub high_cpu: bool,
    pub memory_growth: bool,
    pub cache_misses: bool,
    pub down: bool,
    pub bad_release: bool,
}

impl Faults {
    /// Whether the switch is on (a latency or rate over 0 counts as on).
    pub fn is_on(&self, fault: Fault) -> bool {
        match fault {
            Fault::LatencyMs => self.latency_ms > 0,
            Fault::ErrorRate => self.error_rate > 0.0,
            Fault::HighCpu => self.high_cpu,
            Fault::MemoryGrowth => self.memory_growth,
            Fault::CacheMisses => self.cache_misses,
            Fault::Down => self.down,
            Fault::BadRelease => self.bad_release,
        }
    }

    /// Turns one switch off.
    pub fn switch_off(&mut self, fault: Fault) {
        self.set(fault, Setting::off(fault));
    }

    /// Turns off every switch that `action` cures and switches off (see
    /// [`Cure::switches_off`]).
    pub fn cure(&mut self, action: Cure) {
        if action.switches_off() {
            for fault in Fault::ALL.into_iter().filter(|f| f.cure() == action) {
                self.switch_off(fault);
            }
        }
    }

    /// Share of requests that fail: the error rate and a bad release,
    /// drawn independently.
    pub fn failure_rate(&self) -> f64 {
        let release = if self.bad_release { BAD_RELEASE_ERROR_RATE } else { 0.0 };
        1.0 - (1.0 - self.error_rate) * (1.0 - release)
    }

    /// Applies a validated update: the named switches change, the others
    /// stay as they are.
    pub fn apply(&mut self, patch: &FaultPatch) {
        for (fault, setting) in &patch.changes {
            self.set(*fault, *setting);
        }
    }

    fn set(&mut self, fault: Fault, setting: Setting) {
        match (fault, setting) {
            (Fault::LatencyMs, Setting::Millis(ms)) => self.latency_ms = ms,
            (Fault::ErrorRate, Setting::Rate(rate)) => self.error_rate = rate,
            (Fault::HighCpu, Setting::Switch(on)) => self.high_cpu = on,
            (Fault::MemoryGrowth, Setting::Switch(on)) => self.memory_growth = on,
            (Fault::CacheMisses, Setting::Switch(on)) => self.cache_misses = on,
            (Fault::Down, Setting::Switch(on)) => self.down = on,
            (Fault::BadRelease, Setting::Switch(on)) => self.bad_release = on,
            // parse_value and Setting::off only pair a fault with its kind.
            _ => {}
        }
    }
}

/// A new value for one switch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setting {
    Millis(u64),
    Rate(f64),
    Switch(bool),
}

impl Setting {
    fn off(fault: Fault) -> Setting {
        match fault {
            Fault::LatencyMs => Setting::Millis(0),
            Fault::ErrorRate => Setting::Rate(0.0),
            _ => Setting::Switch(false),
        }
    }
}

/// A validated partial update of the switches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPatch {
    changes: Vec<(Fault, Setting)>,
}

impl FaultPatch {
    /// Parses the body of `POST /admin/faults`. Every bad field is reported,
    /// in the order of the field names, joined by "; "; nothing is applied
    /// unless every field is good.
    pub fn parse(body: &[u8]) -> Result<FaultPatch, String> {
        let map = input::json_object(body, FAULTS_EXAMPLE)?;
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for (name, value) in input::sorted(map) {
            match name.parse::<Fault>() {
                Err(unknown) => errors.push(unknown.to_string()),
                Ok(fault) => match fault.parse_value(&value) {
                    Some(setting) => changes.push((fault, setting)),
                    None => errors.push(format!(
                        "fault \"{fault}\" must be {}, got {}",
                        fault.expected(),
                        input::quote(&value)
                    )),
                },
            }
        }
        if errors.is_empty() { Ok(FaultPatch { changes }) } else { Err(errors.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_is_cured_by_the_action_the_readme_names() {
        let table: Vec<(&str, &str)> = Fault::ALL.iter().map(|f| (f.as_str(), f.cure().as_str())).collect();
        assert_eq!(
            table,
            [
                ("latency_ms", "restart"),
                ("error_rate", "restart"),
                ("high_cpu", "scale"),
                ("memory_growth", "restart"),
                ("cache_misses", "cache clear"),
                ("down", "restart"),
                ("bad_release", "nothing"),
            ]
        );
    }

    #[test]
    fn the_readme_fault_table_names_the_cure_of_every_fault() {
        let readme = include_str!("../README.md");
        for fault in Fault::ALL {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `\"{fault}\": ")))
                .unwrap_or_else(|| panic!("the README has no row for {fault}"));
            let cure = row.rsplit(" | ").next().unwrap();
            assert!(cure.starts_with(&format!("**{}**", fault.cure())), "{fault}: {row}");
        }
    }

    #[test]
    fn a_fault_name_round_trips_and_an_unknown_one_lists_the_known_ones() {
        for fault in Fault::ALL {
            assert_eq!(fault.as_str().parse::<Fault>(), Ok(fault));
            assert_eq!(fault.to_string(), fault.as_str());
        }
        assert_eq!(
            "latency".parse::<Fault>().unwrap_err().to_string(),
            "unknown fault \"latency\": expected one of latency_ms, error_rate, high_cpu, memory_growth, \
             cache_misses, down, bad_release"
        );
    }

    #[test]
    fn a_partial_update_changes_only_the_named_switches() {
        let mut faults = Faults { high_cpu: true, latency_ms: 50, ..Faults::default() };
        faults.apply(&FaultPatch::parse(br#"{"latency_ms": 300, "down": true}"#).unwrap());
        assert_eq!(faults, Faults { high_cpu: true, latency_ms: 300, down: true, ..Faults::default() });
        faults.apply(&FaultPatch::parse(br#"{"down": false}"#).unwrap());
        assert_eq!(faults, Faults { high_cpu: true, latency_ms: 300, ..Faults::default() });
    }

    #[test]
    fn every_bad_field_is_reported_in_name_order() {
        let err = FaultPatch::parse(
            br#"{"latency_ms": -5, "error_rate": 1.5, "down": "yes", "slow": true, "latency_ms": 300.5}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "fault \"down\" must be true or false, got \"yes\"; \
             fault \"error_rate\" must be a number from 0 to 1, got 1.5; \
             fault \"latency_ms\" must be a whole number of milliseconds from 0 to 60000, got 300.5; \
             unknown fault \"slow\": expected one of latency_ms, error_rate, high_cpu, memory_growth, \
             cache_misses, down, bad_release"
        );
    }

    #[test]
    fn latency_over_the_limit_is_refused() {
        assert_eq!(
            FaultPatch::parse(br#"{"latency_ms": 60001}"#).unwrap_err(),
            "fault \"latency_ms\" must be a whole number of milliseconds from 0 to 60000, got 60001"
        );
        assert!(FaultPatch::parse(br#"{"latency_ms": 60000, "error_rate": 1}"#).is_ok());
    }

    #[test]
    fn a_restart_switches_off_exactly_the_faults_it_cures() {
        let mut faults = everything_on();
        faults.cure(Cure::Restart);
        assert_eq!(faults, Faults { high_cpu: true, cache_misses: true, bad_release: true, ..Faults::default() });
    }

    #[test]
    fn a_cache_clear_switches_off_only_the_poisoned_cache_and_scaling_switches_off_nothing() {
        let mut faults = everything_on();
        faults.cure(Cure::CacheClear);
        assert_eq!(faults, Faults { cache_misses: false, ..everything_on() });
        let mut faults = everything_on();
        faults.cure(Cure::Scale);
        faults.cure(Cure::Nothing);
        assert_eq!(faults, everything_on());
    }

    #[test]
    fn the_error_rate_and_a_bad_release_fail_requests_independently() {
        assert_eq!(Faults::default().failure_rate(), 0.0);
        let release = Faults { bad_release: true, ..Faults::default() }.failure_rate();
        assert!((release - BAD_RELEASE_ERROR_RATE).abs() < 1e-12, "{release}");
        let both = Faults { bad_release: true, error_rate: 0.5, ..Faults::default() }.failure_rate();
        assert!((both - 0.65).abs() < 1e-12, "{both}");
    }

    fn everything_on() -> Faults {
        Faults {
            latency_ms: 300,
            error_rate: 0.5,
            high_cpu: true,
            memory_growth: true,
            cache_misses: true,
            down: true,
            bad_release: true,
        }
    }
}
