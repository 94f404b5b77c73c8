//! Why `mynah-serve` keeps its own header read timeout: hyper's (1.x, `http1::Builder::
//! header_read_timeout`) starts whenever the connection waits for a request head, so on a
//! kept-alive connection it also counts the idle time after an answer. With hyper's alone, a
//! 10 s header timeout would close every kept-alive connection after 10 idle seconds, and an idle
//! timeout longer than the header timeout could not exist. If this test fails, hyper changed and
//! the reasoning in `src/lib.rs` needs a second look.

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[tokio::test]
async fn hyper_header_read_timeout_also_counts_idle_keep_alive_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(300));
        let svc = service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let _ = b.serve_connection(TokioIo::new(stream), svc).await;
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    // The client sends nothing more: the connection is idle, no head is being read.
    let answered = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("hyper closes the idle connection at its header read timeout");
    let idle = closed - answered;
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}
