//! `healthchain bench-net`: a load generator in the manner of Hyperledger Caliper.
//!
//! It starts the bench network's nodes on loopback (or targets running ones with
//! `--api`), submits pre-signed transactions (transfers, and patient registrations
//! with their sealed bodies) open-loop at a fixed rate from several client tasks
//! through each node's public submit interface, records each transaction
//! from the moment it was due until it is in a block on every node, and prints a table
//! per rate and one summary line:
//!
//! ```text
//! throughput N tx/s committed on all nodes; latency p50 X ms p95 Y ms p99 Z ms; failed F
//! ```
//!
//! for the best rate whose p99 stays within the latency target. It exits 0 when the
//! runs completed, whatever the figures.

mod http;
mod load;
mod network;
mod stats;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::BenchNetArgs;
use load::{Accounts, Plan, Target};
use network::{BENCH_ACCOUNTS, LocalNetwork, bench_account, bench_genesis};
use stats::RunResult;

/// Runs `healthchain bench-net`.
pub(crate) fn run(args: &BenchNetArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.write_network {
        return write_network(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let interval = Duration::from_millis(args.block_interval);
    let (targets, local): (Vec<Target>, _) = if args.api.is_empty() {
        println!(
            "Starting {} nodes of the bench network on loopback (blocks every {} ms at most)...",
            args.nodes, args.block_interval
        );
        let network =
            LocalNetwork::start(usize::from(args.nodes), interval, !args.no_compact_blocks)?;
        let targets = network
            .nodes
            .iter()
            .map(|n| Target {
                name: n.name.clone(),
                api: n.api,
            })
            .collect();
        (targets, Some(network))
    } else {
        let targets = args
            .api
            .iter()
            .map(|api| Target {
                name: api.to_string(),
                api: *api,
            })
            .collect();
        (targets, None)
    };
    let result = runtime.block_on(bench(args, &targets));
    if let Some(network) = local {
        network.stop();
    }
    result
}

fn write_network(dir: &std::path::Path) -> anyhow::Result<()> {
    let files = network::write_network(dir)?;
    println!(
        "The bench network is in {} (passphrase in {}). Start its nodes with:",
        dir.display(),
        files.passphrase.display()
    );
    let mut peers: Vec<String> = Vec::new();
    for (i, (username, key)) in files.keys.iter().enumerate() {
        let port = 6001 + i;
        let api = 8101 + i;
        let mut line = format!(
            "  healthchain node --id {username} --port {port} --api {api} --block-interval 500 \
             --genesis {} --key {} --passphrase-file {} --data-dir {}",
            files.genesis.display(),
            key.display(),
            files.passphrase.display(),
            dir.join(username).display()
        );
        if !peers.is_empty() {
            line.push_str(&format!(" --peers {}", peers.join(",")));
        }
        println!("{line}");
        peers.push(format!("127.0.0.1:{port}"));
    }
    println!("then: healthchain bench-net --api 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103");
    Ok(())
}

/// What a status says of the network and the chain.
#[derive(serde::Deserialize)]
struct Status {
    genesis: String,
    peers: usize,
}

async fn bench(args: &BenchNetArgs, targets: &[Target]) -> anyhow::Result<()> {
    let genesis = bench_genesis();
    let genesis_hash = genesis.hash();
    // Every node must be on the bench network and see the others.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for target in targets {
        loop {
            let mut api = http::Api::connect(target.api).await?;
            let status: Status = api.get_json("/status").await?;
            if status.genesis != genesis_hash.to_string() {
                bail!(
                    "the node at {} is not on the bench network (genesis {}); start nodes from \
                     `healthchain bench-net --write-network DIR`",
                    target.api,
                    status.genesis
                );
            }
            if status.peers + 1 >= targets.len() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the node at {} sees only {} peers",
                    target.api,
                    status.peers
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut accounts = next_nonces(targets).await?;
    let idle = load::idle_latency(targets, &mut accounts, &genesis_hash, IDLE_SAMPLES).await?;
    let rates = if args.sweep {
        stats::sweep_rates(args.sweep_step, args.sweep_step, args.rate)
    } else {
        vec![args.rate]
    };
    let target = Duration::from_millis(args.latency_target);
    let (registration, sealed) = load::registration_size(&accounts, &genesis)?;
    println!(
        "Load: {}% transfers of {} bytes, signed in advance by {} accounts over {} clients; {}% \
         patient registrations by the doctor ({} bytes, with a sealed body of {} bytes) to the \
         first node; {} nodes; {} s warm-up, then {} s measured per rate; latency from when a \
         transaction was due until it is in a block on every node.",
        100 - args.clinical_percent,
        load::transfer_size(&accounts, &genesis_hash),
        BENCH_ACCOUNTS,
        args.clients,
        args.clinical_percent,
        registration,
        sealed,
        targets.len(),
        args.warmup,
        args.duration
    );
    let mut idle_sorted = idle.clone();
    idle_sorted.sort_by(f64::total_cmp);
    println!(
        "Idle network, one transfer at a time ({} samples): median {:.0} ms, max {:.0} ms \
         from submission until in a block on every node.",
        idle.len(),
        stats::percentile(&idle_sorted, 0.5),
        idle_sorted.last().copied().unwrap_or(0.0)
    );
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let mut runs: Vec<RunResult> = Vec::new();
    for rate in rates {
        let plan = Plan {
            rate,
            clinical_percent: args.clinical_percent,
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration),
            clients: usize::try_from(args.clients).unwrap_or(1),
            drain: target.max(Duration::from_secs(5)) * 3,
        };
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} committed on all nodes{msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(format!("{rate} tx/s"));
            bar
        });
        println!(
            "Signing {} transactions for {rate} tx/s...",
            rate * (args.warmup + args.duration)
        );
        let (run, notes) =
            load::run_rate(targets, &plan, &mut accounts, &genesis, bar.as_ref()).await?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        println!(
            "{rate} tx/s: committed {:.0} tx/s, p99 {:.0} ms; the load generator used {:.0}% of a core",
            run.committed_rate,
            run.latency.p99,
            100.0 * run.own_cpu / run.window.as_secs_f64()
        );
        let mut errors: Vec<_> = notes.errors.into_iter().collect();
        errors.sort();
        for (kind, count) in errors {
            println!("  failed: {count} × {kind}");
        }
        if notes.busy > 0 {
            println!("  busy answers (retried): {}", notes.busy);
        }
        if notes.reorgs > 0 {
            println!("  branch switches seen by the watchers: {}", notes.reorgs);
        }
        let over = !run.within(target);
        runs.push(run);
        if args.sweep && over {
            break;
        }
    }
    println!();
    print!("{}", stats::table(&runs, &names));
    let lost: u64 = runs.iter().map(|r| r.failed + r.dropped).sum();
    match stats::best(&runs, target) {
        Some(run) => println!("{}", stats::summary_line(run)),
        None => {
            println!(
                "no rate kept its p99 within {} ms; the fastest run:",
                args.latency_target
            );
            if let Some(run) = runs
                .iter()
                .max_by(|a, b| a.committed_rate.total_cmp(&b.committed_rate))
            {
                println!("{}", stats::summary_line(run));
            }
        }
    }
    if args.strict && lost > 0 {
        bail!("{lost} transactions failed or were dropped");
    }
    Ok(())
}

/// Transactions timed alone on the idle network before the load.
const IDLE_SAMPLES: usize = 5;

/// The client accounts with the next nonce each may use on the nodes' chain.
async fn next_nonces(targets: &[Target]) -> anyhow::Result<Accounts> {
    #[derive(serde::Deserialize)]
    struct Account {
        account: String,
        next_nonce: u64,
    }
    let keys: Vec<ledger_core::Keypair> = (0..BENCH_ACCOUNTS).map(bench_account).collect();
    let doctor = health_workflow::demo_keypair("dr_alice");
    let mut api = http::Api::connect(targets[0].api).await?;
    let listed: Vec<Account> = api.get_json("/accounts").await?;
    let known: std::collections::HashMap<String, u64> = listed
        .into_iter()
        .map(|a| (a.account, a.next_nonce))
        .collect();
    let next_of = |k: &ledger_core::Keypair| known.get(&k.account().to_string()).copied();
    let next = keys.iter().map(|k| next_of(k).unwrap_or(1)).collect();
    let doctor_next = next_of(&doctor).unwrap_or(1);
    Ok(Accounts::new(keys, next, doctor, doctor_next))
}
