//! The REPL driven through an in-memory backend and a scripted conversation.

use std::cell::RefCell;
use std::collections::VecDeque;

use health_workflow::demo::DemoGenesisBuilder;
use health_workflow::{Credentials, Event, HealthPolicy};
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

    fn submit_sealed(
        &self,
        tx: HealthTx,
        _bodies: Vec<health_workflow::seal::SealedBody>,
    ) -> anyhow::Result<Result<TxId, TxError<EventError>>> {
        // One node: the bodies are in the shared vault already.
        self.submit(tx)
    }

    fn mine(&self, keys: &Keypair) -> anyhow::Result<MineOutcome> {
        let mut ledger = self.0.borrow_mut();
        let block = ledger.mine_block(keys, NOW);
        let height = block.header.height;
        let hash = block.hash();
        ledger.submit(block, NOW).into_result()?;
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

/// One node of a test: its ledger and its vault, shared by the test's sessions.
struct Node {
    ledger: RefCell<HealthLedger>,
    vault: Vault,
}

impl std::ops::Deref for Node {
    type Target = RefCell<HealthLedger>;
    fn deref(&self) -> &Self::Target {
        &self.ledger
    }
}

fn ledger() -> Node {
    Node {
        ledger: RefCell::new(
            Ledger::new(DemoGenesisBuilder::new().pow_bits(0).build(), HealthPolicy)
                .expect("valid demo genesis"),
        ),
        vault: Vault::memory(),
    }
}

fn session(node: &Node, role: NodeRole) -> Repl<Local<'_>> {
    Repl::new(
        Local(&node.ledger),
        role,
        role.default_node_name(5000),
        Logins::Demo(Credentials::demo()),
        crate::launch::demo_producer(Some(role), ""),
        node.vault.clone(),
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
    let ledger = Node {
        ledger: RefCell::new(Ledger::new(genesis, HealthPolicy).expect("valid genesis")),
        vault: Vault::memory(),
    };
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
