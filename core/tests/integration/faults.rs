//! Faults a real server will not produce, from a scripted TLS server on
//! loopback: unknown stanzas and nonzas, then malformed XML mid-session.
//! The client must answer or drop the unknown, end the stream on the
//! malformed with a typed error, never panic or hang, and keep its data.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use waxwing_core::store::StoreKey;
use waxwing_core::ConnectOptions;
use waxwing_core::{ClientConfig, ClientError, ClientEvent, ConnectionState};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='fake' from='localhost' version='1.0'>";

fn certs() -> (tempfile::TempDir, Vec<u8>, Arc<rustls::ServerConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let ok = std::process::Command::new("bash")
        .arg(root.join("scripts/prosody.sh"))
        .args(["certs", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let c = dir.path().join("certs");
    let chain: Vec<_> =
        rustls_pemfile::certs(&mut &std::fs::read(c.join("localhost.crt")).unwrap()[..])
            .collect::<Result<_, _>>()
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

/// Accepts the next connection and completes its TLS handshake (direct TLS).
async fn accept_tls(
    listener: &TcpListener,
    tls: &Arc<rustls::ServerConfig>,
) -> tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    let (tcp, _) = listener.accept().await.unwrap();
    tokio_rustls::TlsAcceptor::from(tls.clone())
        .accept(tcp)
        .await
        .unwrap()
}

/// Alice's config for the scripted server at `port` (direct TLS, store key
/// 0x01…): each test varies only the CA, the store and the backoff.
fn scripted_config(
    port: u16,
    ca: Option<Vec<u8>>,
    store: &std::path::Path,
    initial_backoff: Duration,
) -> ClientConfig {
    ClientConfig {
        jid: "alice@localhost".into(),
        password: "pw".into(),
        resource: Some("fake".into()),
        connect: ConnectOptions {
            server: Some(("127.0.0.1".into(), port)),
            direct_tls: true,
            extra_ca_pem: ca,
        },
        store_dir: store.into(),
        store_key: StoreKey::from_bytes([1; 32]),
        initial_backoff,
        sasl2: true,
    }
}

/// Reads until `needle` has been seen; returns everything read.
async fn read_until<S: AsyncReadExt + Unpin>(s: &mut S, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "client closed early; got {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Plays a server through PLAIN auth; the restarted stream then offers
/// `features` (the children of `<stream:features>`).
async fn serve_auth<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    seen: &mut String,
    features: &str,
) {
    read_until(s, seen, "<stream:stream").await;
    let mechanisms = format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    );
    s.write_all(mechanisms.as_bytes()).await.unwrap();
    read_until(s, seen, "</auth>").await;
    s.write_all(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    seen.clear();
    read_until(s, seen, "<stream:stream").await;
    let features = format!("{HEADER}<stream:features>{features}</stream:features>");
    s.write_all(features.as_bytes()).await.unwrap();
}

/// Answers the client's resource binding with `alice@localhost/fake`.
async fn serve_bind<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, seen: &mut String) {
    read_until(s, seen, "</iq>").await;
    let id = seen
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let bound = format!(
        "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@localhost/fake</jid></bind></iq>"
    );
    s.write_all(bound.as_bytes()).await.unwrap();
}

/// Plays a server through PLAIN auth and resource binding.
async fn serve_login<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, seen: &mut String) {
    serve_auth(s, seen, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>").await;
    serve_bind(s, seen).await;
}

/// Issue 12, defect 12: an untrusted certificate stops the connection
/// (never a downgrade), but on a new network — where it may have been a
/// captive portal's — `network_available()` starts it again; it used to
/// do nothing once the task had stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_network_retries_a_connection_stopped_by_an_untrusted_certificate() {
    let (_certs, ca, tls) = certs();
    let (_portal_certs, _, portal_tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // The captive portal: a certificate from a CA the client does not
        // trust. The handshake fails on the client's side.
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(portal_tls)
            .accept(tcp)
            .await;
        // The real server, on the next network.
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        read_until(&mut s, &mut seen, "</stream:stream>").await;
        s.write_all(b"</stream:stream>").await.unwrap();
    });
    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_millis(100));
    let (client, _events) = open_client(config);
    assert_eq!(client.login().await, Err(ClientError::UntrustedCertificate));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(
            client.connection_state(),
            ConnectionState::Disconnected {
                will_retry: false,
                ..
            }
        ),
        "stopped, no retry on its own"
    );
    client.network_available();
    let online = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(client.connection_state(), ConnectionState::Online { .. }) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(online.is_ok(), "online again on the new network");
    client.logout().await;
    server.await.unwrap();
}

/// Issue 12 (performance): logout dropped the socket right after its own
/// `</stream:stream>`, so the server was still closing (and finishing what
/// the session started) when the next login came. Now logout waits,
/// bounded, for the server's `</stream:stream>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_waits_for_the_server_to_close_the_stream() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        read_until(&mut s, &mut seen, "</stream:stream>").await;
        // A server busy finishing the session answers a little later.
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(b"</stream:stream>").await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(30));
    let (client, _events) = open_client(config);
    client.login().await.unwrap();
    let started = std::time::Instant::now();
    client.logout().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "logout returned after {waited:?}, before the server closed"
    );
    assert!(waited < Duration::from_secs(10), "bounded: {waited:?}");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_failures_are_retried_with_backoff_until_online() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // Two connections dropped right after TLS, then a working one.
        for _ in 0..2 {
            let s = accept_tls(&listener, &tls).await;
            drop(s);
        }
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    // Long enough that login() surely sees the first attempt's outcome
    // before the retry's (it reads the latest state).
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_millis(500));
    let (client, events) = open_client(config);
    assert_eq!(
        client.login().await,
        Err(ClientError::Network),
        "login reports the first attempt"
    );
    events
        .wait_for(10, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Online { jid, .. }) => {
                Some(jid.clone())
            }
            _ => None,
        })
        .await;
    let history: Vec<_> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Connecting) => Some("connecting"),
            ClientEvent::ConnectionChanged(ConnectionState::Disconnected {
                will_retry: true,
                ..
            }) => Some("retry"),
            ClientEvent::ConnectionChanged(ConnectionState::Online { .. }) => Some("online"),
            _ => None,
        })
        .collect();
    assert_eq!(
        history,
        vec![
            "connecting",
            "retry",
            "connecting",
            "retry",
            "connecting",
            "online"
        ]
    );
    client.logout().await;
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_forged_stanzas_are_refused_and_malformed_xml_ends_the_stream_with_a_typed_error(
) {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        // Unknown nonza and an IQ nobody handles, then a chat message.
        s.write_all(b"<weird xmlns='urn:example:nonza'/><iq type='get' id='u1' from='localhost'>\
            <mystery xmlns='urn:example:unknown'/></iq>\
            <message from='mallory@evil.example' to='alice@localhost/fake'><received xmlns='urn:xmpp:carbons:2'>\
            <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'>\
            <body>forged carbon</body></message></forwarded></received></message>\
            <message from='mallory@evil.example'><result xmlns='urn:xmpp:mam:2' queryid='q' id='x1'>\
            <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'>\
            <body>forged archive</body></message></forwarded></result></message>\
            <message from='bob@localhost/x' type='chat' id='m1'><body>before the garbage</body></message>").await.unwrap();
        seen.clear();
        read_until(&mut s, &mut seen, "id='u1'").await;
        assert!(
            seen.contains("service-unavailable"),
            "unknown IQ answered with an error: {seen}"
        );
        s.write_all(b"<message from='bob@localhost/x'><body>broken</message>")
            .await
            .unwrap();
        // The client ends the stream; drain until it closes.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        String::from_utf8_lossy(&rest).into_owned()
    });

    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(60));
    let (client, events) = open_client(config);
    client.login().await.expect("login to the scripted server");
    let error = events
        .wait_for(10, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Disconnected {
                error: Some(err),
                will_retry,
            }) => Some((err.clone(), *will_retry)),
            _ => None,
        })
        .await;
    assert!(matches!(error.0, ClientError::Protocol(_)), "{error:?}");
    assert!(error.1, "a broken stream is retried, not fatal");
    let tail = server.await.unwrap();
    assert!(
        tail.contains("not-well-formed"),
        "client told the server why: {tail}"
    );
    // The message that came before the garbage was kept; the forged
    // carbon and archive result were not.
    let history = client.history("bob@localhost", None, 10).unwrap();
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["before the garbage"]
    );
    client.logout().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await; // silence
    });
    let store = tempfile::tempdir().unwrap();
    let mut config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(60));
    config.resource = None;
    let (client, _) = open_client(config);
    let result = tokio::time::timeout(Duration::from_secs(40), client.login()).await;
    assert_eq!(
        result.expect("login gives up by itself"),
        Err(ClientError::Timeout)
    );
    client.logout().await;
}

/// A message with a hostile delay stamp (a multibyte fraction used to panic
/// the connection task, which then looked online forever and died again on
/// every redelivery) is stored with our arrival time, and the connection
/// carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_timestamp_neither_kills_the_connection_nor_loses_the_message() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        s.write_all(
            "<message from='bob@localhost/x' type='chat' id='m1'><body>bad stamp</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-11-24T18:00:00.12€Z'/></message>\
             <message from='bob@localhost/x' type='chat' id='m2'><body>after it</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='99999999999999999-01-01T00:00:00Z'/></message>\
             <iq type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
                .as_bytes(),
        )
        .await
        .unwrap();
        seen.clear();
        read_until(&mut s, &mut seen, "id='p1'").await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(60));
    let (client, _events) = open_client(config);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    client.login().await.expect("login to the scripted server");
    // Stored at once (their events wait for the archive catch-up, which
    // this server never answers).
    let mut history = Vec::new();
    for _ in 0..100 {
        history = client.history("bob@localhost", None, 10).unwrap();
        if history.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["after it", "bad stamp"]
    );
    for m in &history {
        assert!(
            m.timestamp_ms >= before,
            "arrival time, not the stamp: {m:?}"
        );
    }
    let state = client.connection_state();
    assert!(matches!(state, ConnectionState::Online { .. }), "{state:?}");
    client.logout().await;
    server.await.unwrap();
}

/// Plays a server through PLAIN auth up to the post-auth features, which
/// offer binding and XEP-0198.
async fn serve_auth_with_sm<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, seen: &mut String) {
    serve_auth(
        s,
        seen,
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>",
    )
    .await;
}

/// Issue 12, defect 3: when the store cannot take incoming messages (here
/// another process holds its write lock), the client must not acknowledge
/// them (no `<a h>` covering them, no clean close that ends the server's
/// session), must say why with a typed event, and must get them again by
/// resuming once the store works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_acknowledges_nothing_and_the_message_comes_again() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("waxwing_core=debug")
        .try_init();
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
    const MESSAGE: &str =
        "<message from='bob@localhost/x' to='alice@localhost/fake' type='chat' id='m1'>\
        <body>keep me</body></message><r xmlns='urn:xmpp:sm:3'/>";
    let server = tokio::spawn(async move {
        // First connection: log in with resumable SM, then (store locked)
        // deliver the message and ask for an ack.
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_auth_with_sm(&mut s, &mut seen).await;
        serve_bind(&mut s, &mut seen).await;
        read_until(&mut s, &mut seen, "<enable").await;
        s.write_all(b"<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='300'/>")
            .await
            .unwrap();
        locked_rx.await.unwrap();
        seen.clear();
        s.write_all(MESSAGE.as_bytes()).await.unwrap();
        // The client drops the connection: read what it said until then.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut rest)).await;
        seen.push_str(&String::from_utf8_lossy(&rest));
        let first = std::mem::take(&mut seen);
        // Second connection: the client resumes; the server re-sends.
        let mut s = accept_tls(&listener, &tls).await;
        serve_auth_with_sm(&mut s, &mut seen).await;
        seen.clear();
        read_until(&mut s, &mut seen, "<resume").await;
        read_until(&mut s, &mut seen, "/>").await;
        let resume = std::mem::take(&mut seen);
        s.write_all(b"<resumed xmlns='urn:xmpp:sm:3' h='0' previd='sm-1'/>")
            .await
            .unwrap();
        s.write_all(MESSAGE.as_bytes()).await.unwrap();
        read_until(&mut s, &mut seen, "<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
        (first, resume, s)
    });

    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_millis(100));
    let (client, events) = open_client(config);
    client.login().await.expect("login to the scripted server");
    // Another process takes the store's write lock.
    let blocker = rusqlite::Connection::open(store.path().join("waxwing.db")).unwrap();
    blocker
        .execute_batch(&format!(
            "PRAGMA key = \"x'{}'\"; BEGIN EXCLUSIVE;",
            "01".repeat(32)
        ))
        .unwrap();
    locked_tx.send(()).unwrap();
    let error = events
        .wait_for(60, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Disconnected {
                error: Some(err),
                will_retry,
            }) => Some((err.clone(), *will_retry)),
            _ => None,
        })
        .await;
    assert!(matches!(error.0, ClientError::Store(_)), "{error:?}");
    assert!(error.1, "retried");
    blocker.execute_batch("ROLLBACK;").unwrap();
    drop(blocker);
    let (first, resume, _stream) = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the client came back")
        .unwrap();
    assert!(
        !first.contains("<a "),
        "acknowledged an unstored stanza: {first}"
    );
    assert!(
        !first.contains("</stream:stream>"),
        "closed the session: {first}"
    );
    assert!(resume.contains("h='0'"), "{resume}");
    let history = client.history("bob@localhost", None, 10).unwrap();
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["keep me"]
    );
    client.logout().await;
}

/// Reads the next MAM query; returns its iq id, queryid and the text.
async fn read_mam_query<S: AsyncReadExt + Unpin>(
    s: &mut S,
    seen: &mut String,
) -> (String, String, String) {
    loop {
        if let Some(start) = seen.find("<iq") {
            let rest = &seen[start..];
            if let Some(end) = rest.find("</iq>") {
                let iq = rest[..end + 5].to_owned();
                seen.replace_range(..start + end + 5, "");
                if iq.contains("urn:xmpp:mam:2") {
                    let attr = |name: &str| {
                        let at = iq.find(&format!("{name}=")).unwrap() + name.len() + 2;
                        iq[at..].split(['\'', '"']).next().unwrap().to_owned()
                    };
                    return (attr(" id"), attr("queryid"), iq);
                }
                continue;
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "client closed early; got {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// XEP-0313 §4.3: a cursor no longer in the archive (expired) gets
/// `item-not-found`. The catch-up must not give up, leaving a gap the next
/// live message would skip: it pages back from the newest message instead.
/// (Prosody's file storage answers an unknown cursor with an empty page, so
/// a scripted server plays the servers that follow the XEP.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_archive_cursor_falls_back_to_paging_back_from_the_newest() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        seen.clear();
        let (id, _, first) = read_mam_query(&mut s, &mut seen).await;
        assert!(
            first.contains("<after>expired-archive-id</after>"),
            "{first}"
        );
        let refused = format!(
            "<iq type='error' id='{id}'><error type='modify'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
        s.write_all(refused.as_bytes()).await.unwrap();
        let (id, query_id, second) = read_mam_query(&mut s, &mut seen).await;
        assert!(
            second.contains("<before/>"),
            "pages back from the newest: {second}"
        );
        let page = format!(
            "<message from='alice@localhost' to='alice@localhost/fake'>\
             <result xmlns='urn:xmpp:mam:2' queryid='{query_id}' id='a1'><forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='2026-11-29T10:00:00Z'/>\
             <message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat' id='b1'>\
             <body>from the gap</body></message></forwarded></result></message>\
             <iq type='result' id='{id}'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'><first>a1</first><last>a1</last></set></fin></iq>"
        );
        s.write_all(page.as_bytes()).await.unwrap();
        // Then forward from the newest: nothing more.
        let (id, _, third) = read_mam_query(&mut s, &mut seen).await;
        assert!(third.contains("<after>a1</after>"), "{third}");
        let done = format!(
            "<iq type='result' id='{id}'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>"
        );
        s.write_all(done.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    let key = StoreKey::from_bytes([1; 32]);
    waxwing_core::store::Store::open(store.path(), &key)
        .unwrap()
        // Account values are JSON (store::account).
        .set_account_value("mam_last", Some("\"expired-archive-id\""))
        .unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(60));
    let (client, events) = open_client(config);
    client.login().await.expect("login to the scripted server");
    events
        .wait_for(15, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
    let history = client.history("bob@localhost", None, 10).unwrap();
    assert_eq!(
        history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["from the gap"]
    );
    client.logout().await;
    server.await.unwrap();
}

/// Opens a client on a store whose archive cursor is `cursor`.
fn client_with_cursor(
    port: u16,
    ca: Vec<u8>,
    store: &std::path::Path,
    cursor: &str,
) -> ClientConfig {
    let key = StoreKey::from_bytes([1; 32]);
    waxwing_core::store::Store::open(store, &key)
        .unwrap()
        .set_account_value("mam_last", Some(&serde_json::to_string(cursor).unwrap()))
        .unwrap();
    scripted_config(port, Some(ca), store, Duration::from_secs(60))
}

/// Issue 12, defect 11: an archive query the server never answers must not
/// hold live messages back forever: the catch-up gives up on that page in
/// time (staying pending for the next connection) and the app sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_archive_does_not_hold_live_messages_back_forever() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        seen.clear();
        let (_, _, query) = read_mam_query(&mut s, &mut seen).await;
        assert!(query.contains("<after>c0</after>"), "{query}");
        // Never answered; a live message arrives meanwhile.
        s.write_all(
            b"<message from='bob@localhost/x' type='chat' id='m1'><body>live during a silent catch-up</body></message>",
        )
        .await
        .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(client_with_cursor(port, ca, store.path(), "c0"));
    client.login().await.expect("login to the scripted server");
    events
        .wait_for(45, |e| match e {
            ClientEvent::MessageReceived(m) if m.body == "live during a silent catch-up" => {
                Some(())
            }
            _ => None,
        })
        .await;
    events
        .wait_for(5, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
    client.logout().await;
    server.abort();
}

/// Issue 12, defect 11: a forward page that repeats the cursor as its last
/// id without saying it is complete must not make the client ask forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_page_that_does_not_advance_is_not_asked_for_again() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        seen.clear();
        let mut queries = 0;
        loop {
            let next =
                tokio::time::timeout(Duration::from_secs(3), read_mam_query(&mut s, &mut seen))
                    .await;
            let Ok((id, _, _)) = next else { break };
            queries += 1;
            if queries > 3 {
                break;
            }
            let stuck = format!(
                "<iq type='result' id='{id}'><fin xmlns='urn:xmpp:mam:2'>\
                 <set xmlns='http://jabber.org/protocol/rsm'><first>c0</first><last>c0</last></set></fin></iq>"
            );
            s.write_all(stuck.as_bytes()).await.unwrap();
        }
        queries
    });
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(client_with_cursor(port, ca, store.path(), "c0"));
    client.login().await.expect("login to the scripted server");
    events
        .wait_for(10, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
    assert_eq!(server.await.unwrap(), 1, "asked once, not in a loop");
    client.logout().await;
}

/// Issue 12, defect 7: pings and disco#info queries from strangers are not
/// answered (a stable resource would otherwise be a presence oracle); our
/// server still gets its answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_probe_whether_we_are_online() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        s.write_all(
            b"<iq type='get' id='p-stranger' from='mallory@evil.example/x'><ping xmlns='urn:xmpp:ping'/></iq>\
              <iq type='get' id='d-stranger' from='mallory@evil.example/x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>\
              <iq type='get' id='p-server' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
        seen.clear();
        read_until(&mut s, &mut seen, "id='p-server'").await;
        for id in ["p-stranger", "d-stranger"] {
            read_until(&mut s, &mut seen, &format!("id='{id}'")).await;
        }
        seen
    });
    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, Some(ca), store.path(), Duration::from_secs(60));
    let (client, _events) = open_client(config);
    client.login().await.expect("login to the scripted server");
    let answers = tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap();
    let answer = |id: &str| -> String {
        let at = answers.find(&format!("id='{id}'")).unwrap();
        let start = answers[..at].rfind("<iq").unwrap();
        let end = answers[start..].find('>').unwrap();
        answers[start..start + end].to_owned()
    };
    assert!(answer("p-server").contains("type='result'"), "{answers}");
    assert!(answer("p-stranger").contains("type='error'"), "{answers}");
    assert!(answer("d-stranger").contains("type='error'"), "{answers}");
    client.logout().await;
}

/// Issue 12, defect 12: a stripped `<starttls/>` (an attacker on this
/// network, a broken middlebox) is retried with backoff, never downgraded
/// to plain text and never a permanent stop; the next, clean connection
/// logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_starttls_is_retried_never_downgraded() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // First connection: features without <starttls/>.
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = String::new();
        read_until(&mut tcp, &mut seen, "<stream:stream").await;
        let stripped = format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        );
        tcp.write_all(stripped.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
        let first = String::from_utf8_lossy(&rest).into_owned();
        // Second connection: STARTTLS offered and done.
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = String::new();
        read_until(&mut tcp, &mut seen, "<stream:stream").await;
        let offered = format!(
            "{HEADER}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
        );
        tcp.write_all(offered.as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut seen, "<starttls").await;
        tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await
            .unwrap();
        let mut s = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .unwrap();
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        first
    });
    let store = tempfile::tempdir().unwrap();
    let mut config = scripted_config(port, Some(ca), store.path(), Duration::from_millis(100));
    config.connect.direct_tls = false;
    let (client, events) = open_client(config);
    // login() reports the first attempt's outcome unless the retry already
    // succeeded by the time it looks; the events tell the whole story.
    let _ = client.login().await;
    let retried = events
        .wait_for(5, |e| match e {
            ClientEvent::ConnectionChanged(ConnectionState::Disconnected {
                error: Some(ClientError::Tls),
                will_retry,
            }) => Some(*will_retry),
            _ => None,
        })
        .await;
    assert!(retried, "a stripped STARTTLS is retried");
    events
        .wait_for(10, |e| {
            matches!(
                e,
                ClientEvent::ConnectionChanged(ConnectionState::Online { .. })
            )
            .then_some(())
        })
        .await;
    client.logout().await;
    let first = server.await.unwrap();
    assert!(!first.contains("<auth"), "no plain-text login: {first}");
}

/// Issue 12, defect 13: while the client waits to reconnect (backoff, no
/// network), it does not hold the account's session lock, so a push
/// handler in another process can fetch meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_lock_is_free_while_waiting_to_reconnect() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = tempfile::tempdir().unwrap();
    let config = scripted_config(port, None, store.path(), Duration::from_secs(30));
    let (client, _events) = open_client(config);
    assert_eq!(client.login().await, Err(ClientError::Network));
    // The client is now in its 30 s backoff.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(store.path().join("session.lock"))
        .unwrap();
    assert!(
        lock.try_lock().is_ok(),
        "another process can take the session while the client waits"
    );
    drop(lock);
    client.logout().await;
}

/// Issue 12, defect 6 (part): once a login with SCRAM worked for the
/// account, a server (or a man in the middle) offering only PLAIN does not
/// get the password: the login fails with a typed error instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_is_refused_once_scram_has_worked() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        read_until(&mut s, &mut seen, "<stream:stream").await;
        let plain_only = format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        );
        s.write_all(plain_only.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        String::from_utf8_lossy(&rest).into_owned()
    });
    let store = tempfile::tempdir().unwrap();
    waxwing_core::store::Store::open(store.path(), &StoreKey::from_bytes([1; 32]))
        .unwrap()
        .set_account_value("sasl_no_plain", Some("true"))
        .unwrap();
    let (client, _events) = open_client(scripted_config(
        port,
        Some(ca),
        store.path(),
        Duration::from_secs(60),
    ));
    assert_eq!(client.login().await, Err(ClientError::AuthenticationFailed));
    let said = server.await.unwrap();
    assert!(!said.contains("<auth"), "the password went out: {said}");
    client.logout().await;
}

/// Issue 12, defect 15: an archive page is held in memory until it ends; a
/// server sending far more results than asked for cannot grow it without
/// end (what is beyond twice the page size is dropped, the rest stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_page_far_larger_than_asked_for_is_bounded() {
    let (_certs, ca, tls) = certs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut s = accept_tls(&listener, &tls).await;
        let mut seen = String::new();
        serve_login(&mut s, &mut seen).await;
        seen.clear();
        let (id, query_id, _) = read_mam_query(&mut s, &mut seen).await;
        let mut page = String::new();
        for i in 0..1000 {
            page.push_str(&format!(
                "<message from='alice@localhost' to='alice@localhost/fake'>\
                 <result xmlns='urn:xmpp:mam:2' queryid='{query_id}' id='a{i}'><forwarded xmlns='urn:xmpp:forward:0'>\
                 <message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat' id='b{i}'>\
                 <body>flood {i}</body></message></forwarded></result></message>"
            ));
        }
        page.push_str(&format!(
            "<iq type='result' id='{id}'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'><first>a0</first><last>a999</last></set></fin></iq>"
        ));
        s.write_all(page.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    });
    let store = tempfile::tempdir().unwrap();
    let (client, events) = open_client(client_with_cursor(port, ca, store.path(), "c0"));
    client.login().await.expect("login to the scripted server");
    events
        .wait_for(15, |e| matches!(e, ClientEvent::CaughtUp).then_some(()))
        .await;
    let stored = client.history("bob@localhost", None, 5000).unwrap();
    assert_eq!(stored.len(), 200, "twice the page size we asked for");
    assert_eq!(
        stored.last().unwrap().body,
        "flood 0",
        "the first ones, in order"
    );
    client.logout().await;
    server.abort();
}
