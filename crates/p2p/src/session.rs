//! One framed peer connection: the handshake, then the read/write loop.
//!
//! A [`Connection`] is an unauthenticated framed stream; [`Connection::handshake`]
//! turns it into a [`Session`] only once both sides exchanged a compatible
//! [`Hello`] within the timeout. Nothing but a `Hello` is accepted before that, in a
//! frame of at most [`limits::MAX_HELLO_FRAME_BYTES`], so unidentified connections
//! cannot make the node buffer large frames. A
//! session then forwards the peer's messages to the node, writes what the node queues
//! for it (a bounded queue: the node drops a peer that lets it fill), answers pings
//! itself and gives up on a peer silent for longer than the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ledger_core::{AccountId, BlockHash, Keypair};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::{
    Framed, LengthDelimitedCodec, length_delimited::LengthDelimitedCodecError,
};
use tokio_util::sync::CancellationToken;

use crate::limits;
use crate::protocol::{
    Hello, KeyProof, Message, MessageError, ProtocolError, TipInfo, decode_message,
};

/// Limits and timeouts of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest frame accepted or sent (payload bytes after the length prefix).
    pub max_frame_bytes: usize,
    /// Time the whole handshake may take.
    pub handshake_timeout: Duration,
    /// Silence after which the peer is dropped. It is also the read deadline: each
    /// frame must be complete within it of the previous one, so a peer trickling a
    /// frame too slowly is dropped like a silent one (a peer trickling fast enough is
    /// served normally).
    pub idle_timeout: Duration,
    /// Time one frame may take to write.
    pub write_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_bytes: limits::MAX_FRAME_BYTES,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            write_timeout: limits::WRITE_TIMEOUT,
        }
    }
}

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to us.
    Inbound,
    /// We connected to the peer.
    Outbound,
}

/// Why a session ended or never started.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(Arc<std::io::Error>),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// A length prefix announced a frame above the limit.
    #[error("frame above the {max}-byte limit")]
    FrameTooLarge {
        /// The limit in force.
        max: usize,
    },
    /// A frame did not hold an acceptable message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A message broke the protocol's order.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The handshake did not finish in time.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer is on another network.
    #[error("peer is on network {theirs}, this node on {ours}")]
    GenesisMismatch {
        /// Our genesis hash.
        ours: BlockHash,
        /// The peer's.
        theirs: BlockHash,
    },
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {theirs}, this node {ours}")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// Nothing was heard from the peer for too long.
    #[error("peer silent for {0:?}")]
    Idle(Duration),
    /// Writing one frame took too long.
    #[error("peer did not accept a frame within {0:?}")]
    WriteTimeout(Duration),
}

impl SessionError {
    /// Whether the error is the peer's fault in a way that deserves a ban: oversize or
    /// undecodable frames and protocol violations. Timeouts, closed sockets and
    /// incompatible networks only end the connection.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            SessionError::FrameTooLarge { .. }
                | SessionError::Message(_)
                | SessionError::Protocol(_)
        )
    }

    fn from_io(error: std::io::Error, max: usize) -> SessionError {
        let too_large = error
            .get_ref()
            .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
        if too_large {
            SessionError::FrameTooLarge { max }
        } else {
            SessionError::Io(Arc::new(error))
        }
    }
}

/// The length-delimited framing every connection uses: a 4-byte big-endian length,
/// then at most `max_frame_bytes` of payload.
pub fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// A connected socket that has not completed the handshake: nothing it sends is
/// trusted or forwarded.
#[derive(Debug)]
pub struct Connection {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    addr: SocketAddr,
    direction: Direction,
}

impl Connection {
    /// Wraps a connected socket.
    pub fn new(
        stream: TcpStream,
        addr: SocketAddr,
        direction: Direction,
        config: &SessionConfig,
    ) -> Self {
        Connection {
            framed: Framed::new(stream, codec(hello_frame_limit(config))),
            addr,
            direction,
        }
    }

    /// The peer's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends our `Hello`, waits for the peer's, and checks it: the first frame must be
    /// a decodable `Hello` with our genesis and protocol version, all within
    /// `config.handshake_timeout`. Until then frames are limited to
    /// [`limits::MAX_HELLO_FRAME_BYTES`]; the session then accepts frames up to
    /// `config.max_frame_bytes`.
    ///
    /// Then each side proves which roster key it holds ([`KeyProof`]): it signs the
    /// other side's fresh challenge and its own, with `key`, or says it holds none. A
    /// proof that does not verify (made for other challenges, or for the other side of
    /// a connection: a reflected one) or a peer that echoes our challenge ends the
    /// handshake; a peer that never sends its proof times out.
    /// Nothing but these two messages is read before the session is established.
    pub async fn handshake<T: serde::Serialize + DeserializeOwned>(
        mut self,
        ours: &Hello,
        config: &SessionConfig,
        key: Option<&Keypair>,
    ) -> Result<Session, SessionError> {
        let max = hello_frame_limit(config);
        let exchange = async {
            let hello: Message<T> = Message::Hello(ours.clone());
            self.send(hello, max).await?;
            let theirs = match self.receive::<T>(max).await? {
                Message::Hello(theirs) => theirs,
                other => return Err(ProtocolError::ExpectedHello { got: other.kind() }.into()),
            };
            check_hello(ours, &theirs)?;
            if theirs.challenge == ours.challenge {
                return Err(ProtocolError::BadKeyProof.into());
            }
            let dialled = self.direction == Direction::Outbound;
            let proof = KeyProof::sign(
                key,
                &ours.genesis,
                &theirs.challenge,
                &ours.challenge,
                dialled,
            );
            self.send(Message::<T>::KeyProof(proof), max).await?;
            let proof = match self.receive::<T>(max).await? {
                Message::KeyProof(proof) => proof,
                other => {
                    return Err(ProtocolError::ExpectedKeyProof { got: other.kind() }.into());
                }
            };
            // The peer is on the other side: it dialled if we accepted. (A node of the
            // same member, holding the same key, proves it like any other.)
            if !proof.verify(&ours.genesis, &ours.challenge, &theirs.challenge, !dialled) {
                return Err(ProtocolError::BadKeyProof.into());
            }
            Ok::<_, SessionError>((theirs, proof.account))
        };
        let (theirs, proven) = timeout(config.handshake_timeout, exchange)
            .await
            .map_err(|_| SessionError::HandshakeTimeout(config.handshake_timeout))??;
        self.framed
            .codec_mut()
            .set_max_frame_length(config.max_frame_bytes);
        Ok(Session {
            framed: self.framed,
            addr: self.addr,
            direction: self.direction,
            peer: theirs,
            proven,
        })
    }

    async fn send<T: serde::Serialize>(
        &mut self,
        message: Message<T>,
        max: usize,
    ) -> Result<(), SessionError> {
        self.framed
            .send(Bytes::from(message.encode()))
            .await
            .map_err(|e| SessionError::from_io(e, max))
    }

    async fn receive<T: DeserializeOwned>(
        &mut self,
        max: usize,
    ) -> Result<Message<T>, SessionError> {
        let frame = match self.framed.next().await {
            None => return Err(SessionError::Closed),
            Some(frame) => frame.map_err(|e| SessionError::from_io(e, max))?,
        };
        Ok(decode_message::<T>(&frame, max)?)
    }
}

/// The frame limit in force until the handshake completes.
fn hello_frame_limit(config: &SessionConfig) -> usize {
    config.max_frame_bytes.min(limits::MAX_HELLO_FRAME_BYTES)
}

/// Whether the peer's `Hello` is compatible with ours: same version, same network.
pub fn check_hello(ours: &Hello, theirs: &Hello) -> Result<(), SessionError> {
    if theirs.protocol_version != ours.protocol_version {
        return Err(SessionError::VersionMismatch {
            ours: ours.protocol_version,
            theirs: theirs.protocol_version,
        });
    }
    if theirs.genesis != ours.genesis {
        return Err(SessionError::GenesisMismatch {
            ours: ours.genesis,
            theirs: theirs.genesis,
        });
    }
    Ok(())
}

/// An established session: the handshake succeeded.
#[derive(Debug)]
pub struct Session {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    addr: SocketAddr,
    direction: Direction,
    peer: Hello,
    proven: Option<AccountId>,
}

/// What the node knows about an established peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The session's number, unique for the node's lifetime.
    pub id: u64,
    /// The address this node observed: the peer's socket address for an inbound
    /// connection, the address dialled for an outbound one. Bans attach to it.
    pub addr: SocketAddr,
    /// Where the peer says it accepts connections (its `Hello`): a claim, only ever
    /// used as an address to dial.
    pub listen_addr: Option<SocketAddr>,
    /// The peer's node name.
    pub name: String,
    /// Who opened the connection.
    pub direction: Direction,
    /// The tip it announced in its `Hello`.
    pub tip: TipInfo,
    /// The key its handshake proved it holds, if any: sealed bodies are served to it
    /// only if they are sealed to this key.
    pub proven: Option<AccountId>,
}

/// What a session reports to the node.
#[derive(Debug)]
pub(crate) enum SessionEvent<T> {
    /// The handshake completed; the node may keep the peer by keeping `outbound`, or
    /// drop it to close the session.
    Up {
        /// Who the peer is.
        info: PeerInfo,
        /// The peer's bounded outbound queue.
        outbound: mpsc::Sender<Bytes>,
        /// Signalled when the node keeps the session (dropped if it refuses it), so a
        /// dialer knows whether to start its back-off again.
        kept: tokio::sync::oneshot::Sender<()>,
    },
    /// A message from an established peer (never `Hello`, `Ping` or `Pong`).
    Message {
        /// The session.
        id: u64,
        /// The message.
        message: Message<T>,
    },
    /// The session ended, or the connection never became one.
    Down {
        /// The session, if the handshake had completed.
        id: Option<u64>,
        /// The peer's socket address.
        addr: SocketAddr,
        /// The address the peer announced, if it got that far.
        listen: Option<SocketAddr>,
        /// Why, if because of an error.
        error: Option<SessionError>,
    },
    /// The dialer of an address learnt from peers gave up on it after
    /// [`limits::LEARNED_DIAL_FAILURES`] failures in a row.
    DialerStopped {
        /// The address it dialled.
        addr: SocketAddr,
    },
}

impl Session {
    /// The peer's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Who opened the connection.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The peer's `Hello`.
    pub fn peer(&self) -> &Hello {
        &self.peer
    }

    /// The key the peer's handshake proved it holds, if any.
    pub fn proven(&self) -> Option<AccountId> {
        self.proven
    }

    async fn write(&mut self, frame: Bytes, config: &SessionConfig) -> Result<(), SessionError> {
        match timeout(config.write_timeout, self.framed.send(frame)).await {
            Ok(result) => result.map_err(|e| SessionError::from_io(e, config.max_frame_bytes)),
            Err(_) => Err(SessionError::WriteTimeout(config.write_timeout)),
        }
    }

    /// Runs the session until the peer leaves, misbehaves or goes silent, the node
    /// drops its outbound queue, or `shutdown` fires. Returns the error that ended it.
    pub(crate) async fn drive<T: serde::Serialize + DeserializeOwned>(
        mut self,
        id: u64,
        to_node: &mpsc::Sender<SessionEvent<T>>,
        mut outbound: mpsc::Receiver<Bytes>,
        config: &SessionConfig,
        shutdown: &CancellationToken,
    ) -> Option<SessionError> {
        let max = config.max_frame_bytes;
        let mut last_heard = Instant::now();
        let ping_every = (config.idle_timeout / 3).max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut nonce = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                frame = timeout_at(deadline(last_heard, config.idle_timeout), self.framed.next()) => {
                    let bytes = match frame {
                        Err(_) => return Some(SessionError::Idle(config.idle_timeout)),
                        Ok(None) => return Some(SessionError::Closed),
                        Ok(Some(Err(e))) => return Some(SessionError::from_io(e, max)),
                        Ok(Some(Ok(bytes))) => bytes,
                    };
                    last_heard = Instant::now();
                    let message = match decode_message::<T>(&bytes, max) {
                        Ok(message) => message,
                        Err(e) => return Some(e.into()),
                    };
                    match message {
                        Message::Hello(_) | Message::KeyProof(_) => {
                            return Some(ProtocolError::RepeatedHello.into());
                        }
                        Message::Ping(n) => {
                            let pong: Message<T> = Message::Pong(n);
                            if let Err(e) = self.write(Bytes::from(pong.encode()), config).await {
                                return Some(e);
                            }
                        }
                        Message::Pong(_) => {}
                        message => {
                            if to_node.send(SessionEvent::Message { id, message }).await.is_err() {
                                return None;
                            }
                            // Time spent waiting for a busy node is not the peer's
                            // silence: its idle clock starts once this node reads again.
                            last_heard = Instant::now();
                        }
                    }
                }
                frame = outbound.recv() => match frame {
                    // The node dropped the queue: it disconnects this peer.
                    None => return None,
                    Some(frame) => {
                        if let Err(e) = self.write(frame, config).await {
                            return Some(e);
                        }
                    }
                },
                _ = ping.tick() => {
                    nonce = nonce.wrapping_add(1);
                    let message: Message<T> = Message::Ping(nonce);
                    if let Err(e) = self.write(Bytes::from(message.encode()), config).await {
                        return Some(e);
                    }
                }
            }
        }
    }
}

/// `start + after`, or a year from `start` if that is not representable.
fn deadline(start: Instant, after: Duration) -> Instant {
    start
        .checked_add(after)
        .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{Hash, Height};

    fn hello(genesis: &[u8], version: u32) -> Hello {
        Hello {
            protocol_version: version,
            genesis: BlockHash::from_hash(Hash::of(genesis)),
            node_name: "n".into(),
            listen_addr: None,
            tip: TipInfo {
                hash: BlockHash::default(),
                height: Height(0),
                work: 0,
                final_height: ledger_core::Height(0),
            },
            challenge: [9; 32],
        }
    }

    #[test]
    fn hello_checks() {
        let ours = hello(b"a", 1);
        assert!(check_hello(&ours, &hello(b"a", 1)).is_ok());
        assert!(matches!(
            check_hello(&ours, &hello(b"b", 1)),
            Err(SessionError::GenesisMismatch { .. })
        ));
        assert!(matches!(
            check_hello(&ours, &hello(b"a", 2)),
            Err(SessionError::VersionMismatch { ours: 1, theirs: 2 })
        ));
    }

    #[test]
    fn the_largest_hello_fits_the_handshake_frame_limit() {
        let mut largest = hello(b"a", u32::MAX);
        largest.node_name = "\u{10ffff}".repeat(limits::MAX_NODE_NAME / 4);
        largest.listen_addr = Some("[ffff::ffff]:65535".parse().expect("valid address"));
        largest.tip.height = Height(u64::MAX);
        largest.tip.work = u128::MAX;
        let bytes = Message::<String>::Hello(largest).encode();
        assert!(
            bytes.len() <= limits::MAX_HELLO_FRAME_BYTES / 2,
            "{}",
            bytes.len()
        );
    }

    #[test]
    fn only_peer_faults_are_misbehaviour() {
        assert!(SessionError::FrameTooLarge { max: 1 }.is_misbehaviour());
        assert!(SessionError::Protocol(ProtocolError::RepeatedHello).is_misbehaviour());
        assert!(!SessionError::Closed.is_misbehaviour());
        assert!(!SessionError::HandshakeTimeout(Duration::from_secs(1)).is_misbehaviour());
    }
}
