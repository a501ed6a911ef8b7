//! Presence on a running connection: our own (announced on a fresh
//! session), the contacts' (kept in the presence book and told), and
//! subscription requests.

use std::sync::{Arc, Mutex};

use minidom::Element;

use crate::client::connection::account::AccountState;
use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::features::presence::{self, PresenceBook, PresenceUpdate, ResourcePresence};

pub(crate) struct Presences {
    book: Arc<Mutex<PresenceBook>>,
}

impl Presences {
    pub fn new(book: Arc<Mutex<PresenceBook>>) -> Self {
        Self { book }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PresenceBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Our presence as the app last set it (RFC 6121 §4.2: sent after the
    /// roster request on a fresh session).
    pub fn own_presence(&self, shared: &Shared) -> Element {
        let saved = shared.store().get(AccountState::PRESENCE).ok().flatten();
        let (availability, status) = crate::client::decode_presence(saved);
        presence::own_presence(availability, status.as_deref())
    }

    /// A fresh session: the server sends every presence again. (A resumed
    /// one keeps the server's view, and ours.)
    pub fn on_fresh_session(&self) {
        self.book().clear();
    }

    /// The connection ended. After a drop presences stay (a resumed session
    /// sends nothing again, a fresh one clears them); after a logout
    /// nothing will resume.
    pub fn on_disconnected(&self, logged_out: bool) {
        if logged_out {
            self.book().clear();
        }
    }

    pub fn on_presence(&self, shared: &Shared, element: &Element) {
        match presence::parse(element) {
            PresenceUpdate::Resource {
                from,
                resource,
                availability,
                status,
            } => {
                let entry = ResourcePresence {
                    resource: resource.clone(),
                    availability,
                    status: status.clone(),
                };
                self.book().apply(&from, entry);
                shared.emit(ClientEvent::PresenceChanged {
                    jid: from.to_string(),
                    resource,
                    availability,
                    status,
                })
            }
            PresenceUpdate::SubscriptionRequest { from } => {
                shared.emit(ClientEvent::SubscriptionRequest {
                    from: from.to_string(),
                })
            }
            PresenceUpdate::SubscriptionChanged { .. } | PresenceUpdate::Ignored => {}
        }
    }
}
