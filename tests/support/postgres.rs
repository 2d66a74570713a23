//! Throw-away PostgreSQL cluster for tests. Standard library only.
//!
//! ```ignore
//! let pg = Postgres::start()?;                 // initdb + postgres on a free 127.0.0.1 port
//! let url = pg.create_database("tend_a")?;     // postgres://postgres@127.0.0.1:PORT/tend_a
//! // ... point `tend serve --db-url $url` / sqlx::PgPool::connect(&url) at it ...
//! drop(pg);                                    // fast shutdown + rm -rf of the temp dir
//! ```
//!
//! How it works
//! * Binaries: `$TEND_PG_BINDIR`, else the newest `/usr/lib/postgresql/<ver>/bin` (Debian/Ubuntu),
//!   else `initdb` found on `$PATH`. Missing -> error naming the Debian package `postgresql`.
//! * Temp dir `<tmp>/tend-pg-<pid>-<n>-<nanos>/` (mode 0700) holds `data/` (the cluster),
//!   the unix socket (`-k`), `postgres.log` and `initdb.log`. `<tmp>` is `$TEND_PG_TMPDIR`,
//!   else `/dev/shm` when it is a tmpfs of >= 1 GiB, else `std::env::temp_dir()`; as root, a
//!   base that `nobody` cannot traverse (e.g. TMPDIR=/root/tmp) is replaced by `/tmp`.
//! * initdb/postgres refuse to run as root. When the effective uid is 0, the temp dir is
//!   chowned to `nobody:nogroup` (uid/gid read from /etc/passwd, default 65534) and initdb,
//!   postgres and the watchdog are spawned with `CommandExt::uid/gid` (std drops the
//!   supplementary groups too). As a normal user everything runs as that user.
//! * Auth is `trust` (loopback only: `listen_addresses=127.0.0.1`); superuser is `postgres`.
//! * Startup waits on `pg_isready` (30 s max); a port lost to a race is retried with a new port.
//! * Stop: SIGINT to the postmaster (= "fast" shutdown: disconnects clients, exits in ~20 ms),
//!   SIGKILL after 10 s, then the dir is removed. Runs in `Drop`, so also on panic-unwind.
//! * Watchdog: a `sh` child (same unprivileged uid) blocks reading a pipe whose write end only
//!   this process holds. If the process dies without running Drop (SIGKILL, `process::exit`,
//!   CI timeout, or a `static` Postgres that is never dropped), the read hits EOF and the
//!   watchdog stops postgres and deletes the dir. It ignores SIGINT/SIGTERM/SIGHUP so a Ctrl-C
//!   on the process group does not skip the cleanup.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUPERUSER: &str = "postgres";
const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres, pg_isready, psql) not found. \
     Install Debian's package `postgresql`: \
     apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends postgresql \
     (binaries land in /usr/lib/postgresql/<ver>/bin), or set TEND_PG_BINDIR to a directory holding initdb";

/// Server settings for a disposable test cluster. Durability is off on purpose.
const SERVER_SETTINGS: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200", // 3 x `tend serve` (sqlx pool 10 + PgListener 1) + tests; default is 100
    "shared_buffers=64MB",
    "timezone=UTC",
    "log_timezone=UTC",
    "lc_messages=C",
    "logging_collector=off", // log to stderr -> postgres.log
    "log_min_messages=warning",
    "max_wal_size=1GB",
    "checkpoint_timeout=30min",
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Postgres {
    dir: PathBuf,
    data: PathBuf,
    bindir: PathBuf,
    port: u16,
    /// Some((uid, gid)) when we run as root and drop to nobody for the server.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Postgres {
    /// initdb + start a cluster; returns once it accepts connections.
    pub fn start() -> Result<Postgres, String> {
        let bindir = find_bindir()?;
        let run_as = if effective_uid() == Some(0) { Some(nobody_ids()) } else { None };
        let dir = make_temp_dir(run_as)?;
        let data = dir.join("data");
        // From here on, `pg` owns the dir: an early `return Err` drops it and cleans up.
        let mut pg = Postgres { dir, data, bindir, port: 0, run_as, child: None, watchdog: None };
        pg.initdb()?;
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            match pg.spawn_server(port) {
                Ok(()) => {
                    pg.spawn_watchdog();
                    return Ok(pg);
                }
                Err(e) if e.contains("Address already in use") => last_err = e, // lost the port race
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory that holds the unix socket (`.s.PGSQL.<port>`); usable as `host=` in libpq/sqlx.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>` (trust auth, no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// CREATE DATABASE `name` (letters, digits, `_` only); returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty() || name.len() > 63 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad database name {name:?}: use [A-Za-z0-9_], at most 63 chars"));
        }
        // template0 + FILE_COPY: no WAL-logging of the copy (PG15 default is WAL_LOG; slower).
        let strategy = if self.major_version() >= 15 { " STRATEGY = FILE_COPY" } else { "" };
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\" TEMPLATE template0{strategy}"))?;
        Ok(self.url(name))
    }

    /// A fresh database with a unique name `<prefix>_<n>`; returns (name, url).
    pub fn unique_database(&self, prefix: &str) -> Result<(String, String), String> {
        let name = format!("{prefix}_{}", COUNTER.fetch_add(1, Ordering::Relaxed));
        let url = self.create_database(&name)?;
        Ok((name, url))
    }

    /// Run SQL through `psql` (as the client, i.e. as the calling user); returns unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .client_cmd("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "psql -c {sql:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Fast shutdown and removal of the temp dir (what Drop does). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            // `kill` as a shell builtin: /bin/sh always exists, /usr/bin/kill (procps) may not.
            let _ = Command::new("/bin/sh")
                .args(["-c", "kill -INT \"$1\"", "sh", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    _ => {
                        let _ = child.kill(); // SIGKILL; orphaned backends exit on postmaster death
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some((mut wd, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"done\n"); // "already cleaned up, just exit"
            drop(stdin);
            let _ = wd.wait();
        }
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    // ---------------------------------------------------------------- internals

    fn server_cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bindir.join(prog));
        clean_env(&mut c);
        c.env("HOME", &self.dir);
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c.current_dir(&self.dir);
        c
    }

    fn client_cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bindir.join(prog));
        clean_env(&mut c);
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER]);
        c
    }

    fn major_version(&self) -> u32 {
        fs::read_to_string(self.data.join("PG_VERSION")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    fn initdb(&self) -> Result<(), String> {
        let log = self.dir.join("initdb.log");
        let out = self
            .server_cmd("initdb")
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(|e| format!("spawning {}: {e}", self.bindir.join("initdb").display()))?;
        let _ = fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}){}: {}{}",
                out.status,
                self.run_as.map(|(u, g)| format!(" as uid {u} gid {g}")).unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).lines().last().map(|l| format!(" / {l}")).unwrap_or_default(),
            ));
        }
        Ok(())
    }

    fn spawn_server(&mut self, port: u16) -> Result<(), String> {
        let log_path = self.dir.join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = self.server_cmd("postgres");
        cmd.arg("-D").arg(&self.data).args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"]).arg(&self.dir);
        for s in SERVER_SETTINGS {
            cmd.args(["-c", s]);
        }
        let child =
            cmd.stdin(Stdio::null()).stdout(log).stderr(log2).spawn().map_err(|e| format!("spawning postgres: {e}"))?;
        self.port = port;
        self.child = Some(child);

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                return Err(format!(
                    "postgres exited during startup ({status}); log {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 15)
                ));
            }
            let ready = self
                .client_cmd("pg_isready")
                .args(["-q", "-d", "postgres", "-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop_child_only();
                return Err(format!(
                    "postgres not ready after 30 s; log {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 15)
                ));
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    fn stop_child_only(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn spawn_watchdog(&mut self) {
        let Some(child) = self.child.as_ref() else { return };
        // $1 = postmaster pid, $2 = temp dir. Runs as the same (unprivileged) user as postgres,
        // so a recycled pid can never hit a root process; the cmdline check makes it stricter.
        // A zombie (exited, not yet reaped by init) has an empty cmdline, so it counts as gone;
        // `kill -0` alone would wait the full 10 s on it.
        const SCRIPT: &str = r#"trap '' INT TERM HUP
ours() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }
read line
[ "$line" = done ] && exit 0
if ours "$1" "$2"; then
  kill -INT "$1" 2>/dev/null
  i=0
  while ours "$1" "$2" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  ours "$1" "$2" && kill -KILL "$1" 2>/dev/null
fi
rm -rf -- "$2""#;
        let mut c = Command::new("/bin/sh");
        c.args(["-c", SCRIPT, "tend-pg-watchdog", &child.id().to_string()]).arg(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        // Note: an EOF only arrives when *every* copy of the pipe's write end is closed; Rust's
        // std opens pipes with O_CLOEXEC so other spawned children do not inherit it.
        if let Ok(mut wd) = c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
            let stdin = wd.stdin.take().unwrap();
            self.watchdog = Some((wd, stdin));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

// -------------------------------------------------------------------- helpers

fn clean_env(c: &mut Command) {
    for v in [
        "PGDATA",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGOPTIONS",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSSLMODE",
        "PGTZ",
        "PGCLIENTENCODING",
    ] {
        c.env_remove(v);
    }
    // Only the C locale is guaranteed to exist; an unset/unknown LANG makes initdb fail or warn.
    c.env("LC_ALL", "C").env("LANG", "C").env("TZ", "UTC");
}

fn find_bindir() -> Result<PathBuf, String> {
    let has_all = |d: &Path| ["initdb", "postgres", "pg_isready", "psql"].iter().all(|b| d.join(b).is_file());
    if let Some(d) = std::env::var_os("TEND_PG_BINDIR") {
        let d = PathBuf::from(d);
        return if has_all(&d) {
            Ok(d)
        } else {
            Err(format!("TEND_PG_BINDIR={} lacks initdb/postgres/pg_isready/psql. {INSTALL_HINT}", d.display()))
        };
    }
    // Debian/Ubuntu: /usr/lib/postgresql/<major>/bin, pick the highest major.
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            let Some(ver) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let bin = e.path().join("bin");
            if has_all(&bin) && best.as_ref().is_none_or(|(v, _)| ver > *v) {
                best = Some((ver, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return Ok(bin);
    }
    // Other distros / Homebrew / nix: initdb on PATH.
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_all(&d) {
                return Ok(d);
            }
        }
    }
    Err(INSTALL_HINT.to_string())
}

/// Effective uid from /proc/self/status (std has no getuid()).
fn effective_uid() -> Option<u32> {
    if let Ok(s) = fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                // real, effective, saved, fs
                return rest.split_whitespace().nth(1).and_then(|x| x.parse().ok());
            }
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// uid/gid of `nobody` from /etc/passwd (Debian: 65534/65534 = nobody/nogroup).
fn nobody_ids() -> (u32, u32) {
    if let Ok(s) = fs::read_to_string("/etc/passwd") {
        for line in s.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 3
                && f[0] == "nobody"
                && let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse())
            {
                return (u, g);
            }
        }
    }
    (65534, 65534)
}

/// True if every ancestor of `p` is searchable by "others" (so `nobody` can reach it).
fn world_traversable(p: &Path) -> bool {
    p.ancestors().all(|a| fs::metadata(a).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}

fn make_temp_dir(run_as: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let mut base = match std::env::var_os("TEND_PG_TMPDIR") {
        Some(d) => PathBuf::from(d),
        // RAM-backed: on this VM initdb+start ~40% faster, CREATE DATABASE and stop+rm ~4x faster.
        None if dev_shm_usable() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    if run_as.is_some() && !world_traversable(&base) {
        base = PathBuf::from("/tmp"); // e.g. TMPDIR=/root/tmp: nobody could not reach the data dir
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir =
        base.join(format!("tend-pg-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    // The unix socket path must stay under ~107 bytes: "<dir>/.s.PGSQL.<port>".
    if dir.as_os_str().len() > 90 {
        return Err(format!("temp dir path too long for a unix socket: {} (set TEND_PG_TMPDIR)", dir.display()));
    }
    fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = run_as
        && let Err(e) = std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
    {
        let _ = fs::remove_dir_all(&dir);
        return Err(format!("chown {} to {uid}:{gid}: {e}", dir.display()));
    }
    Ok(dir)
}

/// /dev/shm is a world-writable tmpfs of at least 1 GiB (Docker's default 64 MiB is too small:
/// a fresh cluster is ~40 MB and postgres also puts its dynamic shared memory there).
fn dev_shm_usable() -> bool {
    let sticky_world_writable =
        fs::metadata("/dev/shm").map(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777).unwrap_or(false);
    if !sticky_world_writable {
        return false;
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 || f[1] != "/dev/shm" || f[2] != "tmpfs" {
            return false;
        }
        match f[3].split(',').find_map(|o| o.strip_prefix("size=")) {
            None => true, // tmpfs default: half of RAM
            Some(sz) => {
                let (num, mult) = match sz.chars().last() {
                    Some('k') | Some('K') => (&sz[..sz.len() - 1], 1u64 << 10),
                    Some('m') | Some('M') => (&sz[..sz.len() - 1], 1 << 20),
                    Some('g') | Some('G') => (&sz[..sz.len() - 1], 1 << 30),
                    _ => (sz, 1),
                };
                num.parse::<u64>().map(|n| n * mult >= 1 << 30).unwrap_or(false)
            }
        }
    })
}

fn free_port() -> Result<u16, String> {
    // Bind :0, read the port, release it. A small race remains (handled by retry in start()).
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn tail(p: &Path, n: usize) -> String {
    let s = fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
