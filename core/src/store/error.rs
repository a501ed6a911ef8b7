//! Typed store errors: what went wrong opening the store, and what a write or
//! read can hit afterwards (a full disk, a damaged page).

use rusqlite::ErrorCode;

/// Why the store could not be opened. No data was touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenStoreError {
    #[error("the store key is not 64 hex characters / 32 bytes")]
    InvalidKey,
    #[error("the store key does not open this store")]
    WrongKey,
    #[error("the store file is damaged or is not a Waxwing store")]
    Corrupt,
    #[error("the store was written by a newer Waxwing (schema {found}, this build knows {known})")]
    TooNew { found: i64, known: i64 },
    #[error("no space left to open the store")]
    DiskFull,
    #[error("file system error: {0:?}")]
    Io(std::io::ErrorKind),
    #[error("database error: {0}")]
    Database(String),
}

impl OpenStoreError {
    pub(crate) fn from_open(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Self::WrongKey,
            Some(ErrorCode::DatabaseCorrupt) => Self::Corrupt,
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
                Self::Io(std::io::ErrorKind::PermissionDenied)
            }
            _ => Self::Database(e.to_string()),
        }
    }
}

impl From<StoreError> for OpenStoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull => Self::DiskFull,
            StoreError::Corrupt => Self::Corrupt,
            StoreError::Database(s) => Self::Database(s),
        }
    }
}

/// A failed read or write on an open store. The transaction was rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the disk is full")]
    DiskFull,
    #[error("the store is damaged")]
    Corrupt,
    #[error("database error: {0}")]
    Database(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => Self::Corrupt,
            _ => Self::Database(e.to_string()),
        }
    }
}
