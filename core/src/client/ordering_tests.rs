//! Placement rules without a server: the pure gap arithmetic against a
//! list of positions, then whole pages against a real store (the
//! interleavings the chaos test produced).

use super::*;
use crate::store::{Direction, StoreKey};

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
        room: None,
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

/// Our own message, from another device.
fn own(n: u32) -> IncomingMessage {
    IncomingMessage {
        direction: Direction::Outgoing,
        sender: "alice@example.org/laptop".into(),
        origin_id: Some(format!("o{n}")),
        ..message(n, T0 + n as i64)
    }
}

#[test]
fn a_live_copy_without_an_archive_id_is_found_by_its_origin_id() {
    // 5 came live during the catch-up without a stanza-id; the page holds
    // it (with one) between 4 and 6.
    let (_dir, mut store) = store();
    live(&mut store, 1..=3, false);
    let mut bare = message(5, T0);
    bare.stanza_id = None;
    bare.origin_id = Some("o5".into());
    bare.position = Position::AppendAheadOfArchive;
    store.insert_incoming_batch(&[bare]).unwrap();
    let mut page: Vec<IncomingMessage> = (4..=6).map(|n| message(n, T0)).collect();
    page[1].origin_id = Some("o5".into());
    place_archive_page(
        &mut store,
        &mam::Page::After("s3".into()),
        &mut page,
        |_| None,
    )
    .unwrap();
    store.insert_incoming_batch(&page).unwrap();
    assert_eq!(order(&store), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        store.lowest_ahead_of_archive(BOB).unwrap(),
        None,
        "5 reached"
    );
}

#[test]
fn our_messages_from_other_devices_anchor_pages_like_received_ones() {
    // The newest page holds our 11 (from the laptop) then bob's 12; the
    // next page, paging back from 11, goes below 11.
    let (_dir, mut store) = store();
    let mut newest = vec![own(11), message(12, T0)];
    let edges = place_archive_page(&mut store, &mam::Page::Latest, &mut newest, |_| None).unwrap();
    store.insert_incoming_batch(&newest).unwrap();
    assert_eq!(edges, vec![(BOB.to_owned(), "s11".to_owned())]);
    let mut older: Vec<IncomingMessage> = (8..=10).map(|n| message(n, T0)).collect();
    place_archive_page(
        &mut store,
        &mam::Page::Before("s11".into()),
        &mut older,
        |_| Some("s11".into()),
    )
    .unwrap();
    store.insert_incoming_batch(&older).unwrap();
    assert_eq!(order(&store), vec![8, 9, 10, 11, 12]);

    // A sent carbon (no archive id) that came live during a catch-up is in
    // archive order too: bob's 13, archived before it, goes below it.
    let mut carbon = own(14);
    carbon.stanza_id = None;
    carbon.position = Position::AppendAheadOfArchive;
    let mut live_15 = message(15, T0);
    live_15.position = Position::AppendAheadOfArchive;
    store.insert_incoming_batch(&[carbon, live_15]).unwrap();
    let mut page = vec![message(13, T0), own(14), message(15, T0)];
    place_archive_page(
        &mut store,
        &mam::Page::After("s12".into()),
        &mut page,
        |_| None,
    )
    .unwrap();
    store.insert_incoming_batch(&page).unwrap();
    assert_eq!(order(&store), (8..=15).collect::<Vec<_>>());
}

#[test]
fn a_message_written_here_anchors_nothing() {
    // The user wrote "w" while offline; it went out late, so the archive
    // has it after 3. A page with 2 and 3 must not attach to it.
    let (_dir, mut store) = store();
    live(&mut store, [1], false);
    let written = store
        .insert_outgoing(BOB, "alice@example.org", "w", "ow", T0)
        .unwrap();
    let mut page = vec![message(2, T0), message(3, T0)];
    page.push(IncomingMessage {
        direction: Direction::Outgoing,
        origin_id: Some("ow".into()),
        stanza_id: Some("sw".into()),
        ..message(0, T0)
    });
    place_archive_page(
        &mut store,
        &mam::Page::After("s1".into()),
        &mut page,
        |_| None,
    )
    .unwrap();
    store.insert_incoming_batch(&page).unwrap();
    let history = store.history(BOB, None, 10).unwrap();
    let bodies: Vec<&str> = history.iter().rev().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        vec!["chaos 00001", "w", "chaos 00002", "chaos 00003"]
    );
    assert_eq!(history.iter().filter(|m| m.id == written.id).count(), 1);
}

#[test]
fn history_pages_through_tied_positions_without_skipping() {
    let (_dir, mut store) = store();
    let tied: Vec<IncomingMessage> = (1..=3)
        .map(|n| IncomingMessage {
            position: Position::At(1024.0),
            ..message(n, T0)
        })
        .collect();
    store.insert_incoming_batch(&tied).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.history(BOB, cursor, 1).unwrap();
        let Some(m) = page.first() else { break };
        seen.push(m.body.clone());
        cursor = Some(crate::store::HistoryCursor { id: m.id });
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}
