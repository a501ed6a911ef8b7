//! The session state a connection keeps in the store between processes:
//! the XEP-0484 FAST token, the XEP-0198 resumable state and the PLAIN
//! pin, with what this client last wrote (to notice another process's
//! writes).

use crate::client::connection::shared::Shared;
use crate::proto::fast::FastToken;
use crate::proto::Session;

pub(crate) const PRESENCE_KEY: &str = "presence";
pub(crate) const FAST_TOKEN_KEY: &str = "fast_token";
/// Set once a login with something stronger than PLAIN worked.
pub(crate) const NO_PLAIN_KEY: &str = "sasl_no_plain";
/// Account value holding the persisted [`crate::proto::SmState`] (JSON).
pub(crate) const SM_STATE_KEY: &str = "sm_state";

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
            fast_token: store.account_value(FAST_TOKEN_KEY).ok().flatten(),
            stream_management: store.account_value(SM_STATE_KEY).ok().flatten(),
        }
    }

    /// Keeps the XEP-0484 token (or its absence) in the encrypted store.
    pub fn persist_fast_token(&mut self, shared: &Shared, token: Option<&FastToken>) {
        let json = token.and_then(|t| serde_json::to_string(t).ok());
        let result = shared
            .store()
            .set_account_value(FAST_TOKEN_KEY, json.as_deref());
        match result {
            Ok(()) => self.fast_token = json,
            Err(err) => tracing::warn!(%err, "could not store the FAST token"),
        }
    }

    /// Writes the XEP-0198 state when it changed, so that another process
    /// (or this one after a crash) can resume the stream.
    pub fn persist_stream_management(&mut self, shared: &Shared, session: &mut Session) {
        if !session.take_sm_changed() {
            return;
        }
        let json = session
            .resumable_state()
            .and_then(|sm| serde_json::to_string(sm).ok());
        let result = shared
            .store()
            .set_account_value(SM_STATE_KEY, json.as_deref());
        match result {
            Ok(()) => self.stream_management = json,
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

/// From now on PLAIN is a downgrade for this account (a login with
/// `mechanism` worked).
pub(crate) fn pin_no_plain(shared: &Shared, mechanism: &str) {
    if mechanism == "PLAIN" {
        return;
    }
    let store = shared.store();
    if store.account_value(NO_PLAIN_KEY).ok().flatten().is_none() {
        if let Err(err) = store.set_account_value(NO_PLAIN_KEY, Some("1")) {
            // The next login still prefers SCRAM; only the pin waits.
            tracing::warn!(%err, "cannot record that SCRAM works");
        }
    }
}
