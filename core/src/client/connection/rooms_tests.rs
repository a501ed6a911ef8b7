//! The rooms part of the connection without a server: the join queue,
//! rejoining after a fresh session, self-ping outcomes, and what a room
//! may not make us believe.

use std::time::{Duration, Instant};

use minidom::Element;
use tokio::sync::oneshot;

use super::super::rooms::{RoomMessage, Rooms};
use super::{xml, Fixture};
use crate::client::events::ClientEvent;

fn disco_result(id: &str, room: &str) -> Element {
    xml(&format!(
        "<iq xmlns='jabber:client' type='result' id='{id}' from='{room}'>\
         <query xmlns='http://jabber.org/protocol/disco#info'>\
         <feature var='http://jabber.org/protocol/muc'/></query></iq>"
    ))
}

fn own_presence(room: &str, nick: &str) -> Element {
    xml(&format!(
        "<presence xmlns='jabber:client' from='{room}/{nick}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='member' role='participant'/><status code='110'/></x></presence>"
    ))
}

fn queries_to(out: &[Element], name: &str) -> Vec<String> {
    out.iter()
        .filter(|e| e.name() == name)
        .filter_map(|e| e.attr("to").map(str::to_owned))
        .collect()
}

/// Joins `room` as `nick` through disco and our own presence.
fn join(f: &Fixture, rooms: &mut Rooms, room: &str, nick: &str) -> Vec<Element> {
    let (reply, _answer) = oneshot::channel();
    let out = rooms.join(
        room.parse().unwrap(),
        nick.into(),
        reply,
        None,
        Instant::now(),
    );
    let id = out[0].attr("id").unwrap().to_owned();
    let joining = rooms.on_iq(&f.shared, &disco_result(&id, room)).unwrap();
    assert_eq!(queries_to(&joining, "presence"), [format!("{room}/{nick}")]);
    let (ours, after) = rooms.on_presence(&f.shared, &own_presence(room, nick));
    assert!(ours);
    after
}

#[test]
fn joins_wait_in_a_bounded_queue_and_start_as_others_end() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let mut sent = Vec::new();
    for i in 0..5 {
        let (reply, _answer) = oneshot::channel();
        sent.extend(rooms.join(
            format!("r{i}@muc.localhost").parse().unwrap(),
            "alice".into(),
            reply,
            None,
            Instant::now(),
        ));
    }
    assert_eq!(
        queries_to(&sent, "iq"),
        ["r0@muc.localhost", "r1@muc.localhost", "r2@muc.localhost"],
        "three joins at a time"
    );
    let id = sent[0].attr("id").unwrap().to_owned();
    rooms.on_iq(&f.shared, &disco_result(&id, "r0@muc.localhost"));
    let (_, after) = rooms.on_presence(&f.shared, &own_presence("r0@muc.localhost", "alice"));
    assert_eq!(queries_to(&after, "iq"), ["r3@muc.localhost"]);
}

#[test]
fn a_fresh_session_joins_every_room_again_and_leaves_no_ghost_occupants() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    join(&f, &mut rooms, "team@muc.localhost", "alice");
    assert!(rooms.is_joined("team@muc.localhost"));
    f.events.0.lock().unwrap().clear();
    let out = rooms.on_fresh_session(&f.shared);
    assert!(!rooms.is_joined("team@muc.localhost"));
    assert_eq!(
        queries_to(&out, "iq"),
        ["team@muc.localhost"],
        "disco again"
    );
    let events = f.events.0.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(e,
            ClientEvent::RoomOccupantsChanged { occupants, .. } if occupants.is_empty())),
        "{events:?}"
    );
}

#[test]
fn self_ping_errors_rejoin_but_silence_and_remote_errors_wait() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "team@muc.localhost";
    join(&f, &mut rooms, room, "alice");
    let now = Instant::now();

    // No answer: ask again later, nothing else.
    let ping = rooms.ping_all(now);
    assert_eq!(queries_to(&ping, "iq"), [format!("{room}/alice")]);
    let timeout = rooms.deadline().unwrap();
    assert!(timeout <= now + Duration::from_secs(15));
    assert!(rooms.on_deadline(&f.shared, timeout).is_empty());
    assert!(rooms.is_joined(room));

    // The room's server is unreachable: still in, as far as we know.
    let ping = rooms.ping_all(now);
    let id = ping[0].attr("id").unwrap();
    let remote = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{id}' from='{room}/alice'>\
         <error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    assert!(rooms.on_iq(&f.shared, &remote).unwrap().is_empty());
    assert!(rooms.is_joined(room));

    // not-acceptable: we are out; join again.
    let ping = rooms.ping_all(now);
    let id = ping[0].attr("id").unwrap();
    let out_of_room = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{id}' from='{room}/alice'>\
         <error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    let rejoin = rooms.on_iq(&f.shared, &out_of_room).unwrap();
    assert_eq!(queries_to(&rejoin, "iq"), [room], "disco for the rejoin");
    assert!(!rooms.is_joined(room));
}

#[test]
fn a_self_ping_answer_from_elsewhere_changes_nothing() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "team@muc.localhost";
    join(&f, &mut rooms, room, "alice");
    let ping = rooms.ping_all(Instant::now());
    let id = ping[0].attr("id").unwrap();
    let forged = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{id}' from='mallory@localhost/x'>\
         <error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    rooms.on_iq(&f.shared, &forged);
    assert!(rooms.is_joined(room));
}

#[test]
fn what_a_room_we_are_not_in_sends_is_not_believed() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    join(&f, &mut rooms, "team@muc.localhost", "alice");
    // A message from another room.
    let stray = xml(
        "<message xmlns='jabber:client' type='groupchat' from='other@muc.localhost/bob'>\
         <body>hi</body></message>",
    );
    assert!(matches!(
        rooms.on_message(&f.shared, &stray),
        RoomMessage::Dropped(_)
    ));
    // Status 110 from a room we never asked to join.
    let (ours, out) = rooms.on_presence(&f.shared, &own_presence("other@muc.localhost", "alice"));
    assert!(!ours && out.is_empty());
    assert!(!rooms.is_joined("other@muc.localhost"));
    // An archive result for a query we did not make.
    let result = xml(
        "<message xmlns='jabber:client' from='team@muc.localhost'>\
         <result xmlns='urn:xmpp:mam:2' queryid='nope' id='A1'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' type='groupchat' from='team@muc.localhost/bob'><body>old</body></message>\
         </forwarded></result></message>",
    );
    assert!(matches!(
        rooms.on_message(&f.shared, &result),
        RoomMessage::Dropped(_)
    ));
    assert!(f.history("team@muc.localhost").is_empty());
}

#[test]
fn a_room_that_never_answers_the_join_times_out_and_frees_its_slot() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let now = Instant::now();
    let (reply, mut answer) = oneshot::channel();
    rooms.join(
        "silent@muc.localhost".parse().unwrap(),
        "alice".into(),
        reply,
        None,
        now,
    );
    let later = now + Duration::from_secs(1);
    let mut queued = Vec::new();
    for i in 0..3 {
        let (reply, _answer) = oneshot::channel();
        queued.extend(rooms.join(
            format!("r{i}@muc.localhost").parse().unwrap(),
            "alice".into(),
            reply,
            None,
            later,
        ));
    }
    assert_eq!(
        queries_to(&queued, "iq"),
        ["r0@muc.localhost", "r1@muc.localhost"]
    );
    let deadline = rooms.deadline().expect("the join has a deadline");
    assert_eq!(deadline, now + Duration::from_secs(30));
    let out = rooms.on_deadline(&f.shared, deadline);
    assert!(matches!(
        answer.try_recv(),
        Ok(Err(crate::client::ClientError::Timeout))
    ));
    assert_eq!(
        queries_to(&out, "iq"),
        ["r2@muc.localhost"],
        "its slot goes to the next"
    );
    let events = f.events.0.lock().unwrap().clone();
    assert!(events.iter().any(|e| matches!(e,
        ClientEvent::RoomLeft { room, reason } if room == "silent@muc.localhost" && reason == "timeout")));
}

#[test]
fn a_late_leave_confirmation_does_not_end_the_next_join() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "team@muc.localhost";
    let (reply, mut answer) = oneshot::channel();
    rooms.join(
        room.parse().unwrap(),
        "alice".into(),
        reply,
        None,
        Instant::now(),
    );
    let left = xml(&format!(
        "<presence xmlns='jabber:client' type='unavailable' from='{room}/alice'>\
         <x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='none'/><status code='110'/></x></presence>"
    ));
    rooms.on_presence(&f.shared, &left);
    assert!(
        matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "the join still waits"
    );
    assert!(
        rooms.on_fresh_session(&f.shared).len() == 1,
        "and is still ours"
    );
}

#[test]
fn a_room_left_before_it_was_joined_is_not_joined_and_one_left_is_not_rejoined() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let now = Instant::now();
    // Three in flight, the fourth queued: leaving it means it never goes out.
    let mut sent = Vec::new();
    for i in 0..4 {
        let (reply, _answer) = oneshot::channel();
        sent.extend(rooms.join(
            format!("r{i}@muc.localhost").parse().unwrap(),
            "alice".into(),
            reply,
            None,
            now,
        ));
    }
    assert_eq!(rooms.leave(&"r3@muc.localhost".parse().unwrap()), None);
    // Leaving one in flight frees its slot; the one left stays out.
    assert!(rooms.leave(&"r0@muc.localhost".parse().unwrap()).is_some());
    assert!(rooms.take_output().is_empty(), "r3 is not joined after all");

    // A joined room we left (unconfirmed) is not joined again by a fresh
    // session, nor pinged.
    let mut rooms = Rooms::default();
    join(&f, &mut rooms, "team@muc.localhost", "alice");
    assert!(rooms
        .leave(&"team@muc.localhost".parse().unwrap())
        .is_some());
    assert!(rooms.ping_all(now).is_empty());
    let out = rooms.on_fresh_session(&f.shared);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_fresh_session_ends_a_nick_change_in_flight_and_self_ping_resumes() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "team@muc.localhost";
    join(&f, &mut rooms, room, "alice");
    let (reply, mut answer) = oneshot::channel();
    rooms.change_nick(&room.parse().unwrap(), "ally".into(), reply);
    assert!(
        rooms.ping_all(Instant::now()).is_empty(),
        "no ping during a change"
    );
    let disco = rooms.on_fresh_session(&f.shared);
    assert!(matches!(
        answer.try_recv(),
        Ok(Err(crate::client::ClientError::NotConnected))
    ));
    let id = disco[0].attr("id").unwrap().to_owned();
    rooms.on_iq(&f.shared, &disco_result(&id, room));
    rooms.on_presence(&f.shared, &own_presence(room, "alice"));
    assert_eq!(
        queries_to(&rooms.ping_all(Instant::now()), "iq"),
        [format!("{room}/alice")],
        "pinged again once back in"
    );
}

#[test]
fn a_refused_configuration_fails_the_creation() {
    use crate::features::muc_admin::RoomKind;
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "new@muc.localhost";
    let (reply, mut answer) = oneshot::channel();
    let out = rooms.join(
        room.parse().unwrap(),
        "alice".into(),
        reply,
        Some((RoomKind::PrivateGroup, None)),
        Instant::now(),
    );
    let id = out[0].attr("id").unwrap().to_owned();
    rooms.on_iq(&f.shared, &disco_result(&id, room));
    let created = xml(&format!(
        "<presence xmlns='jabber:client' from='{room}/alice'>\
         <x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator'/><status code='110'/><status code='201'/></x></presence>"
    ));
    let (_, config) = rooms.on_presence(&f.shared, &created);
    let config_id = config[0].attr("id").unwrap().to_owned();
    let refused = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{config_id}' from='{room}'>\
         <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    let out = rooms.on_iq(&f.shared, &refused).unwrap();
    assert!(matches!(
        answer.try_recv(),
        Ok(Err(crate::client::ClientError::Refused { condition })) if condition == "configuration-refused"
    ));
    assert_eq!(
        queries_to(&out, "presence"),
        [format!("{room}/alice")],
        "and we leave"
    );
    assert!(!rooms.is_joined(room));
}

#[test]
fn an_archived_message_is_ours_by_its_real_jid_not_by_the_nick() {
    let f = Fixture::new();
    let mut rooms = Rooms::default();
    let room = "team@muc.localhost";
    let (reply, _answer) = oneshot::channel();
    let out = rooms.join(
        room.parse().unwrap(),
        "alice".into(),
        reply,
        None,
        Instant::now(),
    );
    let id = out[0].attr("id").unwrap().to_owned();
    let with_archive = xml(&format!(
        "<iq xmlns='jabber:client' type='result' id='{id}' from='{room}'>\
         <query xmlns='http://jabber.org/protocol/disco#info'>\
         <feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:mam:2'/>\
         <feature var='urn:xmpp:sid:0'/></query></iq>"
    ));
    rooms.on_iq(&f.shared, &with_archive);
    let (_, catchup) = rooms.on_presence(&f.shared, &own_presence(room, "alice"));
    let query = catchup
        .iter()
        .find(|e| e.name() == "iq")
        .expect("a catch-up query");
    let iq_id = query.attr("id").unwrap().to_owned();
    let query_id = query
        .get_child("query", "urn:xmpp:mam:2")
        .and_then(|q| q.attr("queryid"))
        .unwrap()
        .to_owned();
    // Written by Eve when she was "alice"; and one by us.
    for (archive_id, jid, body) in [
        ("A1", "eve@localhost", "eve's"),
        ("A2", "alice@localhost/phone", "ours"),
    ] {
        let result = xml(&format!(
            "<message xmlns='jabber:client' from='{room}'>\
             <result xmlns='urn:xmpp:mam:2' queryid='{query_id}' id='{archive_id}'>\
             <forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' type='groupchat' from='{room}/alice'><body>{body}</body>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item jid='{jid}'/></x></message>\
             </forwarded></result></message>"
        ));
        assert!(matches!(
            rooms.on_message(&f.shared, &result),
            RoomMessage::Taken
        ));
    }
    let fin = xml(&format!(
        "<iq xmlns='jabber:client' type='result' id='{iq_id}' from='{room}'>\
         <fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>"
    ));
    rooms.on_iq(&f.shared, &fin);
    let stored = f.shared.store().history(room, None, 10).unwrap();
    let eve = stored.iter().find(|m| m.body == "eve's").unwrap();
    assert_eq!(eve.direction, crate::store::Direction::Incoming);
    assert_eq!(
        eve.room.as_ref().and_then(|r| r.real_jid.as_deref()),
        Some("eve@localhost")
    );
    let ours = stored.iter().find(|m| m.body == "ours").unwrap();
    assert_eq!(ours.direction, crate::store::Direction::Outgoing);
}
