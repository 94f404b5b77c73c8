//! Timers, all running off the sandbox [`Clock`](crate::clock::Clock).
//!
//! One queue holds every timer (message lifecycle steps, webhook retries, chaos holds), ordered by
//! due time and then by insertion, so timers due at the same instant fire in the order they were
//! set. The system clock's driver sleeps until the earliest one; the manual clock fires them when
//! the control API advances time.

use crate::clock::Millis;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// What a timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The next lifecycle step of a message (ignored if the message moved on meanwhile).
    Message(String),
    /// A held-back webhook event becomes ready.
    EventReady(u64),
    /// A failed webhook delivery is retried.
    DeliveryRetry(u64),
    /// A template's review concludes.
    TemplateReview(String),
    /// A paused template's pause ends.
    TemplateUnpause(String),
    /// A paced template's held messages reach their time limit.
    PacingRelease(String),
    /// A number's messaging limit tier is reviewed (upgrade or downgrade).
    NumberReview(String),
}

/// A queue with room for more timers than this shrinks once it is mostly empty.
const SHRINK_ABOVE: usize = 4_096;

/// The timer queue.
#[derive(Debug, Default)]
pub struct Scheduler {
    heap: Mutex<BinaryHeap<Reverse<(Millis, u64, Timer)>>>,
    seq: AtomicU64,
    wake: Notify,
}

impl Scheduler {
    /// Sets a timer.
    pub fn at(&self, due: Millis, timer: Timer) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let earliest = {
            let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
            let before = heap.peek().map(|Reverse((d, _, _))| *d);
            heap.push(Reverse((due, seq, timer)));
            before.is_none_or(|b| due < b)
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&self, now: Millis) -> Option<(Millis, Timer)> {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        match heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {
                let popped = heap.pop().map(|Reverse((d, _, t))| (d, t));
                // After a burst, the queue gives its room back (in steps, not at every pop).
                if heap.capacity() > SHRINK_ABOVE && heap.len() < heap.capacity() / 8 {
                    let keep = heap.len() * 2;
                    heap.shrink_to(keep);
                }
                popped
            }
            _ => None,
        }
    }

    /// When the earliest timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        let heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        heap.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Timers set and not yet fired.
    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no timer is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every timer.
    pub fn clear(&self) {
        self.heap.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Resolves when a timer earlier than all others was set.
    pub async fn changed(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_due_then_insertion_order() {
        let s = Scheduler::default();
        s.at(20, Timer::EventReady(1));
        s.at(10, Timer::EventReady(2));
        s.at(10, Timer::EventReady(3));
        assert_eq!(s.next_due(), Some(10));
        assert_eq!(s.pop_due(15), Some((10, Timer::EventReady(2))));
        assert_eq!(s.pop_due(15), Some((10, Timer::EventReady(3))));
        assert_eq!(s.pop_due(15), None);
        assert_eq!(s.pop_due(20), Some((20, Timer::EventReady(1))));
    }
}
