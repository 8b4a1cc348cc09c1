//! The patient registry CSV: formula-looking names, commas, quotes and newlines
//! survive a round trip through a CSV reader.

mod common;

use common::Net;
use health_workflow::{REGISTRY_HEADER, rfc3339, unescape_cell, write_registry};
use proptest::prelude::*;

fn registry_of(names: &[String]) -> (Net, Vec<u8>) {
    let mut net = Net::new(0);
    for name in names {
        let patient = net.patient_id();
        let now = net.now();
        let tx = net
            .alice
            .register(&net.ledger, patient, name, now)
            .expect("a valid name");
        net.submit(tx).expect("accepted");
        net.mine();
    }
    let mut out = Vec::new();
    write_registry(net.ledger.state().app(), net.ledger.genesis(), &mut out).expect("in memory");
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
