//! Owning and running a room (XEP-0045 §10, §9): the configuration we
//! submit when we create a room (a private group or a channel, as
//! Conversations configures them), affiliation changes (member, admin,
//! owner, outcast: a ban), kicks, and the affiliation lists. Hand-written:
//! xmpp-parsers 0.23 has no `muc#owner` or `muc#admin` forms.

use jid::{BareJid, Jid};
use minidom::Element;

use super::{stanza, submit_form, text_element, with_attrs};

pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const ROOM_CONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
/// Bounded: a room's list is shown to the user and used to encrypt.
pub const MAX_LIST: usize = 2000;

/// What a new room is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// Members only, everyone sees real JIDs (so OMEMO works), not listed,
    /// persistent, archived; only moderators change the subject or invite
    /// (as Conversations configures it).
    PrivateGroup,
    /// Open to anyone, listed, real JIDs only to moderators, persistent,
    /// archived.
    Channel,
}

/// The configuration form submitted for a room we just created (§10.1.3).
/// Archiving is asked for under the names servers use.
pub fn configure(id: &str, room: &BareJid, kind: RoomKind, name: Option<&str>) -> Element {
    let private = kind == RoomKind::PrivateGroup;
    let flag = |on: bool| if on { "1" } else { "0" };
    let mut fields = vec![
        ("FORM_TYPE", ROOM_CONFIG),
        ("muc#roomconfig_persistentroom", "1"),
        ("muc#roomconfig_membersonly", flag(private)),
        ("muc#roomconfig_publicroom", flag(!private)),
        (
            "muc#roomconfig_whois",
            if private { "anyone" } else { "moderators" },
        ),
        ("muc#roomconfig_changesubject", "0"),
        ("muc#roomconfig_allowinvites", "0"),
        // Archiving (XEP-0313) under the names servers use; never
        // `muc#roomconfig_enablelogging`, which means public web logs.
        ("muc#roomconfig_enablearchiving", "1"),
        ("muc#roomconfig_mam", "1"),
        ("mam", "1"),
    ];
    if let Some(name) = name {
        fields.push(("muc#roomconfig_roomname", name));
    }
    owner_iq(id, room, submit_form(&fields))
}

/// Accepts the service's default configuration for a room we just
/// created (§10.1.2, "instant room"): an empty submitted form.
pub fn instant(id: &str, room: &BareJid) -> Element {
    owner_iq(
        id,
        room,
        with_attrs(
            Element::bare("x", crate::ns::NS_DATA),
            &[("type", "submit")],
        ),
    )
}

fn owner_iq(id: &str, room: &BareJid, payload: Element) -> Element {
    let mut query = Element::bare("query", NS_MUC_OWNER);
    query.append_child(payload);
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

/// A long-lived affiliation (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affiliation {
    Owner,
    Admin,
    Member,
    /// Banned.
    Outcast,
    None,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Admin => "admin",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
        }
    }
}

fn admin_iq(id: &str, room: &BareJid, kind: &str, item: Element) -> Element {
    let mut query = Element::bare("query", NS_MUC_ADMIN);
    query.append_child(item);
    stanza(
        "iq",
        &[
            ("type", Some(kind)),
            ("to", Some(room.as_str())),
            ("id", Some(id)),
        ],
        vec![query],
    )
}

/// Gives `jid` an affiliation (§9.3 member, §9.1 ban as outcast, §10.3
/// owner, §10.5 admin, none to take it away).
pub fn set_affiliation(
    id: &str,
    room: &BareJid,
    jid: &BareJid,
    affiliation: Affiliation,
    reason: Option<&str>,
) -> Element {
    let mut item = with_attrs(
        Element::bare("item", NS_MUC_ADMIN),
        &[("affiliation", affiliation.as_str()), ("jid", jid.as_str())],
    );
    if let Some(reason) = reason {
        item.append_child(text_element("reason", NS_MUC_ADMIN, reason));
    }
    admin_iq(id, room, "set", item)
}

/// Kicks the occupant `nick` (§8.2: their role becomes none).
pub fn kick(id: &str, room: &BareJid, nick: &str, reason: Option<&str>) -> Element {
    let mut item = with_attrs(
        Element::bare("item", NS_MUC_ADMIN),
        &[("nick", nick), ("role", "none")],
    );
    if let Some(reason) = reason {
        item.append_child(text_element("reason", NS_MUC_ADMIN, reason));
    }
    admin_iq(id, room, "set", item)
}

/// Asks for everyone with `affiliation` (§9.5 members, §10.8 owners, …).
pub fn affiliation_list(id: &str, room: &BareJid, affiliation: Affiliation) -> Element {
    let item = with_attrs(
        Element::bare("item", NS_MUC_ADMIN),
        &[("affiliation", affiliation.as_str())],
    );
    admin_iq(id, room, "get", item)
}

/// The bare JIDs in an affiliation list answer; `None` if it is not a
/// result.
pub fn parse_affiliation_list(iq: &Element) -> Option<Vec<BareJid>> {
    if iq.attr("type") != Some("result") {
        return None;
    }
    let query = iq.get_child("query", NS_MUC_ADMIN)?;
    Some(
        query
            .children()
            .filter(|c| c.is("item", NS_MUC_ADMIN))
            .filter_map(|i| i.attr("jid")?.parse::<Jid>().ok())
            .map(|j| j.to_bare())
            .take(MAX_LIST)
            .collect(),
    )
}

/// Destroys the room (§10.9), telling occupants why.
pub fn destroy(id: &str, room: &BareJid, reason: Option<&str>) -> Element {
    let mut destroy = Element::bare("destroy", NS_MUC_OWNER);
    if let Some(reason) = reason {
        destroy.append_child(text_element("reason", NS_MUC_OWNER, reason));
    }
    owner_iq(id, room, destroy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> BareJid {
        "team@muc.localhost".parse().unwrap()
    }

    fn field(form: &Element, var: &str) -> Option<String> {
        form.get_child("query", NS_MUC_OWNER)?
            .get_child("x", crate::ns::NS_DATA)?
            .children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.children().next())
            .map(Element::text)
    }

    #[test]
    fn a_private_group_is_members_only_and_shows_real_jids_a_channel_is_public() {
        let group = configure("c1", &room(), RoomKind::PrivateGroup, Some("Team"));
        assert_eq!(
            field(&group, "muc#roomconfig_membersonly").as_deref(),
            Some("1")
        );
        assert_eq!(
            field(&group, "muc#roomconfig_whois").as_deref(),
            Some("anyone")
        );
        assert_eq!(
            field(&group, "muc#roomconfig_publicroom").as_deref(),
            Some("0")
        );
        assert_eq!(
            field(&group, "muc#roomconfig_roomname").as_deref(),
            Some("Team")
        );
        let channel = configure("c2", &room(), RoomKind::Channel, None);
        assert_eq!(
            field(&channel, "muc#roomconfig_membersonly").as_deref(),
            Some("0")
        );
        assert_eq!(
            field(&channel, "muc#roomconfig_whois").as_deref(),
            Some("moderators")
        );
        assert_eq!(
            field(&channel, "muc#roomconfig_publicroom").as_deref(),
            Some("1")
        );
        for form in [&group, &channel] {
            assert_eq!(
                field(form, "muc#roomconfig_persistentroom").as_deref(),
                Some("1")
            );
            assert_eq!(
                field(form, "muc#roomconfig_enablearchiving").as_deref(),
                Some("1")
            );
        }
    }

    #[test]
    fn an_affiliation_list_is_read_as_bare_jids() {
        let answer: Element = "<iq xmlns='jabber:client' type='result' id='l1' from='team@muc.localhost'>\
            <query xmlns='http://jabber.org/protocol/muc#admin'>\
            <item affiliation='member' jid='bob@localhost/phone'/><item affiliation='member' jid='carol@localhost'/>\
            <item affiliation='member'/></query></iq>"
            .parse()
            .unwrap();
        let list = parse_affiliation_list(&answer).unwrap();
        let list: Vec<&str> = list.iter().map(|j| j.as_str()).collect();
        assert_eq!(list, ["bob@localhost", "carol@localhost"]);
    }
}
