//! Per-step limits (time, memory, stack) and the memory limiter that
//! enforces the memory limit across all of a component's memories.
//! Owns no I/O.

use std::time::Duration;

/// Limits for one step. Every field has a default; runbooks and
/// `tend plugins call` override them per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for the whole call, host calls included.
    /// By default 30 seconds.
    pub timeout: Duration,
    /// Linear memory across all of the component's memories, in bytes.
    /// By default 128 MiB; at most [`Limits::MAX_MEMORY`].
    pub memory_bytes: u64,
    /// WebAssembly stack, in bytes. By default 512 KiB (wasmtime's own
    /// default); between [`Limits::MIN_STACK`] and [`Limits::MAX_STACK`].
    pub stack_bytes: usize,
    /// Bytes of stdout and of stderr kept for the step's log; the rest is
    /// counted and dropped, never trapping the guest. By default 64 KiB each.
    pub output_bytes: usize,
    /// Size of the JSON `data` a step may return. By default 16 MiB.
    pub max_data_bytes: usize,
}

impl Limits {
    /// Largest memory limit a step may ask for: 4 GiB (wasm32's address space).
    pub const MAX_MEMORY: u64 = 4 << 30;
    /// Smallest stack a step may ask for: 64 KiB.
    pub const MIN_STACK: usize = 64 << 10;
    /// Largest stack a step may ask for: 16 MiB.
    pub const MAX_STACK: usize = 16 << 20;
    /// Default stack: 512 KiB.
    pub const DEFAULT_STACK: usize = 512 << 10;

    /// Checks the limits are within what the runtime supports.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("timeout must be greater than zero".into());
        }
        if self.memory_bytes == 0 || self.memory_bytes > Self::MAX_MEMORY {
            return Err(format!(
                "memory limit {} is out of range; expected 1 byte to 4 GiB",
                crate::units::format_bytes(self.memory_bytes)
            ));
        }
        if !(Self::MIN_STACK..=Self::MAX_STACK).contains(&self.stack_bytes) {
            return Err(format!(
                "stack size {} is out of range; expected 64 KiB to 16 MiB",
                crate::units::format_bytes(self.stack_bytes as u64)
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 128 << 20,
            stack_bytes: Self::DEFAULT_STACK,
            output_bytes: 64 << 10,
            max_data_bytes: 16 << 20,
        }
    }
}

/// Most table elements a step may grow its tables to, in total.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Tracks linear memory across every memory of one store and refuses
/// growth past the step's limit. Refusal makes `memory.grow` return -1
/// (guests such as Python can handle that); the flag records it so a trap
/// that follows is reported as "out of memory".
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    current: u64,
    peak: u64,
    /// Set when a growth was refused.
    pub hit_limit: bool,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        MemoryLimiter { limit, current: 0, peak: 0, hit_limit: false }
    }

    /// Highest total linear memory the step had, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current) as u64;
        let total = self.current.saturating_add(grow);
        if total > self.limit {
            self.hit_limit = true;
            return Ok(false);
        }
        self.current = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit_limit = true;
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn limiter_counts_all_memories_together() {
        let mut l = MemoryLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 6 << 20, None).unwrap());
        assert!(l.memory_growing(0, 3 << 20, None).unwrap());
        // A second memory pushing the total past the limit is refused.
        assert!(!l.memory_growing(3 << 20, 5 << 20, None).unwrap());
        assert!(l.hit_limit);
        assert_eq!(l.peak(), 9 << 20);
    }

    #[test]
    fn limits_are_checked() {
        assert!(Limits::default().check().is_ok());
        let l = Limits { stack_bytes: 1024, ..Limits::default() };
        assert_eq!(l.check().unwrap_err(), "stack size 1 KiB is out of range; expected 64 KiB to 16 MiB");
        let l = Limits { memory_bytes: 8 << 30, ..Limits::default() };
        assert_eq!(l.check().unwrap_err(), "memory limit 8 GiB is out of range; expected 1 byte to 4 GiB");
    }
}
