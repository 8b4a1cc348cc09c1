//! The original walkthrough, end to end, on three real nodes in one process.
//!
//! A Doctor, a Lab and a Pharmacy node start on free loopback ports and connect to each
//! other. Dr. Alice registers a patient and orders a blood test, Bob records the
//! result, Alice prescribes (paying the lab for the results it read), Charlie fills the
//! prescription — and blocks are mined on different nodes, as the original README
//! does. At the end the chain, the balances and the patient's history are printed, and
//! the example checks that all three nodes agree on the tip and that dr_alice holds
//! 1,100 e-cash and lab_tech_bob 100. It exits non-zero otherwise.
//!
//! What people wrote is sealed: the chain holds only public facts, and each node
//! receives the bodies sealed to its user. The example prints what each node can and
//! cannot read, and checks that it is exactly what the treatment consent allows.
//!
//! Then the patient's chapter: Jane Doe starts her own node with the keys her
//! registration created, reads her records, sees on chain who read them, revokes the
//! pharmacy (whose next fill is refused), and asks for erasure, which every member's
//! node carries out and confirms. The balances stay the walkthrough's.
//!
//! Run with `cargo run --example three_nodes`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use healthchain::health_workflow::seal::{EncryptionKey, SealedBody};
use healthchain::health_workflow::{
    AccessPurpose, Actor, BodyReader, Credentials, Event, EventError, GrantRef, HealthPolicy,
    OrderId, PatientActor, PatientId, PrescriptionDraft, PrescriptionId, Reading, Role, Section,
    TestRequest, Written, balances, demo_genesis, demo_keypair, records, username_of,
    write_registry,
};
use healthchain::ledger_core::{Amount, Genesis, Hash, Timestamp, Transaction, TxBody};
use healthchain::p2p::store::MemoryStore;
use healthchain::p2p::{MineError, NodeConfig, NodeHandle, RunningNode, Vault, open_ledger, spawn};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Handle = NodeHandle<HealthPolicy, MemoryStore<Event>>;

/// How long any one step may take before the example gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// One of the three nodes, with the user logged in at it.
struct Node {
    name: String,
    handle: Handle,
    running: RunningNode<HealthPolicy, MemoryStore<Event>>,
    actor: Actor,
    /// The user's encryption key, which opens what is sealed to them.
    key: EncryptionKey,
    /// The sealed bodies this node keeps.
    vault: Vault,
    /// The network.
    genesis: healthchain::ledger_core::BlockHash,
}

impl Node {
    /// Keeps a written event's sealed bodies in this node's vault.
    fn keep(&self, tx: &Transaction<Event>, bodies: &[SealedBody]) -> anyhow::Result<()> {
        if let TxBody::App(event) = &tx.body {
            let labelled =
                healthchain::ledger_core::Policy::labelled_refs(&HealthPolicy, &tx.author, event);
            for ((reference, label), body) in labelled.iter().zip(bodies) {
                self.vault.keep(reference, *label, body)?;
            }
        }
        Ok(())
    }
}

fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn step(text: &str) {
    println!("\n== {text}");
}

/// Starts a node, logs `username` in with `password` (checked against the demo
/// network's argon2 hashes) and dials `peers`.
async fn start(
    name: &str,
    genesis: &Genesis,
    username: &str,
    password: &str,
    peers: Vec<std::net::SocketAddr>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Node> {
    let (ledger, _) = open_ledger(genesis.clone(), HealthPolicy, MemoryStore::new())
        .context("opening the ledger")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let name = format!("{name}-{port}");
    let member = Credentials::demo()
        .verify(genesis, username, password)
        .with_context(|| format!("logging in {username}"))?;
    let keys = demo_keypair(&member.username);
    let vault = Vault::memory();
    let mut config = NodeConfig::new(name.clone());
    config.peers = peers;
    // The node proves its user's key to its peers, which then deliver it the sealed
    // bodies sealed to that key, and keeps them in its vault.
    config.member_key = Some(keys.clone());
    config.vault = Some(vault.clone());
    let running = spawn(listener, config, ledger, shutdown.clone())
        .with_context(|| format!("starting {name}"))?;
    let handle = running.handle();
    let key = EncryptionKey::of_member(&keys);
    let actor = handle
        .query({
            let username = member.username.clone();
            move |ledger| Actor::new(ledger, &username, keys)
        })
        .await??;
    println!(
        "{name} listening on {}, logged in as {} ({})",
        handle.local_addr(),
        actor.member().username,
        actor.member().display_name
    );
    Ok(Node {
        name,
        handle,
        running,
        actor,
        key,
        vault,
        genesis: genesis.hash(),
    })
}

/// Waits until `check` holds, re-checking whenever any node reports an event.
async fn wait_until<F, Fut>(nodes: &[&Node], what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    for node in nodes {
        let mut events = node.handle.subscribe();
        let (wake, stop) = (Arc::clone(&wake), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    event = events.recv() => match event {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            wake.notify_one()
                        }
                        Err(_) => break,
                    },
                }
            }
        });
    }
    let _stop_forwarders = stop.drop_guard();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if check().await? {
            return Ok(());
        }
        // An event may have come between the check and now; `notify_one` keeps it.
        if tokio::time::timeout_at(deadline, wake.notified())
            .await
            .is_err()
        {
            bail!("timed out waiting until {what}");
        }
    }
}

/// Submits a written event at `node`, with its sealed bodies (kept in its vault and
/// delivered to the nodes they are sealed to), and waits until every node has it
/// pending.
async fn submit_written(node: &Node, all: &[&Node], written: Written) -> anyhow::Result<()> {
    let id = written.tx.id();
    node.keep(&written.tx, &written.bodies)?;
    node.handle
        .submit_sealed(written.tx, written.bodies)
        .await?
        .with_context(|| format!("{} refused a transaction", node.name))?;
    submit(node, all, Vec::new(), vec![id]).await
}

/// Submits transactions at `node` and waits until every node has them (and the
/// transactions `also` submitted before) pending.
async fn submit(
    node: &Node,
    all: &[&Node],
    txs: Vec<Transaction<Event>>,
    also: Vec<healthchain::ledger_core::TxId>,
) -> anyhow::Result<()> {
    let mut ids: Vec<_> = txs.iter().map(Transaction::id).collect();
    ids.extend(also);
    for tx in txs {
        node.handle
            .submit_transaction(tx)
            .await?
            .with_context(|| format!("{} refused a transaction", node.name))?;
    }
    wait_until(all, "every node has the new transactions", || {
        let handles: Vec<Handle> = all.iter().map(|n| n.handle.clone()).collect();
        let ids = ids.clone();
        async move {
            for handle in handles {
                let pending = handle
                    .query(move |l| l.mempool().map(|p| p.id).collect::<Vec<_>>())
                    .await?;
                if !ids.iter().all(|id| pending.contains(id)) {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
}

/// Mines at `node` with its user's key and waits until every node has the block as tip.
async fn mine(node: &Node, all: &[&Node]) -> anyhow::Result<()> {
    let keys = demo_keypair(&node.actor.member().username);
    let mined = loop {
        match node.handle.mine(keys.clone()).await? {
            Ok(mined) => break mined,
            // Another node's block arrived first: mine again on the new tip.
            Err(MineError::TipChanged) => continue,
            Err(e) => bail!("{} could not mine: {e}", node.name),
        }
    };
    let txs = node
        .handle
        .query(move |l| {
            l.block(&mined.hash)
                .ok()
                .flatten()
                .map(|b| b.transactions.len())
        })
        .await?
        .unwrap_or(0);
    println!(
        "{} mined block #{} ({:#}) with {txs} transaction(s)",
        node.name, mined.height, mined.hash
    );
    wait_until(all, "every node has the new block as tip", || {
        let handles: Vec<Handle> = all.iter().map(|n| n.handle.clone()).collect();
        async move {
            for handle in handles {
                if handle.tip().await?.hash != mined.hash {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
}

/// What `node`'s user reads of `section` of a recorded event: the clear body, if it
/// is sealed to them and the node holds it.
fn read_as(
    node: &Node,
    recorded: &healthchain::health_workflow::RecordedEvent,
    section: Section,
) -> Option<healthchain::health_workflow::Body> {
    let reader = BodyReader::new(node.genesis, node.actor.account(), &node.key);
    let vault = |h: &Hash| node.vault.get(h).ok().flatten();
    match reader.read(&recorded.recorded.author, &recorded.event, section, vault)? {
        Reading::Clear(body) => Some(body),
        _ => None,
    }
}

/// The sections each member reads under the treatment-consent default: the doctor
/// everything, the lab the name, the test ordered and its results, the pharmacy the
/// name and the prescription.
fn expected_reads(node: &Node) -> Vec<Section> {
    match node.actor.member().username.as_str() {
        "dr_alice" => vec![
            Section::Demographics,
            Section::Notes,
            Section::TestOrder,
            Section::Results,
            Section::Prescription,
        ],
        "lab_tech_bob" => vec![Section::Demographics, Section::TestOrder, Section::Results],
        _ => vec![Section::Demographics, Section::Prescription],
    }
}

/// The sections of the patient's history `node`'s user reads, and one line per
/// sealed section saying what it shows.
async fn readable(node: &Node, patient: PatientId) -> anyhow::Result<(Vec<Section>, Vec<String>)> {
    let events = node
        .handle
        .query(move |l| records::patient_history(l, &patient))
        .await??
        .unwrap_or_default();
    let mut lines = vec![format!(
        "  {} ({}):",
        node.name,
        node.actor.member().username
    )];
    let mut reads = Vec::new();
    for recorded in &events {
        for (section, _) in recorded.event.sealed() {
            let shown = match read_as(node, recorded, section) {
                Some(body) => {
                    reads.push(section);
                    format!("reads '{}'", body.summary())
                }
                None => format!("(sealed: {section})"),
            };
            lines.push(format!(
                "    {:<20} {:<18} {shown}",
                recorded.event.kind().to_string(),
                section.to_string()
            ));
        }
    }
    Ok((reads, lines))
}

async fn print_balances(node: &Node) -> anyhow::Result<Vec<(String, Amount)>> {
    let table = node
        .handle
        .query(|l| {
            balances(l)
                .into_iter()
                .map(|b| (b.name, b.amount))
                .collect::<Vec<_>>()
        })
        .await?;
    for (name, amount) in &table {
        println!("  {name}: {amount}");
    }
    Ok(table)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let genesis = demo_genesis();
    println!(
        "healthchain DEMO network '{}' ({:#}): demo keys from a published seed, for learning only",
        genesis.network,
        genesis.hash()
    );
    let shutdown = CancellationToken::new();

    step("Starting the Doctor, Lab and Pharmacy nodes");
    let doctor = start(
        "DoctorNode",
        &genesis,
        "dr_alice",
        "password123",
        vec![],
        &shutdown,
    )
    .await?;
    let lab = start(
        "LabNode",
        &genesis,
        "lab_tech_bob",
        "labpass",
        vec![doctor.handle.local_addr()],
        &shutdown,
    )
    .await?;
    let pharmacy = start(
        "PharmacyNode",
        &genesis,
        "pharm_charlie",
        "pharmpass",
        vec![doctor.handle.local_addr(), lab.handle.local_addr()],
        &shutdown,
    )
    .await?;
    let all = [&doctor, &lab, &pharmacy];
    wait_until(&all, "the three nodes are connected", || {
        let handles: Vec<Handle> = all.iter().map(|n| n.handle.clone()).collect();
        async move {
            for handle in handles {
                if handle.peers().await?.len() < 2 {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await?;
    println!("all three nodes are connected to each other");

    step("1. Doctor: register Jane Doe and consult, ordering a blood test");
    let patient = PatientId::from(Uuid::new_v4());
    let order = OrderId::from(Uuid::new_v4());
    let alice = doctor.actor.clone();
    let mut register = doctor
        .handle
        .query(move |l| alice.register(l, patient, "Jane Doe", now(), &mut rand::rng()))
        .await??;
    // Registering creates the patient's own keys, handed to her (the REPL writes them to
    // a passphrase-protected key file).
    let patient_keys = register
        .patient
        .take()
        .context("a registration hands the patient her keys")?
        .0;
    submit_written(&doctor, &all, register).await?;
    println!("Patient ID: {patient}");
    let alice = doctor.actor.clone();
    let consult = doctor
        .handle
        .query(move |l| {
            let notes = "Fatigue for two weeks; check blood count.";
            let test = Some(TestRequest::blood_test(order));
            alice.consult(l, patient, notes, test, now(), &mut rand::rng())
        })
        .await??;
    submit_written(&doctor, &all, consult).await?;
    println!("consultation recorded, blood test ordered (order {order})");

    step("2. Lab node mines block #1 (registration and consultation)");
    mine(&lab, &all).await?;

    step("3. Lab: set_patient and perform_test");
    let bob = lab.actor.clone();
    let result = lab
        .handle
        .query(move |l| {
            let results = "Hemoglobin 13.5 g/dL; normal";
            bob.perform_test(l, patient, None, results, now(), &mut rand::rng())
        })
        .await??;
    let result_id = result.tx.id();
    submit_written(&lab, &all, result).await?;
    println!("lab result recorded ({result_id:#})");

    step("4. Pharmacy node mines block #2 (the lab result, and dr_alice's 500 reward)");
    mine(&pharmacy, &all).await?;
    let table = print_balances(&doctor).await?;
    ensure!(
        table.contains(&("dr_alice".into(), Amount(500))),
        "dr_alice should hold 500 after the lab result"
    );

    step("5. Doctor: prescribe, paying the lab 100 for its results");
    let alice = doctor.actor.clone();
    let prescribed = doctor
        .handle
        .query(move |l| {
            let draft = PrescriptionDraft {
                prescription_id: PrescriptionId::from(Uuid::new_v4()),
                patient_id: patient,
                medication: "Iron supplement".into(),
                dosage: "65 mg".into(),
                instructions: "once a day with food".into(),
                based_on: vec![result_id],
            };
            alice.prescribe(l, draft, now(), &mut rand::rng())
        })
        .await??;

    for payment in &prescribed.payments {
        match &payment.transfer {
            Ok(_) => println!(
                "paying {} {} for the results",
                payment.username, payment.amount
            ),
            Err(why) => println!("{} is not paid: {why}", payment.username),
        }
    }
    let payments = prescribed.transactions().skip(1).cloned().collect();
    let written = Written {
        tx: prescribed.prescription.clone(),
        bodies: prescribed.bodies.clone(),
        patient: None,
    };
    submit_written(&doctor, &all, written).await?;
    submit(&doctor, &all, payments, Vec::new()).await?;

    step("6. Lab node mines block #3 (prescription and payment)");
    mine(&lab, &all).await?;
    print_balances(&lab).await?;

    step("7. Pharmacy: set_patient and fill");
    let prescription_id = pharmacy
        .handle
        .query(move |l| {
            l.state()
                .app()
                .unfilled_prescriptions(&patient)
                .first()
                .map(|p| p.id)
        })
        .await?
        .context("the prescription should be open at the pharmacy")?;
    let charlie = pharmacy.actor.clone();
    let fill = pharmacy
        .handle
        .query(move |l| charlie.fill(l, prescription_id, now()))
        .await??;
    submit(&pharmacy, &all, vec![fill], Vec::new()).await?;
    println!("prescription {prescription_id} filled");

    step("8. Doctor node mines block #4 (the fill, and dr_alice's 700 reward)");
    mine(&doctor, &all).await?;

    step("The chain");
    let chain = doctor
        .handle
        .query(|l| {
            l.main_chain()
                .iter()
                .skip(1)
                .filter_map(|hash| {
                    let block = l.block(hash).ok().flatten()?;
                    let producer = username_of(l, &block.header.producer);
                    Some(format!(
                        "  #{} {:#}  by {producer:<14} {} tx, {} reward(s)",
                        block.header.height,
                        hash,
                        block.transactions.len(),
                        block.rewards.len()
                    ))
                })
                .collect::<Vec<_>>()
        })
        .await?;
    for line in chain {
        println!("{line}");
    }

    step("Jane Doe's history");
    let history = doctor
        .handle
        .query(move |l| {
            let events = records::patient_history(l, &patient)?.unwrap_or_default();
            let lines = events
                .iter()
                .map(|e| {
                    let who = username_of(l, &e.recorded.author);
                    format!(
                        "  block #{} {:<22} by {who}",
                        e.recorded.height,
                        e.event.kind()
                    )
                })
                .collect::<Vec<_>>();
            Ok::<_, healthchain::health_workflow::RecordError<_>>(lines)
        })
        .await??;
    for line in history {
        println!("{line}");
    }

    step("What each node can read of Jane Doe's records");
    // Bodies travel beside the chain: wait until each node holds what is sealed to it.
    wait_until(&all, "every node holds the bodies sealed to it", || async {
        for node in all {
            let (reads, _) = readable(node, patient).await?;
            if reads.len() < expected_reads(node).len() {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let mut privacy_ok = true;
    for node in all {
        let (reads, lines) = readable(node, patient).await?;
        for line in lines {
            println!("{line}");
        }
        privacy_ok &= reads == expected_reads(node);
    }

    step("Patient registry (patient_registry.csv, at the doctor's node)");
    let events = doctor
        .handle
        .query(move |l| records::patient_history(l, &patient))
        .await??
        .unwrap_or_default();
    let registration = events.first().context("the patient is registered")?.clone();
    let name = read_as(&doctor, &registration, Section::Demographics).map(|b| b.summary());
    let csv = doctor
        .handle
        .query(move |l| {
            let mut out = Vec::new();
            write_registry(l.state().app(), l.genesis(), |_| name.clone(), &mut out).map(|()| out)
        })
        .await??;
    print!("{}", String::from_utf8_lossy(&csv));

    // Each member read bodies about Jane Doe that someone else wrote: their nodes record
    // those reads on chain for her audit, as the REPL does after every command.
    for node in all {
        record_reads(node, &all, patient).await?;
    }

    let chapter =
        patient_chapter(&doctor, &lab, &pharmacy, patient, patient_keys, &shutdown).await?;

    step("Balances");
    let mut tables = Vec::new();
    for node in all {
        tables.push(node.handle.query(balances).await?);
    }
    let table = print_balances(&doctor).await?;

    step("Checks");
    let mut tips = Vec::new();
    for node in all {
        tips.push(node.handle.tip().await?);
    }
    let agree =
        tips.windows(2).all(|w| w[0].hash == w[1].hash) && tables.windows(2).all(|w| w[0] == w[1]);
    println!(
        "same tip on all three nodes: {} (#{} {:#})",
        if agree { "yes" } else { "NO" },
        tips[0].height,
        tips[0].hash
    );
    // Blocks that two of the three producers have built on are final on every node.
    let final_agree = tips
        .windows(2)
        .all(|w| w[0].final_height == w[1].final_height);
    println!(
        "final height on all three nodes: {} ({}: blocks up to #{} can never be reverted)",
        tips[0].final_height,
        if final_agree {
            "same everywhere"
        } else {
            "NOT THE SAME"
        },
        tips[0].final_height
    );
    let alice_ok = table.contains(&("dr_alice".into(), Amount(1_100)));
    let bob_ok = table.contains(&("lab_tech_bob".into(), Amount(100)));
    println!("dr_alice 1100: {}", if alice_ok { "yes" } else { "NO" });

    println!("lab_tech_bob 100: {}", if bob_ok { "yes" } else { "NO" });
    println!(
        "each node reads exactly what the treatment consent lets it (the pharmacy no notes or \
         results, the lab no notes or medication): {}",
        if privacy_ok { "yes" } else { "NO" }
    );
    println!(
        "the patient read her records, saw the reads, and the pharmacy's fill after her \
         revocation was refused: {}",
        if chapter.consent_ok { "yes" } else { "NO" }
    );
    println!(
        "every member's node erased her records and confirmed: {}",
        if chapter.erased_ok { "yes" } else { "NO" }
    );

    shutdown.cancel();
    for node in [doctor, lab, pharmacy] {
        node.running.join().await?;
    }
    ensure!(agree, "the nodes disagree on the tip or the balances");
    ensure!(final_agree, "the nodes disagree on the final block");
    ensure!(
        alice_ok && bob_ok,
        "the final balances are not the walkthrough's"
    );
    ensure!(
        privacy_ok,
        "a node reads more, or less, than its members are consented to"
    );
    ensure!(
        chapter.consent_ok,
        "the patient's audit or revocation did not work"
    );
    ensure!(
        chapter.erased_ok,
        "the erasure was not carried out everywhere"
    );
    println!("\nwalkthrough complete: all checks passed");
    Ok(())
}

/// Records on chain, signed by `node`'s user, the bodies about `patient` that the user
/// read without having written them, and waits until every node has the records.
async fn record_reads(node: &Node, all: &[&Node], patient: PatientId) -> anyhow::Result<()> {
    let events = node
        .handle
        .query(move |l| records::patient_history(l, &patient))
        .await??
        .unwrap_or_default();
    let me = node.actor.account();
    let read: Vec<_> = events
        .iter()
        .filter(|e| e.recorded.author != me)
        .flat_map(|e| {
            e.event
                .sealed()
                .into_iter()
                .filter(|(section, _)| read_as(node, e, *section).is_some())
                .map(|(_, r)| r.body_id)
                .collect::<Vec<_>>()
        })
        .collect();
    if read.is_empty() {
        return Ok(());
    }
    let actor = node.actor.clone();
    let tx = node
        .handle
        .query(move |l| actor.record_access(l, patient, me, read, now()))
        .await??;
    submit(node, all, vec![tx], Vec::new()).await
}

/// The patient's own node: her key proven to the peers, her records kept in its vault.
struct PatientNode {
    handle: Handle,
    running: RunningNode<HealthPolicy, MemoryStore<Event>>,
    me: PatientActor,
    vault: Vault,
}

/// What the patient's chapter found.
struct Chapter {
    consent_ok: bool,
    erased_ok: bool,
}

/// The patient's chapter: her node, her records, the audit, the revocation of the
/// pharmacy and its refused fill, and the erasure every member's node confirms.
async fn patient_chapter(
    doctor: &Node,
    lab: &Node,
    pharmacy: &Node,
    patient: PatientId,
    keys: healthchain::ledger_core::Keypair,
    shutdown: &CancellationToken,
) -> anyhow::Result<Chapter> {
    let all = [doctor, lab, pharmacy];
    step("9. Patient: Jane Doe starts her own node with the keys her registration created");
    let genesis = demo_genesis();
    let (ledger, _) = open_ledger(genesis.clone(), HealthPolicy, MemoryStore::new())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let vault = Vault::memory();
    let mut config = NodeConfig::new("PatientNode");
    config.peers = all.iter().map(|n| n.handle.local_addr()).collect();
    config.member_key = Some(keys.clone());
    config.vault = Some(vault.clone());
    let running = spawn(listener, config, ledger, shutdown.clone())?;
    let handle = running.handle();
    let tip = doctor.handle.tip().await?.hash;
    let me_keys = keys.clone();
    let patient_node = loop {
        // Her registration must be in the chain her node synced.
        if handle.tip().await?.hash == tip {
            let me = handle
                .query(move |l| PatientActor::new(l, me_keys.clone()))
                .await??;
            break PatientNode {
                handle,
                running,
                me,
                vault,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "PatientNode listening on {}, logged in as patient {}",
        patient_node.handle.local_addr(),
        patient_node.me.patient_id()
    );
    // Every body about her is sealed to her too: her node fetches them from the others.
    let key = patient_node.me.encryption_key();
    let her_records = |events: &[healthchain::health_workflow::RecordedEvent]| {
        let reader = BodyReader::new(genesis.hash(), patient_node.me.account(), &key);
        let vault = |h: &Hash| patient_node.vault.get(h).ok().flatten();
        let mut lines = Vec::new();
        for e in events {
            for (section, _) in e.event.sealed() {
                if let Some(Reading::Clear(body)) =
                    reader.read(&e.recorded.author, &e.event, section, vault)
                {
                    lines.push(format!(
                        "  {:<20} {}",
                        e.event.kind().to_string(),
                        body.summary()
                    ));
                }
            }
        }
        lines
    };
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let history = loop {
        let events = patient_node
            .handle
            .query(move |l| records::patient_history(l, &patient))
            .await??
            .unwrap_or_default();
        let lines = her_records(&events);
        let sealed: usize = events.iter().map(|e| e.event.sealed().len()).sum();
        if lines.len() == sealed {
            break lines;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the patient's node never received her records");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for line in &history {
        println!("{line}");
    }

    step("10. Doctor node mines block #5 (the members' read records); Patient: audit");
    mine(doctor, &all).await?;
    let audit = doctor
        .handle
        .query(move |l| -> anyhow::Result<Vec<(String, usize, bool)>> {
            let consent = l
                .state()
                .app()
                .patient(&patient)
                .map(healthchain::health_workflow::Patient::consent)
                .unwrap_or_default();
            let mut reads = Vec::new();
            for entry in &consent.accesses {
                let e = records::recorded_event(l, entry.height, &entry.tx_id)?;
                if let Event::AccessRecord(a) = &e.event {
                    reads.push((
                        username_of(l, &a.reader),
                        a.bodies.len(),
                        matches!(a.purpose, AccessPurpose::BreakGlass { .. }),
                    ));
                }
            }
            Ok(reads)
        })
        .await??;
    for (reader, bodies, glass) in &audit {
        println!(
            "  {reader} read {bodies} of her records{}",
            if *glass { " (BREAK-GLASS)" } else { "" }
        );
    }
    let readers: Vec<&str> = audit.iter().map(|(r, _, _)| r.as_str()).collect();
    let audit_ok = ["dr_alice", "lab_tech_bob", "pharm_charlie"]
        .iter()
        .all(|u| readers.contains(u));

    step("11. Patient: revoke the pharmacy; its next fill is refused");
    let me = patient_node.me.clone();
    let revoke = patient_node
        .handle
        .query(move |l| me.revoke(l, GrantRef::Treatment(Role::Pharmacist), now()))
        .await??;
    patient_node.handle.submit_transaction(revoke).await??;
    wait_pending(&all, 1).await?;
    mine(doctor, &all).await?;
    println!("the pharmacy's treatment consent is revoked (block #6)");
    // A new prescription, based on no new result (nobody is paid): sealed to the doctor
    // and the patient only.
    let alice = doctor.actor.clone();
    let prescribed = doctor
        .handle
        .query(move |l| {
            let draft = PrescriptionDraft {
                prescription_id: PrescriptionId::from(Uuid::new_v4()),
                patient_id: patient,
                medication: "Vitamin C".into(),
                dosage: "500 mg".into(),
                instructions: "once a day".into(),
                based_on: Vec::new(),
            };
            alice.prescribe(l, draft, now(), &mut rand::rng())
        })
        .await??;
    let prescription = Written {
        tx: prescribed.prescription.clone(),
        bodies: prescribed.bodies.clone(),
        patient: None,
    };
    submit_written(doctor, &all, prescription).await?;
    mine(lab, &all).await?;
    let open = pharmacy
        .handle
        .query(move |l| {
            l.state()
                .app()
                .unfilled_prescriptions(&patient)
                .first()
                .map(|p| p.id)
        })
        .await?
        .context("the new prescription is open")?;
    let charlie = pharmacy.actor.clone();
    let fill = pharmacy
        .handle
        .query(move |l| charlie.fill(l, open, now()))
        .await??;
    let refused = pharmacy.handle.submit_transaction(fill).await?;
    let revoked = matches!(
        &refused,
        Err(healthchain::ledger_core::TxError::Policy {
            error: EventError::GrantRevoked { .. },
            ..
        })
    );
    match &refused {
        Err(e) => println!("the pharmacy's fill is refused: {e}"),
        Ok(_) => println!("the pharmacy's fill was ACCEPTED"),
    }

    step("12. Patient: erase; every member's node erases her records and confirms");
    let me = patient_node.me.clone();
    let erase = patient_node
        .handle
        .query(move |l| me.erase(l, now()))
        .await??;
    patient_node.handle.submit_transaction(erase).await??;
    wait_pending(&all, 1).await?;
    mine(doctor, &all).await?;
    let mut emptied = true;
    for node in all {
        // What a member's node does (the CLI's nodes do it by themselves): delete the
        // patient's bodies from its vault, then post a signed receipt.
        let (hashes, request) = node
            .handle
            .query(move |l| {
                let events = records::patient_history(l, &patient)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let hashes: Vec<Hash> = events
                    .iter()
                    .flat_map(|e| {
                        e.event
                            .sealed()
                            .into_iter()
                            .map(|(_, r)| r.ciphertext_hash)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let request = l
                    .state()
                    .app()
                    .patient(&patient)
                    .and_then(|p| p.consent().erased)
                    .map(|r| r.tx_id);
                (hashes, request)
            })
            .await?;
        let request = request.context("the erasure request is on the chain")?;
        let erased = node.vault.erase(&hashes)?;
        emptied &= hashes
            .iter()
            .all(|h| !node.vault.contains(h).unwrap_or(true));
        let actor = node.actor.clone();
        let receipt = node
            .handle
            .query(move |l| actor.confirm_erasure(l, patient, request, now()))
            .await??;
        node.handle.submit_transaction(receipt).await??;
        println!(
            "  {} erased {erased} sealed bodies and posted its receipt",
            node.name
        );
    }
    wait_pending(&all, 3).await?;
    mine(doctor, &all).await?;
    let confirmed = patient_node
        .handle
        .query(move |l| {
            l.state()
                .app()
                .patient(&patient)
                .map(|p| {
                    p.consent()
                        .receipts
                        .iter()
                        .map(|r| username_of(l, &r.author))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .await;
    let confirmed = confirmed.unwrap_or_default();
    println!(
        "the patient sees the erasure confirmed by: {}",
        confirmed.join(", ")
    );
    let replays = doctor
        .handle
        .query(|l| l.replay_from_genesis().as_ref() == Ok(l.state()))
        .await?;
    println!(
        "the chain still verifies from genesis: {}",
        if replays { "yes" } else { "NO" }
    );
    patient_node.running.abort();
    Ok(Chapter {
        consent_ok: history.len() >= 5 && audit_ok && revoked,
        erased_ok: emptied && confirmed.len() == 3 && replays,
    })
}

/// Waits until every node has at least `count` pending transactions.
async fn wait_pending(all: &[&Node], count: usize) -> anyhow::Result<()> {
    wait_until(all, "every node has the new transactions", || {
        let handles: Vec<Handle> = all.iter().map(|n| n.handle.clone()).collect();
        async move {
            for handle in handles {
                if handle.query(|l| l.mempool().len()).await? < count {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
}
