//! Account state (balances, nonces, the policy's state) and how blocks change it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::block::Reward;
use crate::error::TxError;
use crate::genesis::{Genesis, Member};
use crate::hash::{BlockHash, TxId};
use crate::keys::AccountId;
use crate::limits;
use crate::policy::{Policy, TxContext};
use crate::tx::{Transaction, TxBody};
use crate::units::{Amount, Height, Timestamp};

/// The state the chain implies: every balance, every author's last nonce, and the
/// application policy's state `S`.
///
/// Maintained incrementally (each block costs O(block)); [`Ledger::replay_from_genesis`]
/// recomputes it from scratch and must give an equal value.
///
/// [`Ledger::replay_from_genesis`]: crate::Ledger::replay_from_genesis
#[derive(Clone, Debug, PartialEq)]
pub struct ChainState<S> {
    balances: HashMap<AccountId, Amount>,
    nonces: HashMap<AccountId, u64>,
    app: S,
}

impl<S> ChainState<S> {
    /// The balance of `account` (zero if it never held anything).
    pub fn balance(&self, account: &AccountId) -> Amount {
        balance_in(&self.balances, account)
    }

    /// Every account that holds or held e-cash, with its balance.
    pub fn balances(&self) -> impl Iterator<Item = (&AccountId, &Amount)> {
        self.balances.iter()
    }

    /// The last nonce `account` used (0 if none: the first transaction uses 1 or more).
    pub fn nonce(&self, account: &AccountId) -> u64 {
        self.nonces.get(account).copied().unwrap_or(0)
    }

    /// The application's state.
    pub fn app(&self) -> &S {
        &self.app
    }

    /// Sum of all balances; constant for a network (the supply fixed at genesis).
    pub fn total_supply(&self) -> Option<Amount> {
        self.balances
            .values()
            .try_fold(Amount::ZERO, |sum, a| sum.checked_add(*a))
    }
}

/// What reverting one block's effects needs, newest change last.
#[derive(Debug)]
pub(crate) struct Undo<U> {
    balances: Vec<(AccountId, Option<Amount>)>,
    nonces: Vec<(AccountId, Option<u64>)>,
    app: Vec<U>,
}

impl<U> Default for Undo<U> {
    fn default() -> Self {
        Undo {
            balances: Vec::new(),
            nonces: Vec::new(),
            app: Vec::new(),
        }
    }
}

/// A block's effects once applied: how to revert them, and the rewards paid.
pub(crate) type Executed<U> = (Undo<U>, Vec<Reward>);

/// A transaction of a block failed: its index and why.
pub(crate) type Failed<E> = (usize, TxError<E>);

/// Where transactions are being applied: a block's height and time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) height: Height,
    pub(crate) time: Timestamp,
}

/// Everything applying transactions needs besides the state itself.
pub(crate) struct Rules<'a, P> {
    pub(crate) policy: &'a P,
    pub(crate) genesis: &'a Genesis,
    pub(crate) genesis_hash: BlockHash,
    pub(crate) members: &'a HashMap<AccountId, usize>,
}

impl<P> Clone for Rules<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Rules<'_, P> {}

impl<'a, P: Policy> Rules<'a, P> {
    fn member(&self, account: &AccountId) -> Option<&'a Member> {
        self.members
            .get(account)
            .and_then(|&i| self.genesis.roster.get(i))
    }
}

impl<S> ChainState<S> {
    /// The state before block 1.
    pub(crate) fn genesis<P: Policy<State = S>>(policy: &P, genesis: &Genesis) -> Self {
        ChainState {
            balances: genesis.balances.iter().copied().collect(),
            nonces: HashMap::new(),
            app: policy.genesis_state(genesis),
        }
    }

    /// Applies one transaction (signature already checked). On error the state is
    /// unchanged and nothing is added to `undo`. Returns the rewards it earns.
    pub(crate) fn apply_tx<P: Policy<State = S>>(
        &mut self,
        rules: Rules<'_, P>,
        slot: Slot,
        id: TxId,
        tx: &Transaction<P::Payload>,
        undo: &mut Undo<P::Undo>,
    ) -> Result<Vec<(AccountId, Amount)>, TxError<P::Error>> {
        if tx.author == rules.genesis.reserve {
            return Err(TxError::FromReserve { tx: id });
        }
        // The author's nonce is looked up once, read now and written on success.
        let ChainState {
            balances,
            nonces,
            app,
        } = self;
        let nonce = nonces.entry(tx.author);
        let last = match &nonce {
            Entry::Occupied(last) => *last.get(),
            Entry::Vacant(_) => 0,
        };
        if tx.nonce <= last {
            return Err(TxError::StaleNonce {
                tx: id,
                author: tx.author,
                last,
                nonce: tx.nonce,
            });
        }
        let limit = slot.time.plus_millis(limits::MAX_FUTURE_DRIFT_MS);
        if tx.timestamp > limit {
            return Err(TxError::FromTheFuture {
                tx: id,
                timestamp: tx.timestamp,
                limit,
            });
        }
        let ctx = TxContext {
            tx_id: id,
            author: tx.author,
            member: rules.member(&tx.author),
            height: slot.height,
            block_time: slot.time,
            tx_time: tx.timestamp,
            genesis: rules.genesis,
            genesis_hash: rules.genesis_hash,
        };
        let rewards = match &tx.body {
            TxBody::Transfer { to, amount } => {
                rules
                    .policy
                    .check_transfer(&ctx, app, to, *amount)
                    .map_err(|error| TxError::Policy { tx: id, error })?;
                transfer(balances, id, tx.author, *to, *amount, undo)?;
                Vec::new()
            }
            TxBody::App(payload) => {
                let applied = rules
                    .policy
                    .apply(&ctx, app, payload)
                    .map_err(|error| TxError::Policy { tx: id, error })?;
                undo.app.push(applied.undo);
                applied.rewards
            }
        };
        let old = match nonce {
            Entry::Occupied(mut last) => Some(last.insert(tx.nonce)),
            Entry::Vacant(slot) => {
                slot.insert(tx.nonce);
                None
            }
        };
        undo.nonces.push((tx.author, old));
        Ok(rewards)
    }

    /// Pays earned rewards from the reserve in order, skipping any the reserve can no
    /// longer afford (or that would overflow, which a fixed supply makes impossible).
    /// Returns the rewards actually paid: exactly what the block must list.
    pub(crate) fn pay_rewards<U>(
        &mut self,
        reserve: AccountId,
        earned: Vec<Reward>,
        undo: &mut Undo<U>,
    ) -> Vec<Reward> {
        let mut paid = Vec::with_capacity(earned.len());
        for reward in earned {
            if reward.amount == Amount::ZERO || reward.to == reserve {
                continue;
            }
            let Some(left) = self.balance(&reserve).checked_sub(reward.amount) else {
                continue;
            };
            let Some(credited) = self.balance(&reward.to).checked_add(reward.amount) else {
                continue;
            };
            set_balance(&mut self.balances, reserve, left, undo);
            set_balance(&mut self.balances, reward.to, credited, undo);
            paid.push(reward);
        }
        paid
    }

    /// Applies a block's transactions and rewards, returning the undo record and the
    /// rewards paid. On error the state is restored and the failing index returned.
    pub(crate) fn execute<P: Policy<State = S>>(
        &mut self,
        rules: Rules<'_, P>,
        slot: Slot,
        txs: &[Transaction<P::Payload>],
        ids: &[TxId],
    ) -> Result<Executed<P::Undo>, Failed<P::Error>> {
        let mut undo = Undo::default();
        let mut earned = Vec::new();
        for (index, (tx, id)) in txs.iter().zip(ids).enumerate() {
            match self.apply_tx(rules, slot, *id, tx, &mut undo) {
                Ok(rewards) => earned.extend(rewards.into_iter().map(|(to, amount)| Reward {
                    to,
                    amount,
                    cause: *id,
                })),
                Err(error) => {
                    self.revert(rules.policy, undo);
                    return Err((index, error));
                }
            }
        }
        let paid = self.pay_rewards(rules.genesis.reserve, earned, &mut undo);
        Ok((undo, paid))
    }

    /// Reverts one `execute` (or a sequence of `apply_tx`) exactly.
    pub(crate) fn revert<P: Policy<State = S>>(&mut self, policy: &P, undo: Undo<P::Undo>) {
        for (account, old) in undo.balances.into_iter().rev() {
            restore(&mut self.balances, account, old);
        }
        for (account, old) in undo.nonces.into_iter().rev() {
            restore(&mut self.nonces, account, old);
        }
        for app in undo.app.into_iter().rev() {
            policy.undo(&mut self.app, app);
        }
    }
}

fn balance_in(balances: &HashMap<AccountId, Amount>, account: &AccountId) -> Amount {
    balances.get(account).copied().unwrap_or_default()
}

fn set_balance<U>(
    balances: &mut HashMap<AccountId, Amount>,
    account: AccountId,
    amount: Amount,
    undo: &mut Undo<U>,
) {
    let old = balances.insert(account, amount);
    undo.balances.push((account, old));
}

/// Moves `amount` from `from` to `to`, recording the old balances in `undo`.
fn transfer<U, E>(
    balances: &mut HashMap<AccountId, Amount>,
    id: TxId,
    from: AccountId,
    to: AccountId,
    amount: Amount,
    undo: &mut Undo<U>,
) -> Result<(), TxError<E>> {
    if amount == Amount::ZERO {
        return Err(TxError::ZeroAmount { tx: id });
    }
    let balance = balance_in(balances, &from);
    let debited = balance.checked_sub(amount).ok_or(TxError::Overdraft {
        tx: id,
        account: from,
        balance,
        amount,
    })?;
    if from == to {
        // A self-transfer moves nothing but must still be affordable.
        return Ok(());
    }
    let credited = balance_in(balances, &to)
        .checked_add(amount)
        .ok_or(TxError::Overflow {
            tx: id,
            account: to,
        })?;
    set_balance(balances, from, debited, undo);
    set_balance(balances, to, credited, undo);
    Ok(())
}

fn restore<V>(map: &mut HashMap<AccountId, V>, account: AccountId, old: Option<V>) {
    match old {
        Some(value) => {
            map.insert(account, value);
        }
        None => {
            map.remove(&account);
        }
    }
}
