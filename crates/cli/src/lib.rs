//! The `healthchain` command: a ledger node with an interactive prompt per role
//! (Doctor, Lab, Pharmacy), a headless node, key and genesis tooling, and chain
//! generation and verification for measuring the ledger at scale.
//!
//! Modules:
//!
//! - [`args`]: the command line (clap).
//! - [`command`]: the REPL's command language, parsed without I/O.
//! - [`keyfile`]: passphrase-encrypted signing keys (argon2id + XChaCha20-Poly1305).
//!
//! # Example
//!
//! ```
//! use healthchain_cli::command::{parse, Command};
//!
//! let command = parse("register Jane Doe")?;
//! assert_eq!(command, Some(Command::Register { name: Some("Jane Doe".into()) }));
//! # Ok::<(), healthchain_cli::command::ParseError>(())
//! ```

pub mod args;
pub mod chaingen;
pub mod command;
pub mod input;
pub mod keyfile;
pub mod node;
pub mod roster;
pub mod session;
pub mod tools;
pub mod views;

use args::{Cli, Command};

/// Sends `tracing` logs to standard error, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one `healthchain` command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen(args) => tools::keygen(&args),
        Command::Genesis(args) => tools::genesis(&args),
        Command::Doctor(args) => node::run(Some(args::Role::Doctor), args),
        Command::Lab(args) => node::run(Some(args::Role::Lab), args),
        Command::Pharmacy(args) => node::run(Some(args::Role::Pharmacy), args),
        Command::Node(args) => node::run(None, args),
        Command::Generate(args) => chaingen::generate(&args),
        Command::Verify(args) => chaingen::verify(&args),
    }
}
