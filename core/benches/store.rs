//! Store benchmark (`cargo bench -p waxwing-core --bench store`): insert
//! 100k messages across 500 conversations in batches, open the store and
//! load the conversation list, load the newest 50 messages of one
//! conversation. Prints medians as JSON lines.

use std::time::Instant;

use waxwing_core::store::{Direction, IncomingMessage, Position, Store, StoreKey};

const MESSAGES: usize = 100_000;
const CONVERSATIONS: usize = 500;
const BATCH: usize = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`:
    // measuring is only meant for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store benchmark: skipped (run it with `cargo bench`)");
        return;
    }
    let key = StoreKey::from_bytes([9; 32]);
    let mut insert_runs = Vec::new();
    let mut open_list_runs = Vec::new();
    let mut page_runs = Vec::new();
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), &key).unwrap();
        let started = Instant::now();
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..MESSAGES {
            batch.push(IncomingMessage {
                direction: Direction::Incoming,
                peer: format!("contact{}@example.org", i % CONVERSATIONS),
                sender: format!("contact{}@example.org", i % CONVERSATIONS),
                body: format!("message number {i} with a body of ordinary length for a chat"),
                origin_id: Some(format!("origin-{run}-{i}")),
                stanza_id: Some(format!("stanza-{run}-{i}")),
                remote_id: Some(format!("id-{i}")),
                timestamp_ms: 1_700_000_000_000 + i as i64,
                position: Position::Append,
                security: Default::default(),
                room: None,
            });
            if batch.len() == BATCH {
                store.insert_incoming_batch(&batch).unwrap();
                batch.clear();
            }
        }
        insert_runs.push(started.elapsed().as_secs_f64());
        drop(store);

        for _ in 0..5 {
            let started = Instant::now();
            let store = Store::open(dir.path(), &key).unwrap();
            let list = store.conversations().unwrap();
            assert_eq!(list.len(), CONVERSATIONS);
            open_list_runs.push(started.elapsed().as_secs_f64() * 1000.0);
            let started = Instant::now();
            let page = store.history("contact7@example.org", None, 50).unwrap();
            assert_eq!(page.len(), 50);
            page_runs.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let insert = median(insert_runs);
    println!(
        "{{\"bench\":\"insert_100k_messages_500_conversations\",\"median_s\":{insert:.2},\"messages_per_s\":{:.0}}}",
        MESSAGES as f64 / insert
    );
    println!(
        "{{\"bench\":\"open_store_and_conversation_list\",\"median_ms\":{:.2}}}",
        median(open_list_runs)
    );
    println!(
        "{{\"bench\":\"newest_50_messages_of_a_conversation\",\"median_ms\":{:.3}}}",
        median(page_runs)
    );
}
