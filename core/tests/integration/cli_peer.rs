//! The `cli` example against a real Prosody and a real slixmpp peer: send
//! with `--await-reply`, then `history` from the encrypted store, both as
//! JSON lines; and a typed, non-zero exit on a wrong password.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn cli_chats_with_a_slixmpp_peer_and_reads_history_back() {
    let server = TestServer::start(&["alice:pw-a", "bob:pw-b"]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut bot = Command::new(python())
        .arg(root.join("scripts/echo_bot.py"))
        .args([
            "--jid",
            "bob@localhost",
            "--password",
            "pw-b",
            "--lifetime",
            "60",
        ])
        .args([
            "--port",
            &server.c2s_port.to_string(),
            "--ca",
            server.ca_path.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the slixmpp bot");
    // Wait for the bot's "online" line.
    let mut out = std::io::BufReader::new(bot.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.contains("online"), "bot: {line}");
    let _bot = Bot(bot);

    let store = tempfile::tempdir().unwrap();
    let key = "ab".repeat(32);
    let body = unique("ping from cli");
    let run = |args: &[&str]| run_cli(&server, "alice", "pw-a", store.path(), &key, args);
    let sent = run(&["send", "bob@localhost", &body, "--await-reply", "10"]);
    assert!(
        sent.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(sent.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let reply = lines
        .iter()
        .find_map(|l| l.get("reply"))
        .expect("a reply line");
    assert_eq!(reply["body"], format!("echo: {body}"));

    let history = run(&["history", "bob@localhost"]);
    assert!(history.status.success());
    let bodies: Vec<String> = String::from_utf8(history.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bodies, vec![format!("echo: {body}"), body.clone()]);

    let wrong = Command::new(cli())
        .args([
            "--jid",
            "alice@localhost",
            "--server",
            &format!("127.0.0.1:{}", server.c2s_port),
        ])
        .args([
            "--ca",
            server.ca_path.to_str().unwrap(),
            "listen",
            "--count",
            "1",
        ])
        .env("WAXWING_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("authentication failed"));
}
