//! Running a node: `healthchain doctor|lab|pharmacy` (with the REPL) and
//! `healthchain node` (without), on the demo network or on a real one.
//!
//! The node runtime (`p2p`) runs on a tokio runtime; the REPL runs on the main thread
//! and reaches the node through its handle ([`NodeBackend`]). Node events are printed
//! as they come, above the prompt on a terminal. The patient registry CSV in the data
//! directory is rewritten whenever the chain changes.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use health_workflow::seal::{Binding, EncryptionKey, SealedBody};
use health_workflow::{
    BodyReader, Credentials, Event, EventError, EventKind, HealthPolicy, HealthTx, PatientId,
    Section, demo_genesis, is_demo,
};
use ledger_core::sealed::SealedRef;
use ledger_core::{AccountId, Genesis, Hash, Keypair, TxError, TxId};
use p2p::store::RedbStore;
use p2p::{NodeConfig, NodeEvent, NodeHandle, PeerInfo, Vault, open_ledger, spawn};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::args::{NodeArgs, NodeRole};
use crate::chaingen::bind_genesis;
use crate::input::{Input, Line, Printer};
use crate::repl::{Backend, Conversation, Flow, Logins, MineOutcome, Mined, Repl, SyncRequest};
use crate::{command, tools};

/// The node handle type of this network.
pub(crate) type Handle = NodeHandle<HealthPolicy, RedbStore<Event>>;

/// File name of the patient registry CSV in the data directory.
pub(crate) const REGISTRY_FILE: &str = "patient_registry.csv";

/// Longest the registry CSV lags the chain while blocks keep arriving.
const REGISTRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The session backend of a running node: every call is a message to the node task.
pub(crate) struct NodeBackend {
    handle: Handle,
    runtime: tokio::runtime::Handle,
}

impl Backend for NodeBackend {
    type Store = RedbStore<Event>;

    fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&health_workflow::HealthLedger<Self::Store>) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        Ok(self.runtime.block_on(self.handle.query(f))?)
    }

    fn submit(&self, tx: HealthTx) -> anyhow::Result<Result<TxId, TxError<EventError>>> {
        Ok(self.runtime.block_on(self.handle.submit_transaction(tx))?)
    }

    fn submit_sealed(
        &self,
        tx: HealthTx,
        bodies: Vec<SealedBody>,
    ) -> anyhow::Result<Result<TxId, TxError<EventError>>> {
        Ok(self
            .runtime
            .block_on(self.handle.submit_sealed(tx, bodies))?)
    }

    fn mine(&self, keys: &Keypair) -> anyhow::Result<MineOutcome> {
        let pending = self.query(|ledger| ledger.mempool().len())?;
        if pending == 0 {
            return Ok(MineOutcome::NothingPending);
        }
        let mined = match self.runtime.block_on(self.handle.mine(keys.clone()))? {
            Ok(mined) => mined,
            Err(e) => return Ok(MineOutcome::Failed(e)),
        };
        let hash = mined.hash;
        let block = self.query(move |ledger| ledger.block(&hash).ok().flatten())?;
        Ok(MineOutcome::Mined(Mined {
            height: mined.height,
            hash,
            block,
        }))
    }

    fn peers(&self) -> anyhow::Result<Vec<PeerInfo>> {
        Ok(self.runtime.block_on(self.handle.peers())?)
    }

    fn sync(&self) -> anyhow::Result<SyncRequest> {
        let asked = self.runtime.block_on(self.handle.sync())?;
        let after = self.query(|ledger| ledger.tip().height)?;
        Ok(SyncRequest { asked, after })
    }
}

/// The REPL's conversation over the line input.
struct Prompted<'a> {
    input: &'a mut Input,
    ended: bool,
}

impl Conversation for Prompted<'_> {
    fn ask(&mut self, question: &str) -> Option<String> {
        self.read(question, false)
    }

    fn ask_secret(&mut self, question: &str) -> Option<String> {
        self.read(question, true)
    }

    fn say(&mut self, line: &str) {
        println!("{line}");
    }
}

impl Prompted<'_> {
    fn read(&mut self, question: &str, secret: bool) -> Option<String> {
        let line = if secret {
            self.input.secret(question)
        } else {
            self.input.answer(question)
        };
        match line {
            Ok(Line::Text(text)) => Some(text),
            Ok(Line::End) => {
                self.ended = true;
                None
            }
            Ok(Line::Interrupted) => None,
            Err(e) => {
                tracing::warn!("cannot read input: {e}");
                self.ended = true;
                None
            }
        }
    }
}

/// The network a node joins, and how its users log in.
struct Network {
    genesis: Genesis,
    logins: Logins,
    /// The key that produces blocks mined while nobody is logged in.
    producer: Keypair,
    /// The roster key this node holds, if any.
    member_key: Option<Keypair>,
}

/// The demo key that produces a node's blocks while nobody is logged in: its role's
/// demo member (`dr_alice` on a doctor node, and so on); a node without a role takes
/// the member its name points to, in turn.
pub(crate) fn demo_producer(role: Option<NodeRole>, name: &str) -> Keypair {
    let member = |wanted: health_workflow::Role| {
        health_workflow::demo::DEMO_USERS
            .iter()
            .find(|u| u.role == wanted)
            .map(|u| u.username)
    };
    let username = match role.and_then(|r| member(r.member_role())) {
        Some(username) => username,
        None => {
            let users = health_workflow::demo::DEMO_USERS;
            let pick = name.bytes().fold(0usize, |n, b| n.wrapping_add(b.into()));
            users[pick % users.len()].username
        }
    };
    health_workflow::demo_keypair(username)
}

/// Who is at a node's prompt.
pub(crate) enum Front {
    /// A member of the care team, with the REPL of its role.
    Member(NodeRole),
    /// A patient, with the patient's REPL, holding the patient's key (read from its
    /// file at start).
    Patient {
        /// The patient's signing key.
        keys: Box<Keypair>,
        /// The key file it came from.
        path: PathBuf,
    },
    /// Nobody: the node runs until interrupted.
    Headless,
}

impl Front {
    fn role(&self) -> Option<NodeRole> {
        match self {
            Front::Member(role) => Some(*role),
            Front::Patient { .. } | Front::Headless => None,
        }
    }
}

/// The network a patient's node joins: the genesis file given, else the demo network.
fn patient_network(args: &NodeArgs, keys: &Keypair, path: &Path) -> anyhow::Result<Network> {
    let genesis = match &args.genesis {
        Some(path) => tools::read_genesis(path)?,
        None => demo_genesis(),
    };
    if is_demo(&genesis) {
        println!(
            "DEMO network '{}' (genesis {}): the demo keys are public; never use it for real patients.",
            genesis.network,
            genesis.hash()
        );
    }
    Ok(Network {
        genesis,
        // A patient's node produces no block and logs in nobody but the patient.
        logins: Logins::KeyFile {
            path: path.to_path_buf(),
            keys: Box::new(keys.clone()),
        },
        producer: keys.clone(),
        member_key: Some(keys.clone()),
    })
}

fn network(args: &NodeArgs, name: &str, role: Option<NodeRole>) -> anyhow::Result<Network> {
    match (&args.genesis, &args.key) {
        (Some(genesis_path), Some(key_path)) => {
            let genesis = tools::read_genesis(genesis_path)?;
            let keys = tools::read_key(key_path, args.passphrase_file.as_deref())?;
            let Some(member) = genesis.member(&keys.account()) else {
                bail!(
                    "the key in {} ({}) is not a member of network '{}'",
                    key_path.display(),
                    keys.account(),
                    genesis.network
                );
            };
            println!(
                "Network '{}' (genesis {}), this node's user: {} ({})",
                genesis.network,
                genesis.hash(),
                member.username,
                member.role
            );
            if is_demo(&genesis) {
                println!(
                    "WARNING: this genesis uses the published DEMO keys: never use it for real patients."
                );
            }
            Ok(Network {
                genesis,
                producer: keys.clone(),
                member_key: Some(keys.clone()),
                logins: Logins::KeyFile {
                    path: key_path.clone(),
                    keys: Box::new(keys),
                },
            })
        }
        _ => {
            let genesis = demo_genesis();
            println!(
                "DEMO network '{}' (genesis {}): the demo logins and signing keys are public; \
                 never use it for real patients. Use --genesis and --key for a real network.",
                genesis.network,
                genesis.hash()
            );
            Ok(Network {
                genesis,
                logins: Logins::Demo(Credentials::demo()),
                // Blocks mined before anyone logs in are produced under the key of the
                // node's role on the demo network: only the care team produces blocks.
                producer: demo_producer(role, name),
                member_key: role.map(|_| demo_producer(role, name)),
            })
        }
    }
}

/// How this node gives a body it holds to a reader it was not sealed to, when consent
/// lets the reader read it (a grant given later, a break-glass read): the data key,
/// opened with this node's key, wrapped to the reader's too.
fn rewrapper(genesis: ledger_core::BlockHash, keys: &Keypair) -> p2p::Rewrap {
    let holder = keys.account();
    let key = Arc::new(EncryptionKey::of_member(keys));
    Arc::new(move |body, label, reader, reader_key| {
        let kind = EventKind::from_code(label.kind)?;
        let patient = PatientId(uuid::Uuid::from_bytes(label.subject));
        let binding = Binding::new(genesis, label.author, patient, kind);
        let reader = health_workflow::seal::Reader {
            account: *reader,
            key: *reader_key,
        };
        health_workflow::seal::rewrap(body, &binding, &holder, &key, &reader, &mut rand::rng()).ok()
    })
}

fn resolve_peers(peers: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    peers
        .iter()
        .map(|peer| {
            peer.to_socket_addrs()
                .with_context(|| format!("cannot resolve peer {peer}"))?
                .next()
                .with_context(|| format!("peer {peer} has no address"))
        })
        .collect()
}

/// Runs a node; with a `role`, its REPL on standard input, otherwise until Ctrl-C or
/// SIGTERM.
pub(crate) fn run(role: Option<NodeRole>, args: NodeArgs) -> anyhow::Result<()> {
    run_front(role.map_or(Front::Headless, Front::Member), args)
}

/// Runs a node for `front`: its REPL on standard input, or none until Ctrl-C or
/// SIGTERM.
pub(crate) fn run_front(front: Front, args: NodeArgs) -> anyhow::Result<()> {
    let role = front.role();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    /// Port of a headless node unless told otherwise.
    const NODE_PORT: u16 = 5000;
    /// Port of a patient's node unless told otherwise.
    const PATIENT_PORT: u16 = 5004;
    let port = args.port.unwrap_or_else(|| match &front {
        Front::Member(role) => role.default_port(),
        Front::Patient { .. } => PATIENT_PORT,
        Front::Headless => NODE_PORT,
    });
    let host = args.host.clone();
    let listener = runtime.block_on(async {
        tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .with_context(|| format!("cannot listen on {host}:{port}"))
    })?;
    // With `--port 0` the name shows the port actually bound.
    let port = listener.local_addr().map_or(port, |a| a.port());
    let name = args.id.clone().unwrap_or_else(|| match &front {
        Front::Member(role) => role.default_node_name(port),
        Front::Patient { .. } => format!("PatientNode-{port}"),
        Front::Headless => format!("Node-{port}"),
    });
    let network = match &front {
        Front::Patient { keys, path } => patient_network(&args, keys, path)?,
        _ => network(&args, &name, role)?,
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("healthchain-data").join(&name));
    bind_genesis(&data_dir, &network.genesis)?;
    let store = RedbStore::open(&data_dir)
        .with_context(|| format!("opening the block store in {}", data_dir.display()))?;
    let vault = Vault::open(&data_dir)
        .with_context(|| format!("opening the vault in {}", data_dir.display()))?;
    let (ledger, report) = open_ledger(network.genesis.clone(), HealthPolicy, store)
        .with_context(|| format!("loading the chain stored in {}", data_dir.display()))?;
    for (hash, failure) in &report.failed {
        println!("WARNING: stored block {hash} was not loaded: {failure}");
    }
    let mut config = NodeConfig::new(name.clone());
    config.peers = resolve_peers(&args.peers)?;
    // The node proves, and keeps bodies for, its user's roster key: the key file's on
    // a real network, the role's demo member on the demo one. A node without either
    // (`healthchain node` without `--key`) holds no roster key: it syncs and verifies
    // the public chain and is served no sealed body.
    config.member_key = network.member_key.clone();
    config.vault = Some(vault.clone());
    config.rewrap = network
        .member_key
        .as_ref()
        .map(|keys| rewrapper(network.genesis.hash(), keys));
    config.compact_blocks = !args.no_compact_blocks;
    if let Some(millis) = args.block_interval {
        config.producer = Some(network.producer.clone());
        config.block_interval = Some(std::time::Duration::from_millis(millis));
    }
    let shutdown = CancellationToken::new();
    let (mut node, signals) = {
        let _context = runtime.enter();
        let signals = Signals::install();
        (spawn(listener, config, ledger, shutdown.clone())?, signals)
    };
    let handle = node.handle();
    // Subscribed before the node started, so no early event is missed.
    let events = node.events();
    let care_events = node.events();
    let tip = runtime.block_on(handle.tip())?;
    println!(
        "Node {name} listening on {}, data in {}, chain height {}",
        handle.local_addr(),
        data_dir.display(),
        tip.height
    );
    if let Some(addr) = args.api {
        let bound = runtime
            .block_on(crate::api::start(
                handle.clone(),
                addr,
                shutdown.clone(),
                crate::api::Access {
                    logins: network.logins.clone(),
                    vault: vault.clone(),
                },
            ))
            .with_context(|| format!("cannot serve the API on {addr}"))?;
        println!("API, metrics and block explorer on http://{bound}/");
    }

    let mut input = (!matches!(front, Front::Headless)).then(Input::from_stdin);
    let printer = input.as_mut().map_or_else(Printer::default, Input::printer);
    let registry = data_dir.join(REGISTRY_FILE);
    runtime.spawn(report_events(
        handle.clone(),
        events,
        printer.clone(),
        Registry {
            path: registry,
            vault: vault.clone(),
            reader: network.member_key.clone(),
            names: Arc::default(),
        },
        shutdown.clone(),
    ));

    runtime.spawn(
        crate::care::Steward {
            handle: handle.clone(),
            vault: vault.clone(),
            member: network.member_key.clone(),
            printer: printer.clone(),
            done: std::collections::HashSet::new(),
        }
        .run(care_events, shutdown.clone()),
    );

    let (stopped_tx, stopped) = watch::channel(false);
    let join = runtime.spawn(async move {
        let result = node.join().await;
        let _ = stopped_tx.send(true);
        result
    });
    runtime.spawn(stop_on_signal(
        signals,
        shutdown.clone(),
        stopped,
        input.is_some(),
    ));

    if let Some(input) = input.as_mut() {
        let backend = NodeBackend {
            handle: handle.clone(),
            runtime: runtime.handle().clone(),
        };
        let history = data_dir.join(HISTORY_FILE);
        let result = match front {
            Front::Member(role) => {
                let mut session =
                    Repl::new(backend, role, name, network.logins, network.producer, vault)
                        .with_patients_dir(data_dir.join(crate::patient::PATIENTS_DIR));
                repl(&mut session, input, &history)
            }
            Front::Patient { keys, path } => {
                let mut session =
                    crate::patient::PatientRepl::new(backend, name, *keys, path, vault);
                repl(&mut session, input, &history)
            }
            Front::Headless => Ok(()),
        };
        shutdown.cancel();
        runtime.block_on(join)??;
        result?;
        println!("Node stopped.");
    } else {
        runtime.block_on(join)??;
        println!("Node stopped.");
    }
    Ok(())
}

/// File in the data directory keeping the terminal's command history.
pub(crate) const HISTORY_FILE: &str = "repl_history.txt";

/// A prompt's session: a member's [`Repl`] or a patient's.
pub(crate) trait Session {
    /// The prompt shown before each command.
    fn prompt(&self) -> String;
    /// Runs one line; `Exit` ends the session.
    fn handle_line(&mut self, line: &str, io: &mut dyn Conversation) -> anyhow::Result<Flow>;
}

impl<B: crate::repl::Backend> Session for Repl<B> {
    fn prompt(&self) -> String {
        Repl::prompt(self)
    }

    fn handle_line(&mut self, line: &str, io: &mut dyn Conversation) -> anyhow::Result<Flow> {
        Repl::handle_line(self, line, io)
    }
}

/// Reads and runs commands until `exit` or the end of input.
fn repl(session: &mut dyn Session, input: &mut Input, history: &Path) -> anyhow::Result<()> {
    input.load_history(history);
    let result = repl_loop(session, input);
    input.save_history(history);
    result
}

fn repl_loop(session: &mut dyn Session, input: &mut Input) -> anyhow::Result<()> {
    loop {
        let prompt = session.prompt();
        let line = match input.command(&prompt)? {
            Line::Text(text) => text,
            Line::Interrupted => {
                println!("Interrupted: shutting down the node.");
                return Ok(());
            }
            Line::End => return Ok(()),
        };
        if command::may_remember(&line) {
            input.remember(&line);
        }
        let mut io = Prompted {
            input: &mut *input,
            ended: false,
        };
        let flow = session.handle_line(&line, &mut io)?;
        if flow == Flow::Exit || io.ended {
            return Ok(());
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, then shuts the node down gracefully. With a REPL the
/// main thread may be blocked reading input, so the process exits once the node has
/// stopped.
async fn stop_on_signal(
    signals: Signals,
    shutdown: CancellationToken,
    mut stopped: watch::Receiver<bool>,
    exit_when_stopped: bool,
) {
    tokio::select! {
        () = signals.recv() => {}
        () = shutdown.cancelled() => return,
    }
    eprintln!("Signal received: shutting down the node.");
    shutdown.cancel();
    if exit_when_stopped {
        let _ = stopped.wait_for(|s| *s).await;
        println!("Node stopped.");
        std::process::exit(0);
    }
}

/// The signals that stop a node, registered as soon as the node runs (a signal that
/// arrived before registration would kill the process without a clean shutdown).
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers; must run inside the runtime.
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for Ctrl-C or SIGTERM.
    async fn recv(mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => {}
                () = next(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Where the registry CSV goes, and who reads the names in it: the node's own member,
/// from the node's vault (nobody on a node holding no roster key).
struct Registry {
    path: PathBuf,
    vault: Vault,
    reader: Option<Keypair>,
    /// Names already opened, by the ciphertext of their demographics: each rewrite
    /// opens only the registrations that are new since the last (a body never changes).
    names: Arc<Mutex<HashMap<Hash, String>>>,
}

/// Prints node events and keeps the registry CSV up to date.
async fn report_events(
    handle: Handle,
    mut events: tokio::sync::broadcast::Receiver<NodeEvent<EventError>>,
    printer: Printer,
    registry: Registry,
    shutdown: CancellationToken,
) {
    // Rewriting the registry costs O(patients): while blocks stream in (a sync, or a
    // busy network), it is rewritten when the events pause, or at most every
    // `REGISTRY_INTERVAL`; and never sooner after the last rewrite than ten times what
    // that one took, so it never takes more than a tenth of a core.
    let mut cost = timed_registry(&handle, &registry).await;
    let mut stale = false;
    let mut written = std::time::Instant::now();
    loop {
        let spacing = cost * REGISTRY_COST_SHARE;
        let due = stale.then(|| written + spacing.max(REGISTRY_INTERVAL));
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(due) => {
                cost = timed_registry(&handle, &registry).await;
                stale = false;
                written = std::time::Instant::now();
                continue;
            }
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                printer.print(format!("* ({n} node events not shown)"));
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let Some(line) = describe(&event) {
            printer.print(line);
        }
        stale |= matches!(event, NodeEvent::TipChanged(_));
        if stale && events.is_empty() && written.elapsed() >= spacing {
            cost = timed_registry(&handle, &registry).await;
            stale = false;
            written = std::time::Instant::now();
        }
    }
}

/// A registry rewrite costs at most 1 / this of the time between rewrites.
const REGISTRY_COST_SHARE: u32 = 10;

/// Rewrites the registry; returns how long it took.
async fn timed_registry(handle: &Handle, registry: &Registry) -> std::time::Duration {
    let started = std::time::Instant::now();
    write_registry(handle, registry).await;
    started.elapsed()
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn describe(event: &NodeEvent<EventError>) -> Option<String> {
    Some(match event {
        NodeEvent::BlockAccepted {
            hash,
            height,
            from: Some(peer),
        } => format!("* Block #{height} {hash:#} received from {peer}"),
        NodeEvent::BlockRejected { error, from } => match from {
            Some(peer) => format!("* Block from {peer} refused: {error}"),
            None => format!("* Block refused: {error}"),
        },
        NodeEvent::TipChanged(change) if change.is_reorg() => format!(
            "* Chain reorganised: now at block #{} {:#} ({} block(s) abandoned, {} transaction(s) \
             back to pending, {} dropped)",
            change.new_height,
            change.new_tip,
            change.disconnected.len(),
            change.returned.len(),
            change.dropped.len()
        ),
        NodeEvent::TipChanged(change) => format!(
            "* Chain tip is now block #{} {:#}",
            change.new_height, change.new_tip
        ),
        NodeEvent::TxAccepted {
            id,
            from: Some(peer),
        } => format!("* Transaction {id:#} received from {peer}"),
        NodeEvent::TxRejected {
            error,
            from: Some(peer),
        } => format!("* Transaction from {peer} refused: {error}"),
        NodeEvent::PeerUp(info) => format!("* Connected to peer {} at {}", info.name, info.addr),
        NodeEvent::PeerDown { info, reason } => {
            format!(
                "* Peer {} at {} disconnected: {reason}",
                info.name, info.addr
            )
        }
        NodeEvent::PeerRefused { addr, reason } => {
            format!("* Connection with {addr} refused: {reason}")
        }
        NodeEvent::PeerBanned {
            addr,
            duration,
            offence,
        } => format!(
            "* Peer {addr} banned for {}s: {offence}",
            duration.as_secs()
        ),
        _ => return None,
    })
}

/// Rewrites the registry CSV from the node's chain (through a temporary file, so a
/// reader never sees half a file). The ledger's task only copies the public rows and
/// each registration's sealed name; the names are opened from the vault, and the file
/// written, on a blocking thread.
async fn write_registry(handle: &Handle, registry: &Registry) {
    let rows = handle
        .query(|ledger| {
            let state = ledger.state().app();
            let rows = health_workflow::registry_rows(state, ledger.genesis(), |_| None);
            // An erased patient has no row (and its name leaves the cache below).
            let sealed: Vec<_> = state
                .patients()
                .filter(|p| !p.is_erased())
                .map(|p| (p.registered.author, p.id, p.demographics))
                .collect();
            (ledger.genesis_hash(), rows, sealed)
        })
        .await;
    let Ok((genesis, mut rows, sealed)) = rows else {
        return;
    };
    let path = registry.path.clone();
    let vault = registry.vault.clone();
    let reader = registry.reader.clone();
    let names = Arc::clone(&registry.names);
    let written = tokio::task::spawn_blocking(move || {
        if let Some(reader) = reader {
            let mut names = names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            open_names(&mut rows, sealed, genesis, &reader, &vault, &mut names);
        }
        let mut bytes = Vec::new();
        health_workflow::write_rows(&rows, &mut bytes)
            .map_err(|e| format!("cannot build the patient registry: {e}"))?;
        let temp = path.with_extension("csv.tmp");
        std::fs::write(&temp, &bytes)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("{e}"),
        Err(e) => tracing::warn!("writing the patient registry failed: {e}"),
    }
}

/// Fills in the names of `rows` that `reader` may read, from `vault`.
fn open_names(
    rows: &mut [health_workflow::RegistryRow],
    sealed: Vec<(AccountId, PatientId, SealedRef)>,
    genesis: ledger_core::BlockHash,
    reader: &Keypair,
    vault: &Vault,
    names: &mut HashMap<Hash, String>,
) {
    let key = EncryptionKey::of_member(reader);
    let opener = BodyReader::new(genesis, reader.account(), &key);
    let live: std::collections::HashSet<Hash> =
        sealed.iter().map(|(_, _, d)| d.ciphertext_hash).collect();
    names.retain(|hash, _| live.contains(hash));
    for (row, (author, patient, demographics)) in rows.iter_mut().zip(sealed) {
        if let Some(name) = names.get(&demographics.ciphertext_hash) {
            row.patient_name = name.clone();
            continue;
        }
        let binding = Binding::new(genesis, author, patient, EventKind::PatientRegistration);
        let reading = opener.read_sealed(&binding, Section::Demographics, &demographics, |h| {
            vault.get(h).ok().flatten()
        });
        if let Some(body) = reading.clear() {
            row.patient_name = body.summary();
            names.insert(demographics.ciphertext_hash, row.patient_name.clone());
        }
    }
}
