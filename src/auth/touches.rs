//! Uses of API keys and sessions, written to the catalog by the per-second background flush
//! rather than by the requests (`AuthCache::take_touches`).

use std::collections::HashMap;

use super::AuthCache;
use crate::catalog::identity;
use crate::error::Result;

/// Uses of API keys (id → time) and sessions (token hash → time) the next flush writes.
#[derive(Default)]
pub struct Touches {
    pub keys: HashMap<String, i64>,
    pub sessions: HashMap<String, i64>,
}

impl Touches {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.sessions.is_empty()
    }

    /// Writes them (inside the flush's transaction).
    pub fn write(&self, conn: &rusqlite::Connection) -> Result<()> {
        self.keys.iter().try_for_each(|(id, at)| identity::touch_api_key(conn, id, *at))?;
        self.sessions.iter().try_for_each(|(hash, at)| identity::touch_session(conn, hash, *at))
    }
}

impl AuthCache {
    /// The API key and session uses noted since the last call, for the background flush to
    /// write (with the usage counts, in one catalog transaction). A request used to write its
    /// key's `last_used_at` or its session's `last_seen_at` itself: under a load spread over
    /// thousands of keys, those writes from several workers collided in the catalog, each
    /// collision a busy-handler sleep of 1 ms or more (about 6,000 in 20 s of a Zipf load over
    /// 10,000 tenants).
    pub fn take_touches(&self) -> Touches {
        std::mem::take(&mut *self.touches.lock())
    }

    /// Puts back uses whose write failed, for the next flush.
    pub fn restore_touches(&self, failed: Touches) {
        let mut guard = self.touches.lock();
        let pending = &mut *guard;
        for (mine, theirs) in [(&mut pending.keys, failed.keys), (&mut pending.sessions, failed.sessions)] {
            for (id, at) in theirs {
                let e = mine.entry(id).or_insert(at);
                *e = (*e).max(at);
            }
        }
    }

    /// A key's `last_used_at` including a use not yet written to the catalog.
    pub fn last_used(&self, key: &identity::ApiKey) -> Option<i64> {
        let pending = self.touches.lock().keys.get(&key.id).copied();
        key.last_used_at.max(pending)
    }
}
