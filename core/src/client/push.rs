//! Push registration (XEP-0357) on the [`Client`]: the app passes the app
//! server's JID and the node it got for this device's FCM/APNs token; we
//! add a fresh payload key (mod_cloud_notify_encrypted) and keep the
//! registration in the encrypted store, where the wake-up path finds it.

use jid::Jid;

use super::connection::account::AccountState;
use super::{random_id, Client, ClientError};
use crate::features::push::{self, PushRegistration};

impl Client {
    /// Asks our server to push to `service` for `node`, with the app
    /// server's publish-options `secret` if it wants one. Replaces an
    /// earlier registration of this device. Needs a connection.
    pub async fn enable_push(
        &self,
        service: &str,
        node: &str,
        secret: Option<&str>,
    ) -> Result<(), ClientError> {
        let service: Jid = service.parse().map_err(|_| ClientError::InvalidJid)?;
        if node.is_empty() {
            return Err(ClientError::Config("the push node is empty".into()));
        }
        let registration = PushRegistration {
            service: service.to_string(),
            node: node.to_owned(),
            key: rand::random(),
            secret: secret.map(str::to_owned),
        };
        self.iq(push::enable(&random_id(), &registration, secret))
            .await?;
        // Only once the server has it: a push that arrives must decrypt.
        self.store()?
            .lock()
            .put(AccountState::PUSH, Some(&registration))?;
        Ok(())
    }

    /// Stops pushes to this device. Does nothing if none were enabled.
    pub async fn disable_push(&self) -> Result<(), ClientError> {
        let Some(registration) = load_registration(&self.store()?.lock())? else {
            return Ok(());
        };
        self.iq(push::disable(&random_id(), &registration)).await?;
        self.store()?.lock().put(AccountState::PUSH, None)?;
        Ok(())
    }

    /// Whether push notifications may show message text (on by default).
    /// Off, the wake-up API reports "a new message" without a preview: for
    /// users whose threat model includes the push provider or a locked
    /// phone's screen.
    pub fn set_push_previews(&self, shown: bool) -> Result<(), ClientError> {
        Ok(self
            .store()?
            .lock()
            .put(AccountState::PUSH_PREVIEWS, Some(&shown))?)
    }

    pub fn push_previews(&self) -> Result<bool, ClientError> {
        Ok(self
            .store()?
            .lock()
            .get(AccountState::PUSH_PREVIEWS)?
            .unwrap_or(true))
    }

    /// The app server and node pushes go to, if enabled.
    pub fn push_target(&self) -> Result<Option<(String, String)>, ClientError> {
        Ok(load_registration(&self.store()?.lock())?.map(|r| (r.service.clone(), r.node.clone())))
    }
}

pub(crate) fn load_registration(
    store: &crate::store::Store,
) -> Result<Option<PushRegistration>, ClientError> {
    Ok(store.get(AccountState::PUSH)?)
}
