//! What every part of a running connection uses: the store, the app's
//! listener and our own address.

use std::sync::{Arc, Mutex, MutexGuard};

use jid::BareJid;

use crate::client::events::{ClientEvent, EventListener};
use crate::store::Store;

pub(crate) struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub listener: Arc<dyn EventListener>,
    pub own: BareJid,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the app. Never call it while holding [`Shared::store`]: a
    /// listener that reads the store would deadlock the connection.
    pub fn emit(&self, event: ClientEvent) {
        self.listener.on_event(event);
    }

    /// Whether `jid` (bare) is us or a contact allowed to see our presence.
    pub fn may_see_presence(&self, jid: &str) -> bool {
        jid == self.own.as_str() || self.store().may_see_presence(jid).unwrap_or(false)
    }
}
