//! Test harness: a real Prosody on loopback (started through
//! `scripts/prosody.sh`, stopped by PID on drop) and helpers to build
//! clients against it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use waxwing_core::store::StoreKey;
use waxwing_core::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, EventListener};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub c2s_port: u16,
    pub direct_tls_port: u16,
    /// Where XEP-0114 components (the test push app server) connect.
    pub component_port: u16,
    pub ca_pem: Vec<u8>,
    pub ca_path: PathBuf,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl TestServer {
    /// Starts a fresh server with the given `user:password` accounts:
    /// Prosody 13 with SASL2, Bind2, inline SM and FAST.
    pub fn start(users: &[&str]) -> TestServer {
        Self::start_with(users, true)
    }

    /// The same server without SASL2: only the classic RFC 6120 path.
    pub fn start_classic(users: &[&str]) -> TestServer {
        Self::start_with(users, false)
    }

    fn start_with(users: &[&str], sasl2: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/prosody.sh"))
            .arg("start")
            .arg(dir.path())
            .args(users)
            .env("WAXWING_WATCH_PID", std::process::id().to_string())
            .env("WAXWING_SERVER_LIFETIME", "900")
            .env("WAXWING_PROSODY_SASL2", if sasl2 { "1" } else { "0" })
            .output()
            .expect("run scripts/prosody.sh");
        assert!(
            out.status.success(),
            "prosody did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing in {text}"))
                .to_owned()
        };
        let ca_path = PathBuf::from(get("CA"));
        TestServer {
            c2s_port: get("C2S_PORT").parse().unwrap(),
            direct_tls_port: get("DIRECT_TLS_PORT").parse().unwrap(),
            component_port: get("COMPONENT_PORT").parse().unwrap(),
            ca_pem: std::fs::read(&ca_path).unwrap(),
            ca_path,
            dir,
        }
    }

    pub fn connect_options(&self, direct_tls: bool) -> ConnectOptions {
        let port = if direct_tls {
            self.direct_tls_port
        } else {
            self.c2s_port
        };
        ConnectOptions {
            server: Some(("127.0.0.1".into(), port)),
            direct_tls,
            extra_ca_pem: Some(self.ca_pem.clone()),
        }
    }

    /// Runs Lua inside the running server (its admin shell, `>` mode) and
    /// returns what the shell printed.
    pub fn lua(&self, code: &str) -> String {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.dir.path().join("prosody.cfg.lua"))
            .arg("shell")
            .arg(format!("> {code}"))
            .output()
            .expect("run prosodyctl shell");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "prosodyctl shell failed: {text}");
        text
    }

    pub fn config(&self, user: &str, password: &str, store_dir: PathBuf) -> ClientConfig {
        ClientConfig {
            jid: format!("{user}@localhost"),
            password: password.into(),
            resource: Some("test".into()),
            connect: self.connect_options(false),
            store_dir,
            store_key: StoreKey::from_bytes([7u8; 32]),
            initial_backoff: Duration::from_millis(200),
            sasl2: true,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // For debugging a failed run: WAXWING_KEEP_SERVER_LOG=FILE.
        if let Some(keep) = std::env::var_os("WAXWING_KEEP_SERVER_LOG") {
            let _ = std::fs::copy(self.dir.path().join("prosody.log"), keep);
        }
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/prosody.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Records every event; lets a test wait for one.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<ClientEvent>>,
    notify: tokio::sync::Notify,
}

impl EventListener for Recorder {
    fn on_event(&self, event: ClientEvent) {
        self.events.lock().unwrap().push(event);
        self.notify.notify_waiters();
    }
}

impl Recorder {
    /// Forgets the events so far, so a wait sees only later ones.
    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }

    pub fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to `secs` for an event matching `pred`; returns it.
    pub async fn wait_for<T>(
        &self,
        secs: u64,
        mut pred: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let notified = self.notify.notified();
            if let Some(found) = self.events.lock().unwrap().iter().find_map(&mut pred) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let events = self.events();
                panic!("timed out waiting; events so far: {events:#?}");
            }
        }
    }
}

/// Alice and Bob (registered on `server` as `alice:pw-a` and `bob:pw-b`),
/// each with a store of their own, logged in. Keep the last value (the
/// store directories) alive as long as the clients.
pub async fn alice_and_bob(
    server: &TestServer,
) -> (
    Client,
    Arc<Recorder>,
    Client,
    Arc<Recorder>,
    (tempfile::TempDir, tempfile::TempDir),
) {
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, alice_events) =
        open_client(server.config("alice", "pw-a", alice_dir.path().into()));
    let (bob, bob_events) = open_client(server.config("bob", "pw-b", bob_dir.path().into()));
    alice.login().await.unwrap();
    bob.login().await.unwrap();
    (alice, alice_events, bob, bob_events, (alice_dir, bob_dir))
}

pub fn open_client(config: ClientConfig) -> (Client, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let client = Client::open(config, recorder.clone()).expect("open client");
    (client, recorder)
}

/// Makes `a` and `b` (bare JIDs `a_jid`, `b_jid`) see each other's
/// presence, as contacts who chat do: receipts, pings and disco answers go
/// only to such contacts. Returns once both rosters say `both`.
#[allow(dead_code)]
pub async fn befriend(
    (a, a_jid, a_events): (&Client, &str, &Recorder),
    (b, b_jid, b_events): (&Client, &str, &Recorder),
) {
    use waxwing_core::features::presence::SubscriptionAction;
    for ((from, from_jid), (to, to_jid, to_events)) in [
        ((a, a_jid), (b, b_jid, b_events)),
        ((b, b_jid), (a, a_jid, a_events)),
    ] {
        from.subscription(to_jid, SubscriptionAction::Subscribe)
            .unwrap();
        to_events
            .wait_for(10, |e| match e {
                ClientEvent::SubscriptionRequest { from } if from == from_jid => Some(()),
                _ => None,
            })
            .await;
        to.subscription(from_jid, SubscriptionAction::Approve)
            .unwrap();
    }
    for (client, peer) in [(a, b_jid), (b, a_jid)] {
        for _ in 0..100 {
            let both = client
                .roster()
                .unwrap()
                .iter()
                .any(|c| c.jid == peer && c.subscription.as_str() == "both");
            if both {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

pub fn unique(text: &str) -> String {
    format!(
        "{text} {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A TCP proxy on loopback in front of the server whose connections a test
/// can cut at will, like a phone losing its network.
pub struct Proxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cut_tx = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                    // Dropping both sockets without a close handshake: the
                    // server sees a dead client and hibernates its session.
                });
            }
        });
        Proxy { port, cut, task }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `cli` example binary (scripts/test.sh builds the examples before the
/// tests; `cargo test` alone builds them only as test harnesses).
pub fn cli() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples/cli");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "waxwing-core", "--example", "cli"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// Runs the `cli` example as `user@localhost` against `server` with an
/// encrypted store in `store` (key: 64 hex chars).
pub fn run_cli(
    server: &TestServer,
    user: &str,
    password: &str,
    store: &std::path::Path,
    key_hex: &str,
    args: &[&str],
) -> std::process::Output {
    Command::new(cli())
        .args(["--jid", &format!("{user}@localhost")])
        .args(["--server", &format!("127.0.0.1:{}", server.c2s_port)])
        .args(["--ca", server.ca_path.to_str().unwrap()])
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .env("WAXWING_PASSWORD", password)
        .env("WAXWING_STORE_KEY", key_hex)
        .output()
        .unwrap()
}

pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let tools = std::env::var("WAXWING_TOOLS")
        .map(PathBuf::from)
        .unwrap_or(root.join("target/tools"));
    tools.join("venv/bin/python")
}

/// A child process (a bot) killed when the test ends.
pub struct Bot(pub std::process::Child);
impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the test XEP-0357 app server (`push.localhost`), which writes one
/// JSON line per push it receives to `out`; returns once it is connected.
pub fn start_push_app_server(server: &TestServer, out: &std::path::Path) -> Bot {
    let mut child = Command::new(python())
        .arg(repo_root().join("scripts/push_app_server.py"))
        .args([
            "--jid",
            "push.localhost",
            "--secret",
            "push-component-secret",
        ])
        .args(["--port", &server.component_port.to_string()])
        .args(["--out", out.to_str().unwrap(), "--lifetime", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the push app server");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("online"), "app server: {line}");
    Bot(child)
}
