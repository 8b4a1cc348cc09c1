//! Tests of the planner: ids, text cuts, splitting lab reports, and damaged bundles.

use super::*;
use proptest::prelude::*;

fn observation(n: usize) -> clinical::Observation {
    clinical::Observation {
        code: clinical::Coding::new(clinical::LOINC, &format!("{n}-1"), "A test of some length"),
        value: Some(ObservationValue::Quantity(clinical::Quantity {
            value: Decimal::parse("13.5").expect("a decimal"),
            unit: "g/dL".into(),
            ucum: Some("g/dL".into()),
        })),
        range: None,
        interpretation: None,
        effective: Some(ClinicalDate::parse("2020-01-02T10:00:00Z").expect("a date")),
        source: SourceId::new("Observation", &format!("{n:036}")).ok(),
    }
}

fn report(n: usize, observations: usize) -> LabReport {
    LabReport {
        code: Some(clinical::Coding::new(
            clinical::LOINC,
            &format!("{n}-0"),
            "Panel",
        )),
        effective: None,
        observations: (0..observations)
            .map(|o| observation(n * 1000 + o))
            .collect(),
        source: SourceId::new("DiagnosticReport", &n.to_string()).ok(),
    }
}

fn reader() -> Reader<'static> {
    Reader {
        entries: &[],
        index: HashMap::new(),
        skipped: BTreeMap::new(),
    }
}

#[test]
fn text_is_cut_at_a_character_boundary() {
    assert_eq!(fit("short", 10), "short");
    let cut = fit("ééééé", 6);
    assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
    assert_eq!(fit("abcdef", 4), "a…");
}

#[test]
fn a_uuid_v4_patient_id_is_kept_and_any_other_id_derived_the_same_way_twice() {
    let v4 = "0bc48549-d706-42f0-b4e9-6181afaca906";
    assert_eq!(patient_id(v4).to_string(), v4);
    let derived = patient_id("pat-edge-1");
    assert_eq!(derived, patient_id("pat-edge-1"));
    assert_ne!(derived, patient_id("pat-edge-2"));
    assert_eq!(derived.uuid().get_version(), Some(uuid::Version::Random));
    // A UUID of another version is not kept as it is.
    let v1 = "6fa459ea-ee8a-11e3-ac10-0800200c9a66";
    assert_ne!(patient_id(v1).to_string(), v1);
}

#[test]
fn a_report_too_large_for_one_result_is_split_and_nothing_lost() {
    let mut r = reader();
    let orders = orders_of(vec![report(1, 300)], &mut r);
    let counts: Vec<usize> = orders
        .iter()
        .map(|o| o.reports.iter().map(|p| p.observations.len()).sum())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 300, "{counts:?}");
    assert!(counts.iter().all(|&c| c <= limits::MAX_OBSERVATIONS));
    for order in &orders {
        // Each part keeps its panel's code and source.
        assert!(
            order
                .reports
                .iter()
                .all(|p| p.source == report(1, 0).source)
        );
        Body::Results {
            results: order.results.clone(),
            reports: order.reports.clone(),
        }
        .check_form()
        .expect("each result fits one sealed body");
        assert_eq!(
            order.tests,
            vec![clinical::Coding::new(clinical::LOINC, "1-0", "Panel")]
        );
    }
    assert!(r.skipped.is_empty());
}

#[test]
fn what_is_beyond_the_orders_of_one_consultation_is_counted_as_skipped() {
    let mut r = reader();
    let reports: Vec<LabReport> = (0..(limits::MAX_TEST_ORDERS + 2))
        .map(|n| report(n, limits::MAX_OBSERVATIONS))
        .collect();
    let total = (limits::MAX_TEST_ORDERS + 2) * limits::MAX_OBSERVATIONS;
    let orders = orders_of(reports, &mut r);
    assert_eq!(orders.len(), limits::MAX_TEST_ORDERS);
    let kept: usize = orders
        .iter()
        .flat_map(|o| &o.reports)
        .map(|p| p.observations.len())
        .sum();
    let skipped = r.skipped[&format!(
        "Observation: above {} lab orders in one encounter",
        limits::MAX_TEST_ORDERS
    )];
    assert!(skipped >= 2 * limits::MAX_OBSERVATIONS, "{skipped}");
    assert_eq!(kept + skipped, total);
}

#[test]
fn a_dosage_without_text_is_put_in_words() {
    let dosage: super::super::model::Dosage = serde_json::from_value(serde_json::json!({
        "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": 1}}]
    }))
    .expect("a dosage");
    assert_eq!(describe_dosage(&dosage), "1 dose, 3 times every 1 d");
    assert_eq!(describe_dosage(&super::super::model::Dosage::default()), "");
}

/// The hand-written bundle of every edge the importer handles.
fn edges() -> Value {
    serde_json::from_str(include_str!("../../../tests/fixtures/fhir/edge/edges.json"))
        .expect("the fixture is JSON")
}

/// Values a hostile or broken bundle may put anywhere.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(serde_json::json!(5)),
        Just(serde_json::json!(-1.5e300)),
        Just(serde_json::json!("")),
        Just(serde_json::json!("é".repeat(300))),
        Just(serde_json::json!("2019-02-30")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([{"reference": "urn:uuid:nowhere"}])),
        Just(serde_json::json!({"coding": [{"system": "x", "code": "y"}]})),
    ]
}

const FIELDS: [&str; 16] = [
    "resourceType",
    "id",
    "name",
    "birthDate",
    "gender",
    "class",
    "type",
    "period",
    "encounter",
    "code",
    "category",
    "valueQuantity",
    "result",
    "effectiveDateTime",
    "medicationCodeableConcept",
    "authorizingPrescription",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a bundle's fields hold, reading it gives a plan or a refusal,
    /// never a panic, and every body of a plan fits its limits.
    #[test]
    fn any_damage_to_a_bundle_is_refused_or_read_never_a_panic(
        edits in proptest::collection::vec((0usize..18, 0usize..FIELDS.len(), junk(), any::<bool>()), 1..6)
    ) {
        let mut bundle = edges();
        for (entry, field, value, remove) in edits {
            let Some(resource) = bundle["entry"][entry]["resource"].as_object_mut() else {
                continue;
            };
            if remove {
                resource.remove(FIELDS[field]);
            } else {
                resource.insert(FIELDS[field].to_string(), value);
            }
        }
        let bytes = serde_json::to_vec(&bundle).expect("encodes");
        if let Ok(plan) = plan(&bytes) {
            let demographics = Body::Demographics { name: plan.name.clone(), details: plan.details.clone() };
            prop_assert!(demographics.check_form().is_ok());
            for visit in &plan.visits {
                let notes = Body::Notes { notes: visit.notes.clone(), visit: visit.visit.clone() };
                prop_assert!(notes.check_form().is_ok());
                for order in &visit.orders {
                    let result = Body::Results { results: order.results.clone(), reports: order.reports.clone() };
                    prop_assert!(result.check_form().is_ok());
                }
            }
        }
    }

    /// Bytes that are not a bundle are refused, never a panic.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(plan(&bytes).is_err());
    }

    /// However an encounter's laboratory reports are sized, every observation is
    /// in exactly one result or counted as skipped, and every result fits a body.
    #[test]
    fn orders_keep_every_observation_or_count_it(sizes in proptest::collection::vec(0usize..200, 0..24)) {
        let mut r = reader();
        let reports: Vec<LabReport> = sizes.iter().enumerate().map(|(n, s)| report(n, *s)).collect();
        let orders = orders_of(reports, &mut r);
        prop_assert!(orders.len() <= limits::MAX_TEST_ORDERS);
        let kept: usize = orders.iter().flat_map(|o| &o.reports).map(|p| p.observations.len()).sum();
        let skipped: usize = r.skipped.values().sum();
        prop_assert_eq!(kept + skipped, sizes.iter().sum::<usize>());
        for order in &orders {
            let body = Body::Results { results: order.results.clone(), reports: order.reports.clone() };
            prop_assert!(body.check_form().is_ok());
            let test = Body::TestOrder { test_name: order.test_name.clone(), tests: order.tests.clone() };
            prop_assert!(test.check_form().is_ok());
        }
    }
}
