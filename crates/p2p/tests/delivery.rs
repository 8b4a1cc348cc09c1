//! Sealed bodies between live nodes on the demo healthcare network: pushed with their
//! transaction to the nodes they are sealed to, pulled by a node that was offline,
//! and served only against the handshake's key proof. Raw peers that prove no key,
//! prove someone else's, or never finish the proof get a refusal or nothing.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use health_workflow::demo::{DemoGenesisBuilder, demo_encryption_key, demo_keypair};
use health_workflow::seal::OpenSealed;
use health_workflow::{
    Actor, Body, BodyReader, Event, HealthPolicy, PatientId, PrescriptionDraft, PrescriptionId,
    Reading, Section, TestRequest, Written, records,
};
use ledger_core::sealed::SealedBody;
use ledger_core::{Genesis, Hash, Height, Keypair, Timestamp, Transaction, TxBody};
use p2p::protocol::{Hello, KeyProof, Message, TipInfo, decode_message};
use p2p::store::MemoryStore;
use p2p::{NodeConfig, NodeEvent, NodeHandle, RunningNode, Vault, limits, open_ledger, spawn};
use rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

type Handle = NodeHandle<HealthPolicy, MemoryStore<Event>>;

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(20);

fn genesis() -> Genesis {
    DemoGenesisBuilder::new().pow_bits(0).build()
}

fn now() -> Timestamp {
    Timestamp(health_workflow::demo::DEMO_GENESIS_TIME.millis() + 60_000)
}

/// A running node holding `key` (a roster key or not), with its vault.
struct Node {
    handle: Handle,
    running: RunningNode<HealthPolicy, MemoryStore<Event>>,
    vault: Vault,
    events: broadcast::Receiver<NodeEvent<health_workflow::EventError>>,
    addr: SocketAddr,
}

async fn start(name: &str, key: Option<Keypair>, peers: Vec<SocketAddr>) -> Node {
    let (ledger, _) = open_ledger(genesis(), HealthPolicy, MemoryStore::new()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let vault = Vault::memory();
    let mut config = NodeConfig::new(name);
    config.peers = peers;
    config.member_key = key;
    config.vault = Some(vault.clone());
    config.session.handshake_timeout = Duration::from_millis(800);
    let mut running = spawn(listener, config, ledger, CancellationToken::new()).unwrap();
    let events = running.events();
    Node {
        handle: running.handle(),
        running,
        vault,
        events,
        addr,
    }
}

impl Node {
    /// Waits for an event matching `pred`.
    async fn wait(
        &mut self,
        what: &str,
        pred: impl Fn(&NodeEvent<health_workflow::EventError>) -> bool,
    ) -> NodeEvent<health_workflow::EventError> {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) if pred(&event) => return event,
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("node stopped: {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Waits until `n` peers are connected with a proven key or not.
    async fn wait_peers(&mut self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.handle.peers().await.unwrap().len() < n {
            assert!(Instant::now() < deadline, "timed out waiting for {n} peers");
            let _ = timeout(Duration::from_millis(200), self.events.recv()).await;
        }
    }

    /// Waits until this node's vault holds `hash`, woken by each event.
    async fn wait_kept(&mut self, hash: Hash) {
        let deadline = Instant::now() + WAIT;
        while !self.vault.contains(&hash).unwrap() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for body {hash}"
            );
            let _ = timeout(Duration::from_millis(200), self.events.recv()).await;
        }
    }

    /// Keeps `written`'s bodies here and submits it with them.
    async fn write(&self, written: Written) {
        keep(&self.vault, &written.tx, &written.bodies);
        self.handle
            .submit_sealed(written.tx, written.bodies)
            .await
            .unwrap()
            .unwrap();
    }

    async fn mine(&self, keys: &Keypair) -> Height {
        self.handle
            .mine(keys.clone())
            .await
            .unwrap()
            .unwrap()
            .height
    }

    async fn stop(self) {
        self.running.abort();
    }
}

fn keep(vault: &Vault, tx: &Transaction<Event>, bodies: &[SealedBody]) {
    if let TxBody::App(event) = &tx.body {
        let labelled = ledger_core::Policy::labelled_refs(&HealthPolicy, &tx.author, event);
        for ((reference, label), body) in labelled.iter().zip(bodies) {
            vault.keep(reference, *label, body).unwrap();
        }
    }
}

/// The ciphertext hash of each section of `tx`'s event.
fn sections(tx: &Transaction<Event>) -> Vec<(Section, Hash)> {
    match &tx.body {
        TxBody::App(event) => event
            .sealed()
            .into_iter()
            .map(|(s, r)| (s, r.ciphertext_hash))
            .collect(),
        TxBody::Transfer { .. } => Vec::new(),
    }
}

async fn actor(handle: &Handle, username: &'static str) -> Actor {
    handle
        .query(move |l| Actor::new(l, username, demo_keypair(username)))
        .await
        .unwrap()
        .unwrap()
}

fn rng(seed: u8) -> chacha20::ChaCha20Rng {
    chacha20::ChaCha20Rng::from_seed([seed; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_reach_only_the_members_they_are_sealed_to() {
    let mut doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let mut lab = start("lab", Some(demo_keypair("lab_tech_bob")), vec![doctor.addr]).await;
    let mut pharmacy = start(
        "pharmacy",
        Some(demo_keypair("pharm_charlie")),
        vec![doctor.addr],
    )
    .await;
    // A node on a key outside the roster, and one with no key at all.
    let mut outsider = start(
        "outsider",
        Some(Keypair::from_seed([42; 32])),
        vec![doctor.addr],
    )
    .await;
    let mut keyless = start("keyless", None, vec![doctor.addr]).await;
    doctor.wait_peers(4).await;
    let proven: Vec<_> = doctor
        .handle
        .peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.proven)
        .collect();
    assert!(proven.contains(&Some(demo_keypair("lab_tech_bob").account())));
    assert!(proven.contains(&None), "the keyless node proves nothing");

    let alice = actor(&doctor.handle, "dr_alice").await;
    let patient = PatientId::from_random_bytes([7; 16]);
    let order = health_workflow::OrderId::from_random_bytes([8; 16]);
    let a = alice.clone();
    let registration = doctor
        .handle
        .query(move |l| a.register(l, patient, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    let name = sections(&registration.tx)[0].1;
    doctor.write(registration).await;
    let consultation = doctor
        .handle
        .query(move |l| {
            let test = Some(TestRequest::blood_test(order));
            alice.consult(l, patient, "tired; pale", test, now(), &mut rng(2))
        })
        .await
        .unwrap()
        .unwrap();
    let notes = sections(&consultation.tx)[0].1;
    let test = sections(&consultation.tx)[1].1;
    doctor.write(consultation).await;

    // Pushed with the transactions: the lab gets the name and the test ordered, the
    // pharmacy the name.
    lab.wait_kept(name).await;
    lab.wait_kept(test).await;
    pharmacy.wait_kept(name).await;

    // Once mined, every member node asks for what it lacks; the doctor refuses each
    // what is not sealed to it.
    doctor.mine(&demo_keypair("dr_alice")).await;
    lab.wait(
        "the notes refused to the lab",
        |e| matches!(e, NodeEvent::BodiesDenied { hashes, .. } if hashes.contains(&notes)),
    )
    .await;
    pharmacy
        .wait("the notes and test refused to the pharmacy", |e| {
            matches!(e, NodeEvent::BodiesDenied { hashes, .. } if hashes.contains(&notes) && hashes.contains(&test))
        })
        .await;
    outsider
        .wait(
            "everything refused to the outsider",
            |e| matches!(e, NodeEvent::BodiesDenied { hashes, .. } if hashes.contains(&name)),
        )
        .await;
    assert!(!lab.vault.contains(&notes).unwrap());
    assert!(!pharmacy.vault.contains(&notes).unwrap());
    assert!(!pharmacy.vault.contains(&test).unwrap());
    assert!(outsider.vault.is_empty().unwrap());
    assert!(keyless.vault.is_empty().unwrap());
    // The outsider has the whole public chain all the same (its pull followed the
    // block).
    assert_eq!(outsider.handle.tip().await.unwrap().height, Height(1));
    // The keyless node still has the public chain.
    keyless
        .wait("the block at the keyless node", |e| {
            matches!(
                e,
                NodeEvent::BlockAccepted {
                    height: Height(1),
                    ..
                }
            )
        })
        .await;

    // What the lab kept opens with its key.
    let history = lab
        .handle
        .query(move |l| records::patient_history(l, &patient).unwrap().unwrap())
        .await
        .unwrap();
    let key = demo_encryption_key("lab_tech_bob");
    let reader = BodyReader::new(
        genesis().hash(),
        demo_keypair("lab_tech_bob").account(),
        &key,
    );
    let from_vault = |h: &Hash| lab.vault.get(h).unwrap();
    let consultation = &history[1];
    let read = reader.read(
        &consultation.recorded.author,
        &consultation.event,
        Section::TestOrder,
        from_vault,
    );
    assert_eq!(
        read.as_ref().and_then(Reading::clear),
        Some(&Body::test_order("Blood Test"))
    );
    for node in [doctor, lab, pharmacy, outsider, keyless] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offline_while_a_prescription_was_written_fetches_it_later() {
    let doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let alice = actor(&doctor.handle, "dr_alice").await;
    let patient = PatientId::from_random_bytes([7; 16]);
    let a = alice.clone();
    let registration = doctor
        .handle
        .query(move |l| a.register(l, patient, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    doctor.write(registration).await;
    doctor.mine(&demo_keypair("dr_alice")).await;
    let prescribed = doctor
        .handle
        .query(move |l| {
            let draft = PrescriptionDraft {
                prescription_id: PrescriptionId::from_random_bytes([9; 16]),
                patient_id: patient,
                medication: "Iron supplement".into(),
                dosage: "65 mg".into(),
                instructions: "with food".into(),
                based_on: Vec::new(),
            };
            alice.prescribe(l, draft, now(), &mut rng(3))
        })
        .await
        .unwrap()
        .unwrap();
    let medication = sections(&prescribed.prescription)[0].1;
    keep(&doctor.vault, &prescribed.prescription, &prescribed.bodies);
    doctor
        .handle
        .submit_sealed(prescribed.prescription.clone(), prescribed.bodies.clone())
        .await
        .unwrap()
        .unwrap();
    doctor.mine(&demo_keypair("dr_alice")).await;

    // The pharmacy starts only now: it syncs the chain and pulls the body.
    let mut pharmacy = start(
        "pharmacy",
        Some(demo_keypair("pharm_charlie")),
        vec![doctor.addr],
    )
    .await;
    pharmacy
        .wait(
            "the prescription pulled",
            |e| matches!(e, NodeEvent::BodiesKept { hashes, .. } if hashes.contains(&medication)),
        )
        .await;
    let body = pharmacy.vault.get(&medication).unwrap().unwrap();
    let TxBody::App(event) = &prescribed.prescription.body else {
        unreachable!("a prescription is an event")
    };
    let reference = event.sealed()[0].1;
    let binding = health_workflow::seal::Binding::new(
        genesis().hash(),
        demo_keypair("dr_alice").account(),
        patient,
        health_workflow::EventKind::Prescription,
    );
    let clear = body
        .open(
            &reference,
            &binding,
            &demo_keypair("pharm_charlie").account(),
            &demo_encryption_key("pharm_charlie"),
        )
        .unwrap();
    let read = Body::decode(&clear, Section::Prescription).unwrap();
    assert_eq!(read.summary(), "Iron supplement, 65 mg (with food)");
    doctor.stop().await;
    pharmacy.stop().await;
}

// ----- raw peers ------------------------------------------------------------------------

fn frame(message: Message<Event>) -> Vec<u8> {
    let payload = message.encode();
    let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    bytes
}

/// Reads one message; `None` once the node closed the connection.
async fn read(stream: &mut TcpStream) -> Option<Message<Event>> {
    let mut len = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut len))
        .await
        .expect("a frame or a close in time")
        .ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some(decode_message::<Event>(&payload, limits::MAX_FRAME_BYTES).unwrap())
}

fn hello(challenge: [u8; 32]) -> Hello {
    Hello {
        protocol_version: limits::PROTOCOL_VERSION,
        genesis: genesis().hash(),
        node_name: "raw".into(),
        listen_addr: None,
        tip: TipInfo {
            hash: genesis().hash(),
            height: Height(0),
            work: 0,
            final_height: Height(0),
        },
        challenge,
    }
}

/// Connects, reads the node's `Hello` and sends ours with `challenge`.
async fn open(addr: SocketAddr, challenge: [u8; 32]) -> (TcpStream, Hello) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let Some(Message::Hello(theirs)) = read(&mut stream).await else {
        panic!("the node speaks first, with its hello")
    };
    stream
        .write_all(&frame(Message::Hello(hello(challenge))))
        .await
        .unwrap();
    (stream, theirs)
}

/// A doctor node holding one registration, mined: the body a raw peer will ask for.
async fn doctor_with_a_body() -> (Node, Hash) {
    let doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let alice = actor(&doctor.handle, "dr_alice").await;
    let patient = PatientId::from_random_bytes([7; 16]);
    let registration = doctor
        .handle
        .query(move |l| alice.register(l, patient, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    let name = sections(&registration.tx)[0].1;
    doctor.write(registration).await;
    (doctor, name)
}

/// Reads until a `Denied` (returned) or the end of the connection, failing on any
/// `Bodies` message.
async fn denied_and_nothing_else(stream: &mut TcpStream) -> Option<Vec<Hash>> {
    loop {
        match read(stream).await? {
            Message::Denied(hashes) => return Some(hashes),
            Message::Bodies(bodies) => panic!("{} bodies served without a proof", bodies.len()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorised_peer_gets_denied_and_nothing_else() {
    let (doctor, name) = doctor_with_a_body().await;
    // Proving no key, then proving a key outside the roster (and so no reader).
    let outsider = Keypair::from_seed([42; 32]);
    for key in [None, Some(&outsider)] {
        let ours = [1u8; 32];
        let (mut stream, theirs) = open(doctor.addr, ours).await;
        let proof = KeyProof::sign(key, &genesis().hash(), &theirs.challenge, &ours, true);
        stream
            .write_all(&frame(Message::KeyProof(proof)))
            .await
            .unwrap();
        stream
            .write_all(&frame(Message::GetBodies(vec![name])))
            .await
            .unwrap();
        let denied = denied_and_nothing_else(&mut stream).await;
        assert_eq!(denied, Some(vec![name]), "proving {key:?}");
    }
    doctor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_finish_the_key_proof_gets_nothing() {
    let (mut doctor, name) = doctor_with_a_body().await;
    // Asks for the body where its key proof belongs: refused, connection closed.
    let (mut stream, _) = open(doctor.addr, [1; 32]).await;
    stream
        .write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut stream).await, None);
    // Sends its hello and nothing more: the handshake times out, nothing is served.
    let (mut silent, _) = open(doctor.addr, [2; 32]).await;
    assert_eq!(denied_and_nothing_else(&mut silent).await, None);
    doctor
        .wait("the silent peer refused", |e| {
            matches!(
                e,
                NodeEvent::PeerRefused {
                    reason: p2p::SessionError::HandshakeTimeout(_),
                    ..
                }
            )
        })
        .await;
    doctor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_reflected_key_proof_is_refused() {
    let (mut doctor, name) = doctor_with_a_body().await;
    let alice = demo_keypair("dr_alice");
    // Echoing the node's own challenge, to have it sign what it then verifies.
    let mut stream = TcpStream::connect(doctor.addr).await.unwrap();
    let Some(Message::Hello(theirs)) = read(&mut stream).await else {
        panic!("the node speaks first")
    };
    stream
        .write_all(&frame(Message::Hello(hello(theirs.challenge))))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut stream).await, None);
    // A proof for the lab's key made for another connection's challenges.
    let stale = KeyProof::sign(
        Some(&demo_keypair("lab_tech_bob")),
        &genesis().hash(),
        &[9; 32],
        &[3; 32],
        true,
    );
    let (mut stream, _) = open(doctor.addr, [3; 32]).await;
    stream
        .write_all(&frame(Message::KeyProof(stale)))
        .await
        .unwrap();
    stream
        .write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut stream).await, None);
    // The node's own proof, reflected from a second connection: each connection's
    // challenge given as the other's, so the node signs on one exactly the challenges
    // it checks on the other. The side it signed for (the accepting one) gives it away.
    let mut first = TcpStream::connect(doctor.addr).await.unwrap();
    let Some(Message::Hello(one)) = read(&mut first).await else {
        panic!("the node speaks first")
    };
    let mut second = TcpStream::connect(doctor.addr).await.unwrap();
    let Some(Message::Hello(two)) = read(&mut second).await else {
        panic!("the node speaks first")
    };
    first
        .write_all(&frame(Message::Hello(hello(two.challenge))))
        .await
        .unwrap();
    second
        .write_all(&frame(Message::Hello(hello(one.challenge))))
        .await
        .unwrap();
    let Some(Message::KeyProof(signed_on_second)) = read(&mut second).await else {
        panic!("the node proves its key")
    };
    assert_eq!(signed_on_second.account, Some(alice.account()));
    let Some(Message::KeyProof(_)) = read(&mut first).await else {
        panic!("the node proves its key")
    };
    first
        .write_all(&frame(Message::KeyProof(signed_on_second)))
        .await
        .unwrap();
    first
        .write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut first).await, None);
    doctor
        .wait("a bad key proof banned", |e| {
            matches!(
                e,
                NodeEvent::PeerBanned {
                    offence: p2p::Offence::Session(p2p::SessionError::Protocol(
                        p2p::protocol::ProtocolError::BadKeyProof
                    )),
                    ..
                }
            )
        })
        .await;
    doctor.stop().await;
}

/// Reads messages until `Bodies` (returned), failing on anything but the handshake's,
/// relays and refusals.
async fn bodies_from(stream: &mut TcpStream) -> Vec<SealedBody> {
    loop {
        match read(stream).await.expect("the node keeps the connection") {
            Message::Bodies(bodies) => return bodies,
            Message::Denied(hashes) => panic!("{hashes:?} denied"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_asked_for_before_it_arrived_is_served_when_it_arrives() {
    // The doctor holds a consultation: its notes are sealed to doctors only.
    let doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let alice = actor(&doctor.handle, "dr_alice").await;
    let patient = PatientId::from_random_bytes([7; 16]);
    let a = alice.clone();
    let registration = doctor
        .handle
        .query(move |l| a.register(l, patient, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    doctor.write(registration).await;
    let a = alice.clone();
    let consultation = doctor
        .handle
        .query(move |l| a.consult(l, patient, "private", None, now(), &mut rng(2)))
        .await
        .unwrap()
        .unwrap();
    let notes = sections(&consultation.tx)[0].1;
    doctor.write(consultation).await;

    // A writer node, a peer of the doctor, prepares a registration it has not sent.
    let mut writer = start("writer", Some(demo_keypair("dr_alice")), vec![doctor.addr]).await;
    writer.wait_peers(1).await;
    let a = actor(&writer.handle, "dr_alice").await;
    let other = PatientId::from_random_bytes([8; 16]);
    let registration = writer
        .handle
        .query(move |l| a.register(l, other, "John Roe", now(), &mut rng(3)))
        .await
        .unwrap()
        .unwrap();
    let name = sections(&registration.tx)[0].1;

    // The lab asks the doctor for that name, which the doctor does not hold yet, and
    // for the notes: the notes are denied, and that answer says the ask is on record.
    let ours = [5u8; 32];
    let (mut lab, theirs) = open(doctor.addr, ours).await;
    let lab_key = demo_keypair("lab_tech_bob");
    let proof = KeyProof::sign(
        Some(&lab_key),
        &genesis().hash(),
        &theirs.challenge,
        &ours,
        true,
    );
    lab.write_all(&frame(Message::KeyProof(proof)))
        .await
        .unwrap();
    lab.write_all(&frame(Message::GetBodies(vec![name, notes])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut lab).await, Some(vec![notes]));

    // The registration reaches the doctor with its body: the lab gets the body then,
    // without asking again.
    writer.write(registration).await;
    let served = bodies_from(&mut lab).await;
    assert_eq!(served.len(), 1);
    assert_eq!(Hash::of(&served[0].ciphertext), name);
    assert!(served[0].is_sealed_to(&lab_key.account()));
    writer.stop().await;
    doctor.stop().await;
}

/// Opens a raw session to `addr` proving `key`.
async fn proven(addr: SocketAddr, key: &Keypair, ours: [u8; 32]) -> TcpStream {
    let (mut stream, theirs) = open(addr, ours).await;
    let proof = KeyProof::sign(Some(key), &genesis().hash(), &theirs.challenge, &ours, true);
    stream
        .write_all(&frame(Message::KeyProof(proof)))
        .await
        .unwrap();
    stream
}

/// Signs, as the patient holding `keys`, what `act` builds, and submits it to `node`.
async fn as_patient(
    node: &Node,
    keys: &Keypair,
    act: impl FnOnce(
        &health_workflow::PatientActor,
        &health_workflow::HealthLedger<MemoryStore<Event>>,
    ) -> health_workflow::HealthTx
    + Send
    + 'static,
) {
    let keys = keys.clone();
    let tx = node
        .handle
        .query(move |l| act(&health_workflow::PatientActor::new(l, keys).unwrap(), l))
        .await
        .unwrap();
    node.handle.submit_transaction(tx).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_reader_is_denied_and_every_served_body_is_reported() {
    let mut doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let alice = actor(&doctor.handle, "dr_alice").await;
    let patient = PatientId::from_random_bytes([7; 16]);
    let registration = doctor
        .handle
        .query(move |l| alice.register(l, patient, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    let patient_keys = registration.patient.clone().unwrap().0;
    let name = sections(&registration.tx)[0].1;
    doctor.write(registration).await;
    doctor.mine(&demo_keypair("dr_alice")).await;

    // The pharmacy may read the name under the treatment default: served, and reported
    // for the record of reads, labelled with the patient.
    let charlie = demo_keypair("pharm_charlie");
    let mut pharmacy = proven(doctor.addr, &charlie, [3; 32]).await;
    pharmacy
        .write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    let served = bodies_from(&mut pharmacy).await;
    assert_eq!(Hash::of(&served[0].ciphertext), name);
    let NodeEvent::BodiesServed { reader, bodies } = doctor
        .wait("the serve reported", |e| {
            matches!(e, NodeEvent::BodiesServed { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(reader, charlie.account());
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].0, served[0].body_id);
    assert_eq!(bodies[0].1.subject, *patient.uuid().as_bytes());

    // The patient revokes the pharmacy: the same ask is denied from the next block on.
    as_patient(&doctor, &patient_keys, |me, l| {
        me.revoke(
            l,
            health_workflow::GrantRef::Treatment(health_workflow::Role::Pharmacist),
            now(),
        )
        .unwrap()
    })
    .await;
    doctor.mine(&demo_keypair("dr_alice")).await;
    pharmacy
        .write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(
        denied_and_nothing_else(&mut pharmacy).await,
        Some(vec![name])
    );
    // The lab still reads it, and only that serve is reported.
    let mut lab = proven(doctor.addr, &demo_keypair("lab_tech_bob"), [4; 32]).await;
    lab.write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(bodies_from(&mut lab).await.len(), 1);
    let NodeEvent::BodiesServed { reader, .. } = doctor
        .wait("the lab's serve reported", |e| {
            matches!(e, NodeEvent::BodiesServed { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(reader, demo_keypair("lab_tech_bob").account());

    // Erasure: nobody is served the name any more, the patient's own node included.
    as_patient(&doctor, &patient_keys, |me, l| me.erase(l, now()).unwrap()).await;
    doctor.mine(&demo_keypair("dr_alice")).await;
    let mut own = proven(doctor.addr, &patient_keys, [5; 32]).await;
    own.write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut own).await, Some(vec![name]));
    lab.write_all(&frame(Message::GetBodies(vec![name])))
        .await
        .unwrap();
    assert_eq!(denied_and_nothing_else(&mut lab).await, Some(vec![name]));
    doctor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_catching_up_drops_an_erased_patients_bodies() {
    // The doctor registers two patients; the first asks for erasure.
    let doctor = start("doctor", Some(demo_keypair("dr_alice")), vec![]).await;
    let alice = actor(&doctor.handle, "dr_alice").await;
    let (erased, kept) = (
        PatientId::from_random_bytes([7; 16]),
        PatientId::from_random_bytes([8; 16]),
    );
    let a = alice.clone();
    let first = doctor
        .handle
        .query(move |l| a.register(l, erased, "Jane Doe", now(), &mut rng(1)))
        .await
        .unwrap()
        .unwrap();
    let erased_keys = first.patient.clone().unwrap().0;
    let erased_name = sections(&first.tx)[0].1;
    let erased_body = first.bodies[0].clone();
    doctor.write(first).await;
    doctor.mine(&demo_keypair("dr_alice")).await;
    as_patient(&doctor, &erased_keys, |me, l| me.erase(l, now()).unwrap()).await;
    doctor.mine(&demo_keypair("dr_alice")).await;

    // A lab node that was offline catches up: it never asks for the erased name.
    let mut lab = start("lab", Some(demo_keypair("lab_tech_bob")), vec![doctor.addr]).await;
    lab.wait(
        "caught up",
        |e| matches!(e, NodeEvent::TipChanged(change) if change.new_height.0 == 2),
    )
    .await;
    // Then a lagging peer pushes it the erased name with a live patient's name in one
    // message: the live one is kept, the erased one dropped.
    let a = alice.clone();
    let second = doctor
        .handle
        .query(move |l| a.register(l, kept, "John Roe", now(), &mut rng(2)))
        .await
        .unwrap()
        .unwrap();
    let kept_name = sections(&second.tx)[0].1;
    let kept_body = second.bodies[0].clone();
    // The lab learns the live registration's reference from the doctor (its body is
    // withheld here: the doctor's vault does not get it).
    doctor
        .handle
        .submit_transaction(second.tx.clone())
        .await
        .unwrap()
        .unwrap();
    doctor.mine(&demo_keypair("dr_alice")).await;
    lab.wait(
        "the live registration's block",
        |e| matches!(e, NodeEvent::TipChanged(change) if change.new_height.0 == 3),
    )
    .await;
    let mut lagging = proven(lab.addr, &demo_keypair("pharm_charlie"), [6; 32]).await;
    lagging
        .write_all(&frame(Message::Bodies(vec![erased_body, kept_body])))
        .await
        .unwrap();
    lab.wait_kept(kept_name).await;
    assert!(!lab.vault.contains(&erased_name).unwrap());
    lab.stop().await;
    doctor.stop().await;
}
