//! A TCP proxy on loopback that delays every chunk by half the given round
//! trip time in each direction, so that a login's wall time shows how many
//! round trips it needs (benchmarks compare clients through it).
//!
//! usage: latency_proxy UPSTREAM_PORT RTT_MS LIFETIME_SECS
//! Prints `PROXY_PORT=<port>` once listening on 127.0.0.1, and exits after
//! LIFETIME_SECS (or when killed).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, rtt_ms, lifetime] = &args[..] else {
        eprintln!("usage: latency_proxy UPSTREAM_PORT RTT_MS LIFETIME_SECS");
        std::process::exit(2);
    };
    let upstream: u16 = upstream.parse().expect("UPSTREAM_PORT");
    let one_way = Duration::from_millis(rtt_ms.parse::<u64>().expect("RTT_MS") / 2);
    let lifetime = Duration::from_secs(lifetime.parse().expect("LIFETIME_SECS"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("PROXY_PORT={}", listener.local_addr().unwrap().port());
    let serve = async {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    delayed_copy(client_read, server_write, one_way),
                    delayed_copy(server_read, client_write, one_way),
                );
            });
        }
    };
    let _ = tokio::time::timeout(lifetime, serve).await;
}

/// Copies `from` to `to`, each chunk leaving `delay` after it arrived, in
/// order; bandwidth is not limited, only latency is added.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            if chunks
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
