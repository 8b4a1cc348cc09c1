//! `healthchain keygen` and `healthchain genesis`: creating a real network.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use ledger_core::{Genesis, Keypair, Timestamp};

use crate::args::{GenesisArgs, KeygenArgs};
use crate::input::{Input, Line};
use crate::keyfile;
use crate::roster::{self, NetworkSettings, Producers};

/// Environment variable holding a key file's passphrase, for scripts.
pub(crate) const PASSPHRASE_ENV: &str = "HEALTHCHAIN_PASSPHRASE";

/// Writes a new encrypted key file and prints its public key.
pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} already exists; choose another file", args.out.display());
    }
    let passphrase = passphrase(args.passphrase_file.as_deref(), true)?;
    let keys = Keypair::generate(&mut rand::rng());
    keyfile::write_new(&args.out, &keys, &passphrase)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("Key file: {}", args.out.display());
    println!("Public key: {}", keys.account());
    println!("Encryption key: {}", encryption_entry_hex(&keys));
    Ok(())
}

/// The member's encryption key and the signature binding it to the signing key, in hex:
/// the roster's `encryption_key_hex` column.
pub(crate) fn encryption_entry_hex(keys: &Keypair) -> String {
    health_workflow::seal::EncryptionKey::of_member(keys)
        .roster_entry(keys)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Builds a genesis file from a roster and prints the network's genesis hash.
pub(crate) fn genesis(args: &GenesisArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} already exists; choose another file", args.out.display());
    }
    let file = std::fs::File::open(&args.roster)
        .with_context(|| format!("opening roster {}", args.roster.display()))?;
    let settings = NetworkSettings {
        network: args.network.clone(),
        pow_bits: args.pow_bits,
        reserve_supply: args.reserve_supply,
        producers: if args.open_mining {
            Producers::Open
        } else if args.producers.is_empty() {
            Producers::CareTeam
        } else {
            Producers::Named(args.producers.clone())
        },
        timestamp: args.timestamp.map_or_else(now, Timestamp),
        reward_lab_result: args.reward_lab_result,
        reward_fill: args.reward_fill,
        lab_payment: args.lab_payment,
    };
    let genesis = roster::build_genesis(file, &settings)
        .with_context(|| format!("reading roster {}", args.roster.display()))?;
    write_genesis(&args.out, &genesis)?;
    println!("Genesis file: {}", args.out.display());
    println!("Network: {}", genesis.network);
    println!("Members: {}", genesis.roster.len());
    match &genesis.producers {
        Some(producers) => println!(
            "Block producers: {} ({} needed to make a block final)",
            producers.len(),
            producers.len() / 2 + 1
        ),
        None => println!(
            "WARNING: open mining: anyone with enough proof of work may produce blocks and \
             no block is ever final; never use this network for real patient data."
        ),
    }
    println!("Genesis hash: {}", genesis.hash());
    Ok(())
}

/// Writes a genesis file (its canonical encoding).
pub(crate) fn write_genesis(path: &Path, genesis: &Genesis) -> anyhow::Result<()> {
    std::fs::write(path, genesis.encode()).with_context(|| format!("writing {}", path.display()))
}

/// Reads and checks a genesis file.
pub fn read_genesis(path: &Path) -> anyhow::Result<Genesis> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Genesis::decode(&bytes)
        .with_context(|| format!("{} is not a valid genesis file", path.display()))
}

/// Reads and decrypts a key file, getting the passphrase from `passphrase_file`, the
/// environment or the terminal.
pub(crate) fn read_key(path: &Path, passphrase_file: Option<&Path>) -> anyhow::Result<Keypair> {
    let passphrase = passphrase(passphrase_file, false)?;
    keyfile::read(path, &passphrase).with_context(|| format!("opening key file {}", path.display()))
}

/// The current time.
pub(crate) fn now() -> Timestamp {
    let millis = chrono::Utc::now().timestamp_millis();
    Timestamp(u64::try_from(millis).unwrap_or(0))
}

/// A passphrase from a file (first line), the environment, or the terminal (asked
/// twice when `confirm`).
fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading passphrase file {}", file.display()))?;
        let first = text.lines().next().unwrap_or_default().to_string();
        if first.is_empty() {
            bail!("passphrase file {} is empty", file.display());
        }
        return Ok(first);
    }
    if let Ok(value) = std::env::var(PASSPHRASE_ENV)
        && !value.is_empty()
    {
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: use --passphrase-file or set {PASSPHRASE_ENV}");
    }
    let mut input = Input::from_stdin();
    let ask = |input: &mut Input, question: &str| -> anyhow::Result<String> {
        match input.secret(question)? {
            Line::Text(text) if !text.is_empty() => Ok(text),
            Line::Text(_) => bail!("the passphrase must not be empty"),
            Line::Interrupted | Line::End => bail!("no passphrase given"),
        }
    };
    let first = ask(&mut input, "Passphrase: ")?;
    if confirm && ask(&mut input, "Passphrase again: ")? != first {
        bail!("the two passphrases differ");
    }
    Ok(first)
}
