//! Timers, all running off the sandbox [`Clock`](crate::clock::Clock).
//!
//! One queue holds every timer (message lifecycle steps, webhook retries, chaos holds), ordered by
//! due time and then by insertion, so timers due at the same instant fire in the order they were
//! set. The system clock's driver sleeps until the earliest one; the manual clock fires them when
//! the control API advances time.

use crate::clock::Millis;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
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

/// Timers by due millisecond, each millisecond's in the order they were set. Under load many
/// timers share a millisecond, so a set or a pop searches among the distinct due times (a few
/// thousand) instead of sifting every timer through a heap, and moves no timer but its own.
#[derive(Debug, Default)]
struct Queue {
    due: BTreeMap<Millis, VecDeque<Timer>>,
    len: usize,
}

/// The timer queue.
#[derive(Debug, Default)]
pub struct Scheduler {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Scheduler {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets a timer.
    pub fn at(&self, due: Millis, timer: Timer) {
        self.at_many(std::iter::once((due, timer)));
    }

    /// Sets several timers under one lock, in order.
    pub fn at_many(&self, timers: impl IntoIterator<Item = (Millis, Timer)>) {
        let earliest = {
            let mut q = self.queue();
            let before = q.due.first_key_value().map(|(d, _)| *d);
            let mut first = None::<Millis>;
            for (due, timer) in timers {
                q.due.entry(due).or_default().push_back(timer);
                q.len += 1;
                first = Some(first.map_or(due, |f| f.min(due)));
            }
            first.is_some_and(|f| before.is_none_or(|b| f < b))
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&self, now: Millis) -> Option<(Millis, Timer)> {
        let mut q = self.queue();
        let mut first = q.due.first_entry()?;
        let due = *first.key();
        if due > now {
            return None;
        }
        let timer = first.get_mut().pop_front();
        if first.get().is_empty() {
            first.remove();
        }
        if timer.is_some() {
            q.len -= 1;
        }
        timer.map(|t| (due, t))
    }

    /// When the earliest timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.queue().due.first_key_value().map(|(d, _)| *d)
    }

    /// Timers set and not yet fired.
    pub fn len(&self) -> usize {
        self.queue().len
    }

    /// True when no timer is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every timer.
    pub fn clear(&self) {
        let mut q = self.queue();
        q.due.clear();
        q.len = 0;
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
        assert_eq!(s.pop_due(20), None);
        assert!(s.is_empty());
    }

    #[test]
    fn timers_set_together_keep_their_order_and_count() {
        let s = Scheduler::default();
        s.at(30, Timer::EventReady(1));
        s.at_many([
            (30, Timer::EventReady(2)),
            (5, Timer::EventReady(3)),
            (30, Timer::EventReady(4)),
        ]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.next_due(), Some(5));
        let order: Vec<_> = std::iter::from_fn(|| s.pop_due(100)).collect();
        assert_eq!(
            order,
            [
                (5, Timer::EventReady(3)),
                (30, Timer::EventReady(1)),
                (30, Timer::EventReady(2)),
                (30, Timer::EventReady(4)),
            ]
        );
        s.at(1, Timer::EventReady(5));
        s.clear();
        assert_eq!((s.len(), s.next_due()), (0, None));
    }
}
