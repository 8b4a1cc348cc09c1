//! One REPL ([`Repl`]): who is logged in, the active patient, and what each command does.
//!
//! The REPL talks to the ledger only through a [`Backend`] (a running node in the
//! binary, a plain in-memory ledger in unit tests) and to the person only through a
//! [`Conversation`] (questions and answers, output lines), so every command and every
//! wrong input can be tested without a terminal or a network.

use health_workflow::seal::{EncryptionKey, SealedBody};
use health_workflow::{
    Actor, BodyReader, Event, EventError, HealthLedger, HealthPolicy, HealthTx, OrderId, PatientId,
    PrescriptionDraft, PrescriptionId, Section, TestRequest, Written, records,
};
use ledger_core::{
    AccountId, BlockHash, BodySource, Height, Keypair, SharedBlock, Timestamp, TxBody, TxError,
    TxId,
};
use p2p::{MineError, PeerInfo, Vault};
use rand::Rng;

use crate::args::NodeRole;
use crate::command::{self, Command, parse_yes_no, usage};
use crate::lens::{Lens, sealed_marker};
pub(crate) use crate::logins::Logins;

mod care;
use crate::views;

/// What a REPL needs from the ledger it works on.
pub(crate) trait Backend {
    /// Where the ledger keeps block bodies.
    type Store: BodySource<health_workflow::Event> + 'static;

    /// Runs `f` on the ledger and returns its result.
    fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&HealthLedger<Self::Store>) -> R + Send + 'static,
    ) -> anyhow::Result<R>;

    /// Submits a transaction; the inner error is the ledger's refusal.
    fn submit(&self, tx: HealthTx) -> anyhow::Result<Result<TxId, TxError<EventError>>>;

    /// Submits a transaction with its sealed bodies, already in the vault: the node
    /// delivers them to the peers they are sealed to.
    fn submit_sealed(
        &self,
        tx: HealthTx,
        bodies: Vec<SealedBody>,
    ) -> anyhow::Result<Result<TxId, TxError<EventError>>>;

    /// Mines a block of the pending transactions, produced by `keys`: the block, or
    /// why nothing was mined.
    fn mine(&self, keys: &Keypair) -> anyhow::Result<MineOutcome>;

    /// The connected peers.
    fn peers(&self) -> anyhow::Result<Vec<PeerInfo>>;

    /// Asks the peers for blocks this node lacks; whom it asked.
    fn sync(&self) -> anyhow::Result<SyncRequest>;

    /// The current time.
    fn now(&self) -> Timestamp {
        crate::tools::now()
    }
}

/// A block mined by [`Backend::mine`].
pub(crate) struct Mined {
    /// Its height.
    pub(crate) height: Height,
    /// Its hash.
    pub(crate) hash: BlockHash,
    /// The block, if the ledger could read it back.
    pub(crate) block: Option<SharedBlock<HealthPolicy>>,
}

/// What [`Backend::mine`] did.
pub(crate) enum MineOutcome {
    /// Nothing was mined: no transaction is pending.
    NothingPending,
    /// The node could not mine a block.
    Failed(MineError<EventError>),
    /// A block was mined and added to the chain.
    Mined(Mined),
}

/// A request for missing blocks sent by [`Backend::sync`].
pub(crate) struct SyncRequest {
    /// How many peers were asked.
    pub(crate) asked: usize,
    /// The height of this node's tip: the peers are asked for the blocks after it.
    pub(crate) after: Height,
}

/// The person at the prompt.
pub(crate) trait Conversation {
    /// Asks a question; `None` if the input ended or the question was abandoned.
    fn ask(&mut self, question: &str) -> Option<String>;
    /// Asks for a secret (not echoed on a terminal).
    fn ask_secret(&mut self, question: &str) -> Option<String>;
    /// Shows one line.
    fn say(&mut self, line: &str);
}

/// Whether the REPL goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next command.
    Continue,
    /// Leave.
    Exit,
}

/// The state of one REPL.
pub(crate) struct Repl<B> {
    backend: B,
    role: NodeRole,
    node_name: String,
    logins: Logins,
    user: Option<Actor>,
    /// The logged-in user's key: blocks mined while someone is logged in are theirs.
    user_keys: Option<Keypair>,
    /// The logged-in user's encryption key and network, which open what is sealed to
    /// them.
    user_reader: Option<(EncryptionKey, BlockHash)>,
    patient: Option<(PatientId, String)>,
    producer: Keypair,
    /// The node's sealed bodies: those it wrote and those delivered to it.
    vault: Vault,
    /// Where a registration writes the new patient's key file, to hand to the patient
    /// (none: the keys are not kept).
    patients_dir: Option<std::path::PathBuf>,
    /// Bodies the logged-in user opened during the current command without having
    /// written them: recorded on chain when it ends.
    read_log: crate::lens::ReadLog,
    /// Reads recorded by this session, by user, patient and body: each is recorded once.
    recorded: std::collections::HashSet<(AccountId, PatientId, ledger_core::sealed::BodyId)>,
}

/// Why a command did not complete.
pub(crate) enum Failure {
    /// The user's request cannot be done: one line says why, and the REPL goes on.
    Refused(String),
    /// The node itself failed: the REPL stops.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Fatal(error)
    }
}

/// What a command returns: its result, or why it did not complete.
pub(crate) type Outcome<T = ()> = Result<T, Failure>;

/// A refusal of the user's request, with one line saying why.
pub(crate) fn refuse<T>(message: impl Into<String>) -> Outcome<T> {
    Err(Failure::Refused(message.into()))
}

/// Turns an error the user caused into a refusal (for `map_err`).
pub(crate) fn refused(error: impl std::fmt::Display) -> Failure {
    Failure::Refused(error.to_string())
}

fn fresh_uuid_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

impl<B: Backend> Repl<B> {
    /// The REPL of a `role` node named `node_name`; blocks mined while nobody is
    /// logged in are produced by `producer`, otherwise by the logged-in user.
    pub(crate) fn new(
        backend: B,
        role: NodeRole,
        node_name: String,
        logins: Logins,
        producer: Keypair,
        vault: Vault,
    ) -> Self {
        Repl {
            backend,
            role,
            node_name,
            logins,
            user: None,
            user_keys: None,
            user_reader: None,
            patient: None,
            producer,
            vault,
            patients_dir: None,
            read_log: crate::lens::ReadLog::default(),
            recorded: std::collections::HashSet::new(),
        }
    }

    /// Writes each new patient's key file into `dir`.
    pub(crate) fn with_patients_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.patients_dir = Some(dir);
        self
    }

    /// What the logged-in user may read; nothing when nobody is logged in.
    fn lens(&self) -> Lens<'_> {
        match (&self.user, &self.user_reader) {
            (Some(user), Some((key, genesis))) => Lens::new(
                BodyReader::new(*genesis, user.account(), key),
                user.role(),
                &self.vault,
            )
            .logging(&self.read_log),
            _ => Lens::sealed(&self.vault),
        }
    }

    /// Writes the active patient's record as a FHIR R4 Bundle, holding what the
    /// logged-in user may read.
    fn export(&mut self, out: Option<String>, io: &mut dyn Conversation) -> Outcome {
        let Some((patient, _)) = self.patient.clone() else {
            return refuse("no active patient: use set_patient <ID> first");
        };
        let (Some(user), Some((key, genesis_hash))) = (&self.user, &self.user_reader) else {
            return refuse("log in first: an export holds what the logged-in user may read");
        };
        let (genesis, records) = self.backend.query(move |ledger| {
            (
                ledger.genesis().clone(),
                crate::fhir::chain_records(ledger, &patient),
            )
        })?;
        let read = |hash: &ledger_core::Hash| self.vault.get(hash).ok().flatten();
        let reader = crate::fhir::export::ExportReader {
            reader: BodyReader::new(*genesis_hash, user.account(), key),
            vault: &read,
        };
        let records = records.map_err(Failure::Fatal)?;
        let exported = crate::fhir::export::export(&genesis, patient, &records, &reader);
        let path = out.unwrap_or_else(|| format!("{patient}.fhir.json"));
        let summary = crate::fhir::write_bundle(std::path::Path::new(&path), &exported)
            .map_err(|e| refused(format!("{e:#}")))?;
        io.say(&format!("{summary}; written to {path}"));
        Ok(())
    }

    /// The name of the patient a registration names, as the logged-in user may read
    /// it.
    fn patient_name(&self, registration: Option<&(AccountId, Event)>) -> String {
        registration
            .and_then(|(author, event)| self.lens().body(author, event, Section::Demographics))
            .map_or_else(|| sealed_marker(Section::Demographics), |b| b.summary())
    }

    /// The prompt: `Doc@DoctorNode-5001 (No Patient) > `, with the logged-in user after
    /// the role (`Doc:dr_alice@...`) and the active patient's name and short id.
    pub(crate) fn prompt(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map_or_else(String::new, |u| format!(":{}", u.member().username));
        let patient = match &self.patient {
            None => "No Patient".to_string(),
            Some((id, name)) => format!("Patient: {name} {}", views::short_uuid(&id.uuid())),
        };
        format!(
            "{}{user}@{} ({patient}) > ",
            self.role.prompt_prefix(),
            self.node_name
        )
    }

    /// Parses and runs one line. Every failure is reported as one line and the REPL
    /// goes on; only `exit` (or a failed backend) ends it.
    pub(crate) fn handle_line(
        &mut self,
        line: &str,
        io: &mut dyn Conversation,
    ) -> anyhow::Result<Flow> {
        match command::parse(line) {
            Ok(None) => Ok(Flow::Continue),
            Ok(Some(command)) => self.execute(command, io),
            Err(e) => {
                io.say(&format!("Error: {e}"));
                Ok(Flow::Continue)
            }
        }
    }

    /// Runs one command.
    pub(crate) fn execute(
        &mut self,
        command: Command,
        io: &mut dyn Conversation,
    ) -> anyhow::Result<Flow> {
        if command == Command::Exit {
            io.say("Shutting down the node.");
            return Ok(Flow::Exit);
        }
        let outcome = self.run(command, io);
        if let Err(Failure::Fatal(error)) = self.record_reads(io) {
            return Err(error);
        }
        match outcome {
            Ok(()) => Ok(Flow::Continue),
            Err(Failure::Refused(message)) => {
                io.say(&format!("Error: {message}"));
                Ok(Flow::Continue)
            }
            Err(Failure::Fatal(error)) => Err(error),
        }
    }

    fn run(&mut self, command: Command, io: &mut dyn Conversation) -> Outcome {
        match command {
            Command::Help => {
                self.help(io);
                Ok(())
            }
            Command::Login { username, password } => self.login(username, password, io),
            Command::Logout => {
                self.user_keys = None;
                self.user_reader = None;
                match self.user.take() {
                    Some(user) => io.say(&format!("Logged out {}.", user.member().username)),
                    None => io.say("Nobody is logged in."),
                }
                self.patient = None;
                Ok(())
            }
            Command::Register { name } => self.register(name, io),
            Command::Consult { notes, order_test } => self.consult(notes, order_test, io),
            Command::PerformTest { order, results } => self.perform_test(order, results, io),
            Command::Prescribe {
                medication,
                dosage,
                instructions,
            } => self.prescribe([medication, dosage, instructions], io),
            Command::Fill {
                prescription,
                confirm,
            } => self.fill(prescription, confirm, io),
            Command::SetPatient { id } => {
                let (id, registration) = self
                    .backend
                    .query(move |ledger| views::find_patient(ledger, &id))?
                    .map_err(refused)?;
                let name = self.patient_name(registration.as_ref());
                io.say(&format!("Active patient: {name} ({id})"));
                self.patient = Some((id, name));
                Ok(())
            }
            Command::History => match self.patient {
                None => refuse("no active patient: use set_patient <ID> first"),
                Some((id, _)) => {
                    let history = self
                        .backend
                        .query(move |ledger| views::history(ledger, &id))?;
                    say_all(io, &views::history_lines(&history, &self.lens()));
                    Ok(())
                }
            },
            Command::Export { out } => self.export(out, io),
            Command::BreakGlass { reason } => self.break_glass(reason, io),
            Command::Mine => {
                let keys = self
                    .user_keys
                    .clone()
                    .unwrap_or_else(|| self.producer.clone());
                let outcome = self.backend.mine(&keys)?;
                let genesis = match outcome {
                    MineOutcome::Mined(_) => {
                        Some(self.backend.query(|ledger| ledger.genesis().clone())?)
                    }
                    _ => None,
                };
                say_all(
                    io,
                    &views::mine_lines(genesis.as_ref(), &self.lens(), &outcome),
                );
                Ok(())
            }
            Command::Chain => {
                let chain = self.backend.query(views::chain)?;
                say_all(io, &views::chain_lines(&chain, &self.lens()));
                Ok(())
            }
            Command::Pending => {
                let pending = self.backend.query(views::pending)?;
                say_all(io, &views::pending_lines(&pending, &self.lens()));
                Ok(())
            }
            Command::Balances => {
                let balances = self.backend.query(health_workflow::balances)?;
                io.say("E-cash balances:");
                say_all(io, &views::balance_lines(&balances));
                Ok(())
            }
            Command::Peers => {
                let peers = self.backend.peers()?;
                say_all(io, &views::peer_lines(&peers));
                Ok(())
            }
            Command::Sync => {
                let request = self.backend.sync()?;
                say_all(io, &views::sync_lines(&request));
                Ok(())
            }
            Command::RecalcBalances => {
                let (recalculation, balances) = self.backend.query(|ledger| {
                    (
                        views::recalculate(ledger),
                        health_workflow::balances(ledger),
                    )
                })?;
                say_all(io, &views::recalculation_lines(&recalculation));
                say_all(io, &views::balance_lines(&balances));
                Ok(())
            }
            Command::Exit => Ok(()),
        }
    }

    fn help(&self, io: &mut dyn Conversation) {
        let mut lines = vec![format!(
            "Commands of the {} node (answers can be given on the line; quote values \
             with spaces):",
            self.role_name()
        )];
        lines.push(format!("  {:<50} log in", usage::LOGIN));
        lines.push(format!("  {:<50} log out", "logout"));
        match self.role {
            NodeRole::Doctor => {
                lines.push(format!("  {:<50} register a new patient", usage::REGISTER));
                lines.push(format!(
                    "  {:<50} record a consultation, optionally order a blood test",
                    usage::CONSULT
                ));
                lines.push(format!(
                    "  {:<50} review history and prescribe (pays the lab)",
                    usage::PRESCRIBE
                ));
                lines.push(format!(
                    "  {:<50} read without the patient's grant, for a reason (recorded)",
                    usage::BREAK_GLASS
                ));
            }
            NodeRole::Lab => lines.push(format!(
                "  {:<50} record the results of a test order",
                usage::PERFORM_TEST
            )),
            NodeRole::Pharmacy => lines.push(format!(
                "  {:<50} mark a prescription as filled",
                usage::FILL
            )),
        }
        for (syntax, what) in [
            (
                usage::SET_PATIENT,
                "choose the active patient (id or first characters)",
            ),
            ("history", "the active patient's events"),
            (
                usage::EXPORT,
                "the active patient as a FHIR R4 Bundle, as you may read it",
            ),
            ("mine", "mine a block of the pending transactions"),
            ("chain", "show the chain"),
            ("pending", "show the pending transactions"),
            ("balances", "e-cash balances"),
            ("peers", "connected peers"),
            ("sync", "ask the peers for missing blocks"),
            (
                "recalc_balances",
                "recompute balances from genesis and compare",
            ),
            ("exit", "stop the node (also: quit)"),
        ] {
            lines.push(format!("  {syntax:<50} {what}"));
        }
        say_all(io, &lines);
    }

    fn role_name(&self) -> &'static str {
        match self.role {
            NodeRole::Doctor => "Doctor",
            NodeRole::Lab => "Lab",
            NodeRole::Pharmacy => "Pharmacy",
        }
    }

    fn member_role(&self) -> health_workflow::Role {
        self.role.member_role()
    }

    fn login(
        &mut self,
        username: Option<String>,
        password: Option<String>,
        io: &mut dyn Conversation,
    ) -> Outcome {
        if let Some(user) = &self.user {
            return refuse(format!(
                "{} is logged in; log out first",
                user.member().username
            ));
        }
        let Some(username) = username.or_else(|| io.ask("Username: ")) else {
            return refuse("login abandoned");
        };
        let username = username.trim().to_string();
        let Some(password) = password.or_else(|| io.ask_secret("Password: ")) else {
            return refuse("login abandoned");
        };
        let (genesis, genesis_hash) = self
            .backend
            .query(|ledger| (ledger.genesis().clone(), ledger.genesis_hash()))?;
        let keys = self
            .logins
            .verify(&genesis, &username, &password)
            .map_err(refused)?;
        let name = username.clone();
        let signing = keys.clone();
        let actor = self
            .backend
            .query(move |ledger| Actor::new(ledger, &name, signing))?
            .map_err(refused)?;
        if actor.role() != self.member_role() {
            return refuse(format!(
                "{username} is a {}; this {} node is for {} users",
                actor.role(),
                self.role_name(),
                self.member_role()
            ));
        }
        io.say(&format!(
            "Logged in as {} ({}).",
            actor.member().username,
            actor.member().display_name
        ));
        self.user_reader = Some((EncryptionKey::of_member(&keys), genesis_hash));
        self.user = Some(actor);
        self.user_keys = Some(keys);
        Ok(())
    }

    /// The logged-in user, who must be allowed to run `command`.
    fn user_for(&self, command: &str, role: NodeRole) -> Outcome<Actor> {
        if self.role != role {
            let (needed, article) = match role {
                NodeRole::Doctor => ("Doctor", "a"),
                NodeRole::Lab => ("Lab", "a"),
                NodeRole::Pharmacy => ("Pharmacy", "a"),
            };
            return refuse(format!(
                "'{command}' is {article} {needed} command; this is the {} node",
                self.role_name()
            ));
        }
        match &self.user {
            Some(user) => Ok(user.clone()),
            None => refuse(format!("not logged in: use 'login' before '{command}'")),
        }
    }

    fn active_patient(&self) -> Outcome<(PatientId, String)> {
        self.patient
            .clone()
            .ok_or_else(|| refused("no active patient: use set_patient <ID> first"))
    }

    /// Keeps a written event's sealed bodies in the vault, then submits it: a body is
    /// never missing for a transaction this node accepted.
    fn submit_written(&self, written: Written) -> Outcome<TxId> {
        self.keep_bodies(&written.tx, &written.bodies)?;
        match self.backend.submit_sealed(written.tx, written.bodies)? {
            Ok(id) => Ok(id),
            Err(e) => refuse(format!("transaction refused: {}", tx_reason(&e))),
        }
    }

    fn keep_bodies(&self, tx: &HealthTx, bodies: &[SealedBody]) -> Outcome {
        if let TxBody::App(event) = &tx.body {
            let labelled = ledger_core::Policy::labelled_refs(&HealthPolicy, &tx.author, event);
            for (((section, _), (reference, label)), body) in
                event.sealed().iter().zip(&labelled).zip(bodies)
            {
                self.vault
                    .keep(reference, *label, body)
                    .map_err(|e| Failure::Fatal(anyhow::anyhow!("keeping the {section}: {e}")))?;
            }
        }
        Ok(())
    }

    fn submit_all(&self, txs: Vec<HealthTx>) -> Outcome<Vec<TxId>> {
        let mut ids = Vec::new();
        for tx in txs {
            match self.backend.submit(tx)? {
                Ok(id) => ids.push(id),
                Err(e) => return refuse(format!("transaction refused: {}", tx_reason(&e))),
            }
        }
        Ok(ids)
    }

    fn register(&mut self, name: Option<String>, io: &mut dyn Conversation) -> Outcome {
        let actor = self.user_for("register", NodeRole::Doctor)?;
        let Some(name) = name.or_else(|| io.ask("Patient name: ")) else {
            return refuse("registration abandoned");
        };
        let name = name.trim().to_string();
        let id = PatientId::from_random_bytes(fresh_uuid_bytes());
        let now = self.backend.now();
        let patient_name = name.clone();
        let (written, demo) = self.backend.query(move |ledger| {
            // On the demo network the patient's keys derive from the published demo
            // seed, so the walkthrough can log in as the patient.
            let demo = health_workflow::is_demo(ledger.genesis());
            let keys = if demo {
                health_workflow::demo::demo_patient_keypair(&id)
            } else {
                Keypair::generate(&mut rand::rng())
            };
            let details = health_workflow::clinical::PatientDetails::default();
            let written = actor.register_with_keys(
                ledger,
                id,
                &patient_name,
                details,
                keys,
                now,
                &mut rand::rng(),
            );
            (written, demo)
        })?;
        let mut written = written.map_err(refused)?;
        let patient_keys = written.patient.take();
        self.submit_written(written)?;
        io.say(&format!("Patient {name} registered (pending until mined)."));
        io.say(&format!("Patient ID: {id}"));
        if let (Some(dir), Some(keys)) = (&self.patients_dir, patient_keys) {
            let (path, passphrase) = crate::patient::write_key_file(dir, &id, &keys.0, demo)
                .map_err(|e| Failure::Fatal(e.context("writing the patient's key file")))?;
            io.say(&format!(
                "Patient key file (hand it to the patient): {}",
                path.display()
            ));
            if demo {
                io.say(&format!("Its passphrase is the DEMO one: {passphrase}"));
            } else {
                io.say(&format!(
                    "Its passphrase, shown once (give it to the patient apart from the file): {passphrase}"
                ));
            }
        }
        io.say(&format!("Active patient: {name} ({id})"));
        self.patient = Some((id, name));
        Ok(())
    }

    fn consult(
        &mut self,
        notes: Option<String>,
        order_test: Option<bool>,
        io: &mut dyn Conversation,
    ) -> Outcome {
        let actor = self.user_for("consult", NodeRole::Doctor)?;
        let (patient, patient_name) = self.active_patient()?;
        let Some(notes) = notes.or_else(|| io.ask("Consultation notes: ")) else {
            return refuse("consultation abandoned");
        };
        let order_test = match order_test {
            Some(answer) => answer,
            None => match ask_yes_no(io, "Order a blood test? (y/n): ") {
                Some(answer) => answer,
                None => return refuse("consultation abandoned"),
            },
        };
        let order = order_test
            .then(|| TestRequest::blood_test(OrderId::from_random_bytes(fresh_uuid_bytes())));
        let order_line = order.as_ref().map(|o| o.order_id);
        let now = self.backend.now();
        let written = self
            .backend
            .query(move |ledger| {
                actor.consult(ledger, patient, notes.trim(), order, now, &mut rand::rng())
            })?
            .map_err(refused)?;
        self.submit_written(written)?;
        io.say(&format!(
            "Consultation of {patient_name} recorded (pending until mined)."
        ));
        if let Some(order) = order_line {
            io.say(&format!("Blood test ordered: order {order}"));
        }
        Ok(())
    }

    fn perform_test(
        &mut self,
        choice: Option<usize>,
        results: Option<String>,
        io: &mut dyn Conversation,
    ) -> Outcome {
        let actor = self.user_for("perform_test", NodeRole::Lab)?;
        let (patient, patient_name) = self.active_patient()?;
        let open = self.backend.query(move |ledger| {
            ledger
                .state()
                .app()
                .open_orders(&patient)
                .into_iter()
                .map(|o| {
                    let consultation =
                        records::recorded_event(ledger, o.ordered.height, &o.ordered.tx_id).ok();
                    (o.id, consultation, o.ordered.time)
                })
                .collect::<Vec<_>>()
        })?;
        let lens = self.lens();
        let orders: Vec<(OrderId, String)> = open
            .into_iter()
            .map(|(id, consultation, ordered)| {
                let test = consultation
                    .and_then(|c| {
                        let reference = c.event.sealed_order(&id)?;
                        Some(lens.plain_at(
                            &c.recorded.author,
                            &c.event,
                            Section::TestOrder,
                            &reference,
                        ))
                    })
                    .unwrap_or_else(|| sealed_marker(Section::TestOrder));
                (id, format!("{test} ordered at {}", views::time(ordered)))
            })
            .collect();
        if orders.is_empty() {
            return refuse(format!(
                "no open test order for {patient_name} (is the consultation mined?)"
            ));
        }
        let order = pick(io, &orders, choice, "test order", "--order")?;
        let Some(results) = results.or_else(|| io.ask("Test results: ")) else {
            return refuse("test abandoned");
        };
        let now = self.backend.now();
        let written = self
            .backend
            .query(move |ledger| {
                let results = results.trim();
                actor.perform_test(ledger, patient, Some(order), results, now, &mut rand::rng())
            })?
            .map_err(refused)?;
        self.submit_written(written)?;
        io.say(&format!(
            "Lab result for {patient_name} recorded (pending until mined; the ordering doctor \
             is rewarded in that block)."
        ));
        Ok(())
    }

    fn prescribe(&mut self, given: [Option<String>; 3], io: &mut dyn Conversation) -> Outcome {
        let actor = self.user_for("prescribe", NodeRole::Doctor)?;
        let (patient, patient_name) = self.active_patient()?;
        let history = self
            .backend
            .query(move |ledger| views::history(ledger, &patient))?;
        say_all(io, &views::history_lines(&history, &self.lens()));
        let [medication, dosage, instructions] = given;
        let Some(medication) = medication.or_else(|| io.ask("Medication: ")) else {
            return refuse("prescription abandoned");
        };
        let Some(dosage) = dosage.or_else(|| io.ask("Dosage: ")) else {
            return refuse("prescription abandoned");
        };
        let Some(instructions) = instructions.or_else(|| io.ask("Instructions: ")) else {
            return refuse("prescription abandoned");
        };
        let id = PrescriptionId::from_random_bytes(fresh_uuid_bytes());
        let now = self.backend.now();
        let prescribed = self.backend.query(move |ledger| {
            // The results this prescription reads, whose lab gets paid.
            let based_on = ledger.state().app().unpaid_lab_results(&patient);
            let draft = PrescriptionDraft {
                prescription_id: id,
                patient_id: patient,
                medication: medication.trim().to_string(),
                dosage: dosage.trim().to_string(),
                instructions: instructions.trim().to_string(),
                based_on,
            };
            actor.prescribe(ledger, draft, now, &mut rand::rng())
        })?;
        let prescribed = prescribed.map_err(refused)?;
        self.submit_written(Written {
            tx: prescribed.prescription.clone(),
            bodies: prescribed.bodies.clone(),
            patient: None,
        })?;
        let payments: Vec<HealthTx> = prescribed.transactions().skip(1).cloned().collect();
        self.submit_all(payments)?;
        io.say(&format!(
            "Prescription {id} for {patient_name} recorded (pending until mined)."
        ));
        if prescribed.payments.is_empty() {
            io.say("No new lab results were read: no payment to a lab.");
        }
        for payment in &prescribed.payments {
            match &payment.transfer {
                Ok(_) => io.say(&format!(
                    "Payment of {} e-cash to {} for the lab results (pending until mined).",
                    payment.amount, payment.username
                )),
                Err(reason) => io.say(&format!("No payment to {}: {reason}.", payment.username)),
            }
        }
        Ok(())
    }

    fn fill(
        &mut self,
        choice: Option<usize>,
        confirm: Option<bool>,
        io: &mut dyn Conversation,
    ) -> Outcome {
        let actor = self.user_for("fill", NodeRole::Pharmacy)?;
        let (patient, patient_name) = self.active_patient()?;
        let unfilled = self.backend.query(move |ledger| {
            ledger
                .state()
                .app()
                .unfilled_prescriptions(&patient)
                .into_iter()
                .map(|p| {
                    let at = &p.prescribed;
                    let recorded = records::recorded_event(ledger, at.height, &at.tx_id)
                        .map(Some)
                        .map_err(|e| e.to_string());
                    (p.id, recorded)
                })
                .collect::<Vec<_>>()
        })?;
        let lens = self.lens();
        let open: Vec<(PrescriptionId, String)> = unfilled
            .into_iter()
            .map(|(id, recorded)| (id, views::prescription_label(&lens, &recorded)))
            .collect();
        if open.is_empty() {
            return refuse(format!(
                "no open prescription for {patient_name} (is the prescription mined?)"
            ));
        }
        let id = pick(io, &open, choice, "prescription", "--prescription")?;
        let label = open
            .iter()
            .find(|(p, _)| *p == id)
            .map_or_else(String::new, |(_, l)| l.clone());
        let confirmed = match confirm {
            Some(answer) => answer,
            None => match ask_yes_no(
                io,
                &format!(
                    "Fill prescription {} {label}? (y/n): ",
                    views::short_uuid(&id.uuid())
                ),
            ) {
                Some(answer) => answer,
                None => return refuse("fill abandoned"),
            },
        };
        if !confirmed {
            io.say("Prescription not filled.");
            return Ok(());
        }
        let now = self.backend.now();
        let tx = self
            .backend
            .query(move |ledger| actor.fill(ledger, id, now))?
            .map_err(refused)?;
        self.submit_all(vec![tx])?;
        io.say(&format!(
            "Prescription {id} filled (pending until mined; the prescribing doctor is rewarded \
             in that block)."
        ));
        Ok(())
    }
}

/// The reason a transaction was refused, in the user's terms.
pub(crate) fn tx_reason(error: &TxError<EventError>) -> String {
    match error {
        TxError::Overdraft {
            balance, amount, ..
        } => format!("insufficient funds: balance {balance}, needs {amount}"),
        TxError::Policy { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn say_all(io: &mut dyn Conversation, lines: &[String]) {
    for line in lines {
        io.say(line);
    }
}

fn ask_yes_no(io: &mut dyn Conversation, question: &str) -> Option<bool> {
    loop {
        let answer = io.ask(question)?;
        match parse_yes_no(&answer) {
            Some(yes) => return Some(yes),
            None => io.say("Please answer y or n."),
        }
    }
}

/// Chooses one of `items`: the only one, the `choice`-th, or asks.
fn pick<T: Copy>(
    io: &mut dyn Conversation,
    items: &[(T, String)],
    choice: Option<usize>,
    what: &str,
    flag: &str,
) -> Outcome<T> {
    if items.is_empty() {
        return refuse(format!("no open {what}"));
    }
    if let Some(n) = choice {
        return match items.get(n - 1) {
            Some((item, _)) => Ok(*item),
            None => refuse(format!(
                "{flag} {n}: there are only {} open {what}(s)",
                items.len()
            )),
        };
    }
    if let [(only, _)] = items {
        return Ok(*only);
    }
    io.say(&format!("Open {what}s:"));
    for (i, (_, label)) in items.iter().enumerate() {
        io.say(&format!("  {}. {label}", i + 1));
    }
    let Some(answer) = io.ask(&format!("Which {what} (1-{}): ", items.len())) else {
        return refuse(format!("no {what} chosen"));
    };
    match answer.trim().parse::<usize>() {
        Ok(n) if n >= 1 && n <= items.len() => Ok(items[n - 1].0),
        _ => refuse(format!(
            "'{}' is not a number from 1 to {}",
            answer.trim(),
            items.len()
        )),
    }
}

#[cfg(test)]
mod tests;
