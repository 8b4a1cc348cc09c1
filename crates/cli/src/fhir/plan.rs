//! Reading a Synthea-style FHIR R4 Bundle into a plan of ledger events, checked in
//! full before anything is signed: a bundle that cannot be read is refused with the
//! entry that fails, and nothing of it is written.
//!
//! | FHIR | ledger |
//! |---|---|
//! | Patient | a registration: id (a UUID v4 is kept), structured name, birth date, gender |
//! | Encounter | a consultation: class, type, period, source id; its type is the notes |
//! | Condition (of an encounter) | a coded condition of that consultation |
//! | DiagnosticReport (laboratory) and its Observations | a test order in the encounter's consultation, answered by a lab result with typed observations |
//! | Observation (laboratory) in no report | the same, in a report without a code |
//! | MedicationRequest | a prescription: RxNorm code, text, dosage, instructions, date |
//! | MedicationDispense | a fill of the prescription it names |
//!
//! Everything else (Procedure, Immunization, Claim, vital signs, ...) is skipped and
//! counted with its reason.

use std::collections::{BTreeMap, HashMap, HashSet};

use health_workflow::clinical::{
    self, ClinicalDate, Decimal, Gender, LabReport, MedicationCode, ObservationValue,
    PatientDetails, SourceId, Visit,
};
use health_workflow::{Body, PatientId, limits};
use ledger_core::Hash;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{
    Bundle, CodeableConcept, Coding, Condition, DiagnosticReport, Encounter, MedicationDispense,
    MedicationRequest, Observation, Patient, Quantity,
};

/// Why a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    /// Not JSON, or not shaped as a Bundle.
    #[error("not a FHIR Bundle: {0}")]
    NotABundle(String),
    /// One entry is wrong.
    #[error("entry {index}{url} ({resource}): {reason}")]
    Entry {
        /// Its position, from 0.
        index: usize,
        /// Its `fullUrl`, as ` urn:uuid:…`, or empty.
        url: String,
        /// Its resource type, or `no resource`.
        resource: String,
        /// What is wrong.
        reason: String,
    },
    /// The bundle has no Patient, or more than one.
    #[error("a bundle must hold exactly one Patient; this one holds {0}")]
    Patients(usize),
}

/// A test order and its result, as one consultation orders it.
#[derive(Clone, PartialEq)]
pub(crate) struct OrderPlan {
    pub(crate) test_name: String,
    pub(crate) tests: Vec<clinical::Coding>,
    pub(crate) results: String,
    pub(crate) reports: Vec<LabReport>,
}

/// A prescription, and whether the bundle shows it dispensed.
#[derive(Clone, PartialEq)]
pub(crate) struct PrescriptionPlan {
    pub(crate) medication: String,
    pub(crate) dosage: String,
    pub(crate) instructions: String,
    pub(crate) coded: MedicationCode,
    pub(crate) dispensed: bool,
}

/// One encounter: a consultation, its orders and results, and what it prescribed.
#[derive(Clone, PartialEq)]
pub(crate) struct VisitPlan {
    pub(crate) notes: String,
    pub(crate) visit: Visit,
    pub(crate) orders: Vec<OrderPlan>,
    pub(crate) prescriptions: Vec<PrescriptionPlan>,
}

/// A patient's record read from one bundle, in the order it is written.
#[derive(Clone, PartialEq)]
pub(crate) struct PatientPlan {
    pub(crate) patient_id: PatientId,
    pub(crate) name: String,
    pub(crate) details: PatientDetails,
    /// Encounters, oldest first.
    pub(crate) visits: Vec<VisitPlan>,
    /// Prescriptions tied to no encounter, oldest first.
    pub(crate) prescriptions: Vec<PrescriptionPlan>,
    /// What was not mapped, by reason.
    pub(crate) skipped: BTreeMap<String, usize>,
}

/// The text a plain REPL name would be: given names, then the family name.
fn display_name(given: &[String], family: Option<&str>) -> String {
    given
        .iter()
        .map(String::as_str)
        .chain(family)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn fit(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A patient id: the Patient's own id when it is a UUID v4, else one derived from it,
/// so importing again finds the same patient.
fn patient_id(id: &str) -> PatientId {
    if let Ok(uuid) = id.parse::<uuid::Uuid>()
        && uuid.get_version() == Some(uuid::Version::Random)
    {
        return PatientId(uuid);
    }
    let hash = Hash::of_parts(&[b"healthchain fhir patient", id.as_bytes()]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    PatientId::from_random_bytes(bytes)
}

struct Reader<'a> {
    entries: &'a [super::model::Entry],
    /// Entry index by `fullUrl` and by `Type/id`.
    index: HashMap<String, usize>,
    skipped: BTreeMap<String, usize>,
}

impl Reader<'_> {
    fn error(&self, index: usize, reason: impl Into<String>) -> BundleError {
        let entry = &self.entries[index];
        BundleError::Entry {
            index,
            url: entry
                .full_url
                .as_ref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default(),
            resource: entry
                .resource
                .as_ref()
                .and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str)
                .unwrap_or("no resource")
                .to_string(),
            reason: reason.into(),
        }
    }

    fn typed<T: DeserializeOwned>(&self, index: usize) -> Result<T, BundleError> {
        let value = self.entries[index].resource.clone().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| self.error(index, e.to_string()))
    }

    fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// The entry a reference names, if it is in the bundle.
    fn resolve(&self, reference: Option<&super::model::Reference>) -> Option<usize> {
        let target = reference?.reference.as_deref()?;
        self.index.get(target).copied()
    }

    fn date(
        &self,
        index: usize,
        field: &str,
        text: Option<&str>,
    ) -> Result<Option<ClinicalDate>, BundleError> {
        text.map(|t| ClinicalDate::parse(t).map_err(|e| self.error(index, format!("{field}: {e}"))))
            .transpose()
    }

    /// Where entry `index` came from: its `Type/id`, or its `fullUrl` when it has no
    /// id. An import finds what it wrote by this, so an entry with neither is refused.
    fn source(
        &self,
        index: usize,
        kind: &str,
        id: Option<&str>,
    ) -> Result<Option<SourceId>, BundleError> {
        let Some(id) = id.or(self.entries[index].full_url.as_deref()) else {
            return Err(self.error(
                index,
                "a record needs an id or a fullUrl, so that importing it again finds it",
            ));
        };
        SourceId::new(kind, id)
            .map(Some)
            .map_err(|e| self.error(index, format!("id: {e}")))
    }

    /// The first coding with a system and a code, checked against the limits.
    fn coding(
        &self,
        index: usize,
        field: &str,
        concept: Option<&CodeableConcept>,
    ) -> Result<Option<clinical::Coding>, BundleError> {
        let Some(c) = concept.and_then(|c| {
            c.coding
                .iter()
                .find(|c| c.system.is_some() && c.code.is_some())
        }) else {
            return Ok(None);
        };
        let coding = to_coding(c);
        coding
            .check_form()
            .map_err(|e| self.error(index, format!("{field}: {e}")))?;
        Ok(Some(coding))
    }

    fn quantity(
        &self,
        index: usize,
        field: &str,
        q: &Quantity,
    ) -> Result<Option<clinical::Quantity>, BundleError> {
        let Some(value) = &q.value else {
            return Ok(None);
        };
        let value = Decimal::parse(&value.to_string())
            .map_err(|e| self.error(index, format!("{field}: {e}")))?;
        let ucum = match (&q.system, &q.code) {
            (Some(system), Some(code)) if system == clinical::UCUM => Some(code.clone()),
            _ => None,
        };
        let unit = q
            .unit
            .clone()
            .or_else(|| q.code.clone())
            .unwrap_or_default();
        let quantity = clinical::Quantity { value, unit, ucum };
        let check = clinical::Observation {
            code: clinical::Coding::new("x", "x", ""),
            value: Some(ObservationValue::Quantity(quantity.clone())),
            range: None,
            interpretation: None,
            effective: None,
            source: None,
        };
        check_observation(&check).map_err(|e| self.error(index, format!("{field}: {e}")))?;
        Ok(Some(quantity))
    }
}

fn to_coding(c: &Coding) -> clinical::Coding {
    clinical::Coding {
        system: c.system.clone().unwrap_or_default(),
        code: c.code.clone().unwrap_or_default(),
        display: c.display.clone().unwrap_or_default(),
    }
}

fn check_observation(o: &clinical::Observation) -> Result<(), health_workflow::EventError> {
    Body::Results {
        results: "x".into(),
        reports: vec![LabReport {
            observations: vec![o.clone()],
            ..LabReport::default()
        }],
    }
    .check_form()
}

fn has_code(concepts: &[CodeableConcept], code: &str) -> bool {
    concepts
        .iter()
        .flat_map(|c| &c.coding)
        .any(|c| c.code.as_deref() == Some(code))
}

/// Reads one bundle into a plan.
pub(crate) fn plan(json: &[u8]) -> Result<PatientPlan, BundleError> {
    let bundle: Bundle =
        serde_json::from_slice(json).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    if bundle.resource_type != "Bundle" {
        return Err(BundleError::NotABundle(format!(
            "its resourceType is '{}'",
            bundle.resource_type
        )));
    }
    let mut index = HashMap::new();
    for (i, entry) in bundle.entry.iter().enumerate() {
        if let Some(url) = &entry.full_url {
            index.insert(url.clone(), i);
        }
        let resource = entry.resource.as_ref();
        let kind = resource
            .and_then(|r| r.get("resourceType"))
            .and_then(Value::as_str);
        let id = resource.and_then(|r| r.get("id")).and_then(Value::as_str);
        if let (Some(kind), Some(id)) = (kind, id) {
            index.insert(format!("{kind}/{id}"), i);
        }
    }
    let mut r = Reader {
        entries: &bundle.entry,
        index,
        skipped: BTreeMap::new(),
    };
    let mut patients = Vec::new();
    let mut encounters = Vec::new();
    let mut conditions = Vec::new();
    let mut observations = Vec::new();
    let mut reports = Vec::new();
    let mut requests = Vec::new();
    let mut dispenses = Vec::new();
    for (i, entry) in bundle.entry.iter().enumerate() {
        let Some(resource) = &entry.resource else {
            return Err(r.error(i, "the entry has no resource"));
        };
        let Some(kind) = resource.get("resourceType").and_then(Value::as_str) else {
            return Err(r.error(i, "the resource has no resourceType"));
        };
        match kind {
            "Patient" => patients.push((i, r.typed::<Patient>(i)?)),
            "Encounter" => encounters.push((i, r.typed::<Encounter>(i)?)),
            "Condition" => conditions.push((i, r.typed::<Condition>(i)?)),
            "Observation" => observations.push((i, r.typed::<Observation>(i)?)),
            "DiagnosticReport" => reports.push((i, r.typed::<DiagnosticReport>(i)?)),
            "MedicationRequest" => requests.push((i, r.typed::<MedicationRequest>(i)?)),
            "MedicationDispense" => dispenses.push((i, r.typed::<MedicationDispense>(i)?)),
            other => r.skip(format!("{other}: no ledger event records it")),
        }
    }
    let [(pi, patient)] =
        <[_; 1]>::try_from(patients).map_err(|p| BundleError::Patients(p.len()))?;
    let (patient_id, name, details) = read_patient(&r, pi, &patient)?;

    // Encounters, each a visit.
    let mut visits: Vec<(usize, VisitPlan, Vec<LabReport>)> = Vec::new();
    let mut visit_of: HashMap<usize, usize> = HashMap::new();
    for (i, e) in &encounters {
        let kind = r.coding(*i, "type", e.kind.first())?;
        let notes = e
            .kind
            .first()
            .and_then(|k| {
                k.text
                    .clone()
                    .or_else(|| k.coding.first().and_then(|c| c.display.clone()))
            })
            .unwrap_or_default();
        let class = e.class.as_ref().and_then(|c| c.code.clone());
        if let Some(class) = &class {
            health_workflow::clinical::Coding::new("x", class, "")
                .check_form()
                .map_err(|err| r.error(*i, format!("class: {err}")))?;
        }
        let period = e.period.clone().unwrap_or_default();
        let visit = Visit {
            class,
            kind,
            start: r.date(*i, "period.start", period.start.as_deref())?,
            end: r.date(*i, "period.end", period.end.as_deref())?,
            conditions: Vec::new(),
            source: r.source(*i, "Encounter", e.id.as_deref())?,
        };
        visit_of.insert(*i, visits.len());
        visits.push((
            *i,
            VisitPlan {
                notes: fit(&notes, limits::MAX_NOTES),
                visit,
                orders: Vec::new(),
                prescriptions: Vec::new(),
            },
            Vec::new(),
        ));
    }
    let encounter_of = |r: &Reader<'_>,
                        i: usize,
                        reference: Option<&super::model::Reference>|
     -> Result<Option<usize>, BundleError> {
        match reference {
            None => Ok(None),
            Some(reference) => match r.resolve(Some(reference)).and_then(|e| visit_of.get(&e)) {
                Some(v) => Ok(Some(*v)),
                None => Err(r.error(
                    i,
                    format!(
                        "encounter {} is not an Encounter of this bundle",
                        reference.reference.as_deref().unwrap_or("(no reference)")
                    ),
                )),
            },
        }
    };

    for (i, c) in &conditions {
        let Some(v) = encounter_of(&r, *i, c.encounter.as_ref())? else {
            r.skip("Condition: not tied to an encounter");
            continue;
        };
        let Some(code) = r.coding(*i, "code", c.code.as_ref())? else {
            r.skip("Condition: no code");
            continue;
        };
        let conditions = &mut visits[v].1.visit.conditions;
        if conditions.len() >= limits::MAX_CONDITIONS {
            r.skip(format!(
                "Condition: above {} in one encounter",
                limits::MAX_CONDITIONS
            ));
        } else if !conditions.contains(&code) {
            conditions.push(code);
        }
    }

    // Laboratory observations, typed.
    let mut lab_observations: HashMap<usize, clinical::Observation> = HashMap::new();
    for (i, o) in &observations {
        if !has_code(&o.category, "laboratory") {
            r.skip("Observation: not a laboratory result (vital signs, surveys, ...)");
            continue;
        }
        // Its encounter must be in the bundle, whether or not a report holds it.
        encounter_of(&r, *i, o.encounter.as_ref())?;
        lab_observations.insert(*i, read_observation(&r, *i, o)?);
    }
    let mut in_report: HashSet<usize> = HashSet::new();
    for (i, d) in &reports {
        if !has_code(&d.category, "LAB") && !has_code(&d.category, "laboratory") {
            r.skip("DiagnosticReport: not of the laboratory");
            continue;
        }
        let Some(v) = encounter_of(&r, *i, d.encounter.as_ref())? else {
            r.skip("DiagnosticReport: not tied to an encounter");
            continue;
        };
        let mut members = Vec::new();
        for reference in &d.result {
            let Some(o) = r.resolve(Some(reference)) else {
                return Err(r.error(
                    *i,
                    format!(
                        "result {} is not an entry of this bundle",
                        reference.reference.as_deref().unwrap_or("(no reference)")
                    ),
                ));
            };
            match lab_observations.get(&o) {
                Some(observation) => {
                    in_report.insert(o);
                    members.push(observation.clone());
                }
                None => r.skip("DiagnosticReport result: not a laboratory Observation"),
            }
        }
        let report = LabReport {
            code: r.coding(*i, "code", d.code.as_ref())?,
            effective: r.date(*i, "effectiveDateTime", d.effective_date_time.as_deref())?,
            observations: members,
            source: r.source(*i, "DiagnosticReport", d.id.as_deref())?,
        };
        visits[v].2.push(report);
    }
    // Laboratory observations in no report: one report without a code per encounter.
    let mut loose: BTreeMap<usize, Vec<clinical::Observation>> = BTreeMap::new();
    for (i, o) in &observations {
        if in_report.contains(i) {
            continue;
        }
        let Some(observation) = lab_observations.remove(i) else {
            continue;
        };
        match encounter_of(&r, *i, o.encounter.as_ref())? {
            Some(v) => loose.entry(v).or_default().push(observation),
            None => r.skip("Observation: laboratory result tied to no encounter"),
        }
    }
    for (v, observations) in loose {
        visits[v].2.push(LabReport {
            observations,
            ..LabReport::default()
        });
    }

    // Prescriptions, and which the bundle shows dispensed.
    let mut dispensed: HashSet<usize> = HashSet::new();
    for (i, d) in &dispenses {
        match d
            .authorizing_prescription
            .iter()
            .find_map(|p| r.resolve(Some(p)))
        {
            Some(request) => {
                dispensed.insert(request);
            }
            None => {
                let _ = i;
                r.skip("MedicationDispense: its MedicationRequest is not in the bundle");
            }
        }
    }
    let mut loose_prescriptions = Vec::new();
    for (i, m) in &requests {
        if matches!(
            m.status.as_deref(),
            Some("entered-in-error" | "cancelled" | "draft")
        ) {
            r.skip("MedicationRequest: cancelled, draft or entered in error");
            continue;
        }
        let Some(plan) = read_prescription(&r, *i, m, dispensed.contains(i))? else {
            r.skip("MedicationRequest: no medication code or text (a medication reference)");
            continue;
        };
        match encounter_of(&r, *i, m.encounter.as_ref())? {
            Some(v) => visits[v].1.prescriptions.push(plan),
            None => loose_prescriptions.push(plan),
        }
    }
    loose_prescriptions.sort_by(|a, b| a.coded.authored.cmp(&b.coded.authored));

    let mut plans = Vec::with_capacity(visits.len());
    for (_, mut visit, reports) in visits {
        fit_notes(&mut visit, &mut r);
        visit.orders = orders_of(reports, &mut r);
        plans.push(visit);
    }
    // Oldest first; a visit without a start keeps its place after the dated ones.
    plans.sort_by(|a, b| match (&a.visit.start, &b.visit.start) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    Ok(PatientPlan {
        patient_id,
        name,
        details,
        visits: plans,
        prescriptions: loose_prescriptions,
        skipped: r.skipped,
    })
}

/// Drops the last conditions of a visit whose sealed notes would be above the body
/// limit, counting them as skipped.
fn fit_notes(visit: &mut VisitPlan, r: &mut Reader<'_>) {
    let fits = |v: &VisitPlan| {
        Body::Notes {
            notes: v.notes.clone(),
            visit: v.visit.clone(),
        }
        .check_form()
        .is_ok()
    };
    while !fits(visit) && visit.visit.conditions.pop().is_some() {
        r.skip("Condition: the consultation's sealed notes are full");
    }
}

fn read_patient(
    r: &Reader<'_>,
    i: usize,
    patient: &Patient,
) -> Result<(PatientId, String, PatientDetails), BundleError> {
    let Some(id) = patient.id.as_deref() else {
        return Err(r.error(i, "the Patient has no id"));
    };
    let name = patient
        .name
        .iter()
        .find(|n| n.use_.as_deref() == Some("official"))
        .or_else(|| patient.name.first());
    let family = name.and_then(|n| n.family.clone());
    let given = name.map(|n| n.given.clone()).unwrap_or_default();
    let display = match name.and_then(|n| n.text.clone()) {
        Some(text) => text,
        None => display_name(&given, family.as_deref()),
    };
    let display = if display.trim().is_empty() {
        format!("Patient {id}")
    } else {
        display
    };
    let gender = match patient.gender.as_deref() {
        None => None,
        Some(code) => Some(Gender::from_code(code).ok_or_else(|| {
            r.error(
                i,
                format!("gender '{code}' is not male, female, other or unknown"),
            )
        })?),
    };
    let details = PatientDetails {
        family,
        given,
        birth_date: r.date(i, "birthDate", patient.birth_date.as_deref())?,
        gender,
    };
    Body::Demographics {
        name: display.clone(),
        details: details.clone(),
    }
    .check_form()
    .map_err(|e| r.error(i, e.to_string()))?;
    Ok((patient_id(id), display, details))
}

fn read_observation(
    r: &Reader<'_>,
    i: usize,
    o: &Observation,
) -> Result<clinical::Observation, BundleError> {
    let Some(code) = r.coding(i, "code", o.code.as_ref())? else {
        return Err(r.error(i, "an Observation needs a code with a system"));
    };
    let value = if let Some(q) = &o.value_quantity {
        r.quantity(i, "valueQuantity", q)?
            .map(ObservationValue::Quantity)
    } else if let Some(c) = &o.value_codeable_concept {
        match r.coding(i, "valueCodeableConcept", Some(c))? {
            Some(coding) => Some(ObservationValue::Coded(coding)),
            None => c.text.clone().map(ObservationValue::Text),
        }
    } else {
        o.value_string.clone().map(ObservationValue::Text)
    };
    let range = match o.reference_range.first() {
        Some(range) => {
            let low = range
                .low
                .as_ref()
                .map(|q| r.quantity(i, "referenceRange.low", q))
                .transpose()?
                .flatten();
            let high = range
                .high
                .as_ref()
                .map(|q| r.quantity(i, "referenceRange.high", q))
                .transpose()?
                .flatten();
            (low.is_some() || high.is_some()).then_some(clinical::ReferenceRange { low, high })
        }
        None => None,
    };
    let observation = clinical::Observation {
        code,
        value,
        range,
        interpretation: r.coding(i, "interpretation", o.interpretation.first())?,
        effective: r.date(i, "effectiveDateTime", o.effective_date_time.as_deref())?,
        source: r.source(i, "Observation", o.id.as_deref())?,
    };
    check_observation(&observation).map_err(|e| r.error(i, e.to_string()))?;
    Ok(observation)
}

fn read_prescription(
    r: &Reader<'_>,
    i: usize,
    m: &MedicationRequest,
    dispensed: bool,
) -> Result<Option<PrescriptionPlan>, BundleError> {
    let concept = m.medication_codeable_concept.as_ref();
    let code = r.coding(i, "medicationCodeableConcept", concept)?;
    let medication = concept
        .and_then(|c| c.text.clone())
        .or_else(|| code.as_ref().map(|c| c.label()));
    let Some(medication) = medication else {
        return Ok(None);
    };
    let dosage = m.dosage_instruction.first();
    let dosage_text = dosage
        .and_then(|d| d.text.clone())
        .or_else(|| dosage.map(describe_dosage))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "as directed".to_string());
    let instructions: Vec<String> = dosage
        .map(|d| {
            d.additional_instruction
                .iter()
                .filter_map(|c| {
                    c.text
                        .clone()
                        .or_else(|| c.coding.first().and_then(|c| c.display.clone()))
                })
                .chain(d.patient_instruction.clone())
                .collect()
        })
        .unwrap_or_default();
    let plan = PrescriptionPlan {
        medication: fit(&medication, limits::MAX_MEDICATION),
        dosage: fit(&dosage_text, limits::MAX_DOSAGE),
        instructions: fit(&instructions.join("; "), limits::MAX_INSTRUCTIONS),
        coded: MedicationCode {
            code,
            authored: r.date(i, "authoredOn", m.authored_on.as_deref())?,
            source: r.source(i, "MedicationRequest", m.id.as_deref())?,
        },
        dispensed,
    };
    Ok(Some(plan))
}

/// A dosage without text, in words: `1 dose, 3 times every 1 d`.
fn describe_dosage(d: &super::model::Dosage) -> String {
    let dose = d
        .dose_and_rate
        .first()
        .and_then(|r| r.dose_quantity.as_ref())
        .and_then(|q| q.value.as_ref())
        .map(|v| {
            match d
                .dose_and_rate
                .first()
                .and_then(|r| r.dose_quantity.as_ref())
                .and_then(|q| q.unit.clone())
            {
                Some(unit) => format!("{v} {unit}"),
                None => format!("{v} dose"),
            }
        });
    let repeat = d
        .timing
        .as_ref()
        .and_then(|t| t.repeat.as_ref())
        .and_then(|r| {
            let frequency = r.frequency.as_ref()?;
            let period = r.period.as_ref()?;
            Some(format!(
                "{frequency} times every {period} {}",
                r.period_unit.as_deref().unwrap_or("")
            ))
        });
    [dose, repeat]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
        .trim()
        .to_string()
}

mod orders;
use orders::orders_of;

#[cfg(test)]
mod tests;
