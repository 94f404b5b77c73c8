//! The HTTP server loop both planes use: the sandbox and the gateway each serve their `axum`
//! router through [`serve`], which bounds what slow and idle clients can hold.
//!
//! - **Header read timeout.** A request's head must arrive within `header_read_timeout_ms`:
//!   counted from the accept for a connection's first request (a connection that never sends
//!   anything is closed then too), from the request's first byte for later requests on a
//!   kept-alive connection. A slowloris trickling its headers is closed when it runs out, however
//!   steadily it trickles.
//! - **Idle timeout.** A kept-alive connection with no request for `idle_timeout_ms` is closed.
//!   A connection is busy from the moment a request's head is complete until its response has
//!   been handed to the socket to the last byte, so a long-lived response (an event stream) is
//!   never idle; a client that stops reading an answer is cut off after the idle timeout.
//! - **Connection cap.** At most `max_connections` connections are served at once. When one more
//!   arrives at the cap, an idle connection gives way to it: one that never sent a request first,
//!   then a kept-alive one, the longest idle first. Its permit passes to the newcomer at once,
//!   so up to 32 evicted connections may still be closing beside the cap. When none is idle, the
//!   loop stops accepting until a connection closes, so the listen backlog, not tasks, holds the
//!   excess (one accepted socket waits); [`bind`] makes that backlog 1,024 rather than 128. An
//!   answer still being written never gives way.
//! - **Accept errors.** Running out of descriptors (`EMFILE`, `ENFILE`) closes up to 32 idle
//!   connections (none while earlier ones are still closing) and pauses the loop until a
//!   connection closes or a short backoff passes (5 ms doubling to 500 ms), so it never spins.
//! - **Graceful shutdown.** When the token fires the loop stops accepting (and closes its
//!   listener), idle connections close at once, requests in flight finish, and [`serve`] returns
//!   when every connection has closed.
//!
//! Hyper's own `header_read_timeout` is switched off: it starts whenever the connection waits
//! for a request head, so on a kept-alive connection it also counts the idle time between
//! requests (`tests/hyper_behaviour.rs` shows it). The phases of a connection are tracked here
//! instead: the socket wrapper sees a request's first byte and the flush of its answer, the
//! service wrapper its start, and the response body wrapper its end.
//!
//! Only HTTP/1.1 is served (as `axum::serve` did with the features this workspace enables).

mod conn;

use axum::Router;
use conn::{ConnState, Phase};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's limits: the `[server]` table of both planes' configuration files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A request's head must arrive within this (ms): from the accept for a connection's first
    /// request, from its first byte for a later one. 10 s: a head is a few hundred bytes, sent at
    /// once by any client; a slow mobile link still gets it through, a slowloris holds its
    /// connection 10 s at most.
    pub header_read_timeout_ms: NonZeroU64,
    /// A kept-alive connection with no request for this long is closed (ms). A response still
    /// being sent (an event stream) is not idle. 60 s: clients that reuse connections (the
    /// gateway's upstream client keeps them 50 s) find them open.
    pub idle_timeout_ms: NonZeroU64,
    /// Connections served at once. Past it, idle connections give way to new ones; when none is
    /// idle, new connections wait in the listen backlog. 1,024: far above what the clients of a
    /// sandbox or a gateway use, small enough that the descriptors and tasks stay bounded. Keep
    /// it below the process's open-files limit (`ulimit -n`) with room for the rest.
    pub max_connections: NonZeroUsize,
}

const fn nonzero_u64(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(v) => v,
        None => NonZeroU64::MIN,
    }
}

const fn nonzero_usize(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(v) => v,
        None => NonZeroUsize::MIN,
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_ms: nonzero_u64(10_000),
            idle_timeout_ms: nonzero_u64(60_000),
            max_connections: nonzero_usize(1_024),
        }
    }
}

impl ServerConfig {
    /// Limits from plain numbers; a zero becomes 1.
    pub fn new(header_read_timeout_ms: u64, idle_timeout_ms: u64, max_connections: usize) -> Self {
        ServerConfig {
            header_read_timeout_ms: nonzero_u64(header_read_timeout_ms),
            idle_timeout_ms: nonzero_u64(idle_timeout_ms),
            max_connections: nonzero_usize(max_connections),
        }
    }

    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.get())
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.get())
    }
}

/// The listen backlog of [`bind`]: connections the kernel completes before they are accepted
/// (the kernel caps it at `net.core.somaxconn`).
pub const BACKLOG: u32 = 1_024;

/// A listener on `addr` with a backlog of [`BACKLOG`] (`TcpListener::bind` takes the standard
/// library's 128). At the cap the backlog holds the connections that wait; past it the kernel
/// drops their SYNs and clients retry a second later, so a burst of connections larger than 128
/// would cost the late ones that second.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` within `cfg`'s limits until `shutdown` fires, then lets the
/// requests in flight finish and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cfg: &ServerConfig,
    shutdown: CancellationToken,
) {
    run(listener, app, cfg.clone(), shutdown).await
}

/// Where connections come from: a TCP listener, or a stand-in in the tests.
pub(crate) trait Accept: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        let (stream, _) = TcpListener::accept(self).await?;
        // Answers leave in one write; small writes of a stream should not wait for an ACK.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// What every connection of one server shares.
pub(crate) struct Shared {
    /// Where the connections' microsecond clocks start.
    epoch: Instant,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    /// One permit per open connection.
    permits: Arc<Semaphore>,
    /// The open connections, for choosing one to close when room is needed.
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// A connection waits for room: connections that become idle say so on `room`.
    starved: AtomicBool,
    room: Notify,
    /// A connection closed (what the loop waits for after an accept error).
    closed: Notify,
    /// Connections evicted to make room that have not closed yet (at the cap, each handed its
    /// permit to the connection it made room for: see [`Shared::make_room`]).
    evicting: AtomicUsize,
    /// When the last warning about pressure was logged (ms since `epoch`, `u64::MAX`: never).
    last_warning_ms: AtomicU64,
    evicted: AtomicU64,
}

/// At most this many evicted connections may still be closing: how far the open connections
/// can exceed the cap for a moment, and how many an accept error closes at once.
pub(crate) const MAX_EVICTING: usize = 32;

/// Warnings about pressure (the cap reached, accept errors) are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl Shared {
    pub(crate) fn new(cfg: &ServerConfig) -> Shared {
        Shared {
            epoch: Instant::now(),
            header_read_timeout: cfg.header_read_timeout(),
            idle_timeout: cfg.idle_timeout(),
            max_connections: cfg.max_connections.get(),
            permits: Arc::new(Semaphore::new(cfg.max_connections.get())),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            starved: AtomicBool::new(false),
            room: Notify::new(),
            closed: Notify::new(),
            evicting: AtomicUsize::new(0),
            last_warning_ms: AtomicU64::new(u64::MAX),
            evicted: AtomicU64::new(0),
        }
    }

    /// Microseconds since `epoch`.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// When a phase that began `since_us` after `epoch` runs out after `timeout`. A timeout too
    /// large for the clock (`u64::MAX` ms in a configuration file) is a year from now.
    pub(crate) fn deadline(&self, since_us: u64, timeout: Duration) -> Instant {
        self.epoch
            .checked_add(Duration::from_micros(since_us))
            .and_then(|t| t.checked_add(timeout))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400))
    }

    fn register(&self) -> (u64, Arc<ConnState>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.now_us()));
        self.lock_conns().insert(id, state.clone());
        (id, state)
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.lock_conns().remove(&id);
        self.closed.notify_one();
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection became idle: if one waits for room, it may take this one's.
    pub(crate) fn became_idle(&self) {
        if self.starved.load(Ordering::Acquire) {
            self.room.notify_one();
        }
    }

    /// Closes the idle connection that has least claim to stay: one that never sent a request
    /// before a kept-alive one, the longest idle first. False when none is idle. With
    /// `hand_over`, its permit is not given back when it closes (the caller added one).
    fn evict_idle(&self, hand_over: bool) -> bool {
        for _ in 0..8 {
            let victim = {
                let conns = self.lock_conns();
                conns
                    .values()
                    .filter_map(|c| {
                        let phase = c.phase();
                        let rank = match phase {
                            Phase::Fresh => 0,
                            Phase::Idle => 1,
                            _ => return None,
                        };
                        Some((rank, c.since_us(), phase, c.clone()))
                    })
                    .min_by_key(|(rank, since, _, _)| (*rank, *since))
            };
            let Some((_, _, phase, c)) = victim else {
                return false;
            };
            // Counted before the eviction, so its close never finds the count at zero.
            self.evicting.fetch_add(1, Ordering::AcqRel);
            if c.evict(phase, hand_over) {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            self.evicting.fetch_sub(1, Ordering::AcqRel);
            // It started a request meanwhile: look again.
        }
        false
    }

    /// Logs `what` unless a warning went out less than [`WARN_EVERY`] ago.
    fn warn_pressure(&self, what: &str) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != u64::MAX && now.saturating_sub(last) < every {
            return;
        }
        if self
            .last_warning_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                max_connections = self.max_connections,
                open = self
                    .max_connections
                    .saturating_sub(self.permits.available_permits()),
                idle_closed_to_make_room = self.evicted.load(Ordering::Relaxed),
                "{what}"
            );
        }
    }

    /// Waits for a connection slot at the cap: an idle connection is closed to make one, or,
    /// when none is idle, the first that becomes idle or closes. `None` when `shutdown` fires.
    ///
    /// The evicted connection hands its permit over: one is added at once and the evicted
    /// connection's is forgotten when it closes, so the new connection is served without waiting
    /// for the other's task to run and give its permit back (a round trip per accept). At most
    /// [`MAX_EVICTING`] evicted connections may still be closing; past that, the loop waits
    /// until one has closed.
    async fn make_room(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        self.warn_pressure(
            "connection cap reached: idle connections give way to new ones, new connections wait",
        );
        self.starved.store(true, Ordering::Release);
        let permit = loop {
            if let Ok(p) = self.permits.clone().try_acquire_owned() {
                break Some(p);
            }
            if self.evicting.load(Ordering::Acquire) < MAX_EVICTING && self.evict_idle(true) {
                self.permits.add_permits(1);
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break None,
                p = self.permits.clone().acquire_owned() => break p.ok(),
                // A connection became idle (or an evicted one closed): look again.
                _ = self.room.notified() => {}
            }
        };
        self.starved.store(false, Ordering::Release);
        permit
    }

    /// An evicted connection closed.
    pub(crate) fn eviction_closed(&self) {
        self.evicting.fetch_sub(1, Ordering::AcqRel);
        if self.starved.load(Ordering::Acquire) {
            self.room.notify_one();
        }
    }
}

/// The pause after an accept error: 5 ms, doubling to 500 ms, back to 5 ms after an accept.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(5);
    pub(crate) const MAX: Duration = Duration::from_millis(500);

    pub(crate) fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    pub(crate) fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// Errors of one connection that came and went before it was accepted: accept the next.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The accept loop.
pub(crate) async fn run<L: Accept>(
    mut listener: L,
    app: Router,
    cfg: ServerConfig,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared::new(&cfg));
    let http = conn::http1_builder();
    let tracker = TaskTracker::new();
    let mut backoff = Backoff::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let io = match accepted {
            Ok(io) => {
                backoff.reset();
                io
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Most likely out of descriptors: idle connections give way (a batch, unless
                // earlier ones are still closing), and the loop waits for a connection to close
                // or a short pause, whichever comes first.
                shared.warn_pressure(&format!(
                    "accept failed ({e}): closing idle connections and pausing"
                ));
                let closed = shared.closed.notified();
                let mut evicted = shared.evicting.load(Ordering::Acquire) > 0;
                if !evicted {
                    for _ in 0..MAX_EVICTING {
                        if !shared.evict_idle(false) {
                            break;
                        }
                        evicted = true;
                    }
                }
                let pause = backoff.next();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = closed, if evicted => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        let permit = match shared.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => match shared.make_room(&shutdown).await {
                Some(p) => p,
                None => break,
            },
        };
        let (id, state) = shared.register();
        tracker.spawn(conn::serve_connection(
            io,
            app.clone(),
            http.clone(),
            conn::Slot {
                id,
                state,
                shared: shared.clone(),
                permit: Some(permit),
            },
            shutdown.clone(),
        ));
    }
    // New connections are refused from here on.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A listener out of descriptors: every accept fails with `EMFILE`, and the time of each
    /// call is recorded.
    struct OutOfFiles {
        calls: Arc<StdMutex<Vec<Instant>>>,
        called: Arc<Notify>,
    }

    impl Accept for OutOfFiles {
        type Io = tokio::io::DuplexStream;

        async fn accept(&mut self) -> std::io::Result<Self::Io> {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Instant::now());
            self.called.notify_one();
            Err(std::io::Error::from_raw_os_error(24))
        }
    }

    /// With no idle connection to close, an accept loop out of descriptors pauses 5 ms, then
    /// 10, 20, … up to 500 ms between attempts: it never spins. (The clock is tokio's paused
    /// one: the pauses are exact and take no real time.)
    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_instead_of_spinning() {
        let calls = Arc::new(StdMutex::new(Vec::new()));
        let called = Arc::new(Notify::new());
        let listener = OutOfFiles {
            calls: calls.clone(),
            called: called.clone(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            listener,
            Router::new(),
            ServerConfig::default(),
            shutdown.clone(),
        ));
        while calls.lock().unwrap_or_else(|e| e.into_inner()).len() < 10 {
            called.notified().await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let calls = calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let gaps: Vec<u128> = calls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(gaps[..9], [5, 10, 20, 40, 80, 160, 320, 500, 500]);
    }

    #[test]
    fn the_backoff_resets() {
        let mut b = Backoff::new();
        assert_eq!(b.next(), Backoff::FIRST);
        assert_eq!(b.next(), Backoff::FIRST * 2);
        b.reset();
        assert_eq!(b.next(), Backoff::FIRST);
    }

    #[test]
    fn config_defaults_and_zero() {
        let c: ServerConfig = toml::from_str("").unwrap();
        assert_eq!(c, ServerConfig::default());
        assert_eq!(c.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(c.idle_timeout(), Duration::from_secs(60));
        assert_eq!(c.max_connections.get(), 1_024);
        let c: ServerConfig = toml::from_str("max_connections = 3").unwrap();
        assert_eq!(c.max_connections.get(), 3);
        let err = toml::from_str::<ServerConfig>("idle_timeout_ms = 0").unwrap_err();
        assert!(err.to_string().contains("nonzero"), "{err}");
        assert!(toml::from_str::<ServerConfig>("idle_timeout = 1").is_err());
        assert_eq!(ServerConfig::new(0, 0, 0), ServerConfig::new(1, 1, 1));
    }
}
