//! `GET /events`: server-sent events of new blocks and transactions, resumable from a
//! height, with a bounded queue per subscriber.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use health_workflow::EventError;
use ledger_core::BlockHash;
use p2p::NodeEvent;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};

use super::views::BlockSummary;
use super::{
    ApiError, ApiState, MAX_BACKLOG, MAX_BLOCKS_PER_PAGE, MAX_SUBSCRIBERS, SUBSCRIBER_QUEUE,
    read_blocks,
};

/// `GET /events` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct Resume {
    /// Replay best-chain blocks from this height (at most 1,000) before live events.
    from: Option<u64>,
}

/// Server-sent events: `block` (a block summary) for each block joining the best
/// chain, `tx` (`{"id"}`) for each transaction entering the mempool, and `lagged`
/// before the stream ends when the subscriber fell behind (resume with `?from=`).
#[utoipa::path(get, path = "/events", params(Resume), responses(
    (status = 200, description = "text/event-stream"), (status = 503, description = "too many subscribers")))]
pub(super) async fn events(
    State(state): State<ApiState>,
    resume: Result<Query<Resume>, QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(resume) = resume?;
    let permit = Arc::clone(&state.subscribers)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::Busy(format!(
                "too many event subscribers (at most {MAX_SUBSCRIBERS}); try again later"
            ))
        })?;
    let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
    // Subscribed before the backlog is read, so no block falls between the two.
    let live = state.handle.subscribe();
    tokio::spawn(stream_events(state, resume.from, live, tx, permit));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Feeds one subscriber: the backlog from `from`, then live events, until it leaves,
/// falls behind, or the node stops.
async fn stream_events(
    state: ApiState,
    from: Option<u64>,
    mut live: broadcast::Receiver<NodeEvent<EventError>>,
    out: mpsc::Sender<SseEvent>,
    _permit: OwnedSemaphorePermit,
) {
    let send = |event: SseEvent| match out.try_send(event) {
        Ok(()) => true,
        // Full: the subscriber is too slow; dropping it ends its stream.
        Err(_) => false,
    };
    let block_event = |summary: &BlockSummary| {
        SseEvent::default()
            .event("block")
            .json_data(summary)
            .unwrap_or_else(|_| SseEvent::default().event("block"))
    };
    let mut last = 0u64;
    if let Some(from) = from {
        let backlog = state
            .handle
            .query(move |ledger| {
                let chain = ledger.main_chain();
                let start = usize::try_from(from.max(1)).unwrap_or(usize::MAX);
                let hashes: Vec<BlockHash> = chain
                    .iter()
                    .skip(start)
                    .take(MAX_BACKLOG as usize)
                    .copied()
                    .collect();
                (ledger.genesis().clone(), hashes)
            })
            .await;
        let Ok((genesis, hashes)) = backlog else {
            return;
        };
        for chunk in hashes.chunks(MAX_BLOCKS_PER_PAGE as usize) {
            let Ok(blocks) = read_blocks(&state.handle, chunk.to_vec()).await else {
                return;
            };
            for block in &blocks {
                let summary = BlockSummary::of(&genesis, block);
                last = summary.head.height;
                if !send(block_event(&summary)) {
                    return;
                }
            }
        }
    }
    loop {
        let event = tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = out.closed() => return,
            event = live.recv() => event,
        };
        match event {
            Ok(NodeEvent::TipChanged(change)) => {
                let Ok(genesis) = state.handle.query(|l| l.genesis().clone()).await else {
                    return;
                };
                let Ok(blocks) = read_blocks(&state.handle, change.connected.clone()).await else {
                    continue;
                };
                for block in &blocks {
                    let summary = BlockSummary::of(&genesis, block);
                    if summary.head.height > last || change.is_reorg() {
                        last = last.max(summary.head.height);
                        if !send(block_event(&summary)) {
                            return;
                        }
                    }
                }
            }
            Ok(NodeEvent::TxAccepted { id, .. }) => {
                let event = SseEvent::default()
                    .event("tx")
                    .data(serde_json::json!({ "id": id.to_string() }).to_string());
                if !send(event) {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let resume = serde_json::json!({ "resume_from": last + 1 }).to_string();
                let _ = send(SseEvent::default().event("lagged").data(resume));
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
