//! One connection: its phase (fresh, reading a head, busy, draining, idle, closing), the wrappers that move it from
//! phase to phase, and the driver that serves it and enforces the timeouts.
//!
//! Every phase change happens while the driver polls the hyper connection (the socket is read
//! and flushed, the service called, the response body dropped inside that poll), so the driver
//! re-reads the phase after each poll and arms its one timer accordingly. The only change from
//! outside is an eviction (`Evicted` or `HandedOver`), set by the accept loop when an idle
//! connection must give way, with a wake-up.

use crate::Shared;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Accepted; not a byte yet. The header read timeout runs from the accept; evictable.
    Fresh = 0,
    /// A request head is arriving. The header read timeout runs (from the accept for the first
    /// request, from the first byte for a later one).
    Head = 1,
    /// A request is being served, its response not sent to the end. No timeout.
    Busy = 2,
    /// The response's last bytes are written, not all handed to the socket yet (a client slow
    /// to read). The idle timeout runs; not evictable, so no answer is cut short to make room.
    Draining = 3,
    /// Kept alive between requests. The idle timeout runs; evictable.
    Idle = 4,
    /// Closing: timed out, evicted or shut down. Final; no request starts any more.
    Doomed = 5,
    /// Closing, evicted to make room (after an accept error). Final, as `Doomed`.
    Evicted = 6,
    /// Closing, evicted to make room at the cap, its permit handed to the connection it made
    /// room for: the permit is forgotten when it closes. Final, as `Doomed`.
    HandedOver = 7,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Busy,
            3 => Phase::Draining,
            4 => Phase::Idle,
            5 => Phase::Doomed,
            6 => Phase::Evicted,
            _ => Phase::HandedOver,
        }
    }

    /// Closing, one way or the other.
    pub(crate) fn closing(self) -> bool {
        matches!(self, Phase::Doomed | Phase::Evicted | Phase::HandedOver)
    }
}

/// A connection's phase, when it began, and the wake-up of an eviction.
pub(crate) struct ConnState {
    phase: AtomicU8,
    /// When the phase's clock started, µs since the server's epoch: the accept (fresh, and the
    /// head of the first request), the first byte of a later head, the end of the last response.
    since_us: AtomicU64,
    /// Requests started and not finished (one at a time in HTTP/1.1; counted to be safe).
    busy: AtomicUsize,
    doom: Notify,
}

impl ConnState {
    pub(crate) fn new(now_us: u64) -> ConnState {
        ConnState {
            phase: AtomicU8::new(Phase::Fresh as u8),
            since_us: AtomicU64::new(now_us),
            busy: AtomicUsize::new(0),
            doom: Notify::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(crate) fn since_us(&self) -> u64 {
        self.since_us.load(Ordering::Acquire)
    }

    fn shift(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Dooms the connection if it is still in `from`, and wakes its driver.
    pub(crate) fn doom(&self, from: Phase) -> bool {
        self.close_from(from, Phase::Doomed)
    }

    /// Evicts the connection if it is still in `from` (fresh or idle), and wakes its driver;
    /// with `hand_over`, its permit goes to the connection it makes room for.
    pub(crate) fn evict(&self, from: Phase, hand_over: bool) -> bool {
        let to = if hand_over {
            Phase::HandedOver
        } else {
            Phase::Evicted
        };
        matches!(from, Phase::Fresh | Phase::Idle) && self.close_from(from, to)
    }

    fn close_from(&self, from: Phase, to: Phase) -> bool {
        if !from.closing() && self.shift(from, to) {
            self.doom.notify_one();
            true
        } else {
            false
        }
    }

    /// Bytes arrived: a request head begins. False when the connection is doomed (the bytes are
    /// then dropped, so no request starts on a connection being closed).
    fn bytes_arrived(&self, shared: &Shared) -> bool {
        loop {
            match self.phase() {
                // The first request's timer keeps running from the accept.
                Phase::Fresh => {
                    if self.shift(Phase::Fresh, Phase::Head) {
                        return true;
                    }
                }
                Phase::Idle => {
                    self.since_us.store(shared.now_us(), Ordering::Release);
                    if self.shift(Phase::Idle, Phase::Head) {
                        return true;
                    }
                }
                Phase::Head | Phase::Busy | Phase::Draining => return true,
                Phase::Doomed | Phase::Evicted | Phase::HandedOver => return false,
            }
        }
    }
}

/// A socket that tells its connection's state when bytes arrive, and reads nothing more once
/// the connection is doomed.
struct Watched<S> {
    io: S,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.state.phase().closing() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before && !this.state.bytes_arrived(&this.shared) {
            // Doomed meanwhile: read as the end of the stream.
            buf.set_filled(before);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        // Hyper flushes the socket once its own buffer is empty: the answer has left.
        if this.state.phase() == Phase::Draining && this.state.shift(Phase::Draining, Phase::Idle) {
            this.shared.became_idle();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A request being served: the connection is busy until this is dropped (with the response
/// body, once it has been written to the end, or with the handler's future if it never
/// answered); then it drains until hyper has handed every byte to the socket.
struct Busy {
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl Busy {
    fn begin(state: Arc<ConnState>, shared: Arc<Shared>) -> Busy {
        state.busy.fetch_add(1, Ordering::AcqRel);
        loop {
            let phase = state.phase();
            if phase == Phase::Busy || phase.closing() || state.shift(phase, Phase::Busy) {
                break;
            }
        }
        Busy { state, shared }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.state.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state
                .since_us
                .store(self.shared.now_us(), Ordering::Release);
            self.state.shift(Phase::Busy, Phase::Draining);
        }
    }
}

/// A response body that keeps its connection busy until it is dropped.
pub(crate) struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The router as hyper's service, marking the connection busy for each request.
struct Service {
    router: TowerToHyperService<Router>,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> ServiceFuture {
        let busy = Busy::begin(self.state.clone(), self.shared.clone());
        let answer = self.router.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// HTTP/1.1 with keep-alive; hyper's header read timeout off (the driver keeps its own).
pub(crate) fn http1_builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(true).header_read_timeout(None);
    b
}

/// A connection's place on the server: its entry in the registry and its permit, both given
/// back when it is dropped (the permit is forgotten instead when it was handed over).
pub(crate) struct Slot {
    pub(crate) id: u64,
    pub(crate) state: Arc<ConnState>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit goes (back, or for good) before an eviction's close is counted, so the
        // accept loop that wakes on it finds the room it waited for.
        match self.state.phase() {
            Phase::HandedOver => {
                if let Some(p) = self.permit.take() {
                    p.forget();
                }
                self.shared.eviction_closed();
            }
            Phase::Evicted => {
                drop(self.permit.take());
                self.shared.eviction_closed();
            }
            _ => {}
        }
        self.shared.unregister(self.id);
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// Hyper finished with it (the client closed, `Connection: close`, an error).
    Served(hyper::Result<()>),
    /// A request head did not arrive in time.
    HeaderTimeout,
    /// Kept alive and unused for too long.
    IdleTimeout,
    /// An idle connection closed to make room for another.
    Evicted,
    /// Idle when the server shut down.
    Shutdown,
}

/// Serves one connection until it ends.
pub(crate) async fn serve_connection<S>(
    io: S,
    app: Router,
    http: http1::Builder,
    slot: Slot,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = slot.state.clone();
    let shared = slot.shared.clone();
    let io = TokioIo::new(Watched {
        io,
        state: state.clone(),
        shared: shared.clone(),
    });
    let service = Service {
        router: TowerToHyperService::new(app),
        state: state.clone(),
        shared: shared.clone(),
    };
    let conn = http.serve_connection(io, service);
    let end = drive(conn, &state, &shared, &shutdown).await;
    match end {
        End::Served(Ok(())) => {}
        End::Served(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        other => tracing::debug!(end = ?other, "connection closed by the server"),
    }
    drop(slot);
}

/// Polls the connection and enforces the phase's timeout, an eviction and the shutdown.
async fn drive<S>(
    conn: http1::Connection<TokioIo<Watched<S>>, Service>,
    state: &ConnState,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = pin!(conn);
    let mut doomed = pin!(state.doom.notified());
    let mut stop = pin!(shutdown.cancelled());
    let mut stopping = false;
    let mut timer = pin!(tokio::time::sleep(shared.header_read_timeout));
    let mut armed = None;
    poll_fn(|cx| {
        loop {
            if state.phase().closing() {
                return Poll::Ready(End::Evicted);
            }
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(End::Served(r));
            }
            if !stopping && stop.as_mut().poll(cx).is_ready() {
                stopping = true;
                for idle in [Phase::Fresh, Phase::Idle] {
                    if state.doom(idle) {
                        return Poll::Ready(End::Shutdown);
                    }
                }
                // A request is under way: it finishes, then the connection closes.
                conn.as_mut().graceful_shutdown();
                continue;
            }
            let phase = state.phase();
            let deadline = match phase {
                Phase::Fresh | Phase::Head => {
                    Some((shared.header_read_timeout, End::HeaderTimeout))
                }
                Phase::Draining | Phase::Idle => Some((shared.idle_timeout, End::IdleTimeout)),
                Phase::Busy => None,
                Phase::Doomed | Phase::Evicted | Phase::HandedOver => continue,
            };
            if let Some((timeout, end)) = deadline {
                let at = shared.deadline(state.since_us(), timeout);
                if armed != Some(at) {
                    timer.as_mut().reset(at);
                    armed = Some(at);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    if state.doom(phase) {
                        return Poll::Ready(end);
                    }
                    // The phase moved on meanwhile: look again.
                    continue;
                }
            }
            if doomed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(End::Evicted);
            }
            return Poll::Pending;
        }
    })
    .await
}
