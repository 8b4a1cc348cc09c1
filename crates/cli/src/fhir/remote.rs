//! `healthchain import --api ADDR`: importing into a running network.
//!
//! The importer asks the node's API which network it serves and where it accepts
//! peers (`GET /status`), then joins that network through it as a node of its own,
//! on loopback, holding the doctor's key: it syncs the chain, receives the bodies
//! sealed to the doctor (which tell what an earlier import already wrote), signs the
//! events as the import does offline, submits each with its bodies (so each peer gets
//! what is sealed to it) and mines them into blocks that the network accepts like any
//! other. It ends when the node behind the API holds its last block.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use health_workflow::demo::demo_genesis;
use health_workflow::seal::SealedBody;
use health_workflow::{Event, HealthPolicy, HealthTx, PatientId};
use ledger_core::{BlockHash, Genesis, Ledger, TxId};
use p2p::store::MemoryStore;
use p2p::{NodeConfig, NodeEvent, NodeHandle, Vault, open_ledger, spawn};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::command::{Summary, patient_line, signers};
use super::plan::PatientPlan;
use super::write::{
    Chain, Outcome, Signers, existing_sources, sealed_refs, write_prescriptions, write_visits,
};
use crate::args::ImportArgs;
use crate::chaingen::Progress;
use crate::tools;

type Handle = NodeHandle<HealthPolicy, MemoryStore<Event>>;

/// Longest the importer waits for the network: to sync, or to take its last block.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest the importer waits for the next sealed body it lacks before it concludes
/// that the node behind the API does not hold it.
const DELIVERY_PAUSE: Duration = Duration::from_secs(10);

/// Largest answer read from the API: a status is a few hundred bytes.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// `GET path` from the API at `addr`: the JSON answer of a 200.
fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to the API at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer of {addr}{path}"))?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("{addr} did not answer HTTP");
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let status = head.split(' ').nth(1).unwrap_or_default().to_string();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    if status != "200" {
        bail!(
            "{addr}{path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("{addr}{path} did not answer JSON"))
}

/// The body of a chunked answer, from its bytes (a chunk may end inside a character).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        let rest = &body[line + 2..];
        if size == 0 || size > rest.len() {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// What `GET /status` says of the node behind the API.
struct Status {
    genesis: String,
    network: String,
    height: u64,
    tip: String,
    peer_addr: SocketAddr,
}

fn status(api: SocketAddr) -> anyhow::Result<Status> {
    let json = get_json(api, "/status")?;
    let text = |key: &str| json[key].as_str().map(str::to_string);
    let missing = || anyhow::anyhow!("{api}/status is not a healthchain node's status");
    Ok(Status {
        genesis: text("genesis").ok_or_else(missing)?,
        network: text("network").ok_or_else(missing)?,
        height: json["height"].as_u64().ok_or_else(missing)?,
        tip: text("tip").ok_or_else(missing)?,
        peer_addr: text("peer_addr")
            .ok_or_else(missing)?
            .parse()
            .context("the node's peer address")?,
    })
}

/// The importer's own node, and the runtime it runs on.
struct RemoteChain<'a> {
    runtime: &'a Runtime,
    handle: Handle,
    vault: Vault,
}

impl Chain for RemoteChain<'_> {
    type Bodies = MemoryStore<Event>;

    fn read<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Ledger<HealthPolicy, MemoryStore<Event>>) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        Ok(self.runtime.block_on(self.handle.query(f))?)
    }

    fn submit(
        &mut self,
        tx: HealthTx,
        bodies: Vec<SealedBody>,
        what: &str,
    ) -> anyhow::Result<TxId> {
        // The node serves bodies from its vault: they go in before the transaction.
        for ((reference, label), body) in sealed_refs(&tx).iter().zip(&bodies) {
            self.vault
                .keep(reference, *label, body)
                .context("keeping a sealed body")?;
        }
        match self
            .runtime
            .block_on(self.handle.submit_sealed(tx, bodies))?
        {
            Ok(id) => Ok(id),
            Err(e) => bail!("{what} was refused: {e}"),
        }
    }
}

impl RemoteChain<'_> {
    /// Mines until nothing waits; returns how many blocks.
    fn mine_all(&mut self, signers: &Signers) -> anyhow::Result<u64> {
        let mut mined = 0;
        while self.read(|l| l.mempool().len())? > 0 {
            match self
                .runtime
                .block_on(self.handle.mine(signers.doctor.keys.clone()))?
            {
                Ok(_) => mined += 1,
                Err(e) => bail!("mining the imported events failed: {e}"),
            }
        }
        Ok(mined)
    }

    /// Waits until every body of `patient`'s history is in the vault or was refused
    /// to this node (sealed to others), then reads what an earlier import wrote.
    fn existing(
        &mut self,
        events: &mut tokio::sync::broadcast::Receiver<NodeEvent<health_workflow::EventError>>,
        signers: &Arc<Signers>,
        patient: PatientId,
    ) -> anyhow::Result<HashSet<health_workflow::clinical::SourceId>> {
        let vault = self.vault.clone();
        let missing = self.read(move |l| {
            let Ok(Some(history)) = health_workflow::records::patient_history(l, &patient) else {
                return HashSet::new();
            };
            history
                .iter()
                .flat_map(|r| r.event.sealed())
                .map(|(_, reference)| reference.ciphertext_hash)
                .filter(|hash| !vault.contains(hash).unwrap_or(false))
                .collect::<HashSet<_>>()
        })?;
        let mut missing = missing;
        // Bodies come in batches; a node that lacks one answers nothing for it, so the
        // wait ends when none has come for a while.
        let mut deadline = tokio::time::Instant::now() + DELIVERY_PAUSE;
        while !missing.is_empty() {
            let event = self
                .runtime
                .block_on(tokio::time::timeout_at(deadline, events.recv()));
            match event {
                Ok(Ok(
                    NodeEvent::BodiesKept { hashes, .. } | NodeEvent::BodiesDenied { hashes, .. },
                )) => {
                    for hash in hashes {
                        missing.remove(&hash);
                    }
                    deadline = tokio::time::Instant::now() + DELIVERY_PAUSE;
                }
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    let vault = self.vault.clone();
                    missing.retain(|hash| !vault.contains(hash).unwrap_or(false));
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    bail!("the importing node stopped")
                }
                Err(_) => bail!(
                    "the node behind the API did not deliver {} sealed body(ies) of patient \
                     {patient} (none came for {} s), so the import cannot tell what an \
                     earlier import wrote: import through a doctor's node, which holds them",
                    missing.len(),
                    DELIVERY_PAUSE.as_secs()
                ),
            }
        }
        let (vault, s) = (self.vault.clone(), Arc::clone(signers));
        self.read(move |l| existing_sources(l, &vault, &s, &patient))?
    }
}

/// Waits until the importer's node has synced to `target`.
fn wait_synced(
    runtime: &Runtime,
    handle: &Handle,
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent<health_workflow::EventError>>,
    target: BlockHash,
    height: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + NETWORK_TIMEOUT;
    loop {
        let tip = runtime.block_on(handle.tip())?;
        if tip.hash == target || tip.height.0 > height {
            return Ok(());
        }
        match runtime.block_on(tokio::time::timeout_at(deadline, events.recv())) {
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                bail!("the importing node stopped")
            }
            Err(_) => bail!(
                "the importing node did not sync the network's {height} blocks within {} s",
                NETWORK_TIMEOUT.as_secs()
            ),
        }
    }
}

/// `healthchain import --api ADDR`.
pub(crate) fn import_remote(
    api: SocketAddr,
    args: &ImportArgs,
    plans: &[(std::path::PathBuf, PatientPlan)],
    started: Instant,
) -> anyhow::Result<()> {
    let status = status(api)?;
    let genesis: Genesis = match &args.genesis {
        Some(path) => tools::read_genesis(path)?,
        None => demo_genesis(),
    };
    if genesis.hash().to_string() != status.genesis {
        bail!(
            "the node at {api} serves network '{}' (genesis {}), not '{}' (genesis {}): {}",
            status.network,
            status.genesis,
            genesis.network,
            genesis.hash(),
            if args.genesis.is_some() {
                "give that network's genesis file"
            } else {
                "give its --genesis file and the members' key files"
            }
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Timers are made outside `block_on` too.
    let _context = runtime.enter();
    let (ledger, _) = open_ledger(genesis, HealthPolicy, MemoryStore::new())?;
    let signers = Arc::new(signers(&ledger, args)?);
    let vault = Vault::memory();
    let mut config = NodeConfig::new("fhir-import");
    config.peers = vec![status.peer_addr];
    config.peer_exchange = false;
    config.member_key = Some(signers.doctor.keys.clone());
    config.vault = Some(vault.clone());
    let shutdown = CancellationToken::new();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let mut node = spawn(listener, config, ledger, shutdown.clone())?;
    let mut events = node.events();
    let handle = node.handle();
    let target: BlockHash = status.tip.parse().context("the node's tip")?;
    println!(
        "Joining network '{}' through {} (height {})",
        status.network, status.peer_addr, status.height
    );
    let result = (|| -> anyhow::Result<()> {
        wait_synced(&runtime, &handle, &mut events, target, status.height)?;
        let mut chain = RemoteChain {
            runtime: &runtime,
            handle: handle.clone(),
            vault,
        };
        let mut progress = Progress::new(plans.len() as u64, "importing", "patients");
        let mut summary = Summary::default();
        for (n, (file, plan)) in plans.iter().enumerate() {
            let context = || format!("importing {}", file.display());
            let existing = chain.existing(&mut events, &signers, plan.patient_id)?;
            let mut outcome = Outcome::default();
            let results = write_visits(&mut chain, &signers, plan, &existing, &mut outcome)
                .with_context(context)?;
            summary.blocks += chain.mine_all(&signers)?;
            write_prescriptions(&mut chain, &signers, plan, &existing, results, &mut outcome)
                .with_context(context)?;
            summary.blocks += chain.mine_all(&signers)?;
            progress.line(&patient_line(plan, &outcome));
            summary.add(plan, &outcome);
            progress.set(n as u64 + 1);
        }
        progress.finish();
        // Done once the node behind the API holds the last block.
        let tip = runtime.block_on(handle.tip())?;
        let deadline = Instant::now() + NETWORK_TIMEOUT;
        while status_tip(api)? != tip.hash.to_string() {
            if Instant::now() > deadline {
                bail!(
                    "the node at {api} did not take block {} within {} s",
                    tip.hash,
                    NETWORK_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        summary.print(
            started.elapsed().as_secs_f64(),
            &format!("through the node at {api}"),
        );
        println!("Tip: height {} hash {}", tip.height, tip.hash);
        Ok(())
    })();
    shutdown.cancel();
    let _ = runtime.block_on(node.join());
    result
}

fn status_tip(api: SocketAddr) -> anyhow::Result<String> {
    Ok(status(api)?.tip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_answer_is_joined_even_inside_a_character() {
        // "é" is two bytes, split across two chunks.
        let body = b"3\r\n{\"\xc3\r\n3\r\n\xa9\":\r\n2\r\n1}\r\n0\r\n\r\n";
        assert_eq!(dechunk(body), "{\"é\":1}".as_bytes());
        // A chunk announced longer than what came, or a size that is not hex, ends it.
        assert_eq!(dechunk(b"10\r\nshort"), b"");
        assert_eq!(dechunk(b"zz\r\nabc\r\n"), b"");
    }
}
