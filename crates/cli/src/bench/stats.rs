//! What one rate's run measured, and how it is summarised: pure, no I/O.

use std::time::Duration;

/// Latency figures of the committed transactions of one run, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Latency {
    /// Median.
    pub(crate) p50: f64,
    /// 95th percentile.
    pub(crate) p95: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
}

/// The value below which `q` (0 to 1) of the sorted `samples` lie, by the nearest-rank
/// method: the smallest sample with at least `q` of them at or below it.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Latency {
    /// The figures of `samples` (milliseconds, any order).
    pub(crate) fn of(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        Latency {
            p50: percentile(&samples, 0.50),
            p95: percentile(&samples, 0.95),
            p99: percentile(&samples, 0.99),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }
}

/// One rate's run.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RunResult {
    /// Transactions a second the clients were asked to send.
    pub(crate) target_rate: u64,
    /// Transactions a second they sent, over the measured window.
    pub(crate) send_rate: f64,
    /// Transactions of the measured window in a block on every node, per second of the
    /// window.
    pub(crate) committed_rate: f64,
    /// Submission to on every node, for the window's committed transactions.
    pub(crate) latency: Latency,
    /// Transactions the nodes refused, or that could not be sent.
    pub(crate) failed: u64,
    /// Transactions accepted but not on every node by the end of the drain.
    pub(crate) dropped: u64,
    /// CPU seconds each node spent over the run (`None` where it could not be read).
    pub(crate) node_cpu: Vec<Option<f64>>,
    /// The load generator's CPU seconds over the run.
    pub(crate) own_cpu: f64,
    /// Wall time of the measured window.
    pub(crate) window: Duration,
}

impl RunResult {
    /// Whether the run kept its p99 latency within `target` and lost nothing.
    pub(crate) fn within(&self, target: Duration) -> bool {
        self.committed_rate > 0.0 && self.latency.p99 <= target.as_secs_f64() * 1000.0
    }
}

/// The run the summary line reports: the highest committed throughput among the runs
/// within the latency target, or `None` if no run met it.
pub(crate) fn best(runs: &[RunResult], target: Duration) -> Option<&RunResult> {
    runs.iter()
        .filter(|r| r.within(target))
        .max_by(|a, b| a.committed_rate.total_cmp(&b.committed_rate))
}

/// The one summary line: `throughput N tx/s committed on all nodes; latency p50 X ms
/// p95 Y ms p99 Z ms; failed F`.
pub(crate) fn summary_line(run: &RunResult) -> String {
    format!(
        "throughput {:.0} tx/s committed on all nodes; latency p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms; failed {}",
        run.committed_rate, run.latency.p50, run.latency.p95, run.latency.p99, run.failed
    )
}

/// The table of runs, one row a rate.
pub(crate) fn table(runs: &[RunResult], nodes: &[String]) -> String {
    let mut out = String::new();
    let cpu_heads: Vec<String> = nodes.iter().map(|n| format!("cpu s {n}")).collect();
    out.push_str(&format!(
        "{:>10} {:>10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {} {:>9}\n",
        "rate",
        "sent/s",
        "committed/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "failed",
        "dropped",
        cpu_heads
            .iter()
            .map(|h| format!("{h:>12}"))
            .collect::<Vec<_>>()
            .join(" "),
        "cpu s gen"
    ));
    for run in runs {
        let cpus: Vec<String> = run
            .node_cpu
            .iter()
            .map(|c| match c {
                Some(s) => format!("{s:>12.1}"),
                None => format!("{:>12}", "-"),
            })
            .collect();
        out.push_str(&format!(
            "{:>10} {:>10.0} {:>11.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>7} {:>8} {} {:>9.1}\n",
            run.target_rate,
            run.send_rate,
            run.committed_rate,
            run.latency.p50,
            run.latency.p95,
            run.latency.p99,
            run.latency.max,
            run.failed,
            run.dropped,
            cpus.join(" "),
            run.own_cpu
        ));
    }
    out
}

/// The rates a sweep tries: from `from` by `step` up to `to`, inclusive.
pub(crate) fn sweep_rates(from: u64, step: u64, to: u64) -> Vec<u64> {
    let step = step.max(1);
    let mut rates = Vec::new();
    let mut rate = from.max(1);
    while rate <= to {
        rates.push(rate);
        rate += step;
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let latency = Latency::of(samples.iter().rev().copied().collect());
        assert_eq!(latency.p50, 50.0);
        assert_eq!(latency.p95, 95.0);
        assert_eq!(latency.p99, 99.0);
        assert_eq!(latency.max, 100.0);
        assert_eq!(Latency::of(vec![7.0]).p99, 7.0);
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }

    fn run(rate: f64, p99: f64) -> RunResult {
        RunResult {
            committed_rate: rate,
            latency: Latency {
                p99,
                ..Latency::default()
            },
            ..RunResult::default()
        }
    }

    #[test]
    fn the_summary_reports_the_best_rate_within_the_target() {
        let target = Duration::from_secs(2);
        let runs = vec![
            run(4_000.0, 300.0),
            run(9_000.0, 1_900.0),
            run(11_000.0, 2_500.0),
        ];
        assert_eq!(best(&runs, target).map(|r| r.committed_rate), Some(9_000.0));
        assert!(best(&[run(11_000.0, 2_001.0)], target).is_none());
        assert!(
            best(&[run(0.0, 1.0)], target).is_none(),
            "nothing committed"
        );
        let line = summary_line(&runs[1]);
        assert_eq!(
            line,
            "throughput 9000 tx/s committed on all nodes; latency p50 0 ms p95 0 ms p99 1900 ms; failed 0"
        );
    }

    #[test]
    fn sweeps_step_up_to_the_top_rate() {
        assert_eq!(sweep_rates(2_000, 2_000, 7_000), vec![2_000, 4_000, 6_000]);
        assert_eq!(sweep_rates(5, 0, 7), vec![5, 6, 7]);
        assert!(sweep_rates(10, 1, 5).is_empty());
    }

    #[test]
    fn the_table_has_a_row_a_rate_and_a_column_a_node() {
        let mut a = run(1_000.0, 10.0);
        a.node_cpu = vec![Some(1.5), None];
        let text = table(&[a], &["doctor".into(), "lab".into()]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("cpu s doctor") && text.contains("cpu s lab"));
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.contains("1.5") && l.contains(" -"))
        );
    }

    proptest! {
        /// Percentiles are ordered and lie within the samples.
        #[test]
        fn percentiles_are_ordered_within_the_samples(
            samples in proptest::collection::vec(0.0f64..1e6, 1..500),
        ) {
            let l = Latency::of(samples.clone());
            let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assert!(min <= l.p50 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max);
            prop_assert!(samples.contains(&l.p99));
            let at_or_below = samples.iter().filter(|s| **s <= l.p99).count();
            prop_assert!(at_or_below as f64 >= 0.99 * samples.len() as f64);
        }
    }
}
