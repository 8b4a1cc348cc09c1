//! The HTTP API of a running `healthchain doctor --api`: every endpoint against a chain
//! grown through the REPL, the live event stream, metrics, the OpenAPI document, the
//! explorer page, and bad input of every kind answered with a typed error while the
//! node keeps serving.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{Answer, request, request_with};
use common::start_api_doctor;
use health_workflow::{Event, PatientId, PatientRegistration, demo_genesis, demo_keypair};
use ledger_core::sealed::{BodyId, SealedRef};
use ledger_core::{Hash, Timestamp, Transaction, TxBody, codec};
use serde_json::Value;

fn get(addr: &str, path: &str) -> Answer {
    request(addr, "GET", path, "text/plain", b"")
}

/// A `text/event-stream` subscription, read event by event.
struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    fn open(addr: &str, path: &str) -> Events {
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("writes");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("a status line");
        assert!(line.contains(" 200 "), "{line}");
        Events { reader }
    }

    /// The next event named `name` (others are skipped), as JSON.
    fn next(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut event = String::new();
        loop {
            assert!(Instant::now() < deadline, "no '{name}' event in time");
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .expect("the stream stays open");
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("event: ") {
                event = rest.to_string();
            } else if let Some(data) = line.strip_prefix("data: ")
                && event == name
            {
                return serde_json::from_str(data).expect("JSON data");
            }
        }
    }
}

#[test]
fn the_api_serves_the_chain_refuses_bad_input_and_streams_new_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut doc, addr) = start_api_doctor(dir.path());

    // An empty chain.
    let status = get(&addr, "/status");
    assert_eq!(status.status, 200);
    assert!(status.content_type.starts_with("application/json"));
    let status = status.json();
    assert_eq!(status["network"], "healthchain-demo");
    assert_eq!(status["height"], 0);

    // Block #1 through the REPL: a registration.
    doc.run("login dr_alice password123", "Logged in as dr_alice");
    doc.send("register Jane Doe");
    let patient = doc.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    doc.run("mine", "Mined block #1 ");

    let status = get(&addr, "/status").json();
    assert_eq!(status["height"], 1);
    let list = get(&addr, "/blocks").json();
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["height"], 1);
    assert_eq!(list[0]["producer_name"], "dr_alice");
    assert_eq!(list[0]["transactions"], 1);
    let hash = list[0]["hash"].as_str().expect("a hash").to_string();
    assert_eq!(hash.len(), 64);

    let by_height = get(&addr, "/blocks/1").json();
    let by_hash = get(&addr, &format!("/blocks/{hash}")).json();
    assert_eq!(by_height, by_hash);
    let tx = &by_height["transactions"][0];
    assert_eq!(tx["kind"], "PatientRegistration");
    // The API serves no clinical text: the name is sealed, shown as a marker and the
    // hash of its ciphertext.
    assert_eq!(tx["fields"]["name"], "(sealed: demographics)");
    assert_eq!(tx["fields"]["name_body"].as_str().map(str::len), Some(64));
    assert!(!get(&addr, "/blocks/1").body.contains("Jane"));
    assert_eq!(tx["author_name"], "dr_alice");
    assert_eq!(tx["signature_valid"], true);
    assert_eq!(tx["patient_id"], patient.as_str());
    let tx_id = tx["id"].as_str().expect("an id").to_string();

    let found = get(&addr, &format!("/txs/{tx_id}")).json();
    assert_eq!(found["height"], 1);
    assert_eq!(found["index"], 0);
    assert_eq!(found["block"], hash.as_str());
    let history = get(&addr, &format!("/patients/{patient}")).json();
    assert_eq!(history["events"].as_array().map(Vec::len), Some(1));
    let accounts = get(&addr, "/accounts").json();
    assert!(
        accounts
            .as_array()
            .expect("an array")
            .iter()
            .any(|a| a["username"] == "dr_alice" && a["role"] == "doctor")
    );
    assert_eq!(get(&addr, "/mempool").json()["count"], 0);

    // Bad input: typed errors with the right status, nothing else.
    let refused = |path: &str| get(&addr, path).refusal();
    assert_eq!(refused("/blocks?limit=101"), (400, "bad_request".into()));
    assert_eq!(refused("/blocks?limit=0"), (400, "bad_request".into()));
    assert_eq!(refused("/blocks?limit=lots"), (400, "bad_request".into()));
    assert_eq!(
        refused("/blocks?from=99999999999999999999"),
        (400, "bad_request".into())
    );
    assert_eq!(refused("/blocks/999"), (404, "not_found".into()));
    assert_eq!(refused("/blocks/zz"), (400, "bad_request".into()));
    assert_eq!(
        refused(&format!("/blocks/{}", "0".repeat(64))),
        (404, "not_found".into())
    );
    assert_eq!(refused("/txs/123"), (400, "bad_request".into()));
    assert_eq!(
        refused(&format!("/txs/{}", "a".repeat(64))),
        (404, "not_found".into())
    );
    assert_eq!(refused("/patients/12"), (400, "bad_request".into()));
    assert_eq!(refused("/no/such/thing"), (404, "not_found".into()));
    let post = |content_type: &str, body: &[u8]| {
        request(&addr, "POST", "/txs", content_type, body).refusal()
    };
    assert_eq!(
        post("application/octet-stream", b"not a transaction"),
        (400, "bad_request".into())
    );
    assert_eq!(
        post("application/json", b"{\"nonce\": 1}"),
        (400, "bad_request".into())
    );
    assert_eq!(
        post("application/octet-stream", &vec![0u8; 300_000]),
        (413, "too_large".into())
    );

    // A signed transaction, as canonical bytes: accepted and pending.
    let genesis = demo_genesis();
    let keys = demo_keypair("dr_alice");
    let registration = |nonce: u64, seed: u8| {
        Transaction::new_signed(
            &genesis.hash(),
            &keys,
            nonce,
            Timestamp(health_workflow::demo::DEMO_GENESIS_TIME.millis() + 10_000),
            TxBody::App(Event::PatientRegistration(PatientRegistration {
                patient_id: PatientId::from_random_bytes([seed; 16]),
                // An integrator seals the name first; the node checks only the reference.
                demographics: SealedRef {
                    body_id: BodyId::from_byte_array([seed; 16]),
                    commitment: Hash::of(b"commitment"),
                    ciphertext_hash: Hash::of(&[seed]),
                    ciphertext_len: 80,
                },
                // and the patient's keys, signed by the patient
                patient_keys: health_workflow::PatientKeys::sign(
                    &genesis.hash(),
                    &PatientId::from_random_bytes([seed; 16]),
                    &ledger_core::Keypair::from_seed([seed; 32]),
                ),
            })),
        )
    };
    let signed = registration(2, 9);
    let answer = request(
        &addr,
        "POST",
        "/txs",
        "application/octet-stream",
        &codec::encode(&signed),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["id"], signed.id().to_string().as_str());
    let pending = get(&addr, &format!("/txs/{}", signed.id())).json();
    assert_eq!(pending["pending"], true);
    assert_eq!(get(&addr, "/mempool").json()["count"], 1);
    // The same again, and one with a forged signature: refused by the node, typed.
    let (status, kind) = request(
        &addr,
        "POST",
        "/txs",
        "application/octet-stream",
        &codec::encode(&signed),
    )
    .refusal();
    assert_eq!(status, 422);
    assert!(kind.starts_with("refused:"), "{kind}");
    let mut forged = registration(3, 10);
    forged.nonce = 4;
    let json = serde_json::to_vec(&forged).expect("serialises");
    assert_eq!(
        post("application/json", &json),
        (422, "refused:BadSignature".into())
    );

    // The event stream: the backlog from height 1, then a block mined meanwhile.
    let mut events = Events::open(&addr, "/events?from=1");
    assert_eq!(events.next("block")["height"], 1);
    doc.run("mine", "Mined block #2 ");
    let live = events.next("block");
    assert_eq!(live["height"], 2);
    assert_eq!(live["transactions"], 1);

    // Metrics, the OpenAPI document and the explorer page.
    let metrics = get(&addr, "/metrics");
    assert_eq!(metrics.status, 200);
    for line in [
        "healthchain_consensus_height 2",
        "healthchain_mempool_size 0",
        "healthchain_consensus_blocks_accepted_total 2",
        "healthchain_consensus_block_validation_seconds_count 2",
    ] {
        assert!(metrics.body.contains(line), "{line} in\n{}", metrics.body);
    }
    assert!(
        metrics
            .body
            .contains("healthchain_mempool_txs_refused_total{reason=\"BadSignature\"} 1"),
        "{}",
        metrics.body
    );
    let openapi = get(&addr, "/openapi.json").json();
    assert!(
        openapi["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );
    for path in [
        "/status",
        "/blocks",
        "/blocks/{id}",
        "/txs",
        "/events",
        "/metrics",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} documented");
    }
    let page = get(&addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("id=\"blocks\""));
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.body.contains(external), "the page loads {external}");
    }

    // The node still serves after all that.
    assert_eq!(get(&addr, "/status").json()["height"], 2);
    doc.send("exit");
    assert!(doc.wait(), "the node exits cleanly");
}

/// A patient id no chain here holds.
fn uuid_v4_nobody() -> &'static str {
    "6b1f4d0e-5c4a-4f2e-9d7b-0a1b2c3d4e5f"
}

/// Logs `username` in through the API; returns the token.
fn login(addr: &str, username: &str, password: &str) -> Answer {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    request(addr, "POST", "/login", "application/json", body.as_bytes())
}

/// Reads a patient's records with `token`.
fn records(addr: &str, patient: &str, token: &str) -> Answer {
    authorized_get(addr, &format!("/patients/{patient}/records"), token)
}

/// `GET path` with `token`.
fn authorized_get(addr: &str, path: &str, token: &str) -> Answer {
    request_with(
        addr,
        "GET",
        path,
        "text/plain",
        &format!("Authorization: Bearer {token}\r\n"),
        b"",
    )
}

#[test]
fn clinical_records_are_served_only_to_members_who_may_read_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut doc, addr) = start_api_doctor(dir.path());
    doc.run("login dr_alice password123", "Logged in as dr_alice");
    doc.send("register Jane Doe");
    let patient = doc.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    doc.run(
        "consult --test y \"Persistent fatigue, pale\"",
        "Blood test ordered",
    );
    doc.run("mine", "Mined block #1 ");

    // No token, a wrong one, a wrong password, a malformed login: refused, typed.
    let path = format!("/patients/{patient}/records");
    assert_eq!(get(&addr, &path).refusal(), (401, "unauthorized".into()));
    assert_eq!(
        records(&addr, &patient, &"0".repeat(64)).refusal(),
        (401, "unauthorized".into())
    );
    assert_eq!(
        login(&addr, "dr_alice", "letmein").refusal(),
        (401, "unauthorized".into())
    );
    assert_eq!(
        login(&addr, "nobody", "password123").refusal(),
        (401, "unauthorized".into())
    );
    assert_eq!(
        request(&addr, "POST", "/login", "application/json", b"{\"user\":1}").refusal(),
        (400, "bad_request".into())
    );
    // The public view never carries the text.
    let public = get(&addr, &format!("/patients/{patient}"));
    assert!(!public.body.contains("Jane") && !public.body.contains("fatigue"));

    // The doctor reads everything it wrote.
    let answer = login(&addr, "dr_alice", "password123");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer.json()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert_eq!(answer.json()["role"], "doctor");
    let answer = records(&addr, &patient, &token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let events = answer.json()["events"].clone();
    assert_eq!(events[0]["tx"]["fields"]["name"], "Jane Doe");
    assert_eq!(
        events[1]["tx"]["fields"]["notes"],
        "Persistent fatigue, pale"
    );
    assert_eq!(events[1]["tx"]["fields"]["test_name"], "Blood Test");

    // The lab technician, logged in on the same node, reads the name and the test
    // ordered, not the notes.
    let token = login(&addr, "lab_tech_bob", "labpass").json()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let events = records(&addr, &patient, &token).json()["events"].clone();
    assert_eq!(events[0]["tx"]["fields"]["name"], "Jane Doe");
    assert_eq!(events[1]["tx"]["fields"]["test_name"], "Blood Test");
    assert_eq!(
        events[1]["tx"]["fields"]["notes"],
        "(sealed: consultation notes)"
    );
    // What the lab read (the name and the test, both written by the doctor) is
    // recorded on chain for the patient's audit, signed by the lab technician.
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let mempool = get(&addr, "/mempool").json();
        let recorded = mempool["transactions"].as_array().is_some_and(|txs| {
            txs.iter().any(|tx| {
                tx["kind"] == "AccessRecord"
                    && tx["author_name"] == "lab_tech_bob"
                    && tx["fields"]["bodies"] == "2"
                    && tx["patient_id"] == patient.as_str()
            })
        });
        if recorded {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lab's read was never recorded: {mempool}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The same record as a FHIR Bundle: only for a logged-in member, and only what
    // that member reads.
    let fhir = format!("/patients/{patient}/fhir");
    assert_eq!(get(&addr, &fhir).refusal(), (401, "unauthorized".into()));
    let lab = authorized_get(&addr, &fhir, &token);
    assert_eq!(lab.status, 200, "{}", lab.body);
    assert_eq!(lab.content_type, "application/fhir+json");
    assert!(
        lab.body.contains("Blood Test") && !lab.body.contains("fatigue"),
        "{}",
        lab.body
    );
    let doctor_token = login(&addr, "dr_alice", "password123").json()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let bundle = authorized_get(&addr, &fhir, &doctor_token).json();
    assert_eq!(bundle["type"], "collection");
    let kinds: Vec<&str> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    for kind in [
        "Patient",
        "Encounter",
        "ServiceRequest",
        "Provenance",
        "Practitioner",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(bundle["entry"][0]["resource"]["name"][0]["family"], "Doe");
    let encounter = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Encounter")
        .expect("the consultation's encounter");
    assert_eq!(
        encounter["reasonCode"][0]["text"],
        "Persistent fatigue, pale"
    );
    assert_eq!(
        authorized_get(&addr, "/patients/not-a-uuid/fhir", &doctor_token).refusal(),
        (400, "bad_request".into())
    );
    let unknown = format!("/patients/{}/fhir", uuid_v4_nobody());
    assert_eq!(
        authorized_get(&addr, &unknown, &doctor_token).refusal(),
        (404, "not_found".into())
    );
    doc.send("exit");
    assert!(doc.wait(), "the node exits cleanly");
}
