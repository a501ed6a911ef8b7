//! Login benchmark: logs in N times and prints one JSON line per login with
//! the wall time from `login()` to online and the XMPP round trips the
//! engine counted. Used by scripts/bench.sh against a local Prosody.
//!
//! usage: login_bench JID PASSWORD HOST:PORT CA_FILE N [--direct-tls]

use std::sync::Arc;
use std::time::{Duration, Instant};

use waxwing_core::store::StoreKey;
use waxwing_core::transport::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, ConnectionState, EventListener};

struct Quiet;
impl EventListener for Quiet {
    fn on_event(&self, _: ClientEvent) {}
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: login_bench JID PASSWORD HOST:PORT CA_FILE N [--direct-tls]");
        std::process::exit(2);
    }
    let (host, port) = args[2].rsplit_once(':').expect("HOST:PORT");
    let direct_tls = args.iter().any(|a| a == "--direct-tls");
    let ca = std::fs::read(&args[3]).expect("CA file");
    let store = std::env::temp_dir().join(format!("waxwing-login-bench-{}", std::process::id()));
    for _ in 0..args[4].parse::<u32>().expect("N") {
        let config = ClientConfig {
            jid: args[0].clone(),
            password: args[1].clone(),
            resource: None,
            connect: ConnectOptions {
                server: Some((host.to_owned(), port.parse().expect("port"))),
                direct_tls,
                extra_ca_pem: Some(ca.clone()),
            },
            store_dir: store.clone(),
            store_key: StoreKey::from_bytes([5; 32]),
            initial_backoff: Duration::from_secs(1),
            sasl2: true,
        };
        let client = Client::open(config, Arc::new(Quiet)).expect("open");
        let started = Instant::now();
        client.login().await.expect("login");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let ConnectionState::Online { round_trips, .. } = client.connection_state() else {
            panic!("not online")
        };
        let mode = if direct_tls { "direct-tls" } else { "starttls" };
        println!("{{\"client\":\"waxwing-{mode}\",\"login_ms\":{ms:.2},\"xmpp_round_trips\":{round_trips}}}");
        client.logout().await;
    }
    let _ = std::fs::remove_dir_all(&store);
}
