//! The push handler's API: decrypt a payload, or run a whole wake-up on a
//! current-thread runtime of its own (an iOS Notification Service
//! Extension or an Android FCM service calls it from a background thread).

use std::time::Duration;

use waxwing_core::client::wake::{self, WakeUpError};
use waxwing_core::features::push::PushError;

use crate::{core_config, AccountConfig, WaxwingError};

/// What the app server forwarded from an encrypted push.
#[derive(Debug, Clone, uniffi::Record)]
pub struct EncryptedPush {
    pub iv: String,
    pub payload: String,
}

/// One notification to show.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NotificationItem {
    pub sender: String,
    pub conversation: String,
    /// `None`: show a generic "new message".
    pub preview: Option<String>,
    /// The stored message's id when it was fetched.
    pub message_id: Option<i64>,
}

/// How a wake-up got its items.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum WakeOutcome {
    Decrypted,
    Fetched {
        resumed: bool,
        authentication: String,
    },
    AppIsActive,
    DeadlineReached,
}

/// Why a push payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushFailure {
    NotRegistered,
    Malformed,
    DecryptionFailed,
    UnexpectedContent,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct WakeUpResult {
    pub items: Vec<NotificationItem>,
    pub outcome: WakeOutcome,
    pub payload_failure: Option<PushFailure>,
}

impl From<PushError> for PushFailure {
    fn from(e: PushError) -> Self {
        match e {
            PushError::NotRegistered => PushFailure::NotRegistered,
            PushError::Malformed => PushFailure::Malformed,
            PushError::DecryptionFailed => PushFailure::DecryptionFailed,
            PushError::UnexpectedContent => PushFailure::UnexpectedContent,
        }
    }
}

impl From<wake::NotificationItem> for NotificationItem {
    fn from(i: wake::NotificationItem) -> Self {
        NotificationItem {
            sender: i.sender,
            conversation: i.conversation,
            preview: i.preview,
            message_id: i.message_id,
        }
    }
}

impl From<wake::WakeOutcome> for WakeOutcome {
    fn from(o: wake::WakeOutcome) -> Self {
        match o {
            wake::WakeOutcome::Decrypted => WakeOutcome::Decrypted,
            wake::WakeOutcome::Fetched {
                resumed,
                authentication,
            } => WakeOutcome::Fetched {
                resumed,
                authentication,
            },
            wake::WakeOutcome::AppIsActive => WakeOutcome::AppIsActive,
            wake::WakeOutcome::DeadlineReached => WakeOutcome::DeadlineReached,
        }
    }
}

fn to_ffi(push: EncryptedPush) -> wake::EncryptedPush {
    wake::EncryptedPush {
        iv: push.iv,
        payload: push.payload,
    }
}

/// Decrypts a push payload without connecting.
#[uniffi::export]
pub fn decrypt_push(
    config: AccountConfig,
    push: EncryptedPush,
) -> Result<NotificationItem, WaxwingError> {
    let config = core_config(config)?;
    match wake::decrypt_push(&config, &to_ffi(push)) {
        Ok(item) => Ok(item.into()),
        Err(WakeUpError::Client(e)) => Err(e.into()),
        Err(WakeUpError::Push(e)) => Err(WaxwingError::Push { failure: e.into() }),
    }
}

/// Handles a push: decrypts the payload if it can, else resumes the
/// session (backing off if the app holds it), fetches what is new, and
/// leaves the session resumable — all within `deadline_ms`. Blocking: call
/// it from a background thread.
#[uniffi::export]
pub fn wake_up(
    config: AccountConfig,
    push: Option<EncryptedPush>,
    deadline_ms: u64,
) -> Result<WakeUpResult, WaxwingError> {
    let config = core_config(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WaxwingError::InvalidConfig {
            detail: format!("runtime: {e}"),
        })?;
    let result = runtime.block_on(wake::wake_up(
        config,
        push.map(to_ffi),
        Duration::from_millis(deadline_ms),
    ))?;
    Ok(WakeUpResult {
        items: result.items.into_iter().map(Into::into).collect(),
        outcome: result.outcome.into(),
        payload_failure: result.payload_error.map(Into::into),
    })
}
