//! A sync peer that hides one invalid block among valid ones: it claims more work and
//! serves a chain whose eleventh block carries a forged transaction, with well-formed
//! blocks piled on top. The node takes the valid prefix, refuses the invalid block and
//! everything above it, bans the peer, and fetches the real chain from an honest peer.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use common::*;
use ledger_core::merkle::merkle_root;
use ledger_core::{Block, BlockHash, BlockHeader, Height, Keypair, Timestamp, mine_header, work};
use p2p::protocol::{Hello, Message, TipInfo, decode_message};
use p2p::{NodeEvent, limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Blocks the honest chain and the shared prefix have.
const HONEST: usize = 30;
const SHARED: usize = 10;
/// Blocks the attacker piles on its invalid one, so that its chain claims more work.
const ABOVE: usize = 25;

fn frame(message: Message<String>) -> Vec<u8> {
    let payload = message.encode();
    let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    bytes
}

async fn read_message(stream: &mut TcpStream) -> Message<String> {
    let mut len = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    timeout(WAIT, stream.read_exact(&mut payload))
        .await
        .unwrap()
        .unwrap();
    decode_message(&payload, limits::MAX_FRAME_BYTES).unwrap()
}

/// Mines and signs `block` as `keys` at the test network's difficulty.
fn seal(mut block: Block<String>, keys: &Keypair) -> Block<String> {
    block.header.merkle_root = merkle_root(&block.merkle_entries());
    let hash = mine_header(&mut block.header, genesis().pow_bits, u64::MAX).unwrap();
    let mut message = b"healthchain/blk/".to_vec();
    message.extend_from_slice(hash.hash().as_bytes());
    block.signature = keys.sign(&message);
    block
}

fn child_of(
    parent: &Block<String>,
    transactions: Vec<ledger_core::Transaction<String>>,
) -> Block<String> {
    let header = BlockHeader {
        height: Height(parent.header.height.0 + 1),
        prev: parent.hash(),
        merkle_root: Default::default(),
        timestamp: Timestamp(parent.header.timestamp.0 + 1),
        producer: dave().account(),
        nonce: 0,
    };
    seal(
        Block {
            header,
            signature: Default::default(),
            transactions,
            rewards: vec![],
        },
        &dave(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_peer_hiding_an_invalid_block_is_banned_and_the_real_chain_fetched() {
    // The honest chain, and the attacker's: the same first blocks, then a block with a
    // forged transaction, then well-formed blocks on top of it.
    let mut honest_ledger = ledger();
    grow(&mut honest_ledger, HONEST);
    let honest_tip = honest_ledger.tip().hash;
    let honest_blocks: Vec<Block<String>> = honest_ledger.main_chain()[1..]
        .iter()
        .map(|h| Block::clone(&honest_ledger.block(h).unwrap().unwrap()))
        .collect();
    let mut forged = note(&alice(), 1, "not really alice");
    forged.signature.0[3] ^= 1;
    let mut evil: Vec<Block<String>> = honest_blocks[..SHARED].to_vec();
    evil.push(child_of(&evil[SHARED - 1], vec![forged]));
    let bad_hash = evil[SHARED].hash();
    for _ in 0..ABOVE {
        let next = child_of(evil.last().unwrap(), vec![]);
        evil.push(next);
    }
    let evil_tip = evil.last().unwrap().hash();

    let honest = start_with(config("honest"), honest_ledger).await;
    let victim = start("victim", vec![]).await;
    let mut events = victim.handle.subscribe();

    // The attacker connects, announces more work, and answers the sync request.
    let mut stream = TcpStream::connect(victim.addr).await.unwrap();
    assert!(matches!(read_message(&mut stream).await, Message::Hello(_)));
    let ours = Hello {
        protocol_version: limits::PROTOCOL_VERSION,
        genesis: genesis_hash(),
        node_name: "attacker".into(),
        listen_addr: None,
        tip: TipInfo {
            hash: evil_tip,
            height: Height(evil.len() as u64),
            work: work(genesis().pow_bits) * evil.len() as u128,
            final_height: ledger_core::Height(0),
        },
        challenge: [3; 32],
    };
    stream
        .write_all(&frame(Message::Hello(ours)))
        .await
        .unwrap();
    // The key proof of a peer holding no roster key: it proves nothing, and the
    // attacker needs none to serve blocks.
    let proof = p2p::protocol::KeyProof::sign(None, &genesis_hash(), &[0; 32], &[3; 32], true);
    stream
        .write_all(&frame(Message::KeyProof(proof)))
        .await
        .unwrap();
    loop {
        match read_message(&mut stream).await {
            Message::GetBlocks { .. } => break,
            Message::Ping(n) => stream.write_all(&frame(Message::Pong(n))).await.unwrap(),
            _ => {}
        }
    }
    stream
        .write_all(&frame(Message::Blocks(evil.clone())))
        .await
        .unwrap();

    // Refused and banned for the invalid block.
    wait_event(&mut events, "the attacker's ban", |e| {
        matches!(e, NodeEvent::PeerBanned { .. })
    })
    .await;
    // The valid prefix was taken; nothing from the invalid block up was.
    let shared_tip = evil[SHARED - 1].hash();
    wait_tip(&victim.handle, shared_tip).await;
    let above: Vec<BlockHash> = evil[SHARED..].iter().map(Block::hash).collect();
    let adopted = victim
        .handle
        .query(move |l| above.iter().any(|h| l.height_of(h).is_some()))
        .await
        .unwrap();
    assert!(
        !adopted,
        "no block from the invalid one up may enter the tree"
    );

    // An honest peer then supplies the real chain.
    victim.handle.connect(honest.addr).await.unwrap();
    wait_tip(&victim.handle, honest_tip).await;
    let tip = victim.handle.tip().await.unwrap();
    assert_eq!(tip.height, Height(HONEST as u64));
    assert!(
        victim
            .handle
            .query(move |l| l.height_of(&bad_hash).is_none())
            .await
            .unwrap()
    );
    victim.stop().await;
    honest.stop().await;
}
