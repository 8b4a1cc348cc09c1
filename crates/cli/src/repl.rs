//! One REPL ([`Repl`]): who is logged in, the active patient, and what each command does.
//!
//! The REPL talks to the ledger only through a [`Backend`] (a running node in the
//! binary, a plain in-memory ledger in unit tests) and to the person only through a
//! [`Conversation`] (questions and answers, output lines), so every command and every
//! wrong input can be tested without a terminal or a network.

use std::path::PathBuf;

use health_workflow::{
    Actor, Credentials, EventError, HealthLedger, HealthPolicy, HealthTx, LoginError, OrderId,
    PatientId, Prescription, PrescriptionId, TestOrder, records,
};
use ledger_core::{BlockHash, BodyStore, Height, Keypair, SharedBlock, Timestamp, TxError, TxId};
use p2p::{MineError, PeerInfo};
use rand::Rng;

use crate::args::NodeRole;
use crate::command::{self, Command, parse_yes_no, usage};
use crate::keyfile;
use crate::views;

/// What a REPL needs from the ledger it works on.
pub(crate) trait Backend {
    /// Where the ledger keeps block bodies.
    type Store: BodyStore<health_workflow::Event> + 'static;

    /// Runs `f` on the ledger and returns its result.
    fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&HealthLedger<Self::Store>) -> R + Send + 'static,
    ) -> anyhow::Result<R>;

    /// Submits a transaction; the inner error is the ledger's refusal.
    fn submit(&self, tx: HealthTx) -> anyhow::Result<Result<TxId, TxError<EventError>>>;

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

/// How users prove who they are on this node.
pub(crate) enum Logins {
    /// The demo network: the original project's logins, checked against argon2 hashes,
    /// signing with the published demo keys.
    Demo(Credentials),
    /// A real network: the node's user, whose key file's passphrase is the password.
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The user's key, decrypted at start-up.
        keys: Box<Keypair>,
    },
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
    patient: Option<(PatientId, String)>,
    producer: Keypair,
}

/// Why a command did not complete.
enum Failure {
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

type Outcome<T = ()> = Result<T, Failure>;

fn refuse<T>(message: impl Into<String>) -> Outcome<T> {
    Err(Failure::Refused(message.into()))
}

/// Turns an error the user caused into a refusal (for `map_err`).
fn refused(error: impl std::fmt::Display) -> Failure {
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
    ) -> Self {
        Repl {
            backend,
            role,
            node_name,
            logins,
            user: None,
            user_keys: None,
            patient: None,
            producer,
        }
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
        match self.run(command, io) {
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
                let (id, name) = self
                    .backend
                    .query(move |ledger| views::find_patient(ledger, &id))?
                    .map_err(refused)?;
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
                    say_all(io, &views::history_lines(&history));
                    Ok(())
                }
            },
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
                say_all(io, &views::mine_lines(genesis.as_ref(), &outcome));
                Ok(())
            }
            Command::Chain => {
                let chain = self.backend.query(views::chain)?;
                say_all(io, &views::chain_lines(&chain));
                Ok(())
            }
            Command::Pending => {
                let pending = self.backend.query(views::pending)?;
                say_all(io, &views::pending_lines(&pending));
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
        let genesis = self.backend.query(|ledger| ledger.genesis().clone())?;
        let keys = match &self.logins {
            Logins::Demo(credentials) => {
                let member =
                    credentials
                        .verify(&genesis, &username, &password)
                        .map_err(|e| match e {
                            LoginError::WrongPassword { .. } | LoginError::UnknownUser { .. } => {
                                refused("wrong username or password")
                            }
                            other => refused(other),
                        })?;
                health_workflow::demo_keypair(&member.username)
            }
            Logins::KeyFile { path, keys } => {
                let owner = genesis.member(&keys.account()).map(|m| m.username.clone());
                if owner.as_deref() != Some(username.as_str()) {
                    return refuse("wrong username or password");
                }
                let opened = keyfile::read(path, &password).map_err(|e| match e {
                    keyfile::KeyFileError::Decrypt => refused("wrong username or password"),
                    other => refused(other),
                })?;
                if opened.account() != keys.account() {
                    return refuse("the key file changed since the node started");
                }
                opened
            }
        };
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
        let tx = self
            .backend
            .query(move |ledger| actor.register(ledger, id, &patient_name, now))?
            .map_err(refused)?;
        self.submit_all(vec![tx])?;
        io.say(&format!("Patient {name} registered (pending until mined)."));
        io.say(&format!("Patient ID: {id}"));
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
            .then(|| TestOrder::blood_test(OrderId::from_random_bytes(fresh_uuid_bytes())));
        let order_line = order.as_ref().map(|o| o.order_id);
        let now = self.backend.now();
        let tx = self
            .backend
            .query(move |ledger| actor.consult(ledger, patient, notes.trim(), order, now))?
            .map_err(refused)?;
        self.submit_all(vec![tx])?;
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
        let orders: Vec<(OrderId, String)> = self
            .backend
            .query(move |ledger| {
                ledger
                    .state()
                    .app()
                    .open_orders(&patient)
                    .into_iter()
                    .map(|o| (o.id, o.test_name.clone(), o.ordered.time))
                    .collect::<Vec<_>>()
            })?
            .into_iter()
            .map(|(id, test, ordered)| (id, format!("{test} ordered at {}", views::time(ordered))))
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
        let tx = self
            .backend
            .query(move |ledger| {
                actor.perform_test(ledger, patient, Some(order), results.trim(), now)
            })?
            .map_err(refused)?;
        self.submit_all(vec![tx])?;
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
        say_all(io, &views::history_lines(&history));
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
            let prescription = Prescription {
                prescription_id: id,
                patient_id: patient,
                medication: medication.trim().to_string(),
                dosage: dosage.trim().to_string(),
                instructions: instructions.trim().to_string(),
                based_on,
            };
            actor.prescribe(ledger, prescription, now)
        })?;
        let prescribed = prescribed.map_err(refused)?;
        let txs: Vec<HealthTx> = prescribed.transactions().cloned().collect();
        self.submit_all(txs)?;
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
        let open: Vec<(PrescriptionId, String)> = self
            .backend
            .query(move |ledger| {
                ledger
                    .state()
                    .app()
                    .unfilled_prescriptions(&patient)
                    .into_iter()
                    .map(|p| {
                        let text = records::prescription(ledger, &p.id).map_err(|e| e.to_string());
                        (p.id, text)
                    })
                    .collect::<Vec<_>>()
            })?
            .into_iter()
            .map(|(id, text)| (id, views::prescription_label(&text)))
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
fn tx_reason(error: &TxError<EventError>) -> String {
    match error {
        TxError::Overdraft {
            balance, amount, ..
        } => format!("insufficient funds: balance {balance}, needs {amount}"),
        TxError::Policy { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}

fn say_all(io: &mut dyn Conversation, lines: &[String]) {
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
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use health_workflow::demo::DemoGenesisBuilder;
    use health_workflow::{Event, HealthPolicy};
    use ledger_core::{Ledger, MemoryBodies};

    use super::*;

    /// A ledger in memory, shared by the sessions of one test.
    struct Local<'a>(&'a RefCell<HealthLedger>);

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    impl Backend for Local<'_> {
        type Store = MemoryBodies<Event>;

        fn query<R: Send + 'static>(
            &self,
            f: impl FnOnce(&HealthLedger<Self::Store>) -> R + Send + 'static,
        ) -> anyhow::Result<R> {
            Ok(f(&self.0.borrow()))
        }

        fn submit(&self, tx: HealthTx) -> anyhow::Result<Result<TxId, TxError<EventError>>> {
            Ok(self.0.borrow_mut().submit_transaction(tx, NOW))
        }

        fn mine(&self, keys: &Keypair) -> anyhow::Result<MineOutcome> {
            let mut ledger = self.0.borrow_mut();
            let block = ledger.mine_block(keys, NOW);
            let height = block.header.height;
            let hash = block.hash();
            ledger.submit_block(block, NOW).into_result()?;
            let block = ledger.block(&hash).ok().flatten();
            Ok(MineOutcome::Mined(Mined {
                height,
                hash,
                block,
            }))
        }

        fn peers(&self) -> anyhow::Result<Vec<PeerInfo>> {
            Ok(Vec::new())
        }

        fn sync(&self) -> anyhow::Result<SyncRequest> {
            let after = self.0.borrow().tip().height;
            Ok(SyncRequest { asked: 0, after })
        }

        fn now(&self) -> Timestamp {
            NOW
        }
    }

    /// Answers from a list; output collected.
    #[derive(Default)]
    struct Script {
        answers: VecDeque<String>,
        out: Vec<String>,
    }

    impl Conversation for Script {
        fn ask(&mut self, _: &str) -> Option<String> {
            self.answers.pop_front()
        }
        fn ask_secret(&mut self, q: &str) -> Option<String> {
            self.ask(q)
        }
        fn say(&mut self, line: &str) {
            self.out.push(line.to_string());
        }
    }

    fn ledger() -> RefCell<HealthLedger> {
        RefCell::new(
            Ledger::new(DemoGenesisBuilder::new().pow_bits(0).build(), HealthPolicy)
                .expect("valid demo genesis"),
        )
    }

    fn session(ledger: &RefCell<HealthLedger>, role: NodeRole) -> Repl<Local<'_>> {
        Repl::new(
            Local(ledger),
            role,
            role.default_node_name(5000),
            Logins::Demo(Credentials::demo()),
            crate::launch::demo_producer(Some(role), ""),
        )
    }

    /// Runs `line` and returns what it printed.
    fn run(session: &mut Repl<Local<'_>>, line: &str) -> Vec<String> {
        let mut script = Script::default();
        let flow = session
            .handle_line(line, &mut script)
            .expect("backend works");
        assert_eq!(flow, Flow::Continue, "{line}");
        script.out
    }

    fn one_error(session: &mut Repl<Local<'_>>, line: &str, expected: &str) {
        let out = run(session, line);
        assert_eq!(out.len(), 1, "{line}: {out:?}");
        assert!(out[0].starts_with("Error: "), "{line}: {out:?}");
        assert!(out[0].contains(expected), "{line}: {out:?}");
    }

    fn patient_id(lines: &[String]) -> String {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("Patient ID: "))
            .expect("a Patient ID line")
            .to_string()
    }

    #[test]
    fn the_walkthrough_pays_the_original_amounts() {
        let ledger = ledger();
        let mut doc = session(&ledger, NodeRole::Doctor);
        let mut lab = session(&ledger, NodeRole::Lab);
        let mut pharm = session(&ledger, NodeRole::Pharmacy);
        assert_eq!(doc.prompt(), "Doc@DoctorNode-5000 (No Patient) > ");

        run(&mut doc, "login dr_alice password123");
        let id = patient_id(&run(&mut doc, "register Jane Doe"));
        assert!(
            doc.prompt()
                .starts_with("Doc:dr_alice@DoctorNode-5000 (Patient: Jane Doe ")
        );
        let out = run(&mut doc, "consult --test y \"Fever, fatigue\"");
        assert!(
            out.iter().any(|l| l.starts_with("Blood test ordered")),
            "{out:?}"
        );
        run(&mut lab, "mine");

        run(&mut lab, "login lab_tech_bob labpass");
        run(&mut lab, &format!("set_patient {id}"));
        run(&mut lab, "perform_test Hb 13.5 g/dL");
        run(&mut pharm, "mine");
        assert!(run(&mut doc, "balances").contains(&"dr_alice: 500".to_string()));

        let out = run(
            &mut doc,
            "prescribe Amoxicillin \"500 mg\" three times a day",
        );
        assert!(
            out.iter()
                .any(|l| l.starts_with("Payment of 100 e-cash to lab_tech_bob")),
            "{out:?}"
        );
        run(&mut lab, "mine");
        let balances = run(&mut doc, "balances");
        assert!(
            balances.contains(&"dr_alice: 400".to_string()),
            "{balances:?}"
        );
        assert!(
            balances.contains(&"lab_tech_bob: 100".to_string()),
            "{balances:?}"
        );

        run(&mut pharm, "login pharm_charlie pharmpass");
        run(&mut pharm, &format!("set_patient {}", &id[..8]));
        run(&mut pharm, "fill y");
        run(&mut doc, "mine");
        let balances = run(&mut pharm, "balances");
        assert!(
            balances.contains(&"dr_alice: 1100".to_string()),
            "{balances:?}"
        );
        assert!(
            balances.contains(&"lab_tech_bob: 100".to_string()),
            "{balances:?}"
        );
        let recalc = run(&mut pharm, "recalc_balances");
        assert!(recalc[0].contains("they match"), "{recalc:?}");
        let history = run(&mut doc, "history");
        assert_eq!(history.len(), 6, "{history:?}");
    }

    #[test]
    fn questions_are_asked_when_answers_are_missing() {
        let ledger = ledger();
        let mut doc = session(&ledger, NodeRole::Doctor);
        let mut script = Script {
            answers: ["dr_alice", "password123"].map(String::from).into(),
            ..Script::default()
        };
        doc.handle_line("login", &mut script).expect("works");
        assert_eq!(script.out, ["Logged in as dr_alice (Dr. Alice)."]);
        let mut script = Script {
            answers: ["Jane Doe"].map(String::from).into(),
            ..Script::default()
        };
        doc.handle_line("register", &mut script).expect("works");
        assert!(script.out.iter().any(|l| l.starts_with("Patient ID: ")));
        let mut script = Script {
            answers: ["Cough", "maybe", "n"].map(String::from).into(),
            ..Script::default()
        };
        doc.handle_line("consult", &mut script).expect("works");
        assert_eq!(script.out[0], "Please answer y or n.");
        assert!(script.out[1].starts_with("Consultation of Jane Doe recorded"));
        assert_eq!(script.out.len(), 2);
    }

    #[test]
    fn wrong_input_gets_one_clear_line() {
        let ledger = ledger();
        let mut doc = session(&ledger, NodeRole::Doctor);
        let mut lab = session(&ledger, NodeRole::Lab);
        one_error(&mut doc, "launch", "unknown command 'launch'");
        one_error(&mut doc, "register Jane", "not logged in");
        one_error(&mut doc, "perform_test x", "is a Lab command");
        one_error(
            &mut doc,
            "login dr_alice nope",
            "wrong username or password",
        );
        one_error(&mut doc, "login nobody x", "wrong username or password");
        one_error(
            &mut doc,
            "login lab_tech_bob labpass",
            "this Doctor node is for doctor users",
        );
        run(&mut doc, "login dr_alice password123");
        one_error(&mut doc, "consult x --test y", "no active patient");
        one_error(&mut doc, "history", "no active patient");
        one_error(&mut doc, "set_patient not-an-id!", "is not a patient id");
        one_error(
            &mut doc,
            "set_patient 00000000-0000-4000-8000-000000000000",
            "no patient",
        );
        one_error(&mut doc, "register \"unclosed", "unclosed double quote");
        one_error(&mut doc, "register", "abandoned");
        let id = patient_id(&run(&mut doc, "register Jane Doe"));
        one_error(&mut doc, "register \"\"", "");
        run(&mut doc, "mine");
        run(&mut lab, "login lab_tech_bob labpass");
        run(&mut lab, &format!("set_patient {id}"));
        one_error(&mut lab, "perform_test ok", "no open test order");
        let mut pharm = session(&ledger, NodeRole::Pharmacy);
        run(&mut pharm, "login pharm_charlie pharmpass");
        run(&mut pharm, &format!("set_patient {id}"));
        one_error(&mut pharm, "fill y", "no open prescription");
        // prescribe shows the history first, then asks; no answers abandon it.
        let out = run(&mut doc, "prescribe");
        assert_eq!(
            out.last().map(String::as_str),
            Some("Error: prescription abandoned")
        );
        // Nothing to pay with: the prescription stands, the payment is refused.
        run(&mut doc, "consult --test y Tired");
        run(&mut doc, "mine");
        run(&mut lab, "perform_test --order 1 fine");
        let mut script = Script::default();
        // The result is not mined, so the prescription reads none and pays nobody.
        doc.handle_line("prescribe Aspirin 1 daily", &mut script)
            .expect("works");
        assert!(
            !script.out.iter().any(|l| l.starts_with("Error")),
            "{:?}",
            script.out
        );
        run(&mut doc, "mine");
        let out = run(&mut doc, "prescribe Aspirin 1 daily");
        let insufficient = out.iter().any(|l| l.contains("insufficient funds"));
        let paid = out.iter().any(|l| l.starts_with("Payment of 100"));
        assert!(insufficient || paid, "{out:?}");
        run(&mut doc, "mine");
        one_error(
            &mut pharm,
            "fill --prescription 9 y",
            "there are only 2 open",
        );
        let out = run(&mut pharm, "fill n");
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0], "Open prescriptions:");
        assert_eq!(out[3], "Error: no prescription chosen");
        // Still working after all that.
        assert_eq!(run(&mut doc, "balances")[0], "E-cash balances:");
    }

    #[test]
    fn several_open_orders_are_listed_and_one_is_chosen() {
        let ledger = ledger();
        let mut doc = session(&ledger, NodeRole::Doctor);
        let mut lab = session(&ledger, NodeRole::Lab);
        run(&mut doc, "login dr_alice password123");
        run(&mut lab, "login lab_tech_bob labpass");
        let id = patient_id(&run(&mut doc, "register Ann"));
        run(&mut doc, "consult --test y first");
        run(&mut doc, "consult --test y second");
        run(&mut doc, "mine");
        run(&mut lab, &format!("set_patient {id}"));
        let mut script = Script {
            answers: ["2", "all normal"].map(String::from).into(),
            ..Script::default()
        };
        lab.handle_line("perform_test", &mut script).expect("works");
        assert_eq!(script.out[0], "Open test orders:");
        assert!(script.out[1].starts_with("  1. Blood Test ordered at "));
        assert!(
            script.out[3].starts_with("Lab result for Ann recorded"),
            "{:?}",
            script.out
        );
        run(&mut lab, "mine");
        // One order is left: no question this time.
        let out = run(&mut lab, "perform_test fine too");
        assert!(out[0].starts_with("Lab result for Ann recorded"), "{out:?}");
        let mut script = Script {
            answers: ["7".to_string()].into(),
            ..Script::default()
        };
        run(&mut lab, "mine");
        run(&mut doc, "consult --test y third");
        run(&mut doc, "consult --test y fourth");
        run(&mut doc, "mine");
        lab.handle_line("perform_test x", &mut script)
            .expect("works");
        assert_eq!(
            script.out.last().map(String::as_str),
            Some("Error: '7' is not a number from 1 to 2")
        );
    }

    #[test]
    fn insufficient_funds_is_reported() {
        // A network whose lab results earn nothing: the doctor cannot pay the lab.
        let mut genesis = DemoGenesisBuilder::new().pow_bits(0).build();
        genesis
            .parameters
            .insert(health_workflow::PARAM_REWARD_LAB_RESULT.to_string(), 0);
        let ledger = RefCell::new(Ledger::new(genesis, HealthPolicy).expect("valid genesis"));
        let mut doc = session(&ledger, NodeRole::Doctor);
        let mut lab = session(&ledger, NodeRole::Lab);
        run(&mut doc, "login dr_alice password123");
        run(&mut lab, "login lab_tech_bob labpass");
        let id = patient_id(&run(&mut doc, "register Ann"));
        run(&mut doc, "consult --test y x");
        run(&mut doc, "mine");
        run(&mut lab, &format!("set_patient {id}"));
        run(&mut lab, "perform_test fine");
        run(&mut doc, "mine");
        let out = run(&mut doc, "prescribe A 1 x");
        assert!(
            out.iter()
                .any(|l| l
                    == "No payment to lab_tech_bob: insufficient funds: balance 0, payment 100."),
            "{out:?}"
        );
        let mut script = Script::default();
        assert_eq!(
            doc.handle_line("exit", &mut script).expect("works"),
            Flow::Exit
        );
    }
}
