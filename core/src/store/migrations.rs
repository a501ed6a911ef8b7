//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Each entry moves the schema one version forward inside one transaction; a
//! store written by a newer build is refused rather than guessed at.

use super::{OpenStoreError, StoreError};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: the walking skeleton.
    "CREATE TABLE account_state (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    );
    CREATE TABLE contacts (
        jid          TEXT PRIMARY KEY NOT NULL,
        name         TEXT,
        subscription TEXT NOT NULL DEFAULT 'none',
        ask          INTEGER NOT NULL DEFAULT 0,
        groups_json  TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE conversations (
        id           INTEGER PRIMARY KEY,
        peer_jid     TEXT NOT NULL UNIQUE,
        unread_count INTEGER NOT NULL DEFAULT 0,
        last_message INTEGER,
        updated_at   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX conversations_by_update ON conversations(updated_at DESC);
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        direction       INTEGER NOT NULL,   -- 0 incoming, 1 outgoing
        state           INTEGER NOT NULL,   -- see MessageState
        sender          TEXT NOT NULL,      -- full JID it came from / bare JID of ours
        body            TEXT NOT NULL,
        origin_id       TEXT,               -- XEP-0359 origin-id
        stanza_id       TEXT,               -- XEP-0359 stanza-id set by our server
        remote_id       TEXT,               -- the stanza's id attribute
        timestamp_ms    INTEGER NOT NULL
    );
    CREATE INDEX messages_history ON messages(conversation_id, timestamp_ms DESC, id DESC);
    CREATE UNIQUE INDEX messages_by_stanza_id ON messages(conversation_id, stanza_id)
        WHERE stanza_id IS NOT NULL;
    CREATE UNIQUE INDEX messages_by_origin_id ON messages(conversation_id, direction, origin_id)
        WHERE origin_id IS NOT NULL;
    CREATE TABLE outbox (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        queued_at  INTEGER NOT NULL
    );",
    // 2: find a message by its archive id alone (the MAM cursor).
    "CREATE INDEX messages_by_archive_id ON messages(stanza_id) WHERE stanza_id IS NOT NULL;",
    // 3: the order of a conversation is its own sequence, not the clocks
    // (see `Store::insert_incoming_batch`); existing rows keep their order.
    // The ranking is materialised first: a correlated UPDATE over a window
    // query can see rows it already rewrote (ties under SQLite 3.54).
    "ALTER TABLE messages ADD COLUMN seq REAL;
    CREATE TEMP TABLE seq_ranking AS
        SELECT id, row_number() OVER (PARTITION BY conversation_id ORDER BY timestamp_ms, id) AS rn
        FROM messages;
    UPDATE messages SET seq = (SELECT rn FROM seq_ranking WHERE seq_ranking.id = messages.id);
    DROP TABLE seq_ranking;
    DROP INDEX messages_history;
    CREATE INDEX messages_order ON messages(conversation_id, seq);",
    // 4: OMEMO (both versions): our device's keys, other devices with their
    // identity keys and trust, sessions, per-conversation encryption, and
    // how each message was protected.
    "CREATE TABLE omemo_own (
        id                INTEGER PRIMARY KEY CHECK (id = 1),
        device_id         INTEGER NOT NULL,
        identity_seed     BLOB NOT NULL,
        signed_pre_key_id INTEGER NOT NULL,
        next_pre_key_id   INTEGER NOT NULL
    );
    CREATE TABLE omemo_signed_pre_keys (
        id         INTEGER PRIMARY KEY,
        secret     BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE omemo_pre_keys (
        id     INTEGER PRIMARY KEY,
        secret BLOB NOT NULL
    );
    CREATE TABLE omemo_devices (
        jid              TEXT NOT NULL,
        device_id        INTEGER NOT NULL,
        listed_v03       INTEGER NOT NULL DEFAULT 0,  -- in the latest 0.3 device list
        listed_v2        INTEGER NOT NULL DEFAULT 0,  -- in the latest OMEMO 2 device list
        identity_key     BLOB,                        -- Curve25519 form, once known
        identity_ed25519 BLOB,
        trust            INTEGER NOT NULL DEFAULT 0,  -- see DeviceTrust
        first_seen_ms    INTEGER NOT NULL,
        last_message_ms  INTEGER,
        PRIMARY KEY (jid, device_id)
    );
    CREATE TABLE omemo_sessions (
        jid       TEXT NOT NULL,
        device_id INTEGER NOT NULL,
        version   INTEGER NOT NULL,                   -- 3 for 0.3, 2 for OMEMO 2
        record    BLOB NOT NULL,
        PRIMARY KEY (jid, device_id, version)
    );
    CREATE TABLE omemo_conversations (
        jid       TEXT PRIMARY KEY NOT NULL,
        encrypted INTEGER NOT NULL
    );
    ALTER TABLE messages ADD COLUMN encryption INTEGER NOT NULL DEFAULT 0;  -- 0 none, 3 OMEMO 0.3, 2 OMEMO 2
    ALTER TABLE messages ADD COLUMN sender_device INTEGER;
    ALTER TABLE messages ADD COLUMN sender_trust INTEGER;
    ALTER TABLE messages ADD COLUMN undecryptable TEXT;                     -- why, when it could not be read",
    // 5: live messages that arrived during an archive catch-up and that no
    // page has reached yet (see `Position::AppendAheadOfArchive`); which
    // messages the user wrote here (they anchor no archive page; existing
    // outgoing rows are taken as such); and positions spread out again in
    // one pass, undoing the ties an earlier renumbering could leave.
    "ALTER TABLE messages ADD COLUMN ahead_of_archive INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_ahead_of_archive ON messages(conversation_id, seq) WHERE ahead_of_archive = 1;
    ALTER TABLE messages ADD COLUMN written_here INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET written_here = 1 WHERE direction = 1;
    CREATE TEMP TABLE seq_ranking AS
        SELECT id, row_number() OVER (PARTITION BY conversation_id ORDER BY seq, id) AS rn
        FROM messages;
    UPDATE messages SET seq = (SELECT rn * 1024.0 FROM seq_ranking WHERE seq_ranking.id = messages.id);
    DROP TABLE seq_ranking;",
    // 6: every account value is JSON of its typed field (store::account):
    // plain strings are quoted, "1"/"0" flags become booleans.
    "UPDATE account_state SET value = json_quote(value)
        WHERE key IN ('resource', 'client_id', 'mam_last', 'roster_ver');
    UPDATE account_state SET value = CASE value WHEN '0' THEN 'false' ELSE 'true' END
        WHERE key IN ('sasl_no_plain', 'mam_pending', 'server_stanza_ids');",
    // 7: the duplicate check by the sender's id (messages without an
    // origin-id) looks up one conversation's rows by it: without an index
    // each such message scanned its whole conversation, quadratic in an
    // archive catch-up.
    "CREATE INDEX IF NOT EXISTS messages_by_remote_id ON messages(conversation_id, remote_id)
        WHERE remote_id IS NOT NULL;",
    // 8 (issue 13): trust belongs to an identity key, so a device whose key
    // we never learned carries none (blind trust recorded from an
    // unauthenticated message, or a verification without a key, is void);
    // sessions replaced by a newer one are kept a while (up to 40 per
    // device) so that late messages for them still decrypt; which
    // conversations have used OMEMO 2.
    "UPDATE omemo_devices SET trust = 0 WHERE identity_key IS NULL AND trust IN (1, 2);
    CREATE TABLE IF NOT EXISTS omemo_old_sessions (
        jid       TEXT NOT NULL,
        device_id INTEGER NOT NULL,
        version   INTEGER NOT NULL,
        archived  INTEGER NOT NULL,                   -- order of archiving
        record    BLOB NOT NULL,
        PRIMARY KEY (jid, device_id, version, archived)
    );
    -- a conversation that has used OMEMO 2 stays on it (see Omemo::choose_version)
    CREATE TABLE IF NOT EXISTS omemo_conversation_versions (
        jid     TEXT PRIMARY KEY NOT NULL,
        used_v2 INTEGER NOT NULL
    );",
    // 9 (issue 14): group chats. A room is a conversation of its own kind
    // whose messages say who wrote them (nick, and the real JID where the
    // room shows it); `rooms` keeps what we know of each room we use.
    "ALTER TABLE conversations ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;  -- 0 one-to-one, 1 room
    ALTER TABLE messages ADD COLUMN nick TEXT;
    ALTER TABLE messages ADD COLUMN sender_jid TEXT;
    CREATE TABLE IF NOT EXISTS rooms (
        jid      TEXT PRIMARY KEY NOT NULL,
        nick     TEXT NOT NULL,
        features TEXT NOT NULL DEFAULT '[]',   -- JSON: its disco#info features when last joined
        subject  TEXT
    );",
    // 10 (issue 14): room bookmarks (XEP-0402), kept with the room: the
    // `<conference/>` as last published (NULL: not bookmarked), so the
    // extensions other clients put there survive our edits.
    "ALTER TABLE rooms ADD COLUMN autojoin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN name TEXT;
    ALTER TABLE rooms ADD COLUMN bookmark TEXT;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &Connection) -> Result<(), OpenStoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(OpenStoreError::from_open)?;
    if current > SCHEMA_VERSION {
        return Err(OpenStoreError::TooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let apply = || -> Result<(), StoreError> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let result = conn
                .execute_batch(sql)
                .and_then(|_| conn.execute_batch(&format!("PRAGMA user_version = {version}")));
            match result {
                Ok(()) => Ok(conn.execute_batch("COMMIT")?),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            }
        };
        apply()?;
    }
    Ok(())
}
