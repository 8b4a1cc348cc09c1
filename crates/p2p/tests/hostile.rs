//! Hostile peers on raw sockets: each is refused as specified, while an honest peer's
//! transactions and blocks keep flowing to the node under attack.

mod common;

use std::net::SocketAddr;

use common::*;
use ledger_core::{BlockHash, Hash, Height, Signature, TxError};
use p2p::protocol::{Hello, Message, TipInfo, decode_message};
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
    let victim = start_with(cfg, ledger()).await;
    let honest = start("honest", vec![victim.addr]).await;
    wait_peers(&victim.handle, 1).await;
    wait_peers(&honest.handle, 1).await;
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
        },
    }
}

fn encode(message: Message<String>) -> Vec<u8> {
    frame(&message.encode())
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
    let local = send_raw(fx.victim.addr, &bytes).await;
    let offence = fx.banned(local).await;
    assert!(is_session_offence(&offence, |e| matches!(
        e,
        SessionError::FrameTooLarge { max } if *max == limits::MAX_FRAME_BYTES
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
    let elsewhere = BlockHash(Hash::of(b"another network"));
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
        .write_all(&encode(Message::Hello(hello(genesis_hash()))))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_hello_and_invalid_block_get_the_peer_banned() {
    let mut fx = fixture(limits::MAX_INBOUND).await;

    let (mut stream, _) = connect(fx.victim.addr).await;
    let local = stream.local_addr().expect("local address");
    let hello_frame = encode(Message::Hello(hello(genesis_hash())));
    stream.write_all(&hello_frame).await.expect("send hello");
    stream
        .write_all(&hello_frame)
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
    stream.write_all(&hello_frame).await.expect("send hello");
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
        .write_all(&encode(Message::Hello(hello(genesis_hash()))))
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
