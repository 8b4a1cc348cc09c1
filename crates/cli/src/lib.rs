//! The `healthchain` command: a ledger node with an interactive prompt per role
//! (Doctor, Lab, Pharmacy), a headless node, key and genesis tooling, chain
//! generation and verification for measuring the ledger at scale, and FHIR R4 import
//! and export.
//!
//! ```text
//! healthchain doctor   --port 5001 --peers 127.0.0.1:5002,127.0.0.1:5003
//! healthchain lab      --port 5002 --peers 127.0.0.1:5001,127.0.0.1:5003
//! healthchain pharmacy --port 5003 --peers 127.0.0.1:5001,127.0.0.1:5002
//! healthchain node     --port 5000 --peers 127.0.0.1:5001        # no prompt
//! healthchain patient  --key healthchain-data/DoctorNode-5001/patients/<id>.key \
//!                      --peers 127.0.0.1:5001,127.0.0.1:5002     # the patient's prompt
//! healthchain keygen   --out alice.key
//! healthchain genesis  --roster roster.csv --out clinic.genesis --network clinic
//! healthchain doctor   --port 5001 --genesis clinic.genesis --key alice.key
//! healthchain generate --blocks 1000 --txs-per-block 1000 --data-dir bench
//! healthchain verify   --data-dir bench
//! healthchain import   --fhir synthea/fhir --data-dir healthchain-data/DoctorNode-5001
//! healthchain export   --patient 0bc48549 --out record.json     # FHIR R4 Bundle
//! ```
//!
//! Without `--genesis` a node joins the built-in DEMO network (the original project's
//! logins `dr_alice`/`password123`, `lab_tech_bob`/`labpass`,
//! `pharm_charlie`/`pharmpass`, with public demo keys) and says so at start-up. With
//! `--genesis FILE --key FILE` it joins a real network; the key file's passphrase is
//! asked once at start-up (or read from `--passphrase-file` or `HEALTHCHAIN_PASSPHRASE`)
//! and is also the password of that user's `login`.
//!
//! A node's data directory (`--data-dir`, default `healthchain-data/<node name>`)
//! holds the block store `blocks.redb`, the genesis it belongs to (`genesis.bin`; a
//! node refuses a directory of another network) and `patient_registry.csv`, rewritten
//! from the chain whenever it changes. Roles listen on 5001 (doctor), 5002 (lab), 5003
//! (pharmacy) and 5000 (node) unless `--port` says otherwise; `--port 0` listens on a
//! free port, shown in the start-up line `Node <name> listening on <address>, ...`.
//!
//! A registration writes the new patient's key file into the data directory's
//! `patients/`; `healthchain patient --key FILE` runs the patient's own node and prompt
//! (`patient` module). Every node records on chain the reads of bodies it serves and
//! that its logged-in user opens without having written them, and carries out erasure
//! requests (`care` module).
//!
//! On a terminal the prompt has line editing and history, hides passwords, and node
//! events (blocks, reorganisations, refused transactions, peers) appear above it. When
//! standard input is not a terminal, commands and the answers to their questions are
//! read line by line, so a session can be scripted; the node stops at the end of input.
//! Logs go to standard error, filtered by `RUST_LOG`.
//!
//! Modules (`args`, `command`, `keyfile`, `tools` and `chaingen` are public, for the
//! binary and the tests; the others are private to the crate):
//!
//! - [`args`]: the command line (clap).
//! - [`command`]: the REPL's command language (syntax table there), parsed without I/O.
//! - `repl`: the REPL's state (`Repl`) and what each command does, over a
//!   `Backend` (a running node, or a plain ledger in tests), which returns data,
//!   and a `Conversation` (the person).
//! - `views`: reads the chain, pending transactions, balances and history off a
//!   ledger, and turns them and the backend's answers into the lines the REPL prints.
//! - `input`: terminal (rustyline) or scripted input, and printing above the prompt.
//! - `launch`: starting a node (p2p) with or without the REPL; signals; the registry.
//! - [`keyfile`]: passphrase-encrypted signing keys (argon2id + XChaCha20-Poly1305).
//! - `roster`: the roster CSV format and the genesis built from it.
//! - [`tools`]: `keygen` and `genesis`, and reading genesis and key files.
//! - [`chaingen`]: `generate` and `verify`.
//!
//! # Example
//!
//! ```
//! use healthchain_cli::command::{parse, Command};
//!
//! let command = parse("consult --test y \"Fever, cough\"")?;
//! assert_eq!(
//!     command,
//!     Some(Command::Consult { notes: Some("Fever, cough".into()), order_test: Some(true) })
//! );
//! # Ok::<(), healthchain_cli::command::ParseError>(())
//! ```

mod api;
pub mod args;
mod bench;
mod care;
pub mod chaingen;
pub mod command;
mod cpu;
mod fhir;
mod input;
pub mod keyfile;
mod launch;
mod lens;
mod logins;
mod patient;
mod repl;
mod roster;
pub mod tools;
mod views;

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
        Command::Doctor(args) => launch::run(Some(args::NodeRole::Doctor), args),
        Command::Lab(args) => launch::run(Some(args::NodeRole::Lab), args),
        Command::Pharmacy(args) => launch::run(Some(args::NodeRole::Pharmacy), args),
        Command::Node(args) => launch::run(None, args),
        Command::Patient(args) => patient::run(args),
        Command::Generate(args) => chaingen::generate(&args),
        Command::Verify(args) => chaingen::verify(&args),
        Command::Export(args) => fhir::export_command(&args),
        Command::Import(args) => fhir::import_command(&args),
        Command::BenchNet(args) => bench::run(&args),
    }
}
