//! Lifecycle hooks against a real Prosody: network lost/available (no retry
//! while down, an immediate resumption when back) and foreground/background
//! (XEP-0352: the server holds back presence while we are inactive).

use std::time::Duration;

use crate::common::*;
use waxwing_core::features::presence::Availability;
use waxwing_core::{ClientEvent, ConnectionState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_lost_waits_and_network_available_resumes_at_once() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = server.config("alice", "pw-a", alice_dir.path().into());
    // A long backoff: only the hook can explain a quick reconnect.
    config.initial_backoff = Duration::from_secs(60);
    let (alice, events) = open_client(config);
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();

    alice.network_lost();
    events
        .wait_for(5, |e| {
            matches!(
                e,
                ClientEvent::ConnectionChanged(ConnectionState::Disconnected {
                    will_retry: true,
                    ..
                })
            )
            .then_some(())
        })
        .await;
    let missed = unique("while the network was down");
    bob.send_message("alice@localhost", &missed).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let connecting = |events: &Recorder| {
        events
            .events()
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ClientEvent::ConnectionChanged(ConnectionState::Connecting)
                )
            })
            .count()
    };
    assert_eq!(
        connecting(&events),
        1,
        "no attempt while the network is down"
    );

    alice.network_available();
    events
        .wait_for(5, |e| {
            matches!(
                e,
                ClientEvent::ConnectionChanged(ConnectionState::Online { resumed: true, .. })
            )
            .then_some(())
        })
        .await;
    events
        .wait_for(5, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == missed).then_some(())
        })
        .await;
    let onlines: Vec<bool> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online { resumed, .. }) => {
                Some(resumed)
            }
            _ => None,
        })
        .collect();
    assert_eq!(onlines, vec![false, true], "back at once, and resumed");
    alice.logout().await;
    bob.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_background_the_server_holds_back_presence() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;
    // Mutual subscription so presence flows.
    alice
        .subscription(
            "bob@localhost",
            waxwing_core::features::presence::SubscriptionAction::Subscribe,
        )
        .unwrap();
    bob_events
        .wait_for(5, |e| {
            matches!(e, ClientEvent::SubscriptionRequest { .. }).then_some(())
        })
        .await;
    alice_events.clear();
    bob.subscription(
        "alice@localhost",
        waxwing_core::features::presence::SubscriptionAction::Approve,
    )
    .unwrap();
    alice_events
        .wait_for(5, |e| {
            matches!(e, ClientEvent::PresenceChanged { jid, availability: Availability::Available, .. } if jid == "bob@localhost")
                .then_some(())
        })
        .await;
    // Let the subscription traffic settle: an important stanza arriving
    // after <inactive/> would open a flush window on the server.
    tokio::time::sleep(Duration::from_millis(500)).await;

    alice.set_foreground(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice_events.clear();
    bob.set_presence(Availability::DoNotDisturb, Some("busy".into()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !alice_events
            .events()
            .iter()
            .any(|e| matches!(e, ClientEvent::PresenceChanged { .. })),
        "presence is held back while inactive: {:?}",
        alice_events.events()
    );
    alice.set_foreground(true);
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::PresenceChanged {
                availability: Availability::DoNotDisturb,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    alice.logout().await;
    bob.logout().await;
}

/// The files under `dir` this process has open (Linux: /proc/self/fd).
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_client_holds_no_file_open_and_reopens_the_store_on_demand() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, events) = open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();
    let before = unique("before the suspension");
    alice.send_message("bob@localhost", &before).unwrap();
    assert!(!open_files_under(alice_dir.path()).is_empty());

    // iOS kills a suspended app holding a lock on a file in its App Group
    // container (0xdead10cc): nothing of the account may stay open.
    alice.suspend().await;
    assert!(!alice.store_is_open());
    assert_eq!(
        open_files_under(alice_dir.path()),
        Vec::<std::path::PathBuf>::new()
    );

    // A call that needs the store opens it again (the UI reading history).
    let history = alice.history("bob@localhost", None, 10).unwrap();
    assert_eq!(history[0].body, before);
    assert!(alice.store_is_open());
    alice.suspend().await;
    assert_eq!(
        open_files_under(alice_dir.path()),
        Vec::<std::path::PathBuf>::new()
    );

    // Back in the foreground: login opens the store and resumes the session,
    // with what came in the meantime.
    let missed = unique("while suspended");
    bob.send_message("alice@localhost", &missed).unwrap();
    events.clear();
    alice.login().await.unwrap();
    events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == missed).then_some(())
        })
        .await;
    assert!(events.events().iter().any(|e| matches!(
        e,
        ClientEvent::ConnectionChanged(ConnectionState::Online { resumed: true, .. })
    )));
    alice.logout().await;
    bob.logout().await;
}

/// An app that stops waiting for a logout or a suspension (a cancelled
/// coroutine or Swift Task drops the future) still gets a usable client:
/// the close completes in the background and the next login waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_logout_or_suspension_leaves_the_client_usable() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, events) = open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    for cancel_after in [0, 2, 20] {
        alice.login().await.unwrap();
        let wait = Duration::from_millis(cancel_after);
        let _ = tokio::time::timeout(wait, alice.logout()).await;
        alice.login().await.expect("login after a cancelled logout");
        let _ = tokio::time::timeout(wait, alice.suspend()).await;
        // The suspension completes in the background, store close included.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while alice.store_is_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "a cancelled suspension left the store open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        alice
            .login()
            .await
            .expect("login after a cancelled suspension");
        let body = unique("after cancellations");
        bob.send_message("alice@localhost", &body).unwrap();
        events
            .wait_for(10, |e| {
                matches!(e, ClientEvent::MessageReceived(m) if m.body == body).then_some(())
            })
            .await;
        assert!(matches!(
            alice.connection_state(),
            ConnectionState::Online { .. }
        ));
    }
    alice.logout().await;
    bob.logout().await;
}
