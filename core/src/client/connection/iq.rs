//! IQs: the requests we are waiting on (the app's, the roster fetch, the
//! resumption barrier), and answers to the requests others send us —
//! roster pushes only from our own account (RFC 6121 §2.1.6), and nothing
//! that tells a stranger we are online (XEP-0184 §8's reasoning applied to
//! ping and disco).

use std::collections::HashMap;

use minidom::Element;
use tokio::sync::oneshot;

use crate::client::connection::account::AccountState;
use crate::client::connection::catchup::error_condition;
use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::client::{random_id, ClientError};
use crate::features::roster::{self, RosterChange};
use crate::features::{disco, stanza};
use crate::ns::{NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_ROSTER, NS_SID, NS_STANZAS};

/// Reply to an IQ the app is waiting for.
pub(crate) type IqReply = oneshot::Sender<Result<Element, ClientError>>;

/// What an answer (`result`/`error`) was for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// The roster fetch of a fresh session (stored, and told).
    Roster,
    /// The ping sent after resuming: the server's backlog is through.
    ResumeBarrier,
    /// What our server supports; `stanza_ids`: it stamps stanza-ids.
    ServerInfo { stanza_ids: bool },
    /// An IQ the app sent (its caller has the answer).
    App,
    /// Nothing we asked.
    Unknown,
}

#[derive(Default)]
pub(crate) struct Requests {
    app: HashMap<String, IqReply>,
    roster: Option<String>,
    resume_barrier: Option<String>,
    server_info: Option<String>,
}

impl Requests {
    /// Waits for the answer to the app's IQ `id`.
    pub fn track(&mut self, id: String, reply: IqReply) {
        self.app.insert(id, reply);
    }

    /// The roster fetch (RFC 6121 §2.1.3; with the stored version when the
    /// server does XEP-0237 versioning).
    pub fn fetch_roster(&mut self, shared: &Shared, versioning: bool) -> Element {
        let version = versioning.then(|| {
            shared
                .store()
                .roster_version()
                .ok()
                .flatten()
                .unwrap_or_default()
        });
        let id = random_id();
        let request = roster::get(&id, version.as_deref());
        self.roster = Some(id);
        request
    }

    /// Asks what our account on the server supports (XEP-0313 §7 and
    /// XEP-0359 §6 features are advertised there).
    pub fn discover_server(&mut self, shared: &Shared) -> Element {
        let id = random_id();
        let query = disco::info_query(&id, shared.own.as_str());
        self.server_info = Some(id);
        query
    }

    /// A ping whose answer follows the backlog a resumed stream re-sends
    /// (the server answers in order).
    pub fn resume_barrier(&mut self) -> Element {
        let id = random_id();
        let ping = stanza(
            "iq",
            &[("type", Some("get")), ("id", Some(&id))],
            vec![Element::bare("ping", NS_PING)],
        );
        self.resume_barrier = Some(id);
        ping
    }

    /// Handles an answer to something we asked.
    pub fn on_answer(&mut self, shared: &Shared, answer: Element) -> Answered {
        let id = answer.attr("id").unwrap_or_default();
        if self.resume_barrier.as_deref() == Some(id) {
            self.resume_barrier = None;
            return Answered::ResumeBarrier;
        }
        if self.server_info.as_deref() == Some(id) {
            self.server_info = None;
            // No answer we can read tells nothing: keep what we knew.
            let Some(features) = disco::result_features(&answer) else {
                return Answered::Unknown;
            };
            let stanza_ids = features.contains(NS_SID);
            let written = shared
                .store()
                .put(AccountState::SERVER_STANZA_IDS, Some(&stanza_ids));
            if let Err(err) = written {
                // Asked again on the next fresh session.
                tracing::warn!(%err, "cannot record what the server supports");
            }
            return Answered::ServerInfo { stanza_ids };
        }
        if self.roster.as_deref() == Some(id) {
            self.roster = None;
            if answer.attr("type") == Some("result") {
                if let Some((entries, ver)) = roster::parse_result(&answer) {
                    let written = shared.store().replace_roster(&entries, ver.as_deref());
                    if let Err(err) = written {
                        tracing::warn!(error = %err, "cannot store roster");
                    }
                }
                emit_roster(shared);
            }
            return Answered::Roster;
        }
        let Some(reply) = self.app.remove(id) else {
            return Answered::Unknown;
        };
        let outcome = if answer.attr("type") == Some("result") {
            Ok(answer)
        } else {
            Err(ClientError::Refused {
                condition: error_condition(&answer),
            })
        };
        // The caller may have stopped waiting.
        let _ = reply.send(outcome);
        Answered::App
    }

    /// The connection ended: nobody will answer.
    pub fn on_disconnected(&mut self) {
        for (_, reply) in self.app.drain() {
            // The caller may have stopped waiting.
            let _ = reply.send(Err(ClientError::NotConnected));
        }
        self.roster = None;
        self.resume_barrier = None;
        self.server_info = None;
    }
}

/// The answer to a `get`/`set` someone sent us (every request gets one:
/// RFC 6120 §8.2.3).
pub(crate) fn answer_request(shared: &Shared, request: &Element) -> Element {
    if request.attr("type") == Some("set") && request.has_child("query", NS_ROSTER) {
        return match roster::parse_push(request, &shared.own) {
            Ok((change, ver)) => {
                let written = {
                    let mut store = shared.store();
                    match &change {
                        RosterChange::Upsert(entry) => {
                            store.apply_roster_push(Some(entry), None, ver.as_deref())
                        }
                        RosterChange::Remove(jid) => {
                            store.apply_roster_push(None, Some(jid), ver.as_deref())
                        }
                    }
                };
                if let Err(err) = written {
                    tracing::warn!(error = %err, "cannot store roster push");
                }
                emit_roster(shared);
                iq_result(request)
            }
            Err(rejected) => {
                tracing::warn!(?rejected, "refusing roster push");
                iq_error(request, "service-unavailable")
            }
        };
    }
    if request.attr("type") == Some("get") && may_ask(shared, request) {
        if request.has_child("query", NS_DISCO_INFO) {
            return disco::info_result(request);
        }
        if request.has_child("ping", NS_PING) {
            return iq_result(request);
        }
    }
    // RFC 6120 §8.4: what we do not support. A stranger gets the same
    // answer, which tells nothing, not even that we are online.
    iq_error(request, "service-unavailable")
}

/// Whether the sender of a request may learn we are online: our server,
/// our own account, or a contact allowed to see our presence.
fn may_ask(shared: &Shared, request: &Element) -> bool {
    let Some(from) = request.attr("from") else {
        return true;
    };
    let Ok(from) = from.parse::<jid::Jid>() else {
        return false;
    };
    if from.node().is_none() && from.domain() == shared.own.domain() {
        return true;
    }
    shared.may_see_presence(from.to_bare().as_str())
}

/// Tells the app the roster as stored.
pub(crate) fn emit_roster(shared: &Shared) {
    // Read first: a guard in the match would hold the store locked while
    // the listener runs, and a listener that reads the roster would
    // deadlock the connection.
    let roster = shared.store().roster();
    match roster {
        Ok(entries) => shared.emit(ClientEvent::RosterChanged(entries)),
        Err(err) => tracing::warn!(error = %err, "cannot read roster"),
    }
}

fn iq_result(request: &Element) -> Element {
    stanza(
        "iq",
        &[
            ("type", Some("result")),
            ("id", request.attr("id")),
            ("to", request.attr("from")),
        ],
        Vec::new(),
    )
}

fn iq_error(request: &Element, condition: &str) -> Element {
    let mut error = Element::bare("error", NS_CLIENT);
    crate::features::set_attr(&mut error, "type", "cancel");
    error.append_child(Element::bare(condition, NS_STANZAS));
    stanza(
        "iq",
        &[
            ("type", Some("error")),
            ("id", request.attr("id")),
            ("to", request.attr("from")),
        ],
        vec![error],
    )
}
