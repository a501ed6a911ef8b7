//! The group chats (XEP-0045) of a running connection: joins in flight,
//! who is in each joined room, and what the room says about us (joined,
//! removed, refused). Presence in and out only; room messages, archives and
//! self-ping come in later slices of the group-chat issue.

use std::collections::{BTreeMap, HashMap};

use jid::BareJid;
use minidom::Element;
use tokio::sync::oneshot;

use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::client::ClientError;
use crate::features::muc::{self, JoinHistory, Occupant, RoomPresence};
use crate::features::{stanza, with_attrs};
use crate::ns::NS_DATA;

const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";

/// The answer to a join: our nick as the room set it.
pub(crate) type JoinReply = oneshot::Sender<Result<String, ClientError>>;

struct Room {
    nick: String,
    joined: bool,
    occupants: BTreeMap<String, Occupant>,
    waiting: Option<JoinReply>,
    /// The id of the configuration we submitted for a room we created:
    /// the join completes when the room takes it (until then it is locked
    /// to everyone else).
    configuring: Option<String>,
}

#[derive(Default)]
pub(crate) struct Rooms {
    rooms: HashMap<BareJid, Room>,
}

impl Rooms {
    /// Starts joining `room` as `nick`: the presence to send. A room we are
    /// in or joining already answers at once.
    pub fn join(
        &mut self,
        room: BareJid,
        nick: String,
        history: JoinHistory,
        reply: JoinReply,
    ) -> Option<Element> {
        if let Some(existing) = self.rooms.get_mut(&room) {
            if existing.joined {
                let _ = reply.send(Ok(existing.nick.clone()));
                return None;
            }
        }
        let Some(presence) = muc::join(&room, &nick, &history) else {
            let _ = reply.send(Err(ClientError::InvalidJid));
            return None;
        };
        self.rooms.insert(
            room,
            Room {
                nick,
                joined: false,
                occupants: BTreeMap::new(),
                waiting: Some(reply),
                configuring: None,
            },
        );
        Some(presence)
    }

    /// Leaves `room`: the presence to send (none if we are not in it). The
    /// room's answer (our unavailable presence) ends it, with `RoomLeft`.
    pub fn leave(&mut self, room: &BareJid) -> Option<Element> {
        let state = self.rooms.get(room)?;
        let occupant = room.with_resource_str(&state.nick).ok()?;
        Some(muc::leave(&occupant))
    }

    /// The connection is gone: a fresh session is out of every room (and
    /// joins in flight fail); the app is told, so no occupant lingers.
    pub fn on_disconnected(&mut self, shared: &Shared) {
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
            RoomPresence::Error { error, .. } => {
                let failed = self.rooms.remove(&room_jid);
                if let Some(waiting) = failed.and_then(|r| r.waiting) {
                    let _ = waiting.send(Err(ClientError::Refused {
                        condition: format!("{error:?}"),
                    }));
                }
            }
            RoomPresence::Available {
                occupant,
                own,
                created,
                ..
            } => {
                if own {
                    room.nick = occupant.nick.clone();
                    room.joined = true;
                }
                room.occupants.insert(occupant.nick.clone(), occupant);
                if own && created {
                    // §10.1.2: Prosody keeps a new room locked until its
                    // configuration is submitted; the defaults do.
                    let id = crate::client::random_id();
                    out.push(instant_room(&room_jid, &id));
                    room.configuring = Some(id);
                } else if own && room.configuring.is_none() {
                    complete_join(shared, &room_jid, room);
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
                room.occupants.remove(&occupant.nick);
                if own && new_nick.is_none() {
                    self.rooms.remove(&room_jid);
                    shared.emit(ClientEvent::RoomLeft {
                        room: room_jid.to_string(),
                        reason: format!("{removal:?}").to_lowercase(),
                    });
                } else {
                    if own {
                        if let Some(nick) = new_nick {
                            room.nick = nick;
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
    /// The answer to a room configuration we submitted: `true` if it was
    /// one (the join it held completes).
    pub fn on_iq(&mut self, shared: &Shared, iq: &Element) -> bool {
        let Some(id) = iq.attr("id") else {
            return false;
        };
        let Some((room_jid, room)) = self
            .rooms
            .iter_mut()
            .find(|(_, r)| r.configuring.as_deref() == Some(id))
        else {
            return false;
        };
        room.configuring = None;
        if iq.attr("type") != Some("result") {
            tracing::warn!("the new room refused its default configuration");
        }
        let room_jid = room_jid.clone();
        complete_join(shared, &room_jid, room);
        true
    }
}

/// Our join of `room` is complete: the caller hears of it, then the app.
fn complete_join(shared: &Shared, room_jid: &BareJid, room: &mut Room) {
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
}

/// Accepts the default configuration of a room we just created (§10.1.2,
/// "instant room").
fn instant_room(room: &BareJid, id: &str) -> Element {
    let mut query = Element::bare("query", NS_MUC_OWNER);
    query.append_child(with_attrs(
        Element::bare("x", NS_DATA),
        &[("type", "submit")],
    ));
    stanza(
        "iq",
        &[
            ("type", Some("set")),
            ("to", Some(room.as_str())),
            ("id", Some(id)),
        ],
        vec![query],
    )
}
