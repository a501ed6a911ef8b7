//! Logs in to a server N times with tokio-xmpp 6 (STARTTLS) and prints one
//! JSON line per login with the wall time from `Client::new_starttls` to the
//! `Online` event. Trusts the test CA through SSL_CERT_FILE, the only way
//! tokio-xmpp offers (see docs/decisions.md).
//!
//! usage: JID PASSWORD HOST:PORT N

use std::time::Instant;

use futures::StreamExt;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jid, password, addr, n] = &args[..] else {
        eprintln!("usage: JID PASSWORD HOST:PORT N");
        std::process::exit(2);
    };
    let jid: BareJid = jid.parse().expect("jid");
    for _ in 0..n.parse::<u32>().expect("N") {
        let started = Instant::now();
        let mut client = Client::new_starttls(jid.clone(), password.clone(), DnsConfig::addr(addr), Timeouts::default());
        loop {
            match client.next().await {
                Some(Event::Online { .. }) => break,
                Some(Event::Disconnected(e)) => panic!("disconnected: {e}"),
                Some(_) => {}
                None => panic!("stream ended"),
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("{{\"client\":\"tokio-xmpp\",\"login_ms\":{ms:.2}}}");
        let _ = client.send_end().await;
    }
}
