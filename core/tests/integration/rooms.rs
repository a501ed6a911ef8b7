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
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, alice_events) =
        open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();
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
