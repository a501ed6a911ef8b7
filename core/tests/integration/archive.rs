//! Carbons (XEP-0280) and archive catch-up (XEP-0313) against a real
//! Prosody: another device's messages show up in both directions, and what
//! arrived while offline is fetched from the archive exactly once, in order.

use std::time::Duration;

use crate::common::*;
use waxwing_core::store::Direction;
use waxwing_core::ClientEvent;

async fn caught_up(events: &Recorder) {
    events
        .wait_for(15, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_device_sees_both_directions_through_carbons() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut phone_config = server.config("alice", "pw-a", dirs[0].path().into());
    phone_config.resource = Some("phone".into());
    let mut laptop_config = server.config("alice", "pw-a", dirs[1].path().into());
    laptop_config.resource = Some("laptop".into());
    let (phone, phone_events) = open_client(phone_config);
    let (laptop, laptop_events) = open_client(laptop_config);
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", dirs[2].path().into()));
    for (client, events) in [
        (&phone, &phone_events),
        (&laptop, &laptop_events),
        (&bob, &bob_events),
    ] {
        client.login().await.unwrap();
        caught_up(events).await;
    }

    let from_phone = unique("written on the phone");
    phone.send_message("bob@localhost", &from_phone).unwrap();
    let copy = laptop_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == from_phone => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (copy.direction, copy.peer.as_str()),
        (Direction::Outgoing, "bob@localhost")
    );
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == from_phone).then_some(())
        })
        .await;

    let reply = unique("reply from bob");
    bob.send_message("alice@localhost", &reply).unwrap();
    for events in [&phone_events, &laptop_events] {
        events
            .wait_for(10, |e| {
                matches!(e, ClientEvent::MessageReceived(m) if m.body == reply).then_some(())
            })
            .await;
    }
    let laptop_history: Vec<_> = laptop
        .history("bob@localhost", None, 10)
        .unwrap()
        .into_iter()
        .map(|m| (m.direction, m.body))
        .collect();
    assert_eq!(
        laptop_history,
        vec![
            (Direction::Incoming, reply),
            (Direction::Outgoing, from_phone)
        ]
    );
    for c in [&phone, &laptop, &bob] {
        c.logout().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_missed_while_offline_come_from_the_archive_once_and_in_order() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    let (alice, alice_events) =
        open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    alice.login().await.unwrap();
    caught_up(&alice_events).await;
    let first = unique("while online");
    bob.send_message("alice@localhost", &first).unwrap();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == first).then_some(())
        })
        .await;
    alice.logout().await;

    // Offline: Prosody both archives these and keeps them as offline messages.
    let missed: Vec<String> = (0..5).map(|i| unique(&format!("missed {i}"))).collect();
    for body in &missed {
        bob.send_message("alice@localhost", body).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice_events.clear();
    alice.login().await.unwrap();
    caught_up(&alice_events).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received: Vec<String> = alice_events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::MessageReceived(m) => Some(m.body),
            _ => None,
        })
        .collect();
    assert_eq!(
        received, missed,
        "each missed message exactly once, in order"
    );
    let stored = alice.history("bob@localhost", None, 20).unwrap();
    assert_eq!(stored.len(), 6);
    assert!(
        stored.iter().all(|m| m.stanza_id.is_some()),
        "archive ids recorded"
    );

    // A new installation (empty store) gets the recent history from the archive.
    let fresh_dir = tempfile::tempdir().unwrap();
    let mut fresh_config = server.config("alice", "pw-a", fresh_dir.path().into());
    fresh_config.resource = Some("tablet".into());
    let (tablet, tablet_events) = open_client(fresh_config);
    tablet.login().await.unwrap();
    caught_up(&tablet_events).await;
    let bodies: Vec<String> = tablet
        .history("bob@localhost", None, 20)
        .unwrap()
        .into_iter()
        .rev()
        .map(|m| m.body)
        .collect();
    let mut expected = vec![first];
    expected.extend(missed);
    assert_eq!(bodies, expected);
    tablet.logout().await;
    alice.logout().await;
    bob.logout().await;
}
