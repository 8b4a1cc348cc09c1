//! Hostile peers on raw sockets: each is refused as specified, while an honest peer's
//! transactions and blocks keep flowing to the node under attack.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use ledger_core::{BlockHash, Hash, Height, Signature, TxError};
use p2p::protocol::{Hello, KeyProof, Message, TipInfo, decode_message};
use p2p::{NodeEvent, Offence, SessionError, limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::timeout;

struct Fixture {
    victim: TestNode,
    honest: TestNode,
    events: broadcast::Receiver<Event>,
}

async fn fixture(max_inbound: usize) -> Fixture {
    let mut cfg = config("victim");
    cfg.max_inbound = max_inbound;
    fixture_on(cfg, ledger()).await
}

/// A victim with `cfg` and `chain`, and an honest peer that has caught up with it.
async fn fixture_on(cfg: p2p::NodeConfig, chain: ledger_core::Ledger<Notes, Store>) -> Fixture {
    let tip = chain.tip().hash;
    let victim = start_with(cfg, chain).await;
    let honest = start("honest", vec![victim.addr]).await;
    wait_peers(&victim.handle, 1).await;
    wait_peers(&honest.handle, 1).await;
    wait_tip(&honest.handle, tip).await;
    let events = victim.handle.subscribe();
    Fixture {
        victim,
        honest,
        events,
    }
}

impl Fixture {
    /// The honest peer's transaction and block still reach the victim.
    async fn honest_still_flows(&self) {
        let account = bob().account();
        let nonce = self
            .honest
            .handle
            .query(move |l| l.next_nonce(&account))
            .await
            .expect("running");
        let id = self
            .honest
            .handle
            .submit_transaction(note(&bob(), nonce, "still here"))
            .await
            .expect("running")
            .expect("valid note");
        wait_pending(&self.victim.handle, id).await;
        let mined = mine(&self.honest.handle, &bob()).await;
        wait_tip(&self.victim.handle, mined.hash).await;
        assert!(
            !self
                .victim
                .handle
                .peers()
                .await
                .expect("running")
                .is_empty()
        );
    }

    async fn stop(self) {
        self.honest.stop().await;
        self.victim.stop().await;
    }

    async fn banned(&mut self, addr: SocketAddr) -> Offence<TooLong> {
        match wait_event(
            &mut self.events,
            "a ban",
            |e| matches!(e, NodeEvent::PeerBanned { addr: a, .. } if *a == addr),
        )
        .await
        {
            NodeEvent::PeerBanned { offence, .. } => offence,
            _ => unreachable!("matched above"),
        }
    }

    async fn refused(&mut self, addr: SocketAddr) -> SessionError {
        match wait_event(
            &mut self.events,
            "a refusal",
            |e| matches!(e, NodeEvent::PeerRefused { addr: a, .. } if *a == addr),
        )
        .await
        {
            NodeEvent::PeerRefused { reason, .. } => reason,
            _ => unreachable!("matched above"),
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(payload.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn hello(genesis: BlockHash) -> Hello {
    Hello {
        protocol_version: limits::PROTOCOL_VERSION,
        genesis,
        node_name: "raw".into(),
        listen_addr: None,
        tip: TipInfo {
            hash: genesis,
            height: Height(0),
            work: 0,
            final_height: ledger_core::Height(0),
        },
        challenge: [7; 32],
    }
}

/// The key proof of a peer that holds no roster key.
fn no_key() -> KeyProof {
    KeyProof::sign(None, &genesis_hash(), &[0; 32], &[7; 32], true)
}

fn encode(message: Message<String>) -> Vec<u8> {
    frame(&message.encode())
}

/// Our side of the handshake in frames: `hello`, then the key proof of a peer holding
/// no roster key.
fn handshake_frames(hello: Hello) -> Vec<u8> {
    let mut bytes = encode(Message::Hello(hello));
    bytes.extend(encode(Message::KeyProof(no_key())));
    bytes
}

/// Connects and reads the node's `Hello`, which it sends first.
async fn connect(addr: SocketAddr) -> (TcpStream, Hello) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.expect("hello length");
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).await.expect("hello body");
    match decode_message::<String>(&payload, limits::MAX_FRAME_BYTES).expect("decodable") {
        Message::Hello(hello) => (stream, hello),
        other => panic!("expected hello, got {}", other.kind()),
    }
}

/// Waits until the node closes the connection (end of stream or reset).
async fn closed(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let result = timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(result.is_ok(), "the node kept the connection open");
}

/// Sends `bytes` on a fresh connection; returns the connection's local address.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> SocketAddr {
    let (mut stream, _) = connect(addr).await;
    let local = stream.local_addr().expect("local address");
    // The node may close before reading it all; that is fine.
    let _ = stream.write_all(bytes).await;
    closed(stream).await;
    local
}

fn is_session_offence(offence: &Offence<TooLong>, check: impl Fn(&SessionError) -> bool) -> bool {
    matches!(offence, Offence::Session(e) if check(e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefix_of_4_gib_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let local = send_raw(fx.victim.addr, &u32::MAX.to_be_bytes()).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::FrameTooLarge { .. }
    )));
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_one_byte_over_the_limit_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let over = u32::try_from(limits::MAX_FRAME_BYTES + 1).expect("fits");
    let mut bytes = over.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    let mut stream = handshaken(fx.victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    let _ = stream.write_all(&bytes).await;
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::FrameTooLarge { max } if *max == limits::MAX_FRAME_BYTES
    )));
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_above_the_hello_limit_before_the_handshake_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let over = u32::try_from(limits::MAX_HELLO_FRAME_BYTES + 1).expect("fits");
    let mut bytes = over.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 64]);
    let local = send_raw(fx.victim.addr, &bytes).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::FrameTooLarge { max } if *max == limits::MAX_HELLO_FRAME_BYTES
    )));
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_a_valid_frame_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let local = send_raw(fx.victim.addr, &frame(&[0xab; 37])).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::Message(_)
    )));
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_before_hello_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let mut other = ledger();
    let block = other.mine_block(&carol(), now());
    let local = send_raw(fx.victim.addr, &encode(Message::Block(block))).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::Protocol(_)
    )));
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_with_another_genesis_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let elsewhere = BlockHash::from_hash(Hash::of(b"another network"));
    let local = send_raw(fx.victim.addr, &encode(Message::Hello(hello(elsewhere)))).await;
    let reason = fx.refused(local).await;
    assert!(
        matches!(reason, SessionError::GenesisMismatch { theirs, .. } if theirs == elsewhere),
        "{reason}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_never_finishes_the_handshake_is_dropped() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let (stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    closed(stream).await;
    let reason = fx.refused(local).await;
    assert!(
        matches!(reason, SessionError::HandshakeTimeout(_)),
        "{reason}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_connections_do_not_starve_honest_peers() {
    let mut fx = fixture(16).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(fx.victim.addr).await.expect("connect"));
    }
    fx.honest_still_flows().await;
    // Beyond the cap they are closed at once, the others at the handshake timeout.
    for stream in idle {
        closed(stream).await;
    }
    // The slots are free again: a new honest node gets in.
    let late = start("late", vec![fx.victim.addr]).await;
    wait_peers(&late.handle, 1).await;
    wait_event(
        &mut fx.events,
        "the late node",
        |e| matches!(e, NodeEvent::PeerUp(info) if info.listen_addr == Some(late.addr)),
    )
    .await;
    late.stop().await;
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signature_transaction_gets_the_peer_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let (mut stream, theirs) = connect(fx.victim.addr).await;
    assert_eq!(theirs.genesis, genesis_hash());
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    let mut forged = transfer(&alice(), 1, &carol(), 900);
    forged.signature = Signature([7; 64]);
    let forged_id = forged.id();
    stream
        .write_all(&encode(Message::Tx(forged)))
        .await
        .expect("send tx");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(
        matches!(offence, Offence::InvalidTx(TxError::BadSignature { tx }) if tx == forged_id),
        "{offence}"
    );
    let pending = fx
        .victim
        .handle
        .query(move |l| l.is_pending(&forged_id))
        .await;
    assert!(
        !pending.expect("running"),
        "a forged transaction is not pending"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

/// A relay batch is verified as one: a forged signature inside it gets the peer
/// banned, and the validly signed transactions around it are admitted all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_batch_with_one_forged_signature_bans_the_peer_and_admits_the_rest() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    let before = note(&dave(), 1, "before");
    let mut forged = note(&dave(), 2, "forged");
    forged.signature = Signature([7; 64]);
    let after = note(&carol(), 1, "after");
    let ids = (before.id(), forged.id(), after.id());
    stream
        .write_all(&encode(Message::Txs(vec![before, forged, after])))
        .await
        .expect("send txs");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(
        matches!(offence, Offence::InvalidTx(TxError::BadSignature { tx }) if tx == ids.1),
        "{offence}"
    );
    let pending = fx
        .victim
        .handle
        .query(move |l| {
            (
                l.is_pending(&ids.0),
                l.is_pending(&ids.1),
                l.is_pending(&ids.2),
            )
        })
        .await
        .expect("running");
    assert_eq!(pending, (true, false, true));
    fx.honest_still_flows().await;
    fx.stop().await;
}

/// A relay of more transactions than a message may hold is a protocol violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_relay_batch_gets_the_peer_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    let tx = note(&alice(), 1, "again");
    stream
        .write_all(&encode(Message::Txs(vec![
            tx;
            limits::MAX_TXS_PER_MESSAGE + 1
        ])))
        .await
        .expect("send txs");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(
        is_session_offence(&offence, |e| matches!(e, SessionError::Message(_))),
        "{offence}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_hello_and_invalid_block_get_the_peer_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;

    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    stream
        .write_all(&encode(Message::Hello(hello(genesis_hash()))))
        .await
        .expect("send hello again");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::Protocol(_)
    )));

    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    let mut other = ledger();
    let mut block = other.mine_block(&carol(), now());
    block.signature = Signature([9; 64]);
    stream
        .write_all(&encode(Message::Block(block)))
        .await
        .expect("send block");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(matches!(offence, Offence::InvalidBlock(_)), "{offence}");

    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_does_not_read_is_dropped() {
    let mut chain = ledger();
    grow(&mut chain, 300);
    let mut cfg = config("victim");
    cfg.session.write_timeout = std::time::Duration::from_millis(300);
    let tip = chain.tip().hash;
    let victim = start_with(cfg, chain).await;
    let honest = start("honest", vec![victim.addr]).await;
    wait_peers(&victim.handle, 1).await;
    // The honest node first catches up, so that its blocks extend the victim's chain.
    wait_tip(&honest.handle, tip).await;
    let mut fx = Fixture {
        events: victim.handle.subscribe(),
        victim,
        honest,
    };

    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&handshake_frames(hello(genesis_hash())))
        .await
        .expect("send hello");
    // Ask for the whole chain again and again, and never read the answers.
    let request = encode(Message::GetBlocks {
        locator: vec![genesis_hash()],
        limit: 128,
    });
    let flood = tokio::spawn(async move {
        for _ in 0..5_000 {
            if stream.write_all(&request).await.is_err() {
                break;
            }
        }
        stream
    });
    let event = wait_event(
        &mut fx.events,
        "the slow peer dropped",
        |e| matches!(e, NodeEvent::PeerDown { info, .. } if info.addr == local),
    )
    .await;
    match event {
        NodeEvent::PeerDown { reason, .. } => assert!(
            matches!(
                reason,
                p2p::DisconnectReason::SlowPeer(_)
                    | p2p::DisconnectReason::Session(SessionError::WriteTimeout(_))
            ),
            "{reason}"
        ),
        _ => unreachable!("matched above"),
    }
    drop(flood.await);
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_configured_peer_is_redialled_after_the_ban() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bad = listener.local_addr().expect("address");
    let ban = std::time::Duration::from_millis(600);
    let mut cfg = config("dialler");
    cfg.peers = vec![bad];
    cfg.ban_duration = ban;
    let node = start_with(cfg, ledger()).await;
    let mut events = node.handle.subscribe();

    // First connection: answer with garbage.
    let (mut first, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dialled")
        .expect("accept");
    first
        .write_all(&frame(&[0xee; 16]))
        .await
        .expect("send garbage");
    let banned_at = tokio::time::Instant::now();
    wait_event(
        &mut events,
        "the ban",
        |e| matches!(e, NodeEvent::PeerBanned { addr, .. } if *addr == bad),
    )
    .await;
    // The dialer waits the ban out, then tries again.
    let (_second, _) = timeout(WAIT, listener.accept())
        .await
        .expect("redialled")
        .expect("accept");
    assert!(banned_at.elapsed() >= ban - std::time::Duration::from_millis(50));
    node.stop().await;
}

// ----- framing, decoding and order ---------------------------------------------------

/// Connects, completes the handshake (announcing `listen`) and returns the stream.
async fn handshaken(addr: SocketAddr, listen: Option<SocketAddr>) -> TcpStream {
    let (mut stream, _) = connect(addr).await;
    let mut ours = hello(genesis_hash());
    ours.listen_addr = listen;
    stream
        .write_all(&handshake_frames(ours))
        .await
        .expect("send hello");
    match read_message(&mut stream).await {
        Message::KeyProof(_) => {}
        other => panic!("expected the node's key proof, got {}", other.kind()),
    }
    stream
}

/// Reads one frame and decodes it.
async fn read_message(stream: &mut TcpStream) -> Message<String> {
    let mut len = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut len))
        .await
        .expect("a frame in time")
        .expect("frame length");
    let len = u32::from_be_bytes(len) as usize;
    assert!(
        len <= limits::MAX_FRAME_BYTES,
        "the node sent an oversize frame"
    );
    let mut payload = vec![0u8; len];
    timeout(WAIT, stream.read_exact(&mut payload))
        .await
        .expect("a frame in time")
        .expect("frame body");
    decode_message::<String>(&payload, limits::MAX_FRAME_BYTES)
        .expect("the node sends valid messages")
}

/// Reads frames until one matches `pick`, answering the node's pings meanwhile.
async fn read_until<R>(
    stream: &mut TcpStream,
    mut pick: impl FnMut(Message<String>) -> Option<R>,
) -> R {
    for _ in 0..10_000 {
        let message = read_message(stream).await;
        if let Message::Ping(n) = message {
            stream
                .write_all(&encode(Message::Pong(n)))
                .await
                .expect("send pong");
            continue;
        }
        if let Some(found) = pick(message) {
            return found;
        }
    }
    panic!("the expected message never came");
}

/// Sends `Ping(n)` and waits for its `Pong`.
async fn ping(stream: &mut TcpStream, n: u64) {
    stream
        .write_all(&encode(Message::Ping(n)))
        .await
        .expect("send ping");
    read_until(stream, |m| {
        matches!(m, Message::Pong(p) if p == n).then_some(())
    })
    .await;
}

/// A `Blocks` message whose frame payload is exactly `size` bytes: one block carrying
/// a note padded to fit (its signature no longer matches; an unsolicited reply is not
/// validated).
fn blocks_message_of(size: usize) -> Vec<u8> {
    let mut scratch = ledger();
    let mut block = scratch.mine_block(&carol(), now());
    block.transactions.push(note(&alice(), 1, ""));
    let base = Message::Blocks(vec![block.clone()]).encode().len();
    let ledger_core::TxBody::App(text) = &mut block.transactions[0].body else {
        unreachable!("a note")
    };
    *text = "x".repeat(size - base);
    let bytes = Message::Blocks(vec![block]).encode();
    assert_eq!(bytes.len(), size);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_of_exactly_the_limit_is_accepted() {
    // The limit is inclusive: a payload of `MAX_FRAME_BYTES` is read and decoded (one
    // byte more is refused, see above). An unsolicited `Blocks` reply is ignored, so the
    // peer stays connected and its ping is answered.
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let mut stream = handshaken(fx.victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&frame(&blocks_message_of(limits::MAX_FRAME_BYTES)))
        .await
        .expect("send the largest frame");
    ping(&mut stream, 7).await;
    let peers = fx.victim.handle.peers().await.expect("running");
    assert!(peers.iter().any(|p| p.addr == local), "still connected");
    while let Ok(event) = fx.events.try_recv() {
        assert!(!matches!(event, NodeEvent::PeerBanned { .. }), "{event:?}");
    }
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_trickled_one_byte_at_a_time_is_accepted() {
    let fx = fixture(limits::MAX_INBOUND).await;
    let (mut stream, _) = connect(fx.victim.addr).await;
    stream.set_nodelay(true).expect("nodelay");
    let tx = note(&dave(), 1, "slow but steady");
    let id = tx.id();
    let mut bytes = handshake_frames(hello(genesis_hash()));
    bytes.extend(encode(Message::Tx(tx)));
    for byte in bytes {
        stream.write_all(&[byte]).await.expect("send a byte");
        stream.flush().await.expect("flush");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    wait_pending(&fx.victim.handle, id).await;
    // Accepted and relayed like any other transaction.
    wait_pending(&fx.honest.handle, id).await;
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_trickling_too_slowly_is_dropped_at_the_read_deadline() {
    // The read deadline is the idle timeout: a frame must be complete within it of the
    // previous one. Shortened here so that the test is quick.
    let mut cfg = config("victim");
    cfg.session.idle_timeout = std::time::Duration::from_millis(1_500);
    let mut fx = fixture_on(cfg, ledger()).await;
    let mut stream = handshaken(fx.victim.addr, None).await;
    stream.set_nodelay(true).expect("nodelay");
    let local = stream.local_addr().expect("local address");
    let frame = encode(Message::Tx(note(&dave(), 1, "far too slow")));
    let frame_len = frame.len();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&written);
    let trickle = tokio::spawn(async move {
        // 250 ms a byte: the frame would take a minute.
        for byte in frame {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    let event = wait_event(
        &mut fx.events,
        "the trickler dropped",
        |e| matches!(e, NodeEvent::PeerDown { info, .. } if info.addr == local),
    )
    .await;
    match event {
        NodeEvent::PeerDown { reason, .. } => assert!(
            matches!(
                reason,
                p2p::DisconnectReason::Session(SessionError::Idle(_))
            ),
            "{reason}"
        ),
        _ => unreachable!("matched above"),
    }
    // Dropped long before the frame was complete: after fewer bytes than 6 s of
    // trickling would send (24), whatever the machine's speed.
    let sent = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 24 && sent < frame_len,
        "{sent} of {frame_len} bytes trickled"
    );
    trickle.abort();
    fx.honest_still_flows().await;
    fx.stop().await;
}

/// Bytes of an enum tag, as the canonical encoding writes them.
fn tag(variant: u32) -> Vec<u8> {
    variant.to_le_bytes().to_vec()
}

/// Sends `payload` in a frame on an established session and waits for the ban.
async fn established_then(fx: &mut Fixture, payload: &[u8]) -> Offence<TooLong> {
    let mut stream = handshaken(fx.victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    let _ = stream.write_all(&frame(payload)).await;
    closed(stream).await;
    fx.banned(local).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_length_claiming_2_pow_60_elements_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    // `Blocks` (variant 4) claiming 2^60 blocks, and `GetBlocks` (variant 3) a locator
    // of 2^60 hashes, each followed by a few bytes only.
    for variant in [4, 3] {
        let mut payload = tag(variant);
        payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
        payload.extend_from_slice(&[0u8; 64]);
        let offence = established_then(&mut fx, &payload).await;
        assert!(
            is_session_offence(&offence, |e| matches!(e, SessionError::Message(_))),
            "{offence}"
        );
    }
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_bytes_after_a_valid_message_are_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let mut payload = Message::<String>::Ping(1).encode();
    payload.push(0);
    let offence = established_then(&mut fx, &payload).await;
    assert!(
        is_session_offence(&offence, |e| matches!(
            e,
            SessionError::Message(p2p::protocol::MessageError::Decode(
                ledger_core::codec::DecodeError::TrailingBytes
            ))
        )),
        "{offence}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_tag_is_refused() {
    // Documented in `protocol`: an unknown tag is undecodable data; versions are
    // negotiated by the handshake instead.
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let mut payload = tag(200);
    payload.extend_from_slice(&[0u8; 8]);
    let offence = established_then(&mut fx, &payload).await;
    assert!(
        is_session_offence(&offence, |e| matches!(e, SessionError::Message(_))),
        "{offence}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_before_hello_is_refused() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let local = send_raw(
        fx.victim.addr,
        &encode(Message::Tx(note(&dave(), 1, "too early"))),
    )
    .await;
    let offence = fx.banned(local).await;
    assert!(
        is_session_offence(&offence, |e| matches!(
            e,
            SessionError::Protocol(p2p::protocol::ProtocolError::ExpectedHello { got: "tx" })
        )),
        "{offence}"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

// ----- floods -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_max_size_junk_frames_do_not_delay_pings() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let victim = fx.victim.addr;
    // An established peer pings all along and times the answers.
    let mut observer = handshaken(victim, None).await;
    let done = tokio_util::sync::CancellationToken::new();
    let stop = done.clone();
    let watcher = tokio::spawn(async move {
        let mut worst = std::time::Duration::ZERO;
        let mut n = 0u64;
        while !stop.is_cancelled() {
            n += 1;
            let sent = tokio::time::Instant::now();
            timeout(std::time::Duration::from_secs(2), ping(&mut observer, n))
                .await
                .expect("a ping answered within 2 s during the flood");
            worst = worst.max(sent.elapsed());
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
        (worst, n)
    });
    // 80 junk frames of the largest size, from four attackers at a time, each on an
    // established session (each is banned for it, by its socket address).
    let junk = Bytes::from(frame(&vec![0xab; limits::MAX_FRAME_BYTES]));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let junk = junk.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let mut stream = handshaken(victim, None).await;
                    let _ = stream.write_all(&junk).await;
                    closed(stream).await;
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.await.expect("attacker finished");
    }
    done.cancel();
    let (worst, pings) = watcher.await.expect("observer finished");
    eprintln!("{pings} pings during the flood, slowest answered in {worst:?}");
    // Every junk frame was read to its end, found undecodable and its sender banned.
    let mut bans = 0;
    while bans < 80 {
        wait_event(&mut fx.events, "the 80 bans", |e| {
            matches!(
                e,
                NodeEvent::PeerBanned {
                    offence: Offence::Session(SessionError::Message(_)),
                    ..
                }
            )
        })
        .await;
        bans += 1;
    }
    assert!(pings >= 2, "the observer kept pinging");
    assert!(worst <= std::time::Duration::from_secs(2), "{worst:?}");
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_blocks_replies_are_bounded_whatever_is_asked() {
    let mut chain = ledger();
    grow(&mut chain, 300);
    let main: Vec<BlockHash> = chain.main_chain().to_vec();
    let tip = *main.last().expect("non-empty");
    let fx = fixture_on(config("victim"), chain).await;
    let mut stream = handshaken(fx.victim.addr, None).await;
    let junk = BlockHash::from_hash(Hash::of(b"nowhere"));
    let max = limits::MAX_BLOCKS_PER_REPLY;
    let cases: Vec<(Vec<BlockHash>, u32, Vec<BlockHash>)> = vec![
        // A million blocks after genesis: one full batch.
        (vec![genesis_hash()], 1_000_000, main[1..=max].to_vec()),
        (vec![genesis_hash()], u32::MAX, main[1..=max].to_vec()),
        // A reversed locator (oldest first): the first known entry, genesis, counts.
        (
            vec![genesis_hash(), main[200], tip],
            1_000_000,
            main[1..=max].to_vec(),
        ),
        // Nothing known: from genesis.
        (
            vec![junk; limits::MAX_LOCATOR_HASHES],
            1_000_000,
            main[1..=max].to_vec(),
        ),
        // Past the tip, or nothing asked: nothing.
        (vec![tip], 1_000_000, vec![]),
        (vec![main[250]], 0, vec![]),
        (vec![main[250]], 1_000_000, main[251..].to_vec()),
    ];
    for (locator, limit, expected) in cases {
        stream
            .write_all(&encode(Message::GetBlocks { locator, limit }))
            .await
            .expect("send request");
        let blocks = read_until(&mut stream, |m| match m {
            Message::Blocks(blocks) => Some(blocks),
            _ => None,
        })
        .await;
        let hashes: Vec<BlockHash> = blocks.iter().map(|b| b.hash()).collect();
        assert_eq!(hashes, expected);
    }
    let local = stream.local_addr().expect("local address");
    let peers = fx.victim.handle.peers().await.expect("running");
    assert!(
        peers.iter().any(|p| p.addr == local),
        "asking is no offence"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_orphans_keep_the_pool_bounded() {
    let fx = fixture(limits::MAX_INBOUND).await;
    // Valid blocks in themselves (work, body, producer signature) whose parents no one
    // has: each one an orphan.
    let mut scratch = ledger();
    let template = scratch.block_template(carol().account(), now());
    let orphans: Vec<ledger_core::Block<String>> = (0..10_000u32)
        .map(|i| {
            let mut t = template.clone();
            t.header.prev = BlockHash::from_hash(Hash::of(&i.to_le_bytes()));
            t.header.height = Height(2 + u64::from(i % 7));
            while t.mine(1 << 16) == ledger_core::MineStatus::Continue {}
            t.seal(&carol()).expect("mined")
        })
        .collect();
    let last = orphans.last().expect("non-empty").hash();
    let stream = handshaken(fx.victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    let reader = {
        // Answer nothing, but keep reading so the node's requests do not pile up.
        let (mut read, write) = stream.into_split();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        (task, write)
    };
    let (task, mut write) = reader;
    let mut batch = Vec::new();
    for block in orphans {
        batch.extend(encode(Message::Block(block)));
        if batch.len() > 256 * 1024 {
            write.write_all(&batch).await.expect("send orphans");
            batch.clear();
        }
    }
    write.write_all(&batch).await.expect("send orphans");
    // A transaction after them: once it is pending, every orphan before it was handled.
    let marker = note(&dave(), 1, "after the orphans");
    let marker_id = marker.id();
    write
        .write_all(&encode(Message::Tx(marker)))
        .await
        .expect("send marker");
    wait_pending(&fx.victim.handle, marker_id).await;
    let (orphans, tree, known) = fx
        .victim
        .handle
        .query(move |l| (l.orphan_count(), l.tree_size(), l.knows_block(&last)))
        .await
        .expect("running");
    assert!(known, "the last orphan is held");
    assert!(orphans <= ledger_core::limits::MAX_ORPHANS, "{orphans}");
    assert_eq!(tree, 1, "no orphan entered the tree");
    let peers = fx.victim.handle.peers().await.expect("running");
    assert!(
        peers.iter().any(|p| p.addr == local),
        "orphans are no offence"
    );
    fx.honest_still_flows().await;
    drop(write);
    task.abort();
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connection_attempts_hold_the_caps() {
    let cap = 16;
    let mut fx = fixture(cap).await;
    let victim = fx.victim.addr;
    let mut served = 0;
    for _ in 0..20 {
        // 50 at once, each completing the handshake if it gets a Hello.
        let batch: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(victim).await.ok()?;
                    let mut len = [0u8; 4];
                    timeout(WAIT, stream.read_exact(&mut len))
                        .await
                        .ok()?
                        .ok()?;
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    stream.read_exact(&mut body).await.ok()?;
                    stream
                        .write_all(&handshake_frames(hello(genesis_hash())))
                        .await
                        .ok()?;
                    Some(stream)
                })
            })
            .collect();
        let mut open = Vec::new();
        for attempt in batch {
            if let Some(stream) = attempt.await.expect("attempt finished") {
                open.push(stream);
            }
        }
        served += open.len();
        let peers = fx.victim.handle.peers().await.expect("running").len();
        assert!(peers <= cap, "{peers} peers above the cap of {cap}");
        drop(open);
    }
    assert!(
        served > 0 && served < 1_000,
        "{served} of 1,000 attempts served"
    );
    fx.honest_still_flows().await;
    // A legitimate node still gets in once the attackers are gone.
    let late = start("late", vec![victim]).await;
    wait_event(
        &mut fx.events,
        "the late node",
        |e| matches!(e, NodeEvent::PeerUp(info) if info.listen_addr == Some(late.addr)),
    )
    .await;
    late.stop().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_reconnecting_is_refused_while_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    // The peer announces where it listens; only the address the node observed (the
    // connection's socket address) is banned, not the announced one, which anyone can
    // announce.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let announced = listener.local_addr().expect("address");
    let mut stream = handshaken(fx.victim.addr, Some(announced)).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&frame(&[0xee; 16]))
        .await
        .expect("send garbage");
    closed(stream).await;
    fx.banned(local).await;
    assert!(fx.victim.handle.is_banned(local).await.expect("running"));
    assert!(
        !fx.victim
            .handle
            .is_banned(announced)
            .await
            .expect("running")
    );

    // From a new socket, announcing the same address: served, since that address was
    // never what misbehaved.
    let mut again = handshaken(fx.victim.addr, Some(announced)).await;
    let again_local = again.local_addr().expect("local address");
    wait_event(
        &mut fx.events,
        "the new socket up",
        |e| matches!(e, NodeEvent::PeerUp(info) if info.addr == again_local),
    )
    .await;
    ping(&mut again, 3).await;
    drop(again);

    // From the banned socket address itself: closed at accept, before any Hello.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    if socket.bind(local).is_ok()
        && let Ok(mut same) = socket.connect(fx.victim.addr).await
    {
        let mut buf = [0u8; 64];
        let read = timeout(WAIT, same.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "a banned address gets no hello"
        );
    }
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_does_not_count_its_own_delay_as_peer_silence() {
    // No honest peer here: the raw peer's session must be the only one feeding the
    // node, so that its last frame is the one that waits for the node.
    let mut cfg = config("victim");
    cfg.session.idle_timeout = std::time::Duration::from_secs(1);
    let victim = start_with(cfg, ledger()).await;
    let mut events = victim.handle.subscribe();
    let mut stream = handshaken(victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    wait_event(
        &mut events,
        "the raw peer up",
        |e| matches!(e, NodeEvent::PeerUp(info) if info.addr == local),
    )
    .await;

    // The node is busy for twice the idle timeout ...
    let (started, busy) = tokio::sync::oneshot::channel();
    let handle = victim.handle.clone();
    let query = tokio::spawn(async move {
        handle
            .query(move |_| {
                let _ = started.send(());
                std::thread::sleep(std::time::Duration::from_secs(2));
            })
            .await
    });
    busy.await.expect("the query runs");
    // ... while the peer sends one message more than the node's input queue holds
    // (unsolicited replies, which the node ignores), then pauses briefly.
    let mut flood = Vec::new();
    for _ in 0..=limits::NODE_INPUT_QUEUE {
        flood.extend(encode(Message::Blocks(vec![])));
    }
    stream.write_all(&flood).await.expect("send");
    query.await.expect("query task").expect("running");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Its session waited for the node, not for the peer: the peer is still served.
    ping(&mut stream, 9).await;
    let peers = victim.handle.peers().await.expect("running");
    assert!(peers.iter().any(|p| p.addr == local));
    victim.stop().await;
}

// ----- claimed addresses: bans, duplicates and redials ---------------------------------

/// Starts a node on `listener` (bound by the caller, so that tests can choose which of
/// two nodes has the larger address).
async fn start_on(listener: tokio::net::TcpListener, cfg: p2p::NodeConfig) -> TestNode {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let node = p2p::spawn(listener, cfg, ledger(), shutdown.clone()).expect("node starts");
    let handle = node.handle();
    let addr = handle.local_addr();
    TestNode {
        node,
        handle,
        shutdown,
        addr,
    }
}

/// Two listeners on 127.0.0.1, the smaller address first.
async fn two_listeners() -> (tokio::net::TcpListener, tokio::net::TcpListener) {
    let a = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    if a.local_addr().expect("address") < b.local_addr().expect("address") {
        (a, b)
    } else {
        (b, a)
    }
}

/// The victim's session with the node listening on `listen`.
async fn session_with(victim: &Handle, listen: SocketAddr) -> p2p::PeerInfo {
    let peers = victim.peers().await.expect("running");
    peers
        .into_iter()
        .find(|p| p.listen_addr == Some(listen))
        .expect("a session with that node")
}

/// A victim that dialled `dialled` (a node with a smaller address than the victim's,
/// the case where the old tie-break preferred an inbound claim over the victim's own
/// outbound session) and was dialled by `honest`.
struct Claimed {
    fx: Fixture,
    dialled: TestNode,
}

async fn claimed_fixture() -> Claimed {
    let (small, large) = two_listeners().await;
    let mut victim = start_on(large, config("victim")).await;
    let dialled = start_on(small, config("dialled")).await;
    let mut events = victim.node.events();
    let honest = start("honest", vec![victim.addr]).await;
    victim.handle.connect(dialled.addr).await.expect("running");
    for _ in 0..2 {
        wait_event(&mut events, "both honest peers up", |e| {
            matches!(e, NodeEvent::PeerUp(_))
        })
        .await;
    }
    wait_peers(&victim.handle, 2).await;
    let fx = Fixture {
        events: victim.handle.subscribe(),
        victim,
        honest,
    };
    Claimed { fx, dialled }
}

impl Claimed {
    /// Both honest peers' sessions at the victim: the dialled one, then the inbound one.
    async fn sessions(&self) -> [p2p::PeerInfo; 2] {
        let victim = &self.fx.victim.handle;
        let dialled = session_with(victim, self.dialled.addr).await;
        assert_eq!(dialled.direction, p2p::Direction::Outbound);
        let inbound = session_with(victim, self.fx.honest.addr).await;
        assert_eq!(inbound.direction, p2p::Direction::Inbound);
        [dialled, inbound]
    }

    /// Both honest peers still reach the victim over the same sessions as `before`,
    /// and none of their addresses is banned.
    async fn unharmed(&mut self, before: &[p2p::PeerInfo; 2]) {
        assert_eq!(&self.sessions().await, before);
        for info in before {
            let victim = &self.fx.victim.handle;
            assert!(!victim.is_banned(info.addr).await.expect("running"));
            if let Some(listen) = info.listen_addr {
                assert!(!victim.is_banned(listen).await.expect("running"));
            }
        }
        while let Ok(event) = self.fx.events.try_recv() {
            match event {
                NodeEvent::PeerDown { info, reason } => assert!(
                    before.iter().all(|b| b.id != info.id),
                    "an honest session dropped: {reason}"
                ),
                NodeEvent::PeerBanned { addr, .. } => assert!(
                    before
                        .iter()
                        .all(|b| b.addr != addr && b.listen_addr != Some(addr)),
                    "an honest address banned: {addr}"
                ),
                _ => {}
            }
        }
        self.fx.honest_still_flows().await;
        let mined = mine(&self.dialled.handle, &carol()).await;
        wait_tip(&self.fx.victim.handle, mined.hash).await;
    }

    async fn stop(self) {
        self.dialled.stop().await;
        self.fx.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_an_honest_address_gets_only_itself_banned() {
    let mut claimed = claimed_fixture().await;
    let before = claimed.sessions().await;
    // Misbehave while claiming each honest node's listen address: the one the victim
    // dialled, and the one that dialled the victim.
    for honest in [claimed.dialled.addr, claimed.fx.honest.addr] {
        let mut stream = handshaken(claimed.fx.victim.addr, Some(honest)).await;
        let local = stream.local_addr().expect("local address");
        stream
            .write_all(&frame(&[0xee; 16]))
            .await
            .expect("send garbage");
        closed(stream).await;
        claimed.fx.banned(local).await;
        let victim = &claimed.fx.victim.handle;
        assert!(victim.is_banned(local).await.expect("running"));
        assert!(!victim.is_banned(honest).await.expect("running"));
    }
    claimed.unharmed(&before).await;
    claimed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_claim_does_not_keep_the_honest_node_out() {
    let victim = start("victim", vec![]).await;
    let mut events = victim.handle.subscribe();
    // The honest node's address is claimed, and misbehaved with, before it connects.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let honest_addr = listener.local_addr().expect("address");
    let mut stream = handshaken(victim.addr, Some(honest_addr)).await;
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(&frame(&[0xee; 16]))
        .await
        .expect("send garbage");
    closed(stream).await;
    wait_event(
        &mut events,
        "the spoofer's ban",
        |e| matches!(e, NodeEvent::PeerBanned { addr, .. } if *addr == local),
    )
    .await;
    assert!(!victim.handle.is_banned(honest_addr).await.expect("running"));

    // The honest node then dials in and is served.
    let mut cfg = config("honest");
    cfg.peers = vec![victim.addr];
    let honest = start_on(listener, cfg).await;
    let event = wait_event(&mut events, "the honest node's session", |e| {
        matches!(e, NodeEvent::PeerUp(info) | NodeEvent::PeerDown { info, .. }
            if info.listen_addr == Some(honest_addr))
    })
    .await;
    assert!(matches!(event, NodeEvent::PeerUp(_)), "{event:?}");
    let mined = mine(&honest.handle, &carol()).await;
    wait_tip(&victim.handle, mined.hash).await;
    honest.stop().await;
    victim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_duplicate_does_not_displace_an_established_session() {
    let mut claimed = claimed_fixture().await;
    let before = claimed.sessions().await;
    // Well-behaved connections claiming each honest node's address, kept open.
    let mut spoofs = Vec::new();
    for (n, honest) in [claimed.dialled.addr, claimed.fx.honest.addr]
        .into_iter()
        .enumerate()
    {
        let mut stream = handshaken(claimed.fx.victim.addr, Some(honest)).await;
        let local = stream.local_addr().expect("local address");
        let event = wait_event(&mut claimed.fx.events, "the spoof handled", |e| {
            matches!(e, NodeEvent::PeerUp(info) | NodeEvent::PeerDown { info, .. }
                if info.addr == local)
        })
        .await;
        if matches!(event, NodeEvent::PeerUp(_)) {
            // Kept beside the honest session: it is served like any peer.
            ping(&mut stream, n as u64).await;
        }
        spoofs.push(stream);
    }
    claimed.unharmed(&before).await;
    drop(spoofs);
    claimed.stop().await;
}

/// Accepts the node's dial on `listener` and completes the handshake as a node
/// listening there; returns the stream.
async fn answer_dial(listener: &tokio::net::TcpListener) -> TcpStream {
    let (mut stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("dialled in time")
        .expect("accept");
    assert!(matches!(read_message(&mut stream).await, Message::Hello(_)));
    let mut ours = hello(genesis_hash());
    ours.listen_addr = Some(listener.local_addr().expect("address"));
    stream
        .write_all(&handshake_frames(ours))
        .await
        .expect("send hello");
    stream
}

/// Answers the node's dials on `listener` `rounds` times, dropping each session once
/// the node reports it up, and waits for the node to see it go.
async fn sessions_dropped(
    listener: &tokio::net::TcpListener,
    events: &mut broadcast::Receiver<Event>,
    rounds: usize,
) {
    let learnt = listener.local_addr().expect("address");
    for _ in 0..rounds {
        let stream = answer_dial(listener).await;
        wait_event(
            events,
            "the learnt peer up",
            |e| matches!(e, NodeEvent::PeerUp(info) if info.addr == learnt),
        )
        .await;
        drop(stream);
        wait_event(
            events,
            "the learnt peer down",
            |e| matches!(e, NodeEvent::PeerDown { info, .. } if info.addr == learnt),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_learnt_by_peer_exchange_is_redialled_after_its_session_drops() {
    let node = start("learner", vec![]).await;
    let mut events = node.handle.subscribe();
    let learnt = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // A peer (announcing no address of its own) answers the node's `GetPeers`.
    let mut teller = handshaken(node.addr, None).await;
    read_until(&mut teller, |m| {
        matches!(m, Message::GetPeers).then_some(())
    })
    .await;
    teller
        .write_all(&encode(Message::Peers(vec![
            learnt.local_addr().expect("address"),
        ])))
        .await
        .expect("send peers");
    // Dialled, dropped, and dialled again, more than once.
    sessions_dropped(&learnt, &mut events, 3).await;
    drop(teller);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_an_inbound_peer_claimed_is_dialled_after_it_leaves() {
    let node = start("learner", vec![]).await;
    let mut events = node.handle.subscribe();
    let learnt = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let claimed = learnt.local_addr().expect("address");
    let mut inbound = handshaken(node.addr, Some(claimed)).await;
    let local = inbound.local_addr().expect("local address");
    wait_event(
        &mut events,
        "the inbound peer up",
        |e| matches!(e, NodeEvent::PeerUp(info) if info.addr == local),
    )
    .await;
    ping(&mut inbound, 1).await;
    drop(inbound);
    // The claim is tried once the session is gone, and redialled after drops.
    sessions_dropped(&learnt, &mut events, 2).await;
    node.stop().await;
}

/// A block of `n` notes by dave, mined on a scratch ledger: the victim holds none of
/// its transactions until told.
fn block_of_notes(n: u64) -> ledger_core::Block<String> {
    let mut scratch = ledger();
    for i in 1..=n {
        scratch
            .submit_transaction(note(&dave(), i, &format!("compact {i}")), now())
            .expect("a valid note");
    }
    scratch.mine_block(&carol(), now())
}

/// Announces `block` compact to the victim, which holds its first `held`
/// transactions, and returns the positions the victim asks for.
async fn announce_compact(
    fx: &Fixture,
    stream: &mut TcpStream,
    block: &ledger_core::Block<String>,
    held: usize,
) -> Vec<u32> {
    for tx in &block.transactions[..held] {
        let id = fx
            .victim
            .handle
            .submit_transaction(tx.clone())
            .await
            .expect("running")
            .expect("a valid note");
        wait_pending(&fx.victim.handle, id).await;
    }
    let compact = p2p::compact::CompactBlock::of(block);
    stream
        .write_all(&encode(Message::CompactBlock(compact)))
        .await
        .expect("send the compact block");
    let hash = block.hash();
    read_until(stream, |m| match m {
        Message::GetBlockTxs { block, indexes } if block == hash => Some(indexes),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_is_rebuilt_with_only_the_transactions_the_node_lacked() {
    let fx = fixture(limits::MAX_INBOUND).await;
    let mut stream = handshaken(fx.victim.addr, None).await;
    let block = block_of_notes(10);
    let asked = announce_compact(&fx, &mut stream, &block, 4).await;
    assert_eq!(asked, (4..10).collect::<Vec<u32>>());
    stream
        .write_all(&encode(Message::BlockTxs {
            block: block.hash(),
            txs: block.transactions[4..].to_vec(),
        }))
        .await
        .expect("send the missing transactions");
    wait_tip(&fx.victim.handle, block.hash()).await;
    // The honest neighbour gets it too, as it was announced to it.
    wait_tip(&fx.honest.handle, block.hash()).await;
    fx.honest_still_flows().await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_transactions_for_a_compact_block_get_the_peer_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;
    let mut stream = handshaken(fx.victim.addr, None).await;
    let local = stream.local_addr().expect("local address");
    let block = block_of_notes(10);
    let asked = announce_compact(&fx, &mut stream, &block, 8).await;
    assert_eq!(asked, vec![8, 9]);
    // The right count, but one transaction that was not announced.
    let txs = vec![block.transactions[8].clone(), note(&dave(), 99, "swapped")];
    stream
        .write_all(&encode(Message::BlockTxs {
            block: block.hash(),
            txs,
        }))
        .await
        .expect("send the wrong transactions");
    closed(stream).await;
    let offence = fx.banned(local).await;
    assert!(matches!(offence, Offence::Compact(_)), "{offence}");
    let tip = fx.victim.handle.tip().await.expect("running");
    assert_ne!(
        tip.hash,
        block.hash(),
        "no block from the wrong transactions"
    );
    fx.honest_still_flows().await;
    fx.stop().await;
}
