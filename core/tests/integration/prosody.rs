//! End to end against a real Prosody 13 on loopback: login paths, typed
//! failures, chat with receipts, the offline outbox, roster and presence,
//! and history that survives a restart.

use crate::common::*;
use waxwing_core::features::presence::{Availability, SubscriptionAction};
use waxwing_core::store::{Direction, MessageState};
use waxwing_core::{ClientError, ClientEvent, ConnectionState};

/// The `Online` state's round trips and authentication mechanism.
async fn online_facts(events: &Recorder) -> (u32, String) {
    events
        .wait_for(5, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online {
                round_trips,
                authentication,
                ..
            }) => Some((*round_trips, authentication.clone())),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl2_login_binds_inline_gets_a_fast_token_and_the_next_login_spends_it() {
    let server = TestServer::start(&["alice:pw-a"]);
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(server.config("alice", "pw-a", store.path().into()));
    let jid = client.login().await.expect("SASL2 login");
    // Bind2: the server derives the resource from our tag and client id.
    assert!(jid.starts_with("alice@localhost/Waxwing~"), "{jid}");
    let (trips, mechanism) = online_facts(&events).await;
    assert_eq!(mechanism, "SCRAM-SHA-1-PLUS");
    // header, starttls, header, authenticate, SCRAM response (bound inline).
    assert_eq!(trips, 5);
    // Suspended (the app went to the background): the token stays. The
    // stream state is forgotten here so that the next login is FAST alone.
    client.suspend().await;
    drop(client);
    let key = waxwing_core::store::StoreKey::from_bytes([7u8; 32]);
    waxwing_core::store::Store::open(store.path(), &key)
        .unwrap()
        .set_account_value("sm_state", None)
        .unwrap();

    // The token was stored; the next process spends it, over direct TLS.
    let direct = |store: &std::path::Path| {
        let mut config = server.config("alice", "pw-a", store.into());
        config.connect = server.connect_options(true);
        config
    };
    let (client, events) = open_client(direct(store.path()));
    let again = client.login().await.expect("FAST login");
    assert_eq!(again, jid, "the same resource for the same installation");
    let (trips, mechanism) = online_facts(&events).await;
    assert_eq!(mechanism, "HT-SHA-256-EXPR", "a channel-bound FAST token");
    // The features of the first login were kept: the authenticate goes
    // out with the stream header, and Prosody takes it.
    assert_eq!(trips, 1, "header and authenticate in one flight");
    // Logging out erases the token (it stands in for the password): the
    // next login is a password login again.
    client.logout().await;
    drop(client);
    let (client, events) = open_client(direct(store.path()));
    client.login().await.expect("password login");
    let (_, mechanism) = online_facts(&events).await;
    assert!(mechanism.starts_with("SCRAM-"), "{mechanism}");
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_login_over_starttls_and_direct_tls_counts_round_trips() {
    let server = TestServer::start_classic(&["alice:pw-a"]);
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(server.config("alice", "pw-a", store.path().into()));
    let jid = client.login().await.expect("STARTTLS login");
    assert_eq!(jid, "alice@localhost/test");
    let (trips, mechanism) = events
        .wait_for(5, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online {
                round_trips,
                authentication,
                ..
            }) => Some((*round_trips, authentication.clone())),
            _ => None,
        })
        .await;
    // Prosody 13's internal_hashed store keeps SCRAM-SHA-1 keys only; the
    // -PLUS variant proves tls-exporter channel binding over TLS 1.3.
    assert_eq!(mechanism, "SCRAM-SHA-1-PLUS");
    // header, starttls, header, SASL (SCRAM: 2), header, bind+enable.
    assert_eq!(trips, 7);
    client.logout().await;

    let mut config = server.config("alice", "pw-a", store.path().into());
    config.connect = server.connect_options(true);
    let (client, events) = open_client(config);
    client.login().await.expect("direct TLS login");
    let trips = events
        .wait_for(5, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online { round_trips, .. }) => {
                Some(*round_trips)
            }
            _ => None,
        })
        .await;
    assert_eq!(
        trips, 5,
        "direct TLS saves the STARTTLS exchange and one header"
    );
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_typed_error_and_not_retried() {
    let server = TestServer::start(&["alice:right"]);
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(server.config("alice", "wrong", store.path().into()));
    assert_eq!(client.login().await, Err(ClientError::AuthenticationFailed));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let attempts = events
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::ConnectionChanged(ConnectionState::Connecting)
            )
        })
        .count();
    assert_eq!(attempts, 1, "no reconnect loop after an auth failure");
    assert!(matches!(
        client.connection_state(),
        ConnectionState::Disconnected {
            will_retry: false,
            error: Some(ClientError::AuthenticationFailed)
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_typed_error_never_a_downgrade() {
    let server = TestServer::start(&["alice:pw"]);
    let store = tempfile::tempdir().unwrap();
    for direct_tls in [false, true] {
        let mut config = server.config("alice", "pw", store.path().into());
        config.connect = server.connect_options(direct_tls);
        config.connect.extra_ca_pem = None;
        let (client, _) = open_client(config);
        assert_eq!(
            client.login().await,
            Err(ClientError::UntrustedCertificate),
            "direct_tls={direct_tls}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_both_ways_with_acks_receipts_and_history_after_restart() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b", "carol:pw-c"]);
    let (alice, alice_events, bob, bob_events, (alice_dir, _bob_dir)) =
        alice_and_bob(&server).await;
    befriend(
        (&alice, "alice@localhost", &alice_events),
        (&bob, "bob@localhost", &bob_events),
    )
    .await;

    let body = unique("hello bob");
    let sent = alice.send_message("bob@localhost", &body).unwrap();
    assert_eq!(sent.state, MessageState::Queued);
    let received = bob_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received.peer, "alice@localhost");
    assert_eq!(received.direction, Direction::Incoming);
    assert_eq!(
        received.origin_id, sent.origin_id,
        "origin-id travels with the message"
    );
    assert!(
        received.stanza_id.is_some(),
        "the server's archive id is recorded"
    );
    // Server ack, then the recipient's receipt.
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageStateChanged(m)
                if m.id == sent.id && m.state == MessageState::Delivered =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    assert!(alice_events.events().iter().any(
        |e| matches!(e, ClientEvent::MessageStateChanged(m) if m.id == sent.id && m.state == MessageState::Acked)
    ));

    let reply = unique("hi alice");
    bob.send_message("alice@localhost", &reply).unwrap();
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == reply => Some(()),
            _ => None,
        })
        .await;
    let conversations = alice.conversations().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0].peer, "bob@localhost");
    assert_eq!(conversations[0].unread_count, 1);
    assert_eq!(conversations[0].last_message.as_ref().unwrap().body, reply);

    // Issue 12, defect 7: a stranger (carol, not allowed to see alice's
    // presence) gets no receipt, so her messages do not tell her alice is
    // online; the friend above did get one.
    let carol_dir = tempfile::tempdir().unwrap();
    let (carol, carol_events) =
        open_client(server.config("carol", "pw-c", carol_dir.path().into()));
    carol.login().await.unwrap();
    let probe = unique("are you online?");
    let probe_sent = carol.send_message("alice@localhost", &probe).unwrap();
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == probe => Some(()),
            _ => None,
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !carol_events.events().iter().any(|e| matches!(e,
            ClientEvent::MessageStateChanged(m) if m.id == probe_sent.id && m.state == MessageState::Delivered)),
        "a stranger got a receipt"
    );
    carol.logout().await;

    alice.logout().await;
    bob.logout().await;
    drop(alice);

    // A new process: the history is read back from the encrypted store.
    let (alice, _) = open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    let history = alice.history("bob@localhost", None, 50).unwrap();
    let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, vec![reply.as_str(), body.as_str()], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_offline_go_out_on_the_next_login_exactly_once() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();

    let bodies: Vec<String> = (0..3).map(|i| unique(&format!("offline {i}"))).collect();
    {
        // The app sends while offline, then dies.
        let (alice, _) = open_client(server.config("alice", "pw-a", alice_dir.path().into()));
        for b in &bodies {
            assert_eq!(
                alice.send_message("bob@localhost", b).unwrap().state,
                MessageState::Queued
            );
        }
    }
    let (alice, alice_events) =
        open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    alice.login().await.unwrap();
    for b in &bodies {
        bob_events
            .wait_for(10, |e| match e {
                ClientEvent::MessageReceived(m) if &m.body == b => Some(()),
                _ => None,
            })
            .await;
    }
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::MessageStateChanged(m)
                if m.body == bodies[2] && m.state >= MessageState::Acked =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    // Log in again: nothing is re-sent.
    alice.logout().await;
    alice.login().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let received: Vec<_> = bob_events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::MessageReceived(m) => Some(m.body),
            _ => None,
        })
        .collect();
    assert_eq!(received, bodies, "each exactly once, in order");
    assert_eq!(bob.history("alice@localhost", None, 10).unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_edits_subscriptions_and_presence() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let (alice, alice_events, bob, bob_events, _stores) = alice_and_bob(&server).await;

    alice
        .add_contact("bob@localhost", Some("Bob".into()))
        .await
        .unwrap();
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::RosterChanged(r)
                if r.iter()
                    .any(|c| c.jid == "bob@localhost" && c.name.as_deref() == Some("Bob")) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    alice
        .subscription("bob@localhost", SubscriptionAction::Subscribe)
        .unwrap();
    bob_events
        .wait_for(5, |e| match e {
            ClientEvent::SubscriptionRequest { from } if from == "alice@localhost" => Some(()),
            _ => None,
        })
        .await;
    bob.subscription("alice@localhost", SubscriptionAction::Approve)
        .unwrap();
    bob.set_presence(Availability::Away, Some("at lunch".into()))
        .unwrap();
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::PresenceChanged {
                jid,
                availability: Availability::Away,
                status,
                ..
            } if jid == "bob@localhost" && status.as_deref() == Some("at lunch") => Some(()),
            _ => None,
        })
        .await;
    // Issue 12, defect 16: a resumed stream gets no presence again, so what
    // we knew must survive the drop (it used to be cleared on disconnect).
    alice_events.clear();
    alice.network_lost();
    alice.network_available();
    alice_events
        .wait_for(10, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online { resumed: true, .. }) => {
                Some(())
            }
            _ => None,
        })
        .await;
    assert_eq!(
        alice
            .presence("bob@localhost")
            .iter()
            .map(|p| p.availability)
            .collect::<Vec<_>>(),
        vec![Availability::Away],
        "bob's presence after a resume"
    );
    alice
        .rename_contact("bob@localhost", "Robert".into())
        .await
        .unwrap();
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::RosterChanged(r)
                if r.iter().any(|c| c.name.as_deref() == Some("Robert")) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    let entry = alice
        .roster()
        .unwrap()
        .into_iter()
        .find(|c| c.jid == "bob@localhost")
        .unwrap();
    assert_eq!(entry.name.as_deref(), Some("Robert"));
    assert_eq!(entry.subscription.as_str(), "to");
    // A second login: the roster comes back (versioned, XEP-0237).
    alice.logout().await;
    assert!(
        alice.presence("bob@localhost").is_empty(),
        "presence is forgotten offline"
    );
    alice_events.clear();
    alice.login().await.unwrap();
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::RosterChanged(r)
                if r.iter().any(|c| c.name.as_deref() == Some("Robert")) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    alice_events.clear();
    alice.remove_contact("bob@localhost").await.unwrap();
    alice_events
        .wait_for(5, |e| match e {
            ClientEvent::RosterChanged(r) if r.is_empty() => Some(()),
            _ => None,
        })
        .await;
    assert!(alice.roster().unwrap().is_empty());
    assert_eq!(
        alice.add_contact("not a jid@@", None).await,
        Err(ClientError::InvalidJid)
    );
}

/// Reads the roster from inside the listener, as an app's UI callback may.
struct ReadsRosterOnEvent {
    client: std::sync::OnceLock<std::sync::Arc<waxwing_core::Client>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl waxwing_core::EventListener for ReadsRosterOnEvent {
    fn on_event(&self, event: ClientEvent) {
        if let ClientEvent::RosterChanged(_) = event {
            if let Some(client) = self.client.get() {
                client.roster().unwrap();
                self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

/// Issue 12, defect 14: the listener is never called while the store is
/// locked, so one that reads the store (roster, history) does not deadlock
/// the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_reads_the_store_does_not_deadlock_the_connection() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let dir = tempfile::tempdir().unwrap();
    let listener = std::sync::Arc::new(ReadsRosterOnEvent {
        client: std::sync::OnceLock::new(),
        reads: std::sync::atomic::AtomicUsize::new(0),
    });
    let client = std::sync::Arc::new(
        waxwing_core::Client::open(
            server.config("alice", "pw-a", dir.path().into()),
            listener.clone(),
        )
        .unwrap(),
    );
    let _ = listener.client.set(client.clone());
    client.login().await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.add_contact("bob@localhost", Some("Bob".into())),
    )
    .await
    .expect("the connection still answers")
    .unwrap();
    assert!(listener.reads.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    client.logout().await;
}
