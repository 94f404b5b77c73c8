//! A first end-to-end pass: send over real HTTP, see the lifecycle at a real receiver.

mod common;
use common::*;

#[tokio::test]
async fn text_message_lifecycle_reaches_the_receiver_signed() {
    let rx = Receiver::start().await;
    let h = Harness::start(config(&rx.url)).await;
    let (status, body) = h.send_360(text("+49 151 12345678", "hi")).await;
    assert_eq!(status, 200, "{body}");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_string();
    h.advance(10.0).await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    assert_eq!(
        rx.statuses(),
        vec![
            (wamid.clone(), "sent".into()),
            (wamid.clone(), "delivered".into()),
            (wamid, "read".into())
        ]
    );
    for r in rx.received() {
        assert!(signature_ok(&r, SECRET));
    }
    h.shutdown().await;
}
