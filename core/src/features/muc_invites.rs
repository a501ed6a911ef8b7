//! Invitations to rooms: mediated ones, which go through the room (XEP-0045
//! §7.8.2; in a members-only room an owner's makes the invitee a member),
//! and direct ones from person to person (XEP-0249), both ways, and the
//! decline of a mediated one (§7.8.2). Hand-written: xmpp-parsers 0.23 has
//! neither `jabber:x:conference` nor the invite children of `muc#user`.

use jid::{BareJid, Jid};
use minidom::Element;

use super::muc::NS_MUC_USER;
use super::{stanza, text_element, with_attrs};

pub const NS_CONFERENCE: &str = "jabber:x:conference";
/// Texts from strangers are shown to the user: keep them short.
const MAX_TEXT: usize = 1024;

/// An invitation we received. Never acted on by itself: an invitation from
/// a stranger is as easy to send as one from a friend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub room: BareJid,
    /// Who invites: their bare JID, or their occupant JID (room/nick) when
    /// a semi-anonymous room relays the invitation.
    pub from: String,
    pub reason: Option<String>,
    pub password: Option<String>,
    /// XEP-0249 (from the person) rather than through the room.
    pub direct: bool,
}

fn bounded(text: Option<String>) -> Option<String> {
    text.map(|t| t.chars().take(MAX_TEXT).collect())
}

/// Reads an invitation in a `<message/>`.
pub fn parse_invite(message: &Element) -> Option<Invite> {
    // A bounce is not an invitation, nor a room message that happens to
    // carry a conference element.
    if matches!(message.attr("type"), Some("error") | Some("groupchat")) {
        return None;
    }
    let from: Jid = message.attr("from")?.parse().ok()?;
    // A room relaying an invitation may add a `jabber:x:conference` copy
    // (XEP-0045 §7.8.2): the `muc#user` one says who invites.
    if let Some(invite) = message
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("invite", NS_MUC_USER).map(|i| (x, i)))
    {
        let (x, invite) = invite;
        // Mediated: the room sends it, from its bare JID.
        if from.resource().is_some() {
            return None;
        }
        let room = from.to_bare();
        room.node()?;
        let inviter: Jid = invite.attr("from")?.parse().ok()?;
        // A semi-anonymous room names the inviter by nick (room/nick);
        // otherwise it is their real JID.
        let from = if inviter.to_bare() == room {
            inviter.to_string()
        } else {
            inviter.to_bare().to_string()
        };
        return Some(Invite {
            room,
            from,
            reason: bounded(invite.get_child("reason", NS_MUC_USER).map(Element::text)),
            password: bounded(x.get_child("password", NS_MUC_USER).map(Element::text)),
            direct: false,
        });
    }
    let x = message.get_child("x", NS_CONFERENCE)?;
    let room: BareJid = x.attr("jid")?.parse().ok()?;
    room.node()?;
    Some(Invite {
        room,
        from: from.to_bare().to_string(),
        reason: bounded(x.attr("reason").map(str::to_owned)),
        password: bounded(x.attr("password").map(str::to_owned)),
        direct: true,
    })
}

/// Invites `to` through the room (§7.8.2).
pub fn mediated(room: &BareJid, to: &BareJid, reason: Option<&str>, id: &str) -> Element {
    let mut invite = with_attrs(Element::bare("invite", NS_MUC_USER), &[("to", to.as_str())]);
    if let Some(reason) = reason {
        invite.append_child(text_element("reason", NS_MUC_USER, reason));
    }
    let mut x = Element::bare("x", NS_MUC_USER);
    x.append_child(invite);
    stanza(
        "message",
        &[("to", Some(room.as_str())), ("id", Some(id))],
        vec![x],
    )
}

/// Invites `to` directly (XEP-0249 §2).
pub fn direct(room: &BareJid, to: &BareJid, reason: Option<&str>, id: &str) -> Element {
    let mut attrs = vec![("jid", room.as_str())];
    if let Some(reason) = reason {
        attrs.push(("reason", reason));
    }
    stanza(
        "message",
        &[("to", Some(to.as_str())), ("id", Some(id))],
        vec![with_attrs(Element::bare("x", NS_CONFERENCE), &attrs)],
    )
}

/// Declines a mediated invitation from `inviter`, through the room.
pub fn decline(room: &BareJid, inviter: &BareJid, reason: Option<&str>, id: &str) -> Element {
    let mut decline = with_attrs(
        Element::bare("decline", NS_MUC_USER),
        &[("to", inviter.as_str())],
    );
    if let Some(reason) = reason {
        decline.append_child(text_element("reason", NS_MUC_USER, reason));
    }
    let mut x = Element::bare("x", NS_MUC_USER);
    x.append_child(decline);
    stanza(
        "message",
        &[("to", Some(room.as_str())), ("id", Some(id))],
        vec![x],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(text: &str) -> Element {
        text.parse().unwrap()
    }

    #[test]
    fn a_mediated_invitation_names_the_inviter_and_the_room() {
        let m = xml(
            "<message xmlns='jabber:client' from='team@muc.localhost' to='bob@localhost'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@localhost/phone'>\
             <reason>join us</reason></invite><password>pw</password></x></message>",
        );
        let invite = parse_invite(&m).unwrap();
        assert_eq!(invite.room.as_str(), "team@muc.localhost");
        assert_eq!(invite.from, "alice@localhost");
        assert_eq!(invite.reason.as_deref(), Some("join us"));
        assert_eq!(invite.password.as_deref(), Some("pw"));
        assert!(!invite.direct);
    }

    #[test]
    fn a_relayed_invitation_with_a_direct_copy_is_the_mediated_one() {
        let m = xml(
            "<message xmlns='jabber:client' from='team@muc.localhost' to='bob@localhost'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@localhost/phone'/></x>\
             <x xmlns='jabber:x:conference' jid='team@muc.localhost'/></message>",
        );
        let invite = parse_invite(&m).unwrap();
        assert_eq!(invite.from, "alice@localhost");
        assert!(!invite.direct);
    }

    #[test]
    fn a_semi_anonymous_room_names_the_inviter_by_nick() {
        let m = xml(
            "<message xmlns='jabber:client' from='team@muc.localhost'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><invite from='team@muc.localhost/alice'/></x></message>",
        );
        assert_eq!(parse_invite(&m).unwrap().from, "team@muc.localhost/alice");
    }

    #[test]
    fn a_direct_invitation_comes_from_the_person() {
        let m = xml(
            "<message xmlns='jabber:client' from='alice@localhost/phone' to='bob@localhost'>\
             <x xmlns='jabber:x:conference' jid='team@muc.localhost' reason='hi'/></message>",
        );
        let invite = parse_invite(&m).unwrap();
        assert_eq!(invite.from, "alice@localhost");
        assert!(invite.direct);
    }

    #[test]
    fn what_is_not_an_invitation_is_not_read_as_one() {
        for text in [
            // A "mediated" invitation from an occupant, not the room.
            "<message xmlns='jabber:client' from='team@muc.localhost/mallory'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@localhost'/></x></message>",
            // A direct one to something that cannot be a room.
            "<message xmlns='jabber:client' from='alice@localhost'>\
             <x xmlns='jabber:x:conference' jid='muc.localhost'/></message>",
            // A bounce.
            "<message xmlns='jabber:client' type='error' from='alice@localhost'>\
             <x xmlns='jabber:x:conference' jid='team@muc.localhost'/></message>",
            // A room message that carries a conference element.
            "<message xmlns='jabber:client' type='groupchat' from='team@muc.localhost/bob'>\
             <body>see</body><x xmlns='jabber:x:conference' jid='other@muc.localhost'/></message>",
        ] {
            assert_eq!(parse_invite(&xml(text)), None, "{text}");
        }
    }

    #[test]
    fn a_long_reason_is_cut() {
        let reason = "x".repeat(5000);
        let m = xml(&format!(
            "<message xmlns='jabber:client' from='alice@localhost'>\
             <x xmlns='jabber:x:conference' jid='team@muc.localhost' reason='{reason}'/></message>"
        ));
        assert_eq!(parse_invite(&m).unwrap().reason.unwrap().len(), 1024);
    }
}
