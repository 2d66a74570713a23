//! `host-metrics`: CPU, memory, swap, disk and load of the machine tend runs
//! on, with findings past configurable thresholds.
//!
//! It reads one snapshot through the host's `system-metrics` call (the step
//! needs the `system-metrics` grant; without it the step fails with the
//! host's message, which names the grant), reports it as data and metrics,
//! and raises a finding for each threshold crossed: `high` at or over the
//! threshold, `critical` for memory and disks at or over the larger of the
//! threshold and 98%.
//!
//! By default it reports every real filesystem and skips pseudo ones
//! (tmpfs, overlay, proc, ...) and zero-sized ones; `mounts` picks mount
//! points by name instead.
//!
//! It must not call anything but `system-metrics` (and never HTTP, secrets,
//! state, files or the environment), and must not change the machine.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tend_plugin_sdk::{
    DiskUsage, Finding, Guest, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, SystemSnapshot,
    export, failed, finding, host, invalid_config, metric, parse_config, round, schema,
};

/// The plugin; see the crate docs.
struct HostMetrics;

/// Used share of memory or a disk at or over which a finding is always
/// `critical` (when the threshold is lower).
const CRITICAL_PERCENT: f64 = 98.0;

/// Filesystem types that hold no data of their own: never reported by
/// default.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "udf",
];

/// The step's `with:` block; every field has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// CPU busy share, in percent, at or over which a finding is raised.
    cpu_percent: f64,
    /// Memory used share, in percent, at or over which a finding is raised.
    memory_percent: f64,
    /// Disk used share, in percent, at or over which a finding is raised.
    disk_percent: f64,
    /// 1-minute load average per CPU at or over which a finding is raised.
    load_per_cpu: f64,
    /// Mount points to report; every real filesystem when absent.
    mounts: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config { cpu_percent: 90.0, memory_percent: 90.0, disk_percent: 90.0, load_per_cpu: 2.0, mounts: None }
    }
}

/// Parses and checks the config.
fn parse(text: &str) -> Result<Config, StepError> {
    let config: Config = parse_config(text)?;
    for (field, value) in [
        ("cpu_percent", config.cpu_percent),
        ("memory_percent", config.memory_percent),
        ("disk_percent", config.disk_percent),
    ] {
        if !(0.0..=100.0).contains(&value) {
            return Err(invalid_config(format!("field `{field}`: expected a percentage from 0 to 100, found {value}")));
        }
    }
    if config.load_per_cpu < 0.0 {
        let value = config.load_per_cpu;
        return Err(invalid_config(format!("field `load_per_cpu`: expected a non-negative number, found {value}")));
    }
    for (i, mount) in config.mounts.iter().flatten().enumerate() {
        if !mount.starts_with('/') {
            return Err(invalid_config(format!(
                "field `mounts[{i}]`: expected an absolute mount point, found {mount:?}"
            )));
        }
    }
    Ok(config)
}

/// The output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Report {
    hostname: String,
    cpu: Cpu,
    memory: Memory,
    swap: Swap,
    disks: Vec<Disk>,
    uptime_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Cpu {
    count: u32,
    usage_percent: f64,
    load_1: f64,
    load_5: f64,
    load_15: f64,
    /// `load_1` divided by `count`.
    load_per_cpu: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Memory {
    total_bytes: u64,
    available_bytes: u64,
    used_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Swap {
    total_bytes: u64,
    used_bytes: u64,
    used_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Disk {
    mount_point: String,
    filesystem: String,
    total_bytes: u64,
    available_bytes: u64,
    used_percent: f64,
}

/// `used` as a percentage of `total`, two decimals; 0 when `total` is 0.
fn percent(used: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { round(used.min(total) as f64 / total as f64 * 100.0, 2) }
}

/// The report of `snapshot` with `disks` (already selected).
fn report(snapshot: &SystemSnapshot, disks: Vec<Disk>) -> Report {
    let (load_1, load_5, load_15) = snapshot.load_average;
    let memory_used = snapshot.memory_total_bytes.saturating_sub(snapshot.memory_available_bytes);
    Report {
        hostname: snapshot.hostname.clone(),
        cpu: Cpu {
            count: snapshot.cpu_count,
            usage_percent: round(snapshot.cpu_usage_percent, 2),
            load_1,
            load_5,
            load_15,
            load_per_cpu: round(load_1 / f64::from(snapshot.cpu_count.max(1)), 3),
        },
        memory: Memory {
            total_bytes: snapshot.memory_total_bytes,
            available_bytes: snapshot.memory_available_bytes,
            used_percent: percent(memory_used, snapshot.memory_total_bytes),
        },
        swap: Swap {
            total_bytes: snapshot.swap_total_bytes,
            used_bytes: snapshot.swap_used_bytes,
            used_percent: percent(snapshot.swap_used_bytes, snapshot.swap_total_bytes),
        },
        disks,
        uptime_seconds: snapshot.uptime_seconds,
    }
}

/// A [`Disk`] of the report for `usage`.
fn disk(usage: &DiskUsage) -> Disk {
    let used = usage.total_bytes.saturating_sub(usage.available_bytes);
    Disk {
        mount_point: usage.mount_point.clone(),
        filesystem: usage.filesystem.clone(),
        total_bytes: usage.total_bytes,
        available_bytes: usage.available_bytes,
        used_percent: percent(used, usage.total_bytes),
    }
}

/// True for a filesystem worth reporting by default: not pseudo, not empty.
fn is_real(usage: &DiskUsage) -> bool {
    usage.total_bytes > 0 && !PSEUDO_FILESYSTEMS.contains(&usage.filesystem.as_str())
}

/// `/data/` and `/data` name the same mount point; `/` stays `/`.
fn normalize_mount(mount: &str) -> &str {
    let trimmed = mount.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// The disks to report, and the requested mount points that are missing.
/// Each mount point is reported once (the first entry wins).
fn select_disks(all: &[DiskUsage], mounts: Option<&[String]>) -> (Vec<Disk>, Vec<String>) {
    let mut disks: Vec<Disk> = Vec::new();
    let mut missing = Vec::new();
    match mounts {
        None => {
            for usage in all.iter().filter(|u| is_real(u)) {
                if !disks.iter().any(|d| d.mount_point == usage.mount_point) {
                    disks.push(disk(usage));
                }
            }
        }
        Some(wanted) => {
            for mount in wanted {
                let name = normalize_mount(mount);
                if disks.iter().any(|d| normalize_mount(&d.mount_point) == name) {
                    continue;
                }
                match all.iter().find(|u| normalize_mount(&u.mount_point) == name) {
                    Some(usage) => disks.push(disk(usage)),
                    None => missing.push(mount.clone()),
                }
            }
        }
    }
    (disks, missing)
}

/// The metrics of `report`.
fn metrics(report: &Report) -> Vec<Metric> {
    let mut metrics = vec![
        metric("cpu_usage_percent", report.cpu.usage_percent, &[]),
        metric("load_1", report.cpu.load_1, &[]),
        metric("load_per_cpu", report.cpu.load_per_cpu, &[]),
        metric("memory_used_percent", report.memory.used_percent, &[]),
        metric("swap_used_percent", report.swap.used_percent, &[]),
    ];
    for d in &report.disks {
        metrics.push(metric("disk_used_percent", d.used_percent, &[("mount", &d.mount_point)]));
    }
    metrics
}

/// `high` at or over `threshold`; `critical` at or over the larger of the
/// threshold and [`CRITICAL_PERCENT`]; none under the threshold.
fn storage_severity(used_percent: f64, threshold: f64) -> Option<SeverityLevel> {
    if used_percent >= threshold.max(CRITICAL_PERCENT) {
        Some(SeverityLevel::Critical)
    } else if used_percent >= threshold {
        Some(SeverityLevel::High)
    } else {
        None
    }
}

/// The findings for every threshold `report` crosses, and for every
/// requested mount point that is `missing`.
fn findings(report: &Report, missing: &[String], config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = &report.hostname;
    let cpu = &report.cpu;
    if cpu.usage_percent >= config.cpu_percent {
        out.push(finding(
            SeverityLevel::High,
            format!("CPU usage is {:.1}% on {host}, at or over {}%", cpu.usage_percent, config.cpu_percent),
            format!("{} CPUs are {:.1}% busy; the threshold is {}%.", cpu.count, cpu.usage_percent, config.cpu_percent),
            Some("cpu"),
        ));
    }
    if cpu.load_per_cpu >= config.load_per_cpu {
        out.push(finding(
            SeverityLevel::High,
            format!("load is {:.2} per CPU on {host}, at or over {}", cpu.load_per_cpu, config.load_per_cpu),
            format!(
                "Load average {:.2} / {:.2} / {:.2} (1, 5, 15 minutes) on {} CPUs; the threshold is {} per CPU.",
                cpu.load_1, cpu.load_5, cpu.load_15, cpu.count, config.load_per_cpu
            ),
            Some("load"),
        ));
    }
    let memory = &report.memory;
    if let Some(severity) = storage_severity(memory.used_percent, config.memory_percent) {
        out.push(finding(
            severity,
            format!("memory is {:.1}% used on {host}, at or over {}%", memory.used_percent, config.memory_percent),
            format!(
                "{} of {} bytes available; the threshold is {}% used.",
                memory.available_bytes, memory.total_bytes, config.memory_percent
            ),
            Some("memory"),
        ));
    }
    for d in &report.disks {
        if let Some(severity) = storage_severity(d.used_percent, config.disk_percent) {
            out.push(finding(
                severity,
                format!(
                    "disk {} is {:.1}% full on {host}, at or over {}%",
                    d.mount_point, d.used_percent, config.disk_percent
                ),
                format!(
                    "{} ({}): {} of {} bytes available; the threshold is {}% used.",
                    d.mount_point, d.filesystem, d.available_bytes, d.total_bytes, config.disk_percent
                ),
                Some(&d.mount_point),
            ));
        }
    }
    for mount in missing {
        out.push(finding(
            SeverityLevel::High,
            format!("mount point {mount} is not mounted on {host}"),
            format!("The config asks for {mount}, but no mounted filesystem has that mount point."),
            Some(mount),
        ));
    }
    out
}

impl Guest for HostMetrics {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "host-metrics".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reads CPU, memory, swap, disk and load of the machine tend runs on (needs the \
                          system-metrics grant) and reports them as data and metrics, with a finding for each \
                          configurable threshold crossed: high at or over the threshold, critical for memory \
                          and disks at or over the larger of the threshold and 98%. Reports every real \
                          filesystem by default, skipping pseudo and empty ones, or the mount points listed."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["system-metrics".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let snapshot = host::system_metrics().map_err(failed)?;
        let (disks, missing) = select_disks(&snapshot.disks, config.mounts.as_deref());
        let report = report(&snapshot, disks);
        let findings = findings(&report, &missing, &config);
        tend_plugin_sdk::output(&report, metrics(&report), findings)
    }
}

/// JSON Schema of [`Config`].
fn config_schema() -> Value {
    let percent = |what: &str| {
        json!({
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "default": 90,
            "description": format!("{what}, in percent, at or over which a finding is raised."),
        })
    };
    let mut memory = percent("Used share of memory");
    memory["description"] = json!(
        "Used share of memory, in percent, at or over which a finding is raised (critical at or over the larger \
         of this and 98)."
    );
    let mut disk = percent("Used share of a disk");
    disk["description"] = json!(
        "Used share of a disk, in percent, at or over which a finding is raised (critical at or over the larger \
         of this and 98)."
    );
    schema::config(
        "host-metrics",
        "Configuration of the host-metrics plugin; every field is optional.",
        json!({
            "cpu_percent": percent("CPU busy share across all CPUs"),
            "memory_percent": memory,
            "disk_percent": disk,
            "load_per_cpu": {
                "type": "number",
                "minimum": 0,
                "default": 2.0,
                "description": "1-minute load average divided by the number of CPUs at or over which a finding \
                                is raised.",
            },
            "mounts": {
                "type": "array",
                "items": {"type": "string", "pattern": "^/"},
                "description": "Mount points to report, e.g. [\"/\", \"/var\"]; a missing one is a high finding. \
                                By default every real filesystem (not tmpfs, overlay, proc, ... nor empty ones).",
            },
        }),
        &[],
    )
}

export!(HostMetrics);

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(mount: &str, fs: &str, total: u64, available: u64) -> DiskUsage {
        DiskUsage { mount_point: mount.into(), filesystem: fs.into(), total_bytes: total, available_bytes: available }
    }

    fn snapshot() -> SystemSnapshot {
        SystemSnapshot {
            hostname: "web-1".into(),
            cpu_count: 4,
            cpu_usage_percent: 12.345,
            load_average: (1.0, 0.5, 0.25),
            memory_total_bytes: 1000,
            memory_available_bytes: 250,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            uptime_seconds: 60,
            disks: vec![
                usage("/", "ext4", 100, 40),
                usage("/dev/shm", "tmpfs", 100, 100),
                usage("/snap/core", "squashfs", 100, 0),
                usage("/boot/efi", "vfat", 0, 0),
                usage("/", "ext4", 100, 40),
                usage("/data", "xfs", 1000, 10),
            ],
        }
    }

    #[test]
    fn defaults_and_bad_config() {
        let c = parse("").unwrap();
        assert_eq!((c.cpu_percent, c.memory_percent, c.disk_percent, c.load_per_cpu), (90.0, 90.0, 90.0, 2.0));
        assert!(
            matches!(parse(r#"{"cpu_percent": 120}"#), Err(StepError::InvalidConfig(m)) if m.starts_with("field `cpu_percent`: expected a percentage"))
        );
        assert!(
            matches!(parse(r#"{"mounts": ["data"]}"#), Err(StepError::InvalidConfig(m)) if m.starts_with("field `mounts[0]`"))
        );
        assert!(
            matches!(parse(r#"{"disk": 1}"#), Err(StepError::InvalidConfig(m)) if m.starts_with("field `disk`: unknown field"))
        );
    }

    #[test]
    fn default_disks_skip_pseudo_empty_and_duplicate_mounts() {
        let (disks, missing) = select_disks(&snapshot().disks, None);
        let mounts: Vec<&str> = disks.iter().map(|d| d.mount_point.as_str()).collect();
        assert_eq!(mounts, ["/", "/data"]);
        assert!(missing.is_empty());
        assert_eq!(disks[1].used_percent, 99.0);
    }

    #[test]
    fn listed_mounts_are_reported_or_missing() {
        let wanted = vec!["/dev/shm".to_string(), "/data/".to_string(), "/srv".to_string()];
        let (disks, missing) = select_disks(&snapshot().disks, Some(&wanted));
        let mounts: Vec<&str> = disks.iter().map(|d| d.mount_point.as_str()).collect();
        assert_eq!(mounts, ["/dev/shm", "/data"]);
        assert_eq!(missing, ["/srv"]);
    }

    #[test]
    fn report_metrics_and_findings() {
        let s = snapshot();
        let config = parse("").unwrap();
        let (disks, missing) = select_disks(&s.disks, None);
        let r = report(&s, disks);
        assert_eq!(r.memory.used_percent, 75.0);
        assert_eq!(r.cpu.load_per_cpu, 0.25);
        assert_eq!(r.cpu.usage_percent, 12.35);
        assert_eq!(r.swap.used_percent, 0.0);
        let m = metrics(&r);
        assert!(m.iter().any(|m| m.name == "disk_used_percent" && m.labels == vec![("mount".into(), "/data".into())]));
        let f = findings(&r, &missing, &config);
        assert_eq!(f.len(), 1, "only /data at 99%");
        assert!(matches!(f[0].severity, tend_plugin_sdk::Severity::Critical));
        assert_eq!(f[0].title, "disk /data is 99.0% full on web-1, at or over 90%");
    }

    #[test]
    fn severity_of_storage() {
        assert_eq!(storage_severity(89.9, 90.0), None);
        assert_eq!(storage_severity(90.0, 90.0), Some(SeverityLevel::High));
        assert_eq!(storage_severity(98.0, 90.0), Some(SeverityLevel::Critical));
        assert_eq!(storage_severity(98.5, 99.0), None);
        assert_eq!(storage_severity(99.0, 99.0), Some(SeverityLevel::Critical));
    }
}
