//! Crash safety of a node's block store: a node (the victim) is killed with SIGKILL at
//! varying points, many times, while it receives blocks from a peer and while it mines,
//! and restarted each time.
//!
//! The peer it syncs from (the control) runs throughout on a chain made by
//! `healthchain generate`, never crashes, and receives what the victim mines. After
//! every kill, before the restart, the test opens the victim's store itself: it must
//! open, hold one chain from genesis without a gap (one block per height, each the
//! child of the one below, each readable and intact), agree with the control's chain,
//! and hold every block the victim acknowledged (printed as received, as the new tip
//! or as mined) before it died. On restart the node must load that chain without
//! refusing a block and report its height in the start-up line (the tip is the last
//! durable block), then carry on. At the end both nodes hold the same blocks, and
//! `healthchain verify`, re-deriving the state from genesis in each data directory,
//! succeeds for both with the same tip: the same state.
//!
//! A generated data directory belongs to its own network, not the demo one, so both
//! nodes run with `--genesis` (the directory's `genesis.bin`) and `--key` (a key file
//! of the demo doctor, the producer of the generated blocks, who also mines here).
//!
//! Where to kill is drawn from a seed, printed at the start with every kill; set
//! `HEALTHCHAIN_CRASH_SEED` to replay a run. A heavier variant (a longer chain, more
//! kills) is ignored by default:
//! `cargo test -p healthchain-cli --test crash -- --ignored`.

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Proc, binary};
use health_workflow::Event;
use healthchain_cli::keyfile::{self, KdfCost};
use ledger_core::{BlockHash, BodySource};
use p2p::store::{BlockStore, RedbStore};

/// Passphrase of the key file both nodes run with (and of the victim's `login`).
const PASSPHRASE: &str = "crash test passphrase";

/// Seed used unless `HEALTHCHAIN_CRASH_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x00c0_ffee_d00d;

/// How much to do.
struct Plan {
    /// Blocks of the control's chain.
    blocks: u64,
    /// Transactions in each of them.
    txs_per_block: u32,
    /// Kills while the victim syncs the control's chain.
    sync_kills: usize,
    /// Kills while the victim mines on top of it.
    mining_kills: usize,
}

/// A small deterministic generator (splitmix64): kill points must replay from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Where a victim run is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as it prints its start-up line: the store was just reloaded, the peer
    /// is being dialled.
    StartUp,
    /// As soon as the control reports it connected: the first blocks are being asked
    /// for. (The control's report, not the victim's: a node may miss the event of a
    /// connection made before its output subscribed to its events.)
    PeerUp,
    /// As soon as it reports a block at this height or above, in the middle of a sync.
    /// (Its reports trail its store: blocks are committed before they are printed.)
    Height(u64),
    /// This many milliseconds after the control reports it connected: an instant drawn
    /// from the seed, which falls anywhere in the fetching, checking and committing of
    /// a batch, independently of what the node has printed.
    After(u64),
    /// After `mined` rounds of register-and-mine, right after a new patient's
    /// registration was accepted into the mempool (nothing durable is owed).
    Registered { mined: u64 },
    /// After `mined` rounds, right after the `mine` command was sent: while the block
    /// is mined, stored or announced.
    Mining { mined: u64 },
    /// After `mined` rounds, the last `mine` acknowledged.
    Mined { mined: u64 },
}

/// The height a node's output line reports: a block received, the new tip, a block
/// mined here. Every one of them was stored (committed) before it was printed.
fn reported_height(line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix("* Block #")
        .or_else(|| line.strip_prefix("* Chain tip is now block #"))
        .or_else(|| line.strip_prefix("Mined block #"))?;
    rest.split(' ').next()?.parse().ok()
}

/// The highest height reported in `lines` (0 if none).
fn highest(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| reported_height(l))
        .max()
        .unwrap_or(0)
}

/// The blocks mined here that `lines` acknowledge: `Mined block #HEIGHT HASH`.
fn mined(lines: &[String]) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let mut words = l.strip_prefix("Mined block #")?.split(' ');
            let height = words.next()?.parse().ok()?;
            Some((height, words.next()?.to_string()))
        })
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The files both nodes run with.
struct Network {
    genesis: PathBuf,
    key: PathBuf,
    passphrase: PathBuf,
}

impl Network {
    /// A node of this network on a free port, and the chain height of its start-up
    /// line, after checking that no stored block was refused on loading.
    fn start(
        &self,
        name: &str,
        command: &str,
        data_dir: &Path,
        peer: Option<&str>,
    ) -> (Proc, String, u64) {
        let mut args = vec![
            command,
            "--port",
            "0",
            "--id",
            name,
            "--data-dir",
            path_str(data_dir),
            "--genesis",
            path_str(&self.genesis),
            "--key",
            path_str(&self.key),
            "--passphrase-file",
            path_str(&self.passphrase),
        ];
        if let Some(peer) = peer {
            args.extend(["--peers", peer]);
        }
        let mut proc = Proc::start(name, &args);
        let line = proc.expect_contains(" listening on ");
        let refused: Vec<&String> = proc
            .seen
            .iter()
            .filter(|l| l.starts_with("WARNING: stored block"))
            .collect();
        assert!(
            refused.is_empty(),
            "{name} refused stored blocks: {refused:?}"
        );
        let addr = line
            .split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .expect("the start-up line names the address")
            .to_string();
        let height = line
            .rsplit_once("chain height ")
            .and_then(|(_, h)| h.trim().parse().ok())
            .unwrap_or_else(|| panic!("the start-up line gives the height: {line}"));
        (proc, addr, height)
    }
}

/// Waits until `proc` has reported a height of at least `height` (in lines already
/// read or to come); it may take long, but each report must follow the last within
/// the harness's timeout.
fn wait_height(proc: &mut Proc, start_height: u64, height: u64) {
    let mut reached = start_height.max(highest(&proc.seen));
    while reached < height {
        let line = proc.expect(&format!("progress towards block #{height}"), |l| {
            reported_height(l).is_some()
        });
        reached = reached.max(reported_height(&line).unwrap_or(0));
    }
}

/// Opens a data directory's block store as a restarting node would, and checks that
/// it holds one chain from genesis: one block per height from 1, each the child of
/// the one below it, each readable and hashing to its key. Returns the hashes by
/// height (index 0 is height 1).
fn durable_chain(dir: &Path, genesis: BlockHash) -> Vec<BlockHash> {
    let store: RedbStore<Event> = RedbStore::open(dir)
        .unwrap_or_else(|e| panic!("the store in {} opens: {e}", dir.display()));
    let stored = store.stored().expect("the stored blocks are listed");
    let mut chain = Vec::with_capacity(stored.len());
    let mut parent = genesis;
    for (index, (height, hash)) in stored.iter().enumerate() {
        assert_eq!(
            height.0,
            index as u64 + 1,
            "a gap or a second block at height {height}"
        );
        let block = store
            .get(hash)
            .unwrap_or_else(|e| panic!("block #{height} {hash} is readable: {e}"))
            .unwrap_or_else(|| panic!("block #{height} {hash} is listed but missing"));
        assert_eq!(
            block.header.prev, parent,
            "block #{height} {hash} is not the child of the block below it"
        );
        parent = *hash;
        chain.push(*hash);
    }
    chain
}

/// `healthchain verify` on a data directory: its summary and tip lines.
fn verify(dir: &Path) -> (String, String) {
    let output = binary()
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "verify {} failed:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("verify prints '{prefix}': {stdout}"))
            .to_string()
    };
    let summary = line("Verified ");
    // "Verified N blocks, M transactions in ..." without the timing.
    let counts = summary.split(" in ").next().unwrap_or_default().to_string();
    (counts, line("Tip: "))
}

fn crash_and_restart(plan: &Plan) {
    let seed = std::env::var("HEALTHCHAIN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("crash test seed {seed} (replay with HEALTHCHAIN_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let dir = tempfile::tempdir().expect("temp dir");
    let control_dir = dir.path().join("control");
    let victim_dir = dir.path().join("victim");

    // The control's chain.
    let output = binary()
        .args(["generate", "--blocks", &plan.blocks.to_string()])
        .args(["--txs-per-block", &plan.txs_per_block.to_string()])
        .arg("--data-dir")
        .arg(&control_dir)
        .output()
        .expect("generate runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let genesis = control_dir.join(healthchain_cli::chaingen::GENESIS_FILE);
    let genesis_hash = healthchain_cli::tools::read_genesis(&genesis)
        .expect("the generated genesis reads")
        .hash();
    // A generated chain is produced under the demo doctor's key; the nodes run with a
    // key file of that member (cheap to open: the test restarts often).
    let key = dir.path().join("dr_alice.key");
    let sealed = keyfile::seal(
        &health_workflow::demo_keypair("dr_alice"),
        PASSPHRASE,
        KdfCost {
            memory_kib: 8,
            passes: 1,
            lanes: 1,
        },
    )
    .expect("the key seals");
    std::fs::write(&key, sealed).expect("write the key file");
    let passphrase = dir.path().join("passphrase.txt");
    std::fs::write(&passphrase, format!("{PASSPHRASE}\n")).expect("write the passphrase");
    let network = Network {
        genesis,
        key,
        passphrase,
    };
    let source = durable_chain(&control_dir, genesis_hash);
    assert_eq!(source.len() as u64, plan.blocks);

    let (mut control, control_addr, control_height) =
        network.start("control", "node", &control_dir, None);
    assert_eq!(control_height, plan.blocks);

    // What the victim's store holds (checked after each kill) and the blocks it
    // acknowledged as mined.
    let mut durable = 0u64;
    let mut acknowledged_mined: Vec<(u64, String)> = Vec::new();
    let mut mined_blocks = 0u64;

    let total = plan.sync_kills + plan.mining_kills;
    for kill in 0..total {
        let syncing = kill < plan.sync_kills;
        let command = if syncing { "node" } else { "doctor" };
        let run_started = Instant::now();
        // A name per run, so that the control's report of this connection is told
        // from those of earlier runs.
        let name = format!("victim-{kill}");
        let (mut victim, _, height) =
            network.start(&name, command, &victim_dir, Some(&control_addr));
        assert_eq!(
            height, durable,
            "seed {seed}, run {kill}: the victim restarts at its last durable block"
        );
        let connected = format!("* Connected to peer {name} at ");
        let point = if syncing {
            let left = (plan.sync_kills - kill) as u64;
            let remaining = plan.blocks.saturating_sub(height);
            // A share of what is left to sync, per kill left.
            let share = remaining.div_ceil(left);
            match rng.below(8) {
                _ if remaining == 0 => KillPoint::StartUp,
                0 => KillPoint::StartUp,
                1 => KillPoint::PeerUp,
                // Reports trail the store by hundreds of blocks while syncing: a
                // small target already lands far into the sync.
                2 => KillPoint::Height(height + 1 + rng.below(share / 8 + 1)),
                // About a block of ten transactions a millisecond is stored while
                // syncing here (in the dev profile).
                _ => KillPoint::After(rng.below(share * u64::from(plan.txs_per_block) / 10 + 1)),
            }
        } else {
            // Mining starts on the control's whole chain, so that it only extends it.
            wait_height(&mut victim, height, plan.blocks);
            let mined = rng.below(3);
            match rng.below(3) {
                0 => KillPoint::Registered { mined },
                1 => KillPoint::Mining { mined },
                _ => KillPoint::Mined { mined },
            }
        };
        match point {
            KillPoint::StartUp => {}
            KillPoint::PeerUp => {
                control.expect_contains(&connected);
            }
            KillPoint::Height(target) => wait_height(&mut victim, height, target),
            KillPoint::After(millis) => {
                control.expect_contains(&connected);
                // Not a wait for anything: the kill instant itself.
                std::thread::sleep(Duration::from_millis(millis));
            }
            KillPoint::Registered { mined: rounds }
            | KillPoint::Mining { mined: rounds }
            | KillPoint::Mined { mined: rounds } => {
                victim.run(
                    &format!("login dr_alice \"{PASSPHRASE}\""),
                    "Logged in as dr_alice",
                );
                let register = |victim: &mut Proc, n: u64| {
                    victim.send(&format!("register Crash Patient {n}"));
                    victim.expect_prefix("Patient ID: ");
                };
                for _ in 0..rounds {
                    mined_blocks += 1;
                    register(&mut victim, mined_blocks);
                    victim.run("mine", "Mined block #");
                }
                mined_blocks += 1;
                register(&mut victim, mined_blocks);
                match point {
                    KillPoint::Mining { .. } => victim.send("mine"),
                    KillPoint::Mined { .. } => {
                        victim.run("mine", "Mined block #");
                    }
                    _ => {}
                }
            }
        }
        let lived = run_started.elapsed().as_millis();
        victim.kill();
        // It acknowledged the chain it started with and every block it reported.
        let acknowledged = highest(&victim.seen).max(height);
        let new_mined = mined(&victim.seen);
        drop(victim);

        let chain = durable_chain(&victim_dir, genesis_hash);
        durable = chain.len() as u64;
        eprintln!(
            "seed {seed}, run {kill}: started at #{height}, killed at {point:?} after \
             {lived} ms; acknowledged #{acknowledged}, durable #{durable}"
        );
        assert!(
            durable >= acknowledged,
            "seed {seed}, run {kill}: block #{acknowledged} was acknowledged, only \
             #{durable} is stored"
        );
        let common = chain.len().min(source.len());
        assert_eq!(
            chain[..common],
            source[..common],
            "seed {seed}, run {kill}: the victim's chain left the control's"
        );
        acknowledged_mined.extend(new_mined);
        for (height, hash) in &acknowledged_mined {
            let stored = usize::try_from(*height)
                .ok()
                .and_then(|h| chain.get(h.checked_sub(1)?));
            assert_eq!(
                stored.map(ToString::to_string).as_deref(),
                Some(hash.as_str()),
                "seed {seed}, run {kill}: mined block #{height} {hash} was acknowledged \
                 but is not stored"
            );
        }
    }

    // A last run, not killed: the victim and the control converge.
    let (mut victim, _, height) = network.start("victim", "node", &victim_dir, Some(&control_addr));
    assert_eq!(
        height, durable,
        "seed {seed}: the victim restarts at its last durable block"
    );
    let tip = durable.max(plan.blocks);
    wait_height(&mut victim, height, tip);
    wait_height(&mut control, control_height, tip);
    victim.kill();
    control.kill();
    drop((victim, control));

    let victim_chain = durable_chain(&victim_dir, genesis_hash);
    let control_chain = durable_chain(&control_dir, genesis_hash);
    assert_eq!(victim_chain.len() as u64, tip, "seed {seed}");
    assert!(
        victim_chain == control_chain,
        "seed {seed}: the victim and the control hold different chains"
    );
    assert_eq!(victim_chain[..source.len()], source[..], "seed {seed}");
    assert!(
        acknowledged_mined.len() as u64 <= tip - plan.blocks,
        "seed {seed}: {acknowledged_mined:?}"
    );
    let victim_verified = verify(&victim_dir);
    let control_verified = verify(&control_dir);
    assert_eq!(victim_verified, control_verified, "seed {seed}");
    assert_eq!(
        victim_verified.1,
        format!(
            "Tip: height {tip} hash {}",
            victim_chain[victim_chain.len() - 1]
        ),
        "seed {seed}"
    );
    eprintln!(
        "seed {seed}: {total} kills, {} blocks mined and acknowledged, final tip #{tip}, \
         in {:.1} s",
        acknowledged_mined.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Kills while syncing a few hundred blocks and while mining; a run of CI.
#[test]
fn a_node_killed_while_syncing_and_mining_loses_nothing_acknowledged() {
    crash_and_restart(&Plan {
        blocks: 1_500,
        txs_per_block: 10,
        sync_kills: 10,
        mining_kills: 6,
    });
}

/// The same at a larger scale:
/// `cargo test -p healthchain-cli --test crash -- --ignored`.
#[test]
#[ignore = "heavy: a longer chain and more kills"]
fn many_kills_on_a_longer_chain() {
    crash_and_restart(&Plan {
        blocks: 3_000,
        txs_per_block: 20,
        sync_kills: 30,
        mining_kills: 20,
    });
}
