//! `GET /patients/{id}/fhir`: a patient's record as a FHIR R4 Bundle, as the
//! logged-in member may read it (see [`crate::fhir::export`]).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, patient_events};
use crate::fhir::export::{ExportReader, export};

/// A patient's record as a FHIR R4 (4.0.1) Bundle of type `collection`, holding only
/// what the logged-in member may read. Without a valid token: 401.
#[utoipa::path(get, path = "/patients/{id}/fhir",
    params(("id" = String, Path, description = "the patient id (UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "a FHIR R4 Bundle", content_type = "application/fhir+json"),
        (status = 400), (status = 401), (status = 404)))]
pub(super) async fn patient_fhir(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = state
        .sessions
        .viewer(&headers)?
        .ok_or_else(|| ApiError::Unauthorized("log in first: POST /login".into()))?;
    let (patient, genesis, records) = patient_events(&state, &id).await?;
    let vault = state.vault.clone();
    let reader_of = std::sync::Arc::clone(&viewer);
    // Opening bodies reads the vault: off the async workers.
    let (bundle, opened) = tokio::task::spawn_blocking(move || {
        let viewer = reader_of;
        let opened = super::reads::opened(genesis.hash(), &viewer, &records, &vault);
        let read = |hash: &ledger_core::Hash| vault.get(hash).ok().flatten();
        let reader = ExportReader {
            reader: health_workflow::BodyReader::new(genesis.hash(), viewer.account, &viewer.key),
            vault: &read,
        };
        (export(&genesis, patient, &records, &reader).bundle, opened)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the export failed: {e}")))?;
    super::reads::record(&state.handle, &state.reads, &viewer, patient, opened);
    let body = serde_json::to_vec(&bundle)
        .map_err(|e| ApiError::Internal(format!("writing the Bundle failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/fhir+json")], body).into_response())
}
