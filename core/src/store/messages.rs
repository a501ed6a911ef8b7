//! Conversations, messages and the outbox.
//!
//! An outgoing message is written (with an outbox row) before it is sent; the
//! outbox row goes away only when the server has acknowledged it. Incoming
//! messages are deduplicated by stanza-id (set by our own server) and by
//! origin-id, so a message seen live, via carbons and again via MAM is stored
//! once.

use super::omemo::{DeviceTrust, EncryptionScheme, MessageSecurity, OmemoWrites};
use super::{AccountWrite, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// Where a message is in its life. Outgoing: queued → sent → acked (the server
/// has it) → delivered (the recipient's client confirmed it), or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Queued = 0,
    Sent = 1,
    Acked = 2,
    Delivered = 3,
    Failed = 4,
    Received = 5,
}

impl MessageState {
    fn from_i64(v: i64) -> Self {
        match v {
            0 => Self::Queued,
            1 => Self::Sent,
            2 => Self::Acked,
            3 => Self::Delivered,
            4 => Self::Failed,
            _ => Self::Received,
        }
    }
}

/// A message as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredMessage {
    /// Row id: stable, local, and the handle the app uses.
    pub id: i64,
    /// Bare JID of the other party.
    pub peer: String,
    pub direction: Direction,
    pub state: MessageState,
    pub sender: String,
    pub body: String,
    pub origin_id: Option<String>,
    pub stanza_id: Option<String>,
    pub timestamp_ms: i64,
    /// End-to-end encryption, and the sending device's trust.
    pub security: MessageSecurity,
    /// Set for a group-chat message (`peer` is then the room): who wrote it.
    pub room: Option<RoomSender>,
}

/// The writer of a group-chat message: a nick in the room and, where the
/// room shows it (non-anonymous rooms, or to moderators), the real JID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomSender {
    pub nick: String,
    pub real_jid: Option<String>,
}

/// A message from the network about to be stored: one received, or (from
/// carbons and the archive) one the account sent from another device.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// `Outgoing` for our own messages seen via carbons or MAM.
    pub direction: Direction,
    pub peer: String,
    pub sender: String,
    pub body: String,
    pub origin_id: Option<String>,
    pub stanza_id: Option<String>,
    pub remote_id: Option<String>,
    pub timestamp_ms: i64,
    /// Where it goes in its conversation.
    pub position: Position,
    pub security: MessageSecurity,
    /// Set for a group-chat message (`peer` is the room's bare JID).
    pub room: Option<RoomSender>,
}

/// Distance between neighbouring positions when a message is appended or a
/// conversation renumbered; archive pages fill the room in between.
pub const SEQ_SPACING: f64 = 1024.0;

/// Where a new message goes in its conversation's order (see the client's
/// `ordering`): live messages are appended in the order the server
/// delivers them; archive pages place theirs between the ones around them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// Appended: a live message.
    Append,
    /// Appended, and marked as newer than every archive page stored so far:
    /// a live message that arrived during an archive catch-up. Pages that
    /// do not hold it go below it; the mark goes when a page holds it or
    /// the catch-up completes.
    AppendAheadOfArchive,
    /// At this position, between its neighbours (from an archive page).
    At(f64),
}

/// A stored copy of a message that an archive page holds again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArchiveCopy {
    /// Row id.
    pub id: i64,
    pub seq: f64,
    /// The user wrote it on this device: it keeps the place where it was
    /// written, not where the server archived it (it may have waited in
    /// the outbox), so it anchors nothing.
    pub written_here: bool,
    pub ahead_of_archive: bool,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationSummary {
    pub peer: String,
    pub unread_count: u32,
    pub last_message: Option<StoredMessage>,
}

/// Where the next (older) history page starts: the oldest message of the
/// last page (its row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub id: i64,
}

const MESSAGE_COLUMNS: &str =
    "m.id, c.peer_jid, m.direction, m.state, m.sender, m.body, m.origin_id, m.stanza_id, m.timestamp_ms,
     m.encryption, m.sender_device, m.sender_trust, m.undecryptable, c.kind, m.nick, m.sender_jid";

/// `conversations.kind`: what a conversation is.
const KIND_CHAT: i64 = 0;
const KIND_ROOM: i64 = 1;

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    message_at(r, 0)
}

/// The outbox, oldest first. `CROSS JOIN` keeps the (small) outbox as the
/// outer loop: left to itself, SQLite's planner walked every stored message
/// and probed the outbox for each, reading the whole history (megabytes of
/// pages decrypted) on every connect and every wake-up.
pub(super) fn outbox_query() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM outbox o CROSS JOIN messages m ON m.id = o.message_id
         JOIN conversations c ON c.id = m.conversation_id ORDER BY o.queued_at, m.id"
    )
}

/// A message from the row's columns `base..` (in [`MESSAGE_COLUMNS`] order).
fn message_at(r: &Row<'_>, base: usize) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(base)?,
        peer: r.get(base + 1)?,
        direction: if r.get::<_, i64>(base + 2)? == 0 {
            Direction::Incoming
        } else {
            Direction::Outgoing
        },
        state: MessageState::from_i64(r.get(base + 3)?),
        sender: r.get(base + 4)?,
        body: r.get(base + 5)?,
        origin_id: r.get(base + 6)?,
        stanza_id: r.get(base + 7)?,
        timestamp_ms: r.get(base + 8)?,
        security: MessageSecurity {
            scheme: EncryptionScheme::from_i64(r.get(base + 9)?),
            sender_device: r.get(base + 10)?,
            sender_trust: r
                .get::<_, Option<i64>>(base + 11)?
                .map(DeviceTrust::from_i64),
            undecryptable: r.get(base + 12)?,
        },
        room: if r.get::<_, Option<i64>>(base + 13)? == Some(KIND_ROOM) {
            Some(RoomSender {
                nick: r.get::<_, Option<String>>(base + 14)?.unwrap_or_default(),
                real_jid: r.get(base + 15)?,
            })
        } else {
            None
        },
    })
}

impl Store {
    /// The conversation with `peer`, created as `kind` if it is new.
    fn conversation_of_kind(
        tx: &rusqlite::Connection,
        peer: &str,
        kind: i64,
    ) -> rusqlite::Result<i64> {
        tx.prepare_cached("INSERT OR IGNORE INTO conversations(peer_jid, kind) VALUES (?1, ?2)")?
            .execute(params![peer, kind])?;
        tx.prepare_cached("SELECT id FROM conversations WHERE peer_jid = ?1")?
            .query_row([peer], |r| r.get(0))
    }

    fn touch_conversation(
        tx: &rusqlite::Connection,
        conversation: i64,
        message: i64,
        timestamp_ms: i64,
        unread: bool,
    ) -> rusqlite::Result<()> {
        // An older message (from the archive) does not become the "last" one.
        tx.prepare_cached(
            "UPDATE conversations SET
                 last_message = CASE WHEN ?3 >= updated_at THEN ?2 ELSE last_message END,
                 updated_at = max(updated_at, ?3),
                 unread_count = unread_count + ?4
             WHERE id = ?1",
        )?
        .execute(params![conversation, message, timestamp_ms, unread as i64])?;
        Ok(())
    }

    /// Stores a message the user is sending, and queues it in the outbox, in one transaction.
    pub fn insert_outgoing(
        &mut self,
        peer: &str,
        sender: &str,
        body: &str,
        origin_id: &str,
        timestamp_ms: i64,
    ) -> Result<StoredMessage, StoreError> {
        self.insert_outgoing_as(peer, sender, None, body, origin_id, timestamp_ms)
    }

    /// [`Store::insert_outgoing`] for a room, written as `nick`.
    pub fn insert_outgoing_to_room(
        &mut self,
        room: &str,
        sender: &str,
        nick: &str,
        body: &str,
        origin_id: &str,
        timestamp_ms: i64,
    ) -> Result<StoredMessage, StoreError> {
        self.insert_outgoing_as(room, sender, Some(nick), body, origin_id, timestamp_ms)
    }

    fn insert_outgoing_as(
        &mut self,
        peer: &str,
        sender: &str,
        nick: Option<&str>,
        body: &str,
        origin_id: &str,
        timestamp_ms: i64,
    ) -> Result<StoredMessage, StoreError> {
        let tx = self.conn.transaction()?;
        let kind = if nick.is_some() { KIND_ROOM } else { KIND_CHAT };
        let conversation = Self::conversation_of_kind(&tx, peer, kind)?;
        tx.execute(
            "INSERT INTO messages(conversation_id, direction, state, sender, body, origin_id, remote_id, timestamp_ms, seq, written_here, nick, sender_jid)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, 1, ?8, ?9)",
            params![conversation, MessageState::Queued as i64, sender, body, origin_id, timestamp_ms,
                    Self::next_seq(&tx, conversation)?, nick, nick.map(|_| sender)],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO outbox(message_id, queued_at) VALUES (?1, ?2)",
            params![id, timestamp_ms],
        )?;
        Self::touch_conversation(&tx, conversation, id, timestamp_ms, false)?;
        tx.commit()?;
        Ok(self.message(id)?.expect("just inserted"))
    }

    /// Records how an outgoing message went out (end-to-end encryption).
    pub fn set_outgoing_encryption(
        &mut self,
        id: i64,
        scheme: EncryptionScheme,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE messages SET encryption = ?2 WHERE id = ?1")?
            .execute(params![id, scheme.to_i64()])?;
        Ok(())
    }

    /// Stores a burst of incoming messages in one transaction. Returns, in the
    /// same order, the stored message or `None` for a duplicate.
    pub fn insert_incoming_batch(
        &mut self,
        messages: &[IncomingMessage],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        self.insert_incoming_batch_with(messages, &OmemoWrites::default(), &[])
    }

    /// [`Store::insert_incoming_batch`], also writing the OMEMO session and
    /// prekey changes made by decrypting these messages and the account
    /// state that goes with them (the archive cursor), atomically.
    pub fn insert_incoming_batch_with(
        &mut self,
        messages: &[IncomingMessage],
        omemo: &OmemoWrites,
        account: &[AccountWrite],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let tx = self.conn.transaction()?;
        omemo.apply(&tx)?;
        for write in account {
            write.apply(&tx)?;
        }
        let mut stored = Vec::with_capacity(messages.len());
        for m in messages {
            let kind = if m.room.is_some() {
                KIND_ROOM
            } else {
                KIND_CHAT
            };
            let conversation = Self::conversation_of_kind(&tx, &m.peer, kind)?;
            if let Some(existing) = Self::find_duplicate(&tx, conversation, m)? {
                // Learn the archive id of a message first seen without one.
                if let Some(sid) = &m.stanza_id {
                    tx.prepare_cached(
                        "UPDATE messages SET stanza_id = ?2 WHERE id = ?1 AND stanza_id IS NULL",
                    )?
                    .execute(params![existing, sid])?;
                }
                stored.push(None);
                continue;
            }
            let incoming = m.direction == Direction::Incoming;
            // Our own message from another device: the server has it.
            let state = if incoming {
                MessageState::Received
            } else {
                MessageState::Acked
            };
            let seq = match m.position {
                Position::At(seq) => seq,
                Position::Append | Position::AppendAheadOfArchive => {
                    Self::next_seq(&tx, conversation)?
                }
            };
            let ahead = m.position == Position::AppendAheadOfArchive;
            tx.prepare_cached(
                "INSERT INTO messages(conversation_id, direction, state, sender, body, origin_id, stanza_id, remote_id, timestamp_ms, seq,
                                      encryption, sender_device, sender_trust, undecryptable, ahead_of_archive, nick, sender_jid)
                 VALUES (?1, ?9, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![conversation, state as i64, m.sender, m.body, m.origin_id, m.stanza_id, m.remote_id, m.timestamp_ms, m.direction as i64, seq,
                             m.security.scheme.to_i64(), m.security.sender_device, m.security.sender_trust.map(|t| t.to_i64()), m.security.undecryptable,
                             ahead as i64, m.room.as_ref().map(|r| &r.nick), m.room.as_ref().and_then(|r| r.real_jid.as_ref())])?;
            let id = tx.last_insert_rowid();
            Self::touch_conversation(&tx, conversation, id, m.timestamp_ms, incoming)?;
            stored.push(Some(StoredMessage {
                id,
                peer: m.peer.clone(),
                direction: m.direction,
                state,
                sender: m.sender.clone(),
                body: m.body.clone(),
                origin_id: m.origin_id.clone(),
                stanza_id: m.stanza_id.clone(),
                timestamp_ms: m.timestamp_ms,
                security: m.security.clone(),
                room: m.room.clone(),
            }));
        }
        tx.commit()?;
        Ok(stored)
    }

    /// The row already holding `m`, if any: the same server stanza-id, or
    /// the same origin-id in the same direction, or (for clients that set
    /// neither) the same id attribute from the same sender. One indexed
    /// lookup each, rather than one query with ORs the planner cannot index.
    fn find_duplicate(
        tx: &rusqlite::Connection,
        conversation: i64,
        m: &IncomingMessage,
    ) -> rusqlite::Result<Option<i64>> {
        if let Some(sid) = &m.stanza_id {
            let found = tx
                .prepare_cached(
                    "SELECT id FROM messages WHERE conversation_id = ?1 AND stanza_id = ?2",
                )?
                .query_row(params![conversation, sid], |r| r.get(0))
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        if let Some(oid) = &m.origin_id {
            return tx
                .prepare_cached(
                    "SELECT id FROM messages
                     WHERE conversation_id = ?1 AND direction = ?2 AND origin_id = ?3",
                )?
                .query_row(params![conversation, m.direction as i64, oid], |r| r.get(0))
                .optional();
        }
        // Without an origin-id, the sender's id is all a live copy (a
        // carbon of our message from another device, a message from a
        // client without XEP-0359) shares with its archive copy: the same
        // id from the same sender, stored without an archive id yet.
        let Some(remote_id) = &m.remote_id else {
            return Ok(None);
        };
        let sql = if m.stanza_id.is_some() {
            "SELECT id FROM messages WHERE conversation_id = ?1 AND direction = ?2
               AND remote_id = ?3 AND sender = ?4 AND stanza_id IS NULL"
        } else {
            "SELECT id FROM messages WHERE conversation_id = ?1 AND direction = ?2
               AND remote_id = ?3 AND sender = ?4"
        };
        tx.prepare_cached(sql)?
            .query_row(
                params![conversation, m.direction as i64, remote_id, m.sender],
                |r| r.get(0),
            )
            .optional()
    }

    /// Appends: one past the conversation's last position.
    fn next_seq(tx: &rusqlite::Connection, conversation: i64) -> rusqlite::Result<f64> {
        tx.prepare_cached(
            "SELECT coalesce(max(seq), 0) + ?2 FROM messages WHERE conversation_id = ?1",
        )?
        .query_row(params![conversation, SEQ_SPACING], |r| r.get(0))
    }

    /// The stored copy of `m` (a message of an archive page) in its
    /// conversation: the same archive id, or else the same origin-id in the
    /// same direction (a live copy or a carbon may have come without one).
    pub fn archive_copy(&self, m: &IncomingMessage) -> Result<Option<ArchiveCopy>, StoreError> {
        const COPY: &str = "SELECT m.id, m.seq, m.written_here, m.ahead_of_archive
             FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.peer_jid = ?1";
        let row = |r: &Row<'_>| {
            Ok(ArchiveCopy {
                id: r.get(0)?,
                seq: r.get(1)?,
                written_here: r.get(2)?,
                ahead_of_archive: r.get(3)?,
            })
        };
        if let Some(sid) = &m.stanza_id {
            let found = self
                .conn
                .prepare_cached(&format!("{COPY} AND m.stanza_id = ?2"))?
                .query_row(params![m.peer, sid], row)
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        let Some(oid) = &m.origin_id else {
            return Ok(None);
        };
        Ok(self
            .conn
            .prepare_cached(&format!("{COPY} AND m.direction = ?2 AND m.origin_id = ?3"))?
            .query_row(params![m.peer, m.direction as i64, oid], row)
            .optional()?)
    }

    /// Position of the message `peer`'s conversation holds as archive id
    /// `stanza_id`, if it is in archive order (not one the user wrote
    /// here, which keeps the place where it was written).
    pub fn archive_position(&self, peer: &str, stanza_id: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.stanza_id = ?2 AND m.written_here = 0",
            )?
            .query_row([peer, stanza_id], |r| r.get(0))
            .optional()?)
    }

    /// The greatest position in the conversation with `peer` below `x`.
    pub fn seq_below(&self, peer: &str, x: f64) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT max(m.seq) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.seq < ?2",
            )?
            .query_row(params![peer, x], |r| r.get(0))?)
    }

    /// The greatest position in the conversation with `peer`.
    pub fn last_seq(&self, peer: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT max(m.seq) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1",
            )?
            .query_row([peer], |r| r.get(0))?)
    }

    /// The lowest position in the conversation with `peer` of a message
    /// still ahead of the archive (see [`Position::AppendAheadOfArchive`]).
    pub fn lowest_ahead_of_archive(&self, peer: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(m.seq) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.ahead_of_archive = 1",
            )?
            .query_row([peer], |r| r.get(0))?)
    }

    /// These messages (row ids) have been reached by an archive page: no
    /// longer ahead of it.
    pub fn settle_archive(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut settle =
                tx.prepare_cached("UPDATE messages SET ahead_of_archive = 0 WHERE id = ?1")?;
            for id in ids {
                settle.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// No message is ahead of the archive any more: a catch-up reached its
    /// end, or a newest page was answered after all of them arrived.
    pub fn settle_archive_all(&mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE messages SET ahead_of_archive = 0 WHERE ahead_of_archive = 1")?
            .execute([])?;
        Ok(())
    }

    /// Spreads the positions of a conversation out again (same order, a
    /// gap of 1,024 between neighbours) when placing has used up the room
    /// between two of them. The order is read first and then written, so
    /// no row's new position depends on another's already rewritten one.
    pub fn renumber(&mut self, peer: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
                     WHERE c.peer_jid = ?1 ORDER BY m.seq, m.id",
                )?
                .query_map([peer], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut update = tx.prepare_cached("UPDATE messages SET seq = ?2 WHERE id = ?1")?;
            for (rank, id) in ids.iter().enumerate() {
                update.execute(params![id, (rank as f64 + 1.0) * SEQ_SPACING])?;
            }
            let ties: i64 = tx
                .prepare_cached(
                    "SELECT count(*) - count(DISTINCT m.seq) FROM messages m
                     JOIN conversations c ON c.id = m.conversation_id WHERE c.peer_jid = ?1",
                )?
                .query_row([peer], |r| r.get(0))?;
            if ties != 0 {
                // Rolled back: the old positions stay.
                return Err(StoreError::Database(format!(
                    "renumbering left {ties} tied positions"
                )));
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Position of a message by row id.
    pub fn seq_of(&self, id: i64) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT seq FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// The first position in the conversation with `peer` that is above
    /// `after` (or the first one at all).
    pub fn first_seq_above(
        &self,
        peer: &str,
        after: Option<f64>,
    ) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(m.seq) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND (?2 IS NULL OR m.seq > ?2)",
            )?
            .query_row(params![peer, after], |r| r.get(0))?)
    }

    /// One message by row id.
    pub fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?1"),
                [id],
                message_from_row,
            )
            .optional()?)
    }

    /// Moves an outgoing message forward in its life; never backwards (a late
    /// ack must not undo "delivered"). Returns the message if it changed.
    pub fn advance_outgoing(
        &mut self,
        id: i64,
        state: MessageState,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let changed = self.conn.execute(
            "UPDATE messages SET state = ?2 WHERE id = ?1 AND direction = 1 AND state < ?2",
            params![id, state as i64],
        )?;
        if matches!(
            state,
            MessageState::Acked | MessageState::Delivered | MessageState::Failed
        ) {
            self.conn
                .execute("DELETE FROM outbox WHERE message_id = ?1", [id])?;
        }
        if changed == 0 {
            return Ok(None);
        }
        self.message(id)
    }

    /// Finds our outgoing message to `peer` by the id the recipient echoes in a receipt.
    pub fn outgoing_by_origin_id(
        &self,
        peer: &str,
        origin_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.peer_jid = ?1 AND m.direction = 1 AND m.origin_id = ?2",
                [peer, origin_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Messages waiting to be sent (or re-sent), oldest first.
    pub fn outbox(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let mut stmt = self.conn.prepare(&outbox_query())?;
        let rows = stmt.query_map([], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of a conversation's history, newest first, older than `before`.
    pub fn history(
        &self,
        peer: &str,
        before: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let before = before.map(|c| c.id);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.peer_jid = ?1
               AND (?2 IS NULL OR (m.seq, m.id) < (SELECT seq, id FROM messages WHERE id = ?2))
             ORDER BY m.seq DESC, m.id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![peer, before, limit], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// All conversations, most recently active first, with their last message.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT c.peer_jid, c.unread_count, {MESSAGE_COLUMNS}
             FROM conversations c LEFT JOIN messages m ON m.id = c.last_message
             ORDER BY c.updated_at DESC, c.id DESC"
        ))?;
        let rows = stmt.query_map([], |r| {
            let peer: String = r.get(0)?;
            let unread: i64 = r.get(1)?;
            let has_last: Option<i64> = r.get(2)?;
            let last_message = match has_last {
                Some(_) => {
                    let mut m = message_at(r, 2)?;
                    m.peer.clone_from(&peer);
                    Some(m)
                }
                None => None,
            };
            Ok(ConversationSummary {
                peer,
                unread_count: unread as u32,
                last_message,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The user has read the conversation.
    pub fn mark_read(&self, peer: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE conversations SET unread_count = 0 WHERE peer_jid = ?1",
            [peer],
        )?;
        Ok(())
    }
}
