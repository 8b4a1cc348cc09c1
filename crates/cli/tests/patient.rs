//! The patient's chapter of the walkthrough, as processes: after the original steps on
//! three nodes, the patient starts their own node with the key file the registration
//! wrote, reads their records, sees who read them, revokes the pharmacy (whose next fill
//! is refused), and asks for erasure, which every member node carries out and confirms.
//! Balances are those of the original walkthrough throughout.

mod common;

use common::{Proc, pending_workflow as pending, start_node};

fn at_height(node: &mut Proc, height: u64) {
    node.saw(&format!("* Chain tip is now block #{height} "));
}

/// Sends `command` until an answer line contains `want`.
fn until(node: &mut Proc, command: &str, done: &str, want: &str) {
    let want = want.to_string();
    node.poll(command, done, move |l| l.contains(&want));
}

#[test]
fn the_patient_reads_audits_revokes_and_erases() {
    let dirs = [(); 4].map(|()| tempfile::tempdir().expect("temp dir"));
    let ([mut doc, mut lab, mut pharm], [doc_addr, lab_addr, pharm_addr]) =
        common::start_three([dirs[0].path(), dirs[1].path(), dirs[2].path()]);

    // The original walkthrough, in brief.
    doc.run("login dr_alice password123", "Logged in as dr_alice");
    doc.send("register Jane Doe");
    let id = doc.expect_prefix("Patient ID: ")["Patient ID: ".len()..].to_string();
    let key_line = doc.expect_prefix("Patient key file (hand it to the patient): ");
    let key_file = key_line["Patient key file (hand it to the patient): ".len()..].to_string();
    doc.expect_contains("Its passphrase is the DEMO one: patientpass");
    doc.run(
        "consult --test y \"Persistent fatigue, pale\"",
        "Blood test ordered",
    );
    pending(&mut lab, 2);
    lab.run("mine", "Mined block #1 ");
    lab.run("login lab_tech_bob labpass", "Logged in as lab_tech_bob");
    lab.run(&format!("set_patient {id}"), "Active patient: Jane Doe");
    lab.run(
        "perform_test Hb 13.5 g/dL",
        "Lab result for Jane Doe recorded",
    );
    pending(&mut pharm, 1);
    pharm.run("mine", "Mined block #2 ");
    at_height(&mut doc, 2);
    doc.send("prescribe Amoxicillin \"500 mg\" three times a day");
    doc.expect_contains("Payment of 100 e-cash to lab_tech_bob");
    pending(&mut lab, 2);
    lab.run("mine", "Mined block #3 ");
    at_height(&mut pharm, 3);
    pharm.run(
        "login pharm_charlie pharmpass",
        "Logged in as pharm_charlie",
    );
    pharm.run(&format!("set_patient {id}"), "Active patient: Jane Doe");
    pharm.run("fill y", "filled");
    pending(&mut doc, 1);
    doc.run("mine", "Mined block #4 ");
    for node in [&mut lab, &mut pharm] {
        at_height(node, 4);
    }

    // The patient's own node, with the key file the doctor's node wrote.
    let passphrase = dirs[3].path().join("passphrase");
    std::fs::write(&passphrase, "patientpass\n").expect("temp file");
    let patient_dir = dirs[3].path().join("node");
    let peers = [doc_addr.clone(), lab_addr, pharm_addr].join(",");
    let mut me = Proc::start(
        "patient",
        &[
            "patient",
            "--key",
            &key_file,
            "--port",
            "0",
            "--peers",
            &peers,
            "--data-dir",
            patient_dir.to_str().expect("utf-8"),
            "--passphrase-file",
            passphrase.to_str().expect("utf-8"),
        ],
    );
    at_height(&mut me, 4);
    me.run("history", "Error: not logged in");
    me.run("login wrong", "Error: wrong passphrase");
    me.run("login patientpass", "Logged in as patient");
    // Every record about the patient is sealed to the patient too.
    until(&mut me, "history", "PRESCRIPTION", "'Amoxicillin, 500 mg");
    me.run("history", "notes 'Persistent fatigue, pale'");
    me.run("history", "results 'Hb 13.5 g/dL'");

    // Reads by others went into the blocks mined since: the lab read the name and the
    // test, the pharmacy the name and the prescription.
    me.run("audit", "recorded read(s):");
    me.run("audit", "lab_tech_bob read");
    me.run("audit", "pharm_charlie read");
    me.run(
        "consents",
        "every pharmacist: demographics, prescriptions (in force)",
    );

    // The patient revokes the pharmacy.
    me.run(
        "revoke pharmacy",
        "Revoked the treatment consent of every pharmacist",
    );
    pending(&mut doc, 1);
    doc.run("mine", "Mined block #5 ");
    at_height(&mut me, 5);
    me.run(
        "consents",
        "every pharmacist: demographics, prescriptions (REVOKED in block #5)",
    );
    // A new prescription (based on no new result: nobody is paid) is not sealed to the
    // pharmacy, and the pharmacy's fill is refused.
    doc.send("prescribe Ibuprofen \"200 mg\" as needed");
    doc.expect_contains("No new lab results were read: no payment to a lab.");
    pending(&mut lab, 1);
    lab.run("mine", "Mined block #6 ");
    at_height(&mut pharm, 6);
    pharm.run(
        "fill y",
        "revoked the treatment consent of every pharmacist",
    );

    // Break-glass: the patient revokes the doctors too, and a new lab result is sealed
    // to the lab and the patient only. The doctor, refused, breaks the glass: the read is
    // on chain with its reason, and the doctor's node is given the result.
    doc.run(
        "consult --test y \"Follow-up: dizzy\"",
        "Blood test ordered",
    );
    pending(&mut lab, 1);
    lab.run("mine", "Mined block #7 ");
    me.run(
        "revoke doctor",
        "Revoked the treatment consent of every doctor",
    );
    pending(&mut doc, 1);
    doc.run("mine", "Mined block #8 ");
    at_height(&mut lab, 8);
    lab.run(
        "perform_test Hb 11.0 g/dL",
        "Lab result for Jane Doe recorded",
    );
    pending(&mut pharm, 1);
    pharm.run("mine", "Mined block #9 ");
    at_height(&mut doc, 9);
    doc.run("history", "results (not received yet: lab results)");
    doc.run(
        "consult --test n \"checking in\"",
        "revoked the treatment consent of every doctor",
    );
    doc.run("break_glass", "Reason (public: no clinical details):");
    doc.send("unconscious in the emergency room");
    doc.expect_contains("Break-glass read of Jane Doe recorded");
    doc.run("mine", "Mined block #10 ");
    doc.saw(&format!("* Break-glass read of patient {id}: fetching"));
    until(&mut doc, "history", "  #9 ", "results 'Hb 11.0 g/dL'");
    at_height(&mut me, 10);
    me.run("audit", "BREAK-GLASS: 'unconscious in the emergency room'");

    // Wrong input at the patient's prompt: one clear line each, nothing signed.
    me.run(
        "grant nobody notes 3 care",
        "Error: 'nobody' is neither a role nor a username",
    );
    me.run(
        "grant pharmacy bones 3 care",
        "Error: 'bones' is not a category",
    );
    me.run("grant pharmacy notes 0 care", "is not a number of days");
    me.run(
        "revoke 0000ffff",
        "Error: '0000ffff' is no role, username or grant of yours",
    );
    me.run("frobnicate", "Error: unknown command 'frobnicate'");
    me.send("erase");
    me.expect_contains("Erase your records from every node?");
    me.send("no");
    me.expect_contains("Nothing erased.");

    // Erasure while the pharmacy's node is offline: asked, confirmed, mined; the
    // nodes online erase and confirm at once, the pharmacy's when it catches up.
    pharm.send("exit");
    assert!(pharm.wait(), "the pharmacy stops");
    me.send("erase");
    me.expect_contains("Erase your records from every node?");
    me.send("yes");
    me.expect_contains("Erasure requested");
    pending(&mut doc, 1);
    doc.run("mine", "Mined block #11 ");
    for node in [&mut doc, &mut lab] {
        node.expect_contains(&format!("* Erasure of patient {id} confirmed"));
    }
    let (mut pharm, _) = start_node(
        "pharmacy",
        "PharmacyNode-3",
        dirs[2].path(),
        std::slice::from_ref(&doc_addr),
    );
    pharm.saw(&format!("sealed bodies of patient {id}"));
    pharm.saw(&format!("* Erasure of patient {id} confirmed"));
    pending(&mut doc, 3);
    doc.run("mine", "Mined block #12 ");
    at_height(&mut me, 12);
    for member in ["dr_alice", "lab_tech_bob", "pharm_charlie"] {
        me.run("audit", &format!("{member}: confirmed in block #12"));
    }
    // The doctor's node holds none of the patient's bodies any more.
    doc.run(
        &format!("set_patient {id}"),
        "Active patient: (sealed: demographics)",
    );
    // Nothing more is recorded about the patient, and the registry forgets them.
    doc.run(
        "consult --test n again",
        &format!("patient {id} asked for erasure"),
    );
    let registry = std::fs::read_to_string(dirs[0].path().join("patient_registry.csv"))
        .expect("the doctor node writes the registry");
    assert!(!registry.contains(&id), "{registry}");

    // The walkthrough's balances, plus the reward for the second result, and the chain
    // replays to them.
    for node in [&mut doc, &mut lab, &mut pharm] {
        node.run("balances", "dr_alice: 1600");
        node.run("balances", "lab_tech_bob: 100");
        node.run("recalc_balances", "they match the incremental state");
    }
    me.send("exit");
    assert!(me.wait(), "the patient's node exits cleanly");
    for node in [&mut doc, &mut lab, &mut pharm] {
        node.send("exit");
        assert!(node.wait(), "{} exits cleanly", node.name);
    }
}
