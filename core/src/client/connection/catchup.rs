//! The XEP-0313 archive catch-up: forward from the newest archive id the
//! store has, or, for a new installation, back from the newest message
//! (bounded); one page in flight, each page stored in one transaction;
//! live messages arriving meanwhile are stored at once but told only after
//! the archive, so the app sees history in order. Failures leave the
//! catch-up pending for the next connection; an expired cursor pages back
//! from the newest message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use minidom::Element;

use crate::client::connection::account::AccountState;
use crate::client::connection::inbound::decrypt_batch;
use crate::client::connection::shared::Shared;
use crate::client::omemo::Omemo;
use crate::client::{ordering, random_id};
use crate::features::mam;
use crate::ns::NS_CLIENT;
use crate::store::{AccountWrite, IncomingMessage, StoredMessage};

/// How much history a new installation fetches before it only moves
/// forward (older messages stay on the server).
const INITIAL_HISTORY_LIMIT: u32 = 5_000;
/// Results per archive page (servers may cap it lower).
pub(crate) const MAM_PAGE: u32 = 100;
/// Results kept per archive page: what we asked for, with room for servers
/// that count differently.
pub(crate) const MAX_PAGE_RESULTS: usize = 2 * MAM_PAGE as usize;
/// How long one archive page may take to arrive.
const ARCHIVE_PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages per catch-up (200,000 messages at most), after which the rest waits
/// for the next connection.
const MAX_CATCHUP_PAGES: u32 = 2_000;

/// Live messages whose events wait for the archive, at most: past this, a
/// catch-up that crawls while messages pour in tells them at once (they
/// are stored, in order; only the events come before the older history).
pub(crate) const MAX_HELD_EVENTS: usize = 1_000;

/// Progress of a new installation's first sync.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Backfill {
    /// The newest archive id when the sync began: forward catch-ups start
    /// there once the backfill is done.
    newest: String,
    /// The oldest archive id fetched so far.
    before: String,
    fetched: u32,
    /// Per conversation, the archive id of the oldest received message
    /// fetched so far: pages are contiguous in the archive, so a page
    /// holding nothing stored attaches right below it.
    #[serde(default)]
    edges: HashMap<String, String>,
}

/// The page in flight.
struct InFlight {
    iq_id: String,
    query_id: String,
    page: mam::Page,
    /// Results of the current page, in archive order.
    archived: Vec<(IncomingMessage, Option<Element>)>,
    /// Live messages that arrived meanwhile, already stored (the stream's
    /// acknowledgement counts them, so they must be on disk at the end of
    /// the turn); only their events wait.
    held_events: Vec<StoredMessage>,
    /// A new installation's backfill, while it pages back.
    backfill: Option<Backfill>,
    /// Pages asked for in this catch-up so far (bounded: a server could
    /// hand out new cursors forever).
    pages: u32,
    /// When the server must have answered the current page.
    deadline: Instant,
}

#[derive(Default)]
pub(crate) struct CatchUp {
    in_flight: Option<InFlight>,
    /// A catch-up is unfinished (the store's marker, read when a connection
    /// comes online and kept in step with every write of it).
    pending: bool,
}

/// What the end of an archive page leads to.
#[derive(Debug, Default)]
pub(crate) struct PageEnd {
    /// The page's new messages, to tell the app (in order).
    pub stored: Vec<StoredMessage>,
    /// The page was committed (OMEMO's writes with it).
    pub committed: bool,
    /// What OMEMO wants sent after decrypting the page.
    pub omemo_stanzas: Vec<Element>,
    /// The query for the next page, if the catch-up goes on.
    pub next_query: Option<Element>,
    /// The catch-up ended (done, or left for the next connection): the
    /// held-back live messages to tell now, then "caught up".
    pub released: Option<Vec<StoredMessage>>,
}

impl CatchUp {
    /// Reads the store's marker when a connection comes online; unreadable
    /// counts as pending: marking live messages ahead of the archive is
    /// always safe, skipping a gap is not.
    pub fn on_online(&mut self, shared: &Shared) {
        let marker = shared.store().get(AccountState::CATCHUP_PENDING);
        self.pending = marker.map_or(true, |v| v.is_some());
    }

    /// An earlier catch-up did not finish.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Live messages now are newer than the pages still to come.
    pub fn live_is_ahead_of_archive(&self) -> bool {
        self.in_flight.is_some() || self.pending
    }

    /// The answer to this IQ ends the current page.
    pub fn owns_iq(&self, id: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|c| c.iq_id == id)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|c| c.deadline)
    }

    /// Starts (or continues) the catch-up; returns the query to send.
    pub fn start(
        &mut self,
        shared: &Shared,
        now: Instant,
        held_events: Vec<StoredMessage>,
        pages: u32,
    ) -> Element {
        let (last, backfill) = {
            let store = shared.store();
            // If this write fails, the next connection does not know the
            // catch-up was cut short; it starts one anyway when fresh.
            let _ = store.put(AccountState::CATCHUP_PENDING, Some(&true));
            (
                store.get(AccountState::ARCHIVE_CURSOR).ok().flatten(),
                store.get(AccountState::BACKFILL).ok().flatten(),
            )
        };
        self.pending = true;
        let page = match (last, &backfill) {
            (Some(id), _) => mam::Page::After(id),
            (None, Some(backfill)) => mam::Page::Before(backfill.before.clone()),
            (None, None) => mam::Page::Latest,
        };
        let (iq_id, query_id) = (random_id(), random_id());
        let query = mam::query(&iq_id, &query_id, &page, MAM_PAGE);
        self.in_flight = Some(InFlight {
            iq_id,
            query_id,
            page,
            archived: Vec::new(),
            held_events,
            backfill,
            pages: pages + 1,
            deadline: now + ARCHIVE_PAGE_TIMEOUT,
        });
        query
    }

    /// A result for query `query_id`; false when it is not ours (dropped).
    pub fn add_result(
        &mut self,
        query_id: &str,
        message: IncomingMessage,
        encrypted: Option<Element>,
    ) -> bool {
        let Some(c) = self.in_flight.as_mut().filter(|c| c.query_id == query_id) else {
            return false;
        };
        // We asked for MAM_PAGE; a server sending far more must not grow
        // our memory without end.
        if c.archived.len() < MAX_PAGE_RESULTS {
            c.archived.push((message, encrypted));
        } else if c.archived.len() == MAX_PAGE_RESULTS {
            tracing::warn!("dropping archive results beyond the page size we asked for");
        }
        true
    }

    /// Holds a stored live message's event until the catch-up ends; gives
    /// back what to tell now: nothing while held, the message itself when
    /// no catch-up runs, everything held once [`MAX_HELD_EVENTS`] are.
    pub fn hold(&mut self, message: StoredMessage) -> Vec<StoredMessage> {
        let Some(c) = &mut self.in_flight else {
            return vec![message];
        };
        c.held_events.push(message);
        if c.held_events.len() < MAX_HELD_EVENTS {
            return Vec::new();
        }
        tracing::info!("the archive is slow; telling held-back live messages now");
        std::mem::take(&mut c.held_events)
    }

    /// The cursor write that goes with live messages carrying archive id
    /// `newest`: the next catch-up starts after it — unless a catch-up is
    /// unfinished, whose gap the cursor must not skip.
    pub fn live_cursor(&self, newest: Option<&String>) -> Option<AccountWrite> {
        if self.live_is_ahead_of_archive() {
            return None;
        }
        newest.map(|last| AccountState::ARCHIVE_CURSOR.write(Some(last)))
    }

    /// The current page did not come in time: the catch-up ends as if the
    /// query had failed (it stays pending for the next connection), so live
    /// messages are not held back behind a silent server. Returns the held
    /// events to release.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Vec<StoredMessage>> {
        if self.deadline().is_none_or(|at| at > now) {
            return None;
        }
        let catchup = self.in_flight.take()?;
        tracing::warn!("an archive page did not come in time; trying again on the next connection");
        Some(catchup.held_events)
    }

    /// The connection dropped: the held events are told (the messages are
    /// stored); the next catch-up resumes from the cursor, which only moves
    /// when a page completes.
    pub fn on_disconnected(&mut self) -> Vec<StoredMessage> {
        self.in_flight
            .take()
            .map(|c| c.held_events)
            .unwrap_or_default()
    }

    /// The answer to the current page's query: store the page, the cursor
    /// and the marker in one transaction, and say what comes next.
    pub fn on_page_end(
        &mut self,
        shared: &Shared,
        mut omemo: Option<&mut Omemo>,
        now: Instant,
        iq: &Element,
    ) -> PageEnd {
        let Some(mut catchup) = self.in_flight.take() else {
            return PageEnd::default();
        };
        let page: Vec<_> = std::mem::take(&mut catchup.archived)
            .into_iter()
            .map(|(m, e)| (m, e, ()))
            .collect();
        let count = page.len() as u32;
        let (archived, omemo_stanzas) = decrypt_batch(shared, omemo.as_deref_mut(), page);
        let mut archived: Vec<IncomingMessage> = archived.into_iter().map(|(m, ())| m).collect();
        let omemo_writes = omemo.map(Omemo::take_writes).unwrap_or_default();
        let fin = (iq.attr("type") == Some("result"))
            .then(|| mam::parse_fin(iq))
            .flatten();
        let mut store = shared.store();
        let placed = {
            let edges = catchup.backfill.as_ref().map(|b| &b.edges);
            ordering::place_archive_page(&mut store, &catchup.page, &mut archived, |peer| {
                edges.and_then(|e| e.get(peer).cloned())
            })
        };
        let stored = placed.and_then(|oldest| {
            let next = next_step(&mut catchup, fin.as_ref(), iq, count, oldest);
            let stored =
                store.insert_incoming_batch_with(&archived, &omemo_writes, &next.writes)?;
            Ok((next, stored))
        });
        let mut end = PageEnd::default();
        let next = match stored {
            Ok((next, stored)) => {
                end.committed = true;
                end.omemo_stanzas = omemo_stanzas;
                end.stored = stored.into_iter().flatten().collect();
                next
            }
            Err(err) => {
                // Not stored: the cursor stays, the marker too, and the
                // next session fetches this page again.
                tracing::error!(error = %err, "cannot store archived messages");
                end.stored = catchup.held_events;
                return end;
            }
        };
        if next.settle {
            // Every live message that arrived before this answer was
            // archived before it, so a page has held it.
            if let Err(err) = store.settle_archive_all() {
                tracing::warn!(%err, "cannot settle live messages");
            }
        }
        drop(store);
        match next.step {
            Step::More => {
                end.next_query = Some(self.start(shared, now, catchup.held_events, catchup.pages));
            }
            Step::Done => {
                self.pending = false;
                end.released = Some(catchup.held_events);
            }
            Step::Later => end.released = Some(catchup.held_events),
        }
        end
    }
}

/// What a page leads to.
enum Step {
    /// Ask for the next page.
    More,
    /// The catch-up is complete.
    Done,
    /// It ends here and stays pending for the next connection.
    Later,
}

/// A page's outcome and the account writes that go with it.
struct Next {
    step: Step,
    /// Written in the page's transaction.
    writes: Vec<AccountWrite>,
    /// Live messages stored meanwhile are now in place.
    settle: bool,
}

/// Decides, from the page's `<fin/>` (or error), what comes next.
fn next_step(
    catchup: &mut InFlight,
    fin: Option<&mam::Fin>,
    iq: &Element,
    count: u32,
    oldest: Vec<(String, String)>,
) -> Next {
    let cursor = |fin: &mam::Fin| {
        fin.last
            .as_ref()
            .map(|last| AccountState::ARCHIVE_CURSOR.write(Some(last)))
    };
    let done = AccountState::CATCHUP_PENDING.write(None);
    match (fin, &catchup.page) {
        (Some(fin), mam::Page::After(current))
            if !fin.complete
                && (fin.last.as_ref() == Some(current) || catchup.pages >= MAX_CATCHUP_PAGES) =>
        {
            // A page that does not move the cursor (or no end in sight):
            // asking again would loop. Like a failed query.
            tracing::warn!(
                pages = catchup.pages,
                "the archive does not advance; trying again on the next connection"
            );
            Next {
                step: Step::Later,
                writes: cursor(fin).into_iter().collect(),
                settle: false,
            }
        }
        (Some(fin), mam::Page::After(_)) => {
            let more = !fin.complete && fin.last.is_some();
            let mut writes: Vec<_> = cursor(fin).into_iter().collect();
            if !more {
                writes.push(done);
            }
            Next {
                step: if more { Step::More } else { Step::Done },
                writes,
                settle: !more,
            }
        }
        (Some(fin), mam::Page::Latest | mam::Page::Before(_)) => {
            let previous = catchup.backfill.take();
            match advance_backfill(previous, fin, count, oldest) {
                Some(writes) => Next {
                    step: Step::More,
                    writes,
                    settle: false,
                },
                // An empty archive: nothing to anchor on yet.
                None => Next {
                    step: Step::Done,
                    writes: vec![done],
                    settle: false,
                },
            }
        }
        (None, mam::Page::After(_)) if error_condition(iq) == "item-not-found" => {
            // XEP-0313 §4.3: the cursor is no longer in the archive
            // (expired). Page back from the newest message instead, which
            // fills the gap as far as a new installation would.
            tracing::warn!("the archive cursor expired; paging back from the newest message");
            Next {
                step: Step::More,
                writes: vec![
                    AccountState::ARCHIVE_CURSOR.write(None),
                    AccountState::BACKFILL.write(None),
                ],
                settle: false,
            }
        }
        (None, _) => {
            // The catch-up stays pending: live messages keep being marked
            // ahead of the archive and do not move the cursor past the gap;
            // the next connection tries again.
            tracing::warn!("the archive query failed; trying again on the next connection");
            Next {
                step: Step::Later,
                writes: Vec::new(),
                settle: false,
            }
        }
    }
}

/// Records a backfill page (and, per conversation, the archive id of its
/// oldest received message): the writes that go on (further back, or
/// forward from the newest id once the backfill is done); `None` for an
/// empty archive.
fn advance_backfill(
    previous: Option<Backfill>,
    fin: &mam::Fin,
    count: u32,
    oldest: Vec<(String, String)>,
) -> Option<Vec<AccountWrite>> {
    let newest = previous
        .as_ref()
        .map(|b| b.newest.clone())
        .or_else(|| fin.last.clone())?;
    let (fetched, mut edges) = previous.map_or((0, HashMap::new()), |b| (b.fetched, b.edges));
    let fetched = fetched + count;
    edges.extend(oldest);
    let done = fin.complete || fin.first.is_none() || fetched >= INITIAL_HISTORY_LIMIT;
    if done {
        return Some(vec![
            AccountState::ARCHIVE_CURSOR.write(Some(&newest)),
            AccountState::BACKFILL.write(None),
        ]);
    }
    let backfill = Backfill {
        newest,
        before: fin.first.clone().unwrap_or_default(),
        fetched,
        edges,
    };
    Some(vec![AccountState::BACKFILL.write(Some(&backfill))])
}

/// The defined condition of an error IQ (`undefined-condition` if none).
pub(crate) fn error_condition(iq: &Element) -> String {
    iq.get_child("error", NS_CLIENT)
        .map(crate::proto::stream_features::error_condition)
        .unwrap_or_else(|| "undefined-condition".to_owned())
}
