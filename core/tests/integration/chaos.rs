//! Exactly-once delivery, proven under chaos: a Waxwing client process
//! (`examples/chaos_client`) behind a loopback proxy that cuts every
//! connection at random moments, killed (SIGKILL) and restarted at random,
//! exchanges N messages in each direction with a peer on the same real
//! Prosody. At the end both stores and the peer's events hold every message
//! exactly once, in order, and both outboxes are empty.
//!
//! N is 2,000 (WAXWING_CHAOS_MESSAGES overrides it).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use rand::Rng;
use waxwing_core::store::{Direction, Store, StoreKey};
use waxwing_core::ClientEvent;

const STORE_KEY: &str = "c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4";

fn chaos_client() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/chaos_client");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "waxwing-core",
                "--example",
                "chaos_client",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// Panics with a short account of how `got` differs from `want`.
fn assert_same(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates: Vec<&String> = got.iter().filter(|b| !seen.insert(*b)).collect();
    let missing: Vec<&String> = want.iter().filter(|b| !seen.contains(b)).collect();
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    let context = first.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())]);
    panic!(
        "{what}: {} stored, {} duplicates {:?}, {} missing {:?}, first difference at {first:?}: {context:?}",
        got.len(),
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)],
        missing.len(),
        &missing[..missing.len().min(5)],
    );
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("chaos {i:05}")).collect()
}

/// Bodies in the stored conversation, oldest first.
fn stored(store: &Store, peer: &str, direction: Direction) -> Vec<String> {
    let mut page = store.history(peer, None, 1_000_000).unwrap();
    page.reverse();
    page.into_iter()
        .filter(|m| m.direction == direction)
        .map(|m| m.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_exactly_once_in_order_despite_cuts_and_kills() {
    let n: usize = std::env::var("WAXWING_CHAOS_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let proxy = Arc::new(Proxy::start(server.c2s_port).await);
    let alice_store = tempfile::tempdir().unwrap();
    let bob_store = tempfile::tempdir().unwrap();
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_store.path().into()));
    bob.login().await.unwrap();
    let bob = Arc::new(bob);

    // The peer sends at a steady pace, whatever happens to alice.
    let sender = {
        let bob = bob.clone();
        tokio::spawn(async move {
            for (i, body) in expected(n).into_iter().enumerate() {
                bob.send_message("alice@localhost", &body).unwrap();
                if i % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }
        })
    };

    // Cut alice's connection at random moments.
    let calm = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let cutter = {
        let (proxy, calm, cuts) = (proxy.clone(), calm.clone(), cuts.clone());
        tokio::spawn(async move {
            loop {
                let pause = rand::thread_rng().gen_range(300..1500);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if !calm.load(Ordering::Relaxed) {
                    proxy.cut();
                    cuts.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Run alice as a process; kill it at random until it finishes.
    let spawn_alice = || -> Child {
        Command::new(chaos_client())
            .args(["--jid", "alice@localhost", "--peer", "bob@localhost"])
            .args(["--server", &format!("127.0.0.1:{}", proxy.port)])
            .args(["--ca", server.ca_path.to_str().unwrap()])
            .args(["--store", alice_store.path().to_str().unwrap()])
            .args(["--send", &n.to_string(), "--expect", &n.to_string()])
            .env("WAXWING_PASSWORD", "pw-a")
            .env("WAXWING_STORE_KEY", STORE_KEY)
            .stdout(Stdio::null())
            .spawn()
            .expect("start chaos_client")
    };
    let started = Instant::now();
    let mut kills = 0;
    loop {
        let mut alice = spawn_alice();
        // The first runs die young (mid-burst), later ones live longer.
        let range = if kills < 2 { 200..1500 } else { 1500..5000 };
        let life = Duration::from_millis(rand::thread_rng().gen_range(range));
        let born = Instant::now();
        let status = loop {
            if let Some(status) = alice.try_wait().unwrap() {
                break Some(status);
            }
            // After a few kills, let it finish (still under cuts for a while).
            if kills < 5 && born.elapsed() > life {
                break None;
            }
            if born.elapsed() > Duration::from_secs(20) {
                calm.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match status {
            Some(status) => {
                assert!(status.success(), "chaos_client failed: {status}");
                break;
            }
            None => {
                alice.kill().unwrap();
                alice.wait().unwrap();
                kills += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(400),
            "chaos run too long"
        );
    }
    calm.store(true, Ordering::Relaxed);
    cutter.abort();
    sender.await.unwrap();

    // The peer gets everything alice sent (its events, once, in order).
    let want = expected(n);
    let received_by_bob = || -> Vec<String> {
        bob_events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::MessageReceived(m) if m.direction == Direction::Incoming => {
                    Some(m.body)
                }
                _ => None,
            })
            .collect()
    };
    for _ in 0..300 {
        if received_by_bob().len() >= n && bob.outbox().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_same(&received_by_bob(), &want, "bob's events");
    assert!(bob.outbox().unwrap().is_empty(), "bob's outbox drained");
    let bob_history = bob.history("alice@localhost", None, 1_000_000).unwrap();
    let mut bob_got: Vec<String> = bob_history
        .iter()
        .rev()
        .filter(|m| m.direction == Direction::Incoming)
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(bob_got.len(), n, "bob's store: each once");
    bob_got.dedup();
    assert_eq!(bob_got, want, "bob's store: in order");

    // Alice's store, read after its last process ended.
    let store = Store::open(alice_store.path(), &StoreKey::from_hex(STORE_KEY).unwrap()).unwrap();
    assert_same(
        &stored(&store, "bob@localhost", Direction::Incoming),
        &want,
        "alice's store, bob's messages",
    );
    assert_same(
        &stored(&store, "bob@localhost", Direction::Outgoing),
        &want,
        "alice's store, her own messages",
    );
    assert!(store.outbox().unwrap().is_empty(), "alice's outbox drained");
    assert!(kills >= 1 && cuts.load(Ordering::Relaxed) >= 1);
    eprintln!(
        "chaos: {n} messages each way, {kills} kills, {} cuts, {:.1} s",
        cuts.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    bob.logout().await;
}
