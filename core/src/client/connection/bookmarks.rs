//! The account's room bookmarks on a running connection (XEP-0402): fetched
//! on every fresh session and followed through notifications, written to
//! the store, and turned into joins and leaves (§4: `autojoin` true joins,
//! false or a retraction leaves). The rooms part does the joining, through
//! its bounded queue.

use jid::BareJid;
use minidom::Element;

use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::client::random_id;
use crate::features::bookmarks::{self, Bookmark, BookmarkEvent};

/// What the bookmarks ask of the rooms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RoomAction {
    Join { room: BareJid, nick: String },
    Leave(BareJid),
}

#[derive(Default)]
pub(crate) struct Bookmarks {
    /// The id of the fetch in flight.
    fetching: Option<String>,
    /// This process has fetched them: a resumed session keeps its rooms.
    fetched: bool,
}

impl Bookmarks {
    /// Online: a fresh session, or the first session of this process (a
    /// resumed one too: the process that joined the rooms is gone, and a
    /// sleeping phone's rooms dropped it), asks for every bookmark.
    pub fn on_online(&mut self, resumed: bool) -> Option<Element> {
        if resumed && self.fetched {
            return None;
        }
        self.fetched = true;
        let id = random_id();
        let fetch = bookmarks::fetch(&id);
        self.fetching = Some(id);
        Some(fetch)
    }

    /// The answer to our fetch: the store now holds exactly these
    /// bookmarks, and the autojoin ones are joined. `None`: not ours.
    pub fn on_iq(&mut self, shared: &Shared, iq: &Element) -> Option<Vec<RoomAction>> {
        if self.fetching.is_none() || iq.attr("id") != self.fetching.as_deref() {
            return None;
        }
        self.fetching = None;
        let Some(list) = bookmarks::parse_items(iq) else {
            tracing::info!("the server gave no bookmarks");
            return Some(Vec::new());
        };
        let kept: Vec<String> = list.iter().map(|b| b.room.to_string()).collect();
        let stored = shared.store().bookmarks();
        match stored {
            Ok(stored) => {
                for gone in stored.iter().filter(|b| !kept.contains(&b.room)) {
                    if let Err(err) = shared.store().remove_bookmark(&gone.room) {
                        tracing::warn!(error = %err, "cannot forget a removed bookmark");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the bookmarks"),
        }
        let actions = list
            .iter()
            .filter_map(|b| record(shared, b))
            .filter(|a| matches!(a, RoomAction::Join { .. }))
            .collect();
        shared.emit(ClientEvent::BookmarksChanged);
        Some(actions)
    }

    /// A notification about our bookmarks (another device of ours, or our
    /// own publish): `None` if the message is not one.
    pub fn on_message(&mut self, shared: &Shared, message: &Element) -> Option<Vec<RoomAction>> {
        let event = bookmarks::parse_event(message, &shared.own)?;
        let actions = match event {
            BookmarkEvent::Published(list) => {
                list.iter().filter_map(|b| record(shared, b)).collect()
            }
            BookmarkEvent::Retracted(rooms) => rooms
                .into_iter()
                .map(|room| {
                    if let Err(err) = shared.store().remove_bookmark(room.as_str()) {
                        tracing::warn!(error = %err, "cannot forget a removed bookmark");
                    }
                    RoomAction::Leave(room)
                })
                .collect(),
        };
        shared.emit(ClientEvent::BookmarksChanged);
        Some(actions)
    }
}

/// Stores one bookmark; what it asks of the rooms.
fn record(shared: &Shared, bookmark: &Bookmark) -> Option<RoomAction> {
    let nick = bookmark
        .nick()
        .or_else(|| shared.own.node().map(|n| n.to_string()))
        .unwrap_or_else(|| "me".into());
    let element: Element = bookmark.conference.clone().into();
    let xml = String::from_utf8(crate::xml::to_bytes(&element)).unwrap_or_default();
    let stored = shared.store().set_bookmark(
        bookmark.room.as_str(),
        &nick,
        bookmark.conference.name.as_deref(),
        bookmark.conference.autojoin,
        &xml,
    );
    if let Err(err) = stored {
        tracing::warn!(error = %err, "cannot store a bookmark");
    }
    Some(if bookmark.conference.autojoin {
        RoomAction::Join {
            room: bookmark.room.clone(),
            nick,
        }
    } else {
        RoomAction::Leave(bookmark.room.clone())
    })
}
