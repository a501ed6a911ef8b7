//! Login benchmark: prints one JSON line per timed login with the wall time
//! from `login()` to online, the XMPP round trips the engine counted, the
//! mechanism and whether the stream was resumed. Used by scripts/bench.sh
//! against a local Prosody (directly, and through a latency proxy).
//!
//! usage: login_bench JID PASSWORD HOST:PORT CA_FILE N [--direct-tls] [MODE]
//! MODE: --classic  password login without SASL2 (RFC 6120 path)
//!       --sasl2    password login with SASL2 + Bind2 (the default)
//!       --fast     a FAST token login (a token is fetched first, untimed)
//!       --resume   FAST + inline resumption of a suspended session

use std::sync::Arc;
use std::time::{Duration, Instant};

use waxwing_core::store::{Store, StoreKey};
use waxwing_core::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, ConnectionState, EventListener};

struct Quiet;
impl EventListener for Quiet {
    fn on_event(&self, _: ClientEvent) {}
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // WAXWING_BENCH_LOG=debug shows where a login spends its time.
    if let Ok(filter) = std::env::var("WAXWING_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: login_bench JID PASSWORD HOST:PORT CA_FILE N [--direct-tls] [--classic|--sasl2|--fast|--resume]");
        std::process::exit(2);
    }
    let (host, port) = args[2].rsplit_once(':').expect("HOST:PORT");
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let direct_tls = has("--direct-tls");
    let mode = ["--classic", "--fast", "--resume"]
        .into_iter()
        .find(|m| has(m))
        .unwrap_or("--sasl2")
        .trim_start_matches("--");
    let ca = std::fs::read(&args[3]).expect("CA file");
    let config = |store: &std::path::Path| ClientConfig {
        jid: args[0].clone(),
        password: args[1].clone(),
        resource: None,
        connect: ConnectOptions {
            server: Some((host.to_owned(), port.parse().expect("port"))),
            direct_tls,
            extra_ca_pem: Some(ca.clone()),
        },
        store_dir: store.to_owned(),
        store_key: StoreKey::from_bytes([5; 32]),
        initial_backoff: Duration::from_secs(1),
        sasl2: mode != "classic",
    };
    for _ in 0..args[4].parse::<u32>().expect("N") {
        let store = std::env::temp_dir().join(format!(
            "waxwing-login-bench-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        // The untimed setup a mode needs: a token, or a suspended session.
        if mode == "fast" || mode == "resume" {
            let client = Client::open(config(&store), Arc::new(Quiet)).expect("open");
            client.login().await.expect("setup login");
            // Suspending keeps the token (logout erases it).
            client.suspend().await;
            drop(client);
            if mode == "fast" {
                // FAST alone: forget the stream so nothing is resumed.
                Store::open(&store, &config(&store).store_key)
                    .expect("open the store")
                    .set_account_value("sm_state", None)
                    .expect("forget the stream");
            }
        }
        let client = Client::open(config(&store), Arc::new(Quiet)).expect("open");
        let started = Instant::now();
        client.login().await.expect("login");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let ConnectionState::Online {
            round_trips,
            authentication,
            resumed,
            ..
        } = client.connection_state()
        else {
            panic!("not online")
        };
        let tls = if direct_tls { "direct-tls" } else { "starttls" };
        println!(
            "{{\"client\":\"waxwing-{mode}-{tls}\",\"login_ms\":{ms:.2},\"xmpp_round_trips\":{round_trips},\
             \"authentication\":\"{authentication}\",\"resumed\":{resumed}}}"
        );
        client.logout().await;
        let _ = std::fs::remove_dir_all(&store);
    }
}

fn rand_suffix() -> u64 {
    use std::time::SystemTime;
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
