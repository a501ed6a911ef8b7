//! The roster as last seen from the server, with its version (XEP-0237).

use super::{Store, StoreError, StoreFields};
use rusqlite::params;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    None,
    To,
    From,
    Both,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::To => "to",
            Self::From => "from",
            Self::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "to" => Self::To,
            "from" => Self::From,
            "both" => Self::Both,
            _ => Self::None,
        }
    }
}

/// One contact in the roster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RosterEntry {
    pub jid: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// We asked to see their presence and they have not answered yet.
    pub pending_out: bool,
    pub groups: Vec<String>,
}

impl Store {
    /// Replaces the whole roster (a full roster result) and its version.
    pub fn replace_roster(
        &mut self,
        entries: &[RosterEntry],
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM contacts", [])?;
        for e in entries {
            Self::upsert_contact(&tx, e)?;
        }
        Self::write_roster_version(&tx, version)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies one roster push: an update, or a removal when `subscription='remove'`.
    pub fn apply_roster_push(
        &mut self,
        entry: Option<&RosterEntry>,
        removed_jid: Option<&str>,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        if let Some(e) = entry {
            Self::upsert_contact(&tx, e)?;
        }
        if let Some(jid) = removed_jid {
            tx.execute("DELETE FROM contacts WHERE jid = ?1", [jid])?;
        }
        if version.is_some() {
            Self::write_roster_version(&tx, version)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn upsert_contact(tx: &rusqlite::Connection, e: &RosterEntry) -> rusqlite::Result<()> {
        let groups = serde_json::to_string(&e.groups).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO contacts(jid, name, subscription, ask, groups_json) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
                 ask = excluded.ask, groups_json = excluded.groups_json",
            params![e.jid, e.name, e.subscription.as_str(), e.pending_out, groups],
        )?;
        Ok(())
    }

    fn write_roster_version(
        tx: &rusqlite::Connection,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        StoreFields::ROSTER_VERSION
            .write(version.map(str::to_owned).as_ref())
            .apply(tx)
    }

    /// The roster version to offer the server on the next fetch.
    pub fn roster_version(&self) -> Result<Option<String>, StoreError> {
        self.get(StoreFields::ROSTER_VERSION)
    }

    /// The stored roster, by JID.
    /// Whether `jid` (bare) may see our presence: a contact subscribed to
    /// it (`from` or `both`). Receipts, pings and disco answers reveal that
    /// we are online, so strangers get none (XEP-0184 §8, XEP-0199 §4.2).
    pub fn may_see_presence(&self, jid: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM contacts WHERE jid = ?1 AND subscription IN ('from', 'both')",
            )?
            .exists([jid])?)
    }

    pub fn roster(&self) -> Result<Vec<RosterEntry>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT jid, name, subscription, ask, groups_json FROM contacts ORDER BY jid",
        )?;
        let rows = stmt.query_map([], |r| {
            let groups: String = r.get(4)?;
            Ok(RosterEntry {
                jid: r.get(0)?,
                name: r.get(1)?,
                subscription: Subscription::parse(&r.get::<_, String>(2)?),
                pending_out: r.get(3)?,
                groups: serde_json::from_str(&groups).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
