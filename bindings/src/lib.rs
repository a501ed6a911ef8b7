//! Waxwing's foreign API (uniffi): thin wrappers that convert between the
//! core's types and FFI records, enums and errors. No logic lives here.

mod android;
mod logging;
mod omemo;
mod push;
mod types;

use std::sync::{Arc, Mutex};

use waxwing_core::features::presence::SubscriptionAction;
use waxwing_core::store::{HistoryCursor, StoreKey};
use waxwing_core::ConnectOptions;

pub use logging::{init_logging, LogLevel, LogSink};
pub use omemo::*;
pub use push::*;
pub use types::*;

uniffi::setup_scaffolding!();

/// The platform certificate verifier has what it needs (see `android`).
fn platform_verifier_ready() {
    waxwing_core::platform_verifier_ready();
}

/// The core's configuration for an account record from the app.
fn core_config(config: AccountConfig) -> Result<waxwing_core::ClientConfig, WaxwingError> {
    let invalid_key = |_| WaxwingError::Store {
        failure: StoreFailure::InvalidKey,
    };
    let key: [u8; 32] = config
        .store_key
        .as_slice()
        .try_into()
        .map_err(invalid_key)?;
    let store_key = match &config.store_header_salt {
        None => StoreKey::from_bytes(key),
        Some(salt) => {
            let salt: [u8; 16] = salt.as_slice().try_into().map_err(invalid_key)?;
            StoreKey::with_plaintext_header(key, salt)
        }
    };
    let server = match (config.server_host, config.server_port) {
        (Some(host), Some(port)) => Some((host, port)),
        (Some(host), None) => Some((host, if config.direct_tls { 5223 } else { 5222 })),
        _ => None,
    };
    Ok(waxwing_core::ClientConfig {
        jid: config.jid,
        password: config.password.expose(),
        resource: config.resource,
        connect: ConnectOptions {
            server,
            direct_tls: config.direct_tls,
            extra_ca_pem: config.extra_ca_pem.map(String::into_bytes),
        },
        store_dir: config.store_dir.into(),
        store_key,
        initial_backoff: std::time::Duration::from_secs(1),
        sasl2: true,
    })
}

/// Receives the client's events on a Rust worker thread.
#[uniffi::export(with_foreign)]
pub trait ClientListener: Send + Sync {
    fn on_event(&self, event: Event);
}

struct ListenerBridge(Arc<dyn ClientListener>);

impl waxwing_core::EventListener for ListenerBridge {
    fn on_event(&self, event: waxwing_core::ClientEvent) {
        // A Kotlin/Swift listener that throws reaches us as a panic; it
        // must cost that one event, not the connection task.
        let call = std::panic::AssertUnwindSafe(|| self.0.on_event(event.into()));
        if std::panic::catch_unwind(call).is_err() {
            tracing::warn!("the app's event listener failed; the event is dropped");
        }
    }
}

/// One XMPP account: connection, messages, roster and the encrypted store.
#[derive(uniffi::Object)]
pub struct WaxwingClient {
    /// `None` once closed: every call then fails with `Closed`.
    inner: Mutex<Option<Arc<waxwing_core::Client>>>,
    own_jid: String,
}

impl WaxwingClient {
    /// The open account, or `Closed`. A call in flight keeps its own
    /// reference, so closing never pulls the account from under it.
    fn client(&self) -> Result<Arc<waxwing_core::Client>, WaxwingError> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(WaxwingError::Closed)
    }

    /// For the calls that cannot fail (getters and lifecycle hooks): they
    /// do nothing once closed.
    fn if_open(&self, f: impl FnOnce(&waxwing_core::Client)) {
        if let Ok(client) = self.client() {
            f(&client)
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl WaxwingClient {
    /// Opens the account's encrypted store (a raw 32-byte key from the
    /// platform keystore). Works offline; call `login` to connect.
    #[uniffi::constructor]
    pub fn open(
        config: AccountConfig,
        listener: Arc<dyn ClientListener>,
    ) -> Result<Arc<Self>, WaxwingError> {
        let core_config = core_config(config)?;
        let client = waxwing_core::Client::open(core_config, Arc::new(ListenerBridge(listener)))?;
        Ok(Arc::new(Self {
            own_jid: client.own_jid(),
            inner: Mutex::new(Some(Arc::new(client))),
        }))
    }

    /// Releases the account: the connection is dropped without ending the
    /// session (the server keeps it resumable, pushes keep coming) and the
    /// store is closed once calls in flight finish. Every later call fails
    /// with `Closed`; getters and lifecycle hooks do nothing.
    pub fn shutdown(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Connects; returns the bound full JID, or the first attempt's error.
    pub async fn login(&self) -> Result<String, WaxwingError> {
        Ok(self.client()?.login().await?)
    }

    pub async fn logout(&self) -> Result<(), WaxwingError> {
        self.client()?.logout().await;
        Ok(())
    }

    /// Disconnects but keeps the session on the server (and pushes coming)
    /// for the next login or the push handler, and closes the store until
    /// the next call that needs it. Call before the app is suspended.
    pub async fn suspend(&self) -> Result<(), WaxwingError> {
        self.client()?.suspend().await;
        Ok(())
    }

    /// Registers this device for push (XEP-0357) with the app server's JID
    /// and the node it issued for the FCM/APNs token; payloads are
    /// encrypted with a key only this device has.
    pub async fn enable_push(
        &self,
        service: String,
        node: String,
        secret: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .enable_push(&service, &node, secret.as_deref())
            .await?)
    }

    pub async fn disable_push(&self) -> Result<(), WaxwingError> {
        Ok(self.client()?.disable_push().await?)
    }

    pub fn own_jid(&self) -> String {
        self.own_jid.clone()
    }

    /// `Disconnected` once closed.
    pub fn connection_state(&self) -> ConnectionState {
        match self.client() {
            Ok(client) => client.connection_state().into(),
            Err(_) => waxwing_core::ConnectionState::Disconnected {
                error: None,
                will_retry: false,
            }
            .into(),
        }
    }

    /// Stores the message and sends it now or on the next login.
    pub fn send_message(&self, to: String, body: String) -> Result<Message, WaxwingError> {
        Ok(self.client()?.send_message(&to, &body)?.into())
    }

    /// Joins a group chat as `nick` (creating it if it does not exist);
    /// returns the nick the room gave us. Refusals (a taken nick, a
    /// members-only room, a ban) are `Refused` with the reason.
    pub async fn join_room(&self, room: String, nick: String) -> Result<String, WaxwingError> {
        Ok(self.client()?.join_room(&room, &nick).await?)
    }

    /// Bookmarks `room` on the account (XEP-0402): with `autojoin` every
    /// device joins it (now and at each login); without, they leave it.
    /// `None` keeps the bookmark's name or nick.
    pub async fn set_bookmark(
        &self,
        room: String,
        name: Option<String>,
        nick: Option<String>,
        autojoin: bool,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .set_bookmark(&room, name, nick, autojoin)
            .await?)
    }

    pub async fn remove_bookmark(&self, room: String) -> Result<(), WaxwingError> {
        Ok(self.client()?.remove_bookmark(&room).await?)
    }

    /// The account's bookmarked rooms, as last fetched or edited.
    pub fn bookmarks(&self) -> Result<Vec<RoomBookmark>, WaxwingError> {
        Ok(self
            .client()?
            .bookmarks()?
            .into_iter()
            .map(|b| RoomBookmark {
                room: b.room,
                name: b.name,
                nick: b.nick,
                autojoin: b.autojoin,
            })
            .collect())
    }

    /// Invites `jid` to `room`, through the room (in a members-only room an
    /// owner's invitation makes them a member) or, with `direct`, from us.
    pub fn invite_to_room(
        &self,
        room: String,
        jid: String,
        reason: Option<String>,
        direct: bool,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .invite_to_room(&room, &jid, reason.as_deref(), direct)?)
    }

    /// Declines an invitation to `room` from `inviter` (a mediated one).
    pub fn decline_invite(
        &self,
        room: String,
        inviter: String,
        reason: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .decline_invite(&room, &inviter, reason.as_deref())?)
    }

    /// Creates `room` as a private group or a channel (persistent,
    /// archived) and joins it; `Refused("room-exists")` if it exists.
    pub async fn create_room(
        &self,
        room: String,
        nick: String,
        kind: RoomKind,
        name: Option<String>,
    ) -> Result<String, WaxwingError> {
        Ok(self
            .client()?
            .create_room(&room, &nick, kind.into(), name)
            .await?)
    }

    /// Gives `jid` an affiliation with `room` (the room's admins and owners
    /// may): a member of a private group, an admin, an outcast (banned).
    pub async fn set_room_affiliation(
        &self,
        room: String,
        jid: String,
        affiliation: RoomAffiliation,
        reason: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .set_room_affiliation(&room, &jid, affiliation.into(), reason.as_deref())
            .await?)
    }

    /// Everyone who is a member, admin or owner of `room`, by bare JID.
    pub async fn room_members(&self, room: String) -> Result<Vec<String>, WaxwingError> {
        Ok(self.client()?.room_members(&room).await?)
    }

    pub async fn kick_from_room(
        &self,
        room: String,
        nick: String,
        reason: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .kick_from_room(&room, &nick, reason.as_deref())
            .await?)
    }

    pub async fn destroy_room(
        &self,
        room: String,
        reason: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .destroy_room(&room, reason.as_deref())
            .await?)
    }

    /// Changes our nick in `room`; a taken nick is `Refused` and leaves us
    /// in the room under the old one.
    pub async fn change_nick(&self, room: String, nick: String) -> Result<String, WaxwingError> {
        Ok(self.client()?.change_nick(&room, &nick).await?)
    }

    pub fn leave_room(&self, room: String) -> Result<(), WaxwingError> {
        Ok(self.client()?.leave_room(&room)?)
    }

    /// Stores a message to a room we joined; it goes out while we are in
    /// the room and is `Delivered` once the room reflects it.
    pub fn send_room_message(&self, room: String, body: String) -> Result<Message, WaxwingError> {
        Ok(self.client()?.send_room_message(&room, &body)?.into())
    }

    pub fn set_presence(
        &self,
        availability: Availability,
        status: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self.client()?.set_presence(availability.into(), status)?)
    }

    pub async fn add_contact(&self, jid: String, name: Option<String>) -> Result<(), WaxwingError> {
        Ok(self.client()?.add_contact(&jid, name).await?)
    }

    pub async fn rename_contact(&self, jid: String, name: String) -> Result<(), WaxwingError> {
        Ok(self.client()?.rename_contact(&jid, name).await?)
    }

    pub async fn remove_contact(&self, jid: String) -> Result<(), WaxwingError> {
        Ok(self.client()?.remove_contact(&jid).await?)
    }

    pub fn request_subscription(&self, jid: String) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .subscription(&jid, SubscriptionAction::Subscribe)?)
    }

    pub fn approve_subscription(&self, jid: String) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .subscription(&jid, SubscriptionAction::Approve)?)
    }

    pub fn deny_subscription(&self, jid: String) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .subscription(&jid, SubscriptionAction::Deny)?)
    }

    pub fn cancel_subscription(&self, jid: String) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .subscription(&jid, SubscriptionAction::Unsubscribe)?)
    }

    /// A contact's online resources, as last announced; empty while offline
    /// (and once closed).
    pub fn presence(&self, jid: String) -> Vec<ResourcePresence> {
        let mut resources = Vec::new();
        self.if_open(|client| {
            resources = client.presence(&jid).into_iter().map(Into::into).collect()
        });
        resources
    }

    pub fn roster(&self) -> Result<Vec<Contact>, WaxwingError> {
        Ok(self
            .client()?
            .roster()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Newest first; pass the last message of a page to get the one before.
    pub fn history(
        &self,
        peer: String,
        before: Option<Message>,
        limit: u32,
    ) -> Result<Vec<Message>, WaxwingError> {
        let cursor = before.map(|m| HistoryCursor { id: m.id });
        Ok(self
            .client()?
            .history(&peer, cursor, limit)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub fn conversations(&self) -> Result<Vec<Conversation>, WaxwingError> {
        Ok(self
            .client()?
            .conversations()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub fn mark_read(&self, peer: String) -> Result<(), WaxwingError> {
        Ok(self.client()?.mark_read(&peer)?)
    }

    /// Call when the app comes to the foreground (`true`) or goes to the
    /// background: the server is told (XEP-0352) to hold unimportant traffic.
    pub fn set_foreground(&self, foreground: bool) {
        self.if_open(|client| client.set_foreground(foreground))
    }

    /// Call when the platform reports connectivity again: a waiting
    /// reconnect happens now.
    pub fn network_available(&self) {
        self.if_open(|client| client.network_available())
    }

    /// Call when the platform reports the network is gone: no reconnect is
    /// tried until `network_available`; the session stays resumable.
    pub fn network_lost(&self) {
        self.if_open(|client| client.network_lost())
    }
}

/// Support diagnostics: panics on purpose so apps (and our tests) can check
/// that a Rust panic reaches them as an exception, not a crash. Declared
/// fallible because uniffi's Swift calls an infallible function with `try!`,
/// which turns a panic into a crash; a fallible one throws
/// `UniffiInternalError.rustPanic` (Kotlin throws `InternalException` either way).
#[uniffi::export]
pub fn diagnostics_trigger_panic() -> Result<(), WaxwingError> {
    panic!("diagnostics_trigger_panic was called");
}

/// The library's version.
#[uniffi::export]
pub fn waxwing_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
