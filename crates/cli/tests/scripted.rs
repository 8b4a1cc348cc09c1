//! A scripted session (standard input not a terminal): each question a command asks is
//! printed on a line of its own before its answer is read, so a transcript shows
//! which line answered what, and a missing argument is visible, not silent.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Proc, binary};

#[test]
fn a_script_shows_each_question_before_the_line_that_answers_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = binary()
        .args(["doctor", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // `consult` without its notes: the next line ("mine") answers the question.
    let script = "login dr_alice\npassword123\nregister\nJane Doe\nconsult\nmine\nn\nexit\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("the script is written");
    let output = child.wait_with_output().expect("the node exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |text: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(text))
            .unwrap_or_else(|| panic!("'{text}' in:\n{stdout}"))
    };
    // Each question, in order, before what its answer caused.
    assert!(at("Password:") < at("Logged in as dr_alice"));
    assert!(at("Logged in as dr_alice") < at("Patient name:"));
    assert!(at("Patient name:") < at("Patient Jane Doe registered"));
    assert!(at("Consultation notes:") < at("Order a blood test? (y/n):"));
    // "mine" was taken as the notes: no block was mined.
    assert!(!stdout.contains("Mined block"), "{stdout}");
    // The password is never printed.
    assert!(!stdout.contains("password123"), "{stdout}");
}

#[test]
fn a_member_exports_the_active_patient_as_fhir_from_the_prompt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("jane.json");
    let data = dir.path().join("node");
    let data = data.to_str().expect("a UTF-8 path");
    let mut doctor = Proc::start("doctor", &["doctor", "--port", "0", "--data-dir", data]);
    doctor.run(
        "export",
        "Error: no active patient: use set_patient <ID> first",
    );
    doctor.run("login dr_alice password123", "Logged in as dr_alice");
    doctor.send("register Jane Doe");
    let patient = doctor.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    doctor.run("consult --test y \"Tired for weeks\"", "Blood test ordered");
    doctor.run("mine", "Mined block #1 ");
    // Without a login there is no one to read as.
    doctor.run("logout", "Logged out");
    doctor.run(&format!("set_patient {patient}"), "Active patient:");
    doctor.run(
        "export",
        "Error: log in first: an export holds what the logged-in user may read",
    );
    doctor.run("login dr_alice password123", "Logged in as dr_alice");
    doctor.run(&format!("set_patient {patient}"), "Active patient:");
    doctor.run(&format!("export \"{}\"", out.display()), "exported ");
    doctor.send("exit");
    assert!(doctor.wait(), "the node exits cleanly");

    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the Bundle was written"))
            .expect("JSON");
    assert_eq!(bundle["type"], "collection");
    let resources: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let of = |kind: &str| {
        resources
            .iter()
            .find(|r| r["resourceType"] == kind)
            .unwrap_or_else(|| panic!("a {kind} in {bundle}"))
    };
    assert_eq!(of("Patient")["name"][0]["family"], "Doe");
    assert_eq!(of("Encounter")["reasonCode"][0]["text"], "Tired for weeks");
    assert_eq!(of("ServiceRequest")["code"]["text"], "Blood Test");
}
