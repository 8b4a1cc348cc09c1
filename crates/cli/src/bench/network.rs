//! The bench network: its genesis (the demo care team as producers, and funded client
//! accounts that only the load generator signs for), its files, and the nodes
//! `bench-net` starts on loopback as child processes of its own binary.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use health_workflow::demo::DEMO_USERS;
use health_workflow::demo_keypair;
use ledger_core::{Amount, Genesis, Keypair};

use crate::tools::write_genesis;

/// Name of the bench network.
pub(crate) const BENCH_NETWORK: &str = "healthchain-bench";

/// Client accounts funded at genesis; the load generator signs for them.
pub(crate) const BENCH_ACCOUNTS: usize = 512;

/// Each client account's funds: enough for a transfer of 1 a transaction for longer
/// than any run.
const ACCOUNT_FUNDS: u64 = 1 << 40;

/// The passphrase of the bench network's key files: the bench network is public, like
/// the demo one.
pub(crate) const BENCH_PASSPHRASE: &str = "bench-net";

/// How long a started node may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Client account `i` of the bench network (derived, so anyone can sign for it).
pub(crate) fn bench_account(i: usize) -> Keypair {
    let seed =
        ledger_core::Hash::of_parts(&[b"healthchain/bench-net/account", &(i as u64).to_le_bytes()]);
    Keypair::from_seed(*seed.as_bytes())
}

/// The bench network: the demo roster and producers, proof of work as the demo's,
/// and [`BENCH_ACCOUNTS`] funded client accounts.
pub(crate) fn bench_genesis() -> Genesis {
    let mut genesis = health_workflow::demo::DemoGenesisBuilder::new().build();
    genesis.network = BENCH_NETWORK.to_string();
    genesis
        .balances
        .extend((0..BENCH_ACCOUNTS).map(|i| (bench_account(i).account(), Amount(ACCOUNT_FUNDS))));
    genesis
}

/// The files a node of the bench network starts from.
pub(crate) struct NetworkFiles {
    pub(crate) genesis: PathBuf,
    pub(crate) passphrase: PathBuf,
    /// Each member's key file, in the order of [`DEMO_USERS`].
    pub(crate) keys: Vec<(String, PathBuf)>,
}

/// Writes the bench network's genesis, the members' key files and their passphrase
/// into `dir` (which must not hold them yet).
pub(crate) fn write_network(dir: &Path) -> anyhow::Result<NetworkFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let genesis = dir.join("bench-genesis.json");
    write_genesis(&genesis, &bench_genesis())?;
    let passphrase = dir.join("passphrase.txt");
    let mut file = std::fs::File::create(&passphrase)
        .with_context(|| format!("writing {}", passphrase.display()))?;
    writeln!(file, "{BENCH_PASSPHRASE}")?;
    let mut keys = Vec::new();
    for user in DEMO_USERS {
        let path = dir.join(format!("{}.key", user.username));
        crate::keyfile::write_new(&path, &demo_keypair(user.username), BENCH_PASSPHRASE)
            .with_context(|| format!("writing {}", path.display()))?;
        keys.push((user.username.to_string(), path));
    }
    Ok(NetworkFiles {
        genesis,
        passphrase,
        keys,
    })
}

/// A node started by `bench-net`.
pub(crate) struct LocalNode {
    pub(crate) name: String,
    pub(crate) api: SocketAddr,
    child: Child,
}

/// The nodes started by `bench-net`, in a temporary directory removed when they stop.
pub(crate) struct LocalNetwork {
    pub(crate) nodes: Vec<LocalNode>,
    dir: PathBuf,
}

/// What a starting node printed that bench-net needs.
enum Said {
    Listening(SocketAddr),
    Api(SocketAddr),
}

/// Reads a child's standard output into its log file, passing on where it listens.
fn follow(stdout: impl std::io::Read, mut log: std::fs::File, said: mpsc::Sender<Said>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let _ = writeln!(log, "{line}");
        if let Some(rest) = line.split(" listening on ").nth(1)
            && let Some(addr) = rest.split(',').next().and_then(|a| a.parse().ok())
        {
            let _ = said.send(Said::Listening(addr));
        }
        if let Some(rest) = line.split("block explorer on http://").nth(1)
            && let Some(addr) = rest.trim_end_matches('/').parse().ok()
        {
            let _ = said.send(Said::Api(addr));
        }
    }
}

impl LocalNetwork {
    /// Starts `count` nodes (doctor, lab, pharmacy, in that order) producing blocks
    /// every `interval`, each connected to the ones before it.
    pub(crate) fn start(
        count: usize,
        interval: Duration,
        compact: bool,
    ) -> anyhow::Result<LocalNetwork> {
        let dir = std::env::temp_dir().join(format!("healthchain-bench-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let files = write_network(&dir)?;
        let exe = std::env::current_exe().context("finding the healthchain binary")?;
        let mut network = LocalNetwork {
            nodes: Vec::new(),
            dir,
        };
        let mut peers: Vec<SocketAddr> = Vec::new();
        for (username, key) in files.keys.iter().take(count) {
            let data = network.dir.join(username);
            let mut command = Command::new(&exe);
            command
                .arg("node")
                .arg("--id")
                .arg(username)
                .arg("--port")
                .arg("0")
                .arg("--api")
                .arg("127.0.0.1:0")
                .arg("--genesis")
                .arg(&files.genesis)
                .arg("--key")
                .arg(key)
                .arg("--passphrase-file")
                .arg(&files.passphrase)
                .arg("--data-dir")
                .arg(&data)
                .arg("--block-interval")
                .arg(interval.as_millis().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(std::fs::File::create(
                    network.dir.join(format!("{username}.err")),
                )?));
            if !compact {
                command.arg("--no-compact-blocks");
            }
            if !peers.is_empty() {
                let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
                command.arg("--peers").arg(list.join(","));
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("starting node {username}"))?;
            let stdout = child.stdout.take().context("the node's output")?;
            let log = std::fs::File::create(network.dir.join(format!("{username}.log")))?;
            let (said_tx, said) = mpsc::channel();
            std::thread::spawn(move || follow(stdout, log, said_tx));
            let (mut listen, mut api) = (None, None);
            while listen.is_none() || api.is_none() {
                match said.recv_timeout(START_TIMEOUT) {
                    Ok(Said::Listening(addr)) => listen = Some(addr),
                    Ok(Said::Api(addr)) => api = Some(addr),
                    Err(_) => {
                        let _ = child.kill();
                        bail!(
                            "node {username} did not start; see {}",
                            network.dir.join(format!("{username}.err")).display()
                        );
                    }
                }
            }
            let (Some(listen), Some(api)) = (listen, api) else {
                unreachable!("both addresses were read")
            };
            peers.push(listen);
            network.nodes.push(LocalNode {
                name: username.clone(),
                api,
                child,
            });
        }
        Ok(network)
    }

    /// Stops the nodes (SIGTERM, then kill after a grace period) and removes their
    /// directory.
    pub(crate) fn stop(mut self) {
        self.stop_nodes();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn stop_nodes(&mut self) {
        for node in &self.nodes {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(node.child.id().to_string())
                .status();
        }
        for node in &mut self.nodes {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match node.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= deadline => {
                        let _ = node.child.kill();
                        let _ = node.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        // A run that failed half-way still leaves no node behind.
        for node in &mut self.nodes {
            if let Ok(None) = node.child.try_wait() {
                let _ = node.child.kill();
                let _ = node.child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_network_is_valid_reproducible_and_funds_its_accounts() {
        let genesis = bench_genesis();
        genesis.check().expect("a valid genesis");
        assert_eq!(genesis.hash(), bench_genesis().hash());
        assert_ne!(genesis.hash(), health_workflow::demo_genesis().hash());
        for i in [0, BENCH_ACCOUNTS - 1] {
            let account = bench_account(i).account();
            assert!(genesis.balances.contains(&(account, Amount(ACCOUNT_FUNDS))));
        }
        assert_ne!(bench_account(0).account(), bench_account(1).account());
    }

    #[test]
    fn a_node_s_addresses_are_read_from_its_output() {
        let (tx, rx) = mpsc::channel();
        let out = "Network 'x'\nNode dr_alice listening on 127.0.0.1:4100, data in /d, chain height 0\n\
                   API, metrics and block explorer on http://127.0.0.1:8100/\n";
        let log = tempfile::tempfile().expect("a temporary file");
        follow(out.as_bytes(), log, tx);
        let said: Vec<Said> = rx.try_iter().collect();
        assert!(matches!(said[0], Said::Listening(a) if a.port() == 4100));
        assert!(matches!(said[1], Said::Api(a) if a.port() == 8100));
    }
}
