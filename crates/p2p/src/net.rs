//! The node's I/O at the edge: the listener, the dialers with their back-off, and one
//! task per connection (handshake, then [`Session::drive`](crate::session::Session)).
//! They decide nothing about the ledger: every session event goes to the ledger task
//! (`crate::node`), which answers with frames on the session's outbound queue.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::gossip::BanList;
use crate::handle::NodeConfig;
use crate::limits;
use crate::peers::{NextDial, Outcome, Redial, Redialer};
use crate::protocol::Hello;
use crate::session::{Connection, Direction, PeerInfo, SessionConfig, SessionEvent};

/// What the listener, dialers and sessions share.
pub(crate) struct Shared<T> {
    pub(crate) session: SessionConfig,
    pub(crate) config: NodeConfig,
    pub(crate) hello: watch::Receiver<Hello>,
    pub(crate) to_node: mpsc::Sender<SessionEvent<T>>,
    pub(crate) bans: Mutex<BanList>,
    /// Listen addresses that established sessions reach (see
    /// [`Link::reaches`](crate::gossip::Link::reaches)), so dialers do not open a second connection to a
    /// peer that is already connected.
    pub(crate) connected: Mutex<HashSet<SocketAddr>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) inbound: Arc<Semaphore>,
    pub(crate) tracker: TaskTracker,
    pub(crate) token: CancellationToken,
}

impl<T> Shared<T> {
    pub(crate) fn is_connected(&self, addr: &SocketAddr) -> bool {
        self.connected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(addr)
    }

    pub(crate) fn set_connected(&self, addrs: HashSet<SocketAddr>) {
        *self
            .connected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = addrs;
    }

    pub(crate) fn banned_until(&self, addr: &SocketAddr) -> Option<std::time::Instant> {
        let bans = self
            .bans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bans.banned_until(addr, std::time::Instant::now())
    }

    /// Copies a ban the node task's peer table decided (see
    /// [`PeerAction::Ban`](crate::peers::PeerAction)): the listener and the dialers
    /// read bans here.
    pub(crate) fn ban(&self, addr: SocketAddr, at: std::time::Instant, duration: Duration) {
        let mut bans = self
            .bans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bans.ban(addr, at, duration);
    }
}

/// Accepts inbound connections up to the cap; refuses banned addresses at once.
pub(crate) async fn listen<T>(shared: Arc<Shared<T>>, listener: TcpListener)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = shared.token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically out of file descriptors: wait a little instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::select! {
                    () = shared.token.cancelled() => return,
                    () = sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        if shared.banned_until(&addr).is_some() {
            debug!(%addr, "refusing banned address");
            continue;
        }
        let Ok(permit) = Arc::clone(&shared.inbound).try_acquire_owned() else {
            debug!(%addr, "inbound connection cap reached, closing");
            continue;
        };
        let task_shared = Arc::clone(&shared);
        shared.tracker.spawn(async move {
            let _permit = permit;
            run_connection(task_shared, stream, addr, Direction::Inbound).await;
        });
    }
}

/// Dials `addr`, and redials it after every failure or disconnection with exponential
/// back-off (reset only by a session the node kept), waiting out bans of `addr` and
/// pausing while a session reaches it already (see [`Link::reaches`](crate::gossip::Link::reaches)).
pub(crate) async fn dial_loop<T>(shared: Arc<Shared<T>>, addr: SocketAddr, redial: Redial)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut redialer = Redialer::new(
        redial,
        shared.config.reconnect_min,
        shared.config.reconnect_max,
    );
    loop {
        if let Some(until) = shared.banned_until(&addr) {
            let wait = until.saturating_duration_since(std::time::Instant::now());
            tokio::select! {
                () = shared.token.cancelled() => return,
                () = sleep(wait) => {}
            }
        }
        if shared.is_connected(&addr) {
            // Already connected (the peer dialled first): check again later.
            tokio::select! {
                () = shared.token.cancelled() => return,
                () = sleep(shared.config.reconnect_min) => {}
            }
            continue;
        }
        let connect = timeout(shared.config.connect_timeout, TcpStream::connect(addr));
        let result = tokio::select! {
            () = shared.token.cancelled() => return,
            result = connect => result,
        };
        let outcome = match result {
            Ok(Ok(stream)) => {
                run_connection(Arc::clone(&shared), stream, addr, Direction::Outbound).await
            }
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "dial failed");
                Outcome::Failed
            }
            Err(_) => {
                debug!(%addr, "dial timed out");
                Outcome::Failed
            }
        };
        if shared.token.is_cancelled() {
            return;
        }
        let delay = match redialer.handle_outcome(outcome) {
            NextDial::After(delay) => delay,
            NextDial::GiveUp => {
                let failures = redialer.failures();
                debug!(%addr, failures, "giving up on a learnt address");
                report(&shared, SessionEvent::DialerStopped { addr }).await;
                return;
            }
        };
        tokio::select! {
            () = shared.token.cancelled() => return,
            () = sleep(delay) => {}
        }
    }
}

/// Runs one connection: handshake, registration with the node, session. `addr` is the
/// address observed: the remote address of an inbound connection, the dialled one of
/// an outbound connection.
async fn run_connection<T>(
    shared: Arc<Shared<T>>,
    stream: TcpStream,
    addr: SocketAddr,
    direction: Direction,
) -> Outcome
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let connection = Connection::new(stream, addr, direction, &shared.session);
    let mut hello = shared.hello.borrow().clone();
    // Fresh for this connection: the peer's key proof signs it.
    rand::Rng::fill_bytes(&mut rand::rng(), &mut hello.challenge);
    let key = shared.config.member_key.as_ref();
    let result = tokio::select! {
        () = shared.token.cancelled() => return Outcome::Failed,
        result = connection.handshake::<T>(&hello, &shared.session, key) => result,
    };
    let session = match result {
        Ok(session) => session,
        Err(error) => {
            debug!(%addr, %error, "handshake failed");
            report(
                &shared,
                SessionEvent::Down {
                    id: None,
                    addr,
                    listen: None,
                    error: Some(error),
                },
            )
            .await;
            return Outcome::Failed;
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    // A peer listening on all interfaces is reachable at the address it came from.
    let listen = session.peer().listen_addr.map(|listen| {
        if listen.ip().is_unspecified() {
            SocketAddr::new(addr.ip(), listen.port())
        } else {
            listen
        }
    });
    let info = PeerInfo {
        id,
        addr,
        listen_addr: listen,
        name: session.peer().node_name.clone(),
        direction,
        tip: session.peer().tip,
        proven: session.proven(),
    };
    let (outbound, queue) = mpsc::channel(limits::OUTBOUND_QUEUE);
    let (kept, mut was_kept) = oneshot::channel();
    if !report(
        &shared,
        SessionEvent::Up {
            info,
            outbound,
            kept,
        },
    )
    .await
    {
        return Outcome::Failed;
    }
    let error = session
        .drive(id, &shared.to_node, queue, &shared.session, &shared.token)
        .await;
    if let Some(error) = &error {
        debug!(%addr, %error, "session ended");
    }
    report(
        &shared,
        SessionEvent::Down {
            id: Some(id),
            addr,
            listen,
            error,
        },
    )
    .await;
    // The node answered before the session could end, unless the peer left at once.
    if was_kept.try_recv().is_ok() {
        Outcome::Kept
    } else {
        Outcome::Refused
    }
}

/// Sends an event to the node unless it is stopping; `false` if it is gone.
async fn report<T>(shared: &Shared<T>, event: SessionEvent<T>) -> bool {
    tokio::select! {
        () = shared.token.cancelled() => false,
        sent = shared.to_node.send(event) => sent.is_ok(),
    }
}
