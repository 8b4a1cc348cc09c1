//! Tests of the coded clinical data: dates, decimals, limits, decoding, redaction.

use super::*;
use proptest::prelude::*;

#[test]
fn fhir_dates_and_date_times_are_read_as_written() {
    for ok in [
        "2019",
        "2019-12",
        "2019-12-31",
        "2020-02-29",
        "2019-12-31T09:10:50+00:00",
        "2019-12-31T09:10:50.395802+00:00",
        "2019-12-31T23:59:60Z",
        "2019-12-31T09:10:50-05:00",
    ] {
        assert_eq!(
            ClinicalDate::parse(ok).map(|d| d.to_string()),
            Ok(ok.into())
        );
    }
    for bad in [
        "",
        "19",
        "2019-13",
        "2019-02-29",
        "2019-12-32",
        "2019-12-31T09:10",
        "2019-12-31T09:10:50",
        "2019-12-31T24:00:00Z",
        "2019-12-31T09:10:50.+00:00",
        "2019-12-31T09:10:50+0000",
        "2019-12-31 09:10:50Z",
        "2019-1-31",
        "2019-04-31",
        "2019-12-31T09:10:50+15:00",
        "2019-12-31T09:10:50+14:60",
    ] {
        assert!(
            ClinicalDate::parse(bad).is_err(),
            "{bad:?} is not a FHIR date"
        );
    }
    let when = ClinicalDate::parse("2019-12-31T09:10:50Z").expect("valid");
    assert_eq!(when.date_part(), "2019-12-31");
}

#[test]
fn decimals_keep_their_precision_and_refuse_what_is_not_a_number() {
    for ok in ["0", "112.2", "5.0", "-0.5", "1e3", "1.5E-3", "100"] {
        let d = Decimal::parse(ok).expect("a decimal");
        assert_eq!(d.as_str(), ok);
    }
    assert_eq!(Decimal::parse("5.0").map(|d| d.to_f64()), Ok(5.0));
    for bad in [
        "", "-", ".5", "5.", "01", "1e", "NaN", "inf", "1e999", "1,5", "0x10", "1e0001",
    ] {
        assert!(Decimal::parse(bad).is_err(), "{bad:?} is not a decimal");
    }
}

#[test]
fn limits_are_checked_at_their_bound() {
    let code = |c: String| Coding::new(LOINC, &c, "").check_form();
    assert_eq!(code("x".repeat(limits::MAX_CODE)), Ok(()));
    assert!(matches!(
        code("x".repeat(limits::MAX_CODE + 1)),
        Err(EventError::TextTooLong { field: "code", .. })
    ));
    assert_eq!(
        code(String::new()),
        Err(EventError::EmptyText { field: "code" })
    );
    let conditions = |n| Visit {
        conditions: vec![Coding::new(SNOMED_CT, "1", "x"); n],
        ..Visit::default()
    };
    assert_eq!(conditions(limits::MAX_CONDITIONS).check_form(), Ok(()));
    assert_eq!(
        conditions(limits::MAX_CONDITIONS + 1).check_form(),
        Err(EventError::TooMany {
            field: "conditions",
            len: limits::MAX_CONDITIONS + 1,
            max: limits::MAX_CONDITIONS
        })
    );
    let observation = Observation {
        code: Coding::new(LOINC, "718-7", "Hemoglobin"),
        value: None,
        range: None,
        interpretation: None,
        effective: None,
        source: None,
    };
    let reports = |n| {
        vec![LabReport {
            observations: vec![observation.clone(); n],
            ..LabReport::default()
        }]
    };
    assert_eq!(check_reports(&reports(limits::MAX_OBSERVATIONS)), Ok(()));
    assert!(matches!(
        check_reports(&reports(limits::MAX_OBSERVATIONS + 1)),
        Err(EventError::TooMany {
            field: "observations",
            ..
        })
    ));
    assert!(matches!(
        SourceId::new("Encounter", &"a".repeat(limits::MAX_SOURCE_ID)),
        Err(EventError::TextTooLong { .. })
    ));
}

#[test]
fn a_crafted_body_cannot_smuggle_an_invalid_date_number_or_source() {
    use ledger_core::codec;
    let bytes = codec::encode(&"2019-13".to_string());
    assert!(codec::decode::<ClinicalDate>(&bytes, 64).is_err());
    let bytes = codec::encode(&"NaN".to_string());
    assert!(codec::decode::<Decimal>(&bytes, 64).is_err());
    let bytes = codec::encode(&"x".repeat(limits::MAX_SOURCE_ID + 1));
    assert!(codec::decode::<SourceId>(&bytes, 1024).is_err());
    // What the constructors accept decodes to itself.
    let date = ClinicalDate::parse("2019-12").expect("a date");
    let back: ClinicalDate = codec::decode(&codec::encode(&date), 64).expect("decodes");
    assert_eq!(back, date);
    // Debug names the type, never the value.
    assert_eq!(format!("{date:?}"), "ClinicalDate(redacted)");
    let coding = Coding::new(LOINC, "718-7", "Hemoglobin");
    assert!(!format!("{coding:?}").contains("Hemoglobin"));
}

#[test]
fn observations_read_as_one_line() {
    let observation = Observation {
        code: Coding::new(LOINC, "718-7", "Hemoglobin"),
        value: Some(ObservationValue::Quantity(Quantity {
            value: Decimal::parse("13.5").expect("a decimal"),
            unit: "g/dL".into(),
            ucum: Some("g/dL".into()),
        })),
        range: None,
        interpretation: Some(Coding::new("v3", "N", "Normal")),
        effective: None,
        source: None,
    };
    assert_eq!(observation.summary(), "Hemoglobin: 13.5 g/dL (N)");
    assert_eq!(Gender::from_code("female"), Some(Gender::Female));
    assert_eq!(Gender::from_code("F"), None);
}

proptest! {
    #[test]
    fn every_valid_date_time_parses_and_is_kept_as_written(
        y in 1900u32..2100, m in 1u32..=12, d in 1u32..=28,
        h in 0u32..24, mi in 0u32..60, s in 0u32..60,
        frac in proptest::option::of(0u32..1_000_000),
        zone in prop_oneof![Just("Z".to_string()), (0u32..=14, 0u32..60).prop_map(|(h, m)| format!("+{h:02}:{m:02}"))],
    ) {
        let fraction = frac.map(|f| format!(".{f:06}")).unwrap_or_default();
        let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{zone}");
        prop_assert_eq!(ClinicalDate::parse(&text).map(|c| c.to_string()), Ok(text));
    }

    #[test]
    fn every_finite_float_written_by_rust_is_a_decimal(x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
        let text = x.to_string();
        let d = Decimal::parse(&text);
        prop_assert!(d.is_ok() || text.len() > 32, "{} refused", text);
        if let Ok(d) = d {
            prop_assert_eq!(d.to_f64(), x);
        }
    }
}

/// Every nested limit is checked, through the body that holds it, and names its field.
#[test]
fn every_nested_limit_is_checked_through_its_body() {
    use crate::Body;
    let long = |n: usize| "x".repeat(n + 1);
    let field_of = |body: Body| match body.check_form() {
        Err(EventError::TextTooLong { field, .. } | EventError::EmptyText { field }) => field,
        Err(EventError::TooMany { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let demographics = |details: PatientDetails| Body::Demographics {
        name: "Jo Li".into(),
        details,
    };
    assert_eq!(
        field_of(demographics(PatientDetails {
            family: Some(long(limits::MAX_PATIENT_NAME)),
            ..PatientDetails::default()
        })),
        "family name"
    );
    assert_eq!(
        field_of(demographics(PatientDetails {
            given: vec!["Jo".into(); limits::MAX_GIVEN_NAMES + 1],
            ..PatientDetails::default()
        })),
        "given names"
    );
    assert_eq!(
        field_of(demographics(PatientDetails {
            given: vec![String::new()],
            ..PatientDetails::default()
        })),
        "given name"
    );
    let notes = |visit: Visit| Body::Notes {
        notes: String::new(),
        visit,
    };
    assert_eq!(
        field_of(notes(Visit {
            class: Some(long(limits::MAX_CODE)),
            ..Visit::default()
        })),
        "encounter class"
    );
    assert_eq!(
        field_of(notes(Visit {
            kind: Some(Coding::new("", "1", "")),
            ..Visit::default()
        })),
        "code system"
    );
    assert_eq!(
        field_of(Body::TestOrder {
            test_name: "CBC".into(),
            tests: vec![Coding::new(LOINC, "1", ""); limits::MAX_REPORTS + 1],
        }),
        "tests ordered"
    );
    let quantity = |unit: String, ucum: Option<String>| Quantity {
        value: Decimal::parse("1").expect("a decimal"),
        unit,
        ucum,
    };
    let observation = |f: &dyn Fn(&mut Observation)| {
        let mut o = Observation {
            code: Coding::new(LOINC, "718-7", "Hb"),
            value: None,
            range: None,
            interpretation: None,
            effective: None,
            source: None,
        };
        f(&mut o);
        Body::Results {
            results: "Hb".into(),
            reports: vec![LabReport {
                observations: vec![o],
                ..LabReport::default()
            }],
        }
    };
    assert_eq!(
        field_of(observation(&|o| o.value = Some(
            ObservationValue::Quantity(quantity(long(limits::MAX_CODE), None))
        ))),
        "unit"
    );
    assert_eq!(
        field_of(observation(&|o| o.value = Some(
            ObservationValue::Quantity(quantity(String::new(), Some(String::new())))
        ))),
        "UCUM code"
    );
    assert_eq!(
        field_of(observation(
            &|o| o.value = Some(ObservationValue::Text(long(limits::MAX_DISPLAY)))
        )),
        "value"
    );
    assert_eq!(
        field_of(observation(
            &|o| o.value = Some(ObservationValue::Coded(Coding::new(LOINC, "", "")))
        )),
        "code"
    );
    assert_eq!(
        field_of(observation(&|o| {
            o.range = Some(ReferenceRange {
                low: None,
                high: Some(quantity(long(limits::MAX_CODE), None)),
            })
        })),
        "unit"
    );
    assert_eq!(
        field_of(observation(
            &|o| o.interpretation = Some(Coding::new("v3", "", ""))
        )),
        "code"
    );
    let report_code = Body::Results {
        results: "Hb".into(),
        reports: vec![LabReport {
            code: Some(Coding::new(LOINC, &long(limits::MAX_CODE), "")),
            ..LabReport::default()
        }],
    };
    assert_eq!(field_of(report_code), "code");
    let prescription = Body::Prescription {
        medication: "A".into(),
        dosage: "1".into(),
        instructions: String::new(),
        coded: MedicationCode {
            code: Some(Coding::new(RXNORM, "308192", &long(limits::MAX_DISPLAY))),
            ..MedicationCode::default()
        },
    };
    assert_eq!(field_of(prescription), "code display");
}

#[test]
fn texts_read_back_as_given_and_errors_quote_a_short_excerpt() {
    let date = ClinicalDate::parse("2019-12-31").expect("a date");
    assert_eq!(date.as_str(), "2019-12-31");
    let source = SourceId::new("Encounter", "e1").expect("short");
    assert_eq!(source.as_str(), "Encounter/e1");
    assert_eq!(source.to_string(), "Encounter/e1");
    let long = format!("{}-13", "9".repeat(60));
    let error = ClinicalDate::parse(&long).expect_err("not a date");
    assert_eq!(error.0, "9".repeat(40));
    assert!(error.to_string().contains(&"9".repeat(40)));
}
