//! The account state a client keeps in the store between connections and
//! processes, as typed fields ([`AccountState`]), and the session state's
//! persistence: the XEP-0484 FAST token, the XEP-0198 resumable state and
//! the PLAIN pin, with what this client last wrote (to notice another
//! process's writes).

use crate::client::connection::catchup::Backfill;
use crate::client::connection::shared::Shared;
use crate::features::push::PushRegistration;
use crate::proto::fast::FastToken;
use crate::proto::stream_features::Features;
use crate::proto::{Session, SmState};
use crate::store::{Field, TrustPolicy};

/// Every value the client keeps about the account (the store's own, the
/// roster version, is `store::StoreFields`; OMEMO keys have their tables).
pub(crate) struct AccountState;

impl AccountState {
    /// The resource asked for on servers without Bind2, stable per
    /// installation.
    pub const RESOURCE: Field<String> = Field::new("resource");
    /// XEP-0388 user-agent id of this installation.
    pub const CLIENT_ID: Field<String> = Field::new("client_id");
    /// XEP-0484 token (it stands in for the password).
    pub const FAST_TOKEN: Field<FastToken> = Field::new("fast_token");
    /// XEP-0198 state of the last stream, to resume it.
    pub const STREAM_MANAGEMENT: Field<SmState> = Field::new("sm_state");
    /// A login with something stronger than PLAIN worked: PLAIN is refused.
    pub const NO_PLAIN: Field<bool> = Field::new("sasl_no_plain");
    /// A channel-bound login (SCRAM -PLUS, FAST -EXPR) has worked: a
    /// rejected binding is from now on an error, never an unbound retry.
    pub const CHANNEL_BINDING_PINNED: Field<bool> = Field::new("channel_binding_pinned");
    /// The server advertises -PLUS but rejected our binding and the unbound
    /// retry worked (trust on first use): later logins go unbound at once.
    pub const SERVER_REJECTS_BINDING: Field<bool> = Field::new("server_rejects_binding");
    /// Our presence as the app last set it.
    pub const PRESENCE: Field<SavedPresence> = Field::new("presence");
    /// This device's push registration (XEP-0357) with its payload key.
    pub const PUSH: Field<PushRegistration> = Field::new("push");
    /// Archive id of the newest message we have (the MAM cursor).
    pub const ARCHIVE_CURSOR: Field<String> = Field::new("mam_last");
    /// An archive catch-up is unfinished. A resumed stream re-sends the
    /// results of a query whose process died, and nobody waits for them any
    /// more; the marker makes the resumed session query again.
    pub const CATCHUP_PENDING: Field<bool> = Field::new("mam_pending");
    /// A new installation's first sync, paging back from the newest
    /// message; kept so that a killed process continues where it stopped.
    pub const BACKFILL: Field<Backfill> = Field::new("mam_backfill");
    /// Our server stamps stanza-ids (it lists `urn:xmpp:sid:0`).
    pub const SERVER_STANZA_IDS: Field<bool> = Field::new("server_stanza_ids");
    /// Digest of the OMEMO 2 bundle the server last accepted.
    pub const OMEMO2_BUNDLE: Field<String> = Field::new("omemo_bundle_omemo2");
    /// Digest of the OMEMO 0.3 bundle the server last accepted.
    pub const OMEMO03_BUNDLE: Field<String> = Field::new("omemo_bundle_omemo0.3");
    /// The server's post-TLS stream features as of the last connection,
    /// for pipelining a FAST login behind the stream header.
    pub const SERVER_FEATURES: Field<Features> = Field::new("server_features");
    /// How devices whose keys are not verified are treated (issue 13).
    pub const OMEMO_TRUST_POLICY: Field<TrustPolicy> = Field::new("omemo_trust_policy");
    /// `false`: push notifications say "a new message" without its text
    /// (for users who do not want it to pass the push provider's hands).
    pub const PUSH_PREVIEWS: Field<bool> = Field::new("push_previews");
}

/// Our presence as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedPresence {
    /// "available", "chat", "away", "xa", "dnd" or "unavailable".
    pub availability: String,
    pub status: Option<String>,
}

/// The stored form (JSON) of the session state a client last wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WrittenSession {
    pub fast_token: Option<String>,
    pub stream_management: Option<String>,
}

impl WrittenSession {
    /// What the store holds now.
    pub fn read(shared: &Shared) -> WrittenSession {
        let store = shared.store();
        WrittenSession {
            fast_token: store.get_json(AccountState::FAST_TOKEN).ok().flatten(),
            stream_management: store
                .get_json(AccountState::STREAM_MANAGEMENT)
                .ok()
                .flatten(),
        }
    }

    /// The FAST token and the resumable state, read from what was stored.
    pub fn parse(&self) -> (Option<FastToken>, Option<SmState>) {
        (
            self.fast_token
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            self.stream_management
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
        )
    }

    /// Keeps the XEP-0484 token (or its absence) in the encrypted store.
    pub fn persist_fast_token(&mut self, shared: &Shared, token: Option<&FastToken>) {
        let result = shared.store().put(AccountState::FAST_TOKEN, token);
        match result {
            Ok(()) => self.fast_token = token.and_then(|t| serde_json::to_string(t).ok()),
            Err(err) => tracing::warn!(%err, "could not store the FAST token"),
        }
    }

    /// Writes the XEP-0198 state when it changed, so that another process
    /// (or this one after a crash) can resume the stream.
    pub fn persist_stream_management(&mut self, shared: &Shared, session: &mut Session) {
        if !session.take_sm_changed() {
            return;
        }
        let state = session.resumable_state();
        let result = shared.store().put(AccountState::STREAM_MANAGEMENT, state);
        match result {
            Ok(()) => self.stream_management = state.and_then(|sm| serde_json::to_string(sm).ok()),
            Err(err) => tracing::warn!(error = %err, "cannot persist stream management state"),
        }
    }
}

/// The stored token, unless it has expired (XEP-0484 §3.3: the server
/// says until when it accepts it; using it later only costs a failed
/// round trip and a password login).
pub(crate) fn usable_fast_token(token: Option<FastToken>, now_ms: i64) -> Option<FastToken> {
    let token = token?;
    let expiry = token
        .expiry
        .as_deref()
        .and_then(crate::features::messages::parse_xep0082_ms);
    match expiry {
        Some(expiry) if expiry <= now_ms => {
            tracing::info!("the FAST token has expired; logging in with the password");
            None
        }
        _ => Some(token),
    }
}

/// Pins the strongest authentication that worked, so later logins refuse
/// anything weaker: no PLAIN after SCRAM or FAST; no unbound retry after
/// a channel-bound login; and remembers a server that rejected our
/// binding when the unbound retry worked (trust on first use).
pub(crate) fn pin_authentication(shared: &Shared, mechanism: &str, binding_rejected: bool) {
    let bound = mechanism.ends_with("-PLUS") || mechanism.ends_with("-EXPR");
    let pins = [
        (AccountState::NO_PLAIN, mechanism != "PLAIN"),
        (AccountState::CHANNEL_BINDING_PINNED, bound),
        (AccountState::SERVER_REJECTS_BINDING, binding_rejected),
    ];
    let store = shared.store();
    for (field, holds) in pins {
        if !holds || store.get(field).ok().flatten() == Some(true) {
            continue;
        }
        if let Err(err) = store.put(field, Some(&true)) {
            // The next login still prefers the strong way; only the pin
            // waits for a later login.
            tracing::warn!(%err, field = field.name(), "cannot record how we logged in");
        }
    }
}
