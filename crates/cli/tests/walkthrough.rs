//! The original project's three-terminal walkthrough, scripted: three `healthchain`
//! processes (Doctor, Lab, Pharmacy) on free loopback ports, driven through their
//! standard input, mining on different nodes as the original README does.

mod common;

use common::{Proc, pending_workflow as pending, start_node};

/// Waits until `node` reports a best chain at `height`.
fn at_height(node: &mut Proc, height: u64) {
    node.saw(&format!("* Chain tip is now block #{height} "));
}

/// The `balances` lines of `node`.
fn balances(node: &mut Proc) -> Vec<String> {
    let lines = node.collect("balances", "pharm_charlie: ");
    let start = lines
        .iter()
        .position(|l| l == "E-cash balances:")
        .expect("a balances header");
    lines[start + 1..].to_vec()
}

/// The last line of `chain`: height and tip hash.
fn tip(node: &mut Proc) -> String {
    node.send("chain");
    node.expect_prefix("Chain height ")
}

#[test]
fn three_nodes_run_the_original_walkthrough() {
    let dirs = [(); 3].map(|()| tempfile::tempdir().expect("temp dir"));
    let ([mut doc, mut lab, mut pharm], [doc_addr, _, _]) =
        common::start_three([dirs[0].path(), dirs[1].path(), dirs[2].path()]);
    assert!(doc.seen.iter().any(|l| l.starts_with("DEMO network")));

    // Wrong input on the way: one clear line each, and the REPL goes on.
    doc.run("consult x --test y", "Error: not logged in");
    doc.run("frobnicate", "Error: unknown command 'frobnicate'");
    doc.run(
        "login dr_alice letmein",
        "Error: wrong username or password",
    );
    doc.run("perform_test x", "Error: 'perform_test' is a Lab command");
    doc.run("set_patient 12", "Error: '12' is not a patient id");

    // 1. Doctor: login, register, consult with a test order.
    doc.run("login dr_alice password123", "Logged in as dr_alice");
    doc.send("register Jane Doe");
    let id = doc.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    doc.run("history", "pending PATIENT_REGISTRATION");
    doc.run(
        "consult --test y \"Persistent fatigue, pale\"",
        "Blood test ordered",
    );

    // 2. Mine on the Lab node: block #1 with the registration and the consultation.
    pending(&mut lab, 2);
    lab.run("mine", "Mined block #1 ");
    for node in [&mut doc, &mut lab, &mut pharm] {
        at_height(node, 1);
    }

    // 3. Lab: login, choose the patient, record the results.
    lab.run("perform_test x", "Error: not logged in");
    lab.run("login lab_tech_bob labpass", "Logged in as lab_tech_bob");
    lab.run("perform_test x", "Error: no active patient");
    lab.run(
        "set_patient 00000000-0000-4000-8000-000000000000",
        "Error: no patient with id",
    );
    lab.run(&format!("set_patient {id}"), "Active patient: Jane Doe");
    lab.run(
        "perform_test Hb 13.5 g/dL, WBC 6.1",
        "Lab result for Jane Doe recorded",
    );

    // 4. Mine on the Pharmacy node: block #2 records the result and its reward.
    pending(&mut pharm, 1);
    pharm.run("mine", "Mined block #2 ");
    pharm.expect_contains("REWARD SYSTEM_BANK_001 -> dr_alice 500");
    for node in [&mut doc, &mut lab, &mut pharm] {
        at_height(node, 2);
    }
    assert!(balances(&mut doc).contains(&"dr_alice: 500".to_string()));

    // The pharmacy is ready early: nothing to fill yet. Its login answers the
    // questions on the following lines, as a script would.
    pharm.send("login");
    pharm.send("pharm_charlie");
    pharm.send("pharmpass");
    pharm.expect_contains("Logged in as pharm_charlie");
    pharm.run(&format!("set_patient {id}"), "Active patient: Jane Doe");
    pharm.run("fill y", "Error: no open prescription for Jane Doe");
    lab.run(
        "perform_test again",
        "Error: no open test order for Jane Doe",
    );

    // 5. Doctor: prescribe, which pays the lab.
    doc.send("prescribe Amoxicillin \"500 mg\" three times a day for 7 days");
    doc.expect_contains("LAB_TEST_RESULT");
    doc.expect_contains("Payment of 100 e-cash to lab_tech_bob");

    // 6. Mine on the Lab node: block #3 with the prescription and the payment.
    pending(&mut lab, 2);
    lab.run("mine", "Mined block #3 ");
    for node in [&mut doc, &mut lab, &mut pharm] {
        at_height(node, 3);
    }
    let after_prescription = balances(&mut lab);
    assert!(
        after_prescription.contains(&"dr_alice: 400".to_string()),
        "{after_prescription:?}"
    );
    assert!(after_prescription.contains(&"lab_tech_bob: 100".to_string()));

    // 7. Pharmacy: log in again, choose the patient by the first characters of the
    // id, fill.
    pharm.run("logout", "Logged out pharm_charlie");
    pharm.run("fill y", "Error: not logged in");
    pharm.run(
        "login pharm_charlie pharmpass",
        "Logged in as pharm_charlie",
    );
    pharm.run(
        &format!("set_patient {}", &id[..8]),
        "Active patient: Jane Doe",
    );
    pharm.run("fill y", "filled");

    // 8. Mine on the Doctor node: block #4 records the fill and its reward.
    pending(&mut doc, 1);
    doc.run("mine", "Mined block #4 ");
    doc.expect_contains("REWARD SYSTEM_BANK_001 -> dr_alice 700");
    for node in [&mut doc, &mut lab, &mut pharm] {
        at_height(node, 4);
    }

    // 9. Every node agrees: balances and tip.
    let expected = [
        "SYSTEM_BANK_001: 998800",
        "dr_alice: 1100",
        "lab_tech_bob: 100",
        "pharm_charlie: 0",
    ];
    let mut tips = Vec::new();
    for node in [&mut doc, &mut lab, &mut pharm] {
        assert_eq!(balances(node), expected, "{}", node.name);
        tips.push(tip(node));
    }
    assert!(tips[0].starts_with("Chain height 4 tip "), "{tips:?}");
    assert!(tips.iter().all(|t| *t == tips[0]), "{tips:?}");
    pharm.run("recalc_balances", "they match the incremental state");
    doc.run("history", "PRESCRIPTION_FILLED");

    // What each user reads: the doctor everything, the lab the test ordered and its
    // results but not the notes or the medication, the pharmacy the prescription but
    // not the notes, the test or the results.
    doc.run(
        "history",
        "notes 'Persistent fatigue, pale', ordered 'Blood Test'",
    );
    lab.run(
        "history",
        "notes (sealed: consultation notes), ordered 'Blood Test'",
    );
    lab.expect_contains("results 'Hb 13.5 g/dL, WBC 6.1'");
    lab.expect_contains("(sealed: prescription)");
    pharm.run(
        "history",
        "notes (sealed: consultation notes), ordered (sealed: test order)",
    );
    pharm.expect_contains("results (sealed: lab results)");
    pharm.expect_contains("'Amoxicillin, 500 mg (three times a day for 7 days)'");

    // A fourth node, holding no roster key, syncs the public chain and verifies it.
    let observer_dir = tempfile::tempdir().expect("temp dir");
    let doc_peer = doc_addr.clone();
    let mut observer = common::Proc::start(
        "observer",
        &[
            "node",
            "--port",
            "0",
            "--id",
            "Observer-4",
            "--peers",
            &doc_peer,
            "--data-dir",
            observer_dir.path().to_str().expect("utf-8"),
        ],
    );
    observer.saw("* Chain tip is now block #4 ");
    stop_headless(&mut observer);

    // The registry CSV follows the chain.
    let registry = std::fs::read_to_string(dirs[0].path().join("patient_registry.csv"))
        .expect("the doctor node writes the registry");
    assert!(registry.starts_with("patient_id,patient_name,registered_by,timestamp"));
    assert!(
        registry.contains(&format!("{id},Jane Doe,dr_alice,")),
        "{registry}"
    );

    doc.run("sync", "peer(s) for blocks after #4");

    // 10. Stop: `exit` on one, end of input on the others.
    doc.send("exit");
    lab.close_input();
    pharm.close_input();
    for node in [&mut doc, &mut lab, &mut pharm] {
        assert!(node.wait(), "{} exits cleanly", node.name);
        assert!(
            node.seen.iter().any(|l| l == "Node stopped."),
            "{}",
            node.name
        );
    }

    // No clear text where it does not belong, byte for byte: no block store holds any
    // of it; the pharmacy's directory holds no notes or results, the lab's no notes or
    // medication; the observer's holds none at all, and its chain verifies to the same
    // tip as the others'.
    let notes = "Persistent fatigue";
    let results = "Hb 13.5";
    let medication = "Amoxicillin";
    let all = [
        "Jane Doe",
        notes,
        "Blood Test",
        results,
        medication,
        "three times a day",
    ];
    for dir in &dirs {
        for store in ["blocks.redb", "vault.redb"] {
            assert_holds_none(&dir.path().join(store), &all);
        }
    }
    assert_holds_none(dirs[2].path(), &[notes, results, "Blood Test"]);
    assert_holds_none(dirs[1].path(), &[notes, medication]);
    assert_holds_none(observer_dir.path(), &all);
    let verified = common::binary()
        .args(["verify", "--data-dir"])
        .arg(observer_dir.path())
        .output()
        .expect("verify runs");
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{stdout}");
    let tip_hash = tips[0]["Chain height 4 tip ".len()..].to_string();
    assert!(
        stdout.contains(&format!("Tip: height 4 hash {tip_hash}")),
        "{stdout}"
    );

    // With its vault deleted, the lab's chain still verifies and the node restarts on
    // it: it has lost only what it could read.
    std::fs::remove_file(dirs[1].path().join("vault.redb")).expect("the lab has a vault");
    let verified = common::binary()
        .args(["verify", "--data-dir"])
        .arg(dirs[1].path())
        .output()
        .expect("verify runs");
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("Tip: height 4 hash {tip_hash}")),
        "{stdout}"
    );
    let (mut lab, _) = start_node("lab", "LabNode-2", dirs[1].path(), &[]);
    assert!(
        lab.seen.iter().any(|l| l.ends_with("chain height 4")),
        "{:?}",
        lab.seen
    );
    lab.run("login lab_tech_bob labpass", "Logged in as lab_tech_bob");
    lab.run(
        &format!("set_patient {id}"),
        "Active patient: (sealed: demographics)",
    );
    lab.run("history", "ordered (not received yet: test order)");
    lab.send("exit");
    assert!(lab.wait(), "the lab exits cleanly");
}

/// Fails if any file under `path` (or `path` itself) holds any of `texts` as bytes.
fn assert_holds_none(path: &std::path::Path, texts: &[&str]) {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .expect("a readable directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    assert!(!files.is_empty(), "nothing to check in {}", path.display());
    for file in files {
        let bytes = std::fs::read(&file).expect("readable");
        for text in texts {
            assert!(
                !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
                "{} holds '{text}'",
                file.display()
            );
        }
    }
}

/// Stops a headless node with SIGTERM (on Unix; elsewhere by killing it).
fn stop_headless(node: &mut common::Proc) {
    #[cfg(unix)]
    {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &node.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        assert!(node.wait(), "the observer exits cleanly");
    }
    #[cfg(not(unix))]
    node.kill();
}
