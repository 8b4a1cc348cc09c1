//! Crafted signatures, made as an attacker who holds a secret key would make them, and
//! proof that each one gets ONE verdict on every path.
//!
//! The ledger judges every signature by ZIP-215 (the cofactored equation
//! `[8][s]B = [8]R + [8][k]A`, non-canonical encodings of `A` and `R` accepted, `s`
//! canonical) plus one key filter: an account that is not a curve point, or is a point
//! of small order, signs nothing. The cases here are the ones on which verifiers
//! disagree: `R` or `A` with a torsion component (order 2, 4 and 8), `R` the identity
//! or a non-canonical encoding of a small-order point, `s + ℓ`, `s + 1`, a wrong
//! message, small-order and non-canonical small-order keys with `s = 0` (the ZIP-215
//! "small order" vectors), a key that is not a point, and the published
//! ed25519-speccheck vectors. Each case states its expected verdict, checked against
//! [`verify_signature`] and against an independent model of the equation written here
//! with `curve25519-dalek`; where the former cofactorless "strict" rule decided
//! otherwise, that is asserted too.
//!
//! Then the same verdict is required on every path that judges signatures:
//!
//! 1. alone ([`verify_signature`]);
//! 2. in a block's batch ([`preverify`], read back with `Preverified::has_tx` and
//!    `has_producer`) among honest signatures: on one thread every size from 1 to 64
//!    at every position for a cofactor-only-valid case, and for `s + 1` and a weak key
//!    every position at the sizes where the batch is halved differently (9, 17, 33,
//!    64) plus the ends and middle elsewhere; every case at sizes 1, 8, 9, 17, 33 and
//!    64 (first, middle, last position) on rayon pools of 1, 2 and 16 threads;
//! 3. at the mempool (`Ledger::submit_transaction`);
//! 4. in a block submitted to a fresh ledger, with the honest transactions already in
//!    the mempool (a warm cache), after `preverify_signatures`, through `import_blocks`
//!    and through [`prepare_and_verify`] and `submit_prepared`: accepted exactly when
//!    the crafted signature is valid, else refused for that transaction;
//! 5. as a block producer's signature, with the parent known (on each route of 4), as
//!    an orphan whose parent comes next, and child first through the bulk import:
//!    accepted, or refused as a bad producer signature, every way;
//! 6. for random mixes of honest, crafted-valid and crafted-invalid signatures, as
//!    transactions and producers of up to four blocks, on 1, 2 or 16 threads:
//!    [`preverify`]'s verdicts are [`verify_signature`]'s, and a [`SignatureSet`]
//!    verifies exactly when every signature is valid.
//!
//! Finally a chain mined the ordinary way (`mine_and_submit`) still verifies alone, in
//! batches, on a fresh ledger and through the bulk import, replays to the same state,
//! and its honest signatures passed the former rule too.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::sync::{Arc, OnceLock};

use common::*;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use curve25519_dalek::traits::{Identity, IsIdentity};
use ledger_core::merkle::merkle_root;
use ledger_core::{
    AccountId, Block, BlockError, BlockHash, BlockHeader, BlockOutcome, BlockStatus, Height,
    Keypair, Ledger, Signature, SignatureSet, Timestamp, Transaction, TxBody, TxError, TxId,
    mine_header, prepare_and_verify, preverify, verify_signature,
};
use proptest::prelude::*;
use rayon::ThreadPool;
use sha2::{Digest, Sha512};

// ----- the attacker's toolbox ------------------------------------------------------------

/// The group order ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The secret of a key pair as its holder sees it (RFC 8032 §5.1.5): the scalar `a`
/// with `A = a·B`, and the prefix from which nonces are derived.
struct Signer {
    keys: Keypair,
    a: Scalar,
    prefix: [u8; 32],
    public: EdwardsPoint,
}

impl Signer {
    fn new(seed: u8) -> Signer {
        let keys = Keypair::from_seed([seed; 32]);
        let digest = Sha512::digest(keys.seed());
        let (low, high) = digest.split_at(32);
        let a = Scalar::from_bytes_mod_order(clamp_integer(low.try_into().unwrap()));
        let public = EdwardsPoint::mul_base(&a);
        assert_eq!(
            public.compress().to_bytes(),
            keys.account().0,
            "A = a·B must be the account's bytes"
        );
        Signer {
            keys,
            a,
            prefix: high.try_into().unwrap(),
            public,
        }
    }

    /// RFC 8032's deterministic nonce for `message`.
    fn nonce(&self, message: &[u8]) -> Scalar {
        Scalar::from_hash(
            Sha512::new()
                .chain_update(self.prefix)
                .chain_update(message),
        )
    }
}

/// The challenge `k = H(R_bytes || A_bytes || M)`, over the exact bytes given.
fn challenge(r: &[u8], a: &[u8; 32], message: &[u8]) -> Scalar {
    Scalar::from_hash(
        Sha512::new()
            .chain_update(r)
            .chain_update(a)
            .chain_update(message),
    )
}

/// The signature `(R_bytes, r + k·a)` for any `R_bytes` the signer chooses.
fn forge(a: Scalar, account: &[u8; 32], r: Scalar, r_bytes: [u8; 32], message: &[u8]) -> Signature {
    let s = r + challenge(&r_bytes, account, message) * a;
    signature(r_bytes, s.to_bytes())
}

fn signature(r: [u8; 32], s: [u8; 32]) -> Signature {
    let mut bytes = [0; 64];
    bytes[..32].copy_from_slice(&r);
    bytes[32..].copy_from_slice(&s);
    Signature(bytes)
}

/// `s + ℓ` as a 256-bit integer: the same scalar, non-canonically encoded.
fn plus_ell(s: [u8; 32]) -> [u8; 32] {
    let mut out = [0; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + ℓ < 2^256 for any canonical s");
    out
}

/// The order of a point of the 8-torsion subgroup.
fn order(point: &EdwardsPoint) -> u32 {
    [1u32, 2, 4, 8]
        .into_iter()
        .find(|n| (Scalar::from(*n) * point).is_identity())
        .expect("every 8-torsion point has order at most 8")
}

/// The six non-canonical encodings of small-order points: `y = 1` and `y = -1` with
/// the sign bit set (x = 0), and `y + p` for `y = 0` and `y = 1`, each sign.
fn non_canonical_small_order() -> [[u8; 32]; 6] {
    let with_y = |low: u8, high: u8| {
        let mut bytes = [0xff; 32];
        bytes[0] = low;
        bytes[31] = high;
        bytes
    };
    let mut identity_signed = [0; 32];
    identity_signed[0] = 1;
    identity_signed[31] = 0x80;
    [
        identity_signed,    // (0, 1), sign bit set
        with_y(0xec, 0xff), // (0, -1), sign bit set
        with_y(0xed, 0x7f), // y = p ≡ 0: an order-4 point
        with_y(0xed, 0xff), // y = p, the other order-4 point
        with_y(0xee, 0x7f), // y = p + 1 ≡ 1: the identity
        with_y(0xee, 0xff), // y = p + 1, sign bit set
    ]
}

/// 32 bytes that are not the encoding of any curve point.
fn not_a_point() -> AccountId {
    let bytes = (2u8..)
        .map(|low| {
            let mut y = [0; 32];
            y[0] = low;
            y
        })
        .find(|y| CompressedEdwardsY(*y).decompress().is_none())
        .unwrap();
    AccountId(bytes)
}

// ----- two independent models of the rules -----------------------------------------------

/// The parts of a signature check, decoded: `None` if `A` or `R` is not a point or `s`
/// is not canonical.
fn decode(
    account: &AccountId,
    signature: &Signature,
) -> Option<(EdwardsPoint, EdwardsPoint, Scalar)> {
    let a = CompressedEdwardsY(account.0).decompress()?;
    let r = CompressedEdwardsY(signature.0[..32].try_into().unwrap()).decompress()?;
    let s = Option::from(Scalar::from_canonical_bytes(
        signature.0[32..].try_into().unwrap(),
    ))?;
    Some((a, r, s))
}

/// ZIP-215 alone, without the ledger's key filter: `[8]([s]B - R - [k]A) = 0`, with `k`
/// hashed over the bytes exactly as given.
fn zip215(account: &AccountId, message: &[u8], signature: &Signature) -> bool {
    decode(account, signature).is_some_and(|(a, r, s)| {
        let k = challenge(&signature.0[..32], &account.0, message);
        (EdwardsPoint::mul_base(&s) - r - k * a)
            .mul_by_cofactor()
            .is_identity()
    })
}

/// The rule the ledger applies: ZIP-215, by a key that is a point not of small order.
fn ledger_rule(account: &AccountId, message: &[u8], signature: &Signature) -> bool {
    let usable = CompressedEdwardsY(account.0)
        .decompress()
        .is_some_and(|a| !a.is_small_order());
    usable && zip215(account, message, signature)
}

/// The former mempool rule, cofactorless `verify_strict`: no small-order `A` or `R`,
/// and `R = [s]B - [k]A` exactly.
fn old_strict(account: &AccountId, message: &[u8], signature: &Signature) -> bool {
    decode(account, signature).is_some_and(|(a, r, s)| {
        let k = challenge(&signature.0[..32], &account.0, message);
        !a.is_small_order()
            && !r.is_small_order()
            && EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s) == r
    })
}

// ----- the crafted cases -----------------------------------------------------------------

/// One way to make a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Craft {
    /// `Keypair::sign`.
    Honest,
    /// The same signature, computed by hand.
    ByHand,
    /// `R + T` for the 8-torsion point `T = EIGHT_TORSION[i]`.
    TorsionR(usize),
    /// `R` the identity (canonical), `s = k·a`.
    IdentityR,
    /// `R` the i-th non-canonical encoding of a small-order point, `s = k·a`, `k` hashed
    /// over those exact bytes.
    SmallR(usize),
    /// The key `A + T_i` (a mixed-order point, so usable), signed with `a`.
    TorsionA(usize),
    /// The key `A + T_i` and `R + T_j` together.
    TorsionAR(usize, usize),
    /// `s + ℓ`: the right scalar, non-canonically encoded.
    NonCanonicalS,
    /// `s + 1`.
    SPlusOne,
    /// An honest signature of another message.
    WrongMessage,
    /// The key `T_i` (i = 0 is the identity), `R` another small-order point, `s = 0`.
    WeakKey(usize),
    /// The key the i-th non-canonical small-order encoding, `R` the next one, `s = 0`.
    WeakKeyNonCanonical(usize),
    /// A key that is not a curve point.
    NotAPoint,
}

use Craft::*;

impl Craft {
    /// Every case.
    fn all() -> Vec<Craft> {
        let mut all = vec![Honest, ByHand, IdentityR];
        all.extend((1..8).map(TorsionR));
        all.extend((0..6).map(SmallR));
        all.extend((1..8).map(TorsionA));
        all.extend([
            TorsionAR(1, 1),
            TorsionAR(2, 4),
            TorsionAR(4, 7),
            TorsionAR(7, 3),
        ]);
        all.extend([NonCanonicalS, SPlusOne, WrongMessage, NotAPoint]);
        all.extend((0..8).map(WeakKey));
        all.extend((0..6).map(WeakKeyNonCanonical));
        all
    }

    /// The ledger's verdict, stated by hand.
    fn valid(self) -> bool {
        match self {
            Honest | ByHand | TorsionR(_) | IdentityR | SmallR(_) | TorsionA(_) | TorsionAR(..) => {
                true
            }
            NonCanonicalS
            | SPlusOne
            | WrongMessage
            | WeakKey(_)
            | WeakKeyNonCanonical(_)
            | NotAPoint => false,
        }
    }

    /// ZIP-215's verdict without the key filter: small-order keys pass it.
    fn valid_zip215(self) -> bool {
        self.valid() || matches!(self, WeakKey(_) | WeakKeyNonCanonical(_))
    }

    /// The former strict rule's verdict, where it does not depend on the message: with a
    /// torsion component in `A`, it held exactly when `[k]T = 0`.
    fn valid_strict(self) -> Option<bool> {
        match self {
            Honest | ByHand => Some(true),
            TorsionA(_) | TorsionAR(..) => None,
            _ => Some(false),
        }
    }

    /// The account this case signs as.
    fn account(self, signer: &Signer) -> AccountId {
        match self {
            TorsionA(i) | TorsionAR(i, _) => {
                AccountId((signer.public + EIGHT_TORSION[i]).compress().to_bytes())
            }
            WeakKey(i) => AccountId(EIGHT_TORSION[i].compress().to_bytes()),
            WeakKeyNonCanonical(i) => AccountId(non_canonical_small_order()[i]),
            NotAPoint => not_a_point(),
            _ => signer.keys.account(),
        }
    }

    /// This case's signature of `message` as [`Craft::account`].
    fn sign(self, signer: &Signer, message: &[u8]) -> Signature {
        let account = self.account(signer).0;
        let a = signer.a;
        let r = signer.nonce(message);
        let honest_r = EdwardsPoint::mul_base(&r);
        let by_hand = || forge(a, &account, r, honest_r.compress().to_bytes(), message);
        let with_r =
            |point: EdwardsPoint| forge(a, &account, r, point.compress().to_bytes(), message);
        match self {
            Honest => signer.keys.sign(message),
            ByHand | TorsionA(_) | NotAPoint => by_hand(),
            TorsionR(i) | TorsionAR(_, i) => with_r(honest_r + EIGHT_TORSION[i]),
            IdentityR => forge(
                a,
                &account,
                Scalar::ZERO,
                EdwardsPoint::identity().compress().to_bytes(),
                message,
            ),
            SmallR(i) => forge(
                a,
                &account,
                Scalar::ZERO,
                non_canonical_small_order()[i],
                message,
            ),
            NonCanonicalS => {
                let honest = by_hand().0;
                let s: [u8; 32] = honest[32..].try_into().unwrap();
                signature(honest[..32].try_into().unwrap(), plus_ell(s))
            }
            SPlusOne => {
                let honest = by_hand().0;
                let s = Scalar::from_canonical_bytes(honest[32..].try_into().unwrap()).unwrap();
                signature(
                    honest[..32].try_into().unwrap(),
                    (s + Scalar::ONE).to_bytes(),
                )
            }
            WrongMessage => signer.keys.sign(&[message, b"!"].concat()),
            WeakKey(i) => signature(EIGHT_TORSION[(i + 3) % 8].compress().to_bytes(), [0; 32]),
            WeakKeyNonCanonical(i) => signature(non_canonical_small_order()[(i + 1) % 6], [0; 32]),
        }
    }
}

/// The key pair whose secret the crafted signatures use; it holds no funds, which
/// notes do not need.
fn attacker() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::new(77))
}

/// Checks `craft`'s signature of `message` against its stated verdict, both models and
/// [`verify_signature`].
fn judge(craft: Craft, account: &AccountId, message: &[u8], signature: &Signature) {
    let expected = craft.valid();
    assert_eq!(
        verify_signature(account, message, signature),
        expected,
        "{craft:?}: verify_signature"
    );
    assert_eq!(
        ledger_rule(account, message, signature),
        expected,
        "{craft:?}: model of the ledger's rule"
    );
    assert_eq!(
        zip215(account, message, signature),
        craft.valid_zip215(),
        "{craft:?}: ZIP-215 without the key filter"
    );
    assert_eq!(
        account.is_usable(),
        !matches!(craft, WeakKey(_) | WeakKeyNonCanonical(_) | NotAPoint),
        "{craft:?}: key filter"
    );
    if let Some(strict) = craft.valid_strict() {
        assert_eq!(
            old_strict(account, message, signature),
            strict,
            "{craft:?}: the former strict rule"
        );
    }
}

// ----- ledger fixtures -------------------------------------------------------------------

/// A note transaction by `craft`'s account with `craft`'s signature.
fn crafted_tx(genesis: &BlockHash, craft: Craft, nonce: u64, note: &str) -> TestTx {
    let signer = attacker();
    let mut tx = Transaction {
        author: craft.account(signer),
        nonce,
        timestamp: Clock::new().now(),
        body: TxBody::App(Op::Note(note.into())),
        signature: Signature::default(),
    };
    let message = tx.signing_bytes(genesis);
    tx.signature = craft.sign(signer, &message);
    tx
}

/// `count` honest notes, from the funded keys in turn with increasing nonces.
fn honest_txs(genesis: &BlockHash, count: usize) -> Vec<TestTx> {
    let k = keys();
    (0..count)
        .map(|i| {
            Transaction::new_signed(
                genesis,
                &k[i % KEYS],
                (i / KEYS + 1) as u64,
                Clock::new().now(),
                TxBody::App(Op::Note(format!("honest {i}"))),
            )
        })
        .collect()
}

/// A block on genesis by an honest producer: `honest` with `crafted` inserted at `at`.
fn block_with(
    genesis: BlockHash,
    producer: &Keypair,
    honest: &[TestTx],
    crafted: &TestTx,
    at: usize,
) -> TestBlock {
    let mut txs = honest.to_vec();
    txs.insert(at, crafted.clone());
    raw_block(genesis, 1, Clock::new().now(), producer, txs, vec![], 0)
}

/// A block on `parent` whose producer signature is `craft`'s.
fn crafted_producer_block(parent: &TestBlock, craft: Craft, txs: Vec<TestTx>) -> TestBlock {
    let signer = attacker();
    let mut block = Block {
        header: BlockHeader {
            height: Height(parent.header.height.0 + 1),
            prev: parent.hash(),
            merkle_root: Default::default(),
            timestamp: Timestamp(parent.header.timestamp.0 + 1),
            producer: craft.account(signer),
            nonce: 0,
        },
        signature: Signature::default(),
        transactions: txs,
        rewards: vec![],
    };
    block.header.merkle_root = merkle_root(&block.merkle_entries());
    let hash = mine_header(&mut block.header, 0, u64::MAX).expect("no proof of work needed");
    block.signature = craft.sign(signer, &block_signing_message(&hash));
    block
}

/// A rayon pool of `threads` threads.
fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a small thread pool can always be built")
}

/// Pools of 1, 2 and 16 threads, built once.
fn pools() -> &'static [(usize, ThreadPool)] {
    static POOLS: OnceLock<Vec<(usize, ThreadPool)>> = OnceLock::new();
    POOLS.get_or_init(|| [1, 2, 16].map(|n| (n, pool(n))).into())
}

/// Checks [`preverify`]'s verdicts on `block`, whose transaction `at` is crafted as
/// `craft` and everything else honest.
fn check_preverify(genesis: &BlockHash, block: TestBlock, at: usize, craft: Craft, threads: usize) {
    let crafted = block.transactions[at].id();
    let honest: Vec<TxId> = (block.transactions.iter().enumerate())
        .filter(|(i, _)| *i != at)
        .map(|(_, tx)| tx.id())
        .collect();
    let n = block.transactions.len();
    let blocks = [Arc::new(block)];
    let verified = preverify(genesis, &blocks);
    assert_eq!(
        verified.has_tx(&crafted),
        craft.valid(),
        "{craft:?} at {at} of {n} on {threads} threads"
    );
    assert!(
        honest.iter().all(|id| verified.has_tx(id)),
        "{craft:?} at {at} of {n} on {threads} threads: an honest signature was lost"
    );
    assert!(verified.has_producer(&blocks[0]));
    assert_eq!(verified.len(), n + usize::from(craft.valid()));
}

// ----- 1. alone --------------------------------------------------------------------------

#[test]
fn crafting_by_hand_reproduces_the_library_signature() {
    for seed in [1, 2, 77, 200] {
        let signer = Signer::new(seed);
        for message in [&b""[..], b"abc", &[0xff; 300]] {
            let by_hand = ByHand.sign(&signer, message);
            assert_eq!(by_hand, signer.keys.sign(message), "seed {seed}");
            assert!(verify_signature(&signer.keys.account(), message, &by_hand));
        }
    }
}

#[test]
fn the_torsion_points_and_the_non_canonical_encodings_are_what_the_cases_claim() {
    let orders: Vec<u32> = EIGHT_TORSION.iter().map(order).collect();
    assert_eq!(orders, [1, 8, 4, 8, 2, 8, 4, 8]);
    for bytes in non_canonical_small_order() {
        let point = CompressedEdwardsY(bytes).decompress().unwrap();
        assert!(point.is_small_order(), "{bytes:02x?}");
        assert_ne!(point.compress().to_bytes(), bytes, "non-canonical");
    }
    let signer = attacker();
    for (i, torsion) in EIGHT_TORSION.iter().enumerate().skip(1) {
        let mixed = signer.public + torsion;
        assert!(!mixed.is_small_order() && !mixed.is_torsion_free());
        assert!(TorsionA(i).account(signer).is_usable());
    }
    assert!(!not_a_point().is_usable());
    // ELL is ℓ: zero modulo ℓ, not canonical, and one more than the largest scalar.
    assert_eq!(Scalar::from_bytes_mod_order(ELL), Scalar::ZERO);
    assert!(bool::from(Scalar::from_canonical_bytes(ELL).is_none()));
    let mut ell_minus_one = ELL;
    ell_minus_one[0] -= 1;
    assert_eq!((-Scalar::ONE).to_bytes(), ell_minus_one);
    assert_eq!(plus_ell([0; 32]), ELL);
}

#[test]
fn every_crafted_case_has_its_expected_verdict_alone() {
    let signer = attacker();
    for message in [&b"a message"[..], b"", &[7; 200]] {
        for craft in Craft::all() {
            let account = craft.account(signer);
            let signature = craft.sign(signer, message);
            judge(craft, &account, message, &signature);
        }
    }
}

#[test]
fn the_zip215_small_order_vectors_are_refused_by_the_key_filter() {
    // Every small-order A and R among the 8 canonical encodings and the 6 non-canonical
    // ones, s = 0, message "Zcash": all valid under ZIP-215 alone, none by a usable key.
    let encodings: Vec<[u8; 32]> = (EIGHT_TORSION.iter())
        .map(|t| t.compress().to_bytes())
        .chain(non_canonical_small_order())
        .collect();
    for a in &encodings {
        let account = AccountId(*a);
        assert!(!account.is_usable());
        for r in &encodings {
            let sig = signature(*r, [0; 32]);
            assert!(zip215(&account, b"Zcash", &sig), "{a:02x?} {r:02x?}");
            assert!(!verify_signature(&account, b"Zcash", &sig));
        }
    }
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    assert_eq!(text.len(), 2 * N, "{text}");
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn the_speccheck_vectors_have_their_zip215_verdicts() {
    // The 12 vectors of ed25519-speccheck ("Taming the many EdDSAs", Chalkias, Garillot
    // and Nikolaenko, 2020): message, key, signature, ZIP-215's verdict, ours.
    #[rustfmt::skip]
    let vectors: [(&str, &str, &str, bool, bool); 12] = [
        // 0: s = 0, small-order A and R: ZIP-215 accepts; our key filter refuses A.
        ("8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
         "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
         "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
         true, false),
        // 1: 0 < s < ℓ, small-order A, mixed-order R: ZIP-215 accepts; key filter refuses.
        ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
         "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
         "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
         true, false),
        // 2: mixed-order A, small-order R: valid.
        ("aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
         "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
         "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
         true, true),
        // 3: mixed-order A and R, passes the cofactorless equation too: valid.
        ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
         "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
         "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
         true, true),
        // 4: mixed-order A and R, passes only the cofactored equation: valid.
        ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
         "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
         "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
         true, true),
        // 5: the same with an 8 (cofactor) left in k's reduction: valid.
        ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
         "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
         "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
         true, true),
        // 6: s > ℓ (non-canonical): invalid.
        ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
         "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
         "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
         false, false),
        // 7: s ≫ ℓ (high bits set): invalid.
        ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
         "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
         "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
         false, false),
        // 8: non-canonical small-order R, k hashed over its reduced encoding: invalid.
        ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
         "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
         "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
         false, false),
        // 9: the same R, k hashed over the bytes as sent: valid.
        ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
         "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
         "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
         true, true),
        // 10: non-canonical small-order A: ZIP-215 accepts; our key filter refuses.
        ("e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
         "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
         true, false),
        // 11: the same key, another message: ZIP-215 accepts; key filter refuses.
        ("39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
         "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
         true, false),
    ];
    for (i, (message, key, sig, valid_zip215, valid)) in vectors.into_iter().enumerate() {
        let message: [u8; 32] = unhex(message);
        let account = AccountId(unhex(key));
        let sig = Signature(unhex(sig));
        assert_eq!(
            zip215(&account, &message, &sig),
            valid_zip215,
            "vector {i}: ZIP-215"
        );
        assert_eq!(
            ledger_rule(&account, &message, &sig),
            valid,
            "vector {i}: model"
        );
        assert_eq!(
            verify_signature(&account, &message, &sig),
            valid,
            "vector {i}"
        );
        // Ours differs from ZIP-215 exactly where the key is of small order.
        assert_eq!(
            valid_zip215 && !valid,
            !account.is_usable(),
            "vector {i}: key filter"
        );
    }
}

// ----- 2. batches of every size, at every position, on 1, 2 and 16 threads ---------------

#[test]
fn a_crafted_transaction_signature_gets_one_verdict_in_every_batch_and_position() {
    // On one thread, every size 1..=64 and every position for a crafted signature valid
    // only by the cofactored equation (torsion in both the key and R). Two invalid ones
    // cost more or matter at fewer places: `s + 1` makes the batch fail and be settled
    // by halving, and a weak key is dropped before batching (its transaction's verdict
    // must stay aligned); for those, every position at the sizes where the halving
    // changes shape (9, 17, 33, 64) and the first, middle and last at every other size.
    let genesis = genesis(0).hash();
    let producer = &keys()[4];
    let honest = honest_txs(&genesis, 63);
    let (_, one) = &pools()[0];
    for (craft, every_position) in [
        (TorsionAR(4, 7), true),
        (SPlusOne, false),
        (WeakKey(4), false),
    ] {
        let crafted = crafted_tx(&genesis, craft, 1, "crafted");
        judge(
            craft,
            &crafted.author,
            &crafted.signing_bytes(&genesis),
            &crafted.signature,
        );
        for size in 1..=64 {
            let sampled = |at: usize| {
                [9, 17, 33, 64].contains(&size) || [0, size / 2, size - 1].contains(&at)
            };
            for at in (0..size).filter(|&at| every_position || sampled(at)) {
                let block = block_with(genesis, producer, &honest[..size - 1], &crafted, at);
                one.install(|| check_preverify(&genesis, block, at, craft, 1));
            }
        }
    }
}

#[test]
fn every_crafted_case_gets_one_verdict_in_batches_on_1_2_and_16_threads() {
    // Sizes around the points where the verifier changes strategy (8 and fewer checked
    // one by one, halves, 32 per thread), at the first, middle and last position.
    let genesis = genesis(0).hash();
    let producer = &keys()[4];
    let honest = honest_txs(&genesis, 63);
    let sizes = [1, 8, 9, 17, 33, 64];
    for craft in Craft::all() {
        let crafted = crafted_tx(&genesis, craft, 1, "crafted");
        judge(
            craft,
            &crafted.author,
            &crafted.signing_bytes(&genesis),
            &crafted.signature,
        );
        for (threads, pool) in pools() {
            for size in sizes {
                for at in [0, size / 2, size - 1] {
                    let block = block_with(genesis, producer, &honest[..size - 1], &crafted, at);
                    pool.install(|| check_preverify(&genesis, block, at, craft, *threads));
                }
            }
        }
    }
}

// ----- 3. the mempool --------------------------------------------------------------------

#[test]
fn the_mempool_gives_the_same_verdict() {
    for craft in Craft::all() {
        for (threads, pool) in pools() {
            let mut ledger = ledger(0);
            let genesis = ledger.genesis_hash();
            let tx = crafted_tx(&genesis, craft, 1, "crafted");
            judge(
                craft,
                &tx.author,
                &tx.signing_bytes(&genesis),
                &tx.signature,
            );
            let id = tx.id();
            let outcome = pool.install(|| ledger.submit_transaction(tx, late()));
            let expected = if craft.valid() {
                Ok(id)
            } else {
                Err(TxError::BadSignature { tx: id })
            };
            assert_eq!(outcome, expected, "{craft:?} on {threads} threads");
            assert_eq!(ledger.is_pending(&id), craft.valid());
        }
    }
}

// ----- 4. blocks, with a cold and a warm signature cache ---------------------------------

/// How a block reaches the ledger.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// `submit` on a fresh ledger: every signature checked in the block's batch.
    Cold,
    /// `submit` after the block's honest transactions entered the mempool, so
    /// their signatures are cached and only the crafted one is checked.
    WarmMempool,
    /// `submit` after `preverify_signatures` on the block.
    WarmPreverified,
    /// `import_blocks`, which verifies ahead of validation.
    Imported,
    /// `prepare_and_verify`, then `submit_prepared`.
    Prepared,
}

/// Submits `blocks` (parents first) to `ledger` by `route`; the last one's outcome.
fn submit_by(
    ledger: &mut TestLedger,
    route: Route,
    blocks: &[TestBlock],
    mempool: &[TestTx],
) -> BlockOutcome<OpError> {
    let genesis = ledger.genesis_hash();
    let shared: Vec<Arc<TestBlock>> = blocks.iter().cloned().map(Arc::new).collect();
    match route {
        Route::Cold | Route::WarmMempool | Route::WarmPreverified => {
            match route {
                Route::WarmMempool => {
                    for tx in mempool {
                        submit_tx(ledger, tx.clone(), late());
                    }
                }
                Route::WarmPreverified => ledger.preverify_signatures(&shared),
                _ => {}
            }
            let (last, parents) = blocks.split_last().expect("at least one block");
            for parent in parents {
                submit_accepted(ledger, parent, late());
            }
            ledger.submit(last.clone(), late())
        }
        Route::Imported => ledger
            .import_blocks(&shared, late())
            .pop()
            .expect("one outcome per block"),
        Route::Prepared => {
            let mut outcomes: Vec<_> = prepare_and_verify(&genesis, &shared)
                .into_iter()
                .map(|prepared| ledger.submit(prepared, late()))
                .collect();
            outcomes.pop().expect("one outcome per block")
        }
    }
}

const ROUTES: [Route; 5] = [
    Route::Cold,
    Route::WarmMempool,
    Route::WarmPreverified,
    Route::Imported,
    Route::Prepared,
];

#[test]
fn a_block_is_accepted_iff_its_crafted_signature_is_valid_on_every_route() {
    let genesis = genesis(0).hash();
    let producer = &keys()[4];
    let honest = honest_txs(&genesis, 63);
    let layouts = [(1, 0), (10, 9), (40, 17)];
    for craft in Craft::all() {
        let crafted = crafted_tx(&genesis, craft, 1, "crafted");
        judge(
            craft,
            &crafted.author,
            &crafted.signing_bytes(&genesis),
            &crafted.signature,
        );
        for (threads, pool) in pools() {
            for (size, at) in layouts {
                let others = &honest[..size - 1];
                let block = block_with(genesis, producer, others, &crafted, at);
                for route in ROUTES {
                    let mut ledger = ledger(0);
                    let tip = ledger.tip();
                    let blocks = [block.clone()];
                    let outcome = pool.install(|| submit_by(&mut ledger, route, &blocks, others));
                    let context =
                        format!("{craft:?} at {at} of {size}, {route:?}, {threads} threads");
                    if craft.valid() {
                        assert_eq!(
                            outcome.status,
                            BlockStatus::Accepted,
                            "{context}: {:?}",
                            outcome.invalid
                        );
                        assert_eq!(ledger.tip().hash, block.hash(), "{context}");
                    } else {
                        let expected = BlockError::Transaction {
                            block: block.hash(),
                            index: at,
                            error: TxError::BadSignature { tx: crafted.id() },
                        };
                        assert_eq!(outcome.into_result().err(), Some(expected), "{context}");
                        assert_eq!(ledger.tip(), tip, "{context}");
                    }
                }
            }
        }
    }
}

// ----- 5. producer signatures, with the parent known and as an orphan --------------------

#[test]
fn a_crafted_producer_signature_gets_one_verdict_with_or_without_its_parent() {
    let k = keys();
    let genesis = genesis(0).hash();
    let parent = raw_block(genesis, 1, Clock::new().now(), &k[4], vec![], vec![], 0);
    let txs = honest_txs(&genesis, 3);
    for craft in Craft::all() {
        let child = crafted_producer_block(&parent, craft, txs.clone());
        let hash = child.hash();
        judge(
            craft,
            &child.header.producer,
            &block_signing_message(&hash),
            &child.signature,
        );
        let refused = || BlockError::BadProducerSignature { block: hash };
        for (threads, pool) in pools() {
            let context = format!("{craft:?} on {threads} threads");
            pool.install(|| {
                // The parent known, on every route.
                for route in ROUTES {
                    let mut known = ledger(0);
                    let outcome =
                        submit_by(&mut known, route, &[parent.clone(), child.clone()], &txs);
                    if craft.valid() {
                        assert_eq!(
                            outcome.status,
                            BlockStatus::Accepted,
                            "{context}, {route:?}: {:?}",
                            outcome.invalid
                        );
                        assert_eq!(known.tip().hash, hash, "{context}, {route:?}");
                    } else {
                        assert_eq!(
                            outcome.into_result().err(),
                            Some(refused()),
                            "{context}, {route:?}"
                        );
                        assert_eq!(known.tip().hash, parent.hash(), "{context}, {route:?}");
                    }
                }

                // The child first, as an orphan, then its parent.
                let mut orphan = ledger(0);
                let outcome = orphan.submit(child.clone(), late());
                if craft.valid() {
                    assert_eq!(
                        outcome.status,
                        BlockStatus::Orphan {
                            missing: parent.hash()
                        },
                        "{context}: {:?}",
                        outcome.invalid
                    );
                } else {
                    assert_eq!(outcome.into_result().err(), Some(refused()), "{context}");
                }
                let outcome = orphan.submit(parent.clone(), late());
                assert_eq!(outcome.status, BlockStatus::Accepted, "{context}");
                assert_eq!(outcome.accepted.contains(&hash), craft.valid(), "{context}");
                let tip = if craft.valid() { hash } else { parent.hash() };
                assert_eq!(orphan.tip().hash, tip, "{context}");
                assert_eq!(orphan.knows_block(&hash), craft.valid(), "{context}");

                // The same, child first, through the bulk import.
                let mut imported = ledger(0);
                let both = [Arc::new(child.clone()), Arc::new(parent.clone())];
                let outcomes = imported.import_blocks(&both, late());
                let first = outcomes[0].clone();
                if craft.valid() {
                    assert!(
                        matches!(first.status, BlockStatus::Orphan { .. }),
                        "{context}"
                    );
                } else {
                    assert_eq!(
                        first.into_result().err(),
                        Some(refused()),
                        "{context}, import"
                    );
                }
                assert_eq!(imported.tip().hash, tip, "{context}, import");
            });
        }
    }
}

// ----- 6. random layouts -----------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However honest, crafted-valid and crafted-invalid signatures are mixed, split into
    /// blocks and spread over threads, `preverify` judges each one as `verify_signature`
    /// does, and a signature set verifies iff every signature is valid.
    #[test]
    fn batches_of_any_layout_agree_with_verify_signature(
        layout in prop::collection::vec(0..Craft::all().len(), 1..80),
        producers in prop::collection::vec(0..Craft::all().len(), 3),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        pool_index in 0usize..3,
    ) {
        let crafts = Craft::all();
        let genesis = genesis(0).hash();
        let txs: Vec<TestTx> = (layout.iter().enumerate())
            .map(|(i, c)| crafted_tx(&genesis, crafts[*c], i as u64 + 1, &format!("tx {i}")))
            .collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(txs.len() + 1)).collect();
        cuts.extend([0, txs.len()]);
        cuts.sort_unstable();
        cuts.dedup();
        let mut parent = raw_block(genesis, 1, Clock::new().now(), &keys()[4], vec![], vec![], 0);
        let mut blocks = Vec::new();
        let mut producer_crafts = Vec::new();
        for (n, window) in cuts.windows(2).enumerate() {
            let craft = crafts[producers[n % producers.len()]];
            let block = crafted_producer_block(&parent, craft, txs[window[0]..window[1]].to_vec());
            parent = block.clone();
            producer_crafts.push(craft);
            blocks.push(Arc::new(block));
        }
        let (threads, pool) = &pools()[pool_index];
        let (verified, all_valid) = pool.install(|| {
            (preverify(&genesis, &blocks), SignatureSet::of_blocks(&genesis, &blocks).verify())
        });
        let mut expected_all = true;
        for (tx, c) in txs.iter().zip(&layout) {
            let alone = verify_signature(&tx.author, &tx.signing_bytes(&genesis), &tx.signature);
            prop_assert_eq!(alone, crafts[*c].valid());
            prop_assert_eq!(verified.has_tx(&tx.id()), alone, "{:?} on {} threads", crafts[*c], threads);
            expected_all &= alone;
        }
        for (block, craft) in blocks.iter().zip(&producer_crafts) {
            let alone = verify_signature(&block.header.producer, &block_signing_message(&block.hash()), &block.signature);
            prop_assert_eq!(alone, craft.valid());
            prop_assert_eq!(verified.has_producer(block), alone, "producer {:?} on {} threads", craft, threads);
            expected_all &= alone;
        }
        prop_assert_eq!(all_valid, expected_all);
    }
}

// ----- honest signatures still pass ------------------------------------------------------

#[test]
fn a_chain_mined_the_ordinary_way_still_verifies() {
    let k = keys();
    let mut ledger = ledger(4);
    let mut clock = Clock::new();
    let mut blocks = Vec::new();
    for round in 0..4u64 {
        for (i, from) in k.iter().enumerate() {
            let to = k[(i + 1) % KEYS].account();
            send(&mut ledger, from, pay(to, round + 1), clock.tick());
        }
        blocks.push(mine_and_submit(
            &mut ledger,
            &k[round as usize % KEYS],
            clock.tick(),
        ));
    }
    assert_consistent(&ledger);
    let genesis_hash = ledger.genesis_hash();
    for block in &blocks {
        let message = block_signing_message(&block.hash());
        let producer = &block.header.producer;
        assert!(verify_signature(producer, &message, &block.signature));
        assert!(
            old_strict(producer, &message, &block.signature),
            "honest: valid before too"
        );
        for tx in &block.transactions {
            let message = tx.signing_bytes(&genesis_hash);
            assert!(verify_signature(&tx.author, &message, &tx.signature));
            assert!(ledger_rule(&tx.author, &message, &tx.signature));
            assert!(old_strict(&tx.author, &message, &tx.signature));
        }
    }
    let shared: Vec<Arc<TestBlock>> = blocks.iter().cloned().map(Arc::new).collect();
    for (_, pool) in pools() {
        let (verified, all) = pool.install(|| {
            (
                preverify(&genesis_hash, &shared),
                SignatureSet::of_blocks(&genesis_hash, &shared).verify(),
            )
        });
        assert!(all);
        let signatures: usize = blocks.iter().map(|b| b.transactions.len() + 1).sum();
        assert_eq!(verified.len(), signatures);
        assert!(shared.iter().all(|b| verified.has_producer(b)));
        // A fresh node accepts the same blocks one by one and through the bulk import,
        // and its replay matches.
        let fresh = pool.install(|| ledger_with(ledger.genesis(), &blocks, clock.now()));
        assert_eq!(fresh.tip(), ledger.tip());
        assert_consistent(&fresh);
        let mut imported = Ledger::new(ledger.genesis().clone(), Counter).unwrap();
        let outcomes = pool.install(|| imported.import_blocks(&shared, clock.now()));
        assert!(outcomes.iter().all(accepted));
        assert_eq!(imported.tip(), ledger.tip());
        assert_consistent(&imported);
    }
}

#[test]
fn preverified_signatures_name_their_network_and_count_what_verified() {
    let genesis = ledger(0).genesis_hash();
    let none = preverify::<Op>(&genesis, &[]);
    assert!(none.is_empty());
    assert_eq!(none.len(), 0);
    assert_eq!(none.genesis(), genesis);

    let honest = honest_txs(&genesis, 4);
    let k = keys();
    let block = raw_block(
        genesis,
        1,
        Clock::new().now(),
        &k[0],
        honest.clone(),
        vec![],
        0,
    );
    let verified = preverify(&genesis, &[Arc::new(block.clone())]);
    assert!(!verified.is_empty());
    // Four transactions and the producer.
    assert_eq!(verified.len(), 5);
    assert_eq!(verified.genesis(), genesis);
    assert!(honest.iter().all(|tx| verified.has_tx(&tx.id())));
    // Checked for another network, the same block's signatures name that network (and
    // verify nothing, since they were signed for this one).
    let other = BlockHash::from_byte_array([0xee; 32]);
    let elsewhere = preverify(&other, &[Arc::new(block)]);
    assert_eq!(elsewhere.genesis(), other);
    assert!(!honest.iter().any(|tx| elsewhere.has_tx(&tx.id())));
}

#[test]
fn a_signature_set_counts_every_signature_usable_or_not() {
    let genesis = ledger(0).genesis_hash();
    let empty = SignatureSet::of_blocks::<Op>(&genesis, &[]);
    assert!(empty.is_empty() && empty.verify());
    assert_eq!(empty.len(), 0);
    let honest = honest_txs(&genesis, 4);
    let k = keys();
    let block = raw_block(
        genesis,
        1,
        Clock::new().now(),
        &k[0],
        honest.clone(),
        vec![],
        0,
    );
    let set = SignatureSet::of_blocks(&genesis, &[Arc::new(block)]);
    assert_eq!(set.len(), 5, "four transactions and the producer");
    assert!(!set.is_empty() && set.verify());
    // An author whose key is not a point is counted, and fails the set.
    let mut stray = honest[0].clone();
    stray.author = not_a_point();
    let mut txs = honest.clone();
    txs.push(stray);
    let block = raw_block(genesis, 1, Clock::new().now(), &k[0], txs, vec![], 0);
    let set = SignatureSet::of_blocks(&genesis, &[Arc::new(block)]);
    assert_eq!(set.len(), 6);
    assert!(!set.verify());
}
