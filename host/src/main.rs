//! The `tend` binary: parses the command line and hands over to [`tend::cli`].

fn main() -> std::process::ExitCode {
    tend::cli::main()
}
