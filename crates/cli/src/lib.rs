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
pub mod command;
pub mod keyfile;
