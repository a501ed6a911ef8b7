//! The client's side of a running connection: turns session events into
//! store writes and then app events, answers the server's requests, flushes
//! the outbox, and carries out the app's commands.
//!
//! Order matters: a message is committed to the store before the app hears
//! of it, and a burst of incoming messages is written in one transaction at
//! the end of each driver turn.

use crate::ns::{NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_ROSTER, NS_SID, NS_STANZAS};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jid::BareJid;
use minidom::Element;
use tokio::sync::{oneshot, watch};

use super::events::{ClientEvent, ConnectionState, EventListener};
use super::omemo::{Omemo, Prepared, Received};
use super::ordering;
use super::{now_ms, random_id, ClientError};
use crate::features::carbons::{self, Carbon};
use crate::features::disco;
use crate::features::mam::{self, MamMessage};
use crate::features::messages::{self, IncomingMessageStanza};
use crate::features::omemo::encrypted_child;
use crate::features::presence::{
    self, Availability, PresenceBook, PresenceUpdate, ResourcePresence,
};
use crate::features::roster::{self, RosterChange};
use crate::proto::fast::FastToken;
use crate::proto::{Session, SessionEvent};
use crate::store::{
    Direction, IncomingMessage, MessageState, OmemoWrites, Position, Store, StoredMessage,
};
use crate::transport::{AfterCommand, Handler};

/// A receipt to send once a message is stored: (to, message id).
type Receipt = (String, String);

/// Reply to an IQ the app is waiting for.
pub(crate) type IqReply = oneshot::Sender<Result<Element, ClientError>>;

/// What the app asks the running connection to do.
pub(crate) enum Command {
    /// Send the outbox message with this row id (if not already sent).
    SendQueued(i64),
    /// Send a stanza without waiting for anything.
    Send(Element),
    /// Send an IQ and report its answer.
    Iq(Element, IqReply),
    /// Log out cleanly.
    Close,
    /// Drop the connection, keep the session resumable, and stop.
    Suspend,
    /// XEP-0352: the app went to the foreground (`true`) or background.
    SetForeground(bool),
    /// The platform lost the network: drop the socket now, stay resumable,
    /// and wait for [`Command::NetworkAvailable`] before retrying.
    NetworkLost,
    /// The platform has a network again: reconnect now, skipping backoff.
    NetworkAvailable,
}

pub(crate) const PRESENCE_KEY: &str = "presence";
pub(crate) const FAST_TOKEN_KEY: &str = "fast_token";
/// Set once a login with something stronger than PLAIN worked.
pub(crate) const NO_PLAIN_KEY: &str = "sasl_no_plain";
/// Account value: archive id of the newest message we have (MAM cursor).
const MAM_LAST_KEY: &str = "mam_last";
/// Set while an archive catch-up is unfinished. A resumed stream re-sends
/// the results of a query whose process died, and nobody is waiting for
/// them any more; the marker makes the resumed session query again.
const MAM_PENDING_KEY: &str = "mam_pending";
/// A new installation's first sync, paging back from the newest message;
/// kept so that a killed process continues where it stopped.
const MAM_BACKFILL_KEY: &str = "mam_backfill";
/// How much history a new installation fetches before it only moves
/// forward (older messages stay on the server).
const INITIAL_HISTORY_LIMIT: u32 = 5_000;

/// The stored form (JSON) of the session state a client last wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WrittenSession {
    pub fast_token: Option<String>,
    pub stream_management: Option<String>,
}

/// Progress of a new installation's first sync.
#[derive(serde::Serialize, serde::Deserialize)]
struct Backfill {
    /// The newest archive id when the sync began: forward catch-ups start
    /// there once the backfill is done.
    newest: String,
    /// The oldest archive id fetched so far.
    before: String,
    fetched: u32,
    /// Per conversation, the archive id of the oldest received message
    /// fetched so far: pages are contiguous in the archive, so a page
    /// holding nothing stored attaches right below it.
    #[serde(default)]
    edges: HashMap<String, String>,
}
/// Results per archive page (servers may cap it lower).
const MAM_PAGE: u32 = 100;
/// Results kept per archive page: what we asked for, with room for servers
/// that count differently.
const MAX_PAGE_RESULTS: usize = 2 * MAM_PAGE as usize;
/// How long one archive page may take to arrive.
const ARCHIVE_PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Pages per catch-up (200,000 messages at most), after which the rest waits
/// for the next connection.
const MAX_CATCHUP_PAGES: u32 = 2_000;

/// An archive catch-up in progress.
struct CatchUp {
    iq_id: String,
    query_id: String,
    page: mam::Page,
    /// Results of the current page, in archive order.
    archived: Vec<(IncomingMessage, Option<Element>)>,
    /// Live messages that arrived meanwhile, already stored (the stream's
    /// acknowledgement counts them, so they must be on disk at the end of
    /// the turn); only their events wait, so the app sees history in order.
    held_events: Vec<StoredMessage>,
    /// A new installation's backfill, while it pages back.
    backfill: Option<Backfill>,
    /// Pages asked for in this catch-up so far (bounded: a server could
    /// hand out new cursors forever).
    pages: u32,
    /// When the server must have answered the current page.
    deadline: Instant,
}

/// Reads a forwarded message (carbon or archive result) as one to store:
/// ours (from our bare JID, sent from another device) or theirs.
fn forwarded_message(
    inner: &Element,
    own: &BareJid,
    archive_id: Option<String>,
    stamp_ms: Option<i64>,
) -> Option<IncomingMessage> {
    let from = inner
        .attr("from")
        .and_then(|f| f.parse::<jid::Jid>().ok())?;
    if from.to_bare() == *own {
        let to = inner
            .attr("to")
            .and_then(|t| t.parse::<jid::Jid>().ok())?
            .to_bare();
        let body = inner.get_child("body", NS_CLIENT)?.text();
        return Some(IncomingMessage {
            direction: Direction::Outgoing,
            peer: to.to_string(),
            sender: own.to_string(),
            body,
            origin_id: inner
                .get_child("origin-id", NS_SID)
                .and_then(|o| o.attr("id"))
                .map(str::to_owned),
            stanza_id: archive_id,
            remote_id: inner.attr("id").map(str::to_owned),
            timestamp_ms: stamp_ms.unwrap_or_else(now_ms),
            position: Position::Append,
            security: Default::default(),
        });
    }
    let IncomingMessageStanza::Chat(chat) = messages::parse(inner, own) else {
        return None;
    };
    Some(IncomingMessage {
        direction: Direction::Incoming,
        peer: chat.from.to_string(),
        sender: chat.from.to_string(),
        body: chat.body,
        origin_id: chat.origin_id,
        stanza_id: archive_id.or(chat.stanza_id),
        remote_id: chat.id,
        timestamp_ms: stamp_ms.or(chat.delayed_ms).unwrap_or_else(now_ms),
        position: Position::Append,
        security: Default::default(),
    })
}
/// Account value holding the persisted [`crate::proto::SmState`] (JSON).
pub(crate) const SM_STATE_KEY: &str = "sm_state";

pub(crate) struct ConnectionHandler {
    pub store: Arc<Mutex<Store>>,
    pub listener: Arc<dyn EventListener>,
    pub own: BareJid,
    pub state: watch::Sender<ConnectionState>,
    pub pending_iqs: HashMap<String, IqReply>,
    roster_request: Option<String>,
    /// Outbox rows already written on this connection.
    sent_now: HashSet<i64>,
    sm_enabled: bool,
    /// This turn's live messages: the message, the receipt to send once
    /// it is stored, and its OMEMO element (decrypted when the batch is
    /// written, so that sessions and messages are stored together).
    inbound: Vec<(IncomingMessage, Option<Receipt>, Option<Element>)>,
    catchup: Option<CatchUp>,
    /// The platform said the network is gone; reconnects wait for it.
    pub network_down: bool,
    /// The app suspended the session: do not reconnect.
    pub suspended: bool,
    /// Id of the ping whose answer ends a resumed stream's backlog.
    resume_barrier: Option<String>,
    pub ended: Option<Option<crate::proto::SessionError>>,
    /// The session state as this client last wrote it to the store: when
    /// the store holds something else, another process (a push handler)
    /// used the session meanwhile.
    pub written: WrittenSession,
    /// An archive catch-up is unfinished (the store's marker, read when a
    /// connection comes online and kept in step with every write of it).
    catchup_pending: bool,
    /// Incoming stanzas could not be stored: the connection was dropped
    /// without acknowledging them (the server keeps and re-sends them), and
    /// this is why.
    pub store_failure: Option<crate::store::StoreError>,
    pub presences: Arc<Mutex<PresenceBook>>,
    /// OMEMO, once our device is loaded (at the first `Online`).
    omemo: Option<Omemo>,
    /// OMEMO stanzas produced outside a send (while reading messages):
    /// sent at the end of the turn.
    omemo_outbox: Vec<Element>,
}

impl ConnectionHandler {
    pub fn new(
        store: Arc<Mutex<Store>>,
        listener: Arc<dyn EventListener>,
        own: BareJid,
        state: watch::Sender<ConnectionState>,
        presences: Arc<Mutex<PresenceBook>>,
    ) -> Self {
        Self {
            store,
            listener,
            own,
            state,
            pending_iqs: HashMap::new(),
            roster_request: None,
            sent_now: HashSet::new(),
            sm_enabled: false,
            inbound: Vec::new(),
            catchup: None,
            network_down: false,
            suspended: false,
            resume_barrier: None,
            ended: None,
            store_failure: None,
            catchup_pending: false,
            written: WrittenSession::default(),
            presences,
            omemo: None,
            omemo_outbox: Vec::new(),
        }
    }

    /// Loads (or creates) our OMEMO device; a store failure leaves OMEMO
    /// off for this connection rather than failing the login.
    fn load_omemo(&mut self) {
        if self.omemo.is_some() {
            return;
        }
        let loaded = Omemo::load_or_create(&mut self.store(), self.own.clone());
        match loaded {
            Ok(omemo) => self.omemo = Some(omemo),
            Err(err) => {
                tracing::warn!(error = %err, "OMEMO unavailable: cannot read or create our device")
            }
        }
    }

    /// Decrypts the OMEMO messages of a batch, in order, dropping the
    /// key-transport ones. The session changes wait in the OMEMO state
    /// for the batch's transaction ([`Omemo::take_writes`]).
    fn decrypt_batch<R>(
        &mut self,
        batch: Vec<(IncomingMessage, Option<Element>, R)>,
    ) -> Vec<(IncomingMessage, R)> {
        let Some(omemo) = self.omemo.as_mut() else {
            return batch.into_iter().map(|(m, _, r)| (m, r)).collect();
        };
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(batch.len());
        for (mut message, encrypted, extra) in batch {
            let Some(stanza) = encrypted else {
                out.push((message, extra));
                continue;
            };
            let sender = match message.direction {
                Direction::Incoming => message.peer.clone(),
                Direction::Outgoing => self.own.to_string(),
            };
            let Some((received, stanzas)) = omemo.decrypt(&mut store, &sender, &stanza) else {
                out.push((message, extra));
                continue;
            };
            self.omemo_outbox.extend(stanzas);
            if let Received::Message { body, security } = received {
                message.body = body;
                message.security = security;
                out.push((message, extra));
            }
        }
        out
    }

    /// The OMEMO writes of the decrypted batch (none without OMEMO).
    fn take_omemo_writes(&mut self) -> OmemoWrites {
        self.omemo
            .as_mut()
            .map(Omemo::take_writes)
            .unwrap_or_default()
    }

    /// Tells the app about newly seen OMEMO devices.
    fn emit_new_devices(&mut self) {
        let jids = self
            .omemo
            .as_mut()
            .map(Omemo::take_new_devices)
            .unwrap_or_default();
        for jid in jids {
            self.emit(ClientEvent::OmemoDevicesChanged { jid });
        }
    }

    /// After a batch is committed: what OMEMO sends next (a republished
    /// bundle once a prekey was used), and new devices to announce.
    fn omemo_committed(&mut self) {
        self.emit_new_devices();
        let Some(omemo) = self.omemo.as_mut() else {
            return;
        };
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let stanzas = omemo.after_commit(&store);
        drop(store);
        self.omemo_outbox.extend(stanzas);
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: ClientEvent) {
        self.listener.on_event(event);
    }

    fn send(&self, session: &mut Session, now: Instant, stanza: &Element) {
        if session.send_stanza(now, stanza).is_err() {
            tracing::debug!("stanza dropped: session not online");
        }
    }

    /// Handles [`SessionEvent::Online`]: publish the state, then (for a
    /// fresh session) fetch the roster and announce presence, and flush the
    /// outbox except what the engine already re-sent on resumption.
    fn on_online(&mut self, session: &mut Session, now: Instant, event: SessionEvent) {
        let SessionEvent::Online {
            jid,
            stream_management,
            roster_versioning: roster_ver,
            round_trips,
            mechanism,
            carbons_enabled,
            resumed,
            resent_ids,
        } = event
        else {
            return;
        };
        self.sm_enabled = stream_management;
        self.sent_now.clear();
        let online = ConnectionState::Online {
            jid: jid.to_string(),
            round_trips,
            authentication: mechanism.to_owned(),
            resumed,
        };
        // The event first: when `login()` returns, listeners have seen it.
        self.emit(ClientEvent::ConnectionChanged(online.clone()));
        self.state.send_replace(online);
        // Its use count went up; a replayed login must not reuse it.
        self.persist_fast_token(session.fast_token());
        if mechanism != "PLAIN" {
            // From now on PLAIN is a downgrade for this account.
            let store = self.store();
            if store.account_value(NO_PLAIN_KEY).ok().flatten().is_none() {
                if let Err(err) = store.set_account_value(NO_PLAIN_KEY, Some("1")) {
                    // The next login still prefers SCRAM; only the pin waits.
                    tracing::warn!(%err, "cannot record that SCRAM works");
                }
            }
        }
        self.load_omemo();
        // Unreadable counts as pending: marking live messages ahead of the
        // archive is always safe, skipping a gap is not.
        let marker = self.store().account_value(MAM_PENDING_KEY);
        self.catchup_pending = marker.map_or(true, |v| v.is_some());
        if resumed {
            // The server kept our presence and roster state; what it did
            // not acknowledge was re-sent by the engine.
            let outbox = self.store().outbox();
            if let Ok(outbox) = outbox {
                for message in outbox {
                    if message
                        .origin_id
                        .as_ref()
                        .is_some_and(|o| resent_ids.contains(o))
                    {
                        self.sent_now.insert(message.id);
                    }
                }
            }
            self.flush_outbox(session, now);
            if self.catchup_pending {
                tracing::info!("an archive catch-up was cut short; running it again");
                return self.start_catchup(session, now, Vec::new(), 0);
            }
            // Stream management guarantees nothing was missed, but the
            // server re-sends its backlog right after resuming: a ping
            // answered after it marks the end (the server answers in order).
            let id = random_id();
            self.send(
                session,
                now,
                &crate::features::stanza(
                    "iq",
                    &[("type", Some("get")), ("id", Some(&id))],
                    vec![minidom::Element::bare("ping", "urn:xmpp:ping")],
                ),
            );
            self.resume_barrier = Some(id);
            return;
        }
        // A fresh session: the server sends every presence again.
        self.presences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // RFC 6121 §2.2: fetch the roster before sending initial presence.
        let version = if roster_ver {
            Some(
                self.store()
                    .roster_version()
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        let id = random_id();
        self.send(session, now, &roster::get(&id, version.as_deref()));
        self.roster_request = Some(id);
        let (availability, status) = self.saved_presence();
        self.send(
            session,
            now,
            &presence::own_presence(availability, status.as_deref()),
        );
        if !carbons_enabled {
            self.send(session, now, &carbons::enable(&random_id()));
        }
        let publish = {
            let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            self.omemo
                .as_mut()
                .map(|o| o.on_online(&mut store, now_ms()))
                .unwrap_or_default()
        };
        for stanza in &publish {
            self.send(session, now, stanza);
        }
        // Prosody ties push to the session that sent <enable/> (it decides
        // pushes for a hibernated session's queue): every fresh session
        // registers again, with the same key, so pushes keep coming.
        let registration = super::push::load_registration(&self.store());
        if let Ok(Some(registration)) = registration {
            let enable = crate::features::push::enable(
                &random_id(),
                &registration,
                registration.secret.as_deref(),
            );
            self.send(session, now, &enable);
        }
        self.start_catchup(session, now, Vec::new(), 0);
        self.flush_outbox(session, now);
    }

    /// Keeps the XEP-0484 token (or its absence) in the encrypted store.
    fn persist_fast_token(&mut self, token: Option<&FastToken>) {
        let json = token.and_then(|t| serde_json::to_string(t).ok());
        let result = self
            .store()
            .set_account_value(FAST_TOKEN_KEY, json.as_deref());
        match result {
            Ok(()) => self.written.fast_token = json,
            Err(err) => tracing::warn!(%err, "could not store the FAST token"),
        }
    }

    /// Writes the XEP-0198 state when it changed, so that another process
    /// (or this one after a crash) can resume the stream.
    fn persist_stream_management(&mut self, session: &mut Session) {
        if !session.take_sm_changed() {
            return;
        }
        let json = session
            .resumable_state()
            .and_then(|sm| serde_json::to_string(sm).ok());
        let result = self
            .store()
            .set_account_value(SM_STATE_KEY, json.as_deref());
        match result {
            Ok(()) => self.written.stream_management = json,
            Err(err) => tracing::warn!(error = %err, "cannot persist stream management state"),
        }
    }

    fn saved_presence(&self) -> (Availability, Option<String>) {
        let saved = self.store().account_value(PRESENCE_KEY).ok().flatten();
        super::decode_presence(saved.as_deref())
    }

    fn flush_outbox(&mut self, session: &mut Session, now: Instant) {
        let outbox = match self.store().outbox() {
            Ok(outbox) => outbox,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the outbox");
                return;
            }
        };
        for message in outbox {
            self.send_queued(session, now, message.id);
        }
    }

    fn send_queued(&mut self, session: &mut Session, now: Instant, id: i64) {
        if !session.is_online() || self.sent_now.contains(&id) {
            return;
        }
        let message = match self.store().message(id) {
            Ok(Some(m)) => m,
            _ => return,
        };
        if message.state >= MessageState::Acked {
            return;
        }
        // The original origin-id goes out again, so a resend after a crash
        // is deduplicated by the receiver.
        let origin_id = message.origin_id.clone().unwrap_or_else(random_id);
        let prepared = match self.omemo.as_mut() {
            Some(omemo) => {
                let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
                omemo.prepare(&mut store, id, &message.peer, &message.body, &origin_id)
            }
            None => Prepared::Plain,
        };
        let stanza = match prepared {
            Prepared::Plain => messages::chat(&message.peer, &message.body, &origin_id),
            Prepared::Encrypted(stanza, scheme) => {
                if let Err(err) = self.store().set_outgoing_encryption(id, scheme) {
                    tracing::warn!(error = %err, "cannot record the message's encryption");
                }
                *stanza
            }
            Prepared::Wait(requests) => {
                for request in &requests {
                    self.send(session, now, request);
                }
                return;
            }
            Prepared::Fail(reason) => {
                // Never fall back to plain text in an encrypted conversation.
                tracing::warn!(%reason, "cannot encrypt a message");
                let failed = self.store().advance_outgoing(id, MessageState::Failed);
                if let Ok(Some(updated)) = failed {
                    self.emit(ClientEvent::MessageStateChanged(updated));
                }
                return;
            }
        };
        self.send(session, now, &stanza);
        self.sent_now.insert(id);
        let advanced = self.store().advance_outgoing(id, MessageState::Sent);
        if let Ok(Some(updated)) = advanced {
            self.emit(ClientEvent::MessageStateChanged(updated));
        }
        if !self.sm_enabled {
            // Without XEP-0198 nothing more will confirm the server has it;
            // the receipt will move it on to delivered.
            tracing::debug!("stream management off: message stays 'sent' until a receipt");
        }
    }

    fn advance(&self, peer: &str, origin_id: &str, state: MessageState) {
        let result = {
            let mut store = self.store();
            match store.outgoing_by_origin_id(peer, origin_id) {
                Ok(Some(id)) => store.advance_outgoing(id, state),
                other => other.map(|_| None),
            }
        };
        match result {
            Ok(Some(updated)) => self.emit(ClientEvent::MessageStateChanged(updated)),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot record message state"),
        }
    }

    fn on_message(&mut self, element: Element) {
        if let Some(omemo) = self.omemo.as_mut() {
            let update = {
                let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
                omemo.on_pep_event(&mut store, &element)
            };
            if let Some(stanzas) = update {
                self.omemo_outbox.extend(stanzas);
                self.emit_new_devices();
                return;
            }
        }
        match carbons::unwrap(&element, &self.own) {
            Carbon::Forged => return tracing::warn!("dropping a forged carbon"),
            // Copies are stored, but receipts are the receiving device's job.
            Carbon::Received(inner) | Carbon::Sent(inner) => {
                if let Some(message) = forwarded_message(&inner, &self.own, None, None) {
                    let encrypted = encrypted_child(&inner).is_some().then(|| inner.clone());
                    self.push_live(message, None, encrypted);
                }
                return;
            }
            Carbon::None => {}
        }
        match mam::unwrap(&element, &self.own) {
            MamMessage::Forged => {
                return tracing::warn!("dropping a MAM result not from our archive")
            }
            MamMessage::Result {
                query_id,
                archive_id,
                message,
                stamp_ms,
            } => {
                if self.catchup.as_ref().is_none_or(|c| c.query_id != query_id) {
                    return tracing::warn!("dropping a MAM result for a query we did not make");
                }
                if let Some(m) = forwarded_message(&message, &self.own, Some(archive_id), stamp_ms)
                {
                    let encrypted = encrypted_child(&message).is_some().then(|| message.clone());
                    if let Some(c) = self.catchup.as_mut() {
                        // We asked for MAM_PAGE; a server sending far more
                        // must not grow our memory without end.
                        if c.archived.len() < MAX_PAGE_RESULTS {
                            c.archived.push((m, encrypted));
                        } else if c.archived.len() == MAX_PAGE_RESULTS {
                            tracing::warn!(
                                "dropping archive results beyond the page size we asked for"
                            );
                        }
                    }
                }
                return;
            }
            MamMessage::None => {}
        }
        match messages::parse(&element, &self.own) {
            IncomingMessageStanza::Chat(chat) => {
                let receipt = match (&chat.id, chat.wants_receipt) {
                    (Some(id), true) if self.may_see_presence(chat.from.as_str()) => {
                        Some((chat.from_full.clone(), id.clone()))
                    }
                    _ => None,
                };
                let message = IncomingMessage {
                    direction: Direction::Incoming,
                    peer: chat.from.to_string(),
                    sender: chat.from.to_string(),
                    body: chat.body,
                    origin_id: chat.origin_id,
                    stanza_id: chat.stanza_id,
                    remote_id: chat.id,
                    timestamp_ms: chat.delayed_ms.unwrap_or_else(now_ms),
                    position: Position::Append,
                    security: Default::default(),
                };
                let encrypted = encrypted_child(&element).is_some().then(|| element.clone());
                self.push_live(message, receipt, encrypted);
            }
            IncomingMessageStanza::Receipt { from, id } => {
                self.advance(from.as_str(), &id, MessageState::Delivered)
            }
            IncomingMessageStanza::Bounce {
                from,
                id,
                condition,
            } => {
                tracing::info!(condition, "message bounced");
                self.advance(from.as_str(), &id, MessageState::Failed);
            }
            IncomingMessageStanza::Ignored => {}
        }
    }

    /// Queues a live message for this turn's batch.
    fn push_live(
        &mut self,
        message: IncomingMessage,
        receipt: Option<(String, String)>,
        encrypted: Option<Element>,
    ) {
        self.inbound.push((message, receipt, encrypted));
    }

    /// Starts (or continues) the XEP-0313 catch-up: forward from the last
    /// archive id the store has; a new installation first pages back from
    /// the newest message (up to [`INITIAL_HISTORY_LIMIT`]).
    fn start_catchup(
        &mut self,
        session: &mut Session,
        now: Instant,
        held_events: Vec<StoredMessage>,
        pages: u32,
    ) {
        let (last, backfill) = {
            let store = self.store();
            // If this write fails, the next connection does not know the
            // catch-up was cut short; it starts one anyway when fresh.
            let _ = store.set_account_value(MAM_PENDING_KEY, Some("1"));
            (
                store.account_value(MAM_LAST_KEY).ok().flatten(),
                store.account_value(MAM_BACKFILL_KEY).ok().flatten(),
            )
        };
        self.catchup_pending = true;
        let backfill = backfill.and_then(|json| serde_json::from_str::<Backfill>(&json).ok());
        let page = match (last, &backfill) {
            (Some(id), _) => mam::Page::After(id),
            (None, Some(backfill)) => mam::Page::Before(backfill.before.clone()),
            (None, None) => mam::Page::Latest,
        };
        let (iq_id, query_id) = (random_id(), random_id());
        self.send(
            session,
            now,
            &mam::query(&iq_id, &query_id, &page, MAM_PAGE),
        );
        self.catchup = Some(CatchUp {
            iq_id,
            query_id,
            page,
            archived: Vec::new(),
            held_events,
            backfill,
            pages: pages + 1,
            deadline: now + ARCHIVE_PAGE_TIMEOUT,
        });
    }

    /// The current archive page did not come in time: the catch-up ends as
    /// if the query had failed (it stays pending for the next connection),
    /// so live messages are not held back behind a silent server.
    fn on_catchup_timeout(&mut self) {
        let Some(catchup) = self.catchup.take() else {
            return;
        };
        tracing::warn!("an archive page did not come in time; trying again on the next connection");
        self.release_held_events(catchup.held_events);
    }

    /// A catch-up ended (completed, or left pending for the next
    /// connection): the live messages held back are told now, then that
    /// the app has caught up.
    fn release_held_events(&mut self, held_events: Vec<StoredMessage>) {
        for message in held_events {
            self.emit(ClientEvent::MessageReceived(message));
        }
        self.emit(ClientEvent::CaughtUp);
    }

    /// A page of the archive ended: store it in one transaction, move the
    /// cursor, then ask for the next page or release the held-back events
    /// of live messages.
    fn on_catchup_page(&mut self, session: &mut Session, now: Instant, iq: &Element) {
        // This turn's live messages first, their events still held back.
        self.flush_inbound(session, now);
        let Some(mut catchup) = self.catchup.take() else {
            return;
        };
        let page: Vec<_> = std::mem::take(&mut catchup.archived)
            .into_iter()
            .map(|(m, e)| (m, e, ()))
            .collect();
        let count = page.len() as u32;
        let mut archived: Vec<IncomingMessage> = self
            .decrypt_batch(page)
            .into_iter()
            .map(|(m, ())| m)
            .collect();
        let writes = self.take_omemo_writes();
        let stored = self
            .place_archive_page(&catchup, &mut archived)
            .and_then(|oldest| {
                let stored = self
                    .store()
                    .insert_incoming_batch_with(&archived, &writes)?;
                Ok((oldest, stored))
            });
        let oldest = match stored {
            Ok((oldest, stored)) => {
                self.omemo_committed();
                for message in stored.into_iter().flatten() {
                    self.emit(ClientEvent::MessageReceived(message));
                }
                oldest
            }
            Err(err) => {
                // Not stored: the cursor stays, the marker too, and the
                // next session fetches this page again.
                tracing::error!(error = %err, "cannot store archived messages");
                for message in catchup.held_events {
                    self.emit(ClientEvent::MessageReceived(message));
                }
                return;
            }
        };
        let fin = (iq.attr("type") == Some("result"))
            .then(|| mam::parse_fin(iq))
            .flatten();
        let more = match (fin, &catchup.page) {
            (Some(fin), mam::Page::After(cursor))
                if !fin.complete
                    && (fin.last.as_ref() == Some(cursor)
                        || catchup.pages >= MAX_CATCHUP_PAGES) =>
            {
                // A page that does not move the cursor (or no end in
                // sight): asking again would loop. Like a failed query.
                tracing::warn!(
                    pages = catchup.pages,
                    "the archive does not advance; trying again on the next connection"
                );
                if let Some(last) = &fin.last {
                    let _ = self.store().set_account_value(MAM_LAST_KEY, Some(last));
                }
                return self.release_held_events(catchup.held_events);
            }
            (Some(fin), mam::Page::After(_)) => {
                let store = self.store();
                if let Some(last) = &fin.last {
                    let _ = store.set_account_value(MAM_LAST_KEY, Some(last));
                }
                let more = !fin.complete && fin.last.is_some();
                drop(store);
                if !more {
                    // Every live message that arrived before this answer
                    // was archived before it, so a page has held it.
                    if let Err(err) = self.store().settle_archive_all() {
                        tracing::warn!(%err, "cannot settle live messages");
                    }
                }
                more
            }
            (Some(fin), mam::Page::Latest | mam::Page::Before(_)) => {
                let previous = catchup.backfill.take();
                self.advance_backfill(previous, &fin, count, oldest)
            }
            (None, mam::Page::After(_)) if error_condition(iq) == "item-not-found" => {
                // XEP-0313 §4.3: the cursor is no longer in the archive
                // (expired). Page back from the newest message instead,
                // which fills the gap as far as a new installation would.
                tracing::warn!("the archive cursor expired; paging back from the newest message");
                let store = self.store();
                // If these writes fail the next session meets the same
                // expired cursor and comes here again.
                let _ = store.set_account_value(MAM_LAST_KEY, None);
                let _ = store.set_account_value(MAM_BACKFILL_KEY, None);
                true
            }
            (None, _) => {
                // The catch-up stays pending: live messages keep being
                // marked ahead of the archive and do not move the cursor
                // past the gap; the next connection tries again.
                tracing::warn!("the archive query failed; trying again on the next connection");
                return self.release_held_events(catchup.held_events);
            }
        };
        if more {
            return self.start_catchup(session, now, catchup.held_events, catchup.pages);
        }
        let cleared = self.store().set_account_value(MAM_PENDING_KEY, None);
        match cleared {
            Ok(()) => self.catchup_pending = false,
            // Harmless: the next connection runs an empty catch-up.
            Err(err) => tracing::warn!(%err, "cannot clear the catch-up marker"),
        }
        self.release_held_events(catchup.held_events);
    }

    /// Gives each new message of an archive page its place in its
    /// conversation (see [`super::ordering`]); returns, per conversation,
    /// the archive id of the page's oldest received message.
    fn place_archive_page(
        &self,
        catchup: &CatchUp,
        messages: &mut [IncomingMessage],
    ) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        let mut store = self.store();
        let edges = catchup.backfill.as_ref().map(|b| &b.edges);
        ordering::place_archive_page(&mut store, &catchup.page, messages, |peer| {
            edges.and_then(|e| e.get(peer).cloned())
        })
    }

    /// Records a backfill page (and, per conversation, the archive id of
    /// its oldest received message); returns whether to query again
    /// (further back, or forward from the newest id once the backfill is
    /// done).
    fn advance_backfill(
        &mut self,
        previous: Option<Backfill>,
        fin: &mam::Fin,
        count: u32,
        oldest: Vec<(String, String)>,
    ) -> bool {
        let store = self.store();
        let Some(newest) = previous
            .as_ref()
            .map(|b| b.newest.clone())
            .or_else(|| fin.last.clone())
        else {
            // An empty archive: nothing to anchor on yet.
            return false;
        };
        let (fetched, mut edges) = previous.map_or((0, HashMap::new()), |b| (b.fetched, b.edges));
        let fetched = fetched + count;
        edges.extend(oldest);
        let done = fin.complete || fin.first.is_none() || fetched >= INITIAL_HISTORY_LIMIT;
        if done {
            let _ = store.set_account_value(MAM_LAST_KEY, Some(&newest));
            let _ = store.set_account_value(MAM_BACKFILL_KEY, None);
        } else {
            let backfill = Backfill {
                newest,
                before: fin.first.clone().unwrap_or_default(),
                fetched,
                edges,
            };
            let json = serde_json::to_string(&backfill).unwrap_or_default();
            let _ = store.set_account_value(MAM_BACKFILL_KEY, Some(&json));
        }
        true
    }

    /// Whether `jid` (bare) is us or a contact allowed to see our presence.
    fn may_see_presence(&self, jid: &str) -> bool {
        jid == self.own.as_str() || self.store().may_see_presence(jid).unwrap_or(false)
    }

    /// Whether the sender of a request may learn we are online: our server,
    /// our own account, or a contact allowed to see our presence.
    fn may_ask(&self, request: &Element) -> bool {
        let Some(from) = request.attr("from") else {
            return true;
        };
        let Ok(from) = from.parse::<jid::Jid>() else {
            return false;
        };
        if from.node().is_none() && from.domain() == self.own.domain() {
            return true;
        }
        self.may_see_presence(from.to_bare().as_str())
    }

    /// Writes the turn's incoming messages in one transaction, then tells
    /// the app and sends the receipts the senders asked for.
    fn flush_inbound(&mut self, session: &mut Session, now: Instant) {
        if self.inbound.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.inbound)
            .into_iter()
            .map(|(m, receipt, encrypted)| (m, encrypted, receipt))
            .collect();
        let batch = self.decrypt_batch(batch);
        let writes = self.take_omemo_writes();
        // During a catch-up, live messages are newer than every page so
        // far: the pages still to come go below them.
        let behind = self.catchup.is_some() || self.catchup_pending;
        let position = if behind {
            Position::AppendAheadOfArchive
        } else {
            Position::Append
        };
        let messages: Vec<IncomingMessage> = batch
            .iter()
            .map(|(m, _)| IncomingMessage {
                position,
                ..m.clone()
            })
            .collect();
        let stored = self.store().insert_incoming_batch_with(&messages, &writes);
        match stored {
            Ok(stored) => {
                self.omemo_committed();
                // Live messages carry their archive id: the next catch-up
                // starts after the newest one we have — unless a catch-up
                // is unfinished, whose gap the cursor must not skip.
                if !behind {
                    if let Some(last) = batch.iter().rev().find_map(|(m, _)| m.stanza_id.clone()) {
                        let _ = self.store().set_account_value(MAM_LAST_KEY, Some(&last));
                    }
                }
                for (message, (_, receipt)) in stored.into_iter().zip(batch) {
                    if let Some(message) = message {
                        match &mut self.catchup {
                            // Told after the archive, to keep the order.
                            Some(c) => c.held_events.push(message),
                            None => self.emit(ClientEvent::MessageReceived(message)),
                        }
                    }
                    // Duplicates get a receipt too: the sender may have
                    // missed the first one.
                    if let Some((to, id)) = receipt {
                        self.send(session, now, &messages::receipt(&to, &id));
                    }
                }
            }
            Err(err) => {
                // Not stored means not acknowledged: no receipts, no `<a/>`
                // covering them and no clean close (which would end the
                // server's session). Dropped, the session stays resumable
                // and the server re-sends them on the next connection.
                tracing::error!(error = %err, "cannot store incoming messages; dropping the connection");
                self.store_failure = Some(err);
                session.handle_input(now, crate::proto::Input::Disconnected);
            }
        }
    }

    fn on_presence(&mut self, element: Element) {
        match presence::parse(&element) {
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
                self.presences
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&from, entry);
                self.emit(ClientEvent::PresenceChanged {
                    jid: from.to_string(),
                    resource,
                    availability,
                    status,
                })
            }
            PresenceUpdate::SubscriptionRequest { from } => {
                self.emit(ClientEvent::SubscriptionRequest {
                    from: from.to_string(),
                })
            }
            PresenceUpdate::SubscriptionChanged { .. } | PresenceUpdate::Ignored => {}
        }
    }

    fn emit_roster(&self) {
        // Read first: a guard in the match would hold the store locked
        // while the listener runs, and a listener that reads the roster
        // would deadlock the connection.
        let roster = self.store().roster();
        match roster {
            Ok(entries) => self.emit(ClientEvent::RosterChanged(entries)),
            Err(err) => tracing::warn!(error = %err, "cannot read roster"),
        }
    }

    fn on_iq(&mut self, session: &mut Session, now: Instant, element: Element) {
        let id = element.attr("id").unwrap_or_default().to_owned();
        let answer = matches!(element.attr("type"), Some("result") | Some("error"));
        if answer && self.omemo.as_ref().is_some_and(|o| o.owns(&id)) {
            let (out, retry) = {
                let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
                let omemo = self.omemo.as_mut().expect("checked above");
                let (mut out, retry) = omemo.on_iq_result(&mut store, &element);
                out.extend(omemo.healing_messages(&mut store));
                (out, retry)
            };
            for stanza in &out {
                self.send(session, now, stanza);
            }
            for id in retry {
                self.send_queued(session, now, id);
            }
            self.emit_new_devices();
            return;
        }
        match element.attr("type") {
            Some("result") | Some("error")
                if self.catchup.as_ref().is_some_and(|c| c.iq_id == id) =>
            {
                self.on_catchup_page(session, now, &element);
            }
            Some("result") | Some("error")
                if self.resume_barrier.as_deref() == Some(id.as_str()) =>
            {
                self.resume_barrier = None;
                self.emit(ClientEvent::CaughtUp);
            }
            Some("result") | Some("error") => {
                if self.roster_request.as_deref() == Some(id.as_str()) {
                    self.roster_request = None;
                    if element.attr("type") == Some("result") {
                        if let Some((entries, ver)) = roster::parse_result(&element) {
                            let written = self.store().replace_roster(&entries, ver.as_deref());
                            if let Err(err) = written {
                                tracing::warn!(error = %err, "cannot store roster");
                            }
                        }
                        self.emit_roster();
                    }
                    return;
                }
                if let Some(reply) = self.pending_iqs.remove(&id) {
                    let outcome = if element.attr("type") == Some("result") {
                        Ok(element)
                    } else {
                        let condition = element
                            .get_child("error", NS_CLIENT)
                            .map(crate::proto::stream_features::error_condition)
                            .unwrap_or_else(|| "undefined-condition".into());
                        Err(ClientError::Refused { condition })
                    };
                    let _ = reply.send(outcome);
                }
            }
            Some("set") if element.has_child("query", NS_ROSTER) => {
                match roster::parse_push(&element, &self.own) {
                    Ok((change, ver)) => {
                        let written = {
                            let mut store = self.store();
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
                        self.send(session, now, &iq_result(&element));
                        self.emit_roster();
                    }
                    Err(rejected) => {
                        tracing::warn!(?rejected, "refusing roster push");
                        self.send(session, now, &iq_error(&element, "service-unavailable"));
                    }
                }
            }
            Some("get") if !self.may_ask(&element) => {
                // A stranger learns nothing, not even that we are online:
                // the same answer as for what we do not support.
                self.send(session, now, &iq_error(&element, "service-unavailable"));
            }
            Some("get") if element.has_child("query", NS_DISCO_INFO) => {
                self.send(session, now, &disco::info_result(&element));
            }
            Some("get") if element.has_child("ping", NS_PING) => {
                self.send(session, now, &iq_result(&element));
            }
            Some("get") | Some("set") => {
                // RFC 6120 §8.4: answer what we do not support.
                self.send(session, now, &iq_error(&element, "service-unavailable"));
            }
            _ => {}
        }
    }
}

impl Handler for ConnectionHandler {
    type Command = Command;

    fn on_event(&mut self, session: &mut Session, now: Instant, event: SessionEvent) {
        match event {
            online @ SessionEvent::Online { .. } => self.on_online(session, now, online),
            SessionEvent::Stanza(element) => match element.name() {
                "message" => self.on_message(element),
                "presence" => self.on_presence(element),
                "iq" => {
                    self.flush_inbound(session, now);
                    self.on_iq(session, now, element)
                }
                _ => {}
            },
            SessionEvent::FastToken(token) => self.persist_fast_token(token.as_ref()),
            SessionEvent::Acked(stanzas) => {
                for stanza in stanzas.iter().filter(|s| s.name() == "message") {
                    let (Some(to), Some(id)) = (stanza.attr("to"), stanza.attr("id")) else {
                        continue;
                    };
                    if stanza.has_child("body", NS_CLIENT) {
                        self.advance(to, id, MessageState::Acked);
                    }
                }
            }
            SessionEvent::Disconnected { error } => {
                self.flush_inbound(session, now);
                if let Some(catchup) = self.catchup.take() {
                    // Stored already; the next catch-up resumes from the
                    // cursor, which only moves when a page completes.
                    for message in catchup.held_events {
                        self.emit(ClientEvent::MessageReceived(message));
                    }
                }
                self.persist_stream_management(session);
                // After a drop presences stay: a resumed session keeps the
                // server's view (nothing is sent again) and a fresh one
                // clears them. After a logout nothing will resume.
                if error.is_none() {
                    self.presences
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
                for (_, reply) in self.pending_iqs.drain() {
                    let _ = reply.send(Err(ClientError::NotConnected));
                }
                self.ended = Some(error);
            }
        }
    }

    fn on_command(
        &mut self,
        session: &mut Session,
        now: Instant,
        command: Command,
    ) -> AfterCommand {
        match command {
            Command::SendQueued(id) => self.send_queued(session, now, id),
            Command::Send(stanza) => self.send(session, now, &stanza),
            Command::Iq(iq, reply) => {
                if !session.is_online() {
                    let _ = reply.send(Err(ClientError::NotConnected));
                } else {
                    let id = iq.attr("id").unwrap_or_default().to_owned();
                    self.pending_iqs.insert(id, reply);
                    self.send(session, now, &iq);
                }
            }
            Command::SetForeground(foreground) => session.set_client_state(now, foreground),
            Command::NetworkLost => {
                self.network_down = true;
                return AfterCommand::Drop;
            }
            // Already connected: nothing to speed up.
            Command::NetworkAvailable => {}
            Command::Close => return AfterCommand::Close,
            Command::Suspend => {
                self.suspended = true;
                return AfterCommand::Drop;
            }
        }
        AfterCommand::Continue
    }

    fn deadline(&self) -> Option<Instant> {
        self.catchup.as_ref().map(|c| c.deadline)
    }

    fn on_deadline(&mut self, session: &mut Session, now: Instant) {
        if self.catchup.as_ref().is_some_and(|c| c.deadline <= now) {
            self.flush_inbound(session, now);
            self.on_catchup_timeout();
        }
    }

    fn end_of_turn(&mut self, session: &mut Session, now: Instant) {
        // Incoming messages first: the acks for them leave the socket only
        // after this turn, so nothing is acknowledged before it is stored.
        self.flush_inbound(session, now);
        if self.store_failure.is_some() {
            return;
        }
        session.mark_handled();
        for stanza in std::mem::take(&mut self.omemo_outbox) {
            self.send(session, now, &stanza);
        }
        self.persist_stream_management(session);
    }
}

/// The defined condition of an error IQ (`undefined-condition` if none).
fn error_condition(iq: &Element) -> String {
    iq.get_child("error", NS_CLIENT)
        .map(crate::proto::stream_features::error_condition)
        .unwrap_or_else(|| "undefined-condition".to_owned())
}

fn iq_result(request: &Element) -> Element {
    crate::features::stanza(
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
    crate::features::stanza(
        "iq",
        &[
            ("type", Some("error")),
            ("id", request.attr("id")),
            ("to", request.attr("from")),
        ],
        vec![error],
    )
}
