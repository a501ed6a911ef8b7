//! Where archived messages go in a conversation's order. A conversation is
//! ordered by its own sequence, not by clocks: live messages are appended
//! in the order the server delivers them, and a page of the archive (which
//! is in the server's order) is placed by the archive's structure alone.
//!
//! A page is contiguous in the archive, so every stored message that is not
//! in it is entirely older or entirely newer than all of it. Its new
//! messages therefore go right next to the stored ones it holds (a run
//! before a stored message goes right below it, the run after the last one
//! right above it); a page holding none goes right next to its anchor: the
//! stored message it pages back from, the oldest one an earlier page of the
//! same backfill brought, or the live messages that are known to be newer
//! than everything paged so far ("ahead of the archive"). Timestamps stay
//! what the server or our clock said, for display only; they never decide
//! a place.

use std::collections::HashSet;

use crate::features::mam;
use crate::store::{ArchiveCopy, IncomingMessage, Position, Store, StoreError};

/// Distance between appended positions: the store's.
pub(crate) const SPACING: f64 = crate::store::SEQ_SPACING;

/// A run takes at most this share of its gap, packed against the side the
/// catch-up comes from, so the pages that follow into the same gap find it
/// nearly whole (halving it each time would use up a float's precision
/// after a few dozen pages).
const GAP_SLOTS: f64 = 10_000.0;

/// Where a run of new messages goes, relative to stored positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    /// Right below this stored position: nothing stored in between.
    Below(f64),
    /// Right above this stored position.
    Above(f64),
    /// After everything the conversation holds.
    End,
}

/// Which end of its gap a run is packed against: the end the next page of
/// the same catch-up will not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Paging forward: the next page comes above, so stay low.
    Low,
    /// Paging back: the next page comes below, so stay high.
    High,
}

/// The stored positions of one conversation.
pub(crate) trait Positions {
    /// The greatest stored position below `x`.
    fn below(&self, x: f64) -> Result<Option<f64>, StoreError>;
    /// The least stored position above `x`.
    fn above(&self, x: f64) -> Result<Option<f64>, StoreError>;
    /// The greatest stored position.
    fn last(&self) -> Result<Option<f64>, StoreError>;
}

/// The gap a run would need is too narrow to tell its positions apart:
/// the conversation must be renumbered first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Crowded;

/// Positions for the new messages of one conversation in one archive page.
///
/// `entries` are the page's messages of that conversation in archive
/// order: `Some(position)` for ones already stored, `None` for new ones;
/// `anchor` is where a page without stored entries goes. Returns one
/// position per `None`, in order.
pub(crate) fn place(
    entries: &[Option<f64>],
    anchor: Slot,
    packing: Packing,
    positions: &impl Positions,
) -> Result<Result<Vec<f64>, Crowded>, StoreError> {
    let mut placed = Vec::new();
    let mut run = 0usize;
    let mut last_known = None;
    for entry in entries {
        match entry {
            None => run += 1,
            Some(known) => {
                if run > 0 {
                    match fill(Slot::Below(*known), run, packing, positions)? {
                        Ok(run) => placed.extend(run),
                        Err(crowded) => return Ok(Err(crowded)),
                    }
                }
                run = 0;
                last_known = Some(*known);
            }
        }
    }
    if run > 0 {
        let slot = last_known.map_or(anchor, Slot::Above);
        match fill(slot, run, packing, positions)? {
            Ok(run) => placed.extend(run),
            Err(crowded) => return Ok(Err(crowded)),
        }
    }
    Ok(Ok(placed))
}

/// `count` positions in order, in the gap `slot` names.
fn fill(
    slot: Slot,
    count: usize,
    packing: Packing,
    positions: &impl Positions,
) -> Result<Result<Vec<f64>, Crowded>, StoreError> {
    let (low, high) = match slot {
        Slot::Below(x) => (positions.below(x)?, Some(x)),
        Slot::Above(x) => (Some(x), positions.above(x)?),
        Slot::End => (positions.last()?, None),
    };
    let n = count as f64;
    let at = |i: usize| -> f64 {
        let i = i as f64;
        match (low, high) {
            (Some(a), Some(b)) => {
                let step = (b - a) / GAP_SLOTS.max(n + 1.0);
                match packing {
                    Packing::Low => a + (i + 1.0) * step,
                    Packing::High => b - (n - i) * step,
                }
            }
            (Some(a), None) => a + (i + 1.0) * SPACING,
            (None, Some(b)) => b - (n - i) * SPACING,
            (None, None) => (i + 1.0) * SPACING,
        }
    };
    let run: Vec<f64> = (0..count).map(at).collect();
    // Every position strictly between its neighbours, told apart from them
    // by more than rounding.
    let mut bounds = Vec::with_capacity(count + 2);
    bounds.extend(low);
    bounds.extend(&run);
    bounds.extend(high);
    let distinct = bounds
        .windows(2)
        .all(|w| w[1] - w[0] > 1e-6_f64.max(w[1].abs() * 1e-12));
    Ok(if distinct { Ok(run) } else { Err(Crowded) })
}

/// Where one conversation's new messages of an archive page go.
pub(crate) struct PagePlacement {
    /// Index in the page and position, for each new message.
    pub(crate) positions: Vec<(usize, f64)>,
    /// Archive id of the page's oldest message in this conversation that
    /// is in archive order: a backfill's next page attaches below it.
    pub(crate) oldest: Option<String>,
}

/// Places the new messages of `peer`'s conversation in one archive page.
///
/// `copies` holds, per page message, its stored copy if any.
/// `backfill_edge` is, for a page paging back, the archive id of the
/// oldest message of this conversation an earlier page of the same
/// backfill brought. Messages the user wrote on this device are left out
/// entirely: they keep the place where they were written, which is not
/// where the server archived them if they waited in the outbox. Everything
/// else stored — received, live or from the archive, and our own from
/// other devices (carbons, archive) — is in archive order and anchors.
pub(crate) fn place_page(
    store: &Store,
    page: &mam::Page,
    messages: &[IncomingMessage],
    copies: &[Option<ArchiveCopy>],
    backfill_edge: Option<&str>,
    peer: &str,
) -> Result<Result<PagePlacement, Crowded>, StoreError> {
    let mut indices = Vec::new();
    let mut entries: Vec<Option<f64>> = Vec::new();
    let mut oldest = None;
    for (i, m) in messages.iter().enumerate().filter(|(_, m)| m.peer == peer) {
        match copies[i] {
            Some(copy) if copy.written_here => continue,
            Some(copy) => entries.push(Some(copy.seq)),
            None => entries.push(None),
        }
        if oldest.is_none() {
            oldest = m.stanza_id.clone();
        }
        indices.push(i);
    }
    let ahead = || store.lowest_ahead_of_archive(peer);
    let (anchor, packing) = match page {
        // Everything stored arrived before the newest page was answered:
        // it is in the page or older.
        mam::Page::Latest => (Slot::End, Packing::High),
        // Older than anything stored except what is ahead of the archive.
        mam::Page::After(_) => (ahead()?.map_or(Slot::End, Slot::Below), Packing::Low),
        mam::Page::Before(anchor) => {
            let mut above = store.archive_position(peer, anchor)?;
            if above.is_none() {
                if let Some(edge) = backfill_edge {
                    above = store.archive_position(peer, edge)?;
                }
            }
            if above.is_none() {
                above = ahead()?;
            }
            (above.map_or(Slot::End, Slot::Below), Packing::High)
        }
    };
    let positions = ConversationPositions { store, peer };
    let placed = match place(&entries, anchor, packing, &positions)? {
        Ok(placed) => placed,
        Err(crowded) => return Ok(Err(crowded)),
    };
    let new_indices = indices
        .iter()
        .zip(&entries)
        .filter(|(_, e)| e.is_none())
        .map(|(i, _)| *i);
    Ok(Ok(PagePlacement {
        positions: new_indices.zip(placed).collect(),
        oldest,
    }))
}

/// Gives each new message of an archive page its place (renumbering a
/// conversation whose gap is used up) and returns, per conversation, the
/// archive id of the page's oldest message in archive order. Stored
/// messages the page holds are no longer ahead of the archive; after a
/// newest-first page, none is.
pub(crate) fn place_archive_page(
    store: &mut Store,
    page: &mam::Page,
    messages: &mut [IncomingMessage],
    backfill_edge: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, StoreError> {
    if *page == mam::Page::Latest {
        store.settle_archive_all()?;
    }
    let copies_of = |store: &Store, messages: &[IncomingMessage]| {
        messages
            .iter()
            .map(|m| store.archive_copy(m))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut copies = copies_of(store, messages)?;
    let reached: Vec<i64> = copies
        .iter()
        .flatten()
        .filter(|c| c.ahead_of_archive)
        .map(|c| c.id)
        .collect();
    store.settle_archive(&reached)?;
    let mut peers: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for m in messages.iter() {
        if seen.insert(m.peer.as_str()) {
            peers.push(m.peer.clone());
        }
    }
    let mut oldest = Vec::new();
    for peer in peers {
        let edge = backfill_edge(&peer);
        let placed = place_page(store, page, messages, &copies, edge.as_deref(), &peer)?;
        let placement = match placed {
            Ok(placement) => placement,
            Err(Crowded) => {
                // The room between two neighbours is used up: spread the
                // conversation out and place again (1,024 apart, the room
                // is ample).
                store.renumber(&peer)?;
                copies = copies_of(store, messages)?;
                match place_page(store, page, messages, &copies, edge.as_deref(), &peer)? {
                    Ok(placement) => placement,
                    // Unreachable with positions 1,024 apart; refuse
                    // rather than store a tie.
                    Err(Crowded) => {
                        return Err(StoreError::Database(
                            "no room to place archived messages".into(),
                        ))
                    }
                }
            }
        };
        for (i, position) in placement.positions {
            messages[i].position = Position::At(position);
        }
        if let Some(id) = placement.oldest {
            oldest.push((peer, id));
        }
    }
    Ok(oldest)
}

/// [`Positions`] of one conversation in the store.
struct ConversationPositions<'a> {
    store: &'a Store,
    peer: &'a str,
}

impl Positions for ConversationPositions<'_> {
    fn below(&self, x: f64) -> Result<Option<f64>, StoreError> {
        self.store.seq_below(self.peer, x)
    }
    fn above(&self, x: f64) -> Result<Option<f64>, StoreError> {
        self.store.first_seq_above(self.peer, Some(x))
    }
    fn last(&self) -> Result<Option<f64>, StoreError> {
        self.store.last_seq(self.peer)
    }
}

#[cfg(test)]
#[path = "ordering_tests.rs"]
mod tests;
