//! The entry point of the `frame_message` fuzz target (`fuzz/`), run on stable with a
//! fixed number of cases: bytes from a peer cut into frames by the real codec with the
//! real frame limit, each frame decoded as a message of the health network. Inputs are
//! arbitrary bytes and mutations of a valid stream holding every kind of message.
//! Whatever the input, nothing panics, no frame exceeds the limit, every decoded
//! message re-encodes to exactly its frame, and how the bytes are split into reads
//! changes nothing.

#![allow(clippy::unwrap_used, unreachable_pub)]

use std::sync::LazyLock;

use bytes::{BufMut, BytesMut};
use health_workflow::demo::{self, DemoGenesisBuilder};
use health_workflow::{Actor, Event, HealthPolicy, PatientId};
use ledger_core::{BlockHash, Height, Ledger, Timestamp};
use p2p::limits::{MAX_FRAME_BYTES, PROTOCOL_VERSION};
use p2p::protocol::{Hello, Message, MessageError, TipInfo, decode_message};
use proptest::collection::vec;
use proptest::prelude::*;
use rand_core::SeedableRng;
use tokio_util::codec::Decoder;

/// Cases per property: each is a handful of frames, so this stays well under a second.
const CASES: u32 = 512;

/// One valid message of every kind, with a real signed transaction and block.
fn messages() -> Vec<Message<Event>> {
    let genesis = DemoGenesisBuilder::new().pow_bits(0).build();
    let mut ledger = Ledger::new(genesis, HealthPolicy).unwrap();
    let now = Timestamp(demo::DEMO_GENESIS_TIME.millis() + 60_000);
    let doctor = Actor::new(&ledger, "dr_alice", demo::demo_keypair("dr_alice")).unwrap();
    let mut rng = chacha20::ChaCha20Rng::from_seed([1; 32]);
    let written = doctor
        .register(
            &ledger,
            PatientId::from_random_bytes([1; 16]),
            "Jane Doe",
            now,
            &mut rng,
        )
        .unwrap();
    let (tx, bodies) = (written.tx, written.bodies);
    let body_hash = ledger_core::Hash::of(&bodies[0].ciphertext);
    let proof = p2p::protocol::KeyProof::sign(
        Some(&demo::demo_keypair("dr_alice")),
        &ledger.genesis_hash(),
        &[1; 32],
        &[2; 32],
        true,
    );
    ledger.submit_transaction(tx.clone(), now).unwrap();
    let block = ledger.mine_block(&demo::demo_keypair("dr_alice"), now);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        genesis: ledger.genesis_hash(),
        node_name: "doctor".into(),
        listen_addr: Some("127.0.0.1:5001".parse().unwrap()),
        tip: TipInfo {
            hash: block.hash(),
            height: Height(1),
            work: 2,
            final_height: ledger_core::Height(0),
        },
        challenge: [4; 32],
    };
    vec![
        Message::Hello(hello),
        Message::Tx(tx),
        Message::Block(block.clone()),
        Message::GetBlocks {
            locator: vec![block.hash(), BlockHash::default()],
            limit: 16,
        },
        Message::Blocks(vec![block]),
        Message::GetPeers,
        Message::Peers(vec![
            "10.0.0.1:5002".parse().unwrap(),
            "[::1]:5003".parse().unwrap(),
        ]),
        Message::Ping(7),
        Message::Pong(7),
        Message::KeyProof(proof),
        Message::Bodies(bodies),
        Message::GetBodies(vec![body_hash]),
        Message::Denied(vec![body_hash]),
    ]
}

/// Every message of [`messages`] framed, back to back, as a peer would send them.
static STREAM: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut stream = BytesMut::new();
    for message in messages() {
        let payload = message.encode();
        stream.put_u32(u32::try_from(payload.len()).unwrap());
        stream.put_slice(&payload);
    }
    stream.to_vec()
});

/// What the reader makes of a stream: each complete frame's decoding, in order, and
/// whether the stream ended in a framing error (a length above the limit) or with an
/// unfinished frame.
#[derive(Debug, PartialEq)]
struct Read {
    frames: Vec<Result<Message<Event>, MessageError>>,
    framing_error: bool,
    leftover: bool,
}

/// The `frame_message` fuzz target, with the bytes arriving in reads that end at
/// `cuts` (offsets into `bytes`).
fn read(bytes: &[u8], cuts: &[usize]) -> Result<Read, TestCaseError> {
    let mut codec = p2p::session::codec(MAX_FRAME_BYTES);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    let mut start = 0;
    for end in ends {
        buffer.extend_from_slice(&bytes[start..end]);
        start = end;
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    prop_assert!(frame.len() <= MAX_FRAME_BYTES);
                    let message = decode_message::<Event>(&frame, MAX_FRAME_BYTES);
                    if let Ok(message) = &message {
                        prop_assert_eq!(&message.encode()[..], &frame[..], "non-canonical");
                    }
                    frames.push(message);
                }
                Ok(None) => break,
                Err(_) => {
                    return Ok(Read {
                        frames,
                        framing_error: true,
                        leftover: false,
                    });
                }
            }
        }
    }
    Ok(Read {
        frames,
        framing_error: false,
        leftover: !buffer.is_empty(),
    })
}

/// Overwrites (mostly: that keeps the layout, so more mutants decode), inserts or
/// removes bytes of `bytes`, or cuts it short, at positions chosen by `edits`.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, value, kind) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let at = at % bytes.len();
        match kind % 8 {
            0..5 => bytes[at] = value,
            5 => bytes.insert(at, value),
            6 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Reads `bytes` at once and in pieces; both must agree.
fn check(bytes: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let whole = read(bytes, &[])?;
    let pieces = read(bytes, cuts)?;
    prop_assert_eq!(whole, pieces);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..512), cuts in vec(any::<usize>(), 0..8)) {
        check(&bytes, &cuts)?;
    }

    #[test]
    fn arbitrary_frames(
        payloads in vec(vec(any::<u8>(), 0..256), 0..6),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for payload in &payloads {
            bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(payload);
        }
        let read = read(&bytes, &cuts)?;
        prop_assert_eq!(read.frames.len(), payloads.len());
        check(&bytes, &cuts)?;
    }

    #[test]
    fn mutated_stream(
        edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        check(&mutate(STREAM.clone(), &edits), &cuts)?;
    }
}

#[test]
fn the_valid_stream_reads_back_every_message() {
    let read = read(&STREAM, &[]).unwrap();
    let expected: Vec<_> = messages().into_iter().map(Ok).collect();
    assert_eq!(
        read,
        Read {
            frames: expected,
            framing_error: false,
            leftover: false,
        }
    );
}

#[test]
fn a_length_above_the_limit_is_a_framing_error() {
    let length = u32::try_from(MAX_FRAME_BYTES + 1).unwrap();
    let read = read(&length.to_be_bytes(), &[]).unwrap();
    assert!(read.framing_error);
}
