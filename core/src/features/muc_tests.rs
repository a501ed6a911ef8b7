//! Room presences and self-ping answers as Prosody 13 sends them (shapes
//! taken from XEP-0045's examples and checked against Prosody).

use super::*;

fn parse_xml(xml: &str) -> Element {
    xml.parse().unwrap()
}

fn room() -> BareJid {
    "team@muc.localhost".parse().unwrap()
}

#[test]
fn the_join_presence_asks_for_no_history_or_history_since() {
    let archived = String::from(&join(&room(), "alice", &JoinHistory::FromArchive).unwrap());
    assert!(
        archived.contains("to='team@muc.localhost/alice'"),
        "{archived}"
    );
    assert!(archived.contains("maxchars='0'"), "{archived}");
    let since = join(
        &room(),
        "alice",
        &JoinHistory::Since("2026-12-07T10:00:00Z".into()),
    )
    .unwrap();
    let history = since
        .get_child("x", NS_MUC)
        .and_then(|x| x.get_child("history", NS_MUC))
        .unwrap();
    assert_eq!(history.attr("since"), Some("2026-12-07T10:00:00Z"));
    assert!(
        join(&room(), "", &JoinHistory::FromArchive).is_none(),
        "no empty nick"
    );
}

#[test]
fn our_own_presence_in_a_new_room_and_another_occupant() {
    let own = parse_xml(
        "<presence xmlns='jabber:client' from='team@muc.localhost/alice' to='alice@localhost/phone'>\
           <occupant-id xmlns='urn:xmpp:occupant-id:0' id='oid-a'/>\
           <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='owner' role='moderator' jid='alice@localhost/phone'/>\
             <status code='110'/><status code='201'/><status code='174'/>\
           </x></presence>",
    );
    let Some(RoomPresence::Available {
        room: r,
        occupant,
        own,
        created,
        nick_assigned,
    }) = parse(&own)
    else {
        panic!("available");
    };
    assert_eq!(r, room());
    assert!(
        own && created && !nick_assigned,
        "an unknown status code (174) is no reason to drop it"
    );
    assert_eq!(occupant.nick, "alice");
    assert_eq!(occupant.occupant_id.as_deref(), Some("oid-a"));
    assert_eq!(occupant.affiliation, "owner");
    assert_eq!(occupant.role, "moderator");
    assert_eq!(
        occupant.real_jid.map(|j| j.to_string()).as_deref(),
        Some("alice@localhost/phone")
    );

    let other = parse_xml(
        "<presence xmlns='jabber:client' from='team@muc.localhost/bob'>\
           <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/></x>\
         </presence>",
    );
    let Some(RoomPresence::Available { occupant, own, .. }) = parse(&other) else {
        panic!("available");
    };
    assert!(!own);
    assert_eq!((occupant.nick.as_str(), occupant.real_jid), ("bob", None));
}

#[test]
fn removals_and_nick_changes_are_told_apart() {
    let unavailable = |codes: &str, item: &str| {
        parse_xml(&format!(
            "<presence xmlns='jabber:client' type='unavailable' from='team@muc.localhost/alice'>\
               <x xmlns='http://jabber.org/protocol/muc#user'>{item}{codes}</x></presence>"
        ))
    };
    let removal = |codes: &str| match parse(&unavailable(
        codes,
        "<item affiliation='none' role='none'/>",
    )) {
        Some(RoomPresence::Unavailable { removal, own, .. }) => (removal, own),
        other => panic!("{other:?}"),
    };
    assert_eq!(removal("<status code='110'/>"), (Removal::Left, true));
    assert_eq!(
        removal("<status code='110'/><status code='307'/>"),
        (Removal::Kicked, true)
    );
    assert_eq!(
        removal("<status code='301'/><status code='110'/>"),
        (Removal::Banned, true)
    );
    assert_eq!(
        removal("<status code='110'/><status code='321'/>").0,
        Removal::AffiliationChanged
    );
    assert_eq!(
        removal("<status code='110'/><status code='322'/>").0,
        Removal::MembersOnly
    );
    assert_eq!(
        removal("<status code='332'/><status code='110'/>").0,
        Removal::Shutdown
    );
    assert_eq!(
        removal("<status code='333'/><status code='110'/>").0,
        Removal::Technical
    );
    assert!(Removal::Technical.rejoin() && Removal::Shutdown.rejoin());
    assert!(!Removal::Kicked.rejoin() && !Removal::Banned.rejoin() && !Removal::Left.rejoin());
    let renamed = unavailable(
        "<status code='303'/><status code='110'/>",
        "<item affiliation='member' role='participant' nick='alicia'/>",
    );
    let Some(RoomPresence::Unavailable {
        new_nick, removal, ..
    }) = parse(&renamed)
    else {
        panic!("unavailable");
    };
    assert_eq!(
        (new_nick.as_deref(), removal),
        (Some("alicia"), Removal::Left)
    );
}

#[test]
fn join_errors_are_typed() {
    let error = |condition: &str| {
        let p = parse_xml(&format!(
            "<presence xmlns='jabber:client' type='error' from='team@muc.localhost/alice'>\
               <error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
               <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></presence>"
        ));
        match parse(&p) {
            Some(RoomPresence::Error { error, room: r }) => {
                assert_eq!(r, room());
                error
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(error("conflict"), JoinError::NickInUse);
    assert_eq!(error("registration-required"), JoinError::MembersOnly);
    assert_eq!(error("forbidden"), JoinError::Banned);
    assert_eq!(error("not-authorized"), JoinError::PasswordRequired);
    assert_eq!(error("service-unavailable"), JoinError::Full);
    assert_eq!(error("item-not-found"), JoinError::NotFound);
    assert_eq!(error("gone"), JoinError::Other("gone".into()));
}

#[test]
fn presences_that_are_not_from_a_room_occupant_are_ignored() {
    let plain = parse_xml("<presence xmlns='jabber:client' from='bob@localhost/phone'/>");
    assert_eq!(parse(&plain), None);
    let no_from = parse_xml(
        "<presence xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc#user'/></presence>",
    );
    assert_eq!(parse(&no_from), None);
}

/// XEP-0410 §3.2, as the group-chat issue states it: rejoin on any error
/// except service-unavailable, feature-not-implemented and item-not-found;
/// no answer, remote-server-not-found and remote-server-timeout mean "try
/// again later".
#[test]
fn self_ping_answers_mean_what_xep_0410_says() {
    let occupant: FullJid = "team@muc.localhost/alice".parse().unwrap();
    let ping = String::from(&self_ping("p1", &occupant));
    assert!(
        ping.contains("urn:xmpp:ping") && ping.contains("team@muc.localhost/alice"),
        "{ping}"
    );
    let answer = |body: &str| {
        parse_xml(&format!(
            "<iq xmlns='jabber:client' id='p1' from='team@muc.localhost/alice' type='{}'>{body}</iq>",
            if body.is_empty() { "result" } else { "error" }
        ))
    };
    let error = |condition: &str| {
        answer(&format!(
            "<error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        ))
    };
    assert_eq!(self_ping_outcome(Some(&answer(""))), SelfPing::Joined);
    for joined in [
        "service-unavailable",
        "feature-not-implemented",
        "item-not-found",
    ] {
        assert_eq!(
            self_ping_outcome(Some(&error(joined))),
            SelfPing::Joined,
            "{joined}"
        );
    }
    for later in ["remote-server-not-found", "remote-server-timeout"] {
        assert_eq!(
            self_ping_outcome(Some(&error(later))),
            SelfPing::TryLater,
            "{later}"
        );
    }
    assert_eq!(self_ping_outcome(None), SelfPing::TryLater);
    for out in ["not-acceptable", "bad-request", "forbidden", "not-allowed"] {
        assert_eq!(
            self_ping_outcome(Some(&error(out))),
            SelfPing::Rejoin,
            "{out}"
        );
    }
}
