//! Multi-user chat (XEP-0045) presence, as pure functions: the join
//! presence, what a room presence says (an occupant, our own presence,
//! why we were removed), why a join failed, and MUC self-ping (XEP-0410):
//! the request and what its answer means. The client decides when to send
//! and what to keep.
//!
//! Hand-written rather than xmpp-parsers' `muc::user::MucUser`: that type
//! refuses a whole `<x/>` with a status code it does not list (rooms add
//! new ones, e.g. 104 variants or 174), and a presence we cannot read is an
//! occupant we silently lose.

use std::collections::BTreeSet;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::features::{stanza, with_attrs};
use crate::ns::{NS_PING, NS_STANZAS};

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";

/// How much history the room should replay when we join (XEP-0045 §7.2.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinHistory {
    /// None: the room has an archive (`urn:xmpp:mam:2`), which we catch up
    /// from instead (`<history maxchars='0'/>`).
    FromArchive,
    /// What came after this XEP-0082 timestamp (the last message we
    /// stored from the room).
    Since(String),
    /// Whatever the room replays by default (no archive, nothing stored).
    ServerDefault,
}

/// The presence that joins `room` as `nick` (§7.2.2).
pub fn join(room: &BareJid, nick: &str, history: &JoinHistory) -> Option<Element> {
    let occupant = room.with_resource_str(nick).ok()?;
    let mut x = Element::bare("x", NS_MUC);
    let attrs: Vec<(&str, &str)> = match history {
        JoinHistory::FromArchive => vec![("maxchars", "0")],
        JoinHistory::Since(stamp) => vec![("since", stamp.as_str())],
        JoinHistory::ServerDefault => vec![],
    };
    if !attrs.is_empty() {
        x.append_child(with_attrs(Element::bare("history", NS_MUC), &attrs));
    }
    Some(stanza(
        "presence",
        &[("to", Some(occupant.as_str()))],
        vec![x],
    ))
}

/// The presence that leaves the room (§7.14).
pub fn leave(occupant: &FullJid) -> Element {
    stanza(
        "presence",
        &[
            ("to", Some(occupant.as_str())),
            ("type", Some("unavailable")),
        ],
        vec![],
    )
}

/// Why we are no longer in a room, from the status codes of our own
/// unavailable presence (§7.14, §9.7, §9.4, §9.6, §10.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// We left (or the room confirms a leave).
    Left,
    /// 307.
    Kicked,
    /// 301.
    Banned,
    /// 321: our affiliation was changed.
    AffiliationChanged,
    /// 322: the room became members-only.
    MembersOnly,
    /// 332: the service shuts down.
    Shutdown,
    /// 333: technical reasons (the room lost us; rejoin).
    Technical,
}

impl Removal {
    /// Whether joining again makes sense without the user's say.
    pub fn rejoin(self) -> bool {
        matches!(self, Removal::Shutdown | Removal::Technical)
    }
}

/// One occupant as its presence shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupant {
    pub nick: String,
    /// The occupant's real JID, where the room shows it (non-anonymous
    /// rooms, or to moderators).
    pub real_jid: Option<Jid>,
    /// XEP-0421: stable across nick changes, set by the room.
    pub occupant_id: Option<String>,
    pub affiliation: String,
    pub role: String,
}

/// What a presence from a room tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPresence {
    /// Someone is (still) in the room.
    Available {
        room: BareJid,
        occupant: Occupant,
        /// Status 110: it is us.
        own: bool,
        /// Status 201: the room was just created and is locked until its
        /// configuration is submitted (§10.1.1).
        created: bool,
        /// Status 210: the service assigned (or changed) our nick.
        nick_assigned: bool,
    },
    /// Someone left: with status 303, it is a nick change to `new_nick`.
    Unavailable {
        room: BareJid,
        occupant: Occupant,
        own: bool,
        new_nick: Option<String>,
        /// For our own presence: why we are out.
        removal: Removal,
    },
    /// Our join (or nick change) was refused.
    Error { room: BareJid, error: JoinError },
}

/// Why a join was refused (§7.2.6–§7.2.11), from the error condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// `conflict`: the nick is taken.
    NickInUse,
    /// `registration-required`: members-only, and we are not a member.
    MembersOnly,
    /// `forbidden`: banned.
    Banned,
    /// `not-authorized`: a password is needed.
    PasswordRequired,
    /// `service-unavailable`: the room is full.
    Full,
    /// `item-not-found`: the room is locked (being created) or does not exist.
    NotFound,
    /// `not-allowed`: we may not create it.
    CreationNotAllowed,
    /// `not-acceptable`: our reserved nick must be used.
    ReservedNick,
    /// Anything else, with its condition.
    Other(String),
}

fn error_condition(error: &Element) -> Option<&str> {
    error
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name())
}

fn join_error(condition: &str) -> JoinError {
    match condition {
        "conflict" => JoinError::NickInUse,
        "registration-required" => JoinError::MembersOnly,
        "forbidden" => JoinError::Banned,
        "not-authorized" => JoinError::PasswordRequired,
        "service-unavailable" => JoinError::Full,
        "item-not-found" => JoinError::NotFound,
        "not-allowed" => JoinError::CreationNotAllowed,
        "not-acceptable" => JoinError::ReservedNick,
        other => JoinError::Other(other.to_owned()),
    }
}

/// Reads a presence from a room occupant (`from` = room@service/nick);
/// `None` for any other presence.
pub fn parse(presence: &Element) -> Option<RoomPresence> {
    if presence.name() != "presence" {
        return None;
    }
    let from: Jid = presence.attr("from")?.parse().ok()?;
    let room = from.to_bare();
    if presence.attr("type") == Some("error") {
        let condition = presence
            .get_child("error", presence.ns().as_str())
            .and_then(error_condition)
            .unwrap_or("undefined-condition");
        return Some(RoomPresence::Error {
            room,
            error: join_error(condition),
        });
    }
    let nick = from.resource()?.to_string();
    let x = presence.get_child("x", NS_MUC_USER)?;
    // Status codes as numbers: unknown ones are kept out, not fatal.
    let codes: BTreeSet<u16> = x
        .children()
        .filter(|c| c.is("status", NS_MUC_USER))
        .filter_map(|c| c.attr("code")?.parse().ok())
        .collect();
    let item = x.get_child("item", NS_MUC_USER);
    let occupant = Occupant {
        nick,
        real_jid: item
            .and_then(|i| i.attr("jid"))
            .and_then(|j| j.parse().ok()),
        occupant_id: presence
            .get_child("occupant-id", NS_OCCUPANT_ID)
            .and_then(|o| o.attr("id"))
            .map(str::to_owned),
        affiliation: item
            .and_then(|i| i.attr("affiliation"))
            .unwrap_or("none")
            .to_owned(),
        role: item
            .and_then(|i| i.attr("role"))
            .unwrap_or("none")
            .to_owned(),
    };
    let own = codes.contains(&110);
    if presence.attr("type") == Some("unavailable") {
        let removal = if codes.contains(&301) {
            Removal::Banned
        } else if codes.contains(&307) {
            Removal::Kicked
        } else if codes.contains(&321) {
            Removal::AffiliationChanged
        } else if codes.contains(&322) {
            Removal::MembersOnly
        } else if codes.contains(&332) {
            Removal::Shutdown
        } else if codes.contains(&333) {
            Removal::Technical
        } else {
            Removal::Left
        };
        let new_nick = codes
            .contains(&303)
            .then(|| item.and_then(|i| i.attr("nick")).map(str::to_owned))
            .flatten();
        return Some(RoomPresence::Unavailable {
            room,
            occupant,
            own,
            new_nick,
            removal,
        });
    }
    Some(RoomPresence::Available {
        room,
        occupant,
        own,
        created: codes.contains(&201),
        nick_assigned: codes.contains(&210),
    })
}

/// XEP-0410 §3.2: a ping to our own occupant JID asks the room whether we
/// are still in it.
pub fn self_ping(id: &str, occupant: &FullJid) -> Element {
    stanza(
        "iq",
        &[
            ("type", Some("get")),
            ("id", Some(id)),
            ("to", Some(occupant.as_str())),
        ],
        vec![Element::bare("ping", NS_PING)],
    )
}

/// What the answer to a self-ping means (XEP-0410 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfPing {
    /// A result, or an error only a joined occupant gets (the room passed
    /// the ping on: `service-unavailable`, `feature-not-implemented`; or
    /// our nick just changed: `item-not-found`).
    Joined,
    /// Any other error: we are not in the room any more; join again.
    Rejoin,
    /// The room's server cannot be reached (`remote-server-not-found`,
    /// `remote-server-timeout`) or no answer came: nothing is known; ask
    /// again later.
    TryLater,
}

/// Classifies the answer to [`self_ping`]; `None` (no answer in time) is
/// [`SelfPing::TryLater`].
pub fn self_ping_outcome(answer: Option<&Element>) -> SelfPing {
    let Some(answer) = answer else {
        return SelfPing::TryLater;
    };
    if answer.attr("type") != Some("error") {
        return SelfPing::Joined;
    }
    let condition = answer
        .get_child("error", answer.ns().as_str())
        .and_then(error_condition)
        .unwrap_or("undefined-condition");
    match condition {
        "service-unavailable" | "feature-not-implemented" | "item-not-found" => SelfPing::Joined,
        "remote-server-not-found" | "remote-server-timeout" => SelfPing::TryLater,
        _ => SelfPing::Rejoin,
    }
}

#[cfg(test)]
#[path = "muc_tests.rs"]
mod tests;
