//! A scripted session (standard input not a terminal): each question a command asks is
//! printed on a line of its own before its answer is read, so a transcript shows
//! which line answered what, and a missing argument is visible, not silent.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::binary;

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
