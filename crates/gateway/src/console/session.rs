//! Console sessions: who signed in, their CSRF token, when the session ends; and the brake on
//! failed sign-ins. Everything here lives in memory (a restart signs everyone out) and runs on
//! real time, not the gateway's clock (which may be manual).
//!
//! A session token is 32 bytes from the operating system's RNG, given to the browser once (in
//! an `HttpOnly` cookie) and kept here only as its SHA-256, so the map is looked up by a hash and
//! a token never sits in memory beside what it unlocks. Keys are compared as SHA-256 digests in
//! constant time, whatever their lengths.

use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions kept at most; signing in beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 1_000;

/// Failed sign-ins within [`FAILURE_WINDOW`] after which every sign-in is refused until the
/// oldest of them ages out.
pub const MAX_FAILURES: usize = 20;
/// See [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Each failed sign-in is answered this much later per failure in the window (at most
/// [`MAX_FAILURE_DELAY`]): a person mistyping waits a moment, a script guessing crawls.
pub const FAILURE_DELAY: Duration = Duration::from_millis(250);
/// See [`FAILURE_DELAY`].
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(3);

/// 32 random bytes from the OS, as 64 hex digits.
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the operating system's random number generator failed: {e}"))?;
    Ok(hex::encode(bytes))
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant-time equality of two secrets of any length (their digests are compared).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (digest(a), digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who (a `[[console.users]]` name, or `gateway` for the gateway key).
    pub user: String,
    /// The token every change must carry (`X-CSRF-Token`).
    pub csrf: String,
    /// When it was made.
    pub created: Instant,
    /// Its last request.
    pub seen: Instant,
}

/// The sessions and the failed sign-ins.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    idle: Duration,
    map: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<VecDeque<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sessions {
    /// Sessions that end `ttl` after sign-in or `idle` after their last request.
    pub fn new(ttl: Duration, idle: Duration) -> Sessions {
        Sessions {
            ttl,
            idle,
            map: Mutex::new(HashMap::new()),
            failures: Mutex::new(VecDeque::new()),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.created) < self.ttl && now.duration_since(s.seen) < self.idle
    }

    /// A new session for `user`: its token (for the cookie) and the session.
    pub fn create(&self, user: &str) -> Result<(String, Session), String> {
        let token = random_token()?;
        let now = Instant::now();
        let session = Session {
            user: user.to_string(),
            csrf: random_token()?,
            created: now,
            seen: now,
        };
        let mut map = lock(&self.map);
        map.retain(|_, s| self.alive(s, now));
        if map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k);
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of a token, its last request moved to now; an ended one is forgotten.
    pub fn touch(&self, token: &str) -> Option<Session> {
        let key = digest(token);
        let now = Instant::now();
        let mut map = lock(&self.map);
        let alive = map.get(&key).map(|s| self.alive(s, now))?;
        if !alive {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.seen = now;
        Some(s.clone())
    }

    /// When a session ends if nothing more happens (for the page), from now.
    pub fn remaining(&self, s: &Session) -> Duration {
        let now = Instant::now();
        let by_ttl = self.ttl.saturating_sub(now.duration_since(s.created));
        let by_idle = self.idle.saturating_sub(now.duration_since(s.seen));
        by_ttl.min(by_idle)
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        lock(&self.map).remove(&digest(token));
    }

    /// How many sessions are alive.
    pub fn count(&self) -> usize {
        let now = Instant::now();
        lock(&self.map)
            .values()
            .filter(|s| self.alive(s, now))
            .count()
    }

    /// Whether sign-ins are refused for now, and for how long.
    pub fn locked_out(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut f = lock(&self.failures);
        while f
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            f.pop_front();
        }
        if f.len() < MAX_FAILURES {
            return None;
        }
        f.front()
            .map(|t| FAILURE_WINDOW.saturating_sub(now.duration_since(*t)))
    }

    /// Notes a failed sign-in; how long to wait before answering it.
    pub fn failed(&self) -> Duration {
        let mut f = lock(&self.failures);
        f.push_back(Instant::now());
        if f.len() > MAX_FAILURES {
            f.pop_front();
        }
        let n = u32::try_from(f.len()).unwrap_or(u32::MAX);
        FAILURE_DELAY.saturating_mul(n).min(MAX_FAILURE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_secrets_compare_by_value() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(same_secret("k-1234567890", "k-1234567890"));
        assert!(!same_secret("k-1234567890", "k-1234567891"));
        assert!(!same_secret("short", "k-1234567890"));
    }

    #[test]
    fn sessions_end_when_idle_or_old_and_on_sign_out() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_millis(50));
        let (token, made) = s.create("ana").unwrap();
        let found = s.touch(&token).unwrap();
        assert_eq!(
            (found.user.as_str(), found.csrf.as_str()),
            ("ana", made.csrf.as_str())
        );
        assert!(s.touch("not-a-token").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.touch(&token).is_none(), "idle too long");
        let (token, _) = s.create("ana").unwrap();
        assert_eq!(s.count(), 1);
        s.remove(&token);
        assert!(s.touch(&token).is_none());
        let old = Sessions::new(Duration::from_millis(30), Duration::from_secs(60));
        let (token, _) = old.create("ben").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(old.touch(&token).is_none(), "past its lifetime");
    }

    #[test]
    fn repeated_failures_slow_down_then_lock_out() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(s.failed(), FAILURE_DELAY);
        assert_eq!(s.failed(), FAILURE_DELAY * 2);
        assert!(s.locked_out().is_none());
        for _ in 0..MAX_FAILURES {
            assert!(s.failed() <= MAX_FAILURE_DELAY);
        }
        let wait = s.locked_out().expect("locked out");
        assert!(wait <= FAILURE_WINDOW && wait > Duration::from_secs(200));
    }
}
