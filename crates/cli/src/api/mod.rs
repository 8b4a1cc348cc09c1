//! The node's HTTP API (`--api ADDR`): JSON endpoints, Prometheus metrics, a live
//! event stream and the block explorer page, on one listener (axum).
//!
//! Every answer is built from the ledger through the node's handle. Block bodies are
//! read off the node task: a query takes the hashes (and the bodies still waiting to be
//! stored) from the ledger, and a blocking task reads the rest through the store's
//! reader. Every input is bounded (see the constants) and every refusal is a typed JSON
//! error, `{"error": "<kind>", "message": "<text>"}`, with its HTTP status.
//!
//! The API shows what is public on the chain, which anyone who can reach a node may
//! sync: each sealed section of an event appears as a marker with the hash of its
//! ciphertext, never as clear text. It listens on 127.0.0.1 unless told otherwise.

mod auth;
mod events;
mod fhir;
mod listener;
mod metrics;
mod reads;
pub(crate) mod submit;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use health_workflow::{EventError, HealthTx, PatientId};
use ledger_core::{BlockHash, SharedBlock, TxError, TxId, codec, limits};
use p2p::{BlockStore, NodeEvent};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::fhir::export::ChainRecord;
use crate::launch::Handle;
use crate::repl::Logins;
use metrics::Metrics;
use p2p::Vault;
use views::{
    AccountView, BlockDetail, BlockHead, BlockSummary, MempoolView, PatientEvent, PatientView,
    Status, Submitted, TxLocation, TxView,
};

/// Most blocks one `GET /blocks` lists.
pub(crate) const MAX_BLOCKS_PER_PAGE: u64 = 100;
/// Blocks listed when no `limit` is given.
pub(crate) const DEFAULT_BLOCKS_PER_PAGE: u64 = 20;
/// Largest request body: a transaction's canonical bytes, or its JSON form (a few
/// times larger).
pub(crate) const MAX_BODY_BYTES: usize = 4 * limits::MAX_TX_BYTES;
/// Open connections at once; further ones wait in the listen queue.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Event-stream subscribers at once; one more gets 503.
pub(crate) const MAX_SUBSCRIBERS: usize = 64;
/// Events queued for one subscriber; a subscriber that falls this far behind is
/// dropped and resumes with `?from=`.
pub(crate) const SUBSCRIBER_QUEUE: usize = 256;
/// Blocks replayed to a new subscriber from its `from` height.
pub(crate) const MAX_BACKLOG: u64 = 1_000;
/// Best-chain blocks `GET /txs/{id}` searches, newest first.
pub(crate) const MAX_TX_SCAN_BLOCKS: usize = 10_000;
/// Pending transactions `GET /mempool` lists.
pub(crate) const MAX_MEMPOOL_LISTED: usize = 1_000;
/// Time limit of every request but the event stream.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The explorer page, compiled in: no asset comes from anywhere else.
const EXPLORER: &str = include_str!("explorer.html");

/// A refusal, as JSON with its status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request is malformed (a bad id, a limit out of range, undecodable bytes).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing has that id.
    #[error("{0}")]
    NotFound(String),
    /// The node refused the transaction.
    #[error("{0}")]
    Refused(TxError<EventError>),
    /// The node cannot take this now (its admission queue is full, or it has too many
    /// event-stream subscribers): retry later.
    #[error("{0}")]
    Busy(String),
    /// The node stopped.
    #[error("the node is not running")]
    Stopped,
    /// The HTTP layer refused the request (body too large, wrong content type).
    #[error("{message}")]
    Http {
        /// The status to answer with.
        status: StatusCode,
        /// Why.
        message: String,
    },
    /// This node failed (its store could not be read).
    #[error("{0}")]
    Internal(String),
    /// The request needs a logged-in member (`POST /login`), or its token is wrong.
    #[error("{0}")]
    Unauthorized(String),
}

impl ApiError {
    fn kind(&self) -> String {
        match self {
            ApiError::BadRequest(_) => "bad_request".into(),
            ApiError::NotFound(_) => "not_found".into(),
            ApiError::Refused(error) => refused_kind(error),
            ApiError::Busy(_) => "busy".into(),
            ApiError::Stopped => "stopped".into(),
            ApiError::Http { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                "too_large".into()
            }
            ApiError::Http { .. } => "bad_request".into(),
            ApiError::Internal(_) => "internal".into(),
            ApiError::Unauthorized(_) => "unauthorized".into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            // A full mempool is a moment's state, not a verdict on the transaction.
            ApiError::Refused(TxError::MempoolFull { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Busy(_) | ApiError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Http { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The kind of a refusal, as answered: `refused:` and the error's variant.
pub(crate) fn refused_kind(error: &TxError<EventError>) -> String {
    format!("refused:{}", variant(error))
}

/// An error's variant name, from its `Debug` form.
fn variant(error: &impl std::fmt::Debug) -> String {
    format!("{error:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.kind(), "message": self.to_string() });
        let mut headers = HeaderMap::new();
        if matches!(self, ApiError::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE && !matches!(self, ApiError::Stopped) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        (self.status(), headers, Json(body)).into_response()
    }
}

impl From<p2p::NodeError> for ApiError {
    fn from(error: p2p::NodeError) -> Self {
        match error {
            p2p::NodeError::Busy { .. } => ApiError::Busy(format!("{error}; retry later")),
            _ => ApiError::Stopped,
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::Http {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// What every handler shares.
#[derive(Clone)]
struct ApiState {
    handle: Handle,
    metrics: Arc<Metrics>,
    subscribers: Arc<Semaphore>,
    shutdown: CancellationToken,
    sessions: Arc<auth::Sessions>,
    vault: Vault,
    reads: Arc<reads::ReadLog>,
}

/// What the API needs to let members read their sealed records: the node's logins
/// and its vault.
pub(crate) struct Access {
    /// How members log in on this node.
    pub(crate) logins: Logins,
    /// The node's sealed bodies.
    pub(crate) vault: Vault,
}

/// Declares the bearer-token scheme `POST /login` hands out.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API, from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth),
    info(
        title = "healthchain node API",
        description = "A healthchain node: chain, mempool, balances, events."
    ),
    paths(
        status,
        blocks,
        block,
        tx,
        patient,
        records,
        fhir::patient_fhir,
        login,
        accounts,
        mempool,
        submit_tx,
        submit::submit_batch,
        submit::block_txids,
        events::events,
        metrics_text
    ),
    components(schemas(
        Status,
        BlockHead,
        BlockSummary,
        BlockDetail,
        TxView,
        TxLocation,
        PatientView,
        PatientEvent,
        AccountView,
        MempoolView,
        Submitted,
        submit::BatchSubmitted,
        submit::Verdict,
        submit::BlockTxIds,
        LoginRequest,
        LoggedIn
    ))
)]
struct ApiDoc;

/// Starts the API on `addr`; it stops when `shutdown` is cancelled. Returns the
/// address bound (with port 0, the one picked).
pub(crate) async fn start(
    handle: Handle,
    addr: SocketAddr,
    shutdown: CancellationToken,
    access: Access,
) -> anyhow::Result<SocketAddr> {
    let genesis = handle.query(|ledger| ledger.genesis().clone()).await?;
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(feed_metrics(
        handle.clone(),
        Arc::clone(&metrics),
        shutdown.clone(),
    ));
    let state = ApiState {
        handle,
        metrics,
        subscribers: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)),
        shutdown: shutdown.clone(),
        sessions: Arc::new(auth::Sessions::new(access.logins, genesis)),
        vault: access.vault,
        reads: Arc::default(),
    };
    let app = router(state);
    let listener = listener::Capped {
        listener,
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the API server stopped");
        }
    });
    Ok(local)
}

fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(explorer))
        .route("/status", get(status))
        .route("/blocks", get(blocks))
        .route("/blocks/{id}", get(block))
        .route("/txs", axum::routing::post(submit_tx))
        .route(
            "/txs/batch",
            axum::routing::post(submit::submit_batch)
                .layer(DefaultBodyLimit::max(submit::MAX_BATCH_BYTES)),
        )
        .route("/blocks/{id}/txids", get(submit::block_txids))
        .route("/txs/{id}", get(tx))
        .route("/patients/{id}", get(patient))
        .route("/patients/{id}/records", get(records))
        .route("/patients/{id}/fhir", get(fhir::patient_fhir))
        .route("/login", axum::routing::post(login))
        .route("/accounts", get(accounts))
        .route("/mempool", get(mempool))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // The event stream lives as long as its subscriber: no request timeout.
        .route("/events", get(events::events))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn explorer() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    // The page loads nothing from elsewhere, and may not.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    (headers, Html(EXPLORER))
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The node at a glance.
#[utoipa::path(get, path = "/status", responses((status = 200, body = Status)))]
async fn status(State(state): State<ApiState>) -> ApiResult<Status> {
    Ok(Json(read_status(&state.handle).await?))
}

async fn read_status(handle: &Handle) -> Result<Status, ApiError> {
    let mut status = handle
        .query(|ledger| {
            let tip = ledger.tip();
            Status {
                network: ledger.genesis().network.clone(),
                genesis: ledger.genesis_hash().to_string(),
                height: tip.height.0,
                tip: tip.hash.to_string(),
                final_height: tip.final_height.0,
                peers: 0,
                mempool: ledger.mempool().len(),
                mempool_bytes: ledger.mempool().map(|p| p.size).sum(),
                peer_addr: String::new(),
            }
        })
        .await?;
    status.peers = handle.peers().await?.len();
    status.peer_addr = handle.local_addr().to_string();
    Ok(status)
}

/// Reads best-chain or tree blocks by hash, in order, off the node task: bodies still
/// waiting to be stored come from the ledger, the rest through the store's reader.
async fn read_blocks(
    handle: &Handle,
    hashes: Vec<BlockHash>,
) -> Result<Vec<SharedBlock<health_workflow::HealthPolicy>>, ApiError> {
    let (hashes, held, reader) = handle
        .query(move |ledger| {
            let held: Vec<_> = hashes
                .iter()
                .map(|h| ledger.unstored_block(h).cloned())
                .collect();
            let reader = ledger.store().reader();
            (hashes, held, reader)
        })
        .await?;
    let Some(reader) = reader else {
        return Err(ApiError::Internal("the store has no reader".into()));
    };
    tokio::task::spawn_blocking(move || {
        hashes
            .iter()
            .zip(held)
            .map(|(hash, held)| match held {
                Some(block) => Ok(block),
                None => match reader.get(hash) {
                    Ok(Some(block)) => Ok(block),
                    Ok(None) => Err(ApiError::NotFound(format!("block {hash} is not stored"))),
                    Err(e) => Err(ApiError::Internal(format!("cannot read block {hash}: {e}"))),
                },
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `GET /blocks` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct Page {
    /// First height listed (default: the latest `limit` blocks).
    from: Option<u64>,
    /// How many, 1 to 100 (default 20).
    limit: Option<u64>,
}

/// Best-chain blocks by height, ascending.
#[utoipa::path(get, path = "/blocks", params(Page), responses(
    (status = 200, body = [BlockSummary]),
    (status = 400, description = "limit out of range")))]
async fn blocks(
    State(state): State<ApiState>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Vec<BlockSummary>> {
    let Query(page) = page?;
    let limit = page.limit.unwrap_or(DEFAULT_BLOCKS_PER_PAGE);
    if !(1..=MAX_BLOCKS_PER_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: 1 to {MAX_BLOCKS_PER_PAGE}"
        )));
    }
    let (genesis, hashes) = state
        .handle
        .query(move |ledger| {
            let chain = ledger.main_chain();
            let tip = chain.len() as u64 - 1;
            let from = page
                .from
                .unwrap_or_else(|| tip.saturating_sub(limit - 1).max(1))
                .max(1);
            let hashes: Vec<BlockHash> = chain
                .iter()
                .skip(usize::try_from(from).unwrap_or(usize::MAX))
                .take(limit as usize)
                .copied()
                .collect();
            (ledger.genesis().clone(), hashes)
        })
        .await?;
    let blocks = read_blocks(&state.handle, hashes).await?;
    Ok(Json(
        blocks
            .iter()
            .map(|b| BlockSummary::of(&genesis, b))
            .collect(),
    ))
}

/// A block by height or hash.
#[utoipa::path(get, path = "/blocks/{id}", params(("id" = String, Path, description = "height, or 64 hex digits")),
    responses((status = 200, body = BlockDetail), (status = 400), (status = 404)))]
async fn block(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<BlockDetail> {
    let hash = find_block(&state, &id).await?;
    let genesis = state.handle.query(|l| l.genesis().clone()).await?;
    let block = read_blocks(&state.handle, vec![hash]).await?;
    Ok(Json(BlockDetail::of(&genesis, &block[0])))
}

/// The hash of the block `id` names: a best-chain height, or the hash of a block this
/// node holds.
async fn find_block(state: &ApiState, id: &str) -> Result<BlockHash, ApiError> {
    enum Wanted {
        Height(u64),
        Hash(BlockHash),
    }
    let wanted = match (id.parse::<u64>(), id.parse::<BlockHash>()) {
        (Ok(height), _) if id.len() < 64 => Wanted::Height(height),
        (_, Ok(hash)) => Wanted::Hash(hash),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "'{id}' is neither a height nor a block hash (64 hex digits)"
            )));
        }
    };
    let hash = state
        .handle
        .query(move |ledger| match wanted {
            Wanted::Height(h) => usize::try_from(h)
                .ok()
                .and_then(|h| ledger.main_chain().get(h).copied())
                .filter(|h| *h != ledger.genesis_hash()),
            Wanted::Hash(hash) => ledger.height_of(&hash).map(|_| hash),
        })
        .await?;
    hash.ok_or_else(|| ApiError::NotFound(format!("no block {id} on this node")))
}

/// A transaction and the block that holds it (the latest 10,000 blocks are searched),
/// or the mempool.
#[utoipa::path(get, path = "/txs/{id}", params(("id" = String, Path, description = "64 hex digits")),
    responses((status = 200, body = TxLocation), (status = 400), (status = 404)))]
async fn tx(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<TxLocation> {
    let tx_id: TxId = id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("'{id}' is not a transaction id: {e}")))?;
    let (genesis, pending, hashes) = state
        .handle
        .query(move |ledger| {
            let pending = ledger
                .mempool()
                .find(|p| p.id == tx_id)
                .map(|p| p.tx.clone());
            let hashes: Vec<BlockHash> = ledger
                .main_chain()
                .iter()
                .skip(1)
                .rev()
                .take(MAX_TX_SCAN_BLOCKS)
                .copied()
                .collect();
            (ledger.genesis().clone(), pending, hashes)
        })
        .await?;
    if let Some(tx) = pending {
        return Ok(Json(TxLocation {
            block: None,
            height: None,
            index: None,
            pending: true,
            tx: TxView::of(&genesis, &tx),
        }));
    }
    for chunk in hashes.chunks(MAX_BLOCKS_PER_PAGE as usize) {
        for block in read_blocks(&state.handle, chunk.to_vec()).await? {
            if let Some(index) = block.transactions.iter().position(|t| t.id() == tx_id) {
                return Ok(Json(TxLocation {
                    block: Some(block.hash().to_string()),
                    height: Some(block.header.height.0),
                    index: Some(index),
                    pending: false,
                    tx: TxView::of(&genesis, &block.transactions[index]),
                }));
            }
        }
    }
    Err(ApiError::NotFound(format!(
        "transaction {tx_id} is neither pending nor in the latest {MAX_TX_SCAN_BLOCKS} blocks"
    )))
}

/// A patient's events by pseudonym, in chain order.
#[utoipa::path(get, path = "/patients/{id}", params(("id" = String, Path, description = "the patient id (UUID)")),
    responses((status = 200, body = PatientView), (status = 400), (status = 404)))]
async fn patient(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<PatientView> {
    let (patient, genesis, events) = patient_events(&state, &id).await?;
    let events = events
        .into_iter()
        .map(|record| PatientEvent {
            height: record.height,
            block: record.block_hash.to_string(),
            tx: TxView::of(&genesis, &record.tx),
        })
        .collect();
    Ok(Json(PatientView {
        patient_id: patient.to_string(),
        events,
    }))
}

/// A patient's confirmed events: height, block hash, block time and transaction of each.
async fn patient_events(
    state: &ApiState,
    id: &str,
) -> Result<(PatientId, ledger_core::Genesis, Vec<ChainRecord>), ApiError> {
    let patient: PatientId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("'{id}' is not a patient id (a UUID)")))?;
    let (genesis, entries) = state
        .handle
        .query(move |ledger| {
            let state: &health_workflow::HealthState = ledger.state().app();
            let entries: Option<Vec<(TxId, BlockHash)>> = state.history(&patient).map(|h| {
                h.iter()
                    .filter_map(|e| {
                        let hash = ledger.main_chain().get(e.height.0 as usize)?;
                        Some((e.tx_id, *hash))
                    })
                    .collect()
            });
            (ledger.genesis().clone(), entries)
        })
        .await?;
    let Some(entries) = entries else {
        return Err(ApiError::NotFound(format!(
            "no patient {patient} on this chain"
        )));
    };
    let blocks = read_blocks(&state.handle, entries.iter().map(|(_, h)| *h).collect()).await?;
    let events = entries
        .iter()
        .zip(blocks)
        .filter_map(|((tx_id, hash), block)| {
            let tx = block.transactions.iter().find(|t| t.id() == *tx_id)?;
            Some(ChainRecord {
                height: block.header.height.0,
                block_hash: *hash,
                block_time: block.header.timestamp,
                tx: tx.clone(),
            })
        })
        .collect();
    Ok((patient, genesis, events))
}

/// A patient's clinical record for a logged-in member: the events, with each sealed
/// section in the clear where the member may read it (sealed to them, and held by
/// this node), and as a marker elsewhere. Without a valid token: 401.
#[utoipa::path(get, path = "/patients/{id}/records",
    params(("id" = String, Path, description = "the patient id (UUID)")),
    security(("bearer" = [])),
    responses((status = 200, body = PatientView), (status = 400), (status = 401), (status = 404)))]
async fn records(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<PatientView> {
    let viewer = state
        .sessions
        .viewer(&headers)?
        .ok_or_else(|| ApiError::Unauthorized("log in first: POST /login".into()))?;
    let (patient, genesis, events) = patient_events(&state, &id).await?;
    let vault = state.vault.clone();
    let reader_of = Arc::clone(&viewer);
    let (events, opened) = tokio::task::spawn_blocking(move || {
        let viewer = reader_of;
        let opened = reads::opened(genesis.hash(), &viewer, &events, &vault);
        let reader = health_workflow::BodyReader::new(genesis.hash(), viewer.account, &viewer.key);
        let events = events
            .into_iter()
            .map(|record| {
                let tx = &record.tx;
                let mut view = TxView::of(&genesis, tx);
                if let ledger_core::TxBody::App(event) = &tx.body {
                    for (key, section, reference) in views::sealed_keys(event) {
                        let read = reader.read_at(&tx.author, event, section, &reference, |h| {
                            vault.get(h).ok().flatten()
                        });
                        if let Some(health_workflow::Reading::Clear(body)) = read {
                            view.fields.insert(key, body.summary());
                        }
                    }
                }
                PatientEvent {
                    height: record.height,
                    block: record.block_hash.to_string(),
                    tx: view,
                }
            })
            .collect();
        (events, opened)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("reading the records failed: {e}")))?;
    reads::record(&state.handle, &state.reads, &viewer, patient, opened);
    Ok(Json(PatientView {
        patient_id: patient.to_string(),
        events,
    }))
}

/// A member's login (`POST /login`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginRequest {
    /// The username, as at the REPL.
    username: String,
    /// The password (on a real network, the key file's passphrase).
    password: String,
}

/// A login's answer: the token to send as `Authorization: Bearer <token>`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedIn {
    /// The bearer token.
    token: String,
    /// Who logged in.
    username: String,
    /// Their role.
    role: String,
    /// Seconds the token lasts.
    expires_in: u64,
}

/// Logs a member in with the username and password it uses at the REPL; a wrong
/// username or password: 401.
#[utoipa::path(post, path = "/login", request_body = LoginRequest,
    responses((status = 200, body = LoggedIn), (status = 400), (status = 401)))]
async fn login(
    State(state): State<ApiState>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<LoggedIn> {
    let Json(request) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sessions = Arc::clone(&state.sessions);
    let (token, viewer) = tokio::task::spawn_blocking(move || {
        sessions.login(request.username.trim(), &request.password)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("checking the password failed: {e}")))??;
    Ok(Json(LoggedIn {
        token,
        username: viewer.username.clone(),
        role: viewer.role.to_string(),
        expires_in: auth::SESSION_TTL.as_secs(),
    }))
}

/// Confirmed balances by username, as the `balances` command prints them.
#[utoipa::path(get, path = "/accounts", responses((status = 200, body = [AccountView])))]
async fn accounts(State(state): State<ApiState>) -> ApiResult<Vec<AccountView>> {
    let accounts = state
        .handle
        .query(|ledger| {
            health_workflow::balances(ledger)
                .into_iter()
                .map(|b| AccountView {
                    role: ledger.genesis().member(&b.account).map(|m| m.role.clone()),
                    username: b.name,
                    account: b.account.to_string(),
                    balance: b.amount.units(),
                    next_nonce: ledger.next_nonce(&b.account),
                })
                .collect()
        })
        .await?;
    Ok(Json(accounts))
}

/// The pending transactions, in the order they would be mined.
#[utoipa::path(get, path = "/mempool", responses((status = 200, body = MempoolView)))]
async fn mempool(State(state): State<ApiState>) -> ApiResult<MempoolView> {
    let view = state
        .handle
        .query(|ledger| {
            let genesis = ledger.genesis();
            MempoolView {
                count: ledger.mempool().len(),
                bytes: ledger.mempool().map(|p| p.size).sum(),
                transactions: ledger
                    .mempool()
                    .take(MAX_MEMPOOL_LISTED)
                    .map(|p| TxView::of(genesis, &p.tx))
                    .collect(),
            }
        })
        .await?;
    Ok(Json(view))
}

/// Submits a signed transaction: its canonical bytes (`application/octet-stream`) or its
/// JSON form (`application/json`).
#[utoipa::path(post, path = "/txs", request_body(content = Vec<u8>, description = "the canonical bytes, or the JSON form"),
    responses((status = 200, body = Submitted), (status = 400), (status = 413), (status = 422)))]
async fn submit_tx(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Submitted> {
    let body = body?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let tx: HealthTx = if json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("not a transaction in JSON: {e}")))?
    } else {
        codec::decode(&body, limits::MAX_TX_BYTES).map_err(|e| {
            ApiError::BadRequest(format!("not a transaction's canonical bytes: {e}"))
        })?
    };
    match state.handle.submit_transaction(tx).await? {
        Ok(id) => Ok(Json(Submitted { id: id.to_string() })),
        Err(error) => Err(ApiError::Refused(error)),
    }
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics_text(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let status = read_status(&state.handle).await?;
    let text = state
        .metrics
        .encode(&status)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Counts the node's events into the metrics for as long as the API runs.
async fn feed_metrics(handle: Handle, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut events = handle.subscribe();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => {
                metrics.observe(&event);
                if let NodeEvent::TipChanged(_) = event {
                    let Ok((height, time)) =
                        handle.query(|l| (l.tip().height, l.tip().timestamp)).await
                    else {
                        return;
                    };
                    metrics.tip(height, time);
                }
            }
            // Counts missed while lagging are lost; the gauges are read at each scrape.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Parses `--api`: an address, or a bare port on 127.0.0.1.
pub(crate) fn parse_api_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("'{text}' is neither an address (127.0.0.1:8001) nor a port"))
}
