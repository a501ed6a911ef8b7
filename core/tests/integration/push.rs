//! Push notifications against a real Prosody (mod_cloud_notify with
//! mod_cloud_notify_encrypted) and a test app server component: the
//! encrypted payload decrypts on the device without connecting, a payload
//! that does not decrypt makes the wake-up fetch over the network instead,
//! and a running app keeps its session (the wake-up backs off).

use std::time::Duration;

use crate::common::*;
use waxwing_core::client::wake::{self, EncryptedPush, WakeOutcome};
use waxwing_core::features::push::PushError;
use waxwing_core::ClientEvent;

/// Waits for the app server to record a push; returns its JSON.
async fn next_push(out: &std::path::Path, seen: usize) -> serde_json::Value {
    for _ in 0..100 {
        let lines: Vec<String> = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() > seen {
            return serde_json::from_str(&lines[seen]).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no push reached the app server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_pushes_decrypt_on_the_device_and_wake_ups_fetch_the_rest() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let work = tempfile::tempdir().unwrap();
    let pushes = work.path().join("pushes.jsonl");
    let _app_server = start_push_app_server(&server, &pushes);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = || server.config("alice", "pw-a", alice_dir.path().into());
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();

    let (alice, _) = open_client(config());
    alice.login().await.unwrap();
    alice
        .enable_push("push.localhost", "node-of-alices-phone", Some("s3cret"))
        .await
        .expect("push enabled");
    assert_eq!(
        alice.push_target().unwrap(),
        Some(("push.localhost".into(), "node-of-alices-phone".into()))
    );
    // The app goes to the background: the session hibernates on the server.
    alice.suspend().await;
    drop(alice);

    let first = unique("are you there?");
    bob.send_message("alice@localhost", &first).unwrap();
    // The server may also push for stanzas that were in flight when the
    // session went to sleep (those payloads carry no sender): take the one
    // about bob's message.
    let mut seen = 0;
    let (push, payload) = loop {
        let push = next_push(&pushes, seen).await;
        seen += 1;
        let payload = EncryptedPush {
            iv: push["iv"].as_str().expect("encrypted").to_owned(),
            payload: push["payload"].as_str().unwrap().to_owned(),
        };
        if wake::decrypt_push(&config(), &payload).is_ok_and(|i| i.sender == "bob@localhost") {
            break (push, payload);
        }
    };
    assert_eq!(push["node"], "node-of-alices-phone");
    assert_eq!(
        push["secret"], "s3cret",
        "publish-options reach the app server"
    );
    assert!(
        !push.to_string().contains(&first),
        "the app server never sees the text"
    );

    // The push handler shows it without connecting.
    let woken = wake::wake_up(config(), Some(payload.clone()), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        woken.outcome,
        WakeOutcome::Decrypted,
        "{:?}",
        woken.payload_error
    );
    assert_eq!(woken.items.len(), 1);
    assert_eq!(woken.items[0].sender, "bob@localhost");
    assert_eq!(woken.items[0].preview.as_deref(), Some(first.as_str()));

    // Issue 13, item 13: with previews off the push handler gets "a new
    // message from Bob" without its text.
    let set_previews = |shown: bool| {
        let (settings, _) = open_client(config());
        settings.set_push_previews(shown).unwrap();
    };
    set_previews(false);
    let hidden = wake::wake_up(config(), Some(payload.clone()), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(hidden.items[0].sender, "bob@localhost");
    assert_eq!(hidden.items[0].preview, None);
    set_previews(true);

    // A payload that does not decrypt loses nothing: the handler resumes
    // the hibernated session and gets the message itself, stored once.
    let mut tampered = payload.clone();
    tampered.payload = tampered.payload.replacen(&tampered.payload[..4], "AAAA", 1);
    let woken = wake::wake_up(config(), Some(tampered), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(woken.payload_error, Some(PushError::DecryptionFailed));
    assert!(
        matches!(woken.outcome, WakeOutcome::Fetched { resumed: true, .. }),
        "{:?}",
        woken.outcome
    );
    let fetched: Vec<_> = woken.items.iter().map(|i| i.preview.clone()).collect();
    assert_eq!(fetched, vec![Some(first.clone())]);
    assert!(woken.items[0].message_id.is_some(), "it is in the store");

    // Nothing new: a second wake-up resumes again and finds nothing.
    let woken = wake::wake_up(config(), None, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(woken.items.is_empty(), "{:?}", woken.items);
    assert!(matches!(
        woken.outcome,
        WakeOutcome::Fetched { resumed: true, .. }
    ));

    // The app comes back: it resumes what the handler left, sees the
    // message in its history once, and while it runs a wake-up backs off.
    let (alice, events) = open_client(config());
    alice.login().await.unwrap();
    events
        .wait_for(10, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
    let history = alice.history("bob@localhost", None, 10).unwrap();
    assert_eq!(
        history.iter().filter(|m| m.body == first).count(),
        1,
        "stored exactly once"
    );
    let woken = wake::wake_up(config(), None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(woken.outcome, WakeOutcome::AppIsActive);

    alice.disable_push().await.unwrap();
    assert_eq!(alice.push_target().unwrap(), None);
    alice.logout().await;
    bob.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_without_a_registration_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = waxwing_core::ClientConfig {
        jid: "alice@localhost".into(),
        password: String::new(),
        resource: None,
        connect: Default::default(),
        store_dir: dir.path().into(),
        store_key: waxwing_core::store::StoreKey::from_bytes([1; 32]),
        initial_backoff: Duration::from_secs(1),
        sasl2: true,
    };
    let err = wake::decrypt_push(
        &config,
        &EncryptedPush {
            iv: "AAAAAAAAAAAAAAAA".into(),
            payload: "AAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        },
    )
    .unwrap_err();
    assert_eq!(err, wake::WakeUpError::Push(PushError::NotRegistered));
}

/// Issue 12, defect 16: Prosody ties push to the session that sent
/// `<enable/>` (`session.push_identifier` decides pushes for a hibernated
/// session's queue and extends its hibernation), so every fresh session
/// registers again, with the stored key and secret. (Prosody 13 also
/// pushes archived messages for a hibernated session without a
/// registration, so this passed before the change too: it guards that the
/// re-registration keeps pushes decryptable and carries the secret.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_session_registers_for_push_again() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let work = tempfile::tempdir().unwrap();
    let pushes = work.path().join("pushes.jsonl");
    let _app_server = start_push_app_server(&server, &pushes);
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = || server.config("alice", "pw-a", alice_dir.path().into());
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();

    let (alice, _) = open_client(config());
    alice.login().await.unwrap();
    alice
        .enable_push("push.localhost", "node-2", Some("s3cret"))
        .await
        .unwrap();
    // The session ends; the next one is fresh and does not call enable_push.
    alice.logout().await;
    alice.login().await.unwrap();

    alice.suspend().await;
    drop(alice);

    let body = unique("after a fresh login");
    bob.send_message("alice@localhost", &body).unwrap();
    let mut seen = 0;
    loop {
        let push = next_push(&pushes, seen).await;
        seen += 1;
        let payload = EncryptedPush {
            iv: push["iv"].as_str().expect("encrypted").to_owned(),
            payload: push["payload"].as_str().unwrap().to_owned(),
        };
        if wake::decrypt_push(&config(), &payload).is_ok_and(|i| i.sender == "bob@localhost") {
            assert_eq!(push["secret"], "s3cret", "the secret is sent again too");
            break;
        }
    }
}
