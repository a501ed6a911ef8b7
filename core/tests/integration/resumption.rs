//! XEP-0198 resumption against a real Prosody: after a cut connection in the
//! same process, and from a new process using the state in the store.
//! Messages sent to us meanwhile arrive exactly once.

use std::time::Duration;

use crate::common::*;
use waxwing_core::{ClientEvent, ConnectionState};

fn online_events(events: &Recorder) -> Vec<bool> {
    events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online { resumed, .. }) => {
                Some(resumed)
            }
            _ => None,
        })
        .collect()
}

fn received(events: &Recorder) -> Vec<String> {
    events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::MessageReceived(m) => Some(m.body),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resumed_and_nothing_is_lost_or_doubled() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let proxy = Proxy::start(server.c2s_port).await;
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice_config = server.config("alice", "pw-a", alice_dir.path().into());
    alice_config.connect.server = Some(("127.0.0.1".into(), proxy.port));
    let (alice, alice_events) = open_client(alice_config);
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();

    let before = unique("before the cut");
    bob.send_message("alice@localhost", &before).unwrap();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == before).then_some(())
        })
        .await;

    proxy.cut();
    // Bob keeps writing while alice is away; the server holds them for her.
    let during: Vec<String> = (0..3)
        .map(|i| unique(&format!("during the cut {i}")))
        .collect();
    for body in &during {
        bob.send_message("alice@localhost", body).unwrap();
    }
    // Alice, too, writes while cut off.
    let outgoing = unique("alice while cut off");
    alice.send_message("bob@localhost", &outgoing).unwrap();

    for body in &during {
        alice_events
            .wait_for(20, |e| {
                matches!(e, ClientEvent::MessageReceived(m) if &m.body == body).then_some(())
            })
            .await;
    }
    // Prosody 13.0 sometimes stops reading a stream it just resumed (when
    // the resumption left input buffered); the client then sees its ack
    // request go unanswered for the ping timeout (30 s) and connects again
    // (a resumption, or a fresh session if Prosody dropped the stuck one).
    bob_events
        .wait_for(45, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == outgoing).then_some(())
        })
        .await;
    let online = online_events(&alice_events);
    assert!(
        online.len() >= 2 && !online[0] && online[1],
        "one fresh session, then a resumption: {online:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut expected = vec![before.clone()];
    expected.extend(during.iter().cloned());
    assert_eq!(
        received(&alice_events),
        expected,
        "every message once, in order"
    );
    assert_eq!(
        received(&bob_events),
        vec![outgoing],
        "alice's message once"
    );
    alice.logout().await;
    bob.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_resumes_the_stream_the_killed_one_left() {
    // SASL2: FAST token and inline resumption in one <authenticate/>.
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    resume_after_kill(&server, "HT-SHA-256-EXPR").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sasl2_a_new_process_resumes_the_classic_way() {
    // RFC 6120 SASL, stream restart, then <resume/> (XEP-0198 §5).
    let server = TestServer::start_classic(&["alice:pw-a", "bob:pw-b"]);
    resume_after_kill(&server, "SCRAM-SHA-1-PLUS").await;
}

async fn resume_after_kill(server: &TestServer, expected_authentication: &str) {
    let proxy = Proxy::start(server.c2s_port).await;
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = || {
        let mut c = server.config("alice", "pw-a", alice_dir.path().into());
        c.connect.server = Some(("127.0.0.1".into(), proxy.port));
        c
    };
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    {
        let (alice, _) = open_client(config());
        alice.login().await.unwrap();
        // The app is killed: no logout, the socket just dies.
        drop(alice);
        proxy.cut();
    }
    let missed = unique("sent while alice was dead");
    bob.send_message("alice@localhost", &missed).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (alice, alice_events) = open_client(config());
    alice.login().await.unwrap();
    assert_eq!(
        online_events(&alice_events),
        vec![true],
        "the stored stream state was resumed"
    );
    let authentication = alice_events.events().into_iter().find_map(|e| match e {
        ClientEvent::ConnectionChanged(ConnectionState::Online { authentication, .. }) => {
            Some(authentication)
        }
        _ => None,
    });
    assert_eq!(authentication.as_deref(), Some(expected_authentication),);
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::MessageReceived(m) if m.body == missed).then_some(())
        })
        .await;
    alice.logout().await;
    // After a clean logout there is nothing left to resume.
    let (alice, alice_events) = open_client(config());
    alice.login().await.unwrap();
    assert_eq!(online_events(&alice_events), vec![false]);
    alice.logout().await;
    bob.logout().await;
}
