//! The `healthchain` binary: parses the command line, runs the command, and on failure
//! prints the error with its causes and exits with status 1.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = healthchain_cli::args::Cli::parse();
    healthchain_cli::init_logging();
    match healthchain_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
