//! `host.log`: lines a plugin writes to its step's log. Always allowed;
//! bounded in line count and size so a chatty plugin cannot exhaust the host.

use crate::runtime::bindings::types;
use crate::runtime::record::{LogLevel, LogLine};

/// Most `host.log` lines kept per step.
pub const MAX_LINES: usize = 1000;
/// Longest message kept, in bytes; longer ones are cut.
pub const MAX_LINE_BYTES: usize = 4096;

/// Per-step log buffer.
#[derive(Debug, Default)]
pub struct LogCap {
    pub lines: Vec<LogLine>,
    /// Lines dropped because `MAX_LINES` was reached.
    pub dropped: u64,
}

impl LogCap {
    /// Part two: per-step state (logging needs no grant).
    pub fn new() -> Self {
        LogCap::default()
    }

    /// Part three: `host.log`.
    pub fn log(&mut self, level: LogLevel, message: String) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        // Not traced here: the line is redacted with the record first.
        let message = truncate(message, MAX_LINE_BYTES);
        self.lines.push(LogLine { level, message });
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" [truncated]");
    }
    s
}

/// The contract's log level.
impl From<types::LogLevel> for LogLevel {
    fn from(level: types::LogLevel) -> LogLevel {
        match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let mut log = LogCap::new();
        for i in 0..MAX_LINES + 5 {
            log.log(LogLevel::Info, format!("line {i}"));
        }
        assert_eq!(log.lines.len(), MAX_LINES);
        assert_eq!(log.dropped, 5);
        assert_eq!(truncate("héllo".into(), 2), "h [truncated]");
    }
}
