//! One rate's run: pre-signed transactions submitted open-loop from several client
//! tasks through the nodes' public submit interface (`POST /txs/batch`), and watchers
//! that see each transaction into a block on every node.
//!
//! The load is transfers between the bench network's client accounts and, for the
//! share `--clinical-percent` asks, clinical events: patient registrations by the
//! doctor, each with its demographics sealed to the care team, submitted with their
//! sealed bodies to the doctor's node (the first), which keeps them and pushes them
//! to the members they are sealed to.
//!
//! Open loop: transaction `i` of a client is due at `i / rate` seconds after the
//! start, whether or not earlier ones were answered. A client sends everything due in
//! one request (at most [`MAX_BATCH_TXS`]), waits for the answer, and sends what fell
//! due meanwhile; a busy node (503) is asked again shortly. Each transaction's latency
//! runs from the moment it was due, so time spent waiting on the client side counts
//! against the network (no coordinated omission), until it is in a block on every
//! node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use health_workflow::HealthTx;
use health_workflow::clinical::PatientDetails;
use health_workflow::{Actor, HealthPolicy, PatientId};
use hyper::StatusCode;
use indicatif::ProgressBar;
use ledger_core::sealed::SealedBody;
use ledger_core::{
    Amount, BlockHash, Genesis, Keypair, Ledger, Timestamp, Transaction, TxBody, TxId, codec,
};
use rayon::prelude::*;
use serde::Deserialize;

use super::http::Api;
use super::stats::{Latency, RunResult};
use crate::api::submit::{MAX_BATCH_TXS, SEALED_BATCH};

/// The content type of a batch of transactions alone.
const OCTETS: &str = "application/octet-stream";

/// How often a watcher asks its node for its height.
const WATCH_POLL: Duration = Duration::from_millis(20);

/// How long a client waits before asking a busy node again.
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// A node under load.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) api: SocketAddr,
}

/// One rate's run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) rate: u64,
    /// Percent of the rate that is clinical events.
    pub(crate) clinical_percent: u8,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) clients: usize,
    /// How long after the last submission transactions may still reach every node.
    pub(crate) drain: Duration,
}

/// The client accounts and their next nonces, carried from one run of a sweep to the
/// next.
pub(crate) struct Accounts {
    keys: Vec<Keypair>,
    next: Vec<u64>,
    /// The doctor who registers patients, and its next nonce.
    doctor: Keypair,
    doctor_next: u64,
}

impl Accounts {
    /// `keys`, whose next nonces are `next`, and the `doctor`, whose next is
    /// `doctor_next`.
    pub(crate) fn new(
        keys: Vec<Keypair>,
        next: Vec<u64>,
        doctor: Keypair,
        doctor_next: u64,
    ) -> Accounts {
        Accounts {
            keys,
            next,
            doctor,
            doctor_next,
        }
    }
}

/// What a client was given: its transactions in order, their ids and when each is due.
struct Script {
    target: usize,
    txs: Vec<HealthTx>,
    /// Each transaction's sealed bodies (clinical events), or nothing (transfers).
    bodies: Vec<Vec<SealedBody>>,
    ids: Vec<TxId>,
    due: Vec<Duration>,
}

/// What became of a transaction on its client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Unsent,
    Accepted,
    Failed,
}

/// What a client reports.
struct Sent {
    outcomes: Vec<Outcome>,
    errors: HashMap<String, u64>,
    busy: u64,
}

/// Which nodes have a transaction in a block (a bit each) and when the last did.
type Commits = Arc<Mutex<HashMap<TxId, (u8, Instant)>>>;

/// Signs the run's transfers: client `c` gets every `clients`-th transaction and the
/// accounts of its own residue class, so each account's nonces go to one node, in order.
fn scripts(
    plan: &Plan,
    accounts: &mut Accounts,
    genesis: &Genesis,
    targets: usize,
) -> anyhow::Result<Vec<Script>> {
    let clinical_rate = plan.rate * u64::from(plan.clinical_percent) / 100;
    let transfer_rate = plan.rate - clinical_rate;
    let seconds = (plan.warmup + plan.duration).as_secs();
    let mut scripts = transfers(
        plan,
        transfer_rate * seconds,
        transfer_rate,
        accounts,
        &genesis.hash(),
        targets,
    );
    if clinical_rate > 0 {
        scripts.push(registrations(
            clinical_rate * seconds,
            clinical_rate,
            accounts,
            genesis,
        )?);
    }
    Ok(scripts)
}

/// `total` transfers at `rate` a second.
fn transfers(
    plan: &Plan,
    total: u64,
    rate: u64,
    accounts: &mut Accounts,
    genesis: &BlockHash,
    targets: usize,
) -> Vec<Script> {
    if rate == 0 {
        return Vec::new();
    }
    let clients = plan.clients;
    let now = crate::tools::now();
    let mut specs: Vec<Vec<(usize, u64, usize, Duration)>> = vec![Vec::new(); clients];
    let owned: Vec<Vec<usize>> = (0..clients)
        .map(|c| {
            (0..accounts.keys.len())
                .filter(|a| a % clients == c)
                .collect()
        })
        .collect();
    for i in 0..total {
        let c = (i % clients as u64) as usize;
        let k = specs[c].len();
        let account = owned[c][k % owned[c].len()];
        let nonce = accounts.next[account];
        accounts.next[account] += 1;
        let to = (account + 1) % accounts.keys.len();
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        specs[c].push((account, nonce, to, due));
    }
    let keys = &accounts.keys;
    specs
        .into_iter()
        .enumerate()
        .map(|(c, specs)| {
            let txs: Vec<HealthTx> = specs
                .par_iter()
                .map(|&(account, nonce, to, _)| {
                    Transaction::new_signed(
                        genesis,
                        &keys[account],
                        nonce,
                        Timestamp(now.0),
                        TxBody::Transfer {
                            to: keys[to].account(),
                            amount: Amount(1),
                        },
                    )
                })
                .collect();
            let ids = txs.par_iter().map(Transaction::id).collect();
            Script {
                target: c % targets,
                txs,
                bodies: Vec::new(),
                ids,
                due: specs.iter().map(|s| s.3).collect(),
            }
        })
        .collect()
}

/// `total` patient registrations at `rate` a second, by the doctor, for the doctor's
/// node (the first): each sealed to the care team as the REPL seals one.
fn registrations(
    total: u64,
    rate: u64,
    accounts: &mut Accounts,
    genesis: &Genesis,
) -> anyhow::Result<Script> {
    let scratch = Ledger::new(genesis.clone(), HealthPolicy)?;
    let doctor = Actor::new(&scratch, "dr_alice", accounts.doctor.clone())?;
    let first = accounts.doctor_next;
    accounts.doctor_next += total;
    let now = crate::tools::now();
    let hash = genesis.hash();
    let keys = &accounts.doctor;
    let written: Vec<(HealthTx, Vec<SealedBody>)> = (0..total)
        .into_par_iter()
        .map(|i| {
            let nonce = first + i;
            let seed = ledger_core::Hash::of_parts(&[
                b"healthchain/bench-net/patient",
                &nonce.to_le_bytes(),
            ]);
            let mut id = [0u8; 16];
            id.copy_from_slice(&seed.as_bytes()[..16]);
            let written = doctor.register_patient(
                &scratch,
                PatientId::from_random_bytes(id),
                &format!("Bench Patient {nonce}"),
                PatientDetails::default(),
                now,
                &mut rand::rng(),
            )?;
            // Signed again with its place in the doctor's run of nonces (the seal binds
            // the event, not the nonce).
            let tx = Transaction::new_signed(&hash, keys, nonce, now, written.tx.body);
            Ok((tx, written.bodies))
        })
        .collect::<Result<_, health_workflow::WorkflowError>>()?;
    let (txs, bodies): (Vec<HealthTx>, Vec<Vec<SealedBody>>) = written.into_iter().unzip();
    let ids = txs.par_iter().map(Transaction::id).collect();
    Ok(Script {
        target: 0,
        txs,
        bodies,
        ids,
        due: (0..total)
            .map(|i| Duration::from_secs_f64(i as f64 / rate as f64))
            .collect(),
    })
}

/// The size of one registration as submitted: its transaction and its sealed body, in
/// bytes.
pub(crate) fn registration_size(
    accounts: &Accounts,
    genesis: &Genesis,
) -> anyhow::Result<(usize, usize)> {
    let mut probe = Accounts::new(Vec::new(), Vec::new(), accounts.doctor.clone(), 1);
    let script = registrations(1, 1, &mut probe, genesis)?;
    let body = script.bodies[0].iter().map(codec::encoded_len).sum();
    Ok((codec::encoded_len(&script.txs[0]), body))
}

/// The size of one transfer as submitted, in bytes.
pub(crate) fn transfer_size(accounts: &Accounts, genesis: &BlockHash) -> usize {
    let tx: HealthTx = Transaction::new_signed(
        genesis,
        &accounts.keys[0],
        1,
        Timestamp(0),
        TxBody::Transfer {
            to: accounts.keys[0].account(),
            amount: Amount(1),
        },
    );
    codec::encoded_len(&tx)
}

#[derive(Deserialize)]
struct Verdict {
    id: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Batch {
    results: Vec<Verdict>,
}

/// A client: sends its script open-loop from `start`.
async fn client(api: SocketAddr, script: Arc<Script>, start: tokio::time::Instant) -> Sent {
    let mut sent = Sent {
        outcomes: vec![Outcome::Unsent; script.txs.len()],
        errors: HashMap::new(),
        busy: 0,
    };
    let mut connection = match Api::connect(api).await {
        Ok(c) => c,
        Err(e) => {
            sent.errors
                .insert(format!("{e:#}"), script.txs.len() as u64);
            sent.outcomes.fill(Outcome::Failed);
            return sent;
        }
    };
    let mut next = 0;
    while next < script.txs.len() {
        let elapsed = start.elapsed();
        let due = script.due.partition_point(|d| *d <= elapsed);
        if due <= next {
            tokio::time::sleep_until(start + script.due[next]).await;
            continue;
        }
        let end = due.min(next + MAX_BATCH_TXS);
        let answer = if script.bodies.is_empty() {
            let body = codec::encode(&script.txs[next..end]);
            connection.post("/txs/batch", body, OCTETS).await
        } else {
            let items: Vec<(&HealthTx, &Vec<SealedBody>)> = script.txs[next..end]
                .iter()
                .zip(&script.bodies[next..end])
                .collect();
            let body = codec::encode(&items);
            connection.post("/txs/batch", body, SEALED_BATCH).await
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                *sent.errors.entry(format!("{e:#}")).or_default() += (end - next) as u64;
                sent.outcomes[next..end].fill(Outcome::Failed);
                next = end;
                if let Ok(fresh) = Api::connect(api).await {
                    connection = fresh;
                }
                continue;
            }
        };
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            sent.busy += 1;
            tokio::time::sleep(BUSY_RETRY).await;
            continue;
        }
        let verdicts = (answer.status == StatusCode::OK)
            .then(|| serde_json::from_slice::<Batch>(&answer.body).ok())
            .flatten()
            .filter(|b| b.results.len() == end - next);
        match verdicts {
            Some(batch) => {
                for (i, verdict) in batch.results.into_iter().enumerate() {
                    sent.outcomes[next + i] = if verdict.id.is_some() {
                        Outcome::Accepted
                    } else {
                        let kind = verdict.error.unwrap_or_else(|| "refused".into());
                        *sent.errors.entry(kind).or_default() += 1;
                        Outcome::Failed
                    };
                }
            }
            None => {
                let text = String::from_utf8_lossy(&answer.body);
                let kind = format!(
                    "{}: {}",
                    answer.status,
                    text.chars().take(120).collect::<String>()
                );
                *sent.errors.entry(kind).or_default() += (end - next) as u64;
                sent.outcomes[next..end].fill(Outcome::Failed);
            }
        }
        next = end;
    }
    sent
}

#[derive(Deserialize)]
struct Height {
    height: u64,
}

#[derive(Deserialize)]
struct TxIds {
    hash: String,
    prev: String,
    txids: Vec<String>,
}

/// A watcher: follows node `node`'s best chain from height `from`, marking each
/// transaction it finds in a block with the node's bit.
async fn watch(
    api: SocketAddr,
    node: usize,
    from: u64,
    commits: Commits,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<u64> {
    let mut connection = Api::connect(api).await?;
    let mut seen: Vec<String> = Vec::new();
    let mut height = from;
    let mut reorgs = 0;
    while !stop.is_cancelled() {
        let tip: Height = connection.get_json("/status").await?;
        while height < tip.height {
            let block: TxIds = connection
                .get_json(&format!("/blocks/{}/txids", height + 1))
                .await?;
            if let Some(last) = seen.last()
                && *last != block.prev
            {
                // The best chain switched branch below: follow it again from a little
                // lower (what was seen keeps its first time).
                reorgs += 1;
                let back = (seen.len() as u64).min(16);
                seen.truncate(seen.len() - back as usize);
                height -= back;
                continue;
            }
            let at = Instant::now();
            let bit = 1u8 << node;
            {
                let mut commits = commits
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for id in &block.txids {
                    let Ok(id) = id.parse::<TxId>() else { continue };
                    let entry = commits.entry(id).or_insert((0, at));
                    if entry.0 & bit == 0 {
                        entry.0 |= bit;
                        entry.1 = at;
                    }
                }
            }
            seen.push(block.hash);
            height += 1;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(WATCH_POLL) => {}
        }
    }
    Ok(reorgs)
}

/// The pause between idle-latency probes: longer than any block interval bench-net
/// starts nodes with by default, so each probe meets a quiet network.
const IDLE_GAP: Duration = Duration::from_secs(1);

/// How often the idle-latency probe asks the nodes about its transaction.
const PROBE_POLL: Duration = Duration::from_millis(2);

/// Times `samples` transfers sent one at a time on the otherwise idle network, from
/// submission to the first node until every node has it in a block, in milliseconds.
pub(crate) async fn idle_latency(
    targets: &[Target],
    accounts: &mut Accounts,
    genesis: &BlockHash,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    #[derive(Deserialize)]
    struct Located {
        pending: bool,
    }
    let mut apis = Vec::new();
    for target in targets {
        apis.push(Api::connect(target.api).await?);
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let nonce = accounts.next[0];
        accounts.next[0] += 1;
        let tx: HealthTx = Transaction::new_signed(
            genesis,
            &accounts.keys[0],
            nonce,
            crate::tools::now(),
            TxBody::Transfer {
                to: accounts.keys[1].account(),
                amount: Amount(1),
            },
        );
        let path = format!("/txs/{}", tx.id());
        let started = Instant::now();
        let answer = apis[0]
            .post("/txs/batch", codec::encode(&vec![tx]), OCTETS)
            .await?;
        let accepted = serde_json::from_slice::<Batch>(&answer.body)
            .ok()
            .is_some_and(|b| b.results.first().is_some_and(|v| v.id.is_some()));
        if !accepted {
            anyhow::bail!(
                "the probe transaction was refused: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        for api in &mut apis {
            loop {
                let answer = api.get(&path).await?;
                let committed = answer.status == StatusCode::OK
                    && serde_json::from_slice::<Located>(&answer.body).is_ok_and(|l| !l.pending);
                if committed {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    anyhow::bail!("the probe transaction was not committed within a minute");
                }
                tokio::time::sleep(PROBE_POLL).await;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        // Quiet again before the next one, as an idle network is.
        tokio::time::sleep(IDLE_GAP).await;
    }
    Ok(times)
}

/// The node's CPU seconds, from its metrics.
pub(crate) async fn node_cpu(api: SocketAddr) -> Option<f64> {
    let mut connection = Api::connect(api).await.ok()?;
    let answer = connection.get("/metrics").await.ok()?;
    let text = String::from_utf8_lossy(&answer.body);
    text.lines()
        .find(|l| l.starts_with("healthchain_process_cpu_seconds "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn cpu_of(targets: &[Target]) -> Vec<Option<f64>> {
    let mut cpu = Vec::new();
    for target in targets {
        cpu.push(node_cpu(target.api).await);
    }
    cpu
}

/// What a run reports besides its figures.
pub(crate) struct Notes {
    pub(crate) errors: HashMap<String, u64>,
    pub(crate) busy: u64,
    pub(crate) reorgs: u64,
}

/// Runs one rate against `targets`.
pub(crate) async fn run_rate(
    targets: &[Target],
    plan: &Plan,
    accounts: &mut Accounts,
    genesis: &Genesis,
    progress: Option<&ProgressBar>,
) -> anyhow::Result<(RunResult, Notes)> {
    let scripts: Vec<Arc<Script>> = scripts(plan, accounts, genesis, targets.len())?
        .into_iter()
        .map(Arc::new)
        .collect();
    let total: usize = scripts.iter().map(|s| s.txs.len()).sum();
    let commits: Commits = Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut watchers = Vec::new();
    for (node, target) in targets.iter().enumerate() {
        let mut connection = Api::connect(target.api).await?;
        let tip: Height = connection.get_json("/status").await?;
        watchers.push(tokio::spawn(watch(
            target.api,
            node,
            tip.height,
            Arc::clone(&commits),
            stop.clone(),
        )));
    }
    let everyone: u8 = ((1u16 << targets.len()) - 1) as u8;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let start_std = Instant::now() + Duration::from_millis(100);
    let clients: Vec<_> = scripts
        .iter()
        .map(|s| tokio::spawn(client(targets[s.target].api, Arc::clone(s), start)))
        .collect();
    // CPU over the measured window.
    tokio::time::sleep_until(start + plan.warmup).await;
    let (cpu_before, own_before) = (cpu_of(targets).await, crate::cpu::process_cpu_seconds());
    let window_end = start + plan.warmup + plan.duration;
    if let Some(bar) = progress {
        bar.set_length(total as u64);
    }
    while tokio::time::Instant::now() < window_end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(bar) = progress {
            let done = {
                let commits = commits
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                commits.values().filter(|(m, _)| *m == everyone).count()
            };
            bar.set_position(done as u64);
            // The generator's own share of a core since the window began: it shares
            // the cores with the nodes it measures.
            if let (Some(before), Some(now)) = (own_before, crate::cpu::process_cpu_seconds()) {
                let wall = (tokio::time::Instant::now() - (start + plan.warmup)).as_secs_f64();
                if wall > 0.0 {
                    bar.set_message(format!(
                        "; generator {:.0}% of a core",
                        100.0 * (now - before) / wall
                    ));
                }
            }
        }
    }
    let (cpu_after, own_after) = (cpu_of(targets).await, crate::cpu::process_cpu_seconds());
    let mut sent = Vec::new();
    for handle in clients {
        sent.push(handle.await.context("a client task failed")?);
    }
    // Drain: until every accepted transaction is on every node, or the drain ends.
    let accepted: Vec<TxId> = scripts
        .iter()
        .zip(&sent)
        .flat_map(|(s, r)| {
            s.ids
                .iter()
                .zip(&r.outcomes)
                .filter(|(_, o)| **o == Outcome::Accepted)
                .map(|(id, _)| *id)
        })
        .collect();
    let drain_end = Instant::now() + plan.drain;
    loop {
        let missing = {
            let commits = commits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            accepted
                .iter()
                .filter(|id| commits.get(id).is_none_or(|(m, _)| *m != everyone))
                .count()
        };
        if let Some(bar) = progress {
            bar.set_position((accepted.len() - missing) as u64);
        }
        if missing == 0 || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let mut reorgs = 0;
    for watcher in watchers {
        reorgs += watcher.await.context("a watcher task failed")??;
    }
    // The figures of the measured window.
    let window = (plan.warmup, plan.warmup + plan.duration);
    let commits = commits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (mut sent_in_window, mut failed, mut dropped) = (0u64, 0u64, 0u64);
    let mut samples = Vec::new();
    let mut last_commit = start_std + window.0;
    for (script, result) in scripts.iter().zip(&sent) {
        for ((id, due), outcome) in script.ids.iter().zip(&script.due).zip(&result.outcomes) {
            if *due < window.0 || *due >= window.1 {
                continue;
            }
            if *outcome != Outcome::Unsent {
                sent_in_window += 1;
            }
            match outcome {
                Outcome::Accepted => match commits.get(id) {
                    Some((mask, at)) if *mask == everyone => {
                        let submitted = start_std + *due;
                        samples
                            .push(at.saturating_duration_since(submitted).as_secs_f64() * 1000.0);
                        last_commit = last_commit.max(*at);
                    }
                    _ => dropped += 1,
                },
                Outcome::Failed | Outcome::Unsent => failed += 1,
            }
        }
    }
    let committed = samples.len() as f64;
    let span = last_commit
        .saturating_duration_since(start_std + window.0)
        .max(plan.duration);
    let node_cpu = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| Some(a.as_ref()? - b.as_ref()?))
        .collect();
    let own_cpu = match (own_before, own_after) {
        (Some(b), Some(a)) => a - b,
        _ => 0.0,
    };
    let mut errors = HashMap::new();
    let mut busy = 0;
    for result in &sent {
        busy += result.busy;
        for (kind, n) in &result.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    Ok((
        RunResult {
            target_rate: plan.rate,
            send_rate: sent_in_window as f64 / plan.duration.as_secs_f64(),
            committed_rate: committed / span.as_secs_f64(),
            latency: Latency::of(samples),
            failed,
            dropped,
            node_cpu,
            own_cpu,
            window: plan.duration,
        },
        Notes {
            errors,
            busy,
            reorgs,
        },
    ))
}
