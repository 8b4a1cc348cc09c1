//! `healthchain import` then `healthchain export`: Synthea bundles round trip, import is
//! idempotent, a malformed bundle is refused whole, and an export holds only what its
//! user may read and is a well-formed FHIR R4 collection.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use common::http::{request, request_with};
use common::{binary, start_api_node};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fhir")
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], dir: &Path) -> Run {
    let output = binary()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("the binary runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn import(path: &Path, dir: &Path) -> Run {
    let path = path.to_str().expect("a UTF-8 path");
    run(&["import", "--fhir", path], dir)
}

fn export(patient: &str, user: &str, dir: &Path) -> Value {
    let out = dir.join(format!("export-{user}-{patient}.json"));
    let path = out.to_str().expect("a UTF-8 path");
    let run = run(
        &[
            "export",
            "--patient",
            patient,
            "--user",
            user,
            "--out",
            path,
        ],
        dir,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    serde_json::from_slice(&std::fs::read(&out).expect("the Bundle was written"))
        .expect("the Bundle is JSON")
}

fn tip(dir: &Path) -> String {
    let run = run(&["verify"], dir);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    run.stdout
        .lines()
        .find(|l| l.starts_with("Tip:"))
        .expect("verify names the tip")
        .to_string()
}

fn resources<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

/// The value of `resource`'s identifier of the source system (`Encounter/<id>`).
fn source_of(resource: &Value) -> Option<String> {
    resource["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == "urn:healthchain:source")
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

fn first_coding(concept: &Value) -> (Value, Value) {
    let c = &concept["coding"][0];
    (c["system"].clone(), c["code"].clone())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Checks what every export must be: a `collection` whose `fullUrl`s are unique,
/// whose references all resolve inside it, and whose resources carry the elements
/// FHIR R4 requires of them.
fn assert_well_formed(bundle: &Value) {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().expect("entries");
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().expect("every entry has a fullUrl"))
        .collect();
    let unique: HashSet<&str> = urls.iter().copied().collect();
    assert_eq!(unique.len(), urls.len(), "fullUrls are unique");
    fn references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("reference", Value::String(r)) => out.push(r),
                        _ => references(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, out)),
            _ => {}
        }
    }
    for entry in entries {
        let resource = &entry["resource"];
        let mut refs = Vec::new();
        references(resource, &mut refs);
        for r in refs {
            assert!(unique.contains(r), "{r} does not resolve in the bundle");
        }
        let has = |field: &str| !resource[field].is_null();
        let kind = resource["resourceType"].as_str().expect("a resourceType");
        let required: &[&str] = match kind {
            "Encounter" => &["status", "class"],
            "Observation" | "DiagnosticReport" => &["status", "code"],
            "ServiceRequest" => &["status", "intent", "subject"],
            "MedicationRequest" => &["status", "intent", "medicationCodeableConcept", "subject"],
            "MedicationDispense" => &["status", "medicationCodeableConcept"],
            "Condition" => &["subject"],
            "Provenance" => &["target", "recorded", "agent"],
            "Patient" | "Practitioner" => &[],
            other => panic!("unexpected resource type {other}"),
        };
        for field in required {
            assert!(has(field), "{kind} lacks {field}: {resource}");
        }
        assert!(has("id"), "{kind} has an id");
    }
}

/// Everything the round trip must bring back, read from a source bundle by the
/// source id the import keeps.
fn assert_round_trip(source: &Value, exported: &Value) {
    let by_source: HashMap<String, &Value> = exported["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter_map(|r| Some((source_of(r)?, r)))
        .collect();
    let mut checked = 0;
    for entry in source["entry"].as_array().expect("entries") {
        let r = &entry["resource"];
        let kind = r["resourceType"].as_str().unwrap_or_default();
        let id = r["id"].as_str().unwrap_or_default();
        let key = format!("{kind}/{id}");
        match kind {
            "Patient" => {
                let patient = &resources(exported, "Patient")[0];
                let name = r["name"]
                    .as_array()
                    .and_then(|n| n.iter().find(|n| n["use"] == "official"))
                    .expect("an official name");
                assert_eq!(patient["name"][0]["family"], name["family"]);
                assert_eq!(patient["name"][0]["given"], name["given"]);
                assert_eq!(patient["birthDate"], r["birthDate"]);
                assert_eq!(patient["gender"], r["gender"]);
                checked += 1;
            }
            "Encounter" => {
                let e = by_source
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key} exported"));
                assert_eq!(e["class"]["code"], r["class"]["code"], "{key}");
                assert_eq!(
                    first_coding(&e["type"][0]),
                    first_coding(&r["type"][0]),
                    "{key}"
                );
                assert_eq!(e["period"], r["period"], "{key}");
                checked += 1;
            }
            "Observation" if r["category"][0]["coding"][0]["code"] == "laboratory" => {
                let o = by_source
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key} exported"));
                assert_eq!(first_coding(&o["code"]), first_coding(&r["code"]), "{key}");
                assert_eq!(o["effectiveDateTime"], r["effectiveDateTime"], "{key}");
                let (q, oq) = (&r["valueQuantity"], &o["valueQuantity"]);
                assert_eq!(number(&oq["value"]), number(&q["value"]), "{key}");
                assert_eq!(oq["unit"], q["unit"], "{key}");
                assert_eq!(oq["code"], q["code"], "{key}");
                for bound in ["low", "high"] {
                    let (a, b) = (
                        &o["referenceRange"][0][bound],
                        &r["referenceRange"][0][bound],
                    );
                    assert_eq!(number(&a["value"]), number(&b["value"]), "{key} {bound}");
                    assert_eq!(a["unit"], b["unit"], "{key} {bound}");
                }
                assert_eq!(
                    o["interpretation"][0]["coding"][0]["code"],
                    r["interpretation"][0]["coding"][0]["code"],
                    "{key}"
                );
                checked += 1;
            }
            "DiagnosticReport" => {
                let d = by_source
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key} exported"));
                assert_eq!(first_coding(&d["code"]), first_coding(&r["code"]), "{key}");
                assert_eq!(d["effectiveDateTime"], r["effectiveDateTime"], "{key}");
                assert_eq!(
                    d["result"].as_array().map_or(0, Vec::len),
                    r["result"].as_array().map_or(0, Vec::len),
                    "{key}"
                );
                checked += 1;
            }
            "MedicationRequest" => {
                let m = by_source
                    .get(&key)
                    .unwrap_or_else(|| panic!("{key} exported"));
                let (a, b) = (
                    &m["medicationCodeableConcept"]["coding"][0],
                    &r["medicationCodeableConcept"]["coding"][0],
                );
                assert_eq!(a["system"], b["system"], "{key}");
                assert_eq!(a["code"], b["code"], "{key}");
                assert_eq!(a["display"], b["display"], "{key}");
                assert_eq!(m["authoredOn"], r["authoredOn"], "{key}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(
        checked > 10,
        "the fixture exercises the mapping ({checked} checks)"
    );
    // Conditions come back with their encounter.
    let conditions: HashSet<(Value, Value)> = resources(exported, "Condition")
        .iter()
        .map(|c| first_coding(&c["code"]))
        .collect();
    for entry in source["entry"].as_array().expect("entries") {
        let r = &entry["resource"];
        if r["resourceType"] == "Condition" && !r["encounter"].is_null() {
            assert!(conditions.contains(&first_coding(&r["code"])), "{r}");
        }
    }
}

#[test]
fn synthea_bundles_round_trip_and_a_second_import_adds_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let synthea = fixtures().join("synthea");
    let first = import(&synthea, &data);
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("Imported 3 patient(s) (3 new)"),
        "{}",
        first.stdout
    );
    let after_first = tip(&data);

    let second = import(&synthea, &data);
    assert!(second.ok, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains("Imported 3 patient(s) (0 new)"),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains(": 0 events"), "{}", second.stdout);
    assert_eq!(tip(&data), after_first, "the second import wrote no block");

    for file in std::fs::read_dir(&synthea).expect("fixtures") {
        let path = file.expect("an entry").path();
        let source: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
        let patient = resources(&source, "Patient")[0]["id"]
            .as_str()
            .expect("an id")
            .to_string();
        // One line per patient, with its id and name.
        let family = resources(&source, "Patient")[0]["name"][0]["family"]
            .as_str()
            .expect("a family name")
            .to_string();
        assert!(
            first
                .stdout
                .lines()
                .any(|l| l.contains(&patient) && l.contains(&family)),
            "{}",
            first.stdout
        );
        let exported = export(&patient, "dr_alice", &data);
        assert_well_formed(&exported);
        assert_round_trip(&source, &exported);
        // A Provenance per event carries the ledger's facts.
        let provenance = resources(&exported, "Provenance");
        assert!(!provenance.is_empty());
        for p in provenance {
            let extensions: Vec<&str> = p["extension"]
                .as_array()
                .expect("extensions")
                .iter()
                .filter_map(|e| e["url"].as_str())
                .collect();
            assert_eq!(extensions.len(), 4, "{p}");
            assert!(
                p["signature"][0]["data"]
                    .as_str()
                    .is_some_and(|d| d.len() == 88)
            );
        }
    }
}

#[test]
fn an_export_holds_only_what_its_user_may_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let run = import(&fixtures().join("edge/edges.json"), &data);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let patient = run
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("the patient's id is printed")
        .to_string();

    let doctor = export(&patient, "dr_alice", &data);
    let lab = export(&patient, "lab_tech_bob", &data);
    let pharmacy = export(&patient, "pharm_charlie", &data);
    for bundle in [&doctor, &lab, &pharmacy] {
        assert_well_formed(bundle);
        // Every user sees the public facts: the encounters happened.
        assert_eq!(resources(bundle, "Encounter").len(), 2);
    }
    let count = |bundle: &Value, kind| resources(bundle, kind).len();
    assert_eq!(count(&doctor, "Observation"), 4);
    assert_eq!(count(&doctor, "MedicationRequest"), 2);
    assert_eq!(count(&doctor, "MedicationDispense"), 1);
    assert_eq!(count(&doctor, "Condition"), 1);
    // The lab reads tests and results, not notes, conditions or prescriptions.
    assert_eq!(count(&lab, "Observation"), 4);
    assert_eq!(count(&lab, "MedicationRequest"), 0);
    assert_eq!(count(&lab, "MedicationDispense"), 0);
    assert_eq!(count(&lab, "Condition"), 0);
    for encounter in resources(&lab, "Encounter") {
        assert!(encounter["identifier"].is_null(), "{encounter}");
        // What kind of visit it was is sealed in the notes: not invented.
        assert_eq!(encounter["class"]["code"], "UNK", "{encounter}");
    }
    // An imported observation without a time of its own has its report's; an
    // imported report without one has none (not the time it was recorded).
    let report_time = resources(&doctor, "Observation")
        .into_iter()
        .find(|o| source_of(o).as_deref() == Some("Observation/obs-text"))
        .expect("exported");
    assert_eq!(report_time["effectiveDateTime"], "2020-01-02T10:00:00Z");
    let loose_url = doctor["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| source_of(&e["resource"]).as_deref() == Some("Observation/obs-loose"))
        .and_then(|e| e["fullUrl"].as_str())
        .expect("exported");
    let loose_report = resources(&doctor, "DiagnosticReport")
        .into_iter()
        .find(|r| r["result"][0]["reference"] == loose_url)
        .expect("the report holding it");
    assert!(
        loose_report.get("effectiveDateTime").is_none(),
        "{loose_report}"
    );
    // The pharmacy reads prescriptions, not results.
    assert_eq!(count(&pharmacy, "Observation"), 0);
    assert_eq!(count(&pharmacy, "MedicationRequest"), 2);
    assert_eq!(count(&pharmacy, "MedicationDispense"), 1);
    // The lab and the pharmacy read demographics; each reads its own share only.
    let text = |bundle: &Value| bundle.to_string();
    assert!(!text(&lab).contains("Paracetamol"));
    assert!(!text(&pharmacy).contains("Color of Urine"));
    assert!(!text(&lab).contains("Viral sinusitis"));

    // The edges come back as they went in.
    let by_source: HashMap<String, &Value> = doctor["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter_map(|r| Some((source_of(r)?, r)))
        .collect();
    let coded = by_source["Observation/obs-coded"];
    assert_eq!(
        coded["valueCodeableConcept"]["coding"][0]["code"],
        "371244009"
    );
    assert_eq!(by_source["Observation/obs-text"]["valueString"], "Clear");
    let no_value = by_source["Observation/obs-novalue"];
    assert!(no_value.get("valueQuantity").is_none() && no_value.get("valueString").is_none());
    let loose = by_source["Observation/obs-loose"];
    assert_eq!(loose["valueQuantity"]["value"], 5.0);
    assert_eq!(loose["valueQuantity"]["unit"], "mmol/L");
    assert_eq!(
        by_source["Encounter/enc-edge-2"]["period"]["start"],
        "2020-05"
    );
    assert!(by_source["Encounter/enc-edge-1"]["period"].is_null());
    let text_only = by_source["MedicationRequest/med-text"];
    assert_eq!(
        text_only["medicationCodeableConcept"]["text"],
        "Paracetamol 500 mg tablet"
    );
    assert_eq!(
        text_only["dosageInstruction"][0]["text"],
        "1 tablet every 6 hours"
    );
    assert_eq!(text_only["status"], "completed", "it was dispensed");
    let patient_resource = resources(&doctor, "Patient")[0];
    assert_eq!(patient_resource["name"][0]["given"][1], "Ngozi");
    assert!(patient_resource.get("birthDate").is_none());
    // What was skipped is said, with the reason.
    for reason in [
        "1 Basic: no ledger event records it",
        "1 Condition: not tied to an encounter",
        "1 MedicationRequest: no medication code or text",
        "1 MedicationRequest: cancelled",
        "1 Observation: not a laboratory result",
    ] {
        assert!(run.stdout.contains(reason), "{reason}\n{}", run.stdout);
    }
    assert!(
        run.stdout.contains("PRESCRIPTION_FILLED: 1"),
        "{}",
        run.stdout
    );
}

/// Writes `bundle` to a file in `dir` and imports it.
fn import_json(bundle: &Value, dir: &Path, data: &Path) -> Run {
    let path = dir.join("bundle.json");
    std::fs::write(&path, bundle.to_string()).expect("written");
    import(&path, data)
}

#[test]
fn a_malformed_bundle_is_refused_by_entry_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let edges: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("edge/edges.json")).expect("readable"),
    )
    .expect("JSON");
    // A chain to compare against: the first import.
    let base = import_json(&edges, dir.path(), &data);
    assert!(base.ok, "{}", base.stderr);
    let before = tip(&data);

    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut bundle = edges.clone();
        // A new patient, so nothing would be skipped as already imported.
        bundle["entry"][0]["resource"]["id"] = "pat-edge-2".into();
        edit(&mut bundle);
        bundle
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            broken(&|b| b["entry"][6]["resource"]["effectiveDateTime"] = "2020-02-30".into()),
            "entry 6 urn:uuid:11111111-1111-4111-8111-000000000020 (Observation): effectiveDateTime",
        ),
        (
            broken(&|b| b["entry"][9]["resource"]["valueQuantity"]["value"] = "five".into()),
            "entry 9 urn:uuid:11111111-1111-4111-8111-000000000023 (Observation)",
        ),
        (
            broken(&|b| {
                b["entry"][11]["resource"]["result"][0]["reference"] = "urn:uuid:nowhere".into()
            }),
            "entry 11 urn:uuid:11111111-1111-4111-8111-000000000030 (DiagnosticReport): result urn:uuid:nowhere is not an entry of this bundle",
        ),
        (
            broken(&|b| {
                b["entry"][6]["resource"]["encounter"]["reference"] = "urn:uuid:gone".into()
            }),
            "entry 6 urn:uuid:11111111-1111-4111-8111-000000000020 (Observation): encounter urn:uuid:gone is not an Encounter of this bundle",
        ),
        (
            broken(&|b| b["entry"][0]["resource"]["gender"] = "f".into()),
            "entry 0 urn:uuid:11111111-1111-4111-8111-000000000001 (Patient): gender 'f'",
        ),
        (
            broken(&|b| {
                b["entry"][1]["resource"]
                    .as_object_mut()
                    .expect("an object")
                    .remove("resourceType")
                    .map(drop)
                    .unwrap_or(())
            }),
            "entry 1 urn:uuid:11111111-1111-4111-8111-0000000000e1 (no resource): the resource has no resourceType",
        ),
        (
            broken(&|b| {
                let patient = b["entry"][0].clone();
                b["entry"].as_array_mut().expect("entries").push(patient);
            }),
            "exactly one Patient; this one holds 2",
        ),
        (
            broken(&|b| {
                let encounter = b["entry"][1].as_object_mut().expect("an entry");
                encounter.remove("fullUrl");
                encounter["resource"]
                    .as_object_mut()
                    .expect("a resource")
                    .remove("id");
            }),
            "(Encounter): a record needs an id or a fullUrl",
        ),
        (
            serde_json::json!({"resourceType": "Patient"}),
            "its resourceType is 'Patient'",
        ),
    ];
    for (bundle, expected) in cases {
        let run = import_json(&bundle, dir.path(), &data);
        assert!(!run.ok, "refused: {expected}");
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
        assert_eq!(tip(&data), before, "nothing of a refused bundle is written");
    }
    // Not JSON at all.
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, b"{ not json").expect("written");
    let run = import(&path, &data);
    assert!(
        !run.ok && run.stderr.contains("not a FHIR Bundle"),
        "{}",
        run.stderr
    );
    assert_eq!(tip(&data), before);
}

/// Logs `username` in through the API at `api`; returns the bearer token.
fn token(api: &str, username: &str, password: &str) -> String {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let answer = request(api, "POST", "/login", "application/json", body.as_bytes());
    answer.json()["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

/// The FHIR export of `patient` from the API at `api`, as the holder of `token`.
fn api_export(api: &str, patient: &str, token: &str) -> Value {
    let answer = request_with(
        api,
        "GET",
        &format!("/patients/{patient}/fhir"),
        "text/plain",
        &format!("Authorization: Bearer {token}\r\n"),
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

#[test]
fn an_import_through_a_running_node_reaches_the_whole_network_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut doctor, doctor_addr, doctor_api) =
        start_api_node("doctor", "DoctorNode-1", &dir.path().join("doctor"), &[]);
    let (mut lab, _, lab_api) =
        start_api_node("lab", "LabNode-1", &dir.path().join("lab"), &[doctor_addr]);
    let synthea = fixtures().join("synthea");
    let synthea_arg = synthea.to_str().expect("a UTF-8 path");
    let import = || {
        let output = binary()
            .args(["import", "--fhir", synthea_arg, "--api", &doctor_api])
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let first = import();
    assert!(first.contains("Imported 3 patient(s) (3 new)"), "{first}");
    assert!(first.contains("through the node at"), "{first}");

    let doctor_token = token(&doctor_api, "dr_alice", "password123");
    let lab_token = token(&lab_api, "lab_tech_bob", "labpass");
    for file in std::fs::read_dir(&synthea).expect("fixtures") {
        let source: Value = serde_json::from_slice(
            &std::fs::read(file.expect("an entry").path()).expect("readable"),
        )
        .expect("JSON");
        let patient = resources(&source, "Patient")[0]["id"]
            .as_str()
            .expect("an id")
            .to_string();
        // The node behind the API holds the records, and round trips them.
        let exported = api_export(&doctor_api, &patient, &doctor_token);
        assert_well_formed(&exported);
        assert_round_trip(&source, &exported);
        // The lab's node, a peer of that node only, receives the results sealed to it.
        let lab_results = source["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["resource"]["category"][0]["coding"][0]["code"] == "laboratory")
            .count();
        lab.poll("peers", "onnected peers", |_| {
            resources(&api_export(&lab_api, &patient, &lab_token), "Observation").len()
                == lab_results
        });
    }

    // A second import through the API finds every record and adds nothing.
    let second = import();
    assert!(second.contains("Imported 3 patient(s) (0 new)"), "{second}");
    assert!(second.contains(": 0 events"), "{second}");

    // A node on another network is refused before anything is signed.
    let other = binary()
        .args(["import", "--fhir", synthea_arg, "--api", &doctor_api])
        .arg("--genesis")
        .arg(dir.path().join("doctor").join("no-such-genesis.bin"))
        .output()
        .expect("the binary runs");
    assert!(!other.status.success());
    doctor.send("exit");
    lab.send("exit");
    assert!(doctor.wait() && lab.wait(), "the nodes exit cleanly");
}

#[test]
fn an_import_that_cannot_read_what_is_there_refuses_rather_than_duplicate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let edges = fixtures().join("edge/edges.json");
    let first = import(&edges, &data);
    assert!(first.ok, "{}", first.stderr);
    let before = tip(&data);
    // The bodies are gone (a restored backup without its vault, say).
    std::fs::remove_file(data.join("vault.redb")).expect("the vault is a file");
    let again = import(&edges, &data);
    assert!(!again.ok, "{}", again.stdout);
    assert!(
        again.stderr.contains("are not in this node's vault"),
        "{}",
        again.stderr
    );
    assert_eq!(tip(&data), before, "nothing was written twice");
}
