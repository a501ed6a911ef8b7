//! What the store keeps of the group chats we use (XEP-0045): our nick in
//! each room, the room's features as its disco#info last listed them, its
//! subject, and where its archive catch-up resumes.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// A bookmarked room (XEP-0402).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomBookmark {
    pub room: String,
    pub name: Option<String>,
    /// Our nick in the room, as bookmarked or last joined.
    pub nick: String,
    pub autojoin: bool,
}

/// A room as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub jid: String,
    pub nick: String,
    pub features: BTreeSet<String>,
    pub subject: Option<String>,
}

impl Store {
    /// Records that we joined `room` as `nick`, with these features.
    pub fn save_room(
        &self,
        room: &str,
        nick: &str,
        features: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let features = serde_json::to_string(features).unwrap_or_else(|_| "[]".into());
        self.conn
            .prepare_cached(
                "INSERT INTO rooms(jid, nick, features) VALUES (?1, ?2, ?3)
                 ON CONFLICT(jid) DO UPDATE SET nick = ?2, features = ?3",
            )?
            .execute(params![room, nick, features])?;
        Ok(())
    }

    pub fn room(&self, room: &str) -> Result<Option<StoredRoom>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT jid, nick, features, subject FROM rooms WHERE jid = ?1")?
            .query_row([room], |r| {
                let features: String = r.get(2)?;
                Ok(StoredRoom {
                    jid: r.get(0)?,
                    nick: r.get(1)?,
                    features: serde_json::from_str(&features).unwrap_or_default(),
                    subject: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Records a bookmark: `conference` is the `<conference/>` element as
    /// published (kept whole for the extensions in it).
    pub fn set_bookmark(
        &self,
        room: &str,
        nick: &str,
        name: Option<&str>,
        autojoin: bool,
        conference: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO rooms(jid, nick, name, autojoin, bookmark) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(jid) DO UPDATE SET nick = ?2, name = ?3, autojoin = ?4, bookmark = ?5",
            )?
            .execute(params![room, nick, name, autojoin, conference])?;
        Ok(())
    }

    pub fn remove_bookmark(&self, room: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE rooms SET bookmark = NULL, autojoin = 0 WHERE jid = ?1")?
            .execute([room])?;
        Ok(())
    }

    /// Every bookmark, by room JID.
    pub fn bookmarks(&self) -> Result<Vec<RoomBookmark>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT jid, name, nick, autojoin FROM rooms WHERE bookmark IS NOT NULL ORDER BY jid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RoomBookmark {
                room: r.get(0)?,
                name: r.get(1)?,
                nick: r.get(2)?,
                autojoin: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `<conference/>` of a bookmark, as stored.
    pub fn bookmark_element(&self, room: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT bookmark FROM rooms WHERE jid = ?1")?
            .query_row([room], |r| r.get(0))
            .optional()?
            .flatten())
    }

    pub fn set_room_subject(&self, room: &str, subject: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE rooms SET subject = ?2 WHERE jid = ?1")?
            .execute(params![room, subject])?;
        Ok(())
    }

    /// The room's archive id of the newest message we have from it: where
    /// its catch-up resumes (XEP-0313 `after`).
    pub fn last_room_archive_id(&self, room: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT m.stanza_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.stanza_id IS NOT NULL
                 ORDER BY m.seq DESC, m.id DESC LIMIT 1",
            )?
            .query_row([room], |r| r.get(0))
            .optional()?)
    }

    /// When the newest message we received in a conversation was sent (by
    /// the room's clock, for delayed history): where a room without an
    /// archive replays history from (`since`). Our own messages are left
    /// out: one waiting in the outbox says nothing about what we missed.
    pub fn last_message_ms(&self, peer: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT max(m.timestamp_ms) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.direction = 0",
            )?
            .query_row([peer], |r| r.get(0))?)
    }
}
