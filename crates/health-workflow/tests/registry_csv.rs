//! The patient registry CSV: formula-looking names, commas, quotes and newlines
//! survive a round trip through a CSV reader; names are sealed, so a node writes only
//! those it may read.

mod common;

use common::Net;
use health_workflow::{
    Body, Category, ConsentTable, Patient, REGISTRY_HEADER, Reading, Role, SEALED_NAME, Section,
    records, rfc3339, unescape_cell, write_registry,
};
use proptest::prelude::*;

/// The name of each patient as the demo member `username` reads it: the registration's
/// demographics opened from the vault with its key; `None` where it may not read them.
fn names_as<'a>(net: &'a Net, username: &'a str) -> impl FnMut(&Patient) -> Option<String> + 'a {
    move |patient| {
        let at = &patient.registered;
        let registration = records::recorded_event(&net.ledger, at.height, &at.tx_id)
            .expect("the registration is in its block");
        match &net.read(username, &registration, Section::Demographics)? {
            Reading::Clear(Body::Demographics { name, .. }) => Some(name.clone()),
            _ => None,
        }
    }
}

/// A network where Dr. Alice registered `names`, one block each, sealing them under
/// `consent`.
fn network_of(names: &[String], consent: ConsentTable) -> Net {
    let mut net = Net::new(0);
    net.alice = net.alice.clone().with_consent(consent);
    for name in names {
        let patient = net.patient_id();
        let now = net.now();
        let written = net
            .alice
            .register(&net.ledger, patient, name, now, &mut net.rng)
            .expect("a valid name");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
        net.mine();
    }
    net
}

/// The registry as the demo member `username` writes it.
fn registry_as(net: &Net, username: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let state = net.ledger.state().app();
    write_registry(
        state,
        net.ledger.genesis(),
        names_as(net, username),
        &mut out,
    )
    .expect("in memory");
    out
}

fn registry_of(names: &[String]) -> (Net, Vec<u8>) {
    let net = network_of(names, ConsentTable::treatment());
    let out = registry_as(&net, "dr_alice");
    (net, out)
}

fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("valid csv").iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn risky_names_round_trip_and_no_cell_starts_like_a_formula() {
    let names: Vec<String> = [
        "Jane Doe",
        "=HYPERLINK(\"http://x\",\"click\")",
        "+1 555",
        "-2+3",
        "@SUM(A1:A9)",
        "\tTabbed",
        "\rCarriage",
        "'Quoted'",
        "Doe, Jane",
        "Jane \"JD\" Doe",
        "Line one\nline two",
        "Ünïcødé 名前",
    ]
    .map(String::from)
    .to_vec();
    let (net, bytes) = registry_of(&names);
    let rows = read_back(&bytes);
    assert_eq!(rows[0], REGISTRY_HEADER.map(String::from).to_vec());
    assert_eq!(rows.len(), names.len() + 1);
    let patients: Vec<_> = net.ledger.state().app().patients().collect();
    for ((row, name), patient) in rows[1..].iter().zip(&names).zip(patients) {
        for cell in row {
            let first = cell.chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
                "risky cell {cell:?}"
            );
        }
        assert_eq!(unescape_cell(&row[0]), patient.id.to_string());
        assert_eq!(unescape_cell(&row[1]), name);
        assert_eq!(unescape_cell(&row[2]), "dr_alice");
        assert_eq!(unescape_cell(&row[3]), rfc3339(patient.registered.time));
    }
}

/// A node writes each name only where it may read the patient's demographics: with
/// the pharmacy's consent to demographics withdrawn, its registry says the names are
/// sealed (and holds none of them), while the lab's still lists them.
#[test]
fn names_a_node_may_not_read_are_written_sealed() {
    let names = ["Jane Doe", "John Roe"].map(String::from).to_vec();
    let mut consent = ConsentTable::treatment();
    consent.revoke(Category::Demographics, Role::Pharmacist);
    let net = network_of(&names, consent);
    let names_in = |bytes: &[u8]| -> Vec<String> {
        read_back(bytes)[1..]
            .iter()
            .map(|row| unescape_cell(&row[1]).to_string())
            .collect()
    };
    assert_eq!(names_in(&registry_as(&net, "lab_tech_bob")), names);
    let pharmacy = registry_as(&net, "pharm_charlie");
    assert_eq!(names_in(&pharmacy), [SEALED_NAME, SEALED_NAME]);
    // A node holding no member key at all writes every name sealed.
    let mut out = Vec::new();
    write_registry(
        net.ledger.state().app(),
        net.ledger.genesis(),
        |_| None,
        &mut out,
    )
    .expect("in memory");
    assert_eq!(out, pharmacy);
    let text = String::from_utf8(out).expect("utf-8");
    for name in &names {
        assert!(!text.contains(name.as_str()), "{name} leaked");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_name_round_trips(names in prop::collection::vec("[=+@'\\-\t\r\n,\" a-z]{1,20}", 1..4)) {
        let (_, bytes) = registry_of(&names);
        let rows = read_back(&bytes);
        prop_assert_eq!(rows.len(), names.len() + 1);
        for (row, name) in rows[1..].iter().zip(&names) {
            prop_assert_eq!(unescape_cell(&row[1]), name.as_str());
        }
    }
}
