//! Roles: tasks that one gateway instance on a shared database runs at a time (webhook intake,
//! template sync, one pusher per app webhook endpoint). A role is held by a lease in the store
//! ([`Store::lease_role`]) that its holder renews; an instance that dies hands its roles on when
//! the lease ends. On an exclusive store (SQLite) every role is this instance's.

use crate::clock::{Clock, Millis};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a role's lease lasts: an instance that dies hands its roles on after this.
pub const ROLE_LEASE_MS: Millis = 5_000;

/// This instance's roles.
pub struct Roles<S> {
    store: S,
    clock: Arc<Clock>,
    /// This instance's name in role leases (random per start).
    instance: String,
    /// The roles held, with the end of each lease.
    held: Mutex<HashMap<String, Millis>>,
}

impl<S: Store> Roles<S> {
    /// The roles of a new instance named `instance`.
    pub fn new(store: S, clock: Arc<Clock>, instance: String) -> Roles<S> {
        Roles {
            store,
            clock,
            instance,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// This instance's name in role leases.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance plays `role`. Always on an exclusive store; on a shared one, while
    /// it holds the role's lease ([`ROLE_LEASE_MS`]), renewed once a third of it has passed. It
    /// stops acting on a lease two thirds before its end, so another instance can take over
    /// only after this one has stopped (with clocks that agree to within that margin).
    pub async fn plays(&self, role: &str) -> bool {
        if !self.store.shared() {
            return true;
        }
        let now = self.clock.now();
        if let Some(until) = self.lock().get(role)
            && now < until - ROLE_LEASE_MS * 2 / 3
        {
            return true;
        }
        let held = match self
            .store
            .lease_role(role, &self.instance, now, now + ROLE_LEASE_MS)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(role, error = %e, "renewing a role's lease failed");
                false
            }
        };
        let mut roles = self.lock();
        if held {
            if roles
                .insert(role.to_string(), now + ROLE_LEASE_MS)
                .is_none()
            {
                tracing::info!(role, instance = %self.instance, "this instance plays the role");
            }
        } else if roles.remove(role).is_some() {
            tracing::info!(role, instance = %self.instance, "another instance plays the role now");
        }
        held
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Millis>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}
