//! `healthchain bench-net` end to end: a short, slow run on three local nodes commits
//! every transaction on every node and ends with its one summary line; bad targets get
//! a clear error.

use std::process::Command;

fn healthchain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_healthchain"))
}

/// The figures of the summary line `throughput N tx/s committed on all nodes; latency
/// p50 X ms p95 Y ms p99 Z ms; failed F`: N, X, Y, Z, F.
fn summary(line: &str) -> Option<(f64, f64, f64, f64, u64)> {
    let rest = line.strip_prefix("throughput ")?;
    let (throughput, rest) = rest.split_once(" tx/s committed on all nodes; latency p50 ")?;
    let (p50, rest) = rest.split_once(" ms p95 ")?;
    let (p95, rest) = rest.split_once(" ms p99 ")?;
    let (p99, failed) = rest.split_once(" ms; failed ")?;
    Some((
        throughput.parse().ok()?,
        p50.parse().ok()?,
        p95.parse().ok()?,
        p99.parse().ok()?,
        failed.parse().ok()?,
    ))
}

#[test]
fn a_short_slow_run_commits_everything_on_every_node() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = healthchain()
        .args([
            "bench-net",
            "--duration",
            "3",
            "--warmup",
            "1",
            "--rate",
            "200",
            "--block-interval",
            "200",
            "--strict",
        ])
        .current_dir(dir.path())
        .output()
        .expect("bench-net runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let (throughput, p50, p95, p99, failed) =
        summary(last).unwrap_or_else(|| panic!("not a summary line: {last}\n{stdout}"));
    assert_eq!(failed, 0);
    assert!(throughput > 150.0 && throughput <= 210.0, "{last}");
    assert!(p50 <= p95 && p95 <= p99 && p99 > 0.0, "{last}");
    // Its table row: nothing dropped, and each node's CPU read from its metrics.
    let (row, columns) = stdout
        .lines()
        .map(|l| (l, l.split_whitespace().collect::<Vec<&str>>()))
        .find(|(_, c)| c.len() > 12 && c[0] == "200" && c[1].parse::<f64>().is_ok())
        .unwrap_or_else(|| panic!("no row for 200 tx/s:\n{stdout}"));
    assert_eq!(columns[8], "0", "dropped: {row}");
    assert!(
        columns[9..12].iter().all(|c| c.parse::<f64>().is_ok()),
        "{row}"
    );
    assert!(
        stdout.contains("Idle network, one transfer at a time"),
        "{stdout}"
    );
    assert!(
        stdout.contains("patient registrations by the doctor"),
        "{stdout}"
    );
}

#[test]
fn an_unreachable_target_is_a_clear_error() {
    let out = healthchain()
        .args(["bench-net", "--api", "127.0.0.1:1", "--duration", "1"])
        .output()
        .expect("bench-net runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the API at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn the_bench_network_is_written_once_with_the_commands_to_start_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let target = dir.path().join("bench");
    let run = || {
        healthchain()
            .args(["bench-net", "--write-network"])
            .arg(&target)
            .output()
            .expect("bench-net runs")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for file in [
        "bench-genesis.json",
        "passphrase.txt",
        "dr_alice.key",
        "lab_tech_bob.key",
    ] {
        assert!(target.join(file).exists(), "{file}");
    }
    assert_eq!(
        stdout.matches("healthchain node --id").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("healthchain bench-net --api"), "{stdout}");
    // Key files are never overwritten.
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("dr_alice.key"));
}
