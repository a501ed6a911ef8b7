//! The group chats (XEP-0045) of a running connection: joins in flight
//! (disco#info of the room first, then the join presence), who is in each
//! joined room, what the room says about us (joined, removed, refused),
//! its messages, and the catch-up from its archive (XEP-0313 against the
//! room) during which its live messages are held back; a bounded join
//! queue, rejoining after a fresh session, and self-ping (XEP-0410) so a
//! room that silently lost us is noticed and joined again. Bookmarks come
//! in a later slice of the group-chat issue.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use jid::BareJid;
use minidom::Element;
use tokio::sync::oneshot;

use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::client::ClientError;
use crate::client::{now_ms, random_id};
use crate::features::disco;
use crate::features::mam::{self, MamMessage, Page};
use crate::features::messages::format_xep0082_ms;
use crate::features::muc::{self, JoinHistory, Occupant, RoomPresence};
use crate::features::muc_admin::{self, RoomKind};
use crate::features::muc_messages::{self, GroupMessage};
use crate::features::omemo::encrypted_child;
use crate::ns::NS_MAM;
use crate::store::{Direction, IncomingMessage, MessageSecurity, Position, RoomSender};

/// The answer to a join: our nick as the room set it.
pub(crate) type JoinReply = oneshot::Sender<Result<String, ClientError>>;

/// The room features that change what we do (XEP-0045 §6.4, XEP-0313,
/// XEP-0359).
const FEATURE_MAM: &str = "urn:xmpp:mam:2";
const FEATURE_STANZA_IDS: &str = "urn:xmpp:sid:0";

/// A first join fetches the newest page of the room's archive, no more
/// (Conversations does the same); later joins page forward from the last
/// message stored, up to this many (older gaps stay in the archive).
const FIRST_JOIN_PAGE: u32 = 50;
const CATCHUP_PAGE: u32 = 100;
const CATCHUP_CAP: usize = 750;
/// Joins in flight at once: many rooms at login must not flood the server
/// (profanity#517: servers cut clients that join dozens at once).
const MAX_JOINS_IN_FLIGHT: usize = 3;
/// How often, while the app is in use, we ask each room whether we are
/// still in it (XEP-0410; Dino: 3 min, Monal: 1 h on iOS).
const SELF_PING_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a room may take to let us in (disco, join, configuration):
/// one that never answers must not hold a join slot (or its caller) for
/// ever.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a self-ping may go unanswered before we ask again later.
const SELF_PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Live messages held back while the room's archive catch-up runs; beyond
/// this they are dropped (the catch-up pages forward until it is complete,
/// so the archive delivers them).
const MAX_HELD: usize = 1000;

struct Room {
    nick: String,
    joined: bool,
    occupants: BTreeMap<String, Occupant>,
    waiting: Option<JoinReply>,
    /// The id of the configuration we submitted for a room we created:
    /// the join completes when the room takes it (until then it is locked
    /// to everyone else).
    configuring: Option<String>,
    /// The disco#info request sent before joining.
    disco: Option<String>,
    features: BTreeSet<String>,
    catchup: Option<CatchUp>,
    /// Waiting in the join queue.
    queued: bool,
    /// A self-ping in flight: its id and when it counts as unanswered.
    pinging: Option<(String, Instant)>,
    /// When a join in flight gives up.
    join_deadline: Option<Instant>,
    /// We are creating the room: the configuration to submit once it
    /// exists (and a refusal if it existed already).
    create: Option<(RoomKind, Option<String>)>,
    /// The room we created took its configuration; its features are being
    /// asked again (they decide archive catch-up and stanza-id trust).
    refreshing: bool,
    /// A nick change in flight (§7.6): the nick asked for, and who waits.
    renaming: Option<(String, JoinReply)>,
    /// The user left; the room has not confirmed yet.
    leaving: bool,
}

impl Room {
    fn new(nick: String, waiting: Option<JoinReply>) -> Room {
        Room {
            nick,
            joined: false,
            occupants: BTreeMap::new(),
            waiting,
            configuring: None,
            disco: None,
            features: BTreeSet::new(),
            catchup: None,
            queued: true,
            pinging: None,
            join_deadline: None,
            create: None,
            refreshing: false,
            renaming: None,
            leaving: false,
        }
    }

    /// Out of the room as far as we know: back in the join queue, with
    /// no occupant left behind (no ghosts, Conversations#1890).
    fn requeue(&mut self, shared: &Shared, jid: &BareJid) {
        self.joined = false;
        self.configuring = None;
        self.disco = None;
        self.catchup = None;
        self.pinging = None;
        self.queued = true;
        self.join_deadline = None;
        self.refreshing = false;
        if let Some((_, waiting)) = self.renaming.take() {
            let _ = waiting.send(Err(ClientError::NotConnected));
        }
        if !self.occupants.is_empty() {
            self.occupants.clear();
            shared.emit(ClientEvent::RoomOccupantsChanged {
                room: jid.to_string(),
                occupants: Vec::new(),
            });
        }
    }

    fn in_flight(&self) -> bool {
        !self.joined && !self.queued
    }
}

/// A catch-up from the room's archive in flight.
struct CatchUp {
    iq_id: String,
    query_id: String,
    first_join: bool,
    page: Vec<IncomingMessage>,
    held: Vec<IncomingMessage>,
    fetched: usize,
}

/// What a `<message/>` was to the rooms.
pub(crate) enum RoomMessage {
    /// Not a room's: for the 1:1 path.
    NotOurs,
    /// Taken (an archive result, a held live message, a subject).
    Taken,
    /// A live room message to store with this turn's batch.
    Live(Box<IncomingMessage>),
    /// Refused, and why.
    Dropped(&'static str),
}

#[derive(Default)]
pub(crate) struct Rooms {
    rooms: HashMap<BareJid, Room>,
    /// A join completed since the last look: messages queued for the room
    /// may go out now.
    joined_since: bool,
    /// Rooms waiting for a join slot, in order.
    queue: VecDeque<BareJid>,
    /// Stanzas produced outside a call that returns them (a self-ping
    /// decided while reading a message): sent at the end of the turn.
    out: Vec<Element>,
    /// The app is in use: rooms are self-pinged periodically.
    inactive: bool,
    next_periodic_ping: Option<Instant>,
    /// The time of the turn being handled (for pings decided while reading
    /// a message, which carries no clock).
    now: Option<Instant>,
}

impl Rooms {
    /// Queues a join of `room` as `nick`: what to send now (the room's
    /// disco#info when a join slot is free). A room we are in answers at
    /// once; one being joined answers when that join ends.
    pub fn join(
        &mut self,
        room: BareJid,
        nick: String,
        reply: JoinReply,
        create: Option<(RoomKind, Option<String>)>,
        now: Instant,
    ) -> Vec<Element> {
        self.now = Some(now);
        if self.rooms.get(&room).is_some_and(|r| r.leaving) {
            // Joining again before the room confirmed our leave: a new
            // join (the confirmation, when it comes, is ignored).
            self.rooms.remove(&room);
        }
        if let Some(existing) = self.rooms.get_mut(&room) {
            if existing.joined && create.is_some() {
                let _ = reply.send(Err(ClientError::Refused {
                    condition: "room-exists".into(),
                }));
            } else if existing.joined {
                let _ = reply.send(Ok(existing.nick.clone()));
            } else if let Some(previous) = existing.waiting.replace(reply) {
                let _ = previous.send(Err(ClientError::Refused {
                    condition: "superseded".into(),
                }));
            }
            return Vec::new();
        }
        if room.with_resource_str(&nick).is_err() {
            let _ = reply.send(Err(ClientError::InvalidJid));
            return Vec::new();
        }
        let mut state = Room::new(nick, Some(reply));
        state.create = create;
        self.rooms.insert(room.clone(), state);
        self.queue.push_back(room);
        self.pump();
        self.take_output()
    }

    /// Joins `room` for a bookmark (nobody waits for the answer), unless
    /// we are in it or joining already.
    pub fn join_bookmarked(&mut self, room: BareJid, nick: String, now: Instant) -> Vec<Element> {
        self.now = Some(now);
        if self.rooms.contains_key(&room) || room.with_resource_str(&nick).is_err() {
            return Vec::new();
        }
        self.rooms.insert(room.clone(), Room::new(nick, None));
        self.queue.push_back(room);
        self.pump();
        self.take_output()
    }

    /// Asks `room` for a new nick (§7.6): the presence to send. The answer
    /// (the room's 303 and our presence under the new nick, or an error
    /// such as a taken nick, which leaves us in the room as we were)
    /// reaches `reply`.
    pub fn change_nick(&mut self, room: &BareJid, nick: String, reply: JoinReply) -> Vec<Element> {
        let Some(state) = self.rooms.get_mut(room).filter(|r| r.joined) else {
            let _ = reply.send(Err(ClientError::Refused {
                condition: "not-a-room-we-joined".into(),
            }));
            return Vec::new();
        };
        if state.renaming.is_some() {
            let _ = reply.send(Err(ClientError::Refused {
                condition: "nick-change-in-progress".into(),
            }));
            return Vec::new();
        }
        let Ok(occupant) = room.with_resource_str(&nick) else {
            let _ = reply.send(Err(ClientError::InvalidJid));
            return Vec::new();
        };
        state.renaming = Some((nick, reply));
        vec![crate::features::stanza(
            "presence",
            &[("to", Some(occupant.as_str()))],
            vec![],
        )]
    }

    /// Starts queued joins while slots are free (disco#info first).
    fn pump(&mut self) {
        while self.rooms.values().filter(|r| r.in_flight()).count() < MAX_JOINS_IN_FLIGHT {
            let Some(jid) = self.queue.pop_front() else {
                return;
            };
            let Some(room) = self.rooms.get_mut(&jid).filter(|r| r.queued) else {
                continue;
            };
            room.queued = false;
            room.join_deadline = self.now.map(|now| now + JOIN_TIMEOUT);
            let id = random_id();
            self.out.push(disco::info_query(&id, jid.as_str()));
            room.disco = Some(id);
        }
    }

    /// What waits to be sent.
    pub fn take_output(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.out)
    }

    /// A fresh session is in no room: every room we were in (or joining)
    /// is joined again, through the queue. Its caller, if any, still waits.
    pub fn on_fresh_session(&mut self, shared: &Shared) -> Vec<Element> {
        self.queue.clear();
        let mut jids: Vec<BareJid> = self.rooms.keys().cloned().collect();
        jids.sort();
        for jid in jids {
            if self.rooms.get(&jid).is_some_and(|r| r.leaving) {
                self.rooms.remove(&jid);
                shared.emit(ClientEvent::RoomLeft {
                    room: jid.to_string(),
                    reason: "left".into(),
                });
                continue;
            }
            if let Some(room) = self.rooms.get_mut(&jid) {
                room.requeue(shared, &jid);
                self.queue.push_back(jid);
            }
        }
        self.pump();
        self.take_output()
    }

    /// Asks every room we are in whether we still are (XEP-0410): after a
    /// resumption, when the app comes back to the foreground, periodically.
    pub fn ping_all(&mut self, now: Instant) -> Vec<Element> {
        let jids: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.joined)
            .map(|(j, _)| j.clone())
            .collect();
        for jid in jids {
            self.ping(&jid, now);
        }
        self.next_periodic_ping = (!self.inactive).then(|| now + SELF_PING_INTERVAL);
        self.take_output()
    }

    /// A self-ping of `room` to the nick the room gave us, unless one is
    /// in flight or we are not (yet) in the room.
    fn ping(&mut self, jid: &BareJid, now: Instant) {
        // XEP-0410 §4: not during a nick change (the room may answer for
        // the old nick or the new one).
        let Some(room) = self
            .rooms
            .get_mut(jid)
            .filter(|r| r.joined && !r.leaving && r.pinging.is_none() && r.renaming.is_none())
        else {
            return;
        };
        let Ok(occupant) = jid.with_resource_str(&room.nick) else {
            return;
        };
        let id = random_id();
        self.out.push(muc::self_ping(&id, &occupant));
        room.pinging = Some((id, now + SELF_PING_TIMEOUT));
    }

    /// The app came to the foreground (pinging every room now and then
    /// periodically) or went to the background (no periodic pings: the
    /// radio sleeps).
    pub fn set_active(&mut self, active: bool, now: Instant) -> Vec<Element> {
        let was_inactive = std::mem::replace(&mut self.inactive, !active);
        if !active {
            self.next_periodic_ping = None;
            return Vec::new();
        }
        if was_inactive {
            return self.ping_all(now);
        }
        Vec::new()
    }

    /// End of a turn: what waits to be sent, and the periodic self-ping
    /// round scheduled once we are in a room while the app is in use.
    /// The turn's clock, before its stanzas are handled.
    pub fn start_turn(&mut self, now: Instant) {
        self.now = Some(now);
    }

    pub fn end_of_turn(&mut self, now: Instant) -> Vec<Element> {
        if self.next_periodic_ping.is_none()
            && !self.inactive
            && self.rooms.values().any(|r| r.joined)
        {
            self.next_periodic_ping = Some(now + SELF_PING_INTERVAL);
        }
        self.take_output()
    }

    /// The earliest self-ping deadline (an unanswered ping, the next
    /// periodic round).
    pub fn deadline(&self) -> Option<Instant> {
        let pings = self
            .rooms
            .values()
            .filter_map(|r| r.pinging.as_ref().map(|p| p.1));
        let joins = self
            .rooms
            .values()
            .filter(|r| r.in_flight())
            .filter_map(|r| r.join_deadline);
        pings.chain(joins).chain(self.next_periodic_ping).min()
    }

    /// Deadlines reached: an unanswered self-ping means "ask again later"
    /// (XEP-0410 §3.2); the periodic round pings every room.
    pub fn on_deadline(&mut self, shared: &Shared, now: Instant) -> Vec<Element> {
        self.now = Some(now);
        for room in self.rooms.values_mut() {
            if room.pinging.as_ref().is_some_and(|p| p.1 <= now) {
                room.pinging = None;
            }
        }
        let stalled: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.in_flight() && r.join_deadline.is_some_and(|at| at <= now))
            .map(|(j, _)| j.clone())
            .collect();
        for jid in stalled {
            tracing::info!("a room did not answer our join in time");
            if let Some(room) = self.rooms.remove(&jid) {
                if let Some(waiting) = room.waiting {
                    let _ = waiting.send(Err(ClientError::Timeout));
                }
            }
            shared.emit(ClientEvent::RoomLeft {
                room: jid.to_string(),
                reason: "timeout".into(),
            });
        }
        self.pump();
        if self.next_periodic_ping.is_some_and(|at| at <= now) {
            let mut out = self.take_output();
            out.extend(self.ping_all(now));
            return out;
        }
        self.take_output()
    }

    /// Whether we are in `room` (messages to it may go out).
    pub fn is_joined(&self, room: &str) -> bool {
        room.parse::<BareJid>()
            .ok()
            .and_then(|r| self.rooms.get(&r))
            .is_some_and(|r| r.joined)
    }

    /// Leaves `room`: the presence to send (none if we are not in it). The
    /// room's answer (our unavailable presence) ends it, with `RoomLeft`.
    pub fn leave(&mut self, room: &BareJid) -> Option<Element> {
        let state = self.rooms.get_mut(room)?;
        let occupant = room.with_resource_str(&state.nick).ok()?;
        if !state.joined {
            // Not in yet (queued, or asking): forget it; a presence sent
            // already is undone by the leave.
            let sent = state.in_flight();
            if let Some(state) = self.rooms.remove(room) {
                if let Some(waiting) = state.waiting {
                    let _ = waiting.send(Err(ClientError::Refused {
                        condition: "left".into(),
                    }));
                }
            }
            self.pump();
            return sent.then(|| muc::leave(&occupant));
        }
        // Out as far as we are concerned: no rejoin, no self-ping, until
        // the room confirms.
        state.leaving = true;
        Some(muc::leave(&occupant))
    }

    /// We logged out (or suspended): out of every room, joins in flight
    /// fail; the app is told, so no occupant lingers.
    pub fn on_disconnected(&mut self, shared: &Shared) {
        self.queue.clear();
        self.next_periodic_ping = None;
        for (room, state) in self.rooms.drain() {
            if let Some(waiting) = state.waiting {
                let _ = waiting.send(Err(ClientError::NotConnected));
            }
            shared.emit(ClientEvent::RoomLeft {
                room: room.to_string(),
                reason: "disconnected".into(),
            });
        }
    }

    /// A presence from one of our rooms: handled here (`true`) or not ours.
    /// Returns stanzas to send too (the configuration of a room we created).
    pub fn on_presence(&mut self, shared: &Shared, element: &Element) -> (bool, Vec<Element>) {
        let Some(parsed) = muc::parse(element) else {
            return (false, Vec::new());
        };
        let room_jid = match &parsed {
            RoomPresence::Available { room, .. }
            | RoomPresence::Unavailable { room, .. }
            | RoomPresence::Error { room, .. } => room.clone(),
        };
        let Some(room) = self.rooms.get_mut(&room_jid) else {
            return (false, Vec::new());
        };
        let mut out = Vec::new();
        match parsed {
            RoomPresence::Error { error, .. } if room.joined => {
                // In the room already: a refused nick change (or presence
                // update) leaves us there as we were.
                if let Some((_, waiting)) = room.renaming.take() {
                    let _ = waiting.send(Err(ClientError::Refused {
                        condition: format!("{error:?}"),
                    }));
                }
            }
            RoomPresence::Error { error, .. } => {
                let was_joined = room.joined;
                let failed = self.rooms.remove(&room_jid);
                if let Some(waiting) = failed.and_then(|r| r.waiting) {
                    let _ = waiting.send(Err(ClientError::Refused {
                        condition: format!("{error:?}"),
                    }));
                }
                if !was_joined {
                    // A rejoin nobody waited for failed: the app hears why.
                    shared.emit(ClientEvent::RoomLeft {
                        room: room_jid.to_string(),
                        reason: format!("refused: {error:?}").to_lowercase(),
                    });
                }
                self.pump();
                out.extend(self.take_output());
            }
            RoomPresence::Available {
                occupant,
                own,
                created,
                ..
            } => {
                let was_joined = room.joined;
                if own {
                    room.nick = occupant.nick.clone();
                }
                room.occupants.insert(occupant.nick.clone(), occupant);
                if own && was_joined {
                    // A status change of ours, not a join.
                    shared.emit(ClientEvent::RoomOccupantsChanged {
                        room: room_jid.to_string(),
                        occupants: room.occupants.values().cloned().collect(),
                    });
                    return (true, out);
                }
                if own && created {
                    // §10.1.2: Prosody keeps a new room locked until its
                    // configuration is submitted: ours when we create a
                    // private group or a channel, else the defaults.
                    let id = crate::client::random_id();
                    out.push(match room.create.take() {
                        Some((kind, name)) => {
                            muc_admin::configure(&id, &room_jid, kind, name.as_deref())
                        }
                        None => muc_admin::instant(&id, &room_jid),
                    });
                    room.configuring = Some(id);
                } else if own && room.create.is_some() && !room.joined {
                    // We meant to create it, but it exists: not ours to
                    // configure; leave again and say so.
                    let nick = room.nick.clone();
                    let failed = self.rooms.remove(&room_jid);
                    if let Some(waiting) = failed.and_then(|r| r.waiting) {
                        let _ = waiting.send(Err(ClientError::Refused {
                            condition: "room-exists".into(),
                        }));
                    }
                    if let Ok(occupant) = room_jid.with_resource_str(&nick) {
                        out.push(muc::leave(&occupant));
                    }
                    self.pump();
                    out.extend(self.take_output());
                } else if own && room.configuring.is_none() {
                    out.extend(complete_join(shared, &room_jid, room));
                    self.joined_since = true;
                    self.pump();
                    out.extend(self.take_output());
                } else if room.joined {
                    shared.emit(ClientEvent::RoomOccupantsChanged {
                        room: room_jid.to_string(),
                        occupants: room.occupants.values().cloned().collect(),
                    });
                }
            }
            RoomPresence::Unavailable {
                occupant,
                own,
                new_nick,
                removal,
                ..
            } => {
                if own && !room.joined && new_nick.is_none() {
                    // The confirmation of an earlier leave, arriving while
                    // we join again: not about this join.
                    return (true, out);
                }
                room.occupants.remove(&occupant.nick);
                if own && new_nick.is_none() && removal.rejoin() && !room.leaving {
                    // §9.9 status 333 and the like: the room lost us; join
                    // again rather than tell the user they left.
                    room.requeue(shared, &room_jid);
                    self.queue.push_back(room_jid.clone());
                    self.pump();
                    out.extend(self.take_output());
                } else if own && new_nick.is_none() {
                    self.rooms.remove(&room_jid);
                    self.pump();
                    out.extend(self.take_output());
                    shared.emit(ClientEvent::RoomLeft {
                        room: room_jid.to_string(),
                        reason: format!("{removal:?}").to_lowercase(),
                    });
                } else {
                    if own {
                        if let Some(nick) = new_nick {
                            // §7.6.3: 303 says the change went through
                            // (under the nick the room chose).
                            room.nick = nick;
                            let saved = shared.store().save_room(
                                room_jid.as_str(),
                                &room.nick,
                                &room.features,
                            );
                            if let Err(err) = saved {
                                tracing::warn!(error = %err, "cannot record our new nick");
                            }
                            if let Some((_, waiting)) = room.renaming.take() {
                                let _ = waiting.send(Ok(room.nick.clone()));
                            }
                        }
                    }
                    shared.emit(ClientEvent::RoomOccupantsChanged {
                        room: room_jid.to_string(),
                        occupants: room.occupants.values().cloned().collect(),
                    });
                }
            }
        }
        (true, out)
    }
}

impl Rooms {
    /// Whether a join completed since the last call.
    pub fn take_joined(&mut self) -> bool {
        std::mem::take(&mut self.joined_since)
    }

    /// An IQ answer for the rooms: a room's disco#info (the join presence
    /// follows), the configuration of a room we created, or the end of an
    /// archive page. `None` if it is not ours; else what to send.
    pub fn on_iq(&mut self, shared: &Shared, iq: &Element) -> Option<Vec<Element>> {
        let id = iq.attr("id")?;
        let (room_jid, room) = self.rooms.iter_mut().find(|(_, r)| {
            r.disco.as_deref() == Some(id)
                || r.configuring.as_deref() == Some(id)
                || r.catchup.as_ref().is_some_and(|c| c.iq_id == id)
                || r.pinging.as_ref().is_some_and(|p| p.0 == id)
        })?;
        let room_jid = room_jid.clone();
        if room.pinging.as_ref().is_some_and(|p| p.0 == id) {
            room.pinging = None;
            // The answer must come from the occupant JID we pinged.
            let from_room = iq
                .attr("from")
                .and_then(|f| f.parse::<jid::Jid>().ok())
                .is_some_and(|f| f.to_bare() == room_jid);
            if from_room && muc::self_ping_outcome(Some(iq)) == muc::SelfPing::Rejoin {
                tracing::info!("a room lost us without telling; joining it again");
                room.requeue(shared, &room_jid);
                self.queue.push_back(room_jid);
                self.pump();
            }
            return Some(self.take_output());
        }
        if room.disco.as_deref() == Some(id) && room.refreshing {
            // The features of the room we created and configured.
            room.disco = None;
            room.refreshing = false;
            room.features = disco::result_features(iq).unwrap_or_default();
            self.joined_since = true;
            let mut out: Vec<Element> =
                complete_join(shared, &room_jid, room).into_iter().collect();
            self.pump();
            out.extend(self.take_output());
            return Some(out);
        }
        if room.disco.as_deref() == Some(id) {
            room.disco = None;
            // An error (item-not-found: the room does not exist yet, and
            // joining creates it) leaves the features empty.
            room.features = disco::result_features(iq).unwrap_or_default();
            let history = join_history(shared, &room_jid, &room.features);
            return Some(
                muc::join(&room_jid, &room.nick, &history)
                    .into_iter()
                    .collect(),
            );
        }
        if room.configuring.as_deref() == Some(id) {
            room.configuring = None;
            if iq.attr("type") != Some("result") {
                // Locked and not as asked: not a room to hand to the user.
                tracing::warn!("the new room refused its configuration");
                let nick = room.nick.clone();
                if let Some(state) = self.rooms.remove(&room_jid) {
                    if let Some(waiting) = state.waiting {
                        let _ = waiting.send(Err(ClientError::Refused {
                            condition: "configuration-refused".into(),
                        }));
                    }
                }
                self.pump();
                let mut out = self.take_output();
                if let Ok(occupant) = room_jid.with_resource_str(&nick) {
                    out.push(muc::leave(&occupant));
                }
                return Some(out);
            }
            // Ask what the room now offers (archive, stanza-ids) before
            // the join completes.
            let disco_id = random_id();
            room.disco = Some(disco_id.clone());
            room.refreshing = true;
            return Some(vec![disco::info_query(&disco_id, room_jid.as_str())]);
        }
        Some(
            on_page_end(shared, &room_jid, room, iq)
                .into_iter()
                .collect(),
        )
    }

    /// A `<message/>`: a room's live message, an archive result of a room
    /// catch-up, a subject, or not the rooms' business.
    pub fn on_message(&mut self, shared: &Shared, element: &Element) -> RoomMessage {
        if let Some(result) = element.get_child("result", NS_MAM) {
            let from = element.attr("from").and_then(|f| f.parse::<BareJid>().ok());
            let Some(room_jid) = from.filter(|f| self.rooms.contains_key(f)) else {
                return RoomMessage::NotOurs;
            };
            let Some(room) = self.rooms.get_mut(&room_jid) else {
                return RoomMessage::NotOurs;
            };
            let ours = room
                .catchup
                .as_ref()
                .is_some_and(|c| result.attr("queryid") == Some(c.query_id.as_str()));
            if !ours {
                return RoomMessage::Dropped("a room archive result for a query we did not make");
            }
            let MamMessage::Result {
                archive_id,
                message,
                stamp_ms,
                ..
            } = mam::unwrap(element, &room_jid)
            else {
                return RoomMessage::Dropped("a malformed room archive result");
            };
            let Some(parsed) = muc_messages::parse_groupchat(&message)
                .filter(|g| g.room == room_jid && g.body.is_some())
            else {
                return RoomMessage::Taken;
            };
            // An archived copy names its writer's real JID where the room
            // keeps it (Prosody does in non-anonymous rooms); the nick may
            // have belonged to someone else then, us included.
            let writer = message
                .get_child("x", muc::NS_MUC_USER)
                .and_then(|x| x.get_child("item", muc::NS_MUC_USER))
                .and_then(|i| i.attr("jid"))
                .and_then(|j| j.parse::<jid::Jid>().ok())
                .map(|j| j.to_bare());
            let mut stored = to_store(shared, room, parsed, &message, writer);
            stored.stanza_id = Some(archive_id);
            stored.timestamp_ms = stamp_ms.unwrap_or(stored.timestamp_ms);
            if let Some(catchup) = room.catchup.as_mut() {
                catchup.page.push(stored);
            }
            return RoomMessage::Taken;
        }
        if element.attr("type") == Some("error") {
            // Our message bounced off a room (not-acceptable: we are not an
            // occupant any more, XEP-0410 §2): ask the room; the bounce
            // itself marks the message failed on the 1:1 path.
            let from = element
                .attr("from")
                .and_then(|f| f.parse::<jid::Jid>().ok());
            if let Some(room) = from
                .map(|f| f.to_bare())
                .filter(|r| self.rooms.contains_key(r))
            {
                if let Some(now) = self.now {
                    self.ping(&room, now);
                }
            }
            return RoomMessage::NotOurs;
        }
        let Some(parsed) = muc_messages::parse_groupchat(element) else {
            return RoomMessage::NotOurs;
        };
        let room_jid = parsed.room.clone();
        // History replayed during the join comes before our own presence.
        let Some(room) = self
            .rooms
            .get_mut(&room_jid)
            .filter(|r| r.joined || r.disco.is_none())
        else {
            return RoomMessage::Dropped("a groupchat message from a room we are not in");
        };
        if let Some(subject) = &parsed.subject {
            if let Err(err) = shared.store().set_room_subject(room_jid.as_str(), subject) {
                tracing::warn!(error = %err, "cannot store a room's subject");
            }
            shared.emit(ClientEvent::RoomSubject {
                room: room_jid.to_string(),
                subject: subject.clone(),
            });
            return RoomMessage::Taken;
        }
        if parsed.body.is_none() && encrypted_child(element).is_none() {
            return RoomMessage::Taken;
        }
        let trust_ids = room.features.contains(FEATURE_STANZA_IDS);
        let mut stored = to_store(shared, room, parsed, element, None);
        if !trust_ids {
            stored.stanza_id = None;
        }
        if let Some(catchup) = room.catchup.as_mut() {
            if catchup.held.len() < MAX_HELD {
                catchup.held.push(stored);
            }
            return RoomMessage::Taken;
        }
        RoomMessage::Live(Box::new(stored))
    }
}

/// How much history to ask the room for: none with an archive (we catch
/// up from it), else what came after the last message we stored.
fn join_history(shared: &Shared, room: &BareJid, features: &BTreeSet<String>) -> JoinHistory {
    if features.contains(FEATURE_MAM) {
        return JoinHistory::FromArchive;
    }
    match shared.store().last_message_ms(room.as_str()) {
        // Inclusive: what comes again is deduplicated.
        Ok(Some(ms)) => JoinHistory::Since(format_xep0082_ms(ms)),
        _ => JoinHistory::ServerDefault,
    }
}

/// A room message as the store keeps it: ours (our nick's reflection)
/// outgoing, anyone else's incoming, with the writer's real JID where the
/// room showed it in their presence.
fn to_store(
    shared: &Shared,
    room: &Room,
    g: GroupMessage,
    element: &Element,
    writer: Option<BareJid>,
) -> IncomingMessage {
    let ours = match &writer {
        Some(jid) => *jid == shared.own,
        None => g.nick == room.nick,
    };
    let real_jid = if ours {
        Some(shared.own.to_string())
    } else if let Some(jid) = writer {
        Some(jid.to_string())
    } else {
        room.occupants
            .get(&g.nick)
            .and_then(|o| o.real_jid.as_ref())
            .map(|j| j.to_bare().to_string())
    };
    let mut security = MessageSecurity::default();
    let mut body = g.body.unwrap_or_default();
    if encrypted_child(element).is_some() {
        // OMEMO in rooms (XEP-0384 §5.8) is a later slice of issue 14: keep
        // that something came, and why it cannot be read.
        body = String::new();
        security.undecryptable = Some("OMEMO in group chats is not supported yet".into());
    }
    let sender = if ours {
        shared.own.to_string()
    } else {
        g.room
            .with_resource_str(&g.nick)
            .map(|j| j.to_string())
            .unwrap_or_else(|_| g.room.to_string())
    };
    IncomingMessage {
        direction: if ours {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        peer: g.room.to_string(),
        sender,
        body,
        origin_id: g.origin_id,
        stanza_id: g.stanza_id,
        remote_id: g.id,
        timestamp_ms: g.delayed_ms.unwrap_or_else(now_ms),
        position: Position::Append,
        security,
        room: Some(RoomSender {
            nick: g.nick,
            real_jid,
        }),
    }
}

/// The end of a catch-up page: store it, then ask for the next one, or
/// finish (storing the live messages held meanwhile).
fn on_page_end(
    shared: &Shared,
    room_jid: &BareJid,
    room: &mut Room,
    iq: &Element,
) -> Option<Element> {
    let mut catchup = room.catchup.take()?;
    let fin = if iq.attr("type") == Some("result") {
        mam::parse_fin(iq)
    } else {
        None
    };
    let page = std::mem::take(&mut catchup.page);
    catchup.fetched += page.len();
    store_and_tell(shared, &page);
    if fin.is_none() {
        // item-not-found (the id we resume from expired) or another
        // error: the live messages held go in now.
        tracing::info!("a room's archive catch-up failed; keeping what came live");
    }
    let next = match &fin {
        Some(fin) if !fin.complete && !catchup.first_join && catchup.fetched < CATCHUP_CAP => {
            fin.last.clone()
        }
        _ => None,
    };
    if let Some(after) = next {
        let query = catchup_query(room_jid, &mut catchup, Page::After(after), CATCHUP_PAGE);
        room.catchup = Some(catchup);
        return Some(query);
    }
    store_and_tell(shared, &catchup.held);
    None
}

/// Writes room messages in one transaction and tells the app of the new
/// ones; our own reflected messages mark the stored copy delivered.
fn store_and_tell(shared: &Shared, messages: &[IncomingMessage]) {
    if messages.is_empty() {
        return;
    }
    let stored = shared.store().insert_incoming_batch(messages);
    match stored {
        Ok(stored) => {
            for (message, new) in messages.iter().zip(stored) {
                match new {
                    Some(new) if new.direction == Direction::Incoming => {
                        shared.emit(ClientEvent::MessageReceived(new))
                    }
                    Some(_) => {}
                    None => reflected(shared, message),
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot store a room's messages"),
    }
}

/// A stored room message came again: if it is our own (the room's
/// reflection), everyone in the room got it.
pub(crate) fn reflected(shared: &Shared, message: &IncomingMessage) {
    if message.direction != Direction::Outgoing {
        return;
    }
    if let Some(origin_id) = &message.origin_id {
        super::outbox::advance(
            shared,
            &message.peer,
            origin_id,
            crate::store::MessageState::Delivered,
        );
    }
}

fn catchup_query(room: &BareJid, catchup: &mut CatchUp, page: Page, max: u32) -> Element {
    catchup.iq_id = random_id();
    catchup.query_id = random_id();
    mam::query_archive(&catchup.iq_id, &catchup.query_id, Some(room), &page, max)
}

/// Our join of `room` is complete: the caller hears of it, then the app;
/// the room is recorded, and its archive catch-up starts (the query to
/// send) when it has one.
fn complete_join(shared: &Shared, room_jid: &BareJid, room: &mut Room) -> Option<Element> {
    room.joined = true;
    // Recorded before the caller hears of it: its next call (a message to
    // the room) reads our nick from the store.
    if let Err(err) = shared
        .store()
        .save_room(room_jid.as_str(), &room.nick, &room.features)
    {
        tracing::warn!(error = %err, "cannot record a joined room");
    }
    if let Some(waiting) = room.waiting.take() {
        let _ = waiting.send(Ok(room.nick.clone()));
    }
    shared.emit(ClientEvent::RoomJoined {
        room: room_jid.to_string(),
        nick: room.nick.clone(),
    });
    shared.emit(ClientEvent::RoomOccupantsChanged {
        room: room_jid.to_string(),
        occupants: room.occupants.values().cloned().collect(),
    });
    if !room.features.contains(FEATURE_MAM) {
        return None;
    }
    let last = shared.store().last_room_archive_id(room_jid.as_str());
    let (page, max, first_join) = match last {
        Ok(Some(id)) => (Page::After(id), CATCHUP_PAGE, false),
        _ => (Page::Latest, FIRST_JOIN_PAGE, true),
    };
    let mut catchup = CatchUp {
        iq_id: String::new(),
        query_id: String::new(),
        first_join,
        page: Vec::new(),
        held: Vec::new(),
        fetched: 0,
    };
    let query = catchup_query(room_jid, &mut catchup, page, max);
    room.catchup = Some(catchup);
    Some(query)
}
