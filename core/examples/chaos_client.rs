//! One side of the exactly-once chaos test (core/tests/chaos.rs), run as a
//! process the test kills and restarts at random: it sends `--send N`
//! numbered messages to `--peer` (continuing after the ones already in its
//! store), and exits 0 once its outbox is empty and `--expect M` messages
//! from the peer are stored. Prints one JSON line per (re)connection.
//!
//! usage: chaos_client --jid JID --server HOST:PORT --ca FILE --store DIR
//!        --peer JID --send N --expect M   (password: WAXWING_PASSWORD,
//!        store key: WAXWING_STORE_KEY)

use std::sync::Arc;
use std::time::{Duration, Instant};

use waxwing_core::store::{Direction, StoreKey};
use waxwing_core::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, ConnectionState, EventListener};

struct PrintConnections;
impl EventListener for PrintConnections {
    fn on_event(&self, event: ClientEvent) {
        if let ClientEvent::ConnectionChanged(ConnectionState::Online {
            resumed,
            authentication,
            ..
        }) = event
        {
            println!(
                "{{\"online\":true,\"resumed\":{resumed},\"authentication\":\"{authentication}\"}}"
            );
        }
    }
}

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| {
            eprintln!("missing {name}");
            std::process::exit(2)
        })
}

/// Messages in the conversation with `peer`, in `direction`.
fn count(client: &Client, peer: &str, direction: Direction) -> usize {
    client
        .history(peer, None, 1_000_000)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.direction == direction)
        .count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (host, port) = arg("--server")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse::<u16>().expect("port")))
        .expect("HOST:PORT");
    let peer = arg("--peer");
    let to_send: usize = arg("--send").parse().expect("--send N");
    let expected: usize = arg("--expect").parse().expect("--expect M");
    let give_up = Duration::from_secs(
        std::env::var("WAXWING_CHAOS_GIVE_UP")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    if std::env::var_os("WAXWING_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(std::env::var("WAXWING_LOG").unwrap())
            .with_writer(std::io::stderr)
            .init();
    }
    let config = ClientConfig {
        jid: arg("--jid"),
        password: std::env::var("WAXWING_PASSWORD").unwrap_or_default(),
        resource: None,
        connect: ConnectOptions {
            server: Some((host, port)),
            direct_tls: false,
            extra_ca_pem: Some(std::fs::read(arg("--ca")).expect("CA")),
        },
        store_dir: arg("--store").into(),
        store_key: StoreKey::from_hex(&std::env::var("WAXWING_STORE_KEY").expect("key"))
            .expect("key"),
        initial_backoff: Duration::from_millis(100),
        sasl2: true,
    };
    let client = Client::open(config, Arc::new(PrintConnections)).expect("open");
    // The first attempt may hit a cut; the client keeps retrying by itself.
    while client.login().await.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if matches!(client.connection_state(), ConnectionState::Online { .. }) {
            break;
        }
    }
    // Continue after what an earlier (killed) run already stored.
    let already = count(&client, &peer, Direction::Outgoing);
    for i in already..to_send {
        client
            .send_message(&peer, &format!("chaos {i:05}"))
            .expect("stored");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let started = Instant::now();
    loop {
        let outbox = client.outbox().map(|o| o.len()).unwrap_or(usize::MAX);
        let received = count(&client, &peer, Direction::Incoming);
        if outbox == 0 && received >= expected {
            client.suspend().await;
            println!("{{\"done\":true,\"received\":{received}}}");
            return;
        }
        if started.elapsed() > give_up {
            let have: std::collections::HashSet<String> = client
                .history(&peer, None, 1_000_000)
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.direction == Direction::Incoming)
                .map(|m| m.body)
                .collect();
            let missing: Vec<usize> = (0..expected)
                .filter(|i| !have.contains(&format!("chaos {i:05}")))
                .collect();
            eprintln!("gave up: outbox {outbox}, received {received}, missing {missing:?}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
