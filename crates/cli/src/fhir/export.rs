//! A patient's record as a FHIR R4 Bundle of type `collection`, holding only what the
//! exporting user may read.
//!
//! Public facts (that a consultation happened, when it was recorded, who signed it)
//! are on the chain for every member, so they are always exported: an Encounter is
//! there even for a reader who may not open its notes. Everything sealed is exported
//! only if the reader opens it; a resource that needs a sealed body the reader cannot
//! open (a MedicationRequest without its medication, say) is left out and counted.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use health_workflow::clinical::{self, ObservationValue};
use health_workflow::seal::{SealedBody, SealedRef};
use health_workflow::{
    Body, BodyReader, Event, HealthTx, OrderId, PatientId, PrescriptionId, Reading, Section,
    rfc3339,
};
use ledger_core::{AccountId, BlockHash, Genesis, Hash, Timestamp, TxBody, TxId};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::model::{
    Bundle, CodeableConcept, Coding, Condition, DiagnosticReport, DispensePerformer, Dosage,
    Encounter, Entry, Extension, HumanName, Identifier, MedicationDispense, MedicationRequest,
    Meta, Observation, Patient, Period, Practitioner, Provenance, ProvenanceAgent, Quantity,
    Reference, ReferenceRange, ServiceRequest, Signature,
};
use super::{
    EXT_BLOCK_HASH, EXT_BLOCK_HEIGHT, EXT_SIGNING_KEY, EXT_TRANSACTION, SYSTEM_ACCOUNT,
    SYSTEM_ORDER, SYSTEM_PRESCRIPTION, SYSTEM_SOURCE,
};

/// One confirmed transaction of a patient, with where it sits on the chain.
#[derive(Clone, Debug)]
pub(crate) struct ChainRecord {
    /// Height of its block.
    pub(crate) height: u64,
    /// Hash of its block.
    pub(crate) block_hash: BlockHash,
    /// Time of its block.
    pub(crate) block_time: Timestamp,
    /// The signed transaction.
    pub(crate) tx: HealthTx,
}

/// A finished export: the Bundle and what was left out.
#[derive(Debug)]
pub(crate) struct Exported {
    /// The Bundle, as JSON.
    pub(crate) bundle: Value,
    /// Resources written, by type.
    pub(crate) written: BTreeMap<&'static str, usize>,
    /// Sealed sections the reader may not open (or has not received), left out.
    pub(crate) withheld: usize,
}

/// The reader of an export: whose bodies it opens, and the vault it reads them from.
pub(crate) struct ExportReader<'a> {
    pub(crate) reader: BodyReader<'a>,
    pub(crate) vault: &'a dyn Fn(&Hash) -> Option<SealedBody>,
}

impl ExportReader<'_> {
    fn open(&self, tx: &HealthTx, event: &Event, section: Section, at: &SealedRef) -> Option<Body> {
        match self
            .reader
            .read_at(&tx.author, event, section, at, self.vault)?
        {
            Reading::Clear(body) => Some(body),
            _ => None,
        }
    }
}

/// A stable `urn:uuid` for the `n`th resource made from transaction `tx`.
fn resource_uuid(tx: &TxId, what: &str, n: usize) -> Uuid {
    let hash = Hash::of_parts(&[
        b"healthchain fhir resource",
        tx.hash().as_bytes(),
        what.as_bytes(),
        &n.to_le_bytes(),
    ]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn coding(c: &clinical::Coding) -> Coding {
    Coding {
        system: Some(c.system.clone()),
        code: Some(c.code.clone()),
        display: (!c.display.is_empty()).then(|| c.display.clone()),
    }
}

fn concept(c: &clinical::Coding) -> CodeableConcept {
    CodeableConcept {
        coding: vec![coding(c)],
        text: None,
    }
}

fn text_concept(text: &str) -> CodeableConcept {
    CodeableConcept {
        coding: Vec::new(),
        text: Some(text.to_string()),
    }
}

fn quantity(q: &clinical::Quantity) -> Quantity {
    Quantity {
        value: serde_json::from_str(q.value.as_str()).ok(),
        unit: (!q.unit.is_empty()).then(|| q.unit.clone()),
        system: q.ucum.as_ref().map(|_| clinical::UCUM.to_string()),
        code: q.ucum.clone(),
    }
}

fn source_identifier(source: Option<&clinical::SourceId>) -> Vec<Identifier> {
    source
        .map(|s| Identifier {
            system: Some(SYSTEM_SOURCE.to_string()),
            value: Some(s.to_string()),
        })
        .into_iter()
        .collect()
}

fn date(d: Option<&clinical::ClinicalDate>, fallback: Timestamp) -> String {
    d.map_or_else(|| rfc3339(fallback), |d| d.to_string())
}

/// A clinical time: the record's own, or for a record made here (not imported) the
/// time it was recorded; an imported record without one has none.
fn when(d: Option<&clinical::ClinicalDate>, imported: bool, recorded: Timestamp) -> Option<String> {
    match (d, imported) {
        (Some(d), _) => Some(d.to_string()),
        (None, true) => None,
        (None, false) => Some(rfc3339(recorded)),
    }
}

fn redacted() -> Meta {
    Meta {
        security: vec![Coding {
            system: Some("http://terminology.hl7.org/CodeSystem/v3-ObservationValue".into()),
            code: Some("REDACTED".into()),
            display: Some("redacted".into()),
        }],
    }
}

/// Builds the Bundle of one patient.
struct Builder<'a> {
    genesis: &'a Genesis,
    patient: PatientId,
    patient_url: String,
    entries: Vec<Entry>,
    written: BTreeMap<&'static str, usize>,
    withheld: usize,
    practitioners: HashMap<AccountId, String>,
    /// The Encounter of each consultation, by the consultation's transaction.
    encounters: HashMap<TxId, String>,
    /// The Encounter and ServiceRequests of each order.
    orders: HashMap<OrderId, (Option<String>, Vec<String>)>,
    /// Each prescription's MedicationRequest and medication.
    prescriptions: HashMap<PrescriptionId, (String, CodeableConcept)>,
}

impl Builder<'_> {
    fn push<R: Serialize>(&mut self, kind: &'static str, url: &str, resource: &R) {
        let resource = serde_json::to_value(resource).unwrap_or(Value::Null);
        *self.written.entry(kind).or_default() += 1;
        self.entries.push(Entry {
            full_url: Some(url.to_string()),
            resource: Some(resource),
        });
    }

    /// The Practitioner of `account`, added on first use.
    fn practitioner(&mut self, account: &AccountId) -> Reference {
        if let Some(url) = self.practitioners.get(account) {
            return Reference::to(url);
        }
        let hash = Hash::of_parts(&[b"healthchain fhir practitioner", account.as_bytes()]);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let url = format!("urn:uuid:{id}");
        let member = self.genesis.member(account);
        let practitioner = Practitioner {
            resource_type: "Practitioner".into(),
            id: Some(id.to_string()),
            identifier: vec![Identifier {
                system: Some(SYSTEM_ACCOUNT.into()),
                value: Some(account.to_string()),
            }],
            name: member
                .map(|m| HumanName {
                    text: Some(format!("{} ({})", m.display_name, m.username)),
                    ..HumanName::default()
                })
                .into_iter()
                .collect(),
        };
        self.push("Practitioner", &url, &practitioner);
        self.practitioners.insert(*account, url.clone());
        Reference::to(&url)
    }

    /// Sets the `status` of the resource at `url`, written before.
    fn set_status(&mut self, url: &str, status: &str) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.full_url.as_deref() == Some(url))
            && let Some(resource) = entry.resource.as_mut()
        {
            resource["status"] = Value::String(status.into());
        }
    }

    fn subject(&self) -> Option<Reference> {
        Some(Reference::to(&self.patient_url))
    }

    fn provenance(&mut self, record: &ChainRecord, targets: Vec<String>) {
        if targets.is_empty() {
            return;
        }
        let id = resource_uuid(&record.tx.id(), "Provenance", 0);
        let url = format!("urn:uuid:{id}");
        let author = self.practitioner(&record.tx.author);
        let height = match u32::try_from(record.height) {
            Ok(h) => Extension {
                url: EXT_BLOCK_HEIGHT.into(),
                value_unsigned_int: Some(h),
                ..Extension::default()
            },
            Err(_) => Extension {
                url: EXT_BLOCK_HEIGHT.into(),
                value_string: Some(record.height.to_string()),
                ..Extension::default()
            },
        };
        let string = |url: &str, value: String| Extension {
            url: url.into(),
            value_string: Some(value),
            value_unsigned_int: None,
        };
        let provenance = Provenance {
            resource_type: "Provenance".into(),
            id: Some(id.to_string()),
            extension: vec![
                height,
                string(EXT_BLOCK_HASH, record.block_hash.to_string()),
                string(EXT_TRANSACTION, record.tx.id().to_string()),
                string(EXT_SIGNING_KEY, record.tx.author.to_string()),
            ],
            target: targets.iter().map(|t| Reference::to(t)).collect(),
            recorded: rfc3339(record.block_time),
            agent: vec![ProvenanceAgent {
                kind: Some(CodeableConcept {
                    coding: vec![Coding {
                        system: Some(
                            "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
                                .into(),
                        ),
                        code: Some("author".into()),
                        display: Some("Author".into()),
                    }],
                    text: None,
                }),
                who: author.clone(),
            }],
            signature: vec![Signature {
                kind: vec![Coding {
                    system: Some("urn:iso-astm:E1762-95:2013".into()),
                    code: Some("1.2.840.10065.1.12.1.1".into()),
                    display: Some("Author's Signature".into()),
                }],
                when: rfc3339(record.tx.timestamp),
                who: author,
                sig_format: Some("application/octet-stream".into()),
                data: Some(
                    base64::engine::general_purpose::STANDARD
                        .encode(record.tx.signature.as_bytes()),
                ),
            }],
        };
        self.push("Provenance", &url, &provenance);
    }
}

/// Exports `patient`'s confirmed `records` (in chain order) as `reader` reads them.
pub(crate) fn export(
    genesis: &Genesis,
    patient: PatientId,
    records: &[ChainRecord],
    reader: &ExportReader<'_>,
) -> Exported {
    let patient_url = format!("urn:uuid:{}", patient.uuid());
    let mut b = Builder {
        genesis,
        patient,
        patient_url,
        entries: Vec::new(),
        written: BTreeMap::new(),
        withheld: 0,
        practitioners: HashMap::new(),
        encounters: HashMap::new(),
        orders: HashMap::new(),
        prescriptions: HashMap::new(),
    };
    for record in records {
        let TxBody::App(event) = &record.tx.body else {
            continue;
        };
        let targets = match event {
            Event::PatientRegistration(r) => {
                let body = reader.open(&record.tx, event, Section::Demographics, &r.demographics);
                vec![patient_resource(&mut b, body.as_ref())]
            }
            Event::DoctorConsultation(_) => consultation(&mut b, record, event, reader),
            Event::LabTestResult(_) => lab_result(&mut b, record, event, reader),
            Event::Prescription(_) => prescription(&mut b, record, event, reader),
            Event::PrescriptionFilled(f) => fill(&mut b, record, f.prescription_id),
            _ => Vec::new(),
        };
        b.provenance(record, targets);
    }
    let bundle = Bundle {
        resource_type: "Bundle".into(),
        id: Some(Uuid::new_v4().to_string()),
        kind: "collection".into(),
        timestamp: Some(rfc3339(crate::tools::now())),
        entry: b.entries,
    };
    Exported {
        bundle: serde_json::to_value(&bundle).unwrap_or(Value::Null),
        written: b.written,
        withheld: b.withheld,
    }
}

fn patient_resource(b: &mut Builder<'_>, body: Option<&Body>) -> String {
    let url = b.patient_url.clone();
    let mut patient = Patient {
        resource_type: "Patient".into(),
        id: Some(b.patient.uuid().to_string()),
        ..Patient::default()
    };
    match body {
        Some(Body::Demographics { name, details }) => {
            let (family, given) = match (&details.family, details.given.is_empty()) {
                (None, true) => split_name(name),
                _ => (details.family.clone(), details.given.clone()),
            };
            patient.name = vec![HumanName {
                use_: Some("official".into()),
                text: Some(name.clone()),
                family,
                given,
            }];
            patient.gender = details.gender.map(|g| g.code().to_string());
            patient.birth_date = details.birth_date.as_ref().map(ToString::to_string);
        }
        _ => {
            b.withheld += 1;
            patient.meta = Some(redacted());
        }
    }
    b.push("Patient", &url, &patient);
    url
}

/// A name typed as one line, split as people write it: given names, then the family
/// name last.
fn split_name(name: &str) -> (Option<String>, Vec<String>) {
    let mut words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
    let family = words.pop();
    (family, words)
}

fn consultation(
    b: &mut Builder<'_>,
    record: &ChainRecord,
    event: &Event,
    reader: &ExportReader<'_>,
) -> Vec<String> {
    let Event::DoctorConsultation(c) = event else {
        return Vec::new();
    };
    let tx_id = record.tx.id();
    let id = resource_uuid(&tx_id, "Encounter", 0);
    let url = format!("urn:uuid:{id}");
    let notes = reader.open(&record.tx, event, Section::Notes, &c.notes);
    let doctor = b.practitioner(&record.tx.author);
    let mut encounter = Encounter {
        resource_type: "Encounter".into(),
        id: Some(id.to_string()),
        status: Some("finished".into()),
        class: Some(Coding {
            system: Some("http://terminology.hl7.org/CodeSystem/v3-ActCode".into()),
            code: Some("AMB".into()),
            display: Some("ambulatory".into()),
        }),
        subject: b.subject(),
        period: Some(Period {
            start: Some(rfc3339(record.block_time)),
            end: None,
        }),
        participant: vec![super::model::Participant {
            individual: Some(doctor),
        }],
        ..Encounter::default()
    };
    let mut targets = vec![url.clone()];
    let mut conditions = Vec::new();
    match &notes {
        Some(Body::Notes { notes, visit }) => {
            if let Some(class) = &visit.class {
                encounter.class = Some(Coding {
                    system: Some("http://terminology.hl7.org/CodeSystem/v3-ActCode".into()),
                    code: Some(class.clone()),
                    display: None,
                });
            }
            encounter.kind = visit.kind.iter().map(concept).collect();
            // The notes, where they say more than the visit's type (an import takes
            // its notes from the type), as the reason for the visit.
            let said = visit.kind.as_ref().map(|k| k.display.as_str());
            if !notes.is_empty() && said != Some(notes.as_str()) {
                encounter.reason_code = vec![text_concept(notes)];
            }
            // An imported visit keeps its own dates, or none; a visit recorded here
            // took place when it was recorded.
            if visit.start.is_some() || visit.end.is_some() {
                encounter.period = Some(Period {
                    start: visit.start.as_ref().map(ToString::to_string),
                    end: visit.end.as_ref().map(ToString::to_string),
                });
            } else if visit.source.is_some() {
                encounter.period = None;
            }
            encounter.identifier = source_identifier(visit.source.as_ref());
            conditions.clone_from(&visit.conditions);
        }
        _ => {
            // What kind of visit it was is sealed in the notes.
            encounter.class = Some(Coding {
                system: Some("http://terminology.hl7.org/CodeSystem/v3-NullFlavor".into()),
                code: Some("UNK".into()),
                display: Some("unknown".into()),
            });
            b.withheld += 1;
        }
    }
    b.push("Encounter", &url, &encounter);
    b.encounters.insert(tx_id, url.clone());
    for (n, condition) in conditions.iter().enumerate() {
        let id = resource_uuid(&tx_id, "Condition", n);
        let curl = format!("urn:uuid:{id}");
        let resource = Condition {
            resource_type: "Condition".into(),
            id: Some(id.to_string()),
            code: Some(concept(condition)),
            subject: b.subject(),
            encounter: Some(Reference::to(&url)),
        };
        b.push("Condition", &curl, &resource);
        targets.push(curl);
    }
    let authored = encounter.period.as_ref().and_then(|p| p.start.clone());
    let mut n = 0;
    for order in &c.test_orders {
        let body = reader.open(&record.tx, event, Section::TestOrder, &order.test);
        let Some(Body::TestOrder { test_name, tests }) = &body else {
            b.withheld += 1;
            b.orders
                .insert(order.order_id, (Some(url.clone()), Vec::new()));
            continue;
        };
        let codes: Vec<CodeableConcept> = if tests.is_empty() {
            vec![text_concept(test_name)]
        } else {
            tests.iter().map(concept).collect()
        };
        let mut requests = Vec::new();
        for code in codes {
            let id = resource_uuid(&tx_id, "ServiceRequest", n);
            n += 1;
            let surl = format!("urn:uuid:{id}");
            let request = ServiceRequest {
                resource_type: "ServiceRequest".into(),
                id: Some(id.to_string()),
                requisition: Some(Identifier {
                    system: Some(SYSTEM_ORDER.into()),
                    value: Some(order.order_id.to_string()),
                }),
                status: Some("active".into()),
                intent: Some("order".into()),
                code: Some(code),
                subject: b.subject(),
                encounter: Some(Reference::to(&url)),
                authored_on: authored.clone(),
                requester: Some(b.practitioner(&record.tx.author)),
            };
            b.push("ServiceRequest", &surl, &request);
            requests.push(surl.clone());
            targets.push(surl);
        }
        b.orders
            .insert(order.order_id, (Some(url.clone()), requests));
    }
    targets
}

fn observation_value(o: &clinical::Observation, resource: &mut Observation) {
    match &o.value {
        Some(ObservationValue::Quantity(q)) => resource.value_quantity = Some(quantity(q)),
        Some(ObservationValue::Coded(c)) => resource.value_codeable_concept = Some(concept(c)),
        Some(ObservationValue::Text(t)) => resource.value_string = Some(t.clone()),
        None => {}
    }
}

fn lab_result(
    b: &mut Builder<'_>,
    record: &ChainRecord,
    event: &Event,
    reader: &ExportReader<'_>,
) -> Vec<String> {
    let Event::LabTestResult(r) = event else {
        return Vec::new();
    };
    let body = reader.open(&record.tx, event, Section::Results, &r.results);
    let Some(Body::Results { results, reports }) = &body else {
        b.withheld += 1;
        return Vec::new();
    };
    let tx_id = record.tx.id();
    let (encounter, requests) = b.orders.get(&r.order_id).cloned().unwrap_or_default();
    let lab = b.practitioner(&record.tx.author);
    let lab_category = CodeableConcept {
        coding: vec![Coding {
            system: Some("http://terminology.hl7.org/CodeSystem/observation-category".into()),
            code: Some("laboratory".into()),
            display: Some("Laboratory".into()),
        }],
        text: None,
    };
    let report_category = CodeableConcept {
        coding: vec![Coding {
            system: Some("http://terminology.hl7.org/CodeSystem/v2-0074".into()),
            code: Some("LAB".into()),
            display: Some("Laboratory".into()),
        }],
        text: None,
    };
    let mut targets = Vec::new();
    let free_text_only = [clinical::LabReport::default()];
    let groups: &[clinical::LabReport] = if reports.is_empty() {
        &free_text_only
    } else {
        reports
    };
    let mut n_obs = 0;
    for (n, report) in groups.iter().enumerate() {
        let mut members = Vec::new();
        for o in &report.observations {
            let id = resource_uuid(&tx_id, "Observation", n_obs);
            n_obs += 1;
            let ourl = format!("urn:uuid:{id}");
            let mut resource = Observation {
                resource_type: "Observation".into(),
                id: Some(id.to_string()),
                identifier: source_identifier(o.source.as_ref()),
                status: Some("final".into()),
                category: vec![lab_category.clone()],
                code: Some(concept(&o.code)),
                subject: b.subject(),
                encounter: encounter.as_deref().map(Reference::to),
                effective_date_time: when(
                    o.effective.as_ref().or(report.effective.as_ref()),
                    o.source.is_some(),
                    record.block_time,
                ),
                performer: vec![lab.clone()],
                interpretation: o.interpretation.iter().map(concept).collect(),
                reference_range: o
                    .range
                    .iter()
                    .map(|r| ReferenceRange {
                        low: r.low.as_ref().map(quantity),
                        high: r.high.as_ref().map(quantity),
                    })
                    .collect(),
                ..Observation::default()
            };
            observation_value(o, &mut resource);
            b.push("Observation", &ourl, &resource);
            members.push(ourl.clone());
            targets.push(ourl);
        }
        let id = resource_uuid(&tx_id, "DiagnosticReport", n);
        let rurl = format!("urn:uuid:{id}");
        let code = report
            .code
            .as_ref()
            .map_or_else(|| text_concept("Laboratory result"), concept);
        let resource = DiagnosticReport {
            resource_type: "DiagnosticReport".into(),
            id: Some(id.to_string()),
            identifier: source_identifier(report.source.as_ref()),
            based_on: requests.iter().map(|r| Reference::to(r)).collect(),
            status: Some("final".into()),
            category: vec![report_category.clone()],
            code: Some(code),
            subject: b.subject(),
            encounter: encounter.as_deref().map(Reference::to),
            effective_date_time: when(
                report.effective.as_ref(),
                report.source.is_some() || report.observations.iter().any(|o| o.source.is_some()),
                record.block_time,
            ),
            performer: vec![lab.clone()],
            result: members.iter().map(|m| Reference::to(m)).collect(),
            conclusion: reports.is_empty().then(|| results.clone()),
        };
        b.push("DiagnosticReport", &rurl, &resource);
        targets.push(rurl);
    }
    for request in &requests {
        b.set_status(request, "completed");
    }
    targets
}

fn prescription(
    b: &mut Builder<'_>,
    record: &ChainRecord,
    event: &Event,
    reader: &ExportReader<'_>,
) -> Vec<String> {
    let Event::Prescription(p) = event else {
        return Vec::new();
    };
    let body = reader.open(&record.tx, event, Section::Prescription, &p.details);
    let Some(Body::Prescription {
        medication,
        dosage,
        instructions,
        coded,
    }) = &body
    else {
        b.withheld += 1;
        return Vec::new();
    };
    let id = resource_uuid(&record.tx.id(), "MedicationRequest", 0);
    let url = format!("urn:uuid:{id}");
    let medication = CodeableConcept {
        coding: coded.code.iter().map(coding).collect(),
        text: Some(medication.clone()),
    };
    let mut identifier = vec![Identifier {
        system: Some(SYSTEM_PRESCRIPTION.into()),
        value: Some(p.prescription_id.to_string()),
    }];
    identifier.extend(source_identifier(coded.source.as_ref()));
    let resource = MedicationRequest {
        resource_type: "MedicationRequest".into(),
        id: Some(id.to_string()),
        identifier,
        status: Some("active".into()),
        intent: Some("order".into()),
        medication_codeable_concept: Some(medication.clone()),
        subject: b.subject(),
        encounter: None,
        authored_on: Some(date(coded.authored.as_ref(), record.block_time)),
        requester: Some(b.practitioner(&record.tx.author)),
        dosage_instruction: vec![Dosage {
            text: Some(dosage.clone()),
            patient_instruction: (!instructions.is_empty()).then(|| instructions.clone()),
            ..Dosage::default()
        }],
    };
    b.push("MedicationRequest", &url, &resource);
    b.prescriptions
        .insert(p.prescription_id, (url.clone(), medication));
    vec![url]
}

fn fill(b: &mut Builder<'_>, record: &ChainRecord, prescription: PrescriptionId) -> Vec<String> {
    let Some((request, medication)) = b.prescriptions.get(&prescription).cloned() else {
        // What was handed out is the prescription's, which this reader cannot open.
        b.withheld += 1;
        return Vec::new();
    };
    let id = resource_uuid(&record.tx.id(), "MedicationDispense", 0);
    let url = format!("urn:uuid:{id}");
    let pharmacist = b.practitioner(&record.tx.author);
    let resource = MedicationDispense {
        resource_type: "MedicationDispense".into(),
        id: Some(id.to_string()),
        status: Some("completed".into()),
        medication_codeable_concept: Some(medication),
        subject: b.subject(),
        performer: vec![DispensePerformer { actor: pharmacist }],
        authorizing_prescription: vec![Reference::to(&request)],
        when_handed_over: Some(rfc3339(record.block_time)),
    };
    b.push("MedicationDispense", &url, &resource);
    b.set_status(&request, "completed");
    vec![url]
}
