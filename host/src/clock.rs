//! Time: milliseconds since the Unix epoch ([`now_ms`]) and the [`Clock`]
//! the engine and the scheduler read, so tests run retries, intervals,
//! approvals and cron fires on virtual time. A leaf: imports nothing of
//! tend (no store, engine, scheduler, serve, api or cli).

use std::time::Duration;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Time as the engine sees it.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Waits `d`.
    async fn sleep(&self, d: Duration);
    /// A number in [0, 1) for jitter.
    fn random(&self) -> f64;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
    fn random(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// A clock a test moves: every [`Clock::now_ms`] reads an RFC 3339 instant
/// (`2026-03-29T00:59:30Z`, or with an offset) from a file, so rewriting
/// the file moves time. `tend serve` gives it to the scheduler when
/// `TEND_CLOCK_FILE` is set, to test cron triggers on the real binary.
/// Sleeping and randomness are the system's. When the file cannot be read
/// or does not hold an instant, the last good instant stays and an error
/// naming the file is logged (once, until the file is good again).
#[derive(Debug)]
pub struct FileClock {
    path: std::path::PathBuf,
    last: std::sync::atomic::AtomicI64,
    broken: std::sync::atomic::AtomicBool,
}

impl FileClock {
    /// Reads the file once; an error (naming the file and what it should
    /// hold) when it does not give an instant.
    pub fn open(path: impl Into<std::path::PathBuf>) -> anyhow::Result<FileClock> {
        let path = path.into();
        let now = Self::read(&path).map_err(anyhow::Error::msg)?;
        Ok(FileClock { path, last: now.into(), broken: false.into() })
    }

    fn read(path: &std::path::Path) -> Result<i64, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("clock file {}: {e}", path.display()))?;
        let text = text.trim();
        text.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|e| {
            let shown: String = text.chars().take(80).collect();
            format!(
                "clock file {}: {shown:?} is not an RFC 3339 instant; expected e.g. 2026-03-29T00:59:30Z ({e})",
                path.display()
            )
        })
    }
}

#[async_trait::async_trait]
impl Clock for FileClock {
    fn now_ms(&self) -> i64 {
        use std::sync::atomic::Ordering;
        match Self::read(&self.path) {
            Ok(now) => {
                self.last.store(now, Ordering::SeqCst);
                self.broken.store(false, Ordering::SeqCst);
                now
            }
            Err(e) => {
                if !self.broken.swap(true, Ordering::SeqCst) {
                    tracing::error!("{e}; keeping the last time read");
                }
                self.last.load(Ordering::SeqCst)
            }
        }
    }
    async fn sleep(&self, d: Duration) {
        SystemClock.sleep(d).await
    }
    fn random(&self) -> f64 {
        SystemClock.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_clock_reads_the_file_and_keeps_the_last_good_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        let err = FileClock::open(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("clock file {}: ", path.display())), "{err}");
        std::fs::write(&path, "2026-03-29T00:59:30Z\n").unwrap();
        let clock = FileClock::open(&path).unwrap();
        assert_eq!(clock.now_ms(), 1_774_745_970_000);
        std::fs::write(&path, "2026-03-29T03:00:00+02:00").unwrap();
        assert_eq!(clock.now_ms(), 1_774_746_000_000, "offsets are honoured");
        std::fs::write(&path, "tomorrow").unwrap();
        assert_eq!(clock.now_ms(), 1_774_746_000_000, "a bad file keeps the last good time");
        let err = FileClock::open(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "clock file {}: \"tomorrow\" is not an RFC 3339 instant; expected e.g. 2026-03-29T00:59:30Z ({})",
                path.display(),
                "tomorrow".parse::<jiff::Timestamp>().unwrap_err()
            )
        );
    }
}
