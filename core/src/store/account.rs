//! The account's state between connections and processes, typed: each
//! [`Field`] names one value and its Rust type, and the store keeps it as
//! JSON in the `account_state` table. The fields themselves are declared by
//! the layer that owns their type (the session's in
//! `client::connection::account::AccountState`, the store's own here), so
//! no caller builds a key or parses a blob by hand.

use std::marker::PhantomData;

use rusqlite::OptionalExtension;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Store, StoreError};

/// One typed value of the account state.
pub struct Field<T> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}

impl<T: Serialize + DeserializeOwned> Field<T> {
    pub const fn new(name: &'static str) -> Self {
        Field {
            name,
            _type: PhantomData,
        }
    }

    pub fn name(self) -> &'static str {
        self.name
    }

    /// A write of this field (`None` removes it), for
    /// [`Store::insert_incoming_batch_with`] to make in its transaction.
    pub fn write(self, value: Option<&T>) -> AccountWrite {
        AccountWrite {
            name: self.name,
            json: value.and_then(|v| serde_json::to_string(v).ok()),
        }
    }
}

/// A field's new value, as the store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountWrite {
    name: &'static str,
    json: Option<String>,
}

impl AccountWrite {
    pub(crate) fn apply(&self, conn: &rusqlite::Connection) -> Result<(), StoreError> {
        match &self.json {
            Some(json) => conn.execute(
                "INSERT INTO account_state(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [self.name, json],
            )?,
            None => conn.execute("DELETE FROM account_state WHERE key = ?1", [self.name])?,
        };
        Ok(())
    }
}

impl Store {
    /// Reads a field. A value that no longer decodes as its type (written
    /// by a build with another shape) reads as absent, with a warning: the
    /// state is rebuilt (a new token, a fresh session, a new catch-up).
    pub fn get<T: Serialize + DeserializeOwned>(
        &self,
        field: Field<T>,
    ) -> Result<Option<T>, StoreError> {
        let Some(json) = self.get_json(field)? else {
            return Ok(None);
        };
        match serde_json::from_str(&json) {
            Ok(value) => Ok(Some(value)),
            Err(err) => {
                tracing::warn!(field = field.name, %err, "ignoring an unreadable account value");
                Ok(None)
            }
        }
    }

    /// A field's stored JSON, to notice another process's write.
    pub fn get_json<T: Serialize + DeserializeOwned>(
        &self,
        field: Field<T>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM account_state WHERE key = ?1",
                [field.name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Writes a field (`None` removes it).
    pub fn put<T: Serialize + DeserializeOwned>(
        &self,
        field: Field<T>,
        value: Option<&T>,
    ) -> Result<(), StoreError> {
        field.write(value).apply(&self.conn)
    }
}

/// The store's own fields.
pub(crate) struct StoreFields;

impl StoreFields {
    /// RFC 6121 §2.6 roster version of the stored roster.
    pub const ROSTER_VERSION: Field<String> = Field::new("roster_ver");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKey;

    const NUMBER: Field<u32> = Field::new("number");
    const FLAG: Field<bool> = Field::new("flag");

    #[test]
    fn fields_keep_their_type_and_a_stray_value_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreKey::from_bytes([4; 32])).unwrap();
        assert_eq!(store.get(NUMBER).unwrap(), None);
        store.put(NUMBER, Some(&7)).unwrap();
        store.put(FLAG, Some(&true)).unwrap();
        assert_eq!(store.get(NUMBER).unwrap(), Some(7));
        assert_eq!(store.get(FLAG).unwrap(), Some(true));
        // The same key read as another type: absent, not a panic.
        let as_text: Field<Vec<String>> = Field::new("number");
        assert_eq!(store.get(as_text).unwrap(), None);
        store.put(NUMBER, None).unwrap();
        assert_eq!(store.get(NUMBER).unwrap(), None);
    }

    /// Migration 6: values written before account values were typed read
    /// back as their fields.
    #[test]
    fn values_from_before_typed_fields_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::from_bytes([4; 32]);
        {
            let store = Store::open(dir.path(), &key).unwrap();
            for (k, v) in [
                ("resource", "waxwing-1234"),
                ("mam_last", "archive-7"),
                ("sasl_no_plain", "1"),
                ("server_stanza_ids", "0"),
                ("fast_token", "{\"kept\":\"as is\"}"),
            ] {
                store.set_account_value(k, Some(v)).unwrap();
            }
            // As a version-5 store: without what migrations 6 to 9 add
            // that cannot be added twice.
            store
                .conn
                .execute_batch(
                    "ALTER TABLE conversations DROP COLUMN kind;
                     ALTER TABLE messages DROP COLUMN nick;
                     ALTER TABLE messages DROP COLUMN sender_jid;
                     DROP TABLE rooms;
                     PRAGMA user_version = 5",
                )
                .unwrap();
        }
        let store = Store::open(dir.path(), &key).unwrap();
        let text = |name| store.get(Field::<String>::new(name)).unwrap();
        let flag = |name| store.get(Field::<bool>::new(name)).unwrap();
        assert_eq!(text("resource").as_deref(), Some("waxwing-1234"));
        assert_eq!(text("mam_last").as_deref(), Some("archive-7"));
        assert_eq!(flag("sasl_no_plain"), Some(true));
        assert_eq!(flag("server_stanza_ids"), Some(false));
        assert_eq!(
            store.account_value("fast_token").unwrap().as_deref(),
            Some("{\"kept\":\"as is\"}")
        );
    }
}
