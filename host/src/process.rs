//! Process liveness: the owner string a tend process writes on the runs it
//! runs (`pid@hostname`), and whether the process behind such an owner is
//! gone. A leaf: imports nothing of tend; reads `/proc` only.

use std::path::Path;

/// This machine's name, for run owners.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The owner string of this process: `pid@hostname`.
pub fn this_owner() -> String {
    format!("{}@{}", std::process::id(), hostname())
}

/// Whether an owner `pid@host` on this host no longer runs. Owners on
/// other hosts are judged by their heartbeat alone.
pub fn owner_is_dead(owner: &str, host: &str) -> bool {
    let Some((pid, owner_host)) = owner.split_once('@') else { return false };
    if owner_host != host || !Path::new("/proc/self").exists() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_dead_only_when_its_process_on_this_host_is_gone() {
        let host = hostname();
        // pid 4194305 is above Linux's pid_max: never alive.
        assert!(owner_is_dead(&format!("4194305@{host}"), &host));
        assert!(!owner_is_dead(&this_owner(), &host), "this process is alive");
        assert!(!owner_is_dead("4194305@elsewhere", &host), "other hosts are judged by their heartbeat");
        assert!(!owner_is_dead("not-an-owner", &host));
    }
}
