//! Prometheus metrics (`GET /metrics`), named as CometBFT names its own
//! (`<namespace>_<subsystem>_<name>`, here `healthchain_consensus_height` and so on).
//!
//! Gauges of the node's state are read at each scrape; counters and histograms are fed
//! by the node's events from the moment the API starts.

use std::sync::Mutex;

use health_workflow::EventError;
use ledger_core::{Height, Timestamp};
use p2p::NodeEvent;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::views::Status;

/// Why something was refused: the error's variant name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    reason: String,
}

/// The variant name of an error, from its `Debug` form (`TooLarge { .. }` gives
/// `TooLarge`): a label with a small, fixed set of values.
fn reason(error: &impl std::fmt::Debug) -> Reason {
    let text = format!("{error:?}");
    let reason: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Reason { reason }
}

/// The node's metrics and their registry.
pub(crate) struct Metrics {
    registry: Registry,
    height: Gauge,
    final_height: Gauge,
    peers: Gauge,
    mempool_size: Gauge,
    mempool_bytes: Gauge,
    txs_accepted: Counter,
    txs_refused: Family<Reason, Counter>,
    txs_dropped: Counter,
    blocks_accepted: Counter,
    blocks_refused: Family<Reason, Counter>,
    reorgs: Counter,
    bans: Counter,
    block_interval: Histogram,
    block_validation: Histogram,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Time of the last tip seen, for the block interval.
    last_tip: Mutex<Option<(Height, Timestamp)>>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("healthchain");
        let metrics = Metrics {
            height: Gauge::default(),
            final_height: Gauge::default(),
            peers: Gauge::default(),
            mempool_size: Gauge::default(),
            mempool_bytes: Gauge::default(),
            txs_accepted: Counter::default(),
            txs_refused: Family::default(),
            txs_dropped: Counter::default(),
            blocks_accepted: Counter::default(),
            blocks_refused: Family::default(),
            reorgs: Counter::default(),
            bans: Counter::default(),
            // 0.25 s to about 17 minutes.
            block_interval: Histogram::new(exponential_buckets(0.25, 2.0, 13)),
            // 50 microseconds to about 3 seconds.
            block_validation: Histogram::new(exponential_buckets(0.000_05, 3.0, 11)),
            cpu_seconds: Gauge::default(),
            last_tip: Mutex::new(None),
            registry: Registry::default(),
        };
        let register = |registry: &mut Registry| {
            registry.register(
                "consensus_height",
                "Height of the best chain's tip",
                metrics.height.clone(),
            );
            registry.register(
                "consensus_final_height",
                "Height of the final block, which no branch may revert",
                metrics.final_height.clone(),
            );
            registry.register("p2p_peers", "Connected peers", metrics.peers.clone());
            registry.register(
                "process_cpu_seconds",
                "User and system CPU time the node's process has used",
                metrics.cpu_seconds.clone(),
            );
            registry.register(
                "mempool_size",
                "Pending transactions",
                metrics.mempool_size.clone(),
            );
            registry.register(
                "mempool_size_bytes",
                "Encoded size of the pending transactions",
                metrics.mempool_bytes.clone(),
            );
            registry.register(
                "mempool_txs_accepted",
                "Transactions accepted into the mempool",
                metrics.txs_accepted.clone(),
            );
            registry.register(
                "mempool_txs_dropped",
                "Relayed transactions dropped because the admission queue was full",
                metrics.txs_dropped.clone(),
            );
            registry.register(
                "mempool_txs_refused",
                "Transactions refused, by reason",
                metrics.txs_refused.clone(),
            );
            registry.register(
                "consensus_blocks_accepted",
                "Blocks accepted into the block tree and stored",
                metrics.blocks_accepted.clone(),
            );
            registry.register(
                "consensus_blocks_refused",
                "Blocks refused, by reason",
                metrics.blocks_refused.clone(),
            );
            registry.register(
                "consensus_reorgs",
                "Switches of the best chain to another branch",
                metrics.reorgs.clone(),
            );
            registry.register(
                "p2p_bans",
                "Peers banned for misbehaviour",
                metrics.bans.clone(),
            );
            registry.register(
                "consensus_block_interval_seconds",
                "Time between the timestamps of consecutive best-chain tips",
                metrics.block_interval.clone(),
            );
            registry.register(
                "consensus_block_validation_seconds",
                "Time the ledger took to validate a submitted block, with the orphans it unlocked",
                metrics.block_validation.clone(),
            );
        };
        register(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts what an event says.
    pub(crate) fn observe(&self, event: &NodeEvent<EventError>) {
        match event {
            NodeEvent::TxAccepted { .. } => {
                self.txs_accepted.inc();
            }
            NodeEvent::TxRejected { error, .. } => {
                self.txs_refused.get_or_create(&reason(error)).inc();
            }
            NodeEvent::TxsDropped { count, .. } => {
                self.txs_dropped.inc_by(*count as u64);
            }
            NodeEvent::BlockAccepted { .. } => {
                self.blocks_accepted.inc();
            }
            NodeEvent::BlockRejected { error, .. } => {
                self.blocks_refused.get_or_create(&reason(error)).inc();
            }
            NodeEvent::PeerBanned { .. } => {
                self.bans.inc();
            }
            NodeEvent::BlockValidated { elapsed, .. } => {
                self.block_validation.observe(elapsed.as_secs_f64());
            }
            NodeEvent::TipChanged(change) if change.is_reorg() => {
                self.reorgs.inc();
            }
            _ => {}
        }
    }

    /// A new tip at `height` with block time `time`: observes the interval since the
    /// previous tip when the chain grew by one block.
    pub(crate) fn tip(&self, height: Height, time: Timestamp) {
        let mut last = self
            .last_tip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((h, t)) = *last
            && height.0 == h.0 + 1
        {
            let millis = time.millis().saturating_sub(t.millis());
            self.block_interval.observe(millis as f64 / 1000.0);
        }
        *last = Some((height, time));
    }

    /// The Prometheus text exposition, with the gauges set from `status`.
    pub(crate) fn encode(&self, status: &Status) -> Result<String, std::fmt::Error> {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.height.set(gauge(status.height));
        if let Some(seconds) = crate::cpu::process_cpu_seconds() {
            self.cpu_seconds.set(seconds);
        }
        self.final_height.set(gauge(status.final_height));
        self.peers.set(gauge(status.peers as u64));
        self.mempool_size.set(gauge(status.mempool as u64));
        self.mempool_bytes.set(gauge(status.mempool_bytes as u64));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_the_variant_name() {
        #[derive(Debug)]
        #[allow(dead_code)]
        enum E {
            TooLarge { size: usize },
            Policy(u8),
        }
        assert_eq!(reason(&E::TooLarge { size: 3 }).reason, "TooLarge");
        assert_eq!(reason(&E::Policy(1)).reason, "Policy");
    }

    #[test]
    fn intervals_are_observed_between_consecutive_tips_only() {
        let metrics = Metrics::new();
        metrics.tip(Height(1), Timestamp(1_000));
        metrics.tip(Height(2), Timestamp(3_000));
        // A jump (a sync) is not an interval.
        metrics.tip(Height(5), Timestamp(9_000));
        let status = Status {
            network: "n".into(),
            genesis: String::new(),
            height: 5,
            tip: String::new(),
            final_height: 3,
            peers: 2,
            mempool: 1,
            mempool_bytes: 100,
            peer_addr: "127.0.0.1:5001".into(),
        };
        let text = metrics.encode(&status).expect("encodes");
        assert!(
            text.contains("healthchain_consensus_block_interval_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("healthchain_consensus_block_interval_seconds_sum 2.0"),
            "{text}"
        );
        assert!(text.contains("healthchain_consensus_height 5"), "{text}");
        assert!(
            text.contains("healthchain_consensus_final_height 3"),
            "{text}"
        );
        assert!(
            text.contains("healthchain_mempool_size_bytes 100"),
            "{text}"
        );
    }
}
