//! The `cli` example follows the session across processes against a real
//! Prosody: a second run resumes what the first left, push is enabled from
//! the command line, `wake` decrypts a pushed payload or fetches over the
//! network, and while one process holds the session a second one (`wake`)
//! opens the same store and backs off.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const STORE_KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn cli_command(server: &TestServer, store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(cli());
    command
        .args([
            "--jid",
            "alice@localhost",
            "--ca",
            server.ca_path.to_str().unwrap(),
        ])
        .args(["--server", &format!("127.0.0.1:{}", server.c2s_port)])
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .env("WAXWING_PASSWORD", "pw-a")
        .env("WAXWING_STORE_KEY", STORE_KEY);
    command
}

fn run(server: &TestServer, store: &Path, args: &[&str]) -> Vec<Value> {
    let Output {
        status,
        stdout,
        stderr,
    } = cli_command(server, store, args).output().unwrap();
    assert!(
        status.success(),
        "cli {args:?} failed: {}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn session_kind(lines: &[Value]) -> String {
    lines
        .iter()
        .find(|l| l["state"] == "online")
        .map(|l| l["session"].as_str().unwrap().to_owned())
        .expect("an online event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resumes_enables_push_and_wakes_up_across_processes() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let work = tempfile::tempdir().unwrap();
    let pushes = work.path().join("pushes.jsonl");
    let _app_server = start_push_app_server(&server, &pushes);
    let store = work.path().join("alice-store");
    let bob_dir = tempfile::tempdir().unwrap();
    let (bob, _) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();

    let first = run(&server, &store, &["listen", "--timeout", "1"]);
    assert_eq!(session_kind(&first), "fresh");
    let second = run(&server, &store, &["listen", "--timeout", "1"]);
    assert_eq!(session_kind(&second), "resumed", "the stored session");

    let enabled = run(
        &server,
        &store,
        &[
            "push",
            "enable",
            "--service",
            "push.localhost",
            "--node",
            "cli-node",
            "--secret",
            "s",
        ],
    );
    assert!(enabled.iter().any(|l| l["push"] == "enabled"));

    // Pushes for what was in flight when the session went to sleep come
    // first (they carry no sender); the next one is about bob's message.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let count = || {
        std::fs::read_to_string(&pushes)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = count();
    let body = unique("wake up");
    bob.send_message("alice@localhost", &body).unwrap();
    for _ in 0..100 {
        if count() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&pushes).unwrap();
    let push: Value = serde_json::from_str(text.lines().nth(before).expect("a push")).unwrap();
    let payload_file = work.path().join("payload.json");
    std::fs::write(
        &payload_file,
        serde_json::json!({"iv": push["iv"], "payload": push["payload"]}).to_string(),
    )
    .unwrap();
    let decrypted = run(
        &server,
        &store,
        &["wake", "--payload", payload_file.to_str().unwrap()],
    );
    assert_eq!(decrypted.last().unwrap()["outcome"], "decrypted");
    assert_eq!(decrypted[0]["notification"]["sender"], "bob@localhost");
    assert_eq!(decrypted[0]["notification"]["preview"], body.as_str());

    // Without a payload the handler resumes and fetches the message.
    let fetched = run(&server, &store, &["wake", "--deadline", "10"]);
    let outcome = fetched.last().unwrap();
    assert_eq!(outcome["outcome"], "fetched", "{fetched:?}");
    assert_eq!(outcome["resumed"], true);
    assert!(fetched
        .iter()
        .any(|l| l["notification"]["preview"] == body.as_str()));

    // Two processes on one store: a listening app holds the session; the
    // push handler opens the same store and backs off.
    let mut app = cli_command(&server, &store, &["listen", "--timeout", "6"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut app_out = std::io::BufReader::new(app.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut app_out, &mut line).unwrap() > 0);
        if line.contains("\"online\"") {
            break;
        }
    }
    let backed_off = run(&server, &store, &["wake", "--deadline", "3"]);
    assert_eq!(backed_off.last().unwrap()["outcome"], "app_is_active");
    let history = run(&server, &store, &["history", "bob@localhost"]);
    assert_eq!(
        history
            .iter()
            .filter(|l| l["message"]["body"] == body.as_str())
            .count(),
        1,
        "read while the other process runs, and stored once"
    );
    assert!(app.wait().unwrap().success());

    let disabled = run(&server, &store, &["push", "disable", "--logout"]);
    assert!(disabled.iter().any(|l| l["push"] == "disabled"));
    bob.logout().await;
}

/// Issue 12, defect 17, found by trying the cli as a new user would:
/// `roster` run twice failed the second time (a resumed session fetches no
/// roster, and the command waited for one), and `send` to a full JID was
/// refused as "not a valid JID".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_works_on_a_resumed_session_and_send_takes_a_full_jid() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("alice-store");
    let bob_dir = tempfile::tempdir().unwrap();
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    bob.login().await.unwrap();
    {
        // Alice's app added bob earlier (same store, then the app let go).
        let mut config = server.config("alice", "pw-a", store.clone());
        config.store_key = waxwing_core::store::StoreKey::from_hex(STORE_KEY).unwrap();
        let (alice, _) = open_client(config);
        alice.login().await.unwrap();
        alice
            .add_contact("bob@localhost", Some("Bob".into()))
            .await
            .unwrap();
        alice.logout().await;
    }
    for attempt in ["fresh or resumed", "resumed"] {
        let lines = run(&server, &store, &["roster"]);
        let contacts: Vec<&str> = lines
            .iter()
            .filter_map(|l| l["contact"]["jid"].as_str())
            .collect();
        assert_eq!(contacts, vec!["bob@localhost"], "{attempt}: {lines:?}");
    }
    let body = unique("to a full jid");
    let sent = run(&server, &store, &["send", "bob@localhost/elsewhere", &body]);
    assert!(
        sent.iter().any(|l| l["message"]["body"] == body.as_str()),
        "{sent:?}"
    );
    bob_events
        .wait_for(10, |e| match e {
            waxwing_core::ClientEvent::MessageReceived(m) if m.body == body => Some(()),
            _ => None,
        })
        .await;
    bob.logout().await;
}
