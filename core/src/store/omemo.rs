//! OMEMO state in the store: our device (identity seed, signed prekeys,
//! one-time prekeys), the devices of contacts and of our own account with
//! their identity keys and trust decisions, Double Ratchet sessions (opaque
//! records from the crypto engine), and per-conversation encryption.
//!
//! Everything here is secret or trust-bearing, which is why it lives in the
//! SQLCipher database and nowhere else.

use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use super::{Store, StoreError};

/// How a message was protected end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum EncryptionScheme {
    /// Plain text (TLS to the server only).
    #[default]
    #[serde(rename = "none")]
    None,
    /// OMEMO 0.3 (`eu.siacs.conversations.axolotl`).
    #[serde(rename = "omemo0.3")]
    Omemo03,
    /// OMEMO 2 (`urn:xmpp:omemo:2`).
    #[serde(rename = "omemo2")]
    Omemo2,
}

impl EncryptionScheme {
    pub(crate) fn to_i64(self) -> i64 {
        match self {
            Self::None => 0,
            Self::Omemo03 => 3,
            Self::Omemo2 => 2,
        }
    }

    pub(crate) fn from_i64(value: i64) -> Self {
        match value {
            3 => Self::Omemo03,
            2 => Self::Omemo2,
            _ => Self::None,
        }
    }

    /// The name used by APIs and the command line.
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Omemo03 => "omemo0.3",
            Self::Omemo2 => "omemo2",
        }
    }
}

/// What the user decided (or we assumed) about a device's identity key.
/// Trust is decided when the key is learned and stays bound to it: a
/// device whose key is unknown is `Undecided`, and a device never changes
/// its key (another key under the same id is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceTrust {
    /// No decision: the key is not known yet, or it is a new device of a
    /// contact whose devices the user has verified (or the account trusts
    /// nothing blindly). Messages are not encrypted to it meanwhile.
    Undecided,
    /// Trusted without verification (Blind Trust Before Verification).
    BlindlyTrusted,
    /// The user compared fingerprints.
    Verified,
    /// The user refused this device.
    Distrusted,
}

impl DeviceTrust {
    pub(crate) fn to_i64(self) -> i64 {
        match self {
            Self::Undecided => 0,
            Self::BlindlyTrusted => 1,
            Self::Verified => 2,
            Self::Distrusted => 3,
        }
    }

    pub(crate) fn from_i64(value: i64) -> Self {
        match value {
            1 => Self::BlindlyTrusted,
            2 => Self::Verified,
            3 => Self::Distrusted,
            _ => Self::Undecided,
        }
    }

    /// Whether messages are encrypted to (and shown as trusted from) it.
    pub fn is_trusted(self) -> bool {
        matches!(self, Self::BlindlyTrusted | Self::Verified)
    }

    /// The name used by APIs and the command line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Undecided => "undecided",
            Self::BlindlyTrusted => "blindly_trusted",
            Self::Verified => "verified",
            Self::Distrusted => "distrusted",
        }
    }

    /// Reads a label (see [`DeviceTrust::label`]; `blind` also works).
    pub fn from_label(label: &str) -> Option<Self> {
        Some(match label {
            "undecided" => Self::Undecided,
            "blind" | "blindly_trusted" => Self::BlindlyTrusted,
            "verified" => Self::Verified,
            "distrusted" => Self::Distrusted,
            _ => return None,
        })
    }
}

/// How the account treats devices whose keys the user has not verified:
/// a choice the app offers in its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TrustPolicy {
    /// Blind Trust Before Verification: a new key is trusted until the user
    /// verifies one of that JID's devices; after that, new keys wait for a
    /// decision.
    #[default]
    #[serde(rename = "blind")]
    BlindTrustBeforeVerification,
    /// Nothing is trusted blindly: every new key waits for the user, and a
    /// conversation never silently gains a recipient.
    #[serde(rename = "manual")]
    Manual,
}

/// A conversation's end-to-end encryption setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationEncryption {
    /// Plain text.
    Off,
    /// OMEMO, the best version all the contact's devices support.
    Auto,
    /// OMEMO 0.3 only.
    Omemo03,
    /// OMEMO 2 only.
    Omemo2,
}

/// End-to-end protection of one message, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct MessageSecurity {
    pub scheme: EncryptionScheme,
    /// The OMEMO device that sent it (incoming).
    pub sender_device: Option<u32>,
    /// That device's trust when the message arrived.
    pub sender_trust: Option<DeviceTrust>,
    /// Why the body could not be decrypted; the body is then a placeholder.
    pub undecryptable: Option<String>,
}

/// Our own OMEMO device.
pub struct OwnDevice {
    pub device_id: u32,
    pub identity_seed: Zeroizing<[u8; 32]>,
    pub signed_pre_key_id: u32,
    pub next_pre_key_id: u32,
}

/// Another device (a contact's, or another of our account's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub jid: String,
    pub device_id: u32,
    pub listed_v03: bool,
    pub listed_v2: bool,
    /// Curve25519 form, once a bundle or message showed it.
    pub identity_key: Option<[u8; 32]>,
    pub identity_ed25519: Option<[u8; 32]>,
    pub trust: DeviceTrust,
    pub first_seen_ms: i64,
    pub last_message_ms: Option<i64>,
}

/// The sessions with one device that newer ones replaced, oldest first.
pub type SessionArchive = Vec<Zeroizing<Vec<u8>>>;

/// A replaced session kept for late messages: (archive order, record).
pub type ArchivedSession = (i64, Zeroizing<Vec<u8>>);

/// A secret key with its id.
pub type SecretKey = (u32, Zeroizing<[u8; 32]>);

/// Session and prekey changes made while decrypting a batch of messages.
/// They are written in the same transaction as the messages: if the process
/// dies before, the server sends the messages again and the old sessions
/// can still decrypt them.
#[derive(Default)]
pub struct OmemoWrites {
    /// (jid, device id, version code, session record), in order.
    pub sessions: Vec<(String, u32, u8, Zeroizing<Vec<u8>>)>,
    /// Sessions replaced by newer ones, kept for late messages: for each
    /// (jid, device id, version code) the batch touched, the whole archive,
    /// oldest first (it replaces what is stored; the newest
    /// [`OLD_SESSIONS_KEPT`] are kept).
    pub archives: Vec<(String, u32, u8, SessionArchive)>,
    /// (used prekey id, replacement id, replacement secret).
    pub replaced_pre_keys: Vec<(u32, u32, Zeroizing<[u8; 32]>)>,
}

impl OmemoWrites {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.archives.is_empty() && self.replaced_pre_keys.is_empty()
    }

    pub(super) fn apply(&self, tx: &rusqlite::Connection) -> rusqlite::Result<()> {
        for (jid, device, version, records) in &self.archives {
            tx.prepare_cached(
                "DELETE FROM omemo_old_sessions WHERE jid = ?1 AND device_id = ?2 AND version = ?3",
            )?
            .execute(params![jid, device, version])?;
            let kept = records.len().saturating_sub(OLD_SESSIONS_KEPT);
            for (order, record) in records.iter().enumerate().skip(kept) {
                tx.prepare_cached(
                    "INSERT INTO omemo_old_sessions(jid, device_id, version, archived, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    jid,
                    device,
                    version,
                    order as i64 + 1,
                    &record[..]
                ])?;
            }
        }
        for (jid, device, version, record) in &self.sessions {
            tx.prepare_cached("INSERT OR REPLACE INTO omemo_sessions(jid, device_id, version, record) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![jid, device, version, &record[..]])?;
        }
        for (used, id, secret) in &self.replaced_pre_keys {
            tx.execute("DELETE FROM omemo_pre_keys WHERE id = ?1", [used])?;
            tx.execute(
                "INSERT OR REPLACE INTO omemo_pre_keys(id, secret) VALUES (?1, ?2)",
                params![id, &secret[..]],
            )?;
            tx.execute(
                "UPDATE omemo_own SET next_pre_key_id = max(next_pre_key_id, ?1 + 1) WHERE id = 1",
                [id],
            )?;
        }
        Ok(())
    }
}

/// How many replaced sessions are kept per device and version (libsignal
/// keeps 40 too).
pub const OLD_SESSIONS_KEPT: usize = 40;

fn archive_session(
    tx: &rusqlite::Connection,
    jid: &str,
    device: u32,
    version: u8,
    record: &[u8],
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO omemo_old_sessions(jid, device_id, version, archived, record)
         VALUES (?1, ?2, ?3, (SELECT coalesce(max(archived), 0) + 1 FROM omemo_old_sessions
                              WHERE jid = ?1 AND device_id = ?2 AND version = ?3), ?4)",
    )?
    .execute(params![jid, device, version, record])?;
    tx.prepare_cached(
        "DELETE FROM omemo_old_sessions WHERE jid = ?1 AND device_id = ?2 AND version = ?3
         AND archived NOT IN (SELECT archived FROM omemo_old_sessions
                              WHERE jid = ?1 AND device_id = ?2 AND version = ?3
                              ORDER BY archived DESC LIMIT ?4)",
    )?
    .execute(params![jid, device, version, OLD_SESSIONS_KEPT as i64])?;
    Ok(())
}

/// What pinning a device's identity key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// The key was not known: it is now, with this trust.
    New(DeviceTrust),
    /// The same key as before, with its trust.
    Known(DeviceTrust),
    /// The device has another key: nothing was changed.
    Changed,
}

fn key32(blob: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    blob.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, "key".into(), rusqlite::types::Type::Blob)
    })
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        jid: r.get(0)?,
        device_id: r.get(1)?,
        listed_v03: r.get(2)?,
        listed_v2: r.get(3)?,
        identity_key: r.get::<_, Option<Vec<u8>>>(4)?.map(key32).transpose()?,
        identity_ed25519: r.get::<_, Option<Vec<u8>>>(5)?.map(key32).transpose()?,
        trust: DeviceTrust::from_i64(r.get(6)?),
        first_seen_ms: r.get(7)?,
        last_message_ms: r.get(8)?,
    })
}

const DEVICE_COLUMNS: &str = "jid, device_id, listed_v03, listed_v2, identity_key, identity_ed25519, trust, first_seen_ms, last_message_ms";

impl Store {
    /// Our device, once created.
    pub fn omemo_own(&self) -> Result<Option<OwnDevice>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT device_id, identity_seed, signed_pre_key_id, next_pre_key_id FROM omemo_own WHERE id = 1",
                [],
                |r| {
                    Ok(OwnDevice {
                        device_id: r.get(0)?,
                        identity_seed: Zeroizing::new(key32(r.get(1)?)?),
                        signed_pre_key_id: r.get(2)?,
                        next_pre_key_id: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Creates our device: identity, first signed prekey, one-time prekeys.
    pub fn omemo_create_own(
        &mut self,
        own: &OwnDevice,
        signed_pre_key: &[u8; 32],
        pre_keys: &[(u32, [u8; 32])],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO omemo_own(id, device_id, identity_seed, signed_pre_key_id, next_pre_key_id)
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![own.device_id, &own.identity_seed[..], own.signed_pre_key_id, own.next_pre_key_id],
        )?;
        tx.execute(
            "INSERT INTO omemo_signed_pre_keys(id, secret, created_ms) VALUES (?1, ?2, ?3)",
            params![own.signed_pre_key_id, &signed_pre_key[..], now_ms],
        )?;
        for (id, secret) in pre_keys {
            tx.execute(
                "INSERT INTO omemo_pre_keys(id, secret) VALUES (?1, ?2)",
                params![id, &secret[..]],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Signed prekeys we still accept, newest first, with their creation time.
    pub fn omemo_signed_pre_keys(&self) -> Result<Vec<(SecretKey, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, secret, created_ms FROM omemo_signed_pre_keys ORDER BY created_ms DESC, id DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok(((r.get(0)?, Zeroizing::new(key32(r.get(1)?)?)), r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes a new signed prekey current, keeping the previous one (messages
    /// in flight may still use it) and dropping older ones.
    pub fn omemo_rotate_signed_pre_key(
        &mut self,
        id: u32,
        secret: &[u8; 32],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO omemo_signed_pre_keys(id, secret, created_ms) VALUES (?1, ?2, ?3)",
            params![id, &secret[..], now_ms],
        )?;
        tx.execute(
            "DELETE FROM omemo_signed_pre_keys WHERE id NOT IN
               (SELECT id FROM omemo_signed_pre_keys ORDER BY created_ms DESC, id DESC LIMIT 2)",
            [],
        )?;
        tx.execute(
            "UPDATE omemo_own SET signed_pre_key_id = ?1 WHERE id = 1",
            [id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Our unused one-time prekeys.
    pub fn omemo_pre_keys(&self) -> Result<Vec<SecretKey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, secret FROM omemo_pre_keys ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, Zeroizing::new(key32(r.get(1)?)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a device list: listed devices are marked for `version` (new
    /// ones are added, `Undecided` until their key is learned), the others
    /// unmarked. Returns the devices seen for the first time.
    pub fn omemo_update_device_list(
        &mut self,
        jid: &str,
        v2: bool,
        device_ids: &[u32],
        now_ms: i64,
    ) -> Result<Vec<u32>, StoreError> {
        let column = if v2 { "listed_v2" } else { "listed_v03" };
        let tx = self.conn.transaction()?;
        tx.execute(
            &format!("UPDATE omemo_devices SET {column} = 0 WHERE jid = ?1"),
            [jid],
        )?;
        let mut new = Vec::new();
        for id in device_ids {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO omemo_devices(jid, device_id, trust, first_seen_ms) VALUES (?1, ?2, ?3, ?4)",
                params![jid, id, DeviceTrust::Undecided.to_i64(), now_ms],
            )?;
            if inserted == 1 {
                new.push(*id);
            }
            tx.execute(
                &format!("UPDATE omemo_devices SET {column} = 1 WHERE jid = ?1 AND device_id = ?2"),
                params![jid, id],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// Pins a device's identity key, learned from a verified bundle or an
    /// authenticated key exchange, adding the device if it is new. A key
    /// seen for the first time gets `initial_trust` (a device the user
    /// distrusted before its key was known stays distrusted); the same key
    /// again changes nothing; another key is refused.
    pub fn omemo_pin_identity(
        &mut self,
        jid: &str,
        device_id: u32,
        curve: &[u8; 32],
        ed25519: Option<&[u8; 32]>,
        initial_trust: DeviceTrust,
        now_ms: i64,
    ) -> Result<Pinned, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO omemo_devices(jid, device_id, trust, first_seen_ms) VALUES (?1, ?2, ?3, ?4)",
            params![jid, device_id, DeviceTrust::Undecided.to_i64(), now_ms],
        )?;
        let (known, trust): (Option<Vec<u8>>, i64) = tx.query_row(
            "SELECT identity_key, trust FROM omemo_devices WHERE jid = ?1 AND device_id = ?2",
            params![jid, device_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let trust = DeviceTrust::from_i64(trust);
        let pinned = match known {
            Some(known) if known.as_slice() != curve.as_slice() => Pinned::Changed,
            Some(_) => {
                tx.execute(
                    "UPDATE omemo_devices SET identity_ed25519 = coalesce(identity_ed25519, ?3)
                     WHERE jid = ?1 AND device_id = ?2",
                    params![jid, device_id, ed25519.map(|k| k.to_vec())],
                )?;
                Pinned::Known(trust)
            }
            None => {
                let decided = if trust == DeviceTrust::Distrusted {
                    trust
                } else {
                    initial_trust
                };
                tx.execute(
                    "UPDATE omemo_devices SET identity_key = ?3, identity_ed25519 = ?4, trust = ?5
                     WHERE jid = ?1 AND device_id = ?2",
                    params![
                        jid,
                        device_id,
                        &curve[..],
                        ed25519.map(|k| k.to_vec()),
                        decided.to_i64()
                    ],
                )?;
                Pinned::New(decided)
            }
        };
        tx.commit()?;
        Ok(pinned)
    }

    /// The devices known for `jid`.
    pub fn omemo_devices(&self, jid: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM omemo_devices WHERE jid = ?1 ORDER BY device_id"
        ))?;
        let rows = stmt.query_map([jid], device_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One device.
    pub fn omemo_device(
        &self,
        jid: &str,
        device_id: u32,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM omemo_devices WHERE jid = ?1 AND device_id = ?2"
                ),
                params![jid, device_id],
                device_from_row,
            )
            .optional()?)
    }

    /// Records a trust decision.
    pub fn omemo_set_trust(
        &mut self,
        jid: &str,
        device_id: u32,
        trust: DeviceTrust,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE omemo_devices SET trust = ?3 WHERE jid = ?1 AND device_id = ?2",
            params![jid, device_id, trust.to_i64()],
        )? == 1)
    }

    /// Notes that a device just sent us a message (stale devices are the
    /// ones that have not for a long time).
    pub fn omemo_touch_device(
        &mut self,
        jid: &str,
        device_id: u32,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE omemo_devices SET last_message_ms = ?3 WHERE jid = ?1 AND device_id = ?2",
            params![jid, device_id, now_ms],
        )?;
        Ok(())
    }

    /// A session record (`version`: 3 for 0.3, 2 for OMEMO 2).
    pub fn omemo_session(
        &self,
        jid: &str,
        device_id: u32,
        version: u8,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT record FROM omemo_sessions WHERE jid = ?1 AND device_id = ?2 AND version = ?3")?
            .query_row(params![jid, device_id, version], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
            .map(Zeroizing::new))
    }

    /// Stores a session record.
    pub fn omemo_save_session(
        &mut self,
        jid: &str,
        device_id: u32,
        version: u8,
        record: &[u8],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO omemo_sessions(jid, device_id, version, record) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![jid, device_id, version, record])?;
        Ok(())
    }

    /// Archives the current sessions with a device (the user asked for a
    /// new one): they still decrypt late messages, but the next message to
    /// the device starts a new session. Returns how many there were.
    pub fn omemo_archive_sessions(
        &mut self,
        jid: &str,
        device_id: u32,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let current: Vec<(u8, Vec<u8>)> = {
            let mut stmt = tx.prepare(
                "SELECT version, record FROM omemo_sessions WHERE jid = ?1 AND device_id = ?2",
            )?;
            let rows = stmt.query_map(params![jid, device_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (version, record) in &current {
            archive_session(&tx, jid, device_id, *version, record)?;
        }
        tx.execute(
            "DELETE FROM omemo_sessions WHERE jid = ?1 AND device_id = ?2",
            params![jid, device_id],
        )?;
        tx.commit()?;
        Ok(current.len())
    }

    /// Sessions with the device replaced by newer ones, newest first.
    pub fn omemo_old_sessions(
        &self,
        jid: &str,
        device_id: u32,
        version: u8,
    ) -> Result<Vec<ArchivedSession>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT archived, record FROM omemo_old_sessions
             WHERE jid = ?1 AND device_id = ?2 AND version = ?3 ORDER BY archived DESC",
        )?;
        let rows = stmt.query_map(params![jid, device_id, version], |r| {
            Ok((r.get(0)?, Zeroizing::new(r.get::<_, Vec<u8>>(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets every session with `jid`'s devices (they are rebuilt on
    /// the next message either way).
    pub fn omemo_forget_sessions(&mut self, jid: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM omemo_sessions WHERE jid = ?1", [jid])?)
    }

    /// How `jid`'s conversation is encrypted (`Off` unless set).
    pub fn omemo_conversation_encryption(
        &self,
        jid: &str,
    ) -> Result<ConversationEncryption, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row(
                "SELECT encrypted FROM omemo_conversations WHERE jid = ?1",
                [jid],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match value {
            Some(1) => ConversationEncryption::Auto,
            Some(3) => ConversationEncryption::Omemo03,
            Some(2) => ConversationEncryption::Omemo2,
            _ => ConversationEncryption::Off,
        })
    }

    /// Whether messages to `jid` have gone out with OMEMO 2.
    pub fn omemo_used_v2(&self, jid: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT used_v2 FROM omemo_conversation_versions WHERE jid = ?1")?
            .query_row([jid], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Records that a message to `jid` went out with OMEMO 2.
    pub fn omemo_mark_used_v2(&mut self, jid: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO omemo_conversation_versions(jid, used_v2) VALUES (?1, 1)",
            )?
            .execute([jid])?;
        Ok(())
    }

    /// Gives our device (of `own_jid`) a new id, unused in `taken` (our
    /// published list, where another device has ours): before anything was
    /// published under it, so nothing else changes. Our identity and trust
    /// move to the new id; the taken one is left to the other device, with
    /// no key or trust. Returns the new id.
    pub fn omemo_change_own_device_id(
        &mut self,
        own_jid: &str,
        taken: &[u32],
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let id = loop {
            let id = rng.gen_range(1..i32::MAX as u32);
            if !taken.contains(&id) {
                break id;
            }
        };
        let tx = self.conn.transaction()?;
        let old: u32 = tx.query_row("SELECT device_id FROM omemo_own WHERE id = 1", [], |r| {
            r.get(0)
        })?;
        tx.execute("UPDATE omemo_own SET device_id = ?1 WHERE id = 1", [id])?;
        tx.execute(
            "INSERT INTO omemo_devices(jid, device_id, identity_key, identity_ed25519, trust, first_seen_ms)
             SELECT jid, ?2, identity_key, identity_ed25519, trust, ?3 FROM omemo_devices
             WHERE jid = ?1 AND device_id = ?4",
            params![own_jid, id, now_ms, old],
        )?;
        tx.execute(
            "UPDATE omemo_devices SET identity_key = NULL, identity_ed25519 = NULL, trust = 0
             WHERE jid = ?1 AND device_id = ?2",
            params![own_jid, old],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Sets how `jid`'s conversation is encrypted.
    pub fn omemo_set_conversation_encryption(
        &mut self,
        jid: &str,
        mode: ConversationEncryption,
    ) -> Result<(), StoreError> {
        let value = match mode {
            ConversationEncryption::Off => 0,
            ConversationEncryption::Auto => 1,
            ConversationEncryption::Omemo03 => 3,
            ConversationEncryption::Omemo2 => 2,
        };
        self.conn.execute(
            "INSERT OR REPLACE INTO omemo_conversations(jid, encrypted) VALUES (?1, ?2)",
            params![jid, value],
        )?;
        Ok(())
    }
}
