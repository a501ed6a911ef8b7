//! The client's side of a running connection, built from small parts that
//! own their state: [`inbound`] (sorting and storing incoming messages),
//! [`outbox`] (sending and tracking ours), [`catchup`] (the archive),
//! [`iq`] (requests both ways), [`presence`] and [`account`] (session state
//! kept between processes). [`ConnectionHandler`] routes the engine's
//! events and the app's commands to them and sends what they return.
//!
//! Order matters: a message is committed to the store before the app hears
//! of it, and a burst of incoming messages is written in one transaction at
//! the end of each driver turn, before the engine may acknowledge it.

pub(crate) mod account;
pub(crate) mod bookmarks;
pub(crate) mod catchup;
pub(crate) mod inbound;
pub(crate) mod iq;
pub(crate) mod outbox;
pub(crate) mod presence;
pub(crate) mod rooms;
pub(crate) mod shared;

#[cfg(test)]
mod scripted_tests;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use jid::BareJid;
use minidom::Element;
use tokio::sync::watch;

use super::events::{ClientEvent, ConnectionState, EventListener};
use super::omemo::Omemo;
use super::{random_id, ClientError};
use crate::features::carbons;
use crate::features::presence::PresenceBook;
use crate::proto::{Session, SessionError, SessionEvent};
use crate::store::{MessageState, Store, StoreError, StoredMessage};
use crate::transport::{AfterCommand, Handler, TransportError};
use account::WrittenSession;
use inbound::{Inbound, Routed};
use iq::{Answered, IqReply, Requests};
use outbox::Outbox;
use presence::Presences;
use shared::Shared;

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
    /// Take these devices of ours off our published OMEMO lists.
    RemoveOmemoDevices(Vec<u32>),
    /// Join a room (XEP-0045) as a nick; the reply carries the nick the
    /// room gave us.
    JoinRoom {
        room: BareJid,
        nick: String,
        /// Create it as this kind of room (refused if it exists).
        create: Option<(crate::features::muc_admin::RoomKind, Option<String>)>,
        reply: rooms::JoinReply,
    },
    LeaveRoom(BareJid),
    /// Change our nick in a room; the reply carries the new nick.
    ChangeNick {
        room: BareJid,
        nick: String,
        reply: rooms::JoinReply,
    },
    /// The user replaced the session with this device (archived already):
    /// build a new one now and tell the device.
    RebuildOmemoSession(String, u32),
}

/// How one connection ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The app logged out: the server's session is closed.
    LoggedOut,
    /// The app suspended the session: dropped, resumable, no reconnect.
    Suspended,
    /// The platform said the network is gone: reconnect once it is back.
    NetworkLost,
    /// The app let go of the client: nobody to reconnect for.
    ClientDropped,
    /// The connection failed (reconnect unless the error is permanent).
    Failed(ClientError),
}

pub(crate) struct ConnectionHandler {
    shared: Shared,
    state: watch::Sender<ConnectionState>,
    outbox: Outbox,
    inbound: Inbound,
    catchup: catchup::CatchUp,
    requests: Requests,
    presences: Presences,
    rooms: rooms::Rooms,
    bookmarks: bookmarks::Bookmarks,
    /// Joins and leaves bookmark notifications asked for during the turn.
    room_actions: Vec<bookmarks::RoomAction>,
    /// The session state as this client last wrote it to the store: when
    /// the store holds something else, another process (a push handler)
    /// used the session meanwhile.
    pub written: WrittenSession,
    /// OMEMO, once our device is loaded (at the first `Online`).
    omemo: Option<Omemo>,
    /// OMEMO stanzas produced outside a send (while reading messages):
    /// sent at the end of the turn.
    omemo_outbox: Vec<Element>,
    /// How the session ended (`Some(None)`: cleanly), once it has.
    ended: Option<Option<SessionError>>,
    /// Incoming stanzas could not be stored: the connection was dropped
    /// without acknowledging them (the server keeps and re-sends them), and
    /// this is why.
    store_failure: Option<StoreError>,
    /// What the app asked that ends the connection without an error.
    stop_request: Option<Outcome>,
    /// Live messages' stanza-ids are our server's (see [`inbound::route`]).
    /// Until the server first answers disco#info this stays true, as
    /// before stanza-ids were checked (a stamping server, like Prosody's
    /// mod_mam, strips forged ones anyway).
    trust_stanza_ids: bool,
}

impl ConnectionHandler {
    pub fn new(
        store: Arc<Mutex<Store>>,
        listener: Arc<dyn EventListener>,
        own: BareJid,
        state: watch::Sender<ConnectionState>,
        presences: Arc<Mutex<PresenceBook>>,
    ) -> Self {
        let shared = Shared {
            store,
            listener,
            own,
        };
        let written = WrittenSession::read(&shared);
        Self {
            shared,
            state,
            outbox: Outbox::default(),
            inbound: Inbound::default(),
            catchup: catchup::CatchUp::default(),
            requests: Requests::default(),
            presences: Presences::new(presences),
            rooms: rooms::Rooms::default(),
            bookmarks: bookmarks::Bookmarks::default(),
            room_actions: Vec::new(),
            written,
            omemo: None,
            omemo_outbox: Vec::new(),
            ended: None,
            store_failure: None,
            stop_request: None,
            trust_stanza_ids: true,
        }
    }

    /// What the store holds now of the session state (another process may
    /// have written it).
    pub fn stored_session(&self) -> WrittenSession {
        WrittenSession::read(&self.shared)
    }

    /// Before a connection: forgets what the last one left half done (it
    /// may have ended in a panic). Messages of an unwritten batch come
    /// again from the server; nobody waits for answers any more.
    pub fn begin_connection(&mut self) {
        self.inbound.clear();
        for message in self.catchup.on_disconnected() {
            self.emit(ClientEvent::MessageReceived(message));
        }
        self.requests.on_disconnected();
        self.ended = None;
        self.store_failure = None;
        self.stop_request = None;
    }

    /// Loads (or creates) our OMEMO device; a store failure leaves OMEMO
    /// off for this connection rather than failing the login.
    fn load_omemo(&mut self) {
        if self.omemo.is_some() {
            return;
        }
        let loaded = Omemo::load_or_create(&mut self.shared.store(), self.shared.own.clone());
        match loaded {
            Ok(omemo) => self.omemo = Some(omemo),
            Err(err) => {
                tracing::warn!(error = %err, "OMEMO unavailable: cannot read or create our device")
            }
        }
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
        let stanzas = omemo.after_commit(&mut self.shared.store());
        self.omemo_outbox.extend(stanzas);
    }

    fn emit(&self, event: ClientEvent) {
        self.shared.emit(event);
    }

    fn send(&self, session: &mut Session, now: Instant, stanza: &Element) {
        if session.send_stanza(now, stanza).is_err() {
            tracing::debug!("stanza dropped: session not online");
        }
    }

    fn send_all(&self, session: &mut Session, now: Instant, stanzas: &[Element]) {
        for stanza in stanzas {
            self.send(session, now, stanza);
        }
    }

    fn send_queued(&mut self, session: &mut Session, now: Instant, id: i64) {
        if !session.is_online() {
            return;
        }
        let out = self
            .outbox
            .send_queued(&self.shared, self.omemo.as_mut(), id, &|room| {
                self.rooms.is_joined(room)
            });
        self.send_all(session, now, &out);
    }

    fn flush_outbox(&mut self, session: &mut Session, now: Instant) {
        let rooms = &self.rooms;
        let out = self
            .outbox
            .flush(&self.shared, self.omemo.as_mut(), &|room| {
                rooms.is_joined(room)
            });
        self.send_all(session, now, &out);
    }

    fn start_catchup(&mut self, session: &mut Session, now: Instant) {
        let query = self.catchup.start(&self.shared, now, Vec::new(), 0);
        self.send(session, now, &query);
    }

    /// Handles [`SessionEvent::Online`]: publish the state, then (for a
    /// fresh session) fetch the roster and announce presence, and flush the
    /// outbox except what the engine already re-sent on resumption.
    fn on_online(&mut self, session: &mut Session, now: Instant, event: SessionEvent) {
        let SessionEvent::Online {
            jid,
            stream_management,
            roster_versioning,
            round_trips,
            mechanism,
            carbons_enabled,
            resumed,
            resent_ids,
            binding_rejected,
        } = event
        else {
            return;
        };
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
        self.written
            .persist_fast_token(&self.shared, session.fast_token());
        account::pin_authentication(&self.shared, mechanism, binding_rejected);
        self.load_omemo();
        self.catchup.on_online(&self.shared);
        let known = self
            .shared
            .store()
            .get(account::AccountState::SERVER_STANZA_IDS)
            .ok()
            .flatten();
        self.trust_stanza_ids = known != Some(false);
        self.outbox
            .on_online(&self.shared, stream_management, &resent_ids);
        if resumed {
            // The server kept our presence and roster state; what it did
            // not acknowledge was re-sent by the engine.
            self.flush_outbox(session, now);
            if self.catchup.is_pending() {
                tracing::info!("an archive catch-up was cut short; running it again");
                return self.start_catchup(session, now);
            }
            // XEP-0410 §4: a room may have dropped us while we were away
            // (the server ended our occupancy when the session hibernated).
            let pings = self.rooms.ping_all(now);
            self.send_all(session, now, &pings);
            if let Some(fetch) = self.bookmarks.on_online(true) {
                self.send(session, now, &fetch);
            }
            // Stream management guarantees nothing was missed, but the
            // server re-sends its backlog right after resuming.
            let barrier = self.requests.resume_barrier();
            return self.send(session, now, &barrier);
        }
        self.presences.on_fresh_session();
        // RFC 6121 §2.2: fetch the roster before sending initial presence.
        let fetch = self.requests.fetch_roster(&self.shared, roster_versioning);
        self.send(session, now, &fetch);
        let own_presence = self.presences.own_presence(&self.shared);
        self.send(session, now, &own_presence);
        // A fresh session is in no room (a resumed one keeps them): join
        // again every room we were in, after our presence.
        let rejoins = self.rooms.on_fresh_session(&self.shared);
        self.send_all(session, now, &rejoins);
        if let Some(fetch) = self.bookmarks.on_online(false) {
            self.send(session, now, &fetch);
        }
        let discover = self.requests.discover_server(&self.shared);
        self.send(session, now, &discover);
        if !carbons_enabled {
            self.send(session, now, &carbons::enable(&random_id()));
        }
        // Prosody ties push to the session that sent <enable/> (it decides
        // pushes for a hibernated session's queue): every fresh session
        // registers again, with the same key, so pushes keep coming.
        let registration = super::push::load_registration(&self.shared.store());
        if let Ok(Some(registration)) = registration {
            let enable = crate::features::push::enable(
                &random_id(),
                &registration,
                registration.secret.as_deref(),
            );
            self.send(session, now, &enable);
        }
        self.start_catchup(session, now);
        self.flush_outbox(session, now);
        // OMEMO upkeep last: our device lists, and our bundle only when it
        // changed (the user's history and messages go first).
        let upkeep = match self.omemo.as_mut() {
            Some(omemo) => omemo.on_online(&mut self.shared.store(), super::now_ms()),
            None => Vec::new(),
        };
        self.send_all(session, now, &upkeep);
    }

    /// A join completed: what waited in the outbox for the room goes out.
    fn after_rooms(&mut self, session: &mut Session, now: Instant) {
        if self.rooms.take_joined() {
            self.flush_outbox(session, now);
        }
    }

    /// Joins and leaves the bookmarks asked for.
    fn apply_room_actions(&mut self, session: &mut Session, now: Instant) {
        for action in std::mem::take(&mut self.room_actions) {
            let out = match action {
                bookmarks::RoomAction::Join { room, nick } => {
                    self.rooms.join_bookmarked(room, nick, now)
                }
                bookmarks::RoomAction::Leave(room) => self.rooms.leave(&room).into_iter().collect(),
            };
            self.send_all(session, now, &out);
        }
    }

    fn on_message(&mut self, element: Element) {
        if let Some(invite) = crate::features::muc_invites::parse_invite(&element) {
            // An event only, whoever sent it: the user decides.
            self.emit(ClientEvent::RoomInvite {
                room: invite.room.to_string(),
                from: invite.from,
                reason: invite.reason,
                password: invite.password,
                direct: invite.direct,
            });
            return;
        }
        if let Some(actions) = self.bookmarks.on_message(&self.shared, &element) {
            self.room_actions.extend(actions);
            return;
        }
        match self.rooms.on_message(&self.shared, &element) {
            rooms::RoomMessage::NotOurs => {}
            rooms::RoomMessage::Taken => return,
            rooms::RoomMessage::Live(message) => return self.inbound.push(*message, None, None),
            rooms::RoomMessage::Dropped(why) => {
                tracing::warn!(why, "dropping a room message");
                return;
            }
        }
        if let Some(omemo) = self.omemo.as_mut() {
            let update = omemo.on_pep_event(&mut self.shared.store(), &element);
            if let Some(stanzas) = update {
                self.omemo_outbox.extend(stanzas);
                self.emit_new_devices();
                return;
            }
        }
        let routed = inbound::route(&element, &self.shared.own, self.trust_stanza_ids, |jid| {
            self.shared.may_see_presence(jid)
        });
        match routed {
            Routed::Live {
                message,
                receipt,
                encrypted,
            } => self.inbound.push(message, receipt, encrypted),
            Routed::Archived {
                query_id,
                message,
                encrypted,
            } => {
                if !self.catchup.add_result(&query_id, message, encrypted) {
                    tracing::warn!("dropping a MAM result for a query we did not make");
                }
            }
            Routed::Receipt { from, id } => {
                outbox::advance(&self.shared, from.as_str(), &id, MessageState::Delivered)
            }
            Routed::Bounce { from, id } => {
                outbox::advance(&self.shared, from.as_str(), &id, MessageState::Failed)
            }
            Routed::Dropped { why: Some(why) } => tracing::warn!(why, "dropping a message"),
            Routed::Dropped { why: None } => {}
        }
    }

    /// Writes the turn's incoming messages in one transaction, then tells
    /// the app and sends the receipts the senders asked for. A failed write
    /// drops the connection: not stored means not acknowledged (no
    /// receipts, no `<a/>` covering them, no clean close that would end the
    /// server's session); the server re-sends them on the next connection.
    fn flush_inbound(&mut self, session: &mut Session, now: Instant) {
        if self.inbound.is_empty() {
            return;
        }
        let ahead = self.catchup.live_is_ahead_of_archive();
        let catchup = &self.catchup;
        let flushed = self
            .inbound
            .flush(&self.shared, self.omemo.as_mut(), ahead, |newest| {
                catchup.live_cursor(newest)
            });
        match flushed {
            Ok(flushed) => {
                self.omemo_outbox.extend(flushed.omemo_stanzas);
                self.omemo_committed();
                for message in flushed.new_messages {
                    // Told after the archive, to keep the order.
                    for message in self.catchup.hold(message) {
                        self.emit(ClientEvent::MessageReceived(message));
                    }
                }
                self.send_all(session, now, &flushed.receipts);
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot store incoming messages; dropping the connection");
                self.store_failure = Some(err);
                session.handle_input(now, crate::proto::Input::Disconnected);
            }
        }
    }

    /// The catch-up ended: the live messages held back are told now, then
    /// that the app has caught up.
    fn release_held_events(&self, held: Vec<StoredMessage>) {
        for message in held {
            self.emit(ClientEvent::MessageReceived(message));
        }
        self.emit(ClientEvent::CaughtUp);
    }

    fn on_catchup_page(&mut self, session: &mut Session, now: Instant, iq: &Element) {
        let end = self
            .catchup
            .on_page_end(&self.shared, self.omemo.as_mut(), now, iq);
        if end.committed {
            self.omemo_outbox.extend(end.omemo_stanzas);
            self.omemo_committed();
        }
        for message in end.stored {
            self.emit(ClientEvent::MessageReceived(message));
        }
        if let Some(query) = end.next_query {
            self.send(session, now, &query);
        }
        if let Some(held) = end.released {
            self.release_held_events(held);
        }
    }

    fn on_iq(&mut self, session: &mut Session, now: Instant, element: Element) {
        let id = element.attr("id").unwrap_or_default().to_owned();
        let answer = matches!(element.attr("type"), Some("result") | Some("error"));
        if !answer {
            if matches!(element.attr("type"), Some("get") | Some("set")) {
                let reply = iq::answer_request(&self.shared, &element);
                self.send(session, now, &reply);
            }
            return;
        }
        if let Some(actions) = self.bookmarks.on_iq(&self.shared, &element) {
            self.room_actions.extend(actions);
            self.apply_room_actions(session, now);
            return;
        }
        if let Some(out) = self.rooms.on_iq(&self.shared, &element) {
            self.send_all(session, now, &out);
            self.after_rooms(session, now);
            return;
        }
        if let Some(omemo) = self.omemo.as_mut().filter(|o| o.owns(&id)) {
            let (out, retry) = {
                let mut store = self.shared.store();
                let (mut out, retry) = omemo.on_iq_result(&mut store, &element);
                out.extend(omemo.healing_messages(&mut store));
                (out, retry)
            };
            self.send_all(session, now, &out);
            for id in retry {
                self.send_queued(session, now, id);
            }
            return self.emit_new_devices();
        }
        if self.catchup.owns_iq(&id) {
            // This turn's live messages first, their events still held back.
            self.flush_inbound(session, now);
            return self.on_catchup_page(session, now, &element);
        }
        match self.requests.on_answer(&self.shared, element) {
            Answered::ResumeBarrier => self.emit(ClientEvent::CaughtUp),
            Answered::ServerInfo { stanza_ids } => self.trust_stanza_ids = stanza_ids,
            Answered::Roster | Answered::App | Answered::Unknown => {}
        }
    }
}

impl Handler for ConnectionHandler {
    type Command = Command;
    type Outcome = Outcome;

    fn on_event(&mut self, session: &mut Session, now: Instant, event: SessionEvent) {
        self.rooms.start_turn(now);
        match event {
            online @ SessionEvent::Online { .. } => self.on_online(session, now, online),
            SessionEvent::Stanza(element) => match element.name() {
                "message" => self.on_message(element),
                "presence" => {
                    let (ours, out) = self.rooms.on_presence(&self.shared, &element);
                    if ours {
                        self.send_all(session, now, &out);
                        self.after_rooms(session, now);
                    } else {
                        self.presences.on_presence(&self.shared, &element)
                    }
                }
                "iq" => {
                    self.flush_inbound(session, now);
                    self.on_iq(session, now, element)
                }
                _ => {}
            },
            SessionEvent::FastToken(token) => self
                .written
                .persist_fast_token(&self.shared, token.as_ref()),
            SessionEvent::ServerFeatures(features) => {
                let store = self.shared.store();
                if let Err(err) = store.put(account::AccountState::SERVER_FEATURES, Some(&features))
                {
                    // Costs a round trip on the next login, nothing more.
                    tracing::warn!(%err, "could not keep the server's features");
                }
            }
            SessionEvent::Acked(stanzas) => self.outbox.on_acked(&self.shared, &stanzas),
            SessionEvent::Disconnected { error } => {
                self.flush_inbound(session, now);
                for message in self.catchup.on_disconnected() {
                    self.emit(ClientEvent::MessageReceived(message));
                }
                self.written
                    .persist_stream_management(&self.shared, session);
                if error.is_none() {
                    // Logged out: the token stands in for the password, so
                    // it does not stay behind on the device.
                    session.set_fast_token(None);
                    self.written.persist_fast_token(&self.shared, None);
                }
                self.presences.on_disconnected(error.is_none());
                if error.is_none() {
                    self.rooms.on_disconnected(&self.shared);
                }
                self.requests.on_disconnected();
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
                    // The caller may have stopped waiting.
                    let _ = reply.send(Err(ClientError::NotConnected));
                } else {
                    let id = iq.attr("id").unwrap_or_default().to_owned();
                    self.requests.track(id, reply);
                    self.send(session, now, &iq);
                }
            }
            Command::SetForeground(foreground) => {
                session.set_client_state(now, foreground);
                let out = self.rooms.set_active(foreground, now);
                self.send_all(session, now, &out);
            }
            Command::RemoveOmemoDevices(devices) => {
                let out = match self.omemo.as_mut() {
                    Some(omemo) => omemo.remove_own_devices(&self.shared.store(), &devices),
                    None => Vec::new(),
                };
                self.send_all(session, now, &out);
            }
            Command::JoinRoom {
                room,
                nick,
                create,
                reply,
            } => {
                let out = self.rooms.join(room, nick, reply, create, now);
                self.send_all(session, now, &out);
            }
            Command::ChangeNick { room, nick, reply } => {
                let out = self.rooms.change_nick(&room, nick, reply);
                self.send_all(session, now, &out);
            }
            Command::LeaveRoom(room) => {
                if let Some(presence) = self.rooms.leave(&room) {
                    self.send(session, now, &presence);
                }
            }
            Command::RebuildOmemoSession(jid, device) => {
                let out = match self.omemo.as_mut() {
                    Some(omemo) => omemo.rebuild_session(&self.shared.store(), &jid, device),
                    None => Vec::new(),
                };
                self.send_all(session, now, &out);
            }
            Command::NetworkLost => {
                self.stop_request = Some(Outcome::NetworkLost);
                return AfterCommand::Drop;
            }
            // Already connected: nothing to speed up.
            Command::NetworkAvailable => {}
            Command::Close => return AfterCommand::Close,
            Command::Suspend => {
                self.stop_request = Some(Outcome::Suspended);
                return AfterCommand::Suspend;
            }
        }
        AfterCommand::Continue
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.catchup.deadline(), self.rooms.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadline(&mut self, session: &mut Session, now: Instant) {
        if self.rooms.deadline().is_some_and(|at| at <= now) {
            let out = self.rooms.on_deadline(&self.shared, now);
            self.send_all(session, now, &out);
        }
        if self.catchup.deadline().is_some_and(|at| at <= now) {
            self.flush_inbound(session, now);
            if let Some(held) = self.catchup.on_timeout(now) {
                self.release_held_events(held);
            }
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
        self.apply_room_actions(session, now);
        let rooms = self.rooms.end_of_turn(now);
        self.send_all(session, now, &rooms);
        self.written
            .persist_stream_management(&self.shared, session);
    }

    fn outcome(&mut self, commands_open: bool, failure: Option<TransportError>) -> Outcome {
        if !commands_open {
            return Outcome::ClientDropped;
        }
        if let Some(err) = failure {
            return Outcome::Failed(err.into());
        }
        // Retried: the server re-sends what was not stored.
        if let Some(err) = self.store_failure.take() {
            return Outcome::Failed(ClientError::Store(err));
        }
        match (self.stop_request.take(), self.ended.take().flatten()) {
            (Some(requested), _) => requested,
            (None, None) => Outcome::LoggedOut,
            (None, Some(err)) => Outcome::Failed(err.into()),
        }
    }
}
