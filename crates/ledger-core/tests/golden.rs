//! Byte-exact golden vectors for the canonical encoding and the hashes built on it.
//!
//! The expected bytes were produced once by the code and then checked field by field
//! against the format: fixed-width little-endian integers, `u64` length prefixes for
//! sequences, strings and maps, `u32` enum tags, `Option` as a `0`/`1` byte, fixed-size
//! arrays (keys, hashes, the 64-byte signature) as raw bytes. The hashes are
//! recomputed here with SHA-256 directly, independently of the crate's own helpers. A
//! dependency bump that changes a single byte fails these tests.
//!
//! Keys come from `Keypair::from_seed`, and ed25519 signatures are deterministic, so
//! every signature below is fixed too.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::collections::BTreeMap;

use common::Op;
use ledger_core::merkle::merkle_root;
use ledger_core::sealed::{EncryptionPublicKey, MemberEncryption};
use ledger_core::{
    AccountId, Amount, Block, BlockHash, BlockHeader, Genesis, HEADER_BYTES, Hash, Height, Keypair,
    Member, Reward, Signature, Timestamp, Transaction, TxBody, TxId, codec, verify_signature,
};
use sha2::{Digest, Sha256};

// ----- the fixed values ----------------------------------------------------------------

/// Public key of `Keypair::from_seed([1; 32])`.
const K1: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
/// Public key of `Keypair::from_seed([2; 32])`.
const K2: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
/// `AccountId::unspendable("golden-reserve")`: SHA-256 of
/// `"healthchain/unspendable/golden-reserve"`.
const RESERVE: &str = "e62b4352076f3adace3b39b14c06dee48e6d94db346808dbf12ecf49136f5d01";

/// Signature of `k1` over `b"golden"`.
const SIG_GOLDEN: &str = concat!(
    "24c37f1b36c5b724c3d37519ad8254da598b268ebdfb6ad8e1315af75ef253f8",
    "c9f7755f3c2f76c145f31cda16b602fffe47d9aeac355a45d5a193ed954e630a",
);

const GENESIS: &str = concat!(
    "0600000000000000",
    "676f6c64656e",     // network: u64 length 6, "golden"
    "0068e5cf8b010000", // timestamp 1_700_000_000_000 = 0x018bcfe56800
    "04",               // pow_bits: one byte
    "01",               // producers: Some
    "0100000000000000", // one producer
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "0100000000000000", // roster: one member
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "0200000000000000",
    "6472", // username "dr"
    "0200000000000000",
    "4472", // display name "Dr"
    "0600000000000000",
    "646f63746f72", // role "doctor"
    "01",           // encryption: Some
    "0909090909090909090909090909090909090909090909090909090909090909", // its X25519 key
    "7d20f41f73e295696d1d5466d68a661037a6bbffd7238d49af88f5e338cf90f3", // binding signature
    "38cb7c9a011f449e3783185dbf47f1007d12b1e46306615bfbac2aba99991e0a",
    "0200000000000000", // balances: two entries
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    "e803000000000000", // 1_000
    "e62b4352076f3adace3b39b14c06dee48e6d94db346808dbf12ecf49136f5d01",
    "f401000000000000",                                                 // 500
    "e62b4352076f3adace3b39b14c06dee48e6d94db346808dbf12ecf49136f5d01", // reserve
    "0100000000000000",                                                 // parameters: one entry
    "0c00000000000000",
    "636c61696d5f726577617264", // "claim_reward"
    "0500000000000000",         // 5
);
const GENESIS_HASH: &str = "1b254c29b8db02fb536672ec38ed12affcd3b862c455701fef3e53f46c9f4f05";

const TRANSFER_TX: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // author k1
    "0700000000000000",                                                 // nonce 7
    "e86be5cf8b010000", // timestamp 1_700_000_001_000 = 0x018bcfe56be8
    "00000000",         // TxBody::Transfer
    "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394", // to k2
    "fa00000000000000", // amount 250
    "4e020c0347c5c8565274a628ce9315e38e9e2cee3bae10be712ebffb080476b2", // signature
    "1e0c673f8d7486de26c0c4b4034461165aee7ab855f1ed002eef00550abf7f0b",
);
const TRANSFER_TX_ID: &str = "4eb79aab06a065b71c7893799581219d09353a6bffc6c4486405b62459148e0d";

const APP_TX: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // author k1
    "0800000000000000",                                                 // nonce 8
    "e86be5cf8b010000", // timestamp 1_700_000_001_000
    "01000000",         // TxBody::App
    "01000000",         // Op::Claim (the test payload's second variant)
    "0201",             // token 0x0102, u16
    "de900e79423ed1bac43dae61b02607a4eb0bd84f42d32449a742ef8132e83f31", // signature
    "9f1aafc36af30652cd302e3cdb39a8ed745fc92d53cc065e76bd39c5fb1c3708",
);
const APP_TX_ID: &str = "a9dd65962fcead1c56c10167864d430fbf6de621b30199e526ced24a84214407";

const REWARD: &str = concat!(
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // to k1
    "0500000000000000",                                                 // amount 5
    "a9dd65962fcead1c56c10167864d430fbf6de621b30199e526ced24a84214407", // cause: APP_TX_ID
);
/// SHA-256 of `"healthchain/reward"` followed by `REWARD`.
const REWARD_ENTRY: &str = "c893aad571a31a3e1df1001dea50abfc486339bd784054fb27a2c8f2be48ae2c";

/// RFC 6962 root over [TRANSFER_TX_ID, APP_TX_ID, REWARD_ENTRY]:
/// `H(01 || H(01 || H(00 || a) || H(00 || b)) || H(00 || c))`.
const MERKLE_ROOT: &str = "b89140bb9242931feca71166a8cf45c88b301dea0b02e140687aafad3e5b73c4";

const HEADER: &str = concat!(
    "0100000000000000",                                                 // height 1
    "1b254c29b8db02fb536672ec38ed12affcd3b862c455701fef3e53f46c9f4f05", // prev: GENESIS_HASH
    "b89140bb9242931feca71166a8cf45c88b301dea0b02e140687aafad3e5b73c4", // MERKLE_ROOT
    "d06fe5cf8b010000", // timestamp 1_700_000_002_000 = 0x018bcfe56fd0
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // producer k1
    "0500000000000000", // nonce 5, the first that meets 4 bits
);
/// SHA-256 of `HEADER`; four leading zero bits.
const BLOCK_HASH: &str = "0fbd1e348ba9b2b493fa3c9dc19f9373e2de784e19c8559a24eab7764bed3a24";

/// Producer signature over `"healthchain/blk/" || BLOCK_HASH`.
const BLOCK_SIGNATURE: &str = concat!(
    "36c323f507387af0e2e013e538fb8418da51c35c70b261e8fa4d049a142ad59d",
    "eeec0060865f646789ad80e56fe69006e0187d5d48d8b16d1014bfa64153ca08",
);

// ----- helpers ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex literal"))
        .collect()
}

fn sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

fn k1() -> Keypair {
    Keypair::from_seed([1; 32])
}

fn k2() -> Keypair {
    Keypair::from_seed([2; 32])
}

fn golden_genesis() -> Genesis {
    let reserve = AccountId::unspendable("golden-reserve");
    Genesis {
        network: "golden".into(),
        timestamp: Timestamp(1_700_000_000_000),
        pow_bits: 4,
        producers: Some(vec![k1().account()]),
        roster: vec![Member {
            account: k1().account(),
            username: "dr".into(),
            display_name: "Dr".into(),
            role: "doctor".into(),
            encryption: Some(MemberEncryption::bind(
                &k1(),
                EncryptionPublicKey::from_byte_array([9; 32]),
            )),
        }],
        balances: vec![(k1().account(), Amount(1_000)), (reserve, Amount(500))],
        reserve,
        parameters: BTreeMap::from([("claim_reward".to_string(), 5)]),
    }
}

fn network() -> BlockHash {
    golden_genesis().hash()
}

fn transfer_tx() -> Transaction<Op> {
    Transaction::new_signed(
        &network(),
        &k1(),
        7,
        Timestamp(1_700_000_001_000),
        TxBody::Transfer {
            to: k2().account(),
            amount: Amount(250),
        },
    )
}

fn app_tx() -> Transaction<Op> {
    Transaction::new_signed(
        &network(),
        &k1(),
        8,
        Timestamp(1_700_000_001_000),
        TxBody::App(Op::Claim(0x0102)),
    )
}

fn reward() -> Reward {
    Reward {
        to: k1().account(),
        amount: Amount(5),
        cause: app_tx().id(),
    }
}

fn header() -> BlockHeader {
    let mut block = Block {
        header: BlockHeader {
            height: Height(1),
            prev: network(),
            merkle_root: Hash::ZERO,
            timestamp: Timestamp(1_700_000_002_000),
            producer: k1().account(),
            nonce: 5,
        },
        signature: Signature::default(),
        transactions: vec![transfer_tx(), app_tx()],
        rewards: vec![reward()],
    };
    block.header.merkle_root = merkle_root(&block.merkle_entries());
    block.header
}

fn block() -> Block<Op> {
    let header = header();
    Block {
        signature: k1().sign(&common::block_signing_message(&header.hash())),
        header,
        transactions: vec![transfer_tx(), app_tx()],
        rewards: vec![reward()],
    }
}

/// Encodes `value` (alone, and appended to a buffer already holding bytes), compares
/// with `expected`, decodes the golden bytes back and checks they give the value again.
fn check<T>(value: &T, expected: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(hex(&codec::encode(value)), expected);
    let mut appended = vec![0xAB];
    codec::encode_into(value, &mut appended);
    assert_eq!(hex(&appended[1..]), expected);
    assert_eq!(codec::encoded_len(value), expected.len() / 2);
    let decoded: T = codec::decode(&unhex(expected), 1 << 20).expect("golden bytes decode");
    assert_eq!(&decoded, value);
}

// ----- the tests -------------------------------------------------------------------------

#[test]
fn amount_is_eight_bytes_little_endian() {
    check(&Amount(0x0102_0304_0506_0708), "0807060504030201");
    check(&Amount(u64::MAX), "ffffffffffffffff");
}

#[test]
fn timestamp_is_eight_bytes_little_endian() {
    // 1_700_000_000_123 = 0x0000_018b_cfe5_687b
    check(&Timestamp(1_700_000_000_123), "7b68e5cf8b010000");
}

#[test]
fn height_is_eight_bytes_little_endian() {
    check(&Height(258), "0201000000000000");
}

#[test]
fn account_is_its_32_raw_key_bytes() {
    check(&k1().account(), K1);
    check(&k2().account(), K2);
    assert_eq!(
        hex(AccountId::unspendable("golden-reserve").as_bytes()),
        RESERVE
    );
    assert_eq!(
        sha256(&[b"healthchain/unspendable/golden-reserve"]),
        RESERVE,
        "unspendable accounts are domain-separated SHA-256 of their label"
    );
}

#[test]
fn signature_is_64_raw_bytes_and_deterministic() {
    let signature = k1().sign(b"golden");
    check(&signature, SIG_GOLDEN);
    assert_eq!(codec::encode(&signature).len(), 64);
    assert!(verify_signature(&k1().account(), b"golden", &signature));
}

#[test]
fn option_and_enum_tags() {
    check(&None::<u8>, "00");
    check(&Some(7u8), "0107");
    check(&Op::Add(1), "0000000001000000");
    check(&Op::Note("hi".into()), "0200000002000000000000006869");
}

#[test]
fn transfer_transaction() {
    let tx = transfer_tx();
    check(&tx, TRANSFER_TX);
    assert_eq!(tx.id().to_string(), TRANSFER_TX_ID);
    assert_eq!(sha256(&[&unhex(TRANSFER_TX)]), TRANSFER_TX_ID);
    // The signature covers the genesis hash then every field but the signature.
    let unsigned = &unhex(TRANSFER_TX)[..unhex(TRANSFER_TX).len() - 64];
    let message = [unhex(GENESIS_HASH).as_slice(), unsigned].concat();
    assert_eq!(tx.signing_bytes(&network()), message);
    assert!(verify_signature(&tx.author, &message, &tx.signature));
}

#[test]
fn app_transaction() {
    let tx = app_tx();
    check(&tx, APP_TX);
    assert_eq!(tx.id().to_string(), APP_TX_ID);
    assert_eq!(sha256(&[&unhex(APP_TX)]), APP_TX_ID);
    assert!(verify_signature(
        &tx.author,
        &tx.signing_bytes(&network()),
        &tx.signature
    ));
}

#[test]
fn reward_entry() {
    check(&reward(), REWARD);
    assert_eq!(reward().entry_hash().to_string(), REWARD_ENTRY);
    assert_eq!(
        sha256(&[b"healthchain/reward", &unhex(REWARD)]),
        REWARD_ENTRY
    );
}

#[test]
fn merkle_root_is_rfc6962_over_ids_then_rewards() {
    let leaf = |e: &str| unhex(&sha256(&[&[0u8], &unhex(e)]));
    let node = |l: &[u8], r: &[u8]| unhex(&sha256(&[&[1u8], l, r]));
    let left = node(&leaf(TRANSFER_TX_ID), &leaf(APP_TX_ID));
    let root = node(&left, &leaf(REWARD_ENTRY));
    assert_eq!(hex(&root), MERKLE_ROOT);
    assert_eq!(header().merkle_root.to_string(), MERKLE_ROOT);
}

#[test]
fn block_header_is_120_bytes() {
    let header = header();
    check(&header, HEADER);
    assert_eq!(unhex(HEADER).len(), HEADER_BYTES);
    assert_eq!(HEADER_BYTES, 120);
    assert_eq!(header.hash().to_string(), BLOCK_HASH);
    assert_eq!(sha256(&[&unhex(HEADER)]), BLOCK_HASH);
    assert!(BlockHeader::meets_target(&header.hash(), 4));
}

#[test]
fn small_block() {
    let expected = [
        HEADER,
        BLOCK_SIGNATURE,
        "0200000000000000", // two transactions
        TRANSFER_TX,
        APP_TX,
        "0100000000000000", // one reward
        REWARD,
    ]
    .concat();
    let block = block();
    check(&block, &expected);
    assert_eq!(block.hash().to_string(), BLOCK_HASH);
    let mut message = b"healthchain/blk/".to_vec();
    message.extend(unhex(BLOCK_HASH));
    assert!(verify_signature(
        &k1().account(),
        &message,
        &block.signature
    ));
    // Transfer: 32 + 8 + 8 + 4 + 32 + 8 + 64; claim: 32 + 8 + 8 + 4 + 4 + 2 + 64.
    assert_eq!(block.encode().len(), 120 + 64 + 8 + 156 + 122 + 8 + 72);
}

#[test]
fn genesis_and_its_hash() {
    let genesis = golden_genesis();
    check(&genesis, GENESIS);
    assert_eq!(genesis.hash().to_string(), GENESIS_HASH);
    assert_eq!(sha256(&[&unhex(GENESIS)]), GENESIS_HASH);
    assert_eq!(Genesis::decode(&unhex(GENESIS)), Ok(genesis));
}

#[test]
fn hash_types_print_as_lowercase_hex() {
    let id = TxId::from_hex(TRANSFER_TX_ID).expect("64 hex digits");
    assert_eq!(id, transfer_tx().id());
    assert_eq!(format!("{id:#}"), &TRANSFER_TX_ID[..12]);
    let upper = BlockHash::from_hex(&BLOCK_HASH.to_uppercase()).expect("upper case parses");
    assert_eq!(upper.to_string(), BLOCK_HASH);
}
