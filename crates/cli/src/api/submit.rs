//! Submission in batches (`POST /txs/batch`) and a block's transaction ids
//! (`GET /blocks/{id}/txids`): what a load generator or a busy integrator uses instead
//! of one request per transaction and the full block view.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use health_workflow::HealthTx;
use ledger_core::sealed::SealedBody;
use ledger_core::{BlockHash, codec};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, ApiState, read_blocks, refused_kind};
use crate::fhir::write::sealed_refs;

/// Most transactions in one `POST /txs/batch`.
pub(crate) const MAX_BATCH_TXS: usize = 4_096;

/// Largest body of a `POST /txs/batch`.
pub(crate) const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The content type of a batch of transactions with their sealed bodies: the canonical
/// encoding of a sequence of (transaction, its sealed bodies) pairs.
pub(crate) const SEALED_BATCH: &str = "application/vnd.healthchain.sealed-batch";

/// A transaction and the sealed bodies it names, in the order of its sealed
/// references.
type Sealed = (HealthTx, Vec<SealedBody>);

/// One transaction's verdict in a batch: its id if it entered the mempool, otherwise
/// why not.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verdict {
    /// The transaction's id, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    /// The refusal's kind (`refused:StaleNonce`, ...), when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The refusal in words, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// What `POST /txs/batch` answers: how many entered the mempool, and each verdict in
/// the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchSubmitted {
    /// How many entered the mempool.
    pub(crate) accepted: usize,
    /// Each transaction's verdict, in order.
    pub(crate) results: Vec<Verdict>,
}

/// A block's place and its transaction ids (`GET /blocks/{id}/txids`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockTxIds {
    /// Height.
    pub(crate) height: u64,
    /// Block hash.
    pub(crate) hash: String,
    /// Parent hash.
    pub(crate) prev: String,
    /// Block time, Unix milliseconds.
    pub(crate) timestamp: u64,
    /// The transaction ids, in order.
    pub(crate) txids: Vec<String>,
}

/// Decodes a batch: a JSON array of transactions, the canonical encoding of a
/// sequence of them, or ([`SEALED_BATCH`]) of (transaction, sealed bodies) pairs. Each
/// body must be the one its transaction names at its place.
fn decode_batch(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Sealed>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with(SEALED_BATCH) {
        let items: Vec<Sealed> = codec::decode(body, MAX_BATCH_BYTES).map_err(|e| {
            ApiError::BadRequest(format!(
                "not the canonical bytes of a sequence of transactions with their sealed bodies: {e}"
            ))
        })?;
        check_count(items.len())?;
        for (index, (tx, bodies)) in items.iter().enumerate() {
            let refs = sealed_refs(tx);
            if bodies.len() != refs.len() {
                return Err(ApiError::BadRequest(format!(
                    "transaction {index} names {} sealed bodies; {} were sent",
                    refs.len(),
                    bodies.len()
                )));
            }
            for (place, ((reference, _), body)) in refs.iter().zip(bodies).enumerate() {
                body.check(reference).map_err(|e| {
                    ApiError::BadRequest(format!(
                        "body {place} of transaction {index} is not the one it names: {e}"
                    ))
                })?;
            }
        }
        return Ok(items);
    }
    let json = content_type.starts_with("application/json");
    let txs: Vec<HealthTx> = if json {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("not an array of transactions: {e}")))?
    } else {
        codec::decode(body, MAX_BATCH_BYTES).map_err(|e| {
            ApiError::BadRequest(format!(
                "not the canonical bytes of a sequence of transactions: {e}"
            ))
        })?
    };
    check_count(txs.len())?;
    Ok(txs.into_iter().map(|tx| (tx, Vec::new())).collect())
}

fn check_count(count: usize) -> Result<(), ApiError> {
    if count > MAX_BATCH_TXS {
        return Err(ApiError::BadRequest(format!(
            "{count} transactions in one batch; at most {MAX_BATCH_TXS}"
        )));
    }
    Ok(())
}

/// Submits up to 4,096 transactions at once: a JSON array, the canonical encoding of a
/// sequence, or (content type `application/vnd.healthchain.sealed-batch`) of
/// (transaction, sealed bodies) pairs, whose bodies the node keeps and pushes to the
/// members they are sealed to. Their signatures are verified as one batch; each
/// verdict comes back in order. A full admission queue refuses the whole batch with
/// 503 and `Retry-After`, taking nothing.
#[utoipa::path(post, path = "/txs/batch", request_body(content = String, description = "JSON array of transactions, or their canonical encoding as a sequence"),
    responses((status = 200, body = BatchSubmitted), (status = 400), (status = 413), (status = 503, description = "busy: retry later")))]
pub(super) async fn submit_batch(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<BatchSubmitted> {
    let body = body?;
    let items = decode_batch(&headers, &body)?;
    if items.iter().any(|(_, bodies)| !bodies.is_empty()) {
        // The node serves bodies from its vault: they go in before the transactions.
        let vault = state.vault.clone();
        let kept = items
            .iter()
            .flat_map(|(tx, bodies)| {
                sealed_refs(tx)
                    .into_iter()
                    .zip(bodies.clone())
                    .map(|((reference, label), body)| (reference, label, body))
            })
            .collect::<Vec<_>>();
        tokio::task::spawn_blocking(move || vault.keep_all(&kept))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(format!("cannot keep a sealed body: {e}")))?;
    }
    let verdicts = state.handle.submit_batch(items).await?;
    let accepted = verdicts.iter().filter(|v| v.is_ok()).count();
    let results = verdicts
        .into_iter()
        .map(|verdict| match verdict {
            Ok(id) => Verdict {
                id: Some(id.to_string()),
                error: None,
                message: None,
            },
            Err(error) => Verdict {
                id: None,
                error: Some(refused_kind(&error)),
                message: Some(error.to_string()),
            },
        })
        .collect();
    Ok(Json(BatchSubmitted { accepted, results }))
}

/// A best-chain block's transaction ids, by height or hash: what a client that waits
/// for its transactions reads, without the full view of each one.
#[utoipa::path(get, path = "/blocks/{id}/txids", params(("id" = String, Path, description = "height, or 64 hex digits")),
    responses((status = 200, body = BlockTxIds), (status = 400), (status = 404)))]
pub(super) async fn block_txids(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<BlockTxIds> {
    let hash: BlockHash = super::find_block(&state, &id).await?;
    let block = read_blocks(&state.handle, vec![hash]).await?;
    let block = &block[0];
    Ok(Json(BlockTxIds {
        height: block.header.height.0,
        hash: hash.to_string(),
        prev: block.header.prev.to_string(),
        timestamp: block.header.timestamp.0,
        txids: block
            .transactions
            .iter()
            .map(|tx| tx.id().to_string())
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use health_workflow::demo_keypair;
    use ledger_core::{Amount, Timestamp, Transaction, TxBody};

    fn transfer(nonce: u64) -> HealthTx {
        let genesis = health_workflow::demo_genesis().hash();
        Transaction::new_signed(
            &genesis,
            &demo_keypair("dr_alice"),
            nonce,
            Timestamp(nonce),
            TxBody::Transfer {
                to: demo_keypair("lab_tech_bob").account(),
                amount: Amount(1),
            },
        )
    }

    fn json() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[test]
    fn a_batch_decodes_from_json_or_canonical_bytes_alike() {
        let txs: Vec<HealthTx> = (1..=3).map(transfer).collect();
        let from_json =
            decode_batch(&json(), &serde_json::to_vec(&txs).expect("json")).expect("a JSON batch");
        let from_bytes =
            decode_batch(&HeaderMap::new(), &codec::encode(&txs)).expect("a canonical batch");
        let bare: Vec<Sealed> = txs.iter().map(|t| (t.clone(), Vec::new())).collect();
        assert_eq!(from_json, bare);
        assert_eq!(from_bytes, bare);
    }

    #[test]
    fn a_sealed_batch_must_carry_the_bodies_its_transactions_name() {
        let ledger = ledger_core::Ledger::new(
            health_workflow::demo_genesis(),
            health_workflow::HealthPolicy,
        )
        .expect("the demo genesis");
        let doctor = health_workflow::Actor::new(&ledger, "dr_alice", demo_keypair("dr_alice"))
            .expect("a member");
        let register = |n: u8| {
            doctor
                .register_patient(
                    &ledger,
                    health_workflow::PatientId::from_random_bytes([n; 16]),
                    "Ada Lovelace",
                    health_workflow::clinical::PatientDetails::default(),
                    Timestamp(1),
                    &mut rand::rng(),
                )
                .expect("sealed")
        };
        let (a, b) = (register(1), register(2));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SEALED_BATCH));
        let good = vec![(a.tx.clone(), a.bodies.clone()), (transfer(1), Vec::new())];
        let decoded = decode_batch(&headers, &codec::encode(&good)).expect("a sealed batch");
        assert_eq!(decoded, good);
        // Another registration's body, a missing body, an extra body: all refused.
        let swapped = vec![(a.tx.clone(), b.bodies.clone())];
        let missing = vec![(a.tx.clone(), Vec::new())];
        let extra = vec![(transfer(1), a.bodies.clone())];
        for (batch, says) in [
            (swapped, "is not the one it names"),
            (missing, "names 1 sealed bodies; 0 were sent"),
            (extra, "names 0 sealed bodies; 1 were sent"),
        ] {
            let refused = decode_batch(&headers, &codec::encode(&batch));
            assert!(
                matches!(&refused, Err(ApiError::BadRequest(m)) if m.contains(says)),
                "{says}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_batch_over_the_count_limit_or_undecodable_is_a_bad_request() {
        let txs: Vec<HealthTx> = vec![transfer(1); MAX_BATCH_TXS + 1];
        let too_many = decode_batch(&HeaderMap::new(), &codec::encode(&txs));
        assert!(matches!(too_many, Err(ApiError::BadRequest(m)) if m.contains("at most 4096")));
        let most: Vec<HealthTx> = vec![transfer(1); MAX_BATCH_TXS];
        assert!(decode_batch(&HeaderMap::new(), &codec::encode(&most)).is_ok());
        assert!(matches!(
            decode_batch(&json(), b"{\"not\": \"an array\"}"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            decode_batch(&HeaderMap::new(), &[0xff; 16]),
            Err(ApiError::BadRequest(_))
        ));
    }
}
