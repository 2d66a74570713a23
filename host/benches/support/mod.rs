//! Helpers the benchmarks that drive a real `tend serve` share: the
//! release binary, starting and stopping a server in a scratch directory,
//! its CPU time and memory from /proc, and percentiles.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A number from the environment, or `default` when unset.
pub fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// `target/release/tend`; exits with a hint when it was not built.
pub fn tend_binary(bench: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tend");
    if !bin.is_file() {
        eprintln!(
            "{bench}: {} not found.\nBuild the release binary first: cargo build --release && cargo bench --bench {bench}",
            bin.display()
        );
        std::process::exit(2);
    }
    bin.canonicalize().unwrap_or(bin)
}

/// utime + stime of a process (a pid, or `self`), in seconds.
pub fn cpu_seconds(pid: &str, tick: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is f[0]; utime is field 14, stime 15.
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / tick
}

/// A `Vm*` line of /proc/<pid>/status, in KiB.
pub fn vm_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` and of its children now alive, plus the children
/// it has reaped (cutime + cstime), in seconds: the CPU a server made of
/// several processes (a PostgreSQL postmaster and its backends) has used.
pub fn tree_cpu_seconds(pid: u32, tick: f64) -> f64 {
    let fields = |p: &str| -> Vec<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return Vec::new() };
        // f[0] is field 3 (state); ppid is field 4, utime 14 … cstime 17.
        rest.split_whitespace().map(|s| s.parse::<f64>().unwrap_or(0.0)).collect()
    };
    let me = fields(&pid.to_string());
    let get = |f: &[f64], i: usize| f.get(i).copied().unwrap_or(0.0);
    let mut ticks = get(&me, 11) + get(&me, 12) + get(&me, 13) + get(&me, 14);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(p) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let f = fields(p);
        if get(&f, 1) as u32 == pid {
            ticks += get(&f, 11) + get(&f, 12);
        }
    }
    ticks / tick
}

/// Busy time of all CPUs of the machine so far (everything but idle and
/// iowait in /proc/stat), in seconds.
pub fn machine_busy_seconds(tick: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let v: Vec<f64> = line.split_whitespace().skip(1).take(8).map(|s| s.parse().unwrap_or(0.0)).collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle) / tick
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of /proc CPU times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The wall clock, in ms since the Unix epoch.
pub fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The `p`th percentile (nearest rank) of sorted values.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A `tend serve` started in a scratch directory.
pub struct Server {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub base: String,
}

impl Server {
    /// Starts `bin serve --config tend.toml --listen 127.0.0.1:0` in `dir`
    /// (which holds tend.toml and the runbooks), with `TEND_TOKEN` set to
    /// `token`, its log in `dir/server.log`; waits until it listens.
    pub async fn start(bin: &Path, dir: &Path, token: &str) -> Server {
        Server::start_with_env(bin, dir, token, &[]).await
    }

    /// [`Server::start`] with extra environment variables (e.g. `TEND_DB`).
    pub async fn start_with_env(bin: &Path, dir: &Path, token: &str, env: &[(&str, &str)]) -> Server {
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(["serve", "--config", "tend.toml", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("TEND_TOKEN", token)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(a) = line.strip_prefix("listening on ") {
                    return Some(a.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("tend serve did not report `listening on`; its log:\n{log}")
        });
        // Keep draining stdout so the server never writes to a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { child, pid, base: format!("http://{addr}") }
    }

    /// SIGTERM, then wait for the drain to end.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(other) => eprintln!("tend serve exited with {other:?}"),
            Err(_) => {
                eprintln!("tend serve did not stop within 60 s; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}
