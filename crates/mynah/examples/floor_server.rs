//! The floor of the sandbox's send path: a bare `hyper` HTTP/1.1 server on the same runtime and
//! allocator as `mynah`, which reads each request's body whole and answers the 360dialog send
//! response of the same shape and size (the `to` of the body echoed, a wamid of the sandbox's
//! length). No routing, no JSON parsing, no state: whatever the sandbox does per request beyond
//! this is its own cost. It also serves as a webhook receiver (every POST gets that answer).
//!
//! ```text
//! cargo build --release -p mynah --example floor_server
//! target/release/examples/floor_server 127.0.0.1:8390 &
//! wrk -t2 -c64 -d20s -s crates/mynah/examples/send.lua http://127.0.0.1:8390/messages
//! ```
//!
//! `docs/benchmarks.md` compares it with `mynah sandbox` under the same load.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::convert::Infallible;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The send response for a body: its `to` echoed as the contact's input and `wa_id`, a wamid as
/// long as the sandbox's.
fn answer(body: &[u8]) -> Bytes {
    const KEY: &[u8] = b"\"to\":\"";
    let to = memchr::memmem::find(body, KEY)
        .map(|at| &body[at + KEY.len()..])
        .and_then(|rest| memchr::memchr(b'"', rest).map(|end| &rest[..end]))
        .and_then(|to| std::str::from_utf8(to).ok())
        .unwrap_or("0");
    Bytes::from(format!(
        "{{\"messaging_product\":\"whatsapp\",\"contacts\":[{{\"input\":\"{to}\",\"wa_id\":\"{to}\"}}],\"messages\":[{{\"id\":\"wamid.HBgNNDkxNTEwMDAwMDAwMRUCABEYEDRDQjE3MTAzMzZGMzU4ODgA\",\"message_status\":\"accepted\"}}]}}"
    ))
}

async fn serve(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut resp = Response::new(Full::new(answer(&body)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8390".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("floor server on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => continue,
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(serve),
                    )
                    .await;
            });
        }
    })
}
