//! The patient registry CSV, derived from the chain.
//!
//! Columns, as in the original project: `patient_id,patient_name,registered_by,timestamp`,
//! one row per registered patient in registration (chain) order. `registered_by` is
//! the registering doctor's username (the account in hex if it is not in the roster);
//! `timestamp` is the registration block's time in RFC 3339, UTC, with milliseconds
//! (`2025-03-26T09:30:00.000Z`), formatted here so the crate needs no date library.
//!
//! Names are sealed on the chain: a node writes them only where it may read the
//! patient's demographics, and [`SEALED_NAME`] elsewhere.
//!
//! The file is meant to be opened in spreadsheets, which run a cell starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return as a formula. Such cells are written with
//! a leading `'`, which spreadsheets display as text; a cell that itself starts with
//! `'` gets one more, so [`unescape_cell`] recovers every value exactly. Quotes,
//! commas and newlines are quoted by the CSV writer as usual.

use std::io;

use ledger_core::{Genesis, Timestamp};

use crate::ids::PatientId;
use crate::state::{HealthState, Patient};

/// The header row.
pub const REGISTRY_HEADER: [&str; 4] = ["patient_id", "patient_name", "registered_by", "timestamp"];

/// The `patient_name` of a patient whose name this node may not read.
pub const SEALED_NAME: &str = "(sealed: demographics)";

/// Why the registry could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Writing to the output failed.
    #[error("cannot write the patient registry: {0}")]
    Io(#[from] io::Error),
    /// The CSV encoder failed.
    #[error("cannot encode the patient registry: {0}")]
    Csv(#[from] csv::Error),
}

/// One row of the registry, unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRow {
    /// The patient.
    pub patient_id: PatientId,
    /// The patient's name.
    pub patient_name: String,
    /// The registering doctor's username.
    pub registered_by: String,
    /// The registration block's time, RFC 3339.
    pub timestamp: String,
}

/// The registry rows of `state`, in registration order, each patient's name as
/// `name_of` reads it (the name is sealed: only nodes that may read demographics have
/// it), [`SEALED_NAME`] where it returns `None`. A patient who asked for erasure has no
/// row.
pub fn registry_rows(
    state: &HealthState,
    genesis: &Genesis,
    mut name_of: impl FnMut(&Patient) -> Option<String>,
) -> Vec<RegistryRow> {
    state
        .patients()
        .filter(|p| !p.is_erased())
        .map(|p| RegistryRow {
            patient_id: p.id,
            patient_name: name_of(p).unwrap_or_else(|| SEALED_NAME.to_string()),
            registered_by: genesis
                .member(&p.registered.author)
                .map_or_else(|| p.registered.author.to_string(), |m| m.username.clone()),
            timestamp: rfc3339(p.registered.time),
        })
        .collect()
}

/// Writes the registry CSV of `state` (header included) to `out`, escaping cells a
/// spreadsheet would read as formulas.
pub fn write_registry<W: io::Write>(
    state: &HealthState,
    genesis: &Genesis,
    name_of: impl FnMut(&Patient) -> Option<String>,
    out: W,
) -> Result<(), RegistryError> {
    write_rows(&registry_rows(state, genesis, name_of), out)
}

/// Writes registry `rows` as CSV (header included) to `out`, escaping cells a
/// spreadsheet would read as formulas: for a front end that reads the names apart from
/// the ledger (from [`registry_rows`] built with no names, say).
pub fn write_rows<W: io::Write>(rows: &[RegistryRow], out: W) -> Result<(), RegistryError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(REGISTRY_HEADER)?;
    for row in rows {
        let id = row.patient_id.to_string();
        writer.write_record([
            escape_cell(&id).as_ref(),
            escape_cell(&row.patient_name).as_ref(),
            escape_cell(&row.registered_by).as_ref(),
            escape_cell(&row.timestamp).as_ref(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

/// Whether a spreadsheet could take a cell starting with `c` for a formula (or it is
/// the escape character itself).
fn needs_escape(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r' | '\'')
}

/// The cell as written: `value` with a leading `'` if it starts with `=`, `+`, `-`,
/// `@`, tab, carriage return or `'`.
pub fn escape_cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some(c) if needs_escape(c) => format!("'{value}").into(),
        _ => value.into(),
    }
}

/// The value of a cell written by [`escape_cell`]: one leading `'` removed.
pub fn unescape_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// `timestamp` as RFC 3339 in UTC with milliseconds, e.g. `2025-03-26T00:00:00.000Z`.
pub fn rfc3339(timestamp: Timestamp) -> String {
    let ms = timestamp.millis();
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_742_947_200_000)),
            "2025-03-26T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000 + 3_723_456)),
            "2000-02-29T01:02:03.456Z"
        );
        assert_eq!(
            rfc3339(Timestamp(4_102_444_799_999)),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn escaping_is_reversible_and_only_touches_risky_cells() {
        for value in [
            "=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'quoted", "Jane", "",
        ] {
            assert_eq!(unescape_cell(&escape_cell(value)), value);
        }
        assert_eq!(escape_cell("Jane"), "Jane");
        assert_eq!(escape_cell("=1"), "'=1");
    }
}
