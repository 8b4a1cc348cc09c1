//! `healthchain generate` and `healthchain verify`: a synthetic chain at scale, and a
//! full re-validation of a data directory from its genesis.
//!
//! A data directory holds the block store (`blocks.redb`) and the genesis it belongs
//! to ([`GENESIS_FILE`]), so `verify` knows the network without being told. `verify`
//! never opens the vault of sealed bodies: no rule reads a body, so a chain verifies
//! with the vault deleted. A generated chain has none: its events carry real sealed
//! references whose bodies were sealed to no one.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use health_workflow::demo::{DemoGenesisBuilder, demo_keypair};
use health_workflow::seal::{Binding, SealedRef, seal_to_no_one};
use health_workflow::{
    Body, DoctorConsultation, Event, EventError, EventKind, HealthPolicy, LabTestResult, OrderId,
    PatientId, PatientRegistration, Prescription, PrescriptionFilled, PrescriptionId, Rates,
    TestOrder,
};
use ledger_core::{
    Amount, Block, BlockHash, BlockOutcome, BlockStatus, BodySource, Genesis, Height, Keypair,
    Ledger, PreparedBlock, SignatureSet, Timestamp, Transaction, TxBody, TxId,
};
use p2p::store::{BlockStore, RedbStore, StoreError};
use rand::Rng;

use crate::args::{GenerateArgs, VerifyArgs};
use crate::tools;

/// Name of the genesis file kept beside the block store in a data directory.
pub const GENESIS_FILE: &str = "genesis.bin";

/// Difficulty of generated chains: real proof of work, but cheap enough that a
/// benchmark measures validation rather than mining.
const GENERATE_POW_BITS: u8 = 4;

/// Writes the genesis file of a data directory, or checks that the one there matches.
pub(crate) fn bind_genesis(data_dir: &Path, genesis: &Genesis) -> anyhow::Result<()> {
    let path = data_dir.join(GENESIS_FILE);
    if path.exists() {
        let existing = tools::read_genesis(&path)?;
        if existing.hash() != genesis.hash() {
            bail!(
                "{} belongs to another network ({}, genesis {}), not {} (genesis {})",
                data_dir.display(),
                existing.network,
                existing.hash(),
                genesis.network,
                genesis.hash()
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    tools::write_genesis(&path, genesis)
}

/// Progress shown as a bar on a terminal and as a few plain lines otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    what: &'static str,
    unit: &'static str,
    next_line: u64,
}

impl Progress {
    /// Progress of `what` over `total` `unit`s ("blocks", "patients").
    pub(crate) fn new(total: u64, what: &'static str, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let template =
                format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)");
            if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            total,
            what,
            unit,
            next_line: total.div_ceil(10).max(1),
        }
    }

    /// Moves the bar to `done`.
    pub(crate) fn set(&mut self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if done >= self.next_line && done < self.total {
                    println!("{} {done}/{} {}", self.what, self.total, self.unit);
                    self.next_line += self.total.div_ceil(10).max(1);
                }
            }
        }
    }

    /// Prints a line above the bar (or as it is, without one).
    pub(crate) fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One patient's path through the workflow, a step at a time.
struct Episode {
    patient: PatientId,
    order: OrderId,
    prescription: PrescriptionId,
    result: Option<TxId>,
    step: u8,
}

/// Synthetic users and their next nonces.
struct Actors {
    doctor: Keypair,
    lab: Keypair,
    pharmacist: Keypair,
    nonces: [u64; 3],
}

const NAMES: [&str; 8] = [
    "Jane Doe",
    "John Smith",
    "Amira Haddad",
    "Li Wei",
    "Maria Garcia",
    "Kwame Mensah",
    "Olga Petrova",
    "Ravi Kumar",
];
const MEDICATIONS: [(&str, &str, &str); 4] = [
    ("Amoxicillin", "500 mg", "three times a day for 7 days"),
    ("Metformin", "850 mg", "twice a day with meals"),
    ("Atorvastatin", "20 mg", "once a day at night"),
    ("Ibuprofen", "400 mg", "every 8 hours as needed"),
];

/// A reference to `body`, sealed for an event of `kind` about `patient` by `author` to
/// no one: a generated chain has real references of realistic size, and no vault.
fn sealed(
    genesis: BlockHash,
    author: &Keypair,
    patient: PatientId,
    kind: EventKind,
    body: &Body,
    rng: &mut impl rand::CryptoRng,
) -> anyhow::Result<SealedRef> {
    let binding = Binding::new(genesis, author.account(), patient, kind);
    seal_to_no_one(&body.encode(), &binding, rng).context("sealing a generated body")
}

pub(crate) fn random_id(rng: &mut impl Rng) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// `healthchain generate`.
pub(crate) fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    if args.blocks == 0 || args.txs_per_block == 0 {
        bail!("--blocks and --txs-per-block must be at least 1");
    }
    let per_block = usize::try_from(args.txs_per_block).unwrap_or(usize::MAX);
    if per_block > ledger_core::limits::MAX_TXS_PER_BLOCK {
        bail!(
            "--txs-per-block is at most {}",
            ledger_core::limits::MAX_TXS_PER_BLOCK
        );
    }
    if args.data_dir.join(p2p::store::DB_FILE).exists() {
        bail!(
            "{} already holds a block store; choose an empty directory",
            args.data_dir.display()
        );
    }
    let blocks = args.blocks;
    // Date the chain so its last block is about now, one second per block.
    let now = tools::now();
    let start = Timestamp(now.millis().saturating_sub(blocks.saturating_mul(1_000)));
    let genesis = DemoGenesisBuilder::new()
        .pow_bits(GENERATE_POW_BITS)
        .timestamp(start)
        .build();
    bind_genesis(&args.data_dir, &genesis)?;
    let store = RedbStore::open(&args.data_dir)
        .with_context(|| format!("opening the block store in {}", args.data_dir.display()))?;
    let mut ledger = Ledger::with_store(genesis, HealthPolicy, store)?;
    let genesis_hash = ledger.genesis_hash();
    let rates = Rates::of(ledger.genesis());

    let mut actors = Actors {
        doctor: demo_keypair("dr_alice"),
        lab: demo_keypair("lab_tech_bob"),
        pharmacist: demo_keypair("pharm_charlie"),
        nonces: [0; 3],
    };
    let mut rng = rand::rng();
    let mut episodes: VecDeque<Episode> = VecDeque::new();
    let mut progress = Progress::new(blocks, "generating", "blocks");
    let started = Instant::now();
    let mut total_txs = 0u64;
    for b in 0..blocks {
        let time = start.plus_millis((b + 1).saturating_mul(1_000));
        let mut spendable = ledger.balance(&actors.doctor.account());
        let mut made = 0;
        while made < per_block {
            if episodes.len() < 8 {
                episodes.push_back(Episode {
                    patient: PatientId::from_random_bytes(random_id(&mut rng)),
                    order: OrderId::from_random_bytes(random_id(&mut rng)),
                    prescription: PrescriptionId::from_random_bytes(random_id(&mut rng)),
                    result: None,
                    step: 0,
                });
            }
            let Some(mut episode) = episodes.pop_front() else {
                continue;
            };
            let n = total_txs as usize;
            let patient = episode.patient;
            let mut seal_as = |who: &Keypair, kind, body: Body| {
                sealed(genesis_hash, who, patient, kind, &body, &mut rng)
            };
            let (who, body) = match episode.step {
                0 => (
                    0,
                    TxBody::App(Event::PatientRegistration(PatientRegistration {
                        patient_id: patient,
                        demographics: seal_as(
                            &actors.doctor,
                            EventKind::PatientRegistration,
                            Body::demographics(NAMES[n % NAMES.len()]),
                        )?,
                        // The patient's keys, drawn like its ids (a synthetic chain
                        // keeps no patient key file).
                        patient_keys: health_workflow::PatientKeys::sign(
                            &genesis_hash,
                            &patient,
                            &Keypair::from_seed(patient_seed(&patient)),
                        ),
                    })),
                ),
                1 => {
                    let kind = EventKind::DoctorConsultation;
                    let notes = Body::notes("Fatigue for two weeks; pale; order blood count.");
                    let test = Body::test_order(health_workflow::DEFAULT_TEST_NAME);
                    (
                        0,
                        TxBody::App(Event::DoctorConsultation(DoctorConsultation {
                            patient_id: patient,
                            notes: seal_as(&actors.doctor, kind, notes)?,
                            test_orders: vec![TestOrder {
                                order_id: episode.order,
                                test: seal_as(&actors.doctor, kind, test)?,
                            }],
                        })),
                    )
                }
                2 => (
                    1,
                    TxBody::App(Event::LabTestResult(LabTestResult {
                        patient_id: patient,
                        order_id: episode.order,
                        results: seal_as(
                            &actors.lab,
                            EventKind::LabTestResult,
                            Body::results(&format!(
                                "Hb {}.{} g/dL; WBC 6.1; PLT 250",
                                11 + n % 5,
                                n % 10
                            )),
                        )?,
                    })),
                ),
                3 => {
                    let (medication, dosage, instructions) = MEDICATIONS[n % MEDICATIONS.len()];
                    let details = Body::prescription(medication, dosage, instructions);
                    (
                        0,
                        TxBody::App(Event::Prescription(Prescription {
                            prescription_id: episode.prescription,
                            patient_id: patient,
                            details: seal_as(&actors.doctor, EventKind::Prescription, details)?,
                            based_on: episode.result.into_iter().collect(),
                        })),
                    )
                }
                4 => {
                    // The doctor pays the lab for the results read, when affordable.
                    match spendable.checked_sub(rates.lab_payment) {
                        Some(left) if rates.lab_payment > Amount::ZERO => {
                            spendable = left;
                            (
                                0,
                                TxBody::Transfer {
                                    to: actors.lab.account(),
                                    amount: rates.lab_payment,
                                },
                            )
                        }
                        _ => {
                            episode.step = 5;
                            episodes.push_front(episode);
                            continue;
                        }
                    }
                }
                _ => (
                    2,
                    TxBody::App(Event::PrescriptionFilled(PrescriptionFilled {
                        prescription_id: episode.prescription,
                    })),
                ),
            };
            let keys = match who {
                0 => &actors.doctor,
                1 => &actors.lab,
                _ => &actors.pharmacist,
            };
            actors.nonces[who] += 1;
            let tx = Transaction::new_signed(&genesis_hash, keys, actors.nonces[who], time, body);
            let id = ledger
                .submit_transaction(tx, time)
                .map_err(|e| anyhow::anyhow!("generated transaction refused: {e}"))?;
            if episode.step == 2 {
                episode.result = Some(id);
            }
            episode.step += 1;
            if episode.step <= 5 {
                episodes.push_back(episode);
            }
            made += 1;
            total_txs += 1;
        }
        let block = ledger.mine_block(&actors.doctor, time);
        let outcome = submit_mined(&mut ledger, block, time)
            .with_context(|| format!("generated block {}", b + 1))?;
        // The ledger writes nothing: each accepted block is committed here.
        for hash in &outcome.accepted {
            if let Some(block) = ledger.unstored_block(hash) {
                ledger
                    .store()
                    .put(block)
                    .with_context(|| format!("writing block {hash}"))?;
            }
        }
        ledger.mark_stored(outcome.accepted);
        progress.set(b + 1);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let tip = ledger.tip();
    println!(
        "Generated {blocks} blocks, {total_txs} transactions in {seconds:.2} s into {}",
        args.data_dir.display()
    );
    println!("Tip: height {} hash {}", tip.height, tip.hash);
    Ok(())
}

/// Submits a block this process mined; an error says why the ledger refused it.
pub(crate) fn submit_mined<B: BodySource<Event>>(
    ledger: &mut Ledger<HealthPolicy, B>,
    block: Block<Event>,
    time: Timestamp,
) -> anyhow::Result<BlockOutcome<health_workflow::EventError>> {
    let outcome = ledger.submit(block, time);
    if outcome.status != BlockStatus::Accepted {
        let reason = outcome
            .invalid
            .first()
            .map_or_else(|| format!("{:?}", outcome.status), |(_, e)| e.to_string());
        bail!("was refused: {reason}");
    }
    Ok(outcome)
}

/// A body source with nothing in it: `verify` checks each block of a store once,
/// along one chain, and never reads one back, so the ledger keeps no body (see
/// [`Ledger::retain_unstored`]) and holding every body in memory would only cost memory.
struct Discard;

impl<P> BodySource<P> for Discard {
    type Error = std::convert::Infallible;

    fn get(&self, _: &BlockHash) -> Result<Option<Arc<Block<P>>>, Self::Error> {
        Ok(None)
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VerifyReport {
    /// Blocks checked.
    pub(crate) blocks: u64,
    /// Transactions in them.
    pub(crate) transactions: u64,
    /// Wall-clock seconds.
    pub(crate) seconds: f64,
    /// The signature floor, when asked for.
    pub(crate) floor: Option<FloorReport>,
}

/// The same signatures batch-verified with nothing else around them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FloorReport {
    /// Signatures verified (producers' and transactions').
    pub(crate) signatures: u64,
    /// Seconds spent verifying them, excluding reading and preparing them.
    pub(crate) seconds: f64,
}

/// `healthchain verify`.
pub(crate) fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    if args.reload {
        return reload(&args.data_dir);
    }
    if args.sync {
        return sync(&args.data_dir);
    }
    let report = verify_dir(&args.data_dir, !args.no_signatures, args.floor)?;
    println!(
        "Verified {} blocks, {} transactions in {:.3} s ({:.0} tx/s){}",
        report.blocks,
        report.transactions,
        report.seconds,
        per_second(report.transactions, report.seconds),
        if args.no_signatures {
            ", signatures not checked"
        } else {
            ", every signature checked"
        }
    );
    if let Some(floor) = report.floor {
        let ratio = if floor.seconds > 0.0 {
            report.seconds / floor.seconds
        } else {
            0.0
        };
        println!(
            "Signature floor: {} signatures batch-verified alone in {:.3} s ({:.0}/s)",
            floor.signatures,
            floor.seconds,
            per_second(floor.signatures, floor.seconds)
        );
        println!("Verification took {ratio:.2}x the signature floor");
    }
    Ok(())
}

/// `healthchain verify --reload`: the restart path of a node, timed.
fn reload(data_dir: &Path) -> anyhow::Result<()> {
    let genesis_path = data_dir.join(GENESIS_FILE);
    let genesis = tools::read_genesis(&genesis_path)
        .with_context(|| format!("{} is not a healthchain data directory", data_dir.display()))?;
    let started = Instant::now();
    let store: RedbStore<Event> = RedbStore::open(data_dir)
        .with_context(|| format!("opening the block store in {}", data_dir.display()))?;
    let (ledger, report) = p2p::open_ledger(genesis, HealthPolicy, store)
        .with_context(|| format!("reloading the chain stored in {}", data_dir.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    for (hash, failure) in &report.failed {
        println!("Stored block {hash} was not loaded: {failure}");
    }
    let tip = ledger.tip();
    println!(
        "Reloaded {} blocks in {seconds:.3} s, ready to serve at height {} (tip {})",
        report.loaded, tip.height, tip.hash
    );
    if !report.is_clean() {
        bail!(
            "{} stored block(s) could not be reloaded",
            report.failed.len()
        );
    }
    Ok(())
}

/// Longest a measured sync may take before it is reported as stuck.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// `healthchain verify --sync`: a fresh node syncs the stored chain over loopback.
fn sync(data_dir: &Path) -> anyhow::Result<()> {
    let genesis = tools::read_genesis(&data_dir.join(GENESIS_FILE))
        .with_context(|| format!("{} is not a healthchain data directory", data_dir.display()))?;
    let scratch = data_dir.join("sync-measure.tmp");
    if scratch.exists() {
        bail!("{} exists; remove it first", scratch.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(sync_over_loopback(data_dir, &scratch, genesis));
    // The scratch store is only a measuring aid.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn sync_over_loopback(
    data_dir: &Path,
    scratch: &Path,
    genesis: Genesis,
) -> anyhow::Result<()> {
    use p2p::{NodeConfig, NodeEvent, open_ledger, spawn};
    use tokio_util::sync::CancellationToken;

    let store: RedbStore<Event> = RedbStore::open(data_dir)
        .with_context(|| format!("opening the block store in {}", data_dir.display()))?;
    let (ledger, report) = open_ledger(genesis.clone(), HealthPolicy, store)?;
    if !report.is_clean() {
        bail!(
            "{} stored block(s) could not be reloaded",
            report.failed.len()
        );
    }
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let source = spawn(
        listener,
        NodeConfig::new("sync-source"),
        ledger,
        shutdown.clone(),
    )?;
    let target = source.handle().tip().await?;
    let transactions: u64 = source
        .handle()
        .query(|l| {
            l.main_chain()
                .iter()
                .filter_map(|h| l.block(h).ok().flatten())
                .map(|b| b.transactions.len() as u64)
                .sum()
        })
        .await?;
    println!(
        "Serving {} blocks ({transactions} transactions) on {}; a fresh node syncs them",
        target.height,
        source.handle().local_addr()
    );

    let store: RedbStore<Event> = RedbStore::open(scratch)
        .with_context(|| format!("opening a scratch store in {}", scratch.display()))?;
    let (ledger, _) = open_ledger(genesis, HealthPolicy, store)?;
    let mut config = NodeConfig::new("sync-fresh");
    config.peers = vec![source.handle().local_addr()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let started = Instant::now();
    let mut fresh = spawn(listener, config, ledger, shutdown.clone())?;
    let mut events = fresh.events();
    let handle = fresh.handle();
    let mut progress = Progress::new(target.height.0, "syncing", "blocks");
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    // The tip is read from the events; asking the node (a message to its ledger task)
    // only at the start and when events were missed keeps the measurement from
    // loading the node it measures.
    let mut ask = true;
    loop {
        if ask {
            let tip = handle.tip().await?;
            progress.set(tip.height.0);
            if tip.hash == target.hash {
                break;
            }
            ask = false;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(NodeEvent::TipChanged(change))) => {
                progress.set(change.new_height.0);
                if change.new_tip == target.hash {
                    break;
                }
            }
            Ok(Ok(NodeEvent::BlockRejected { error, .. })) => {
                bail!("the fresh node refused a block: {error}")
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                bail!("the fresh node stopped before it caught up")
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => ask = true,
            Ok(_) => {}
            Err(_) => bail!(
                "the sync did not finish within {} s",
                SYNC_TIMEOUT.as_secs()
            ),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    println!(
        "Synced {} blocks, {transactions} transactions over loopback in {seconds:.3} s ({:.0} tx/s)",
        target.height,
        per_second(transactions, seconds)
    );
    shutdown.cancel();
    source.join().await?;
    fresh.join().await?;
    Ok(())
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Blocks read, decoded and hashed together by the reader thread of
/// `verify --no-signatures` (and by the signature floor): one import batch, so the
/// chunks in flight stay a small part of memory.
const READ_CHUNK: usize = ledger_core::limits::IMPORT_BATCH;

/// Chunks read ahead of validation.
const READ_AHEAD: usize = 2;

/// A chunk of stored blocks, read and prepared (hashed) on the reader's side.
type Chunk = Vec<PreparedBlock<Event>>;

/// Reads the stored blocks in height order, `READ_CHUNK` at a time, prepares them (on
/// every core) and sends them on; stops at the first unreadable block (after sending
/// its error) or when the receiver is gone.
fn read_blocks(
    store: &RedbStore<Event>,
    stored: &[(Height, BlockHash)],
    out: &std::sync::mpsc::SyncSender<anyhow::Result<Chunk>>,
) {
    for chunk in stored.chunks(READ_CHUNK) {
        let read = chunk
            .iter()
            .map(|(height, hash)| read_stored(store, *height, hash))
            .collect::<anyhow::Result<Vec<_>>>();
        let sent = match read {
            Ok(blocks) => out.send(Ok(ledger_core::prepare_blocks(&blocks))),
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Reads the stored block `hash`, listed at `height`.
fn read_stored(
    store: &RedbStore<Event>,
    height: Height,
    hash: &BlockHash,
) -> anyhow::Result<Arc<Block<Event>>> {
    match store.get(hash) {
        Ok(Some(block)) => Ok(block),
        Ok(None) => bail!("block {hash} at height {height} is listed but missing"),
        Err(StoreError::Corrupt { reason, .. }) => {
            bail!("block {hash} at height {height} is corrupted: {reason}")
        }
        Err(e) => Err(e).context(format!("reading block {hash} at height {height}")),
    }
}

/// Re-validates the chain stored in `data_dir` from its genesis; with `floor`, then
/// measures batch verification of the same signatures alone.
pub(crate) fn verify_dir(
    data_dir: &Path,
    signatures: bool,
    floor: bool,
) -> anyhow::Result<VerifyReport> {
    let genesis_path = data_dir.join(GENESIS_FILE);
    if !genesis_path.exists() {
        bail!(
            "{} has no {GENESIS_FILE}: not a healthchain data directory",
            data_dir.display()
        );
    }
    let genesis = tools::read_genesis(&genesis_path)?;
    if !data_dir.join(p2p::store::DB_FILE).exists() {
        bail!("{} has no block store", data_dir.display());
    }
    // Each block is read once: a small page cache keeps memory for the state.
    let store: RedbStore<Event> =
        RedbStore::open_with_cache(data_dir, p2p::limits::SCAN_CACHE_BYTES)
            .with_context(|| format!("opening the block store in {}", data_dir.display()))?;
    let stored = store.stored().context("listing the stored blocks")?;
    println!(
        "Verifying {} blocks of network '{}' (genesis {})",
        stored.len(),
        genesis.network,
        genesis.hash()
    );
    let genesis_hash = genesis.hash();
    let mut ledger = Ledger::with_store(genesis, HealthPolicy, Discard)?;
    ledger.retain_unstored(false);
    let now = tools::now();
    let mut progress = Progress::new(stored.len() as u64, "verifying", "blocks");
    let started = Instant::now();
    let mut blocks = 0u64;
    let mut transactions = 0u64;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (store, stored) = (&store, &stored);
        let mut found: anyhow::Result<()> = Ok(());
        let mut check = |block: &Block<Event>, outcome: BlockOutcome<EventError>| {
            let (hash, height) = (outcome.hash, block.header.height);
            let problem = match outcome.status {
                BlockStatus::Accepted | BlockStatus::Duplicate => None,
                BlockStatus::Orphan { missing } => Some(anyhow::anyhow!(
                    "block {hash} at height {height}: its parent {missing} is not stored"
                )),
                BlockStatus::Invalid => {
                    let reason = outcome
                        .invalid
                        .first()
                        .map_or_else(|| "invalid".to_string(), |(_, e)| e.to_string());
                    Some(anyhow::anyhow!(
                        "block {hash} at height {height} is invalid: {reason}"
                    ))
                }
            };
            if let Some(problem) = problem {
                found = Err(problem);
                return ControlFlow::Break(());
            }
            transactions += block.transactions.len() as u64;
            blocks += 1;
            progress.set(blocks);
            ControlFlow::Continue(())
        };
        if signatures {
            // One continuous import, reading as it goes: each batch of blocks is read
            // and decoded beside the state work on the previous one, then its signatures
            // are verified on every core, with no third thread to preempt them.
            let mut unread: anyhow::Result<()> = Ok(());
            let stream = stored.iter().map_while(|(height, hash)| {
                read_stored(store, *height, hash)
                    .map_err(|e| unread = Err(e))
                    .ok()
            });
            ledger.import_stream(stream, now, |block, outcome| check(block, outcome));
            unread?;
        } else {
            // Reading, decoding and hashing (on every core) overlap validation on
            // another thread.
            let (sender, chunks) = std::sync::mpsc::sync_channel(READ_AHEAD);
            scope.spawn(move || read_blocks(store, stored, &sender));
            'chunks: for chunk in chunks {
                for prepared in chunk? {
                    let block = Arc::clone(prepared.block());
                    if check(
                        &block,
                        ledger.submit(
                            // A stored block is judged at its own time: no clock is read.
                            ledger_core::BlockInput::StoredPrepared(prepared),
                            ledger_core::Timestamp(0),
                        ),
                    )
                    .is_break()
                    {
                        break 'chunks;
                    }
                }
            }
        }
        found?;
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let tip = ledger.tip();
    println!("Tip: height {} hash {}", tip.height, tip.hash);
    drop(ledger);
    let floor = if floor {
        Some(signature_floor(&store, &stored, &genesis_hash)?)
    } else {
        None
    };
    Ok(VerifyReport {
        blocks,
        transactions,
        seconds,
        floor,
    })
}

/// Batch-verifies every stored signature again, timing only the verification.
fn signature_floor(
    store: &RedbStore<Event>,
    stored: &[(Height, BlockHash)],
    genesis: &BlockHash,
) -> anyhow::Result<FloorReport> {
    let mut report = FloorReport {
        signatures: 0,
        seconds: 0.0,
    };
    let mut progress = Progress::new(stored.len() as u64, "signature floor", "blocks");
    let mut done = 0;
    for chunk in stored.chunks(READ_CHUNK) {
        let blocks = chunk
            .iter()
            .map(|(height, hash)| read_stored(store, *height, hash))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let set = SignatureSet::of_blocks(genesis, &blocks);
        let start = Instant::now();
        let valid = set.verify();
        report.seconds += start.elapsed().as_secs_f64();
        if !valid {
            bail!("a signature failed in the floor pass, after the chain verified");
        }
        report.signatures += set.len() as u64;
        done += chunk.len() as u64;
        progress.set(done);
    }
    progress.finish();
    Ok(report)
}

/// The synthetic patient's signing seed: derived from its id, so a generated chain
/// depends on its random ids only.
fn patient_seed(patient: &PatientId) -> [u8; 32] {
    let input = [
        &b"healthchain/synthetic-patient/v1"[..],
        patient.uuid().as_bytes(),
    ]
    .concat();
    ledger_core::Hash::of(&input).to_byte_array()
}
