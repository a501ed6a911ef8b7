//! The wake-up API for push handlers (an iOS Notification Service
//! Extension, an Android FCM service): given what the push carried, return
//! the new notification items within the caller's deadline.
//!
//! In order: decrypt the payload if it is encrypted (no network at all);
//! otherwise take the session lock — backing off if the app holds the
//! session — and resume the stored stream (or log in with the FAST token),
//! catch up, store what arrives, and suspend the session again so the app
//! (or the next push) resumes it. Run it on a small runtime: the bindings
//! use a current-thread tokio runtime for this path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::connection::account::AccountState;
use super::lock::SessionLock;
use super::push::load_registration;
use super::{Client, ClientConfig, ClientError, ClientEvent, ConnectionState, EventListener};
use crate::features::push::{self, PushError};
use crate::store::{Direction, Store};

/// What an app server forwards from an encrypted push (the `iv` attribute
/// and the text of `<encrypted xmlns='tigase:push:encrypt:0'/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPush {
    pub iv: String,
    pub payload: String,
}

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationItem {
    /// Bare JID of the sender.
    pub sender: String,
    /// The conversation it belongs to (the sender's bare JID for 1:1).
    pub conversation: String,
    /// Text to show; `None` means "a new message" without content.
    pub preview: Option<String>,
    /// The stored message, when it was fetched (not from a payload).
    pub message_id: Option<i64>,
}

/// How the items were obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeOutcome {
    /// From the encrypted payload, without connecting.
    Decrypted,
    /// Over the network: the stored stream was resumed (`resumed`), or a
    /// new session was logged in (`authentication` names the mechanism;
    /// `HT-…` is a FAST token).
    Fetched {
        resumed: bool,
        authentication: String,
    },
    /// The app holds the session (it is running): it shows the messages
    /// itself, so nothing was fetched here.
    AppIsActive,
    /// The deadline passed first; `items` has what was stored until then,
    /// and the session was left resumable.
    DeadlineReached,
}

/// The result of one wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeUpResult {
    pub items: Vec<NotificationItem>,
    pub outcome: WakeOutcome,
    /// Set when a payload was given but could not be read; the messages
    /// were fetched over the network instead.
    pub payload_error: Option<PushError>,
}

/// Decrypts a push payload with the key this device registered, without
/// connecting. The store is opened read-only in effect (nothing written).
pub fn decrypt_push(
    config: &ClientConfig,
    push: &EncryptedPush,
) -> Result<NotificationItem, WakeUpError> {
    let store = Store::open(&config.store_dir, &config.store_key).map_err(ClientError::from)?;
    let registration = load_registration(&store)?.ok_or(PushError::NotRegistered)?;
    let notification = push::decrypt(&registration.key, &push.iv, &push.payload)?;
    Ok(NotificationItem {
        conversation: notification.sender.clone(),
        sender: notification.sender,
        preview: notification.body.filter(|_| previews_shown(&store)),
        message_id: None,
    })
}

/// Whether notifications may show message text (the account setting
/// [`Client::set_push_previews`]; on unless turned off).
fn previews_shown(store: &Store) -> bool {
    store
        .get(AccountState::PUSH_PREVIEWS)
        .ok()
        .flatten()
        .unwrap_or(true)
}

/// Why a wake-up or a payload decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeUpError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Push(#[from] PushError),
}

/// Collects what the client reports during a wake-up.
#[derive(Default)]
struct Collector {
    items: Mutex<Vec<NotificationItem>>,
    caught_up: Notify,
}

impl EventListener for Collector {
    fn on_event(&self, event: ClientEvent) {
        match event {
            ClientEvent::MessageReceived(m) if m.direction == Direction::Incoming => {
                let sender = m.sender.split('/').next().unwrap_or_default().to_owned();
                self.items
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(NotificationItem {
                        sender,
                        conversation: m.peer,
                        preview: Some(m.body),
                        message_id: Some(m.id),
                    });
            }
            ClientEvent::CaughtUp => self.caught_up.notify_one(),
            _ => {}
        }
    }
}

/// Runs one wake-up: see the module documentation. `deadline` bounds the
/// network part; the session is suspended (left resumable) in every case.
pub async fn wake_up(
    config: ClientConfig,
    push: Option<EncryptedPush>,
    deadline: Duration,
) -> Result<WakeUpResult, ClientError> {
    let mut payload_error = None;
    if let Some(push) = &push {
        match decrypt_push(&config, push) {
            Ok(item) => {
                return Ok(WakeUpResult {
                    items: vec![item],
                    outcome: WakeOutcome::Decrypted,
                    payload_error: None,
                })
            }
            Err(WakeUpError::Push(err)) => {
                // A payload we cannot read loses nothing: fetch instead.
                tracing::info!(%err, "push payload unreadable; fetching");
                payload_error = Some(err);
            }
            Err(WakeUpError::Client(err)) => return Err(err),
        }
    }
    std::fs::create_dir_all(&config.store_dir)
        .map_err(|e| ClientError::Config(format!("store directory: {e}")))?;
    let Some(lock) = SessionLock::try_acquire(&config.store_dir)
        .map_err(|e| ClientError::Config(format!("session lock: {e}")))?
    else {
        return Ok(WakeUpResult {
            items: Vec::new(),
            outcome: WakeOutcome::AppIsActive,
            payload_error,
        });
    };
    let collector = Arc::new(Collector::default());
    let client = Client::open(config, collector.clone())?;
    *client.held_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
    let run = async {
        client.login().await?;
        collector.caught_up.notified().await;
        Ok::<_, ClientError>(())
    };
    let finished = tokio::time::timeout(deadline, run).await;
    let online = client.connection_state();
    let previews = client.push_previews().unwrap_or(true);
    client.suspend().await;
    let mut items = std::mem::take(&mut *collector.items.lock().unwrap_or_else(|p| p.into_inner()));
    if !previews {
        for item in &mut items {
            item.preview = None;
        }
    }
    let outcome = match finished {
        Err(_) => WakeOutcome::DeadlineReached,
        Ok(Err(err)) => return Err(err),
        Ok(Ok(())) => match online {
            ConnectionState::Online {
                resumed,
                authentication,
                ..
            } => WakeOutcome::Fetched {
                resumed,
                authentication,
            },
            _ => WakeOutcome::DeadlineReached,
        },
    };
    Ok(WakeUpResult {
        items,
        outcome,
        payload_error,
    })
}
