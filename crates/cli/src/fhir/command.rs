//! `healthchain export` and `healthchain import` on a stopped node's data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use health_workflow::demo::{DEMO_USERS, demo_encryption_key, demo_genesis, demo_keypair};
use health_workflow::seal::EncryptionKey;
use health_workflow::{
    Actor, BodyReader, Event, EventKind, HealthPolicy, PatientId, Role, is_demo,
};
use ledger_core::sealed::BodyLabel;
use ledger_core::{BodySource, Genesis, Keypair, Ledger};
use p2p::Vault;
use p2p::store::RedbStore;

use super::export::{ChainRecord, ExportReader, Exported, export};
use super::plan::{PatientPlan, plan};
use super::write::{
    LocalChain, Outcome, Signer, Signers, existing_sources, mine_all, write_prescriptions,
    write_visits,
};
use crate::args::{ExportArgs, ImportArgs};
use crate::chaingen::{GENESIS_FILE, Progress, bind_genesis};
use crate::tools;
use health_workflow::seal::{SealedBody, SealedRef};
use std::sync::Arc;

/// The data directory of the demo doctor node, used when none is given.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("healthchain-data").join("DoctorNode-5001")
}

type DirLedger = Ledger<HealthPolicy, RedbStore<Event>>;

/// Opens the chain and the vault of a stopped node's data directory.
fn open_dir(data_dir: &Path, genesis: Genesis) -> anyhow::Result<(DirLedger, Vault)> {
    let store = RedbStore::open(data_dir).with_context(|| {
        format!(
            "opening the block store in {} (is a node running on it?)",
            data_dir.display()
        )
    })?;
    let vault = Vault::open(data_dir)
        .with_context(|| format!("opening the vault in {}", data_dir.display()))?;
    let (ledger, report) = p2p::open_ledger(genesis, HealthPolicy, store)
        .with_context(|| format!("loading the chain stored in {}", data_dir.display()))?;
    if !report.is_clean() {
        bail!(
            "{} stored block(s) in {} could not be loaded; run `healthchain verify`",
            report.failed.len(),
            data_dir.display()
        );
    }
    Ok((ledger, vault))
}

/// The member `keys` belong to, with the key that opens what is sealed to it.
fn member_reader(
    genesis: &Genesis,
    key: Option<&Path>,
    passphrase_file: Option<&Path>,
    user: Option<&str>,
) -> anyhow::Result<(String, Keypair, EncryptionKey)> {
    if let Some(path) = key {
        let keys = tools::read_key(path, passphrase_file)?;
        let Some(member) = genesis.member(&keys.account()) else {
            bail!(
                "the key in {} ({}) is not a member of network '{}'",
                path.display(),
                keys.account(),
                genesis.network
            );
        };
        let encryption = EncryptionKey::of_member(&keys);
        return Ok((member.username.clone(), keys, encryption));
    }
    if !is_demo(genesis) {
        bail!(
            "network '{}' is not the demo network: give the user's --key file",
            genesis.network
        );
    }
    let user = user.unwrap_or("dr_alice");
    if !DEMO_USERS.iter().any(|u| u.username == user) {
        let names: Vec<&str> = DEMO_USERS.iter().map(|u| u.username).collect();
        bail!("'{user}' is not a demo user ({})", names.join(", "));
    }
    Ok((
        user.to_string(),
        demo_keypair(user),
        demo_encryption_key(user),
    ))
}

/// A patient by id, or by a unique prefix of one.
fn find_patient(ledger: &DirLedger, text: &str) -> anyhow::Result<PatientId> {
    let state = ledger.state().app();
    if let Ok(id) = text.parse::<PatientId>() {
        if state.patient(&id).is_some() {
            return Ok(id);
        }
        bail!("no patient {id} on this chain");
    }
    let text = text.to_ascii_lowercase();
    let matches: Vec<PatientId> = state
        .patients()
        .map(|p| p.id)
        .filter(|id| id.to_string().starts_with(&text))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no patient id starts with '{text}'"),
        _ => bail!(
            "'{text}' starts {} patient ids; give more of it",
            matches.len()
        ),
    }
}

/// The patient's confirmed transactions, in chain order.
pub(crate) fn chain_records<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    patient: &PatientId,
) -> anyhow::Result<Vec<ChainRecord>> {
    let history = ledger
        .state()
        .app()
        .history(patient)
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let mut records = Vec::with_capacity(history.len());
    for entry in history {
        let hash = usize::try_from(entry.height.0)
            .ok()
            .and_then(|h| ledger.main_chain().get(h))
            .copied()
            .with_context(|| format!("no block at height {} of the best chain", entry.height))?;
        let block = ledger
            .block(&hash)
            .with_context(|| format!("reading block {hash}"))?
            .with_context(|| format!("block {hash} is missing from the store"))?;
        let tx = block
            .transactions
            .iter()
            .find(|t| t.id() == entry.tx_id)
            .with_context(|| format!("transaction {} is not in block {hash}", entry.tx_id))?;
        records.push(ChainRecord {
            height: entry.height.0,
            block_hash: hash,
            block_time: block.header.timestamp,
            tx: tx.clone(),
        });
    }
    Ok(records)
}

/// `healthchain export`.
pub(crate) fn export_command(args: &ExportArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let genesis = tools::read_genesis(&data_dir.join(GENESIS_FILE))
        .with_context(|| format!("{} is not a healthchain data directory", data_dir.display()))?;
    let (user, keys, encryption) = member_reader(
        &genesis,
        args.key.as_deref(),
        args.passphrase_file.as_deref(),
        args.user.as_deref(),
    )?;
    let (ledger, vault) = open_dir(&data_dir, genesis)?;
    let patient = find_patient(&ledger, &args.patient)?;
    let records = chain_records(&ledger, &patient)?;
    let read_vault = |hash: &ledger_core::Hash| vault.get(hash).ok().flatten();
    let reader = ExportReader {
        reader: BodyReader::new(ledger.genesis_hash(), keys.account(), &encryption),
        vault: &read_vault,
    };
    let exported = export(ledger.genesis(), patient, &records, &reader);
    let summary = match &args.out {
        Some(path) => {
            let summary = write_bundle(path, &exported)?;
            format!("{summary}; written to {}", path.display())
        }
        None => {
            let json =
                serde_json::to_string_pretty(&exported.bundle).context("writing the Bundle")?;
            println!("{json}");
            describe_export(&exported)
        }
    };
    eprintln!("Patient {patient} as {user}: {summary}");
    Ok(())
}

/// Writes `exported`'s Bundle to `path` (pretty JSON); returns what it holds, in words.
pub(crate) fn write_bundle(path: &Path, exported: &Exported) -> anyhow::Result<String> {
    let json = serde_json::to_string_pretty(&exported.bundle).context("writing the Bundle")?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(describe_export(exported))
}

/// What an export holds, and what it left out, in words.
fn describe_export(exported: &Exported) -> String {
    let total: usize = exported.written.values().sum();
    let kinds: Vec<String> = exported
        .written
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    format!(
        "exported {total} FHIR resources ({}){}",
        kinds.join(", "),
        match exported.withheld {
            0 => String::new(),
            n => format!("; {n} sealed record(s) this user may not read were left out"),
        }
    )
}

/// The bundle files at `path`: the file itself, or the `.json` files of a directory.
fn bundle_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .json bundle", path.display());
    }
    Ok(files)
}

/// The members an import signs as: the key files given, or the demo users.
pub(crate) fn signers<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    args: &ImportArgs,
) -> anyhow::Result<Signers> {
    let genesis = ledger.genesis();
    let demo = is_demo(genesis);
    let signer = |role: Role, key: Option<&Path>, flag: &str| -> anyhow::Result<Signer> {
        let keys = match key {
            Some(path) => tools::read_key(path, args.passphrase_file.as_deref())?,
            None if demo => {
                let user = DEMO_USERS
                    .iter()
                    .find(|u| u.role == role)
                    .context("the demo network has a user of each role")?;
                demo_keypair(user.username)
            }
            None => bail!(
                "network '{}' is not the demo network: give {flag}",
                genesis.network
            ),
        };
        let Some(member) = genesis.member(&keys.account()) else {
            bail!(
                "the {flag} key ({}) is not a member of network '{}'",
                keys.account(),
                genesis.network
            );
        };
        let username = member.username.clone();
        let encryption = if demo && key.is_none() {
            demo_encryption_key(&username)
        } else {
            EncryptionKey::of_member(&keys)
        };
        let actor = Actor::new(ledger, &username, keys.clone())?;
        if actor.role() != role {
            bail!("{flag} is {username}, a {}, not a {}", actor.role(), role);
        }
        Ok(Signer {
            actor,
            keys,
            encryption,
        })
    };
    Ok(Signers {
        doctor: signer(Role::Doctor, args.doctor_key.as_deref(), "--doctor-key")?,
        lab: signer(Role::LabTechnician, args.lab_key.as_deref(), "--lab-key")?,
        pharmacist: signer(
            Role::Pharmacist,
            args.pharmacy_key.as_deref(),
            "--pharmacy-key",
        )?,
    })
}

/// Every bundle at `path`, read and checked before anything is written.
fn read_plans(path: &Path) -> anyhow::Result<Vec<(PathBuf, PatientPlan)>> {
    bundle_files(path)?
        .into_iter()
        .map(|file| {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let plan = plan(&bytes).with_context(|| format!("{} was refused", file.display()))?;
            Ok((file, plan))
        })
        .collect()
}

/// `healthchain import`.
pub(crate) fn import_command(args: &ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let plans = read_plans(&args.fhir)?;
    if let Some(api) = args.api {
        return super::remote::import_remote(api, args, &plans, started);
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let genesis_path = data_dir.join(GENESIS_FILE);
    let genesis = if genesis_path.exists() {
        tools::read_genesis(&genesis_path)?
    } else {
        let genesis = match &args.genesis {
            Some(path) => tools::read_genesis(path)?,
            None => demo_genesis(),
        };
        bind_genesis(&data_dir, &genesis)?;
        genesis
    };
    let (mut ledger, vault) = open_dir(&data_dir, genesis)?;
    let signers = Arc::new(signers(&ledger, args)?);
    let mut progress = Progress::new(plans.len() as u64, "importing", "patients");
    let mut summary = Summary::default();
    for (n, (file, plan)) in plans.iter().enumerate() {
        let context = || format!("importing {}", file.display());
        let existing = existing_sources(&ledger, &vault, &signers, &plan.patient_id)?;
        let mut outcome = Outcome::default();
        let mut chain = LocalChain {
            ledger: &mut ledger,
            bodies: Vec::new(),
        };
        let results = write_visits(&mut chain, &signers, plan, &existing, &mut outcome)
            .with_context(context)?;
        let bodies = chain.bodies;
        summary.blocks += commit(&mut ledger, &vault, &signers, bodies)?;
        let mut chain = LocalChain {
            ledger: &mut ledger,
            bodies: Vec::new(),
        };
        write_prescriptions(&mut chain, &signers, plan, &existing, results, &mut outcome)
            .with_context(context)?;
        let bodies = chain.bodies;
        summary.blocks += commit(&mut ledger, &vault, &signers, bodies)?;
        progress.line(&patient_line(plan, &outcome));
        summary.add(plan, &outcome);
        progress.set(n as u64 + 1);
    }
    progress.finish();
    let tip = ledger.tip();
    summary.print(
        started.elapsed().as_secs_f64(),
        &format!("into {}", data_dir.display()),
    );
    println!("Tip: height {} hash {}", tip.height, tip.hash);
    Ok(())
}

/// Keeps the bodies in the vault, then mines what waits and writes the blocks to the
/// store: a block is never stored before the bodies its events seal.
fn commit(
    ledger: &mut DirLedger,
    vault: &Vault,
    signers: &Signers,
    bodies: Vec<(SealedRef, BodyLabel, SealedBody)>,
) -> anyhow::Result<u64> {
    for (reference, label, body) in &bodies {
        vault
            .keep(reference, *label, body)
            .context("keeping a sealed body")?;
    }
    mine_all(ledger, &signers.doctor.keys, |ledger, accepted| {
        for hash in accepted {
            if let Some(block) = ledger.unstored_block(hash) {
                ledger
                    .store()
                    .put(block)
                    .with_context(|| format!("writing block {hash}"))?;
            }
        }
        Ok(())
    })
}

/// The line printed for each patient: its id, name and what was added.
pub(crate) fn patient_line(plan: &PatientPlan, outcome: &Outcome) -> String {
    let written: usize = outcome.events.values().sum();
    format!(
        "{} {} {}: {}",
        if outcome.registered {
            "Imported"
        } else {
            "Updated "
        },
        plan.patient_id,
        plan.name,
        if written == 0 {
            "already imported, nothing added".to_string()
        } else {
            describe(&outcome.events)
        }
    )
}

fn describe(events: &BTreeMap<EventKind, usize>) -> String {
    events
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an import did, over all its patients.
#[derive(Default)]
pub(crate) struct Summary {
    pub(crate) patients: usize,
    pub(crate) new_patients: usize,
    pub(crate) events: BTreeMap<EventKind, usize>,
    pub(crate) payments: usize,
    pub(crate) already: usize,
    pub(crate) skipped: BTreeMap<String, usize>,
    pub(crate) blocks: u64,
}

impl Summary {
    pub(crate) fn add(&mut self, plan: &PatientPlan, outcome: &super::write::Outcome) {
        self.patients += 1;
        self.new_patients += usize::from(outcome.registered);
        for (kind, n) in &outcome.events {
            *self.events.entry(*kind).or_default() += n;
        }
        self.payments += outcome.payments;
        self.already += outcome.already;
        for (reason, n) in &plan.skipped {
            *self.skipped.entry(reason.clone()).or_default() += n;
        }
        if outcome.incomplete > 0 {
            *self
                .skipped
                .entry(
                    "DiagnosticReport: its encounter was imported before without it \
                     (an interrupted import); it is not added to a recorded consultation"
                        .to_string(),
                )
                .or_default() += outcome.incomplete;
        }
    }

    pub(crate) fn print(&self, seconds: f64, place: &str) {
        let events: usize = self.events.values().sum();
        println!(
            "Imported {} patient(s) ({} new) in {seconds:.1} s: {events} events, {} lab payment(s), {} block(s) {place}",
            self.patients, self.new_patients, self.payments, self.blocks,
        );
        for (kind, n) in &self.events {
            println!("  {kind}: {n}");
        }
        if self.already > 0 {
            println!("  already imported, not added again: {}", self.already);
        }
        if !self.skipped.is_empty() {
            println!("Skipped:");
            for (reason, n) in &self.skipped {
                println!("  {n} {reason}");
            }
        }
    }
}
