//! The patient's own node and prompt: `healthchain patient --key FILE --peers …`.
//!
//! A registration writes the new patient's key file into the registering node's data
//! directory ([`PATIENTS_DIR`], [`write_key_file`]), encrypted under a passphrase the
//! doctor hands over with it (on the demo network the published
//! [`DEMO_PATIENT_PASSPHRASE`]). The patient's node proves that key to its peers, so
//! every body about the patient is delivered to it, and the patient's prompt signs the
//! patient's own events with it:
//!
//! | command | what it does |
//! |---|---|
//! | `login [PASSPHRASE]` | unlocks the prompt with the key file's passphrase |
//! | `history` | the patient's own records, decrypted |
//! | `consents` | who may read what: the treatment defaults and the signed grants |
//! | `grant [WHO [CATEGORIES [DAYS [PURPOSE...]]]]` | a member (username) or a role, categories (`demographics,notes,tests,prescriptions` or `all`), for so many days |
//! | `revoke [WHAT]` | a role's access (its treatment default and its grants), a member's grants, or one grant by id |
//! | `audit` | who read which records and when, break-glass reads flagged; the erasure's receipts |
//! | `erase [--yes]` | asks every node to erase the patient's records (after a confirmation) |
//! | `export [FILE]` | the patient's record as a FHIR R4 Bundle |
//! | `help`, `exit` | |
//!
//! Revocation stops bodies written from then on being sealed to the grantee, and every
//! node serving the grantee a body: a data key already delivered cannot be taken back.

use std::path::{Path, PathBuf};

use anyhow::Context;
use health_workflow::demo::DEMO_PATIENT_PASSPHRASE;
use health_workflow::seal::EncryptionKey;
use health_workflow::{
    AccessPurpose, BodyReader, Category, Consent, Event, GrantId, GrantRef, Grantee, PatientActor,
    PatientId, Role, records,
};
use ledger_core::{AccountId, BlockHash, Keypair, Timestamp};
use p2p::Vault;
use rand::Rng;

use crate::args::{NodeArgs, PatientArgs};
use crate::command::{parse_yes_no, split_words};
use crate::lens::Lens;
use crate::repl::{
    Backend, Conversation, Failure, Flow, Outcome, refuse, refused, say_all, tx_reason,
};
use crate::views;

/// Directory, inside a member node's data directory, of the key files of the patients
/// it registered.
pub(crate) const PATIENTS_DIR: &str = "patients";

/// The roster as the prompt names members: account, username, role label.
type Roster = Vec<(AccountId, String, String)>;

/// Milliseconds in a day, for grant windows.
const DAY_MS: u64 = 86_400_000;

/// Longest grant a patient may sign from the prompt, in days.
const MAX_GRANT_DAYS: u64 = 3_650;

/// Writes `keys`, the new patient `patient`'s, into `dir` under a passphrase: the DEMO
/// one on the demo network, else a fresh random one. Returns the file and the
/// passphrase (to show once).
pub(crate) fn write_key_file(
    dir: &Path,
    patient: &PatientId,
    keys: &Keypair,
    demo: bool,
) -> anyhow::Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{patient}.key"));
    let passphrase = if demo {
        DEMO_PATIENT_PASSPHRASE.to_string()
    } else {
        random_passphrase()
    };
    crate::keyfile::write_new(&path, keys, &passphrase)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, passphrase))
}

/// 20 characters from an unambiguous alphabet of 55, in groups of five: 115 bits.
fn random_passphrase() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    // Bytes below the largest multiple of the alphabet's size, so each character is
    // equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut chars: Vec<char> = Vec::with_capacity(20);
    while chars.len() < 20 {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        if usize::from(byte[0]) < limit {
            chars.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    chars
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// `healthchain patient`: opens the key file and runs the patient's node and prompt.
pub(crate) fn run(args: PatientArgs) -> anyhow::Result<()> {
    let keys = crate::tools::read_key(&args.key, args.passphrase_file.as_deref())?;
    println!("Patient key {} ({})", keys.account(), args.key.display());
    let node = NodeArgs {
        port: args.port,
        host: args.host,
        peers: args.peers,
        id: args.id,
        data_dir: args.data_dir,
        genesis: args.genesis,
        key: None,
        api: None,
        passphrase_file: args.passphrase_file,
        block_interval: None,
        no_compact_blocks: false,
    };
    crate::launch::run_front(
        crate::launch::Front::Patient {
            keys: Box::new(keys),
            path: args.key,
        },
        node,
    )
}

/// The patient's prompt.
pub(crate) struct PatientRepl<B> {
    backend: B,
    node_name: String,
    /// The key the node holds, read from `key_path` at start.
    keys: Keypair,
    key_path: PathBuf,
    /// The patient, once logged in.
    me: Option<PatientActor>,
    vault: Vault,
}

impl<B: Backend> PatientRepl<B> {
    /// The prompt of the patient holding `keys` (from `key_path`) on node `node_name`.
    pub(crate) fn new(
        backend: B,
        node_name: String,
        keys: Keypair,
        key_path: PathBuf,
        vault: Vault,
    ) -> Self {
        PatientRepl {
            backend,
            node_name,
            keys,
            key_path,
            me: None,
            vault,
        }
    }

    /// `Patient@PatientNode-5004 (1a2b3c4d) > `.
    pub(crate) fn prompt(&self) -> String {
        match &self.me {
            Some(me) => format!(
                "Patient@{} ({}) > ",
                self.node_name,
                views::short_uuid(&me.patient_id().uuid())
            ),
            None => format!("Patient@{} (not logged in) > ", self.node_name),
        }
    }

    /// Runs one line; every failure is one line and the prompt goes on.
    pub(crate) fn handle_line(
        &mut self,
        line: &str,
        io: &mut dyn Conversation,
    ) -> anyhow::Result<Flow> {
        let words = match split_words(line) {
            Ok(words) => words,
            Err(e) => {
                io.say(&format!("Error: {e}"));
                return Ok(Flow::Continue);
            }
        };
        let Some((name, args)) = words.split_first() else {
            return Ok(Flow::Continue);
        };
        let outcome = match name.as_str() {
            "exit" | "quit" => {
                io.say("Shutting down the node.");
                return Ok(Flow::Exit);
            }
            "help" | "?" => {
                self.help(io);
                Ok(())
            }
            "login" => self.login(args.first().cloned(), io),
            "logout" => {
                self.me = None;
                io.say("Logged out.");
                Ok(())
            }
            "history" => self.history(io),
            "consents" => self.consents(io),
            "grant" => self.grant(args, io),
            "revoke" => self.revoke(args.first().cloned(), io),
            "audit" => self.audit(io),
            "erase" => self.erase(args, io),
            "export" => self.export(args.first().cloned(), io),
            other => refuse(format!("unknown command '{other}' (try help)")),
        };
        match outcome {
            Ok(()) => Ok(Flow::Continue),
            Err(Failure::Refused(message)) => {
                io.say(&format!("Error: {message}"));
                Ok(Flow::Continue)
            }
            Err(Failure::Fatal(error)) => Err(error),
        }
    }

    fn help(&self, io: &mut dyn Conversation) {
        let lines = [
            "Commands of the patient's node (answers can be given on the line):",
            "  login [PASSPHRASE]                                 unlock with your key file's passphrase",
            "  history                                            your records, decrypted",
            "  consents                                           who may read what, and until when",
            "  grant [WHO [CATEGORIES [DAYS [PURPOSE...]]]]       let a member (username) or a role read",
            "  revoke [WHAT]                                      a role, a member, or one grant by id",
            "  audit                                              who read your records, and when",
            "  erase [--yes]                                      have every node erase your records",
            "  export [FILE]                                      your record as a FHIR R4 Bundle",
            "  exit                                               stop the node (also: quit)",
        ];
        for line in lines {
            io.say(line);
        }
    }

    fn login(&mut self, passphrase: Option<String>, io: &mut dyn Conversation) -> Outcome {
        if self.me.is_some() {
            return refuse("already logged in");
        }
        let Some(passphrase) = passphrase.or_else(|| io.ask_secret("Passphrase: ")) else {
            return refuse("login abandoned");
        };
        let keys = crate::keyfile::read(&self.key_path, passphrase.trim())
            .map_err(|_| refused("wrong passphrase"))?;
        if keys.account() != self.keys.account() {
            return refuse("the key file changed since the node started");
        }
        let me = self
            .backend
            .query(move |ledger| PatientActor::new(ledger, keys))?
            .map_err(|_| {
                refused("your registration is not on this node's chain yet: wait for its block")
            })?;
        io.say(&format!("Logged in as patient {}.", me.patient_id()));
        self.me = Some(me);
        Ok(())
    }

    fn me(&self) -> Outcome<PatientActor> {
        self.me
            .clone()
            .ok_or_else(|| Failure::Refused("not logged in: use login first".into()))
    }

    fn genesis_hash(&self) -> Outcome<BlockHash> {
        Ok(self.backend.query(|ledger| ledger.genesis_hash())?)
    }

    fn history(&mut self, io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let (patient, genesis) = (me.patient_id(), self.genesis_hash()?);
        let history = self
            .backend
            .query(move |ledger| views::history(ledger, &patient))?;
        let key = me.encryption_key();
        let lens = Lens::patient(BodyReader::new(genesis, me.account(), &key), &self.vault);
        say_all(io, &views::history_lines(&history, &lens));
        Ok(())
    }

    /// The patient's consent record, the roster names and the time now.
    fn consent(&self) -> Outcome<(Consent, Roster)> {
        let patient = self.me()?.patient_id();
        Ok(self.backend.query(move |ledger| {
            let consent = ledger
                .state()
                .app()
                .patient(&patient)
                .map(health_workflow::Patient::consent)
                .unwrap_or_default();
            let roster = ledger
                .genesis()
                .roster
                .iter()
                .map(|m| (m.account, m.username.clone(), m.role.clone()))
                .collect();
            (consent, roster)
        })?)
    }

    fn consents(&mut self, io: &mut dyn Conversation) -> Outcome {
        let (consent, roster) = self.consent()?;
        let now = self.backend.now();
        if let Some(erased) = consent.erased {
            io.say(&format!(
                "You asked for erasure in block #{}: no grant is in force.",
                erased.height
            ));
            return Ok(());
        }
        io.say("Treatment consent (given by being treated; yours to revoke):");
        for role in Role::ALL.into_iter().filter(|r| r.is_clinical()) {
            let categories: Vec<&str> = Category::ALL
                .into_iter()
                .filter(|c| health_workflow::ConsentTable::treatment().may_read(role, *c))
                .map(Category::label)
                .collect();
            let status = match consent.treatment_revoked.iter().find(|(r, _)| *r == role) {
                Some((_, at)) => format!("REVOKED in block #{}", at.height),
                None => "in force".to_string(),
            };
            io.say(&format!(
                "  every {role}: {} ({status})",
                categories.join(", ")
            ));
        }
        if consent.grants.is_empty() {
            io.say("No grants signed.");
        } else {
            io.say("Grants you signed:");
        }
        for record in &consent.grants {
            let g = &record.grant;
            let status = if let Some(at) = record.revoked {
                format!("REVOKED in block #{}", at.height)
            } else if now >= g.not_after {
                "EXPIRED".to_string()
            } else if now < g.not_before {
                "not yet in force".to_string()
            } else {
                "in force".to_string()
            };
            let categories: Vec<&str> = g.categories.iter().map(|c| c.label()).collect();
            io.say(&format!(
                "  grant {} to {}: {} from {} until {} for '{}' ({status})",
                views::short_uuid(&g.grant_id.uuid()),
                grantee_name(&g.grantee, &roster),
                categories.join(", "),
                views::time(g.not_before),
                views::time(g.not_after),
                g.purpose
            ));
        }
        Ok(())
    }

    fn submit(
        &self,
        tx: health_workflow::HealthTx,
        what: &str,
        io: &mut dyn Conversation,
    ) -> Outcome {
        match self.backend.submit(tx)? {
            Ok(id) => {
                io.say(&format!("{what} (tx {id:#}, pending until mined)."));
                Ok(())
            }
            Err(e) => refuse(format!("refused: {}", tx_reason(&e))),
        }
    }

    fn grant(&mut self, args: &[String], io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let Some(who) = args
            .first()
            .cloned()
            .or_else(|| io.ask("Grant to (a username, or a role: doctor, lab, pharmacy): "))
        else {
            return refuse("grant abandoned");
        };
        let (_, roster) = self.consent()?;
        let grantee = parse_grantee(who.trim(), &roster)?;
        let Some(categories) = args.get(1).cloned().or_else(|| {
            io.ask(
                "Categories (demographics, notes, tests, prescriptions, comma separated; or all): ",
            )
        }) else {
            return refuse("grant abandoned");
        };
        let categories = parse_categories(&categories)?;
        let Some(days) = args
            .get(2)
            .cloned()
            .or_else(|| io.ask("For how many days: "))
        else {
            return refuse("grant abandoned");
        };
        let days: u64 = days
            .trim()
            .parse()
            .ok()
            .filter(|d| (1..=MAX_GRANT_DAYS).contains(d))
            .ok_or_else(|| {
                refused(format!(
                    "'{days}' is not a number of days from 1 to {MAX_GRANT_DAYS}"
                ))
            })?;
        let purpose = match args.get(3..).filter(|rest| !rest.is_empty()) {
            Some(rest) => rest.join(" "),
            None => match io.ask("Purpose (public: no clinical details): ") {
                Some(purpose) => purpose,
                None => return refuse("grant abandoned"),
            },
        };
        let now = self.backend.now();
        let until = Timestamp(now.millis().saturating_add(days * DAY_MS));
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let grant_id = GrantId::from_random_bytes(id);
        let purpose = purpose.trim().to_string();
        let tx = self
            .backend
            .query(move |ledger| {
                me.grant(
                    ledger,
                    grant_id,
                    grantee,
                    categories,
                    (now, until),
                    &purpose,
                    now,
                )
            })?
            .map_err(refused)?;
        self.submit(tx, &format!("Grant {grant_id} signed"), io)
    }

    fn revoke(&mut self, what: Option<String>, io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let Some(what) = what.or_else(|| {
            io.ask("Revoke (a role: doctor, lab, pharmacy; a username; or a grant id): ")
        }) else {
            return refuse("revocation abandoned");
        };
        let what = what.trim().to_string();
        let (consent, roster) = self.consent()?;
        let now = self.backend.now();
        let live = consent.live_grants(now);
        let mut targets: Vec<GrantRef> = Vec::new();
        let grant_of = |id: &GrantId| consent.grants.iter().find(|g| g.grant.grant_id == *id);
        if let Some(role) = parse_role(&what) {
            targets.extend(live.iter().copied().filter(|g| match g {
                GrantRef::Treatment(r) => *r == role,
                GrantRef::Grant(id) => {
                    grant_of(id).is_some_and(|g| g.grant.grantee == Grantee::Role(role))
                }
            }));
        } else if let Some((account, _, _)) = roster.iter().find(|(_, u, _)| *u == what) {
            targets.extend(live.iter().copied().filter(|g| match g {
                GrantRef::Treatment(_) => false,
                GrantRef::Grant(id) => {
                    grant_of(id).is_some_and(|g| g.grant.grantee == Grantee::Member(*account))
                }
            }));
        } else {
            let matching: Vec<GrantRef> = consent
                .grants
                .iter()
                .filter(|g| g.revoked.is_none())
                .filter(|g| {
                    g.grant
                        .grant_id
                        .to_string()
                        .starts_with(&what.to_ascii_lowercase())
                })
                .map(|g| GrantRef::Grant(g.grant.grant_id))
                .collect();
            match matching.as_slice() {
                [] => return refuse(format!("'{what}' is no role, username or grant of yours")),
                [one] => targets.push(*one),
                _ => return refuse(format!("'{what}' starts several grant ids: give more")),
            }
        }
        if targets.is_empty() {
            return refuse(format!("nothing of '{what}' is in force"));
        }
        for grant in targets {
            let me = me.clone();
            let now = self.backend.now();
            let tx = self
                .backend
                .query(move |ledger| me.revoke(ledger, grant, now))?
                .map_err(refused)?;
            self.submit(tx, &format!("Revoked {grant}"), io)?;
        }
        Ok(())
    }

    fn audit(&mut self, io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let patient = me.patient_id();
        let lines = self
            .backend
            .query(move |ledger| audit_lines(ledger, &patient))?;
        say_all(io, &lines.map_err(refused)?);
        Ok(())
    }

    fn erase(&mut self, args: &[String], io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let (consent, _) = self.consent()?;
        if consent.erased.is_some() {
            return self.audit(io);
        }
        let yes = match args {
            [] => None,
            [flag] if flag == "--yes" => Some(true),
            _ => return refuse("usage: erase [--yes]"),
        };
        let confirmed = match yes {
            Some(yes) => yes,
            None => loop {
                let Some(answer) = io.ask(
                    "Erase your records from every node? It cannot be undone, and nothing \
                     more can be recorded about you (yes/no): ",
                ) else {
                    return refuse("erasure abandoned");
                };
                if let Some(yes) = parse_yes_no(&answer) {
                    break yes;
                }
                io.say("Please answer yes or no.");
            },
        };
        if !confirmed {
            io.say("Nothing erased.");
            return Ok(());
        }
        let now = self.backend.now();
        let tx = self
            .backend
            .query(move |ledger| me.erase(ledger, now))?
            .map_err(refused)?;
        self.submit(
            tx,
            "Erasure requested: each node erases your records and confirms once it is mined",
            io,
        )
    }

    fn export(&mut self, out: Option<String>, io: &mut dyn Conversation) -> Outcome {
        let me = self.me()?;
        let patient = me.patient_id();
        let (genesis, records) = self.backend.query(move |ledger| {
            (
                ledger.genesis().clone(),
                crate::fhir::chain_records(ledger, &patient),
            )
        })?;
        let key: EncryptionKey = me.encryption_key();
        let read = |hash: &ledger_core::Hash| self.vault.get(hash).ok().flatten();
        let reader = crate::fhir::export::ExportReader {
            reader: BodyReader::new(genesis.hash(), me.account(), &key),
            vault: &read,
        };
        let records = records.map_err(Failure::Fatal)?;
        let exported = crate::fhir::export::export(&genesis, patient, &records, &reader);
        let path = out.unwrap_or_else(|| format!("{patient}.fhir.json"));
        let summary = crate::fhir::write_bundle(Path::new(&path), &exported)
            .map_err(|e| refused(format!("{e:#}")))?;
        io.say(&format!("{summary}; written to {path}"));
        Ok(())
    }
}

/// A grantee as the patient names it: a role, or a member's username.
fn parse_grantee(text: &str, roster: &[(AccountId, String, String)]) -> Outcome<Grantee> {
    if let Some(role) = parse_role(text) {
        return Ok(Grantee::Role(role));
    }
    match roster.iter().find(|(_, username, _)| username == text) {
        Some((account, _, role)) if Role::from_label(role).is_some_and(Role::is_clinical) => {
            Ok(Grantee::Member(*account))
        }
        Some(_) => refuse(format!("{text} is not a member of the care team")),
        None => refuse(format!("'{text}' is neither a role nor a username")),
    }
}

/// A role of the care team by its label or its node's name.
fn parse_role(text: &str) -> Option<Role> {
    match text.to_ascii_lowercase().as_str() {
        "doctor" | "doctors" => Some(Role::Doctor),
        "lab" | "lab_technician" | "lab_technicians" => Some(Role::LabTechnician),
        "pharmacy" | "pharmacist" | "pharmacists" => Some(Role::Pharmacist),
        _ => None,
    }
}

fn parse_categories(text: &str) -> Outcome<Vec<Category>> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(Category::ALL.to_vec());
    }
    let mut categories = Vec::new();
    for word in text.split(',') {
        let category = Category::parse(word).ok_or_else(|| {
            refused(format!(
                "'{}' is not a category (demographics, notes, tests, prescriptions, all)",
                word.trim()
            ))
        })?;
        if !categories.contains(&category) {
            categories.push(category);
        }
    }
    Ok(categories)
}

fn grantee_name(grantee: &Grantee, roster: &[(AccountId, String, String)]) -> String {
    match grantee {
        Grantee::Role(role) => format!("every {role}"),
        Grantee::Member(account) => roster
            .iter()
            .find(|(a, _, _)| a == account)
            .map_or_else(|| format!("{account:#}"), |(_, u, _)| u.clone()),
    }
}

/// The patient's audit: each recorded read (who, which records, when, why), then the
/// erasure and which members confirmed it.
fn audit_lines<B: ledger_core::BodySource<Event>>(
    ledger: &health_workflow::HealthLedger<B>,
    patient: &PatientId,
) -> Result<Vec<String>, String> {
    let state = ledger.state().app();
    let Some(record) = state.patient(patient) else {
        return Err("your registration is not on this chain".into());
    };
    let consent = record.consent();
    let name = |account: &AccountId| health_workflow::username_of(ledger, account);
    let mut lines = Vec::new();
    if consent.accesses.is_empty() {
        lines.push("Nobody has read your records yet.".to_string());
    } else {
        lines.push(format!("{} recorded read(s):", consent.accesses.len()));
    }
    for entry in &consent.accesses {
        let event = records::recorded_event(ledger, entry.height, &entry.tx_id)
            .map_err(|e| e.to_string())?;
        let Event::AccessRecord(access) = &event.event else {
            continue;
        };
        let served_by = if access.reader == event.recorded.author {
            String::new()
        } else {
            format!(", served by {}", name(&event.recorded.author))
        };
        let flag = match &access.purpose {
            AccessPurpose::BreakGlass { reason } => format!(" BREAK-GLASS: '{reason}'"),
            AccessPurpose::Treatment => String::new(),
        };
        lines.push(format!(
            "  {} block #{} {} read {} record(s){served_by}{flag}",
            views::time(event.recorded.time),
            event.recorded.height,
            name(&access.reader),
            access.bodies.len()
        ));
    }
    for window in &consent.break_glass {
        lines.push(format!(
            "  BREAK-GLASS access of {} until {}",
            name(&window.doctor),
            views::time(window.until)
        ));
    }
    if let Some(erased) = consent.erased {
        lines.push(format!("Erasure requested in block #{}.", erased.height));
        let members: Vec<(AccountId, String)> = ledger
            .genesis()
            .roster
            .iter()
            .filter(|m| Role::from_label(&m.role).is_some_and(Role::is_clinical))
            .map(|m| (m.account, m.username.clone()))
            .collect();
        for (account, username) in members {
            let status = match consent.receipts.iter().find(|r| r.author == account) {
                Some(at) => format!("confirmed in block #{}", at.height),
                None => "not confirmed yet".to_string(),
            };
            lines.push(format!("  {username}: {status}"));
        }
    }
    Ok(lines)
}

impl<B: Backend> crate::launch::Session for PatientRepl<B> {
    fn prompt(&self) -> String {
        PatientRepl::prompt(self)
    }

    fn handle_line(&mut self, line: &str, io: &mut dyn Conversation) -> anyhow::Result<Flow> {
        PatientRepl::handle_line(self, line, io)
    }
}
