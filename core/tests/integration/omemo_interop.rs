//! OMEMO through the real Prosody with real slixmpp-omemo peers
//! (`scripts/omemo_bot.py`, python-omemo underneath): OMEMO 2 and OMEMO 0.3,
//! Waxwing initiating and Waxwing answering, several messages each way;
//! and the `cli` commands for encrypted sending and fingerprints.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;
use waxwing_core::store::{ConversationEncryption, DeviceTrust, Direction, EncryptionScheme};
use waxwing_core::ClientEvent;

/// Starts the OMEMO bot; its JSON lines arrive on the returned channel.
fn start_bot(server: &TestServer, user: &str, extra: &[&str]) -> (Bot, mpsc::Receiver<Value>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut child = Command::new(python())
        .arg(root.join("scripts/omemo_bot.py"))
        .args([
            "--jid",
            &format!("{user}@localhost"),
            "--password",
            "pw",
            "--lifetime",
            "90",
        ])
        .args([
            "--port",
            &server.c2s_port.to_string(),
            "--ca",
            server.ca_path.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the OMEMO bot");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if tx.send(value).is_err() {
                    break;
                }
            }
        }
    });
    (Bot(child), rx)
}

/// The next bot event whose "bot" field is `kind`.
fn bot_event(rx: &mpsc::Receiver<Value>, kind: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = rx.recv_timeout(left);
        if let (Ok(v), Some(_)) = (&event, std::env::var_os("WAXWING_DEBUG_BOT")) {
            eprintln!("bot: {v}");
        }
        match event {
            Ok(v) if v["bot"] == kind => return v,
            Ok(v) if v["bot"] == "decrypt_error" => panic!("the bot could not decrypt: {v}"),
            Ok(_) => {}
            Err(_) => panic!("no '{kind}' from the bot within {secs} s"),
        }
    }
}

/// Waits until `client`'s device is in its published device lists (both
/// versions), so that contacts can find it.
async fn published(client: &waxwing_core::Client) {
    for _ in 0..200 {
        if client.own_omemo_device().unwrap().versions.len() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("our OMEMO device was not published");
}

fn expected(version: &str) -> (ConversationEncryption, EncryptionScheme) {
    match version {
        "2" => (ConversationEncryption::Omemo2, EncryptionScheme::Omemo2),
        _ => (ConversationEncryption::Omemo03, EncryptionScheme::Omemo03),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waxwing_initiates_with_slixmpp_omemo_in_both_versions() {
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    let (_bot, bot) = start_bot(&server, "bob", &[]);
    bot_event(&bot, "online", 30);
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(server.config("alice", "pw", store.path().into()));
    client.login().await.unwrap();
    for version in ["2", "0.3"] {
        let (mode, scheme) = expected(version);
        client.set_encryption("bob@localhost", mode).unwrap();
        for i in 0..3 {
            let body = format!("secret {i} over OMEMO {version}");
            let sent = client.send_message("bob@localhost", &body).unwrap();
            let got = bot_event(&bot, "received", 30);
            assert_eq!(got["body"], body.as_str());
            assert_eq!(got["version"], version);
            let echo = format!("echo: {body}");
            let reply = events
                .wait_for(30, |e| match e {
                    ClientEvent::MessageReceived(m) if m.body == echo => Some(m.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(reply.security.scheme, scheme);
            assert_eq!(
                reply.security.sender_trust,
                Some(DeviceTrust::BlindlyTrusted)
            );
            assert!(reply.security.undecryptable.is_none());
            let stored = client.history("bob@localhost", None, 50).unwrap();
            let mine = stored.iter().find(|m| m.id == sent.id).unwrap();
            assert_eq!(
                mine.security.scheme, scheme,
                "the sent message records its encryption"
            );
        }
    }
    // The peer's devices are known, with fingerprints, and blindly trusted.
    let devices = client.omemo_devices("bob@localhost").unwrap();
    assert!(devices
        .iter()
        .any(|d| d.fingerprint.is_some() && d.trust == DeviceTrust::BlindlyTrusted));
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_omemo_initiates_and_waxwing_answers_in_both_versions() {
    let server = TestServer::start(&["alice:pw", "bob:pw", "carol:pw"]);
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(server.config("alice", "pw", store.path().into()));
    client.login().await.unwrap();
    // Our device list and bundles are published on login.
    for (version, peer) in [("2", "bob"), ("0.3", "carol")] {
        let (mode, scheme) = expected(version);
        let peer_jid = format!("{peer}@localhost");
        client.set_encryption(&peer_jid, mode).unwrap();
        let (_bot, bot) = start_bot(
            &server,
            peer,
            &[
                "--ping",
                "alice@localhost",
                "--version",
                version,
                "--count",
                "3",
            ],
        );
        for i in 0..3 {
            let body = format!("ping {i}");
            let got = events
                .wait_for(60, |e| match e {
                    ClientEvent::MessageReceived(m) if m.peer == peer_jid && m.body == body => {
                        Some(m.clone())
                    }
                    _ => None,
                })
                .await;
            assert_eq!(got.security.scheme, scheme, "OMEMO {version}");
            assert_eq!(got.direction, Direction::Incoming);
            assert!(got.security.sender_device.is_some());
            client
                .send_message(&peer_jid, &format!("pong {i}"))
                .unwrap();
        }
        for _ in 0..3 {
            let answer = bot_event(&bot, "received", 30);
            assert_eq!(answer["version"], version);
            assert!(answer["body"].as_str().unwrap().starts_with("pong "));
        }
    }
    client.logout().await;
}

#[test]
fn cli_sends_encrypted_and_shows_fingerprints_and_trust() {
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    let (_bot, bot) = start_bot(&server, "bob", &[]);
    bot_event(&bot, "online", 30);
    let store = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    // One cli run on `dir` (a store of Alice's), its JSON lines.
    let run_in = |dir: &std::path::Path, args: &[&str]| {
        let key = if dir == store.path() { "cd" } else { "ef" };
        let out = run_cli(&server, "alice", "pw", dir, &key.repeat(32), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines"))
            .collect::<Vec<_>>()
    };
    let run = |args: &[&str]| run_in(store.path(), args);
    let lines = run(&[
        "send",
        "--encrypt",
        "omemo2",
        "bob@localhost",
        "hello encrypted",
        "--await-reply",
        "20",
    ]);
    let reply = lines.iter().find_map(|l| l.get("reply")).expect("a reply");
    assert_eq!(reply["body"], "echo: hello encrypted");
    assert_eq!(reply["security"]["scheme"], "omemo2");
    let message = lines.iter().find(|l| l["event"] == "message").unwrap();
    assert_eq!(message["encryption"], "omemo2");
    assert_eq!(message["trust"], "blindly_trusted");

    let ours = run(&["fingerprints"]);
    let this = ours
        .iter()
        .find(|l| l["device"]["this_device"] == true)
        .expect("our device");
    assert_eq!(this["device"]["fingerprint"].as_str().unwrap().len(), 64);
    let theirs = run(&["fingerprints", "bob@localhost"]);
    let device = theirs[0]["device"]["device_id"]
        .as_u64()
        .unwrap()
        .to_string();
    // Issue 13: verification takes the fingerprint the user compared.
    let fingerprint = theirs[0]["device"]["fingerprint"].as_str().unwrap();
    let refused = |args: &[&str], why: &str| {
        let out = run_cli(&server, "alice", "pw", store.path(), &"cd".repeat(32), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{args:?}: {stderr}"
        );
    };
    refused(
        &["trust", "bob@localhost", &device, "verified"],
        "--fingerprint",
    );
    let wrong = format!("00{}", &fingerprint[2..]);
    refused(
        &[
            "trust",
            "bob@localhost",
            &device,
            "verified",
            "--fingerprint",
            &wrong,
        ],
        "does not match",
    );
    // As people read it out: groups, colons, upper case.
    let spoken = fingerprint
        .as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(": ");
    let trusted = run(&[
        "trust",
        "bob@localhost",
        &device,
        "verified",
        "--fingerprint",
        &spoken,
    ]);
    assert_eq!(trusted[0]["trust"]["trust"], "verified");
    let after = run(&["fingerprints", "bob@localhost"]);
    assert_eq!(after[0]["device"]["trust"], "verified");

    // Manual trust: a second device of ours that appears now is undecided,
    // gets no key, and `send` names it.
    let policy = run(&["trust-policy", "manual"]);
    assert_eq!(policy[0]["trust_policy"], "manual");
    let second_device = run_in(second.path(), &["fingerprints"])
        .into_iter()
        .find(|l| l["device"]["this_device"] == true)
        .map(|l| l["device"]["device_id"].clone())
        .expect("the second device");
    run_in(
        second.path(),
        &["send", "bob@localhost", "publishing my device"],
    );
    let lines = run(&[
        "send",
        "--encrypt",
        "omemo2",
        "bob@localhost",
        "only to the trusted",
    ]);
    let left_out = lines
        .iter()
        .find_map(|l| l.get("left_out"))
        .expect("a left_out line");
    assert_eq!(
        left_out,
        &serde_json::json!([{"jid": "alice@localhost", "device_id": second_device, "trust": "undecided"}]),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_heals_and_the_undecryptable_message_is_kept_with_its_reason() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("waxwing_core=debug")
        .with_test_writer()
        .try_init();
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    let store_dir = tempfile::tempdir().unwrap();
    let config = server.config("alice", "pw", store_dir.path().into());
    let key = config.store_key.clone();
    let (client, events) = open_client(config);
    client.login().await.unwrap();
    let (_bot, bot) = start_bot(
        &server,
        "bob",
        &[
            "--ping",
            "alice@localhost",
            "--version",
            "2",
            "--count",
            "4",
            "--interval",
            "3",
        ],
    );
    let wait_body = |body: &'static str| {
        let events = events.clone();
        async move {
            events
                .wait_for(30, |e| match e {
                    ClientEvent::MessageReceived(m)
                        if m.peer == "bob@localhost" && m.body.contains(body) =>
                    {
                        Some(m.clone())
                    }
                    _ => None,
                })
                .await
        }
    };
    let first = wait_body("ping 0").await;
    assert_eq!(first.security.scheme, EncryptionScheme::Omemo2);
    // Issue 13, item 6: the session Bob's key exchange built is completed
    // with an empty message, which slixmpp-omemo takes.
    let completed = bot_event(&bot, "key_transport", 30);
    assert_eq!(completed["from"], "alice@localhost");
    // Our session with Bob's device is lost (a restored backup, say).
    let mut store = waxwing_core::store::Store::open(store_dir.path(), &key).unwrap();
    assert!(store.omemo_forget_sessions("bob@localhost").unwrap() > 0);
    drop(store);
    // The next message cannot be read: it is kept, marked, with the reason.
    let lost = events
        .wait_for(30, |e| match e {
            ClientEvent::MessageReceived(m)
                if m.peer == "bob@localhost" && m.security.undecryptable.is_some() =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(lost.security.scheme, EncryptionScheme::Omemo2);
    // Bob's session is complete, so his messages are plain ratchet
    // messages, for which we have no session now.
    assert_eq!(
        lost.security.undecryptable.as_deref(),
        Some("no session with this device")
    );
    // With no session at all (not a failing one), Waxwing builds one and
    // answers with a key-transport message (XEP-0384 §7) ...
    let healed = bot_event(&bot, "key_transport", 30);
    assert_eq!(healed["from"], "alice@localhost");
    // ... so what Bob sends next is readable again.
    let next = wait_body("ping 2").await;
    assert!(next.security.undecryptable.is_none());
    assert_eq!(next.security.scheme, EncryptionScheme::Omemo2);
    let history = client.history("bob@localhost", None, 10).unwrap();
    assert!(
        history.iter().any(|m| m.security.undecryptable.is_some()),
        "the undecryptable message is in the history"
    );
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waxwing_clients_chat_encrypted_across_several_devices() {
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    // Bob has an older installation too (its device stays in his list).
    let old_store = tempfile::tempdir().unwrap();
    let (old_bob, _) = open_client(server.config("bob", "pw", old_store.path().into()));
    old_bob.login().await.unwrap();
    published(&old_bob).await;
    old_bob.logout().await;
    let (a_store, b_store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, alice_events) = open_client(server.config("alice", "pw", a_store.path().into()));
    let (bob, bob_events) = open_client(server.config("bob", "pw", b_store.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();
    published(&alice).await;
    published(&bob).await;
    alice
        .set_encryption("bob@localhost", ConversationEncryption::Auto)
        .unwrap();
    bob.set_encryption("alice@localhost", ConversationEncryption::Auto)
        .unwrap();
    for i in 0..3 {
        let body = format!("to bob {i}");
        alice.send_message("bob@localhost", &body).unwrap();
        let got = bob_events
            .wait_for(30, |e| match e {
                ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
                _ => None,
            })
            .await;
        assert_eq!(got.security.scheme, EncryptionScheme::Omemo2);
        let reply = format!("to alice {i}");
        bob.send_message("alice@localhost", &reply).unwrap();
        let got = alice_events
            .wait_for(30, |e| match e {
                ClientEvent::MessageReceived(m) if m.body == reply => Some(m.clone()),
                _ => None,
            })
            .await;
        assert_eq!(got.security.scheme, EncryptionScheme::Omemo2);
    }
    // Bob's old installation gets the messages too when it comes back.
    let (old_bob, old_events) = open_client(server.config("bob", "pw", old_store.path().into()));
    old_bob.login().await.unwrap();
    let copy = old_events
        .wait_for(30, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == "to bob 2" => Some(m.clone()),
            _ => None,
        })
        .await;
    assert!(copy.security.undecryptable.is_none());
    alice.logout().await;
    bob.logout().await;
    old_bob.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_changes_are_pushed_to_subscribed_contacts() {
    use waxwing_core::features::presence::{Availability, SubscriptionAction};
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    let (a_store, b_store, b2_store) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (alice, alice_events) = open_client(server.config("alice", "pw", a_store.path().into()));
    let (bob, bob_events) = open_client(server.config("bob", "pw", b_store.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();
    published(&bob).await;
    alice
        .subscription("bob@localhost", SubscriptionAction::Subscribe)
        .unwrap();
    bob_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::SubscriptionRequest { from } if from == "alice@localhost")
                .then_some(())
        })
        .await;
    bob.subscription("alice@localhost", SubscriptionAction::Approve)
        .unwrap();
    // Mutual: Bob's server sees Alice's presence (and its +notify caps).
    bob.subscription("alice@localhost", SubscriptionAction::Subscribe)
        .unwrap();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::SubscriptionRequest { from } if from == "bob@localhost")
                .then_some(())
        })
        .await;
    alice
        .subscription("bob@localhost", SubscriptionAction::Approve)
        .unwrap();
    alice.set_presence(Availability::Available, None).unwrap();
    alice_events
        .wait_for(10, |e| {
            matches!(e, ClientEvent::PresenceChanged { jid, .. } if jid == "bob@localhost")
                .then_some(())
        })
        .await;
    // Bob installs Waxwing on a second phone: Alice hears of it from the
    // server (PEP +notify), without asking and without sending anything.
    let (bob2, _) = open_client(server.config("bob", "pw", b2_store.path().into()));
    bob2.login().await.unwrap();
    let bob2_device = bob2.own_omemo_device().unwrap().device_id;
    for _ in 0..200 {
        let known = alice.omemo_devices("bob@localhost").unwrap();
        if known
            .iter()
            .any(|d| d.device_id == bob2_device && !d.versions.is_empty())
        {
            assert!(alice_events.events().iter().any(
                |e| matches!(e, ClientEvent::OmemoDevicesChanged { jid } if jid == "bob@localhost")
            ));
            alice.logout().await;
            bob.logout().await;
            bob2.logout().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "Alice never learned of Bob's new device: {:?}",
        alice.omemo_devices("bob@localhost")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_other_device_reads_what_we_sent_through_carbons() {
    let server = TestServer::start(&["alice:pw", "bob:pw"]);
    let stores: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (phone, _) = open_client(server.config("alice", "pw", stores[0].path().into()));
    let (tablet, tablet_events) =
        open_client(server.config("alice", "pw", stores[1].path().into()));
    let (bob, bob_events) = open_client(server.config("bob", "pw", stores[2].path().into()));
    for client in [&phone, &tablet, &bob] {
        client.login().await.unwrap();
        published(client).await;
    }
    phone
        .set_encryption("bob@localhost", ConversationEncryption::Omemo2)
        .unwrap();
    phone
        .send_message("bob@localhost", "sent from the phone")
        .unwrap();
    let at_bob = bob_events
        .wait_for(30, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == "sent from the phone" => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(at_bob.security.scheme, EncryptionScheme::Omemo2);
    // The tablet gets the carbon copy, encrypted for it too, and reads it.
    let copy = tablet_events
        .wait_for(30, |e| match e {
            ClientEvent::MessageReceived(m)
                if m.peer == "bob@localhost" && m.direction == Direction::Outgoing =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(copy.body, "sent from the phone");
    assert_eq!(copy.security.scheme, EncryptionScheme::Omemo2);
    for client in [&phone, &tablet, &bob] {
        client.logout().await;
    }
}

/// Issue 12 (performance): the API to take OMEMO devices of ours off our
/// published lists — an old installation from another one, then this one
/// itself — against Prosody: the lists the server keeps change (each
/// client records a list once the server accepted it, and hears the
/// other's change through PEP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_devices_are_taken_off_our_published_lists() {
    let server = TestServer::start(&["alice:pw-a"]);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config_b = server.config("alice", "pw-a", dir_b.path().into());
    config_b.resource = Some("old-phone".into());
    let (a, _) = open_client(server.config("alice", "pw-a", dir_a.path().into()));
    let (b, _) = open_client(config_b);
    a.login().await.unwrap();
    published(&a).await;
    b.login().await.unwrap();
    published(&b).await;
    let (id_a, id_b) = (
        a.own_omemo_device().unwrap().device_id,
        b.own_omemo_device().unwrap().device_id,
    );
    let listed = |client: &waxwing_core::Client, device: u32| {
        client
            .omemo_devices("alice@localhost")
            .unwrap()
            .iter()
            .any(|d| d.device_id == device && !d.versions.is_empty())
    };
    until(|| listed(&a, id_b), "a hears of b").await;
    // A removes B, an installation that is not running (a running one
    // sees the new list and puts itself back at once).
    b.logout().await;
    a.remove_omemo_devices(vec![id_b]).unwrap();
    until(
        || !listed(&a, id_b),
        "b is off the lists the server accepted",
    )
    .await;
    assert!(listed(&a, id_a), "a stays");
    // B comes back and puts itself back; then its own app retires it: it
    // does not put itself back, and A hears that it is gone.
    b.login().await.unwrap();
    until(|| listed(&a, id_b), "b put itself back").await;
    b.remove_omemo_devices(vec![id_b]).unwrap();
    until(|| !listed(&b, id_b), "b took itself off").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!listed(&b, id_b), "not put back");
    assert!(!listed(&a, id_b));
    a.logout().await;
    b.logout().await;
}

/// Waits (10 s at most) until `check` holds.
async fn until(check: impl Fn() -> bool, what: &str) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
