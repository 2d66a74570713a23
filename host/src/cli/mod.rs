//! The command line: argument parsing and dispatch. Each subcommand group
//! lives in its own file; all of them print through this module's helpers
//! so errors look the same everywhere: `tend: <one line>` on stderr.

/// `println!` for command output, except that a closed stdout
/// (`tend runs list | head`) is not a panic: the rest of the output is
/// dropped and the command carries on (a run still finishes and is recorded).
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod demo;
mod plugins;
mod runbooks;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Writes command output to stdout. After the first failed write (the
/// reader went away), nothing more is written.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_fmt(args).and_then(|()| stdout.flush()).is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Treats an empty environment variable that stands for a flag
/// (`TEND_CACHE_DIR=`, as env files and compose often write) as unset,
/// instead of as a flag given no value. Other variables (secrets) are left
/// alone. Must run before any other thread exists.
fn unset_empty_flag_variables() {
    fn names(cmd: &clap::Command, out: &mut Vec<std::ffi::OsString>) {
        out.extend(cmd.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_owned()));
        for sub in cmd.get_subcommands() {
            names(sub, out);
        }
    }
    let mut flags = Vec::new();
    names(&<Cli as clap::CommandFactory>::command(), &mut flags);
    for name in flags {
        if std::env::var_os(&name).is_some_and(|v| v.is_empty()) {
            // SAFETY: called first thing in `main`, before the async runtime
            // or any other thread exists, so nothing reads the environment
            // at the same time.
            unsafe { std::env::remove_var(&name) };
        }
    }
}

/// Exit code for a step or run that failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad input: arguments, files, names.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "tend", version, about = "Runbook automation where every step is a sandboxed WebAssembly component")]
pub struct Cli {
    /// Directory of extra plugins (*.wasm components, named by file stem) [default: plugins].
    #[arg(long = "plugins", global = true, env = "TEND_PLUGINS", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME/tend/components).
    #[arg(long, global = true, env = "TEND_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// The database that records runs, escalations and plugin state: a SQLite file path or sqlite: URL, or a postgres:// URL [default: tend.db].
    // The value is hidden from `--help`: a URL may hold a password.
    #[arg(long = "db", global = true, env = "TEND_DB", value_name = "PATH|URL", hide_env_values = true)]
    pub db_path: Option<String>,

    /// Directory of runbooks (where `tend run NAME` looks) [default: runbooks].
    #[arg(long = "runbooks", global = true, env = "TEND_RUNBOOKS", value_name = "DIR")]
    pub runbooks_dir: Option<PathBuf>,

    /// Log filter for tend's own log on stderr, e.g. "info" or "tend=debug"
    /// [default: warn, and info for `tend serve`].
    #[arg(long, global = true, env = "TEND_LOG")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect and call plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Check runbook files without running them; prints every problem as file:line:col: message.
    Validate(runbooks::ValidateArgs),
    /// Run a runbook and show its progress.
    Run(runbooks::RunArgs),
    /// List, show, approve, reject and cancel runs.
    #[command(subcommand)]
    Runs(runbooks::RunsCommand),
    /// List, acknowledge and resolve escalations.
    #[command(subcommand)]
    Escalations(runbooks::EscalationsCommand),
    /// Run the service: HTTP API, runbook triggers, crash recovery.
    Serve(serve::ServeArgs),
    /// The demo: breaks a service on purpose and watches health-cycle heal
    /// it; `tend demo service` runs that service alone.
    Demo(demo::DemoArgs),
}

impl Cli {
    /// The database setting (a path or a URL, given to `Store::open` as
    /// is): `--db`, `TEND_DB`, else `tend.db`.
    pub fn db(&self) -> &str {
        self.db_path.as_deref().unwrap_or("tend.db")
    }

    /// The runbooks directory: `--runbooks`, `TEND_RUNBOOKS`, else `runbooks`.
    pub fn runbooks(&self) -> PathBuf {
        self.runbooks_dir.clone().unwrap_or_else(|| PathBuf::from("runbooks"))
    }

    /// The plugins directory: `--plugins`, `TEND_PLUGINS`, else `plugins`.
    pub fn plugins(&self) -> PathBuf {
        self.plugins_dir.clone().unwrap_or_else(|| PathBuf::from("plugins"))
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    unset_empty_flag_variables();
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        let json = args.log_format.as_deref() == Some("json");
        init_tracing(cli.log.as_deref().unwrap_or("info"), json);
    } else if let Command::Run(_) | Command::Demo(_) = &cli.command {
        // Escalations already show in the run's progress; the log sink's
        // copy would say everything twice.
        init_tracing(cli.log.as_deref().unwrap_or("warn,tend::escalation=error"), false);
    } else {
        init_tracing(cli.log.as_deref().unwrap_or("warn"), false);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        match &cli.command {
            Command::Plugins(cmd) => plugins::run(&cli, cmd).await,
            Command::Validate(args) => runbooks::validate(&cli, args).await,
            Command::Run(args) => runbooks::run(&cli, args).await,
            Command::Runs(cmd) => runbooks::runs(&cli, cmd).await,
            Command::Escalations(cmd) => runbooks::escalations(&cli, cmd).await,
            Command::Serve(args) => serve::run(&cli, args).await,
            Command::Demo(args) => demo::run(&cli, args).await,
        }
    })
}

fn init_tracing(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if json {
        let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
    }
}

/// The plugin runtime for a command: built-in plugins plus the plugins
/// directory, the compile cache, `state` for runbook state (in memory
/// when None) and `secrets`. Problems with plugin files are printed as
/// warnings.
pub(crate) fn runtime(
    cli: &Cli,
    state: Option<std::sync::Arc<dyn crate::runtime::caps::state::StateStore>>,
    secrets: std::sync::Arc<dyn crate::runtime::caps::secrets::SecretSource>,
) -> anyhow::Result<crate::runtime::Runtime> {
    let mut config = crate::runtime::RuntimeConfig {
        plugin_dir: Some(cli.plugins()),
        cache_dir: cli.cache_dir.clone().or_else(crate::runtime::engine::CompileCache::default_dir),
        secrets,
        ..crate::runtime::RuntimeConfig::default()
    };
    if let Some(state) = state {
        config.state = state;
    }
    let rt = crate::runtime::Runtime::new(config)?;
    for warning in &rt.load_warnings {
        eprintln!("tend: warning: {warning}");
    }
    Ok(rt)
}

/// Prints `tend: <message>` (first line only) on stderr and returns `code`.
pub(crate) fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    let message = message.to_string();
    let line = message.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    eprintln!("tend: {line}");
    ExitCode::from(code)
}
