//! OMEMO 0.3 with profanity (libsignal-protocol-c, a second independent
//! implementation) through the real Prosody, both directions. profanity has
//! no batch mode: it runs headless in tmux (its own socket, stopped at the
//! end, and under `timeout`), driven with `send-keys`; what it received is
//! read from its chat log database.
//!
//! profanity publishes its device list only once the node exists, and
//! wants a mutual presence subscription (see ../shared/guides/peers.md):
//! a Waxwing client on profanity's account creates the (open) nodes first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use waxwing_core::features::presence::{Availability, SubscriptionAction};
use waxwing_core::store::{ConversationEncryption, EncryptionScheme};
use waxwing_core::ClientEvent;

/// A headless profanity in its own tmux server.
struct Profanity {
    socket: String,
    home: tempfile::TempDir,
}

impl Drop for Profanity {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

impl Profanity {
    fn start(port: u16) -> Self {
        let home = tempfile::tempdir().unwrap();
        let data = home.path().join("data/profanity");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(home.path().join("config/profanity")).unwrap();
        std::fs::write(
            data.join("accounts"),
            format!(
                "[prof@localhost]\nenabled=true\njid=prof@localhost\nserver=127.0.0.1\nport={port}\n\
                 resource=profanity\npassword=pw\ntls.policy=trust\nomemo.policy=automatic\n"
            ),
        )
        .unwrap();
        let socket = format!("waxwing-test-{}", std::process::id());
        let h = home.path().display();
        let command = format!(
            "env XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data HOME={h} timeout 300 profanity -a prof@localhost -l DEBUG"
        );
        let started = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                &command,
            ])
            .status()
            .expect("tmux (scripts/setup.sh installs it)");
        assert!(started.success());
        Self { socket, home }
    }

    fn keys(&self, text: &str) {
        let sent = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0", text, "Enter"])
            .status();
        assert!(sent.unwrap().success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn wait_screen(&self, needle: &str) {
        for _ in 0..300 {
            if self.screen().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("profanity never showed {needle:?}:\n{}", self.screen());
    }

    /// (message, encryption) rows of profanity's chat log.
    fn chat_log(&self) -> Vec<(String, String)> {
        let Some(db) = find(
            &self.home.path().join("data/profanity/database"),
            "chatlog.db",
        ) else {
            return Vec::new();
        };
        let Ok(conn) = rusqlite::Connection::open(db) else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare("SELECT message, coalesce(encryption, '') FROM ChatLogs")
        else {
            return Vec::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .filter_map(Result::ok)
            .collect()
    }
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omemo_0_3_with_profanity_both_ways() {
    let server = TestServer::start(&["alice:pw", "prof:pw"]);
    let (a_store, p_store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, alice_events) = open_client(server.config("alice", "pw", a_store.path().into()));
    let (helper, helper_events) = open_client(server.config("prof", "pw", p_store.path().into()));
    alice.login().await.unwrap();
    helper.login().await.unwrap();
    for (from, to, to_events) in [
        (&alice, "prof@localhost", &helper_events),
        (&helper, "alice@localhost", &alice_events),
    ] {
        from.subscription(to, SubscriptionAction::Subscribe)
            .unwrap();
        let asker = if to == "prof@localhost" {
            "alice@localhost"
        } else {
            "prof@localhost"
        };
        to_events
            .wait_for(10, |e| {
                matches!(e, ClientEvent::SubscriptionRequest { from } if from == asker)
                    .then_some(())
            })
            .await;
        let approver = if to == "prof@localhost" {
            &helper
        } else {
            &alice
        };
        approver
            .subscription(asker, SubscriptionAction::Approve)
            .unwrap();
    }
    let helper_device = helper.own_omemo_device().unwrap().device_id;
    for _ in 0..100 {
        if helper.own_omemo_device().unwrap().versions.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    helper.logout().await;
    alice.set_presence(Availability::Available, None).unwrap();

    let prof = Profanity::start(server.c2s_port);
    prof.wait_screen("[online]").await;
    prof.keys("/omemo gen");
    prof.wait_screen("Device ID is").await;
    prof.keys("/omemo trustmode blind");
    // Alice learns profanity's device from the server (PEP +notify).
    let mut found = false;
    for _ in 0..200 {
        let devices = alice.omemo_devices("prof@localhost").unwrap();
        if devices
            .iter()
            .any(|d| d.device_id != helper_device && d.versions.contains(&"omemo0.3"))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        found,
        "profanity's device never appeared: {:?}",
        alice.omemo_devices("prof@localhost")
    );

    // Waxwing → profanity.
    alice
        .set_encryption("prof@localhost", ConversationEncryption::Omemo03)
        .unwrap();
    for body in ["hello profanity", "second message"] {
        alice.send_message("prof@localhost", body).unwrap();
        let mut log = Vec::new();
        for _ in 0..200 {
            log = prof.chat_log();
            if log.iter().any(|(m, _)| m == body) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            log.iter().any(|(m, e)| m == body && e == "omemo"),
            "profanity's log: {log:?}\n{}",
            prof.screen()
        );
    }

    // profanity → Waxwing.
    prof.keys("/msg alice@localhost");
    prof.keys("/omemo start");
    prof.wait_screen("[OMEMO]").await;
    for body in ["hello waxwing from profanity", "and another"] {
        prof.keys(body);
        let got = alice_events
            .wait_for(30, |e| match e {
                ClientEvent::MessageReceived(m) if m.body == body => Some(m.clone()),
                _ => None,
            })
            .await;
        assert_eq!(got.security.scheme, EncryptionScheme::Omemo03);
        assert!(got
            .security
            .sender_device
            .is_some_and(|d| d != helper_device));
        assert!(got.security.undecryptable.is_none());
    }
    alice.logout().await;
}
