//! MAM catch-up benchmark (scripts/bench.sh): logs in with an existing
//! store and times the forward catch-up until `CaughtUp`, counting the
//! messages stored. One JSON line.
//!
//! usage: mam_bench JID HOST:PORT CA_FILE STORE_DIR [--prime]
//! (password: WAXWING_PASSWORD, store key: WAXWING_STORE_KEY). `--prime`
//! logs in once to set the archive cursor, then logs out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use waxwing_core::store::StoreKey;
use waxwing_core::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, EventListener};

#[derive(Default)]
struct Count {
    stored: AtomicUsize,
    caught_up: Notify,
}

impl EventListener for Count {
    fn on_event(&self, event: ClientEvent) {
        match event {
            ClientEvent::MessageReceived(_) => {
                self.stored.fetch_add(1, Ordering::Relaxed);
            }
            ClientEvent::CaughtUp => self.caught_up.notify_one(),
            _ => {}
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port) = args[1].rsplit_once(':').expect("HOST:PORT");
    let config = ClientConfig {
        jid: args[0].clone(),
        password: std::env::var("WAXWING_PASSWORD").unwrap_or_default(),
        resource: None,
        connect: ConnectOptions {
            server: Some((host.to_owned(), port.parse().expect("port"))),
            direct_tls: false,
            extra_ca_pem: Some(std::fs::read(&args[2]).expect("CA")),
        },
        store_dir: args[3].clone().into(),
        store_key: StoreKey::from_hex(&std::env::var("WAXWING_STORE_KEY").expect("key"))
            .expect("key"),
        initial_backoff: Duration::from_secs(1),
        sasl2: true,
    };
    let count = Arc::new(Count::default());
    let client = Client::open(config, count.clone()).expect("open");
    let started = Instant::now();
    client.login().await.expect("login");
    count.caught_up.notified().await;
    let seconds = started.elapsed().as_secs_f64();
    client.logout().await;
    if args.iter().any(|a| a == "--prime") {
        return;
    }
    let stored = count.stored.load(Ordering::Relaxed);
    println!(
        "{{\"client\":\"waxwing\",\"stored\":{stored},\"seconds\":{seconds:.3},\"messages_per_s\":{:.0}}}",
        stored as f64 / seconds
    );
}
