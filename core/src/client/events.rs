//! Events the client delivers to the app, always after the store is updated.

use crate::features::presence::Availability;
use crate::store::{RosterEntry, StoredMessage};

use super::ClientError;

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    Online {
        /// The full JID the server bound.
        jid: String,
        /// XMPP request/response round trips the login took.
        round_trips: u32,
        /// SASL mechanism used, e.g. `SCRAM-SHA-256-PLUS`.
        authentication: String,
        /// The previous stream was resumed (XEP-0198): nothing was missed.
        resumed: bool,
    },
    /// Offline; `error` is `None` after a logout. `will_retry` says whether
    /// the client reconnects by itself.
    Disconnected {
        error: Option<ClientError>,
        will_retry: bool,
    },
}

/// Something the UI should reflect.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    ConnectionChanged(ConnectionState),
    MessageReceived(StoredMessage),
    MessageStateChanged(StoredMessage),
    RosterChanged(Vec<RosterEntry>),
    PresenceChanged {
        jid: String,
        resource: String,
        availability: Availability,
        status: Option<String>,
    },
    SubscriptionRequest {
        from: String,
    },
    /// The archive catch-up after (re)connecting finished (or a resumed
    /// stream made it unnecessary): the history is complete up to now.
    CaughtUp,
    /// New OMEMO devices of `jid` (a contact, or our own account) appeared;
    /// see `Client::omemo_devices` for their fingerprints and trust.
    OmemoDevicesChanged {
        jid: String,
    },
    /// A trust decision about one of `jid`'s OMEMO devices was recorded.
    OmemoTrustChanged {
        jid: String,
        device_id: u32,
        trust: crate::store::DeviceTrust,
    },
    /// An invitation to `room` from `from` (through the room, or direct,
    /// XEP-0249). Nothing is joined by itself: `join_room` accepts,
    /// `decline_invite` declines a mediated one.
    RoomInvite {
        room: String,
        from: String,
        reason: Option<String>,
        password: Option<String>,
        direct: bool,
    },
    /// The account's room bookmarks changed (fetched at login, or edited
    /// here or on another device): see `Client::bookmarks`.
    BookmarksChanged,
    /// The subject of `room` (sent by the room when we join, §7.2.15, and
    /// whenever it changes).
    RoomSubject {
        room: String,
        subject: String,
    },
    /// We are in `room` (XEP-0045), as `nick` (the room may have changed it).
    RoomJoined {
        room: String,
        nick: String,
    },
    /// Who is in `room` now.
    RoomOccupantsChanged {
        room: String,
        occupants: Vec<crate::features::muc::Occupant>,
    },
    /// We are no longer in `room`: `left`, `kicked`, `banned`,
    /// `affiliationchanged`, `membersonly`, `shutdown`, `technical`, or
    /// `disconnected` (a new session; rooms are not rejoined yet).
    RoomLeft {
        room: String,
        reason: String,
    },
}

/// Receives the client's events; called from the client's task, so keep it
/// quick (hand over to the UI thread).
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: ClientEvent);
}
