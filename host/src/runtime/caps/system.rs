//! `host.system-metrics`: CPU, memory, disk and load of the machine tend
//! runs on. Denied unless the step is granted `system-metrics`.

use super::Denials;
use crate::runtime::bindings::types;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use sysinfo::{Disks, System};

/// A snapshot of the machine (mirrors the WIT record).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub hostname: String,
    pub cpu_count: u32,
    pub cpu_usage_percent: f64,
    pub load_average: (f64, f64, f64),
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub uptime_seconds: u64,
    pub disks: Vec<DiskSnapshot>,
}

/// One mounted filesystem (mirrors the WIT record).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSnapshot {
    pub mount_point: String,
    pub filesystem: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// Samples the machine, shared by every step. CPU usage needs two samples
/// apart in time: the first call waits `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`
/// between them; later calls measure since the previous call.
#[derive(Default)]
pub struct Sampler {
    inner: Mutex<Option<(System, Instant)>>,
}

impl Sampler {
    /// Takes a snapshot; blocking (run it off the async threads).
    pub fn snapshot(&self) -> Snapshot {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (sys, last) = guard.get_or_insert_with(|| {
            let mut sys = System::new();
            sys.refresh_cpu_usage();
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
            (sys, Instant::now())
        });
        if last.elapsed() < sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL - last.elapsed());
        }
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        *last = Instant::now();
        let load = System::load_average();
        let disks = Disks::new_with_refreshed_list()
            .iter()
            .map(|d| DiskSnapshot {
                mount_point: d.mount_point().to_string_lossy().into_owned(),
                filesystem: d.file_system().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                available_bytes: d.available_space(),
            })
            .collect();
        Snapshot {
            hostname: System::host_name().unwrap_or_default(),
            cpu_count: sys.cpus().len() as u32,
            cpu_usage_percent: f64::from(sys.global_cpu_usage()),
            load_average: (load.one, load.five, load.fifteen),
            memory_total_bytes: sys.total_memory(),
            memory_available_bytes: sys.available_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_used_bytes: sys.used_swap(),
            uptime_seconds: System::uptime(),
            disks,
        }
    }
}

/// Per-step access to machine metrics.
pub struct SystemCap {
    sampler: Arc<Sampler>,
    granted: bool,
    denials: Denials,
}

impl SystemCap {
    /// Part two: per-step state from the `system-metrics` grant.
    pub fn new(sampler: Arc<Sampler>, granted: bool, denials: Denials) -> Self {
        SystemCap { sampler, granted, denials }
    }

    /// Part three: `host.system-metrics`.
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        if !self.granted {
            let msg = "system-metrics: reading machine metrics is not granted to this step".to_string();
            self.denials.push(msg.clone());
            return Err(msg);
        }
        let sampler = self.sampler.clone();
        tokio::task::spawn_blocking(move || sampler.snapshot())
            .await
            .map_err(|e| format!("reading machine metrics failed: {e}"))
    }
}

/// `host.system-metrics`'s answer, in the contract's types.
impl From<Snapshot> for types::SystemSnapshot {
    fn from(s: Snapshot) -> types::SystemSnapshot {
        types::SystemSnapshot {
            hostname: s.hostname,
            cpu_count: s.cpu_count,
            cpu_usage_percent: s.cpu_usage_percent,
            load_average: s.load_average,
            memory_total_bytes: s.memory_total_bytes,
            memory_available_bytes: s.memory_available_bytes,
            swap_total_bytes: s.swap_total_bytes,
            swap_used_bytes: s.swap_used_bytes,
            uptime_seconds: s.uptime_seconds,
            disks: s
                .disks
                .into_iter()
                .map(|d| types::DiskUsage {
                    mount_point: d.mount_point,
                    filesystem: d.filesystem,
                    total_bytes: d.total_bytes,
                    available_bytes: d.available_bytes,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_this_machine() {
        let s = Sampler::default().snapshot();
        assert!(s.cpu_count >= 1);
        assert!(s.memory_total_bytes > 0);
        assert!(s.memory_available_bytes <= s.memory_total_bytes);
        assert!((0.0..=100.0).contains(&s.cpu_usage_percent));
        assert!(!s.disks.is_empty());
    }
}
