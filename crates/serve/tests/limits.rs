//! The server loop over real sockets: the header read timeout, the idle timeout, the connection
//! cap, event streams, graceful shutdown. Timeouts are short (a few hundred ms); every wait is
//! for an event (an answer, a close) with a generous bound, never a sleep standing in for one.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use mynah_serve::{ServerConfig, serve};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long any awaited event may take before the test fails.
const BOUND: Duration = Duration::from_secs(5);

/// What the `/hold` handler shares with the test.
#[derive(Default)]
struct Gate {
    started: Notify,
    release: Notify,
    log: Mutex<Vec<&'static str>>,
}

impl Gate {
    fn note(&self, what: &'static str) {
        self.log.lock().unwrap().push(what);
    }

    fn log(&self) -> Vec<&'static str> {
        self.log.lock().unwrap().clone()
    }
}

struct Server {
    addr: SocketAddr,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// A body: "a", then a pause of `gap` on the server, then "b".
struct TwoChunks {
    step: u8,
    gap: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for TwoChunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"a")))))
            }
            1 => match self.gap.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.step = 2;
                    Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"b")))))
                }
                Poll::Pending => Poll::Pending,
            },
            _ => Poll::Ready(None),
        }
    }
}

async fn start(cfg: ServerConfig) -> Server {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let gap = cfg.idle_timeout() * 3;
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/hold",
            get(move || {
                let g = g.clone();
                async move {
                    g.note("hold started");
                    g.started.notify_one();
                    g.release.notified().await;
                    g.note("hold released");
                    "held"
                }
            }),
        )
        .route(
            "/stream",
            get(move || async move {
                Body::new(TwoChunks {
                    step: 0,
                    gap: Box::pin(tokio::time::sleep(gap)),
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { serve(listener, app, &cfg, stop).await });
    Server {
        addr,
        gate,
        shutdown,
        task,
    }
}

/// Sends `GET path` and reads the answer (`Content-Length` bodies); returns status line + body.
async fn get_on(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::timeout(BOUND, read_answer(s))
        .await
        .expect("an answer in time")
}

async fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                let status = head.lines().next().unwrap_or_default().to_string();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]);
                return format!("{status} {body}");
            }
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the answer was complete");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the server closes `s` (end of stream or reset); when it happened.
async fn closed(s: &mut TcpStream) -> Instant {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(BOUND, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection in time")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let srv = start(ServerConfig::new(300, 5_000, 16)).await;
    let mut s = connect(srv.addr).await;
    let t0 = Instant::now();
    let took = closed(&mut s).await - t0;
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(3_000),
        "{} ms",
        ms(took)
    );
}

#[tokio::test]
async fn a_slowloris_is_closed_after_the_header_timeout_however_steadily_it_trickles() {
    let srv = start(ServerConfig::new(400, 5_000, 16)).await;
    let s = connect(srv.addr).await;
    let t0 = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        let head = b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut sent = 0;
        for b in head {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let mut chunk = [0u8; 64];
    let end = tokio::time::timeout(BOUND, async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("closed in time");
    let took = end - t0;
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_millis(3_000),
        "{} ms",
        ms(took)
    );
    let sent = trickle.await.unwrap();
    assert!(sent >= 5, "the slowloris kept sending ({sent} bytes)");
}

#[tokio::test]
async fn a_kept_alive_connection_closes_after_the_idle_timeout_not_the_header_timeout() {
    let srv = start(ServerConfig::new(300, 1_200, 16)).await;
    let mut s = connect(srv.addr).await;
    assert_eq!(get_on(&mut s, "/ok").await, "HTTP/1.1 200 OK ok");
    assert_eq!(get_on(&mut s, "/ok").await, "HTTP/1.1 200 OK ok");
    let t1 = Instant::now();
    let took = closed(&mut s).await - t1;
    assert!(
        took >= Duration::from_millis(1_150) && took < Duration::from_millis(4_000),
        "{} ms",
        ms(took)
    );
}

#[tokio::test]
async fn a_later_request_has_the_header_timeout_from_its_first_byte() {
    let srv = start(ServerConfig::new(300, 5_000, 16)).await;
    let mut s = connect(srv.addr).await;
    assert_eq!(get_on(&mut s, "/ok").await, "HTTP/1.1 200 OK ok");
    // Idle for twice the header timeout (the scenario, not a wait for a timer): still open.
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(b"GET /ok HTT").await.unwrap();
    let t2 = Instant::now();
    let took = closed(&mut s).await - t2;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(3_000),
        "{} ms",
        ms(took)
    );
}

#[tokio::test]
async fn a_streaming_answer_is_not_idle() {
    let srv = start(ServerConfig::new(300, 300, 16)).await;
    let mut s = connect(srv.addr).await;
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Chunked: "a", a pause of three idle timeouts on the server, "b", the last chunk.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(BOUND, async {
        while find(&buf, b"\r\n0\r\n\r\n").is_none() {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "cut: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the whole stream in time");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.contains("\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"), "{text}");
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_gives_way() {
    let srv = start(ServerConfig::new(5_000, 5_000, 2)).await;
    let mut k1 = connect(srv.addr).await;
    assert_eq!(get_on(&mut k1, "/ok").await, "HTTP/1.1 200 OK ok");
    let mut k2 = connect(srv.addr).await;
    assert_eq!(get_on(&mut k2, "/ok").await, "HTTP/1.1 200 OK ok");
    let mut n = connect(srv.addr).await;
    assert_eq!(get_on(&mut n, "/ok").await, "HTTP/1.1 200 OK ok");
    closed(&mut k1).await;
    // k2, idle for less long than k1, stayed; used again, it is now idle for less long than n.
    assert_eq!(get_on(&mut k2, "/ok").await, "HTTP/1.1 200 OK ok");
    let mut m = connect(srv.addr).await;
    assert_eq!(get_on(&mut m, "/ok").await, "HTTP/1.1 200 OK ok");
    closed(&mut n).await;
    assert_eq!(get_on(&mut k2, "/ok").await, "HTTP/1.1 200 OK ok");
}

#[tokio::test]
async fn a_connection_that_never_sent_a_request_gives_way_first() {
    let srv = start(ServerConfig::new(5_000, 5_000, 2)).await;
    let mut kept = connect(srv.addr).await;
    assert_eq!(get_on(&mut kept, "/ok").await, "HTTP/1.1 200 OK ok");
    let mut silent = connect(srv.addr).await;
    let mut n = connect(srv.addr).await;
    assert_eq!(get_on(&mut n, "/ok").await, "HTTP/1.1 200 OK ok");
    closed(&mut silent).await;
    assert_eq!(get_on(&mut kept, "/ok").await, "HTTP/1.1 200 OK ok");
}

#[tokio::test]
async fn at_the_cap_with_nothing_idle_a_new_connection_waits_its_turn() {
    let srv = start(ServerConfig::new(5_000, 5_000, 1)).await;
    let mut a = connect(srv.addr).await;
    a.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(BOUND, srv.gate.started.notified())
        .await
        .expect("the held request started");
    let mut b = connect(srv.addr).await;
    b.write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // The only slot is busy: b is not served (a bounded look, not a wait for a timer).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.readable())
            .await
            .is_err(),
        "b was answered while the cap was full"
    );
    srv.gate.release.notify_one();
    assert_eq!(
        tokio::time::timeout(BOUND, read_answer(&mut a))
            .await
            .unwrap(),
        "HTTP/1.1 200 OK held"
    );
    // Once a's answer is sent, a is idle: it gives way to b.
    assert_eq!(
        tokio::time::timeout(BOUND, read_answer(&mut b))
            .await
            .unwrap(),
        "HTTP/1.1 200 OK ok"
    );
    closed(&mut a).await;
    assert_eq!(srv.gate.log(), ["hold started", "hold released"]);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_lets_requests_in_flight_finish() {
    let srv = start(ServerConfig::new(5_000, 5_000, 16)).await;
    let mut idle = connect(srv.addr).await;
    assert_eq!(get_on(&mut idle, "/ok").await, "HTTP/1.1 200 OK ok");
    let mut held = connect(srv.addr).await;
    held.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(BOUND, srv.gate.started.notified())
        .await
        .expect("the held request started");
    srv.shutdown.cancel();
    closed(&mut idle).await;
    assert!(
        !srv.task.is_finished(),
        "serve returned with a request in flight"
    );
    srv.gate.release.notify_one();
    let answer = tokio::time::timeout(BOUND, read_answer(&mut held))
        .await
        .unwrap();
    assert_eq!(answer, "HTTP/1.1 200 OK held");
    closed(&mut held).await;
    tokio::time::timeout(BOUND, srv.task)
        .await
        .expect("serve returns once the last connection closed")
        .unwrap();
    assert!(
        TcpStream::connect(srv.addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn timeouts_too_large_for_the_clock_are_a_year() {
    let srv = start(ServerConfig::new(u64::MAX, u64::MAX, 4)).await;
    let mut s = connect(srv.addr).await;
    assert_eq!(get_on(&mut s, "/ok").await, "HTTP/1.1 200 OK ok");
    assert_eq!(get_on(&mut s, "/ok").await, "HTTP/1.1 200 OK ok");
}
