//! Coded clinical data that a sealed [`Body`](crate::Body) may carry beside its free
//! text: codes (LOINC, SNOMED CT, RxNorm), quantities with UCUM units, reference
//! ranges, interpretations, clinical dates, and where a record came from.
//!
//! Every field here is optional in the sense that a body written at the REPL carries
//! none of it; a body imported from FHIR carries what the source said. Like the free
//! text, these values are sealed: no validator reads them, so their limits are checked
//! before sealing ([`Body::check_form`](crate::Body::check_form)).

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::event::EventError;
use crate::limits;

/// The LOINC code system, for laboratory tests and observations.
pub const LOINC: &str = "http://loinc.org";
/// The SNOMED CT code system, for conditions and encounter types.
pub const SNOMED_CT: &str = "http://snomed.info/sct";
/// The RxNorm code system, for medications.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// The UCUM system of units.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// A code from a code system, with the text it stands for.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub struct Coding {
    /// The code system's URI ([`LOINC`], [`SNOMED_CT`], [`RXNORM`], ...).
    pub system: String,
    /// The code (1 to [`MAX_CODE`](limits::MAX_CODE) bytes).
    pub code: String,
    /// What it means, for people (may be empty).
    pub display: String,
}

impl Coding {
    /// A code of `system` with its display text.
    pub fn new(system: &str, code: &str, display: &str) -> Coding {
        Coding {
            system: system.to_string(),
            code: code.to_string(),
            display: display.to_string(),
        }
    }

    /// Checks its limits.
    pub fn check_form(&self) -> Result<(), EventError> {
        text("code system", &self.system, true, limits::MAX_CODE_SYSTEM)?;
        text("code", &self.code, true, limits::MAX_CODE)?;
        text("code display", &self.display, false, limits::MAX_DISPLAY)
    }

    /// The display text, or `system|code` when there is none.
    pub fn label(&self) -> String {
        if self.display.is_empty() {
            format!("{}|{}", self.system, self.code)
        } else {
            self.display.clone()
        }
    }
}

/// A clinical date or date-time as FHIR writes it: `2019`, `2019-12`, `2019-12-31`, or
/// `2019-12-31T09:10:50.395802+00:00` (seconds and a zone required, fractions
/// optional). Kept as written, so it comes back exactly as it came in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Zeroize)]
#[serde(try_from = "String", into = "String")]
pub struct ClinicalDate(String);

impl TryFrom<String> for ClinicalDate {
    type Error = DateError;
    fn try_from(text: String) -> Result<Self, DateError> {
        ClinicalDate::parse(&text)
    }
}

impl From<ClinicalDate> for String {
    fn from(date: ClinicalDate) -> String {
        date.0
    }
}

/// A text is not a FHIR date or date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD) or a date-time with seconds and a zone")]
pub struct DateError(pub String);

impl ClinicalDate {
    /// Parses a FHIR `date` or `dateTime`.
    pub fn parse(text: &str) -> Result<ClinicalDate, DateError> {
        if is_fhir_date_time(text) {
            Ok(ClinicalDate(text.to_string()))
        } else {
            Err(DateError(shorten(text)))
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The calendar date part, `YYYY[-MM[-DD]]`.
    pub fn date_part(&self) -> &str {
        self.0.split('T').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ClinicalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_fhir_date(text: &str) -> bool {
    let mut parts = text.split('-');
    let Some(year) = parts.next().and_then(|y| digits(y, 4)) else {
        return false;
    };
    let Some(month) = parts.next() else {
        return true;
    };
    let Some(month) = digits(month, 2).filter(|m| (1..=12).contains(m)) else {
        return false;
    };
    let Some(day) = parts.next() else {
        return true;
    };
    let day_ok = digits(day, 2).is_some_and(|d| d >= 1 && d <= days_in(year, month));
    day_ok && parts.next().is_none()
}

fn is_time(text: &str) -> bool {
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    let fields: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = fields.as_slice() else {
        return false;
    };
    let in_range = |v: &str, max| digits(v, 2).is_some_and(|v| v <= max);
    in_range(h, 23)
        && in_range(m, 59)
        && in_range(s, 60)
        && fraction
            .is_none_or(|f| !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()))
}

fn is_zone(text: &str) -> bool {
    if text == "Z" {
        return true;
    }
    let Some(rest) = text.strip_prefix('+').or_else(|| text.strip_prefix('-')) else {
        return false;
    };
    match rest.split_once(':') {
        Some((h, m)) => {
            digits(h, 2).is_some_and(|h| h <= 14) && digits(m, 2).is_some_and(|m| m <= 59)
        }
        None => false,
    }
}

fn is_fhir_date_time(text: &str) -> bool {
    match text.split_once('T') {
        None => is_fhir_date(text),
        Some((date, rest)) => {
            let Some(at) = rest.find(['Z', '+', '-']) else {
                return false;
            };
            date.len() == 10 && is_fhir_date(date) && is_time(&rest[..at]) && is_zone(&rest[at..])
        }
    }
}

/// A decimal number as FHIR writes it (`112.2`, `-0.5`, `1e3`), kept as written so its
/// precision survives.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
#[serde(try_from = "String", into = "String")]
pub struct Decimal(String);

impl TryFrom<String> for Decimal {
    type Error = DecimalError;
    fn try_from(text: String) -> Result<Self, DecimalError> {
        Decimal::parse(&text)
    }
}

impl From<Decimal> for String {
    fn from(decimal: Decimal) -> String {
        decimal.0
    }
}

/// A text is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a decimal number")]
pub struct DecimalError(pub String);

impl Decimal {
    /// Parses a decimal (at most 32 characters, finite).
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let mut s = text.strip_prefix('-').unwrap_or(text);
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], Some(&s[at + 1..])),
            None => (s, None),
        };
        s = mantissa;
        let (whole, fraction) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let exponent_ok = exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            all_digits(e) && e.len() <= 3
        });
        let ok = text.len() <= 32
            && all_digits(whole)
            && (whole == "0" || !whole.starts_with('0'))
            && fraction.is_none_or(all_digits)
            && exponent_ok
            && text.parse::<f64>().is_ok_and(f64::is_finite);
        if ok {
            Ok(Decimal(text.to_string()))
        } else {
            Err(DecimalError(shorten(text)))
        }
    }

    /// The number as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as a float (always finite).
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(0.0)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a record came from: a FHIR resource type and id (`Encounter/0cc9…`). An
/// import names each record it writes this way, so importing twice adds nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Zeroize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId(String);

impl TryFrom<String> for SourceId {
    type Error = EventError;
    fn try_from(text: String) -> Result<Self, EventError> {
        let source = SourceId(text);
        source.check_form()?;
        Ok(source)
    }
}

impl From<SourceId> for String {
    fn from(source: SourceId) -> String {
        source.0
    }
}

impl SourceId {
    /// `resource_type/id`, checked against [`MAX_SOURCE_ID`](limits::MAX_SOURCE_ID).
    pub fn new(resource_type: &str, id: &str) -> Result<SourceId, EventError> {
        let source = SourceId(format!("{resource_type}/{id}"));
        source.check_form()?;
        Ok(source)
    }

    /// The text, `resource_type/id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn check_form(&self) -> Result<(), EventError> {
        text("source id", &self.0, true, limits::MAX_SOURCE_ID)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Administrative gender, as FHIR names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gender {
    /// `male`.
    Male,
    /// `female`.
    Female,
    /// `other`.
    Other,
    /// `unknown`.
    Unknown,
}

impl Gender {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }

    /// Reads a FHIR code.
    pub fn from_code(code: &str) -> Option<Gender> {
        [Gender::Male, Gender::Female, Gender::Other, Gender::Unknown]
            .into_iter()
            .find(|g| g.code() == code)
    }
}

/// What a registration may say of a patient beyond the display name.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct PatientDetails {
    /// Family name.
    pub family: Option<String>,
    /// Given names, in order.
    pub given: Vec<String>,
    /// Date of birth.
    pub birth_date: Option<ClinicalDate>,
    /// Administrative gender.
    #[zeroize(skip)]
    pub gender: Option<Gender>,
}

impl PatientDetails {
    fn check_form(&self) -> Result<(), EventError> {
        if let Some(family) = &self.family {
            text("family name", family, true, limits::MAX_PATIENT_NAME)?;
        }
        count("given names", self.given.len(), limits::MAX_GIVEN_NAMES)?;
        for given in &self.given {
            text("given name", given, true, limits::MAX_PATIENT_NAME)?;
        }
        Ok(())
    }
}

/// What a consultation may say beyond its notes: the visit and the conditions found.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct Visit {
    /// The encounter class code (`AMB`, `EMER`, `IMP`, ...), from HL7 v3 ActCode.
    pub class: Option<String>,
    /// What kind of visit it was (a SNOMED CT code, usually).
    pub kind: Option<Coding>,
    /// When it started.
    pub start: Option<ClinicalDate>,
    /// When it ended.
    pub end: Option<ClinicalDate>,
    /// Conditions diagnosed or noted (SNOMED CT), at most
    /// [`MAX_CONDITIONS`](limits::MAX_CONDITIONS).
    pub conditions: Vec<Coding>,
    /// The source record, for an imported visit.
    pub source: Option<SourceId>,
}

impl Visit {
    fn check_form(&self) -> Result<(), EventError> {
        if let Some(class) = &self.class {
            text("encounter class", class, true, limits::MAX_CODE)?;
        }
        if let Some(kind) = &self.kind {
            kind.check_form()?;
        }
        count("conditions", self.conditions.len(), limits::MAX_CONDITIONS)?;
        self.conditions.iter().try_for_each(Coding::check_form)?;
        check_source(&self.source)
    }
}

/// A measured amount with its unit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub struct Quantity {
    /// The number.
    pub value: Decimal,
    /// The unit as people write it (may be empty).
    pub unit: String,
    /// The UCUM code of the unit, if there is one.
    pub ucum: Option<String>,
}

impl Quantity {
    fn check_form(&self) -> Result<(), EventError> {
        text("unit", &self.unit, false, limits::MAX_CODE)?;
        if let Some(ucum) = &self.ucum {
            text("UCUM code", ucum, true, limits::MAX_CODE)?;
        }
        Ok(())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match (&self.ucum, self.unit.is_empty()) {
            (_, false) => self.unit.as_str(),
            (Some(ucum), true) => ucum.as_str(),
            (None, true) => "",
        };
        if unit.is_empty() {
            write!(f, "{}", self.value)
        } else {
            write!(f, "{} {unit}", self.value)
        }
    }
}

/// An observation's value.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub enum ObservationValue {
    /// A number with a unit.
    Quantity(Quantity),
    /// A coded answer.
    Coded(Coding),
    /// Free text (at most [`MAX_DISPLAY`](limits::MAX_DISPLAY) bytes).
    Text(String),
}

/// The normal range of an observation.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub struct ReferenceRange {
    /// Lower bound.
    pub low: Option<Quantity>,
    /// Upper bound.
    pub high: Option<Quantity>,
}

/// One typed result: what was measured (LOINC), its value, the normal range and how
/// the value reads against it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub struct Observation {
    /// What was observed (LOINC, usually).
    pub code: Coding,
    /// The value; none when the test gave none (a cancelled measurement, say).
    pub value: Option<ObservationValue>,
    /// The reference range.
    pub range: Option<ReferenceRange>,
    /// How the value reads (HL7 v3 ObservationInterpretation: `H`, `L`, `N`, ...).
    pub interpretation: Option<Coding>,
    /// When it was taken.
    pub effective: Option<ClinicalDate>,
    /// The source record, for an imported observation.
    pub source: Option<SourceId>,
}

impl Observation {
    fn check_form(&self) -> Result<(), EventError> {
        self.code.check_form()?;
        match &self.value {
            Some(ObservationValue::Quantity(q)) => q.check_form()?,
            Some(ObservationValue::Coded(c)) => c.check_form()?,
            Some(ObservationValue::Text(t)) => text("value", t, false, limits::MAX_DISPLAY)?,
            None => {}
        }
        if let Some(range) = &self.range {
            range
                .low
                .iter()
                .chain(&range.high)
                .try_for_each(Quantity::check_form)?;
        }
        if let Some(interpretation) = &self.interpretation {
            interpretation.check_form()?;
        }
        check_source(&self.source)
    }

    /// One line for people: `Hemoglobin: 13.5 g/dL (H)`.
    pub fn summary(&self) -> String {
        let value = match &self.value {
            Some(ObservationValue::Quantity(q)) => q.to_string(),
            Some(ObservationValue::Coded(c)) => c.label(),
            Some(ObservationValue::Text(t)) => t.clone(),
            None => "no value".to_string(),
        };
        match &self.interpretation {
            Some(i) => format!("{}: {value} ({})", self.code.label(), i.code),
            None => format!("{}: {value}", self.code.label()),
        }
    }
}

/// A group of observations reported together (a panel: a FHIR DiagnosticReport).
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Zeroize)]
pub struct LabReport {
    /// What the panel is (LOINC, usually).
    pub code: Option<Coding>,
    /// When the specimen was taken.
    pub effective: Option<ClinicalDate>,
    /// Its observations.
    pub observations: Vec<Observation>,
    /// The source record, for an imported report.
    pub source: Option<SourceId>,
}

impl LabReport {
    fn check_form(&self) -> Result<(), EventError> {
        if let Some(code) = &self.code {
            code.check_form()?;
        }
        self.observations
            .iter()
            .try_for_each(Observation::check_form)?;
        check_source(&self.source)
    }
}

/// What a prescription may say beyond its text: the coded medication, when it was
/// written, and where it came from.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct MedicationCode {
    /// The medication (RxNorm, usually).
    pub code: Option<Coding>,
    /// When it was written.
    pub authored: Option<ClinicalDate>,
    /// The source record, for an imported prescription.
    pub source: Option<SourceId>,
}

impl MedicationCode {
    fn check_form(&self) -> Result<(), EventError> {
        if let Some(code) = &self.code {
            code.check_form()?;
        }
        check_source(&self.source)
    }
}

/// Clinical data never reaches a log by accident: its `Debug` form names the type only,
/// as [`Body`](crate::Body)'s does.
macro_rules! redacted_debug {
    ($($t:ty),*) => {
        $(impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "(redacted)"))
            }
        })*
    };
}

redacted_debug!(
    Coding,
    ClinicalDate,
    Decimal,
    SourceId,
    Gender,
    PatientDetails,
    Visit,
    Quantity,
    ObservationValue,
    ReferenceRange,
    Observation,
    LabReport,
    MedicationCode
);

/// What a test order may say beyond its name: the tests ordered, coded.
pub(crate) fn check_tests(tests: &[Coding]) -> Result<(), EventError> {
    count("tests ordered", tests.len(), limits::MAX_REPORTS)?;
    tests.iter().try_for_each(Coding::check_form)
}

/// Checks a lab result's reports and their observation count.
pub(crate) fn check_reports(reports: &[LabReport]) -> Result<(), EventError> {
    count("reports", reports.len(), limits::MAX_REPORTS)?;
    let observations = reports.iter().map(|r| r.observations.len()).sum();
    count("observations", observations, limits::MAX_OBSERVATIONS)?;
    reports.iter().try_for_each(LabReport::check_form)
}

pub(crate) fn check_details(details: &PatientDetails) -> Result<(), EventError> {
    details.check_form()
}

pub(crate) fn check_visit(visit: &Visit) -> Result<(), EventError> {
    visit.check_form()
}

pub(crate) fn check_medication(code: &MedicationCode) -> Result<(), EventError> {
    code.check_form()
}

fn check_source(source: &Option<SourceId>) -> Result<(), EventError> {
    source.as_ref().map_or(Ok(()), SourceId::check_form)
}

fn count(field: &'static str, len: usize, max: usize) -> Result<(), EventError> {
    if len > max {
        Err(EventError::TooMany { field, len, max })
    } else {
        Ok(())
    }
}

pub(crate) fn text(
    field: &'static str,
    value: &str,
    required: bool,
    max: usize,
) -> Result<(), EventError> {
    if required && value.is_empty() {
        return Err(EventError::EmptyText { field });
    }
    if value.len() > max {
        return Err(EventError::TextTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
