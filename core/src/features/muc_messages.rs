//! Group-chat messages (XEP-0045 §7.4, §7.2.15): the message we send to a
//! room, and what a `type='groupchat'` message from a room says — who wrote
//! it, its body or the room's subject, and the ids it is deduplicated by
//! (the room's XEP-0359 stanza-id, the writer's origin-id).

use jid::{BareJid, Jid};
use minidom::Element;

use super::messages::parse_xep0082_ms;
use super::muc::NS_OCCUPANT_ID;
use super::{stanza, text_element, with_attrs};
use crate::ns::{NS_CLIENT, NS_DELAY, NS_SID};

/// A message to everyone in `room` (§7.4). No receipt request: XEP-0184
/// §5.3 rules them out in group chats; the room's reflection of the
/// message is what says it arrived.
pub fn groupchat(room: &str, body: &str, origin_id: &str) -> Element {
    stanza(
        "message",
        &[
            ("to", Some(room)),
            ("type", Some("groupchat")),
            ("id", Some(origin_id)),
        ],
        vec![
            text_element("body", NS_CLIENT, body),
            with_attrs(Element::bare("origin-id", NS_SID), &[("id", origin_id)]),
        ],
    )
}

/// A `type='groupchat'` message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    pub room: BareJid,
    /// Empty for a message from the room itself (status, subject set by
    /// the service).
    pub nick: String,
    /// Absent for a subject change (§8.1) or a message without text.
    pub body: Option<String>,
    /// The room's subject, when this message sets it (no body, §7.2.15).
    pub subject: Option<String>,
    pub id: Option<String>,
    pub origin_id: Option<String>,
    /// The room's archive id: only a stanza-id the room itself stamped
    /// (`by` = the room, XEP-0359 §3.1); one `by` anything else may be
    /// forged by the writer.
    pub stanza_id: Option<String>,
    /// XEP-0421: the room's stable id of the writer.
    pub occupant_id: Option<String>,
    /// XEP-0203 delay stamped by the room (history replayed at join, or
    /// an archived copy), milliseconds since the epoch.
    pub delayed_ms: Option<i64>,
}

/// Reads a groupchat message; `None` for any other message, or one whose
/// `from` is not a room (a bare domain cannot be one).
pub fn parse_groupchat(element: &Element) -> Option<GroupMessage> {
    if element.attr("type") != Some("groupchat") {
        return None;
    }
    let from: Jid = element.attr("from")?.parse().ok()?;
    let room = from.to_bare();
    room.node()?;
    let nick = from.resource().map(|r| r.to_string()).unwrap_or_default();
    let subject = element
        .get_child("subject", NS_CLIENT)
        .filter(|_| !element.has_child("body", NS_CLIENT))
        .map(Element::text);
    let stanza_id = element
        .children()
        .filter(|c| c.is("stanza-id", NS_SID))
        .find(|c| c.attr("by") == Some(room.as_str()))
        .and_then(|c| c.attr("id"))
        .map(str::to_owned);
    let delayed_ms = element
        .children()
        .filter(|c| c.is("delay", NS_DELAY))
        .find(|d| d.attr("from") == Some(room.as_str()))
        .and_then(|d| d.attr("stamp"))
        .and_then(parse_xep0082_ms);
    Some(GroupMessage {
        nick,
        body: element.get_child("body", NS_CLIENT).map(Element::text),
        subject,
        id: element.attr("id").map(str::to_owned),
        origin_id: element
            .get_child("origin-id", NS_SID)
            .and_then(|o| o.attr("id"))
            .map(str::to_owned),
        stanza_id,
        occupant_id: element
            .get_child("occupant-id", NS_OCCUPANT_ID)
            .and_then(|o| o.attr("id"))
            .map(str::to_owned),
        delayed_ms,
        room,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn a_room_message_says_who_wrote_it_and_only_the_rooms_own_stanza_id_counts() {
        let m = message(
            "<message xmlns='jabber:client' from='team@muc.example.org/bob' type='groupchat' id='m1'>\
             <body>hello</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='team@muc.example.org' id='S1'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='O1'/>\
             <occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ-bob'/></message>",
        );
        let g = parse_groupchat(&m).unwrap();
        assert_eq!(g.room.as_str(), "team@muc.example.org");
        assert_eq!(g.nick, "bob");
        assert_eq!(g.body.as_deref(), Some("hello"));
        assert_eq!(g.stanza_id.as_deref(), Some("S1"));
        assert_eq!(g.origin_id.as_deref(), Some("O1"));
        assert_eq!(g.occupant_id.as_deref(), Some("occ-bob"));
        assert_eq!(g.subject, None);
    }

    #[test]
    fn a_stanza_id_by_another_room_is_not_trusted() {
        let m = message(
            "<message xmlns='jabber:client' from='team@muc.example.org/bob' type='groupchat'>\
             <body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='other@muc.example.org' id='S9'/></message>",
        );
        assert_eq!(parse_groupchat(&m).unwrap().stanza_id, None);
    }

    #[test]
    fn a_subject_without_a_body_is_the_rooms_subject() {
        let m = message(
            "<message xmlns='jabber:client' from='team@muc.example.org/alice' type='groupchat'>\
             <subject>Plans</subject></message>",
        );
        let g = parse_groupchat(&m).unwrap();
        assert_eq!(g.subject.as_deref(), Some("Plans"));
        assert_eq!(g.body, None);
    }

    #[test]
    fn only_groupchat_messages_from_a_room_jid_are_read() {
        for xml in [
            "<message xmlns='jabber:client' from='team@muc.example.org/bob' type='chat'><body>x</body></message>",
            "<message xmlns='jabber:client' from='muc.example.org' type='groupchat'><body>x</body></message>",
            "<message xmlns='jabber:client' type='groupchat'><body>x</body></message>",
        ] {
            assert_eq!(parse_groupchat(&message(xml)), None, "{xml}");
        }
    }

    #[test]
    fn our_message_to_a_room_asks_for_no_receipt() {
        let m = groupchat("team@muc.example.org", "hi", "O1");
        assert_eq!(m.attr("type"), Some("groupchat"));
        assert_eq!(m.attr("id"), Some("O1"));
        assert!(!m.has_child("request", crate::ns::NS_RECEIPTS));
    }
}
