//! Embedding `ledger-core` with rules of your own.
//!
//! A tiny "guestbook" policy: anyone may sign the guestbook once, with a short message,
//! and earns 5 coins from the reserve for it. Two visitors sign, one tips the other,
//! three blocks are mined, and the balances and the guestbook are printed.
//!
//! Run with `cargo run --example embed_ledger`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use healthchain::ledger_core::{
    AccountId, Amount, Applied, Genesis, Keypair, Ledger, Policy, Timestamp, Transaction, TxBody,
    TxContext,
};

/// The guestbook: who signed, with what message, in order.
#[derive(Clone, Debug, Default, PartialEq)]
struct Guestbook {
    entries: Vec<(AccountId, String)>,
}

/// Why a signature of the guestbook is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum GuestbookError {
    #[error("message is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("{0} has already signed")]
    AlreadySigned(AccountId),
}

struct GuestbookRules {
    reward: Amount,
}

const MAX_MESSAGE: usize = 80;

impl Policy for GuestbookRules {
    type Payload = String;
    type State = Guestbook;
    type Undo = ();
    type Error = GuestbookError;

    fn genesis_state(&self, _: &Genesis) -> Guestbook {
        Guestbook::default()
    }

    fn apply(
        &self,
        ctx: &TxContext<'_>,
        book: &mut Guestbook,
        message: &String,
    ) -> Result<Applied<()>, GuestbookError> {
        if message.len() > MAX_MESSAGE {
            return Err(GuestbookError::TooLong { max: MAX_MESSAGE });
        }
        if book.entries.iter().any(|(who, _)| *who == ctx.author) {
            return Err(GuestbookError::AlreadySigned(ctx.author));
        }
        book.entries.push((ctx.author, message.clone()));
        Ok(Applied {
            undo: (),
            rewards: vec![(ctx.author, self.reward)],
        })
    }

    fn undo(&self, book: &mut Guestbook, (): ()) {
        book.entries.pop();
    }
}

fn now() -> anyhow::Result<Timestamp> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?;
    Ok(Timestamp(
        u64::try_from(since.as_millis()).context("clock overflow")?,
    ))
}

fn main() -> anyhow::Result<()> {
    // Example keys from fixed seeds: never do this outside an example.
    let ada = Keypair::from_seed([1; 32]);
    let bob = Keypair::from_seed([2; 32]);
    let reserve = AccountId::unspendable("guestbook reserve");
    let genesis = Genesis {
        network: "guestbook".into(),
        timestamp: now()?,
        pow_bits: 8,
        producers: None,
        roster: Vec::new(),
        balances: vec![(reserve, Amount(100))],
        reserve,
        parameters: BTreeMap::new(),
    };
    let mut ledger = Ledger::new(genesis, GuestbookRules { reward: Amount(5) })?;
    let net = ledger.genesis_hash();
    println!("network {} ({:#})", ledger.genesis().network, net);

    let sign = |keys: &Keypair, nonce, text: &str| -> anyhow::Result<_> {
        Ok(Transaction::new_signed(
            &net,
            keys,
            nonce,
            now()?,
            TxBody::App(text.to_string()),
        ))
    };

    // Block 1: both sign the guestbook.
    ledger.submit_transaction(sign(&ada, 1, "hello from Ada")?, now()?)?;
    ledger.submit_transaction(sign(&bob, 1, "Bob was here")?, now()?)?;
    // A second signature by Ada is refused by the policy, before any block.
    let again = ledger.submit_transaction(sign(&ada, 2, "me again")?, now()?);
    println!(
        "Ada signing twice: {}",
        again.expect_err("the policy refuses it")
    );
    let block = ledger.mine_block(&ada, now()?);
    ledger.submit(block, now()?).into_result()?;

    // Block 2: Bob tips Ada 3 of his 5 coins.
    let tip = TxBody::Transfer {
        to: ada.account(),
        amount: Amount(3),
    };
    let nonce = ledger.next_nonce(&bob.account());
    ledger.submit_transaction(
        Transaction::new_signed(&net, &bob, nonce, now()?, tip),
        now()?,
    )?;
    let block = ledger.mine_block(&bob, now()?);
    ledger.submit(block, now()?).into_result()?;

    // Block 3: empty; any producer with valid work may extend the chain.
    let block = ledger.mine_block(&bob, now()?);
    ledger.submit(block, now()?).into_result()?;

    println!("height {}", ledger.tip().height);
    for (name, keys) in [("ada", &ada), ("bob", &bob)] {
        println!("{name}: {}", ledger.balance(&keys.account()));
    }
    println!("reserve: {}", ledger.balance(&reserve));
    for (who, message) in &ledger.state().app().entries {
        println!("guestbook {who:#}: {message}");
    }
    let replayed = ledger.replay_from_genesis()?;
    anyhow::ensure!(
        &replayed == ledger.state(),
        "replay disagrees with the state"
    );
    println!("replay from genesis matches the incremental state");
    Ok(())
}
