//! Fills an account's store with N messages across 500 conversations, for
//! the wake-up memory benchmark (scripts/bench.sh).
//!
//! usage: fill_store STORE_DIR N   (store key: WAXWING_STORE_KEY, 64 hex)

use waxwing_core::store::{Direction, IncomingMessage, Position, Store, StoreKey};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n] = &args[..] else {
        eprintln!("usage: fill_store STORE_DIR N");
        std::process::exit(2);
    };
    let key = StoreKey::from_hex(&std::env::var("WAXWING_STORE_KEY").expect("WAXWING_STORE_KEY"))
        .expect("key");
    let mut store = Store::open(std::path::Path::new(dir), &key).expect("open");
    let n: usize = n.parse().expect("N");
    let mut batch = Vec::with_capacity(500);
    for i in 0..n {
        let peer = format!("contact{}@example.org", i % 500);
        batch.push(IncomingMessage {
            direction: Direction::Incoming,
            sender: peer.clone(),
            peer,
            body: format!("old message number {i}, of an ordinary length for a chat"),
            origin_id: Some(format!("fill-{i}")),
            stanza_id: None,
            remote_id: None,
            timestamp_ms: 1_700_000_000_000 + i as i64,
            position: Position::Append,
            security: Default::default(),
            room: None,
        });
        if batch.len() == 500 {
            store.insert_incoming_batch(&batch).expect("insert");
            batch.clear();
        }
    }
    store.insert_incoming_batch(&batch).expect("insert");
}
