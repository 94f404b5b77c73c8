//! The live feed of the control API (`GET /_mynah/events`, server-sent events): what changed —
//! a message, a webhook attempt, a template, a user, a number, the clock, the fault rules — so
//! the console can follow without polling.
//!
//! Nobody listening costs the send path one relaxed atomic load per operation: the engine notes
//! what it changed only while [`Feed::watching`] (its `Effects::changed`), and the hub builds an
//! attempt's summary only then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Items a slow listener may fall behind by before it is told to resynchronise.
const CAPACITY: usize = 4_096;

/// One feed item: an SSE event name and its JSON data.
#[derive(Debug, Clone)]
pub struct Item {
    /// `message`, `attempt`, `template`, `user`, `number`, `clock`, `faults`, `rules`, `receivers`,
    /// `reset`.
    pub kind: &'static str,
    /// The JSON data.
    pub data: Arc<str>,
}

/// The feed: a broadcast channel and a count of its listeners.
pub struct Feed {
    listeners: Arc<AtomicUsize>,
    tx: broadcast::Sender<Item>,
    closed: CancellationToken,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// A feed nobody listens to yet.
    pub fn new() -> Feed {
        let (tx, _) = broadcast::channel(CAPACITY);
        Feed {
            listeners: Arc::new(AtomicUsize::new(0)),
            tx,
            closed: CancellationToken::new(),
        }
    }

    /// The listener count, shared with the world (it notes changes only while it is above zero).
    pub fn listeners(&self) -> Arc<AtomicUsize> {
        self.listeners.clone()
    }

    /// Whether anyone listens.
    pub fn watching(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Sends an item to every listener (nothing when nobody listens).
    pub fn publish(&self, kind: &'static str, data: &serde_json::Value) {
        if !self.watching() {
            return;
        }
        let data: Arc<str> = Arc::from(data.to_string());
        let _ = self.tx.send(Item { kind, data });
    }

    /// A new listener; it counts until dropped.
    pub fn subscribe(&self) -> Subscription {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Subscription {
            rx: self.tx.subscribe(),
            listeners: self.listeners.clone(),
            closed: self.closed.clone(),
        }
    }

    /// Ends every stream (the server is shutting down).
    pub fn close(&self) {
        self.closed.cancel();
    }
}

/// What a listener gets next.
pub enum Next {
    /// An item.
    Item(Item),
    /// It fell behind and missed items: it should read the state again.
    Lagged(u64),
    /// The feed is closed.
    Closed,
}

/// One listener of the feed.
pub struct Subscription {
    rx: broadcast::Receiver<Item>,
    listeners: Arc<AtomicUsize>,
    closed: CancellationToken,
}

impl Subscription {
    /// The next item; waits for it.
    pub async fn next(&mut self) -> Next {
        tokio::select! {
            _ = self.closed.cancelled() => Next::Closed,
            r = self.rx.recv() => match r {
                Ok(item) => Next::Item(item),
                Err(broadcast::error::RecvError::Lagged(n)) => Next::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => Next::Closed,
            },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_are_counted_and_items_reach_them() {
        let feed = Feed::new();
        assert!(!feed.watching());
        feed.publish("clock", &serde_json::json!({"now_ms": 1}));
        let mut sub = feed.subscribe();
        assert!(feed.watching());
        feed.publish("clock", &serde_json::json!({"now_ms": 2}));
        match sub.next().await {
            Next::Item(i) => assert_eq!((i.kind, &*i.data), ("clock", r#"{"now_ms":2}"#)),
            _ => panic!("expected an item"),
        }
        drop(sub);
        assert!(!feed.watching());
    }

    #[tokio::test]
    async fn close_ends_the_streams() {
        let feed = Feed::new();
        let mut sub = feed.subscribe();
        feed.close();
        assert!(matches!(sub.next().await, Next::Closed));
    }
}
