//! A real network made with the tooling: `keygen`, a roster, `genesis`, then a node
//! started with `--genesis` and `--key`, whose user logs in with the key's passphrase.
//! And the headless `node`, stopped by a signal.

mod common;

use common::{Proc, binary};

/// Makes a key file; returns the public key and the encryption key keygen printed.
fn keygen(
    dir: &std::path::Path,
    name: &str,
    passphrase_file: &std::path::Path,
) -> (String, String) {
    let output = binary()
        .args(["keygen", "--out"])
        .arg(dir.join(format!("{name}.key")))
        .arg("--passphrase-file")
        .arg(passphrase_file)
        .output()
        .expect("keygen runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("keygen prints '{prefix}': {stdout}"))
            .to_string()
    };
    (line("Public key: "), line("Encryption key: "))
}

#[test]
fn a_network_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pass = dir.path().join("pass.txt");
    std::fs::write(&pass, "correct horse battery\n").expect("write");
    let (alice, alice_encryption) = keygen(dir.path(), "alice", &pass);
    let (bob, bob_encryption) = keygen(dir.path(), "bob", &pass);
    assert_ne!(alice, bob);
    assert_eq!(alice_encryption.len(), 192);
    assert_ne!(alice_encryption, bob_encryption);

    // The same file again is refused.
    let again = binary()
        .args(["keygen", "--out"])
        .arg(dir.path().join("alice.key"))
        .arg("--passphrase-file")
        .arg(&pass)
        .output()
        .expect("runs");
    assert!(!again.status.success());

    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        format!(
            "username,display_name,role,public_key_hex,balance,encryption_key_hex\n\
             alice,Dr. Alice Martin,doctor,{alice},50,{alice_encryption}\n\
             bob,Bob Lee,lab_technician,{bob},0,{bob_encryption}\n"
        ),
    )
    .expect("write");
    let genesis = dir.path().join("clinic.genesis");
    let output = binary()
        .args([
            "genesis",
            "--network",
            "clinic",
            "--pow-bits",
            "4",
            "--roster",
        ])
        .arg(&roster)
        .arg("--out")
        .arg(&genesis)
        .output()
        .expect("genesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("Members: 3"), "{stdout}");
    assert!(
        stdout.contains("Block producers: 2 (2 needed to make a block final)"),
        "the care team produces by default: {stdout}"
    );

    // Producers named on the command line must be members; open mining says it is
    // unsafe.
    let other = |args: &[&str], out: &str| {
        binary()
            .arg("genesis")
            .args(args)
            .arg("--roster")
            .arg(&roster)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .expect("genesis runs")
    };
    let unknown = other(&["--producers", "alice,carol"], "unknown.genesis");
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("producer 'carol' is not a member"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let open = other(&["--open-mining"], "open.genesis");
    assert!(open.status.success());
    assert!(String::from_utf8_lossy(&open.stdout).contains("WARNING: open mining"));
    let named = other(&["--producers", "bob"], "bob.genesis");
    assert!(String::from_utf8_lossy(&named.stdout).contains("Block producers: 1 "));

    let data = dir.path().join("alice-node");
    let mut node = Proc::start(
        "alice-node",
        &[
            "doctor",
            "--port",
            "0",
            "--genesis",
            genesis.to_str().expect("utf-8"),
            "--key",
            dir.path().join("alice.key").to_str().expect("utf-8"),
            "--passphrase-file",
            pass.to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    );
    node.expect_prefix("Network 'clinic'");
    node.expect_contains(" listening on ");
    assert!(!node.seen.iter().any(|l| l.contains("DEMO")));
    node.run("login alice wrong", "Error: wrong username or password");
    // Bob is a member, but this node holds Alice's key.
    node.run(
        "login bob \"correct horse battery\"",
        "Error: wrong username or password",
    );
    node.run(
        "login alice \"correct horse battery\"",
        "Logged in as alice (Dr. Alice Martin).",
    );
    node.send("register Carol King");
    node.expect_prefix("Patient ID: ");
    node.run("mine", "Mined block #1 ");
    let chain = node.collect("chain", "Final height ");
    assert!(
        chain.contains(&"Final height 0 (blocks that 2 of the 2 producers have built on can never be reverted)".to_string()),
        "{chain:?}"
    );
    // Alice reads the name she sealed, from her node's vault.
    assert!(
        chain
            .iter()
            .any(|l| l.contains("PATIENT_REGISTRATION") && l.contains("'Carol King'")),
        "{chain:?}"
    );
    let lines = node.collect("balances", "bob: ");
    assert!(lines.contains(&"alice: 50".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"SYSTEM_BANK_001: 1000000".to_string()),
        "{lines:?}"
    );
    node.send("exit");
    assert!(node.wait());
    // The block store holds the name only sealed; the vault holds it only encrypted.
    for file in ["blocks.redb", "vault.redb"] {
        let bytes = std::fs::read(data.join(file)).expect("the node wrote it");
        assert!(
            !bytes.windows(10).any(|w| w == b"Carol King"),
            "{file} holds the name in the clear"
        );
    }

    // A demo node refuses the data directory of another network.
    let output = binary()
        .args(["node", "--port", "0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("belongs to another network"));
}

#[cfg(unix)]
#[test]
fn a_headless_node_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Proc::start(
        "node",
        &[
            "node",
            "--port",
            "0",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
        ],
    );
    node.expect_contains(" listening on ");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert!(node.wait(), "exits with success");
    assert!(
        node.seen.iter().any(|l| l == "Node stopped."),
        "{:?}",
        node.seen
    );
}
