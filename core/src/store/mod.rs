//! The encrypted local store: one SQLCipher database per account directory.
//!
//! Owns everything that must survive a process: the account's session state,
//! the roster, conversations, messages and the outbox. The app supplies a raw
//! 32-byte key (kept in Android Keystore / iOS Keychain); no passphrase KDF runs
//! on open (`PRAGMA key = "x'..'"`), so opening costs well under a millisecond.
//!
//! A small plaintext `key-check` file beside the database holds an HMAC of a
//! fixed label under the key. It reveals nothing about the key, but lets `open`
//! tell a wrong key ([`OpenStoreError::WrongKey`]) from a damaged file
//! ([`OpenStoreError::Corrupt`]) before SQLCipher touches any page.
//!
//! The store is synchronous; callers hold it behind a mutex and keep each call
//! short. Bursts (MAM pages, offline messages) go through batch methods that
//! write in one transaction.

mod account;
mod error;
mod messages;
mod migrations;
mod omemo;
mod rooms;
mod roster;

pub(crate) use account::StoreFields;
pub use account::{AccountWrite, Field};
pub use error::{OpenStoreError, StoreError};
pub use messages::{
    ArchiveCopy, ConversationSummary, Direction, HistoryCursor, IncomingMessage, MessageState,
    Position, RoomSender, StoredMessage, SEQ_SPACING,
};
pub use omemo::{
    ConversationEncryption, DeviceRecord, DeviceTrust, EncryptionScheme, MessageSecurity,
    OmemoWrites, OwnDevice, Pinned, SecretKey, SessionArchive, TrustPolicy,
};
pub use rooms::{RoomBookmark, StoredRoom};
pub use roster::{RosterEntry, Subscription};

use hmac::{KeyInit, Mac};
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// A raw SQLCipher key: 32 bytes from the platform key store; wiped from
/// memory when dropped. With a header salt, the store keeps SQLite's
/// 32-byte file header in plaintext (see [`StoreKey::with_plaintext_header`]).
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct StoreKey {
    key: [u8; 32],
    header_salt: Option<[u8; 16]>,
}

/// Bytes of the file header SQLCipher leaves readable in that mode: what
/// iOS looks at to recognise a SQLite database.
const PLAINTEXT_HEADER_BYTES: usize = 32;

impl StoreKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: bytes,
            header_salt: None,
        }
    }

    /// A key for a store whose first 32 bytes stay plaintext, for an iOS
    /// App Group container shared with a Notification Service Extension:
    /// iOS kills a suspended app holding a lock on a file there (0xdead10cc)
    /// unless it recognises the file as a SQLite database. SQLCipher keeps
    /// its salt in those bytes otherwise, so the app supplies it: 16 random
    /// bytes made once, kept with the key (Keychain). Chosen when the store
    /// is created; a store made one way does not open the other way
    /// (`WrongKey`).
    pub fn with_plaintext_header(key: [u8; 32], salt: [u8; 16]) -> Self {
        Self {
            key,
            header_salt: Some(salt),
        }
    }

    /// Parses 64 hex characters (the CLI's `WAXWING_STORE_KEY`).
    pub fn from_hex(hex_key: &str) -> Result<Self, OpenStoreError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| OpenStoreError::InvalidKey)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| OpenStoreError::InvalidKey)?;
        Ok(Self::from_bytes(arr))
    }

    fn check_value(&self) -> Vec<u8> {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"waxwing store key-check v1");
        if let Some(salt) = &self.header_salt {
            // Another layout, another check value: opening a store with the
            // other layout is a typed WrongKey, not a damaged file.
            mac.update(b" plaintext header");
            mac.update(salt);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// SQLCipher's raw key (and salt) blob, `x'…'`.
    fn pragma_value(&self) -> zeroize::Zeroizing<String> {
        let mut bytes = zeroize::Zeroizing::new(self.key.to_vec());
        if let Some(salt) = &self.header_salt {
            bytes.extend_from_slice(salt);
        }
        zeroize::Zeroizing::new(format!("x'{}'", hex::encode(&*bytes)))
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// The account's encrypted database.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
}

const DB_FILE: &str = "waxwing.db";
const KEY_CHECK_FILE: &str = "key-check";

impl Store {
    /// Opens (creating if needed) the store in `dir` and migrates its schema.
    pub fn open(dir: &Path, key: &StoreKey) -> Result<Self, OpenStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| OpenStoreError::Io(e.kind()))?;
        let db_path = dir.join(DB_FILE);
        let check_path = dir.join(KEY_CHECK_FILE);
        let expected = key.check_value();
        let db_exists = db_path.exists();
        match std::fs::read(&check_path) {
            Ok(stored) if stored != expected => return Err(OpenStoreError::WrongKey),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OpenStoreError::Io(e.kind())),
        }

        let conn = Connection::open(&db_path).map_err(OpenStoreError::from_open)?;
        // SQLCipher reports a failed HMAC on stderr unless told not to; the typed
        // error is what callers see.
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
        let key_pragma =
            zeroize::Zeroizing::new(format!("PRAGMA key = \"{}\";", *key.pragma_value()));
        conn.execute_batch(&key_pragma)
            .map_err(OpenStoreError::from_open)?;
        if key.header_salt.is_some() {
            // Before the first read: the layout of page 1 depends on it.
            conn.execute_batch(&format!(
                "PRAGMA cipher_plaintext_header_size = {PLAINTEXT_HEADER_BYTES};"
            ))
            .map_err(OpenStoreError::from_open)?;
        }
        // The first read is where a wrong key or a damaged header shows up.
        let probe: Result<i64, _> =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        if let Err(e) = probe {
            return Err(match OpenStoreError::from_open(e) {
                // A key-check file that matched means the key is right: the file is bad.
                OpenStoreError::WrongKey if check_path.exists() => OpenStoreError::Corrupt,
                other => other,
            });
        }
        // WAL + NORMAL: a commit is durable against app death (the case that
        // matters on phones) without an fsync per transaction. An 8 MB page
        // cache (filled only as pages are read) spares re-decrypting index
        // pages during bursts (a fifth faster inserts in the store bench).
        // SQLCipher's memory wiping is pinned off, its current default, so a
        // library upgrade cannot silently slow every query.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -8000; PRAGMA cipher_memory_security = OFF;
             PRAGMA secure_delete = ON;",
        )
        .map_err(OpenStoreError::from_open)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(OpenStoreError::from_open)?;
        migrations::migrate(&conn)?;
        if !check_path.exists() || !db_exists {
            // Written aside and renamed: a crash mid-write must not leave a
            // truncated check value that makes the right key look wrong.
            let partial = dir.join(format!("{KEY_CHECK_FILE}.partial"));
            std::fs::write(&partial, &expected)
                .and_then(|()| std::fs::rename(&partial, &check_path))
                .map_err(|e| OpenStoreError::Io(e.kind()))?;
        }
        Ok(Self {
            conn,
            dir: dir.to_owned(),
        })
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Raw access to the account state by key, for tests and tools; the
    /// library reads and writes typed [`Field`]s.
    #[doc(hidden)]
    pub fn account_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM account_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Raw write (or with `None`, delete) by key, for tests and tools.
    #[doc(hidden)]
    pub fn set_account_value(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO account_state(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, v],
            )?,
            None => self
                .conn
                .execute("DELETE FROM account_state WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    /// Caps the database size, in pages. Used to exercise the disk-full path in tests.
    #[doc(hidden)]
    pub fn set_max_page_count(&self, pages: u32) -> Result<(), StoreError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
