//! Group chats (XEP-0045) against Prosody's MUC component (muc.localhost):
//! creating a room (which Prosody keeps locked until it is configured),
//! joining, a taken nick, occupants coming and going, leaving.

use waxwing_core::{ClientError, ClientEvent};

use crate::common::*;

fn occupants_of(event: &ClientEvent, room: &str) -> Option<Vec<String>> {
    match event {
        ClientEvent::RoomOccupantsChanged { room: r, occupants } if r == room => {
            Some(occupants.iter().map(|o| o.nick.clone()).collect())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_created_joined_and_left_with_their_occupants() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;
    let room = "team@muc.localhost";

    // A new room: Alice creates it; the join completes once the room took
    // its configuration, so Bob can come in right away.
    assert_eq!(alice.join_room(room, "alice").await.unwrap(), "alice");
    alice_events
        .wait_for(5, |e| {
            matches!(e, ClientEvent::RoomJoined { room: r, nick } if r == room && nick == "alice")
                .then_some(())
        })
        .await;
    // A taken nick is a typed refusal.
    let taken = bob.join_room(room, "alice").await.unwrap_err();
    assert!(
        matches!(&taken, ClientError::Refused { condition } if condition.contains("NickInUse")),
        "{taken:?}"
    );
    assert_eq!(bob.join_room(room, "bob").await.unwrap(), "bob");
    let seen_by_bob = bob_events
        .wait_for(5, |e| occupants_of(e, room).filter(|o| o.len() == 2))
        .await;
    assert_eq!(seen_by_bob, ["alice", "bob"]);
    alice_events
        .wait_for(5, |e| {
            occupants_of(e, room).filter(|o| o.contains(&"bob".to_owned()))
        })
        .await;

    // Bob leaves: Alice sees him go, and he hears he is out.
    bob.leave_room(room).unwrap();
    alice_events
        .wait_for(5, |e| {
            occupants_of(e, room).filter(|o| o == &["alice".to_owned()])
        })
        .await;
    bob_events
        .wait_for(5, |e| {
            matches!(e, ClientEvent::RoomLeft { room: r, reason } if r == room && reason == "left")
                .then_some(())
        })
        .await;
    alice.logout().await;
    bob.logout().await;
}

/// Runs the cli as alice with `store`; its output, one JSON value a line.
fn run_alice_cli(
    server: &TestServer,
    store: &std::path::Path,
    key: &str,
    args: &[&str],
) -> Vec<serde_json::Value> {
    let out = run_cli(server, "alice", "pw-a", store, key, args);
    assert!(
        out.status.success(),
        "cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn room_bodies(client: &waxwing_core::Client, room: &str) -> Vec<String> {
    let mut page = client.history(room, None, 50).unwrap();
    page.reverse();
    page.into_iter().map(|m| m.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_messages_are_stored_once_in_order_and_missed_ones_come_from_the_archive() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;
    let room = "lounge@muc.localhost";
    alice.join_room(room, "alice").await.unwrap();
    bob.join_room(room, "bob").await.unwrap();

    // Live: Bob sees who wrote it; Alice's copy is delivered when the room
    // reflects it, and stored once.
    let first = unique("first");
    let sent = alice.send_room_message(room, &first).unwrap();
    let got = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == first => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.peer, room);
    assert_eq!(got.room.as_ref().map(|r| r.nick.as_str()), Some("alice"));
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageStateChanged(m)
                if m.id == sent.id && m.state == waxwing_core::store::MessageState::Delivered =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    assert_eq!(room_bodies(&alice, room), vec![first.clone()]);

    // Bob goes away; what Alice writes meanwhile comes from the room's
    // archive when he joins again, after what he has, once each.
    bob.leave_room(room).unwrap();
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::RoomLeft { .. }).then_some(())
        })
        .await;
    let missed: Vec<String> = (0..3).map(|i| unique(&format!("missed {i}"))).collect();
    for body in &missed {
        alice.send_room_message(room, body).unwrap();
    }
    let last = missed.last().unwrap().clone();
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageStateChanged(m)
                if m.body == last && m.state == waxwing_core::store::MessageState::Delivered =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    bob_events.clear();
    bob.join_room(room, "bob").await.unwrap();
    bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == last => Some(()),
            _ => None,
        })
        .await;
    let mut expected = vec![first];
    expected.extend(missed);
    assert_eq!(room_bodies(&bob, room), expected);
    alice.logout().await;
    bob.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_silently_lost_us_is_noticed_by_self_ping_and_joined_again_without_losing_messages(
) {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, alice_events, bob, _bob_events, _stores) = alice_and_bob(&server).await;
    let room = "falls@muc.localhost";
    alice.join_room(room, "alice").await.unwrap();
    bob.join_room(room, "bob").await.unwrap();
    let before = unique("before");
    bob.send_room_message(room, &before).unwrap();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == before).then_some(())
        })
        .await;

    // The room forgets Alice without a word (as after a restart of the
    // service): no presence, no status code.
    let removed = server.lua(&format!(
        "local r = prosody.hosts['muc.localhost'].modules.muc.get_room_from_jid('{room}'); \
         local n = '{room}/alice'; local o = r._occupants[n]; \
         for j in o:each_session() do r._jid_nick[j] = nil end; \
         r._occupants[n] = nil; return 'forgotten'"
    ));
    assert!(removed.contains("forgotten"), "{removed}");
    let missed: Vec<String> = (0..2).map(|i| unique(&format!("missed {i}"))).collect();
    for body in &missed {
        bob.send_room_message(room, body).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !alice
            .history(room, None, 10)
            .unwrap()
            .iter()
            .any(|m| missed.contains(&m.body)),
        "the room no longer sends Alice anything"
    );

    // Back in the foreground, Alice asks the room, which says she is not
    // in it; she joins again and the archive brings what she missed.
    alice_events.clear();
    alice.set_foreground(false);
    alice.set_foreground(true);
    alice_events
        .wait_for(15, |e| {
            matches!(e, ClientEvent::RoomJoined { room: r, .. } if r == room).then_some(())
        })
        .await;
    let last = missed.last().unwrap().clone();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == last).then_some(())
        })
        .await;
    let mut expected = vec![before];
    expected.extend(missed);
    assert_eq!(room_bodies(&alice, room), expected);
    alice.logout().await;
    bob.logout().await;
}

/// The cli's room commands: `join` bookmarks with autojoin, `rooms` lists
/// the bookmarks (a fresh login joins the autojoin ones), `send` to a room
/// is a groupchat message, `history` shows who wrote what, `leave` keeps
/// the bookmark without autojoin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_joins_bookmarks_lists_sends_to_and_leaves_rooms() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let bob_dir = tempfile::tempdir().unwrap();
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let key = "cd".repeat(32);
    let room = "club@muc.localhost";
    let run = |args: &[&str]| run_alice_cli(&server, store.path(), &key, args);
    let joined = run(&["join", room, "ally"]);
    assert!(
        joined.iter().any(|l| l["joined"]["nick"] == "ally"),
        "{joined:?}"
    );
    bob.join_room(room, "bob").await.unwrap();

    // A new login joins the bookmarked room by itself.
    let rooms = run(&["rooms"]);
    let listed: Vec<&serde_json::Value> =
        rooms.iter().filter(|l| l.get("room").is_some()).collect();
    assert_eq!(listed.len(), 1, "{rooms:?}");
    assert_eq!(listed[0]["room"], room);
    assert_eq!(listed[0]["autojoin"], true);
    assert_eq!(listed[0]["joined"], true);

    let body = unique("from the cli");
    run(&["send", room, &body]);
    let got = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.room.as_ref().map(|r| r.nick.as_str()), Some("ally"));
    let reply = unique("reply from bob");
    bob.send_room_message(room, &reply).unwrap();
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageStateChanged(m)
                if m.body == reply && m.state == waxwing_core::store::MessageState::Delivered)
            .then_some(())
        })
        .await;

    // The next login catches up with the room's archive; history shows
    // who wrote what.
    run(&["rooms"]);
    let history = run(&["history", room]);
    let messages: Vec<&serde_json::Value> = history.iter().map(|l| &l["message"]).collect();
    let by_body = |b: &str| messages.iter().find(|m| m["body"] == b).copied();
    let ours = by_body(&body).expect("our message in the history");
    assert_eq!(ours["room"], room);
    assert_eq!(ours["nick"], "ally");
    assert_eq!(ours["sender_jid"], "alice@localhost");
    let theirs = by_body(&reply).expect("bob's reply in the history");
    assert_eq!(theirs["nick"], "bob");
    assert_eq!(theirs["room"], room);

    run(&["leave", room]);
    let rooms = run(&["rooms"]);
    let listed: Vec<&serde_json::Value> =
        rooms.iter().filter(|l| l.get("room").is_some()).collect();
    assert_eq!(listed[0]["autojoin"], false, "{rooms:?}");
    assert_eq!(listed[0]["joined"], false);
    bob.logout().await;
}

/// A bookmark set on one device joins the room on the account's other
/// device at once (the `+notify` event), and its retraction leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_from_another_device_joins_and_its_removal_leaves() {
    let server = TestServer::start(&["alice:pw-a"]);
    let (phone_dir, laptop_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut laptop_config = server.config("alice", "pw-a", laptop_dir.path().into());
    laptop_config.resource = Some("laptop".into());
    let (phone, _phone_events) =
        open_client(server.config("alice", "pw-a", phone_dir.path().into()));
    let (laptop, laptop_events) = open_client(laptop_config);
    phone.login().await.unwrap();
    laptop.login().await.unwrap();
    let room = "shared@muc.localhost";
    phone
        .set_bookmark(room, Some("Shared".into()), Some("alice".into()), true)
        .await
        .unwrap();
    laptop_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::RoomJoined { room: r, .. } if r == room).then_some(())
        })
        .await;
    let bookmarks = laptop.bookmarks().unwrap();
    assert_eq!(bookmarks.len(), 1);
    assert_eq!(bookmarks[0].name.as_deref(), Some("Shared"));
    assert!(bookmarks[0].autojoin);

    phone.remove_bookmark(room).await.unwrap();
    laptop_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::RoomLeft { room: r, .. } if r == room).then_some(())
        })
        .await;
    assert!(laptop.bookmarks().unwrap().is_empty());
    phone.logout().await;
    laptop.logout().await;
}

/// Invitations both ways: through the room and direct, each an event the
/// invitee decides on; one from a stranger joins nothing by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_events_the_invitee_decides_on() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b", "mallory:pw-m"]);
    let (alice, _alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;
    let mallory_dir = tempfile::tempdir().unwrap();
    let (mallory, _) = open_client(server.config("mallory", "pw-m", mallory_dir.path().into()));
    mallory.login().await.unwrap();
    let room = "party@muc.localhost";
    alice.join_room(room, "alice").await.unwrap();

    let invite_from = |from: &'static str, direct: bool| {
        move |e: &ClientEvent| match e {
            ClientEvent::RoomInvite {
                room: r,
                from: f,
                direct: d,
                reason,
                ..
            } if r == room && f == from && *d == direct => Some(reason.clone()),
            _ => None,
        }
    };
    alice
        .invite_to_room(room, "bob@localhost", Some("cake"), false)
        .unwrap();
    // The room is semi-anonymous: it names Alice by her nick.
    let reason = bob_events
        .wait_for(10, invite_from("party@muc.localhost/alice", false))
        .await;
    assert_eq!(reason.as_deref(), Some("cake"));
    alice
        .invite_to_room(room, "bob@localhost", None, true)
        .unwrap();
    bob_events
        .wait_for(10, invite_from("alice@localhost", true))
        .await;

    // A stranger's invitation is told, never acted on.
    mallory
        .invite_to_room(
            "trap@muc.localhost",
            "bob@localhost",
            Some("free stuff"),
            true,
        )
        .unwrap();
    bob_events
        .wait_for(10, |e| match e {
            ClientEvent::RoomInvite { room, from, .. }
                if room == "trap@muc.localhost" && from == "mallory@localhost" =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !bob_events
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::RoomJoined { .. })),
        "no room joined by itself"
    );
    // Accepting is joining.
    bob.join_room(room, "bob").await.unwrap();
    alice.logout().await;
    bob.logout().await;
    mallory.logout().await;
}

/// A private group: members only, real JIDs for its members; a channel:
/// open, real JIDs hidden; member lists, kicks and destruction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_groups_and_channels_are_configured_as_such() {
    use waxwing_core::features::muc_admin::{Affiliation, RoomKind};
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, _alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;

    let group = "secret@muc.localhost";
    let nick = alice
        .create_room(
            group,
            "alice",
            RoomKind::PrivateGroup,
            Some("Secret".into()),
        )
        .await
        .unwrap();
    assert_eq!(nick, "alice");
    let refused = bob.join_room(group, "bob").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Refused { condition } if condition.contains("MembersOnly")),
        "{refused:?}"
    );
    alice
        .set_room_affiliation(group, "bob@localhost", Affiliation::Member, None)
        .await
        .unwrap();
    bob.join_room(group, "bob").await.unwrap();
    assert_eq!(
        alice.room_members(group).await.unwrap(),
        ["alice@localhost", "bob@localhost"]
    );
    // Members see each other's real JIDs, in presence and on messages.
    let seen = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::RoomOccupantsChanged { room, occupants } if room == group => occupants
                .iter()
                .find(|o| o.nick == "alice")
                .and_then(|o| o.real_jid.clone()),
            _ => None,
        })
        .await;
    assert_eq!(seen.to_bare().as_str(), "alice@localhost");
    let body = unique("in the group");
    alice.send_room_message(group, &body).unwrap();
    let got = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        got.room.and_then(|r| r.real_jid).as_deref(),
        Some("alice@localhost")
    );
    // Creating what exists is refused.
    let exists = alice
        .create_room(group, "alice2", RoomKind::Channel, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&exists, ClientError::Refused { condition } if condition == "room-exists"),
        "{exists:?}"
    );

    let channel = "lobby@muc.localhost";
    alice
        .create_room(channel, "alice", RoomKind::Channel, None)
        .await
        .unwrap();
    let taken = bob
        .create_room(channel, "bob", RoomKind::Channel, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, ClientError::Refused { condition } if condition == "room-exists"),
        "{taken:?}"
    );
    bob_events.clear();
    bob.join_room(channel, "bob").await.unwrap();
    let hidden = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::RoomOccupantsChanged { room, occupants } if room == channel => occupants
                .iter()
                .find(|o| o.nick == "alice")
                .map(|o| o.real_jid.is_none()),
            _ => None,
        })
        .await;
    assert!(hidden, "a channel hides real JIDs from participants");
    alice
        .kick_from_room(channel, "bob", Some("bye"))
        .await
        .unwrap();
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::RoomLeft { room, reason } if room == channel && reason == "kicked")
                .then_some(())
        })
        .await;
    alice.destroy_room(channel, Some("done")).await.unwrap();
    alice.logout().await;
    bob.logout().await;
}

/// The cli creates a private group, lists who is in it, and invites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_a_private_group_lists_occupants_and_invites() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let bob_dir = tempfile::tempdir().unwrap();
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let key = "ef".repeat(32);
    let room = "crew@muc.localhost";
    let run = |args: &[&str]| run_alice_cli(&server, store.path(), &key, args);
    let created = run(&["create", room, "--private", "--name", "Crew"]);
    assert!(
        created.iter().any(|l| l["created"]["room"] == room),
        "{created:?}"
    );
    let rooms = run(&["rooms"]);
    assert!(
        rooms
            .iter()
            .any(|l| l["room"] == room && l["name"] == "Crew"),
        "{rooms:?}"
    );
    let occupants = run(&["occupants", room]);
    let alice = occupants
        .iter()
        .find(|l| l["occupant"]["nick"] == "alice")
        .expect("alice in her room");
    // A private group shows real JIDs.
    assert!(
        alice["occupant"]["jid"]
            .as_str()
            .is_some_and(|j| j.starts_with("alice@localhost")),
        "{alice:?}"
    );
    assert_eq!(alice["occupant"]["affiliation"], "owner");
    run(&["invite", room, "bob@localhost"]);
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::RoomInvite { room: r, .. } if r == room).then_some(())
        })
        .await;
    // The owner's invitation made Bob a member of the members-only room.
    bob.join_room(room, "bob").await.unwrap();
    bob.logout().await;
}

/// A nick change goes through (others see the new nick, our messages carry
/// it); a taken nick is refused and leaves us in the room as we were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nick_change_goes_through_and_a_taken_nick_leaves_us_as_we_were() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, _alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;
    let room = "names@muc.localhost";
    alice.join_room(room, "alice").await.unwrap();
    bob.join_room(room, "bob").await.unwrap();
    assert_eq!(alice.change_nick(room, "ally").await.unwrap(), "ally");
    bob_events
        .wait_for(10, |e| match e {
            ClientEvent::RoomOccupantsChanged { room: r, occupants } if r == room => {
                let nicks: Vec<&str> = occupants.iter().map(|o| o.nick.as_str()).collect();
                (nicks == ["ally", "bob"]).then_some(())
            }
            _ => None,
        })
        .await;
    let taken = alice.change_nick(room, "bob").await.unwrap_err();
    assert!(
        matches!(&taken, ClientError::Refused { condition } if condition.contains("NickInUse")),
        "{taken:?}"
    );
    let body = unique("still here");
    alice.send_room_message(room, &body).unwrap();
    let got = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.room.map(|r| r.nick).as_deref(), Some("ally"));
    alice.logout().await;
    bob.logout().await;
}
