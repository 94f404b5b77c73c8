//! Media uploads follow the platform's size limit of each type (Meta Cloud API media reference:
//! image 5 MB, video and audio 16 MB, documents 100 MB, stickers 100 KB static and 500 KB
//! animated), are streamed and refused as soon as the file passes its limit, and count against
//! the sandbox's media quota (`[media]`).

mod common;
use common::*;

use mynah_sandbox::config::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;
const B: &str = "media-limits-boundary-3vQ8";

/// A multipart body: `messaging_product`, then the file part (with its own Content-Type when
/// given), then the `type` field when given.
fn multipart(part_type: Option<&str>, declared: Option<&str>, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{B}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n")
            .as_bytes(),
    );
    if let Some(t) = part_type {
        body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n");
    if let Some(t) = declared {
        body.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{t}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    body
}

/// Uploads through the 360dialog path (`cloud`: the Cloud path); returns status and JSON.
async fn upload(h: &Harness, cloud: bool, body: Vec<u8>) -> (u16, Value) {
    let (url, auth) = if cloud {
        (
            format!("{}/v23.0/{PNID}/media", h.base),
            ("authorization", format!("Bearer {TOKEN}")),
        )
    } else {
        (
            format!("{}/media", h.base),
            ("D360-API-KEY", KEY.to_string()),
        )
    };
    let r = h
        .http
        .post(url)
        .header(auth.0, auth.1)
        .header("content-type", format!("multipart/form-data; boundary={B}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts 400 code 131053 in the Graph envelope; returns the details.
fn refused_131053(status: u16, body: &Value, what: &str) -> String {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"]["code"], 131053, "{what}: {body}");
    body["error"]["error_data"]["details"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A WebP header: `VP8X` with the animation flag when `animated`, padded to `len` bytes.
fn webp(len: usize, animated: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&((len as u32).saturating_sub(8)).to_le_bytes());
    v.extend_from_slice(b"WEBPVP8X");
    v.extend_from_slice(&10u32.to_le_bytes());
    v.push(if animated { 0x02 } else { 0x00 });
    v.resize(len, 0);
    v
}

#[tokio::test]
async fn uploads_take_each_type_up_to_its_limit() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;

    // 3 MiB: past the request body limit that refused uploads at about 2 MiB.
    let png = vec![7u8; 3 * MIB];
    let (s, b) = upload(&h, false, multipart(Some("image/png"), None, &png)).await;
    assert_eq!(s, 200, "3 MiB PNG: {b}");
    let id = b["id"].as_str().unwrap().to_string();
    let (s, info) = h.get_cloud(&format!("/v23.0/{id}")).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["file_size"], (3 * MIB).to_string());

    // Exactly the image limit is fine through the Cloud path; one byte more is not.
    let (s, b) = upload(
        &h,
        true,
        multipart(Some("image/jpeg"), Some("image/jpeg"), &vec![1; 5 * MIB]),
    )
    .await;
    assert_eq!(s, 200, "5 MiB JPEG: {b}");
    let (s, b) = upload(
        &h,
        true,
        multipart(
            Some("image/jpeg"),
            Some("image/jpeg"),
            &vec![1; 5 * MIB + 1],
        ),
    )
    .await;
    let details = refused_131053(s, &b, "5 MiB + 1 JPEG");
    assert!(
        details.contains("5242880") && details.contains("media.image_max_bytes"),
        "{details}"
    );

    // Stickers: 100 KiB static, 500 KiB animated (told apart by the WebP header).
    let (s, b) = upload(
        &h,
        false,
        multipart(Some("image/webp"), None, &webp(100 * 1024, false)),
    )
    .await;
    assert_eq!(s, 200, "static sticker at its limit: {b}");
    let (s, b) = upload(
        &h,
        false,
        multipart(Some("image/webp"), None, &webp(100 * 1024 + 1, false)),
    )
    .await;
    let details = refused_131053(s, &b, "static sticker over 100 KiB");
    assert!(
        details.contains("102400") && details.contains("static sticker"),
        "{details}"
    );
    let (s, b) = upload(
        &h,
        false,
        multipart(Some("image/webp"), None, &webp(400 * 1024, true)),
    )
    .await;
    assert_eq!(s, 200, "animated sticker under 500 KiB: {b}");
    let (s, b) = upload(
        &h,
        false,
        multipart(Some("image/webp"), None, &webp(500 * 1024 + 1, true)),
    )
    .await;
    let details = refused_131053(s, &b, "animated sticker over 500 KiB");
    assert!(
        details.contains("512000") && details.contains("animated_sticker_max_bytes"),
        "{details}"
    );

    // Video and audio: 16 MiB.
    for mime in ["video/mp4", "audio/ogg"] {
        let (s, b) = upload(
            &h,
            false,
            multipart(Some(mime), None, &vec![0; 16 * MIB + 1]),
        )
        .await;
        let details = refused_131053(s, &b, mime);
        assert!(
            details.contains("16777216") && details.contains(mime),
            "{details}"
        );
    }

    // The `type` field wins over the part's own type, as before.
    let (s, b) = upload(
        &h,
        false,
        multipart(
            Some("application/octet-stream"),
            Some("application/pdf"),
            &vec![0; 6 * MIB],
        ),
    )
    .await;
    assert_eq!(s, 200, "a 6 MiB PDF declared by the type field: {b}");

    // Unknown types: 131053 "not a supported media type", whether in the part or the field.
    for (part, declared) in [
        (Some("image/gif"), None),
        (Some("image/png"), Some("application/x-msdownload")),
        (None, None),
    ] {
        let (s, b) = upload(&h, false, multipart(part, declared, b"GIF89a")).await;
        if part.is_none() {
            assert_eq!(s, 400, "{b}");
            assert_eq!(b["error"]["code"], 131008, "no type at all: {b}");
            continue;
        }
        let details = refused_131053(s, &b, &format!("{part:?} {declared:?}"));
        assert!(details.contains("not a supported media type"), "{details}");
    }

    // Not multipart at all: 415, code 100.
    let r = h
        .http
        .post(format!("{}/media", h.base))
        .header("D360-API-KEY", KEY)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], 100, "{b}");

    // JSON routes keep their 1 MiB limit.
    let big = serde_json::json!({ "messaging_product": "whatsapp", "to": "4915123456789", "type": "text", "text": { "body": "a".repeat(2 * MIB) } });
    let (s, b) = h.send_360(big).await;
    assert_eq!(s, 413, "{b}");
    h.shutdown().await;
}

#[tokio::test]
async fn limits_and_the_quota_are_configurable() {
    let rx = Receiver::start().await;
    let mut cfg: Config = config(&rx.url);
    cfg.media.document_max_bytes = 1_000;
    cfg.media.max_total_bytes = 10_000;
    let h = Harness::start(cfg).await;

    let (s, b) = upload(
        &h,
        false,
        multipart(Some("text/plain"), None, &[b'x'; 1_001]),
    )
    .await;
    let details = refused_131053(s, &b, "a document over the configured limit");
    assert!(
        details.contains("1000") && details.contains("media.document_max_bytes"),
        "{details}"
    );

    let first = h.upload_png(&[1; 6_000]).await;
    let (s, b) = upload(&h, false, multipart(Some("image/png"), None, &[2; 6_000])).await;
    let details = refused_131053(s, &b, "past the quota");
    assert!(
        details.contains("media.max_total_bytes") && details.contains("full"),
        "{details}"
    );
    // Deleting makes room again.
    let r = h
        .http
        .delete(format!("{}/{first}", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    h.upload_png(&[3; 6_000]).await;

    // Expired media make room by themselves: uploads live 30 days.
    h.advance(31.0 * 86_400.0).await;
    h.upload_png(&[4; 6_000]).await;
    h.shutdown().await;
}

/// A client that sends more than the type allows and then stalls (never ends the body) gets its
/// answer: the server counts the file as it comes and stops at the limit instead of waiting for
/// (and buffering) the whole body.
#[tokio::test]
async fn an_oversized_file_is_refused_while_it_is_still_coming() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let addr = h.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /media HTTP/1.1\r\nHost: {addr}\r\nD360-API-KEY: {KEY}\r\nContent-Type: multipart/form-data; boundary={B}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let part = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
    );
    let chunk = |data: &[u8]| {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    };
    stream.write_all(&chunk(part.as_bytes())).await.unwrap();
    let block = vec![0u8; 256 * 1024];
    for _ in 0..(6 * MIB / block.len()) {
        stream.write_all(&chunk(&block)).await.unwrap();
    }
    // No end of the part, no end of the body: the client waits for the answer.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if answer.len() >= end + 4 + len {
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was still open");
    let raw = String::from_utf8_lossy(&answer).to_string();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    let details = refused_131053(400, &v, "a stalled oversized upload");
    assert!(details.contains("5242880"), "{details}");

    // The server goes on.
    let (s, b) = h.send_360(text("+49 151 23456789", "still here")).await;
    assert_eq!(s, 200, "{b}");
    h.shutdown().await;
}
