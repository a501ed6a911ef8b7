//! The engine's boundary: how it is configured ([`SessionConfig`]), what
//! the driver feeds in ([`Input`]) and drains ([`Output`]), and what the
//! layers above learn ([`SessionEvent`]).

use std::time::{Duration, Instant};

use jid::{BareJid, FullJid};
use minidom::Element;

use super::stream_features::Features;
use super::{fast, SessionError};
use crate::xml;

/// What the engine needs to know to log in.
#[derive(Clone)]
pub struct SessionConfig {
    pub jid: BareJid,
    pub password: String,
    /// Resource to request; the server may change it.
    pub resource: String,
    /// Whether to enable XEP-0198.
    pub stream_management: bool,
    /// Idle time after which we check the connection is alive.
    pub ping_interval: Duration,
    /// How long a ping (or the close handshake) may go unanswered.
    pub ping_timeout: Duration,
    /// Upper bound for the whole negotiation.
    pub negotiation_timeout: Duration,
    pub max_element_bytes: usize,
    /// XEP-0388 user-agent id: stable per installation, so the server can
    /// tie FAST tokens and the Bind2 resource to this device.
    pub client_id: String,
    /// XEP-0388 user-agent software name, also the Bind2 resource tag.
    pub software: String,
    /// Use SASL2 when offered (off only to exercise the classic path).
    pub sasl2: bool,
    /// Enable XEP-0280 carbons inline with Bind2 when the server can.
    pub carbons: bool,
    /// A SCRAM (or FAST) login has worked with this account before: PLAIN,
    /// which hands the server the password, is refused from now on (a
    /// server or a man in the middle offering only PLAIN is a downgrade).
    pub refuse_plain: bool,
    /// A channel-bound login (SCRAM -PLUS, FAST -EXPR) has worked with this
    /// account: a rejected binding is then an error, never a retry without.
    pub channel_binding_pinned: bool,
    /// This server advertises -PLUS but rejected our binding once, and the
    /// unbound retry worked (trust on first use): log in unbound at once.
    pub server_rejects_binding: bool,
}

impl Drop for SessionConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl std::fmt::Debug for SessionConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    pub fn new(jid: BareJid, password: String, resource: String) -> Self {
        Self {
            jid,
            password,
            resource,
            stream_management: true,
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(30),
            negotiation_timeout: Duration::from_secs(30),
            max_element_bytes: xml::DEFAULT_MAX_ELEMENT_BYTES,
            client_id: String::new(),
            software: "Waxwing".to_owned(),
            sasl2: true,
            carbons: true,
            refuse_plain: false,
            channel_binding_pinned: false,
            server_rejects_binding: false,
        }
    }
}

/// TLS facts the driver reports once the handshake is done.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// RFC 9266 `tls-exporter` value; `None` below TLS 1.3.
    pub channel_binding: Option<Vec<u8>>,
}

/// Something that happened outside the engine.
pub enum Input<'a> {
    /// The TCP connection is up; `tls` is set when it is direct TLS
    /// (XEP-0368). `nonce` is fresh randomness for SASL.
    Connected {
        tls: Option<TlsInfo>,
        nonce: String,
    },
    /// The STARTTLS handshake completed.
    TlsEstablished(TlsInfo),
    Received(&'a [u8]),
    /// The deadline from the last [`Output::Wait`] passed.
    Timeout,
    /// The socket closed or failed.
    Disconnected,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Output {
    Transmit(Vec<u8>),
    /// Upgrade the socket to TLS now, then report [`Input::TlsEstablished`].
    StartTls,
    Event(SessionEvent),
    /// Close the socket (after writing everything transmitted so far).
    CloseSocket,
    /// Nothing more to do until input arrives or the instant passes.
    Wait(Option<Instant>),
}

/// What the layers above learn from the engine.
#[derive(Debug)]
pub enum SessionEvent {
    /// Negotiation finished; stanzas can flow.
    Online {
        jid: FullJid,
        stream_management: bool,
        roster_versioning: bool,
        /// Request/response round trips from the stream header to here.
        round_trips: u32,
        /// The SASL mechanism that authenticated us, e.g. `SCRAM-SHA-256-PLUS`,
        /// or `HT-SHA-256-EXPR` for a FAST token.
        mechanism: &'static str,
        /// Carbons (XEP-0280) were enabled inline (Bind2): no IQ needed.
        carbons_enabled: bool,
        /// The previous stream was resumed (XEP-0198 §5): presence, roster
        /// and server state carried over.
        resumed: bool,
        /// This login retried without channel binding after the server
        /// rejected it (to be remembered for this server).
        binding_rejected: bool,
        /// Ids of stanzas the engine re-sent on resumption (they were not
        /// acknowledged before): the client must not send them again.
        resent_ids: Vec<String>,
    },
    /// A stanza (`message`, `presence`, `iq`) from the server.
    Stanza(Element),
    /// The server confirmed it holds these stanzas we sent (XEP-0198).
    Acked(Vec<Element>),
    /// The connection is gone; `error` is `None` after a clean close.
    Disconnected { error: Option<SessionError> },
    /// XEP-0484: the server issued a FAST token (`Some`, to persist) or
    /// refused the one we had (`None`, to forget).
    FastToken(Option<fast::FastToken>),
    /// The server's post-TLS features changed from the ones handed to
    /// [`super::Session::remember_features`]: persist them for the next
    /// connection.
    ServerFeatures(Features),
}
