//! Placement rules without a server: the pure gap arithmetic against a
//! list of positions, then whole pages against a real store (the
//! interleavings the chaos test produced).

use super::*;
use crate::store::StoreKey;

/// Stored positions as a sorted list.
struct List(Vec<f64>);

impl Positions for List {
    fn below(&self, x: f64) -> Result<Option<f64>, StoreError> {
        Ok(self.0.iter().copied().filter(|p| *p < x).reduce(f64::max))
    }
    fn above(&self, x: f64) -> Result<Option<f64>, StoreError> {
        Ok(self.0.iter().copied().filter(|p| *p > x).reduce(f64::min))
    }
    fn last(&self) -> Result<Option<f64>, StoreError> {
        Ok(self.0.iter().copied().reduce(f64::max))
    }
}

fn placed(entries: &[Option<f64>], anchor: Slot, packing: Packing, list: &List) -> Vec<f64> {
    place(entries, anchor, packing, list).unwrap().unwrap()
}

fn all_within(positions: &[f64], low: f64, high: f64) {
    for w in positions.windows(2) {
        assert!(w[0] < w[1], "out of order: {positions:?}");
    }
    for p in positions {
        assert!(*p > low && *p < high, "{p} not in ({low}, {high})");
    }
}

#[test]
fn a_leading_run_goes_right_below_the_first_stored_message_of_the_page() {
    // Stored 10, 20, 30, 40; the page holds two new ones, then 30.
    let list = List(vec![10.0, 20.0, 30.0, 40.0]);
    let run = placed(&[None, None, Some(30.0)], Slot::End, Packing::High, &list);
    // Not spread over (10, 30) or anything wider: 20 is older than the page.
    all_within(&run, 20.0, 30.0);
}

#[test]
fn a_trailing_run_goes_right_above_the_last_stored_message_of_the_page() {
    let list = List(vec![10.0, 20.0, 30.0]);
    let run = placed(&[Some(10.0), None, None], Slot::End, Packing::Low, &list);
    all_within(&run, 10.0, 20.0);
}

#[test]
fn runs_between_stored_messages_stay_between_them() {
    let list = List(vec![10.0, 20.0, 30.0]);
    let run = placed(
        &[Some(10.0), None, Some(20.0), None, None, Some(30.0)],
        Slot::End,
        Packing::Low,
        &list,
    );
    all_within(&run[..1], 10.0, 20.0);
    all_within(&run[1..], 20.0, 30.0);
}

#[test]
fn a_page_without_stored_messages_goes_next_to_its_anchor() {
    let list = List(vec![10.0, 20.0, 30.0]);
    all_within(
        &placed(&[None; 3], Slot::Below(30.0), Packing::High, &list),
        20.0,
        30.0,
    );
    all_within(
        &placed(&[None; 3], Slot::Above(10.0), Packing::Low, &list),
        10.0,
        20.0,
    );
    assert_eq!(
        placed(&[None; 2], Slot::End, Packing::Low, &list),
        vec![30.0 + SPACING, 30.0 + 2.0 * SPACING]
    );
    assert_eq!(
        placed(&[None; 2], Slot::Below(10.0), Packing::High, &list),
        vec![10.0 - 2.0 * SPACING, 10.0 - SPACING]
    );
    assert_eq!(
        placed(&[None; 2], Slot::End, Packing::High, &List(vec![])),
        vec![SPACING, 2.0 * SPACING]
    );
}

#[test]
fn fifty_pages_of_a_hundred_fit_one_gap_in_either_direction() {
    // Paging back: each page goes right below the previous page's first.
    let mut list = List(vec![1024.0, 2048.0]);
    let mut edge = 2048.0;
    for _ in 0..50 {
        let run = placed(&[None; 100], Slot::Below(edge), Packing::High, &list);
        all_within(&run, 1024.0, edge);
        edge = run[0];
        list.0.extend(run);
    }
    // Paging forward: each page goes right below the live messages ahead.
    let mut list = List(vec![1024.0, 2048.0]);
    let mut floor = 1024.0;
    for _ in 0..50 {
        let run = placed(&[None; 100], Slot::Below(2048.0), Packing::Low, &list);
        all_within(&run, floor, 2048.0);
        floor = *run.last().unwrap();
        list.0.extend(run);
    }
}

#[test]
fn a_used_up_gap_is_reported_not_filled_with_ties() {
    let list = List(vec![1.0, 1.0 + 1e-9]);
    assert_eq!(
        place(&[None; 3], Slot::Below(1.0 + 1e-9), Packing::High, &list).unwrap(),
        Err(Crowded)
    );
}

// --- Whole pages against a real store ---------------------------------

const BOB: &str = "bob@example.org";
const T0: i64 = 1_700_000_000_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreKey::from_bytes([1; 32])).unwrap();
    (dir, store)
}

/// Bob's message number `n`, archived as `s{n}`.
fn message(n: u32, stamp_ms: i64) -> IncomingMessage {
    IncomingMessage {
        direction: Direction::Incoming,
        peer: BOB.into(),
        sender: BOB.into(),
        body: format!("chaos {n:05}"),
        origin_id: None,
        stanza_id: Some(format!("s{n}")),
        remote_id: None,
        timestamp_ms: stamp_ms,
        position: Position::Append,
        security: Default::default(),
    }
}

/// Stores live messages (appended, as the client does).
fn live(store: &mut Store, numbers: impl IntoIterator<Item = u32>, ahead_of_archive: bool) {
    let batch: Vec<IncomingMessage> = numbers
        .into_iter()
        .map(|n| {
            let mut m = message(n, T0 + 5_000 + n as i64);
            m.position = if ahead_of_archive {
                Position::AppendAheadOfArchive
            } else {
                Position::Append
            };
            m
        })
        .collect();
    store.insert_incoming_batch(&batch).unwrap();
}

/// Places and stores a page as the client does; returns its placement's
/// oldest received archive id.
fn store_page(
    store: &mut Store,
    page: &mam::Page,
    numbers: impl IntoIterator<Item = u32>,
    edge: Option<&str>,
) -> Vec<(String, String)> {
    let mut messages: Vec<IncomingMessage> = numbers
        .into_iter()
        .map(|n| message(n, T0 + 1_000 + n as i64))
        .collect();
    if *page == mam::Page::Latest {
        store.settle_archive_all().unwrap();
    }
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.stanza_id.clone())
        .collect();
    store.settle_archive(&ids).unwrap();
    let edge = edge.map(str::to_owned);
    let oldest = place_archive_page(store, page, &mut messages, |_| edge.clone()).unwrap();
    store.insert_incoming_batch(&messages).unwrap();
    oldest
}

/// Bob's message numbers, in the conversation's order.
fn order(store: &Store) -> Vec<u32> {
    let mut history = store.history(BOB, None, 100_000).unwrap();
    history.reverse();
    history
        .iter()
        .map(|m| m.body["chaos ".len()..].parse().unwrap())
        .collect()
}

#[test]
fn a_backward_page_lands_between_the_stored_messages_older_and_its_anchor() {
    // 383 and 384 came as a resumed backlog with whole-second delay stamps,
    // 385 and 386 live (our clock, later than the server's), 456 later.
    let (_dir, mut store) = store();
    let mut backlog = vec![message(383, T0), message(384, T0)];
    backlog.extend([message(385, T0 + 2_500), message(386, T0 + 2_600)]);
    store.insert_incoming_batch(&backlog).unwrap();
    live(&mut store, [456], false);
    // The page's server stamps fall between the backlog's and the live ones'.
    store_page(
        &mut store,
        &mam::Page::Before("s456".into()),
        406..456,
        None,
    );
    let mut want = vec![383, 384, 385, 386];
    want.extend(406..=456);
    assert_eq!(order(&store), want);
}

#[test]
fn pages_paging_back_attach_below_each_other_and_above_older_live_ones() {
    // Process 1 stored 300..=317 live, then its connection dropped; 318..=345
    // went to the hibernated session. A new session's backfill pages back
    // from 446: 346..=445, then 246..=345 (holding the live ones).
    let (_dir, mut store) = store();
    live(&mut store, 300..=317, true);
    let edges = store_page(&mut store, &mam::Page::Latest, 346..=445, None);
    assert_eq!(edges, vec![(BOB.to_owned(), "s346".to_owned())]);
    store_page(
        &mut store,
        &mam::Page::Before("s346".into()),
        246..=345,
        None,
    );
    // The next page knows nothing stored: it attaches below the previous
    // page's oldest (the anchor named by the query is another chat's).
    store_page(
        &mut store,
        &mam::Page::Before("elsewhere".into()),
        146..=245,
        Some("s246"),
    );
    assert_eq!(order(&store), (146..=445).collect::<Vec<_>>());
}

#[test]
fn a_latest_page_goes_above_live_messages_it_does_not_hold() {
    // Live 10..=19 arrived before the newest page (20..=29) was answered.
    let (_dir, mut store) = store();
    live(&mut store, 10..=19, true);
    store_page(&mut store, &mam::Page::Latest, 20..=29, None);
    assert_eq!(order(&store), (10..=29).collect::<Vec<_>>());
}

#[test]
fn a_forward_page_goes_below_the_live_messages_ahead_of_the_archive() {
    // 1..=10 were caught up; 30..=35 arrived live during this catch-up; the
    // page after the cursor holds 11..=29 and then the live 30..=32.
    let (_dir, mut store) = store();
    live(&mut store, 1..=10, false);
    live(&mut store, 30..=35, true);
    store_page(&mut store, &mam::Page::After("s10".into()), 11..=20, None);
    store_page(&mut store, &mam::Page::After("s20".into()), 21..=32, None);
    // A page holding nothing new and nothing stored changes nothing.
    store_page(&mut store, &mam::Page::After("s32".into()), 33..=35, None);
    assert_eq!(order(&store), (1..=35).collect::<Vec<_>>());
    assert_eq!(store.lowest_ahead_of_archive(BOB).unwrap(), None);
}

#[test]
fn hundreds_of_pages_need_no_renumbering_and_a_renumbered_store_still_places() {
    let (_dir, mut store) = store();
    // 1 and 100,000 are neighbours; 40 pages fill the gap between them.
    live(&mut store, [1, 100_000], false);
    let mut edge = "s100000".to_owned();
    let mut first = 100_000;
    for _ in 0..40 {
        let numbers = first - 100..first;
        store_page(&mut store, &mam::Page::Before(edge.clone()), numbers, None);
        first -= 100;
        edge = format!("s{first}");
    }
    let mut want: Vec<u32> = vec![1];
    want.extend(96_000..=100_000);
    assert_eq!(order(&store), want);
    store.renumber(BOB).unwrap();
    store_page(&mut store, &mam::Page::Before(edge), 95_900..96_000, None);
    want.splice(1..1, 95_900..96_000);
    assert_eq!(order(&store), want);
}
