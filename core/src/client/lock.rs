//! The session lock: one process at a time owns an account's connection
//! (the app, or its push handler — an iOS Notification Service Extension or
//! an Android FCM service — running in another process on the same store).
//! An OS file lock, so a killed owner releases it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

const LOCK_FILE: &str = "session.lock";

/// Held while a process owns the connection; released on drop.
#[derive(Debug)]
pub(crate) struct SessionLock {
    _file: File,
}

impl SessionLock {
    fn open(store_dir: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(store_dir.join(LOCK_FILE))
    }

    /// Takes the lock if nobody holds it; `Ok(None)` when another process
    /// (or another client in this one) does.
    pub fn try_acquire(store_dir: &Path) -> std::io::Result<Option<SessionLock>> {
        let file = Self::open(store_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SessionLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    /// Waits for the lock: a push handler holds it only until its deadline.
    pub async fn acquire(store_dir: &Path) -> std::io::Result<SessionLock> {
        loop {
            if let Some(lock) = Self::try_acquire(store_dir)? {
                return Ok(lock);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_holder_at_a_time_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionLock::try_acquire(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(SessionLock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(SessionLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
