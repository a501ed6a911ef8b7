//! FFI records, enums and errors, and their conversions from core types.

use waxwing_core::features::presence::Availability as CoreAvailability;
use waxwing_core::store::{
    ConversationSummary, Direction as CoreDirection, MessageState as CoreMessageState,
    OpenStoreError, RosterEntry, StoreError, StoredMessage, Subscription as CoreSubscription,
};
use waxwing_core::{ClientError, ClientEvent, ConnectionState as CoreConnectionState};

/// A secret the app hands over (the account password). An object rather
/// than a string so that printing a config (Kotlin's data-class
/// `toString`, Swift's `description`) never shows it; wiped from memory
/// when dropped.
#[derive(uniffi::Object)]
pub struct Secret(zeroize::Zeroizing<String>);

#[uniffi::export]
impl Secret {
    #[uniffi::constructor]
    pub fn new(value: String) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self(zeroize::Zeroizing::new(value)))
    }
}

impl Secret {
    /// The secret itself, for the core.
    pub(crate) fn expose(&self) -> String {
        self.0.to_string()
    }
}

/// How to reach and open an account.
#[derive(uniffi::Record)]
pub struct AccountConfig {
    pub jid: String,
    pub password: std::sync::Arc<Secret>,
    /// Only for servers without Bind2, which pick the resource themselves.
    pub resource: Option<String>,
    /// Skip SRV and connect here.
    pub server_host: Option<String>,
    pub server_port: Option<u16>,
    pub direct_tls: bool,
    /// PEM of an extra CA to trust besides the platform's.
    pub extra_ca_pem: Option<String>,
    pub store_dir: String,
    /// 32 raw bytes, kept by the app in Keystore/Keychain.
    pub store_key: Vec<u8>,
    /// iOS, a store in an App Group container shared with a Notification
    /// Service Extension: 16 random bytes made once and kept with the key.
    /// The database then keeps SQLite's 32-byte header in plaintext, so iOS
    /// does not kill the suspended app for holding its lock (0xdead10cc).
    /// Chosen when the account is created; a store made one way does not
    /// open the other way.
    #[uniffi(default = None)]
    pub store_header_salt: Option<Vec<u8>>,
}

/// What can go wrong, as a small set an app can act on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum WaxwingError {
    #[error("authentication failed")]
    AuthenticationFailed,
    #[error("the server's certificate is not trusted")]
    UntrustedCertificate,
    /// The server rejected our TLS channel binding where binding has
    /// worked before, or what it advertised was altered on the way
    /// (XEP-0474): the connection may be intercepted. Not retried.
    #[error("the secure connection could not be verified")]
    ChannelBindingRejected,
    #[error("a secure connection could not be established")]
    Tls,
    #[error("network error")]
    Network,
    #[error("the server broke the protocol")]
    Protocol { detail: String },
    #[error("not connected")]
    NotConnected,
    #[error("not a valid JID")]
    InvalidJid,
    #[error("the server refused the request")]
    Refused { condition: String },
    #[error("the server did not answer in time")]
    Timeout,
    #[error("invalid configuration")]
    InvalidConfig { detail: String },
    #[error("store failure")]
    Store { failure: StoreFailure },
    #[error("the push payload could not be read")]
    Push { failure: crate::PushFailure },
    #[error("unknown OMEMO device")]
    UnknownDevice,
    /// The fingerprint given to verify a device is not its identity key's.
    #[error("the fingerprint does not match the device's key")]
    FingerprintMismatch,
    /// The device's identity key is not known yet: nothing to verify.
    #[error("the device's key is not known yet")]
    NoIdentityKey,
    /// The account object was closed (`close()` in Kotlin and Swift).
    #[error("the account was closed")]
    Closed,
}

/// Why the encrypted store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StoreFailure {
    InvalidKey,
    WrongKey,
    Corrupt,
    TooNew,
    DiskFull,
    Io,
    Database,
}

impl From<StoreError> for StoreFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull => StoreFailure::DiskFull,
            StoreError::Corrupt => StoreFailure::Corrupt,
            StoreError::Database(_) => StoreFailure::Database,
        }
    }
}

impl From<OpenStoreError> for StoreFailure {
    fn from(e: OpenStoreError) -> Self {
        match e {
            OpenStoreError::InvalidKey => StoreFailure::InvalidKey,
            OpenStoreError::WrongKey => StoreFailure::WrongKey,
            OpenStoreError::Corrupt => StoreFailure::Corrupt,
            OpenStoreError::TooNew { .. } => StoreFailure::TooNew,
            OpenStoreError::DiskFull => StoreFailure::DiskFull,
            OpenStoreError::Io(_) => StoreFailure::Io,
            OpenStoreError::Database(_) => StoreFailure::Database,
        }
    }
}

impl From<ClientError> for WaxwingError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::AuthenticationFailed => WaxwingError::AuthenticationFailed,
            ClientError::UntrustedCertificate => WaxwingError::UntrustedCertificate,
            ClientError::ChannelBindingRejected => WaxwingError::ChannelBindingRejected,
            ClientError::Tls => WaxwingError::Tls,
            ClientError::Network => WaxwingError::Network,
            ClientError::Protocol(detail) => WaxwingError::Protocol { detail },
            ClientError::NotConnected => WaxwingError::NotConnected,
            ClientError::InvalidJid => WaxwingError::InvalidJid,
            ClientError::Refused { condition } => WaxwingError::Refused { condition },
            ClientError::Timeout => WaxwingError::Timeout,
            ClientError::Config(detail) => WaxwingError::InvalidConfig { detail },
            ClientError::Store(e) => WaxwingError::Store { failure: e.into() },
            ClientError::OpenStore(e) => WaxwingError::Store { failure: e.into() },
            ClientError::UnknownDevice => WaxwingError::UnknownDevice,
            ClientError::FingerprintMismatch => WaxwingError::FingerprintMismatch,
            ClientError::NoIdentityKey => WaxwingError::NoIdentityKey,
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for WaxwingError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        WaxwingError::Protocol {
            detail: format!("callback failed: {}", e.reason),
        }
    }
}

/// Why the connection is down, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DisconnectReason {
    AuthenticationFailed,
    UntrustedCertificate,
    ChannelBindingRejected,
    Tls,
    Network,
    Protocol,
    Timeout,
    Store,
    Other,
}

impl From<&ClientError> for DisconnectReason {
    fn from(e: &ClientError) -> Self {
        match e {
            ClientError::AuthenticationFailed => DisconnectReason::AuthenticationFailed,
            ClientError::UntrustedCertificate => DisconnectReason::UntrustedCertificate,
            ClientError::ChannelBindingRejected => DisconnectReason::ChannelBindingRejected,
            ClientError::Tls => DisconnectReason::Tls,
            ClientError::Network | ClientError::NotConnected => DisconnectReason::Network,
            ClientError::Protocol(_) => DisconnectReason::Protocol,
            ClientError::Timeout => DisconnectReason::Timeout,
            ClientError::Store(_) | ClientError::OpenStore(_) => DisconnectReason::Store,
            _ => DisconnectReason::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    Connecting,
    Online {
        jid: String,
        round_trips: u32,
        authentication: String,
        resumed: bool,
    },
    /// `reason` is `None` after a logout.
    Disconnected {
        reason: Option<DisconnectReason>,
        will_retry: bool,
    },
}

impl From<CoreConnectionState> for ConnectionState {
    fn from(s: CoreConnectionState) -> Self {
        match s {
            CoreConnectionState::Connecting => ConnectionState::Connecting,
            CoreConnectionState::Online {
                jid,
                round_trips,
                authentication,
                resumed,
            } => ConnectionState::Online {
                jid,
                round_trips,
                authentication,
                resumed,
            },
            CoreConnectionState::Disconnected { error, will_retry } => {
                ConnectionState::Disconnected {
                    reason: error.as_ref().map(Into::into),
                    will_retry,
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Direction {
    Incoming,
    Outgoing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageState {
    Queued,
    Sent,
    Acked,
    Delivered,
    Failed,
    Received,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    /// Row id in the store.
    pub id: i64,
    /// Bare JID of the other side of the conversation.
    pub peer: String,
    pub direction: Direction,
    pub state: MessageState,
    pub sender: String,
    pub body: String,
    pub origin_id: Option<String>,
    pub stanza_id: Option<String>,
    pub timestamp_ms: i64,
    /// End-to-end encryption and the sending device's trust.
    pub security: crate::omemo::Security,
    /// Set for a group-chat message (`peer` is then the room): who wrote it.
    pub room: Option<RoomSender>,
}

/// What a room we create is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RoomKind {
    /// Members only, real JIDs visible to members (OMEMO works), unlisted.
    PrivateGroup,
    /// Open and listed, real JIDs only for moderators.
    Channel,
}

impl From<RoomKind> for waxwing_core::features::muc_admin::RoomKind {
    fn from(k: RoomKind) -> Self {
        match k {
            RoomKind::PrivateGroup => Self::PrivateGroup,
            RoomKind::Channel => Self::Channel,
        }
    }
}

/// A long-lived relation to a room (outcast: banned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RoomAffiliation {
    Owner,
    Admin,
    Member,
    Outcast,
    None,
}

impl From<RoomAffiliation> for waxwing_core::features::muc_admin::Affiliation {
    fn from(a: RoomAffiliation) -> Self {
        match a {
            RoomAffiliation::Owner => Self::Owner,
            RoomAffiliation::Admin => Self::Admin,
            RoomAffiliation::Member => Self::Member,
            RoomAffiliation::Outcast => Self::Outcast,
            RoomAffiliation::None => Self::None,
        }
    }
}

/// A bookmarked room (XEP-0402).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RoomBookmark {
    pub room: String,
    pub name: Option<String>,
    pub nick: String,
    pub autojoin: bool,
}

/// The writer of a group-chat message: the nick, and the real JID where
/// the room shows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RoomSender {
    pub nick: String,
    pub real_jid: Option<String>,
}

impl From<StoredMessage> for Message {
    fn from(m: StoredMessage) -> Self {
        Message {
            id: m.id,
            peer: m.peer,
            direction: match m.direction {
                CoreDirection::Incoming => Direction::Incoming,
                CoreDirection::Outgoing => Direction::Outgoing,
            },
            state: match m.state {
                CoreMessageState::Queued => MessageState::Queued,
                CoreMessageState::Sent => MessageState::Sent,
                CoreMessageState::Acked => MessageState::Acked,
                CoreMessageState::Delivered => MessageState::Delivered,
                CoreMessageState::Failed => MessageState::Failed,
                CoreMessageState::Received => MessageState::Received,
            },
            sender: m.sender,
            body: m.body,
            origin_id: m.origin_id,
            stanza_id: m.stanza_id,
            timestamp_ms: m.timestamp_ms,
            security: m.security.into(),
            room: m.room.map(|r| RoomSender {
                nick: r.nick,
                real_jid: r.real_jid,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Conversation {
    pub peer: String,
    pub unread_count: u32,
    pub last_message: Option<Message>,
}

impl From<ConversationSummary> for Conversation {
    fn from(c: ConversationSummary) -> Self {
        Conversation {
            peer: c.peer,
            unread_count: c.unread_count,
            last_message: c.last_message.map(Into::into),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Subscription {
    None,
    To,
    From,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    pub jid: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// We asked to see their presence and wait for an answer.
    pub pending_out: bool,
    pub groups: Vec<String>,
}

impl From<RosterEntry> for Contact {
    fn from(e: RosterEntry) -> Self {
        Contact {
            jid: e.jid,
            name: e.name,
            subscription: match e.subscription {
                CoreSubscription::None => Subscription::None,
                CoreSubscription::To => Subscription::To,
                CoreSubscription::From => Subscription::From,
                CoreSubscription::Both => Subscription::Both,
            },
            pending_out: e.pending_out,
            groups: e.groups,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Availability {
    Available,
    Chat,
    Away,
    ExtendedAway,
    DoNotDisturb,
    Unavailable,
}

impl From<Availability> for CoreAvailability {
    fn from(a: Availability) -> Self {
        match a {
            Availability::Available => CoreAvailability::Available,
            Availability::Chat => CoreAvailability::Chat,
            Availability::Away => CoreAvailability::Away,
            Availability::ExtendedAway => CoreAvailability::ExtendedAway,
            Availability::DoNotDisturb => CoreAvailability::DoNotDisturb,
            Availability::Unavailable => CoreAvailability::Unavailable,
        }
    }
}

impl From<CoreAvailability> for Availability {
    fn from(a: CoreAvailability) -> Self {
        match a {
            CoreAvailability::Available => Availability::Available,
            CoreAvailability::Chat => Availability::Chat,
            CoreAvailability::Away => Availability::Away,
            CoreAvailability::ExtendedAway => Availability::ExtendedAway,
            CoreAvailability::DoNotDisturb => Availability::DoNotDisturb,
            CoreAvailability::Unavailable => Availability::Unavailable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ResourcePresence {
    pub resource: String,
    pub availability: Availability,
    pub status: Option<String>,
}

impl From<waxwing_core::features::presence::ResourcePresence> for ResourcePresence {
    fn from(p: waxwing_core::features::presence::ResourcePresence) -> Self {
        ResourcePresence {
            resource: p.resource,
            availability: p.availability.into(),
            status: p.status,
        }
    }
}

/// Everything the UI hears about, after the store has it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Event {
    ConnectionChanged {
        state: ConnectionState,
    },
    MessageReceived {
        message: Message,
    },
    MessageStateChanged {
        message: Message,
    },
    RosterChanged {
        contacts: Vec<Contact>,
    },
    PresenceChanged {
        jid: String,
        resource: String,
        availability: Availability,
        status: Option<String>,
    },
    SubscriptionRequest {
        from: String,
    },
    /// History is complete up to now (archive catch-up done).
    CaughtUp,
    /// New OMEMO devices of `jid` appeared (see `omemoDevices`).
    OmemoDevicesChanged {
        jid: String,
    },
    /// A trust decision about one of `jid`'s devices was recorded.
    OmemoTrustChanged {
        jid: String,
        device_id: u32,
        trust: crate::omemo::DeviceTrust,
    },
    /// The app collected events more slowly than they came and the
    /// `count` oldest were dropped from the bounded buffer (the Kotlin and
    /// Swift layers emit this, the core never does): re-read what the UI
    /// shows from the store, which has everything.
    EventsDropped {
        count: u64,
    },
    /// The account's room bookmarks changed (see `bookmarks()`).
    BookmarksChanged,
    /// An invitation to `room` from `from`; nothing is joined by itself.
    RoomInvite {
        room: String,
        from: String,
        reason: Option<String>,
        password: Option<String>,
        direct: bool,
    },
    /// The subject of `room` (on joining, and when it changes).
    RoomSubject {
        room: String,
        subject: String,
    },
    /// We are in `room` (a group chat) as `nick`.
    RoomJoined {
        room: String,
        nick: String,
    },
    /// Who is in `room` now.
    RoomOccupantsChanged {
        room: String,
        occupants: Vec<RoomOccupant>,
    },
    /// We are no longer in `room` (`left`, `kicked`, `banned`,
    /// `disconnected`, …).
    RoomLeft {
        room: String,
        reason: String,
    },
}

impl From<ClientEvent> for Event {
    fn from(e: ClientEvent) -> Self {
        match e {
            ClientEvent::ConnectionChanged(state) => Event::ConnectionChanged {
                state: state.into(),
            },
            ClientEvent::MessageReceived(m) => Event::MessageReceived { message: m.into() },
            ClientEvent::MessageStateChanged(m) => Event::MessageStateChanged { message: m.into() },
            ClientEvent::RosterChanged(c) => Event::RosterChanged {
                contacts: c.into_iter().map(Into::into).collect(),
            },
            ClientEvent::PresenceChanged {
                jid,
                resource,
                availability,
                status,
            } => Event::PresenceChanged {
                jid,
                resource,
                availability: availability.into(),
                status,
            },
            ClientEvent::SubscriptionRequest { from } => Event::SubscriptionRequest { from },
            ClientEvent::CaughtUp => Event::CaughtUp,
            ClientEvent::OmemoDevicesChanged { jid } => Event::OmemoDevicesChanged { jid },
            ClientEvent::OmemoTrustChanged {
                jid,
                device_id,
                trust,
            } => Event::OmemoTrustChanged {
                jid,
                device_id,
                trust: trust.into(),
            },
            ClientEvent::RoomJoined { room, nick } => Event::RoomJoined { room, nick },
            ClientEvent::RoomOccupantsChanged { room, occupants } => Event::RoomOccupantsChanged {
                room,
                occupants: occupants.into_iter().map(Into::into).collect(),
            },
            ClientEvent::RoomLeft { room, reason } => Event::RoomLeft { room, reason },
            ClientEvent::RoomSubject { room, subject } => Event::RoomSubject { room, subject },
            ClientEvent::BookmarksChanged => Event::BookmarksChanged,
            ClientEvent::RoomInvite {
                room,
                from,
                reason,
                password,
                direct,
            } => Event::RoomInvite {
                room,
                from,
                reason,
                password,
                direct,
            },
        }
    }
}

/// Someone in a group chat, as the room shows them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RoomOccupant {
    pub nick: String,
    /// Where the room shows it (non-anonymous rooms).
    pub real_jid: Option<String>,
    /// XEP-0421: the same across nick changes.
    pub occupant_id: Option<String>,
    /// `owner`, `admin`, `member`, `outcast` or `none`.
    pub affiliation: String,
    /// `moderator`, `participant`, `visitor` or `none`.
    pub role: String,
}

impl From<waxwing_core::features::muc::Occupant> for RoomOccupant {
    fn from(o: waxwing_core::features::muc::Occupant) -> Self {
        Self {
            nick: o.nick,
            real_jid: o.real_jid.map(|j| j.to_string()),
            occupant_id: o.occupant_id,
            affiliation: o.affiliation,
            role: o.role,
        }
    }
}
