//! The whole client layer — engine, driver, connection parts, real store —
//! over an in-memory pipe (`tokio::io::duplex`) with a scripted server on
//! the other end: STARTTLS, a real TLS handshake, PLAIN, bind, a message in
//! and its receipt out, a clean close. No sockets, no Prosody, well under a
//! second.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Command, ConnectionHandler, Outcome};
use crate::client::events::{ClientEvent, ConnectionState, EventListener};
use crate::proto::{Session, SessionConfig};
use crate::store::{RosterEntry, Store, StoreKey, Subscription};
use crate::transport::{drive, tls, Connection};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s' from='localhost' version='1.0'>";

#[derive(Default)]
struct Recorder(Mutex<Vec<ClientEvent>>);

impl EventListener for Recorder {
    fn on_event(&self, event: ClientEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// A certificate for `localhost` and its CA, made by the test harness's
/// script (openssl), as the integration tests do.
fn certs() -> (tempfile::TempDir, Vec<u8>, Arc<rustls::ServerConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/prosody.sh");
    let made = std::process::Command::new("bash")
        .args([script, "certs", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let c = dir.path().join("certs");
    let chain = rustls_pemfile::certs(&mut &std::fs::read(c.join("localhost.crt")).unwrap()[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls_pemfile::private_key(&mut &std::fs::read(c.join("localhost.key")).unwrap()[..])
            .unwrap()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let ca = std::fs::read(c.join("ca.pem")).unwrap();
    (dir, ca, Arc::new(config))
}

/// Reads until `needle` has been seen.
async fn read_until<S: AsyncRead + Unpin>(s: &mut S, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the client keeps talking")
            .unwrap();
        assert!(n > 0, "client closed early; got {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, text: &str) {
    s.write_all(text.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn the_whole_client_layer_runs_over_a_pipe_against_a_scripted_server() {
    let (_certs, ca, tls_server) = certs();
    let (client_end, mut server_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut seen = String::new();
        read_until(&mut server_end, &mut seen, "<stream:stream").await;
        send(
            &mut server_end,
            &format!("{HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"),
        )
        .await;
        read_until(&mut server_end, &mut seen, "<starttls").await;
        send(
            &mut server_end,
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        )
        .await;
        let mut s = tokio_rustls::TlsAcceptor::from(tls_server)
            .accept(server_end)
            .await
            .unwrap();
        seen.clear();
        read_until(&mut s, &mut seen, "<stream:stream").await;
        send(
            &mut s,
            &format!(
                "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                      <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
            ),
        )
        .await;
        read_until(&mut s, &mut seen, "</auth>").await;
        send(
            &mut s,
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        )
        .await;
        seen.clear();
        read_until(&mut s, &mut seen, "<stream:stream").await;
        send(
            &mut s,
            &format!("{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"),
        )
        .await;
        read_until(&mut s, &mut seen, "</iq>").await;
        let id = seen
            .split("id='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_owned();
        send(
            &mut s,
            &format!(
                "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                      <jid>alice@localhost/pipe</jid></bind></iq>"
            ),
        )
        .await;
        // A contact's message asking for a receipt.
        seen.clear();
        send(
            &mut s,
            "<message xmlns='jabber:client' from='bob@localhost/phone' to='alice@localhost/pipe' \
             type='chat' id='m1'><body>over the pipe</body><request xmlns='urn:xmpp:receipts'/></message>",
        )
        .await;
        read_until(&mut s, &mut seen, "<received").await;
        // The client logs out: close our side too.
        read_until(&mut s, &mut seen, "</stream:stream>").await;
        send(&mut s, "</stream:stream>").await;
        seen
    });

    let store_dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(store_dir.path(), &StoreKey::from_bytes([2; 32])).unwrap();
    // Bob may see our presence, so he gets a receipt.
    let bob = RosterEntry {
        jid: "bob@localhost".into(),
        name: None,
        subscription: Subscription::Both,
        pending_out: false,
        groups: Vec::new(),
    };
    store.apply_roster_push(Some(&bob), None, None).unwrap();
    let store = Arc::new(Mutex::new(store));
    let events = Arc::new(Recorder::default());
    let own: jid::BareJid = "alice@localhost".parse().unwrap();
    let (state, _) = tokio::sync::watch::channel(ConnectionState::Connecting);
    let mut handler = ConnectionHandler::new(
        store.clone(),
        events.clone(),
        own.clone(),
        state,
        Arc::default(),
    );
    let mut session = Session::new(SessionConfig::new(own, "pw".into(), "pipe".into()));
    let tls_client = tls::client_config(Some(&ca), false).unwrap();
    let connection = Connection::over(Box::new(client_end), tls_client, "localhost");
    let (commands, mut command_rx) = mpsc::unbounded_channel();
    let watcher = events.clone();
    let logout = tokio::spawn(async move {
        // Log out once the message is in.
        for _ in 0..200 {
            let got =
                watcher.0.lock().unwrap().iter().any(
                    |e| matches!(e, ClientEvent::MessageReceived(m) if m.body == "over the pipe"),
                );
            if got {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        commands.send(Command::Close).ok();
        commands
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        drive(
            connection,
            &mut session,
            "nonce".into(),
            &mut handler,
            &mut command_rx,
        ),
    )
    .await
    .expect("the connection ends");
    let _commands = logout.await.unwrap();
    assert!(matches!(outcome, Outcome::LoggedOut), "{outcome:?}");
    let wire = server.await.unwrap();
    assert!(
        wire.contains("<received xmlns='urn:xmpp:receipts' id='m1'"),
        "{wire}"
    );
    let stored = store
        .lock()
        .unwrap()
        .history("bob@localhost", None, 10)
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body, "over the pipe");
    let told = events.0.lock().unwrap();
    assert!(told.iter().any(|e| matches!(
        e,
        ClientEvent::ConnectionChanged(ConnectionState::Online { .. })
    )));
}
