//! The OMEMO side of the `Client` API: per-conversation encryption, our own
//! device and fingerprint, the devices of a contact (or of our account)
//! with their fingerprints and trust, and trust decisions.

use jid::BareJid;

use super::omemo::Omemo;
use super::{Client, ClientError, ClientEvent};
use crate::omemo::PeerIdentity;
use crate::store::{ConversationEncryption, DeviceTrust};

/// An OMEMO device as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OmemoDevice {
    /// Bare JID it belongs to.
    pub jid: String,
    pub device_id: u32,
    /// Hex of the identity key (Curve25519 form), once known.
    pub fingerprint: Option<String>,
    pub trust: DeviceTrust,
    /// The OMEMO versions whose current device list names it.
    pub versions: Vec<&'static str>,
    /// When it last sent us a message (milliseconds since the epoch).
    pub last_message_ms: Option<i64>,
    /// Whether it is this installation.
    pub this_device: bool,
}

impl Client {
    /// Our OMEMO device (created on first use): device id and fingerprint.
    pub fn own_omemo_device(&self) -> Result<OmemoDevice, ClientError> {
        let own = self.own_bare();
        let handle = self.store()?;
        let mut store = handle.lock();
        let device_id = Omemo::load_or_create(&mut store, own.clone())?.device_id();
        let devices = self.omemo_devices_locked(&store, own.as_str(), Some(device_id))?;
        devices
            .into_iter()
            .find(|d| d.device_id == device_id)
            .ok_or(ClientError::UnknownDevice)
    }

    /// The known OMEMO devices of `jid` (a contact, or our own account).
    pub fn omemo_devices(&self, jid: &str) -> Result<Vec<OmemoDevice>, ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let handle = self.store()?;
        let store = handle.lock();
        let ours = store.omemo_own()?.map(|o| o.device_id);
        let this = (jid == self.own_bare()).then_some(ours).flatten();
        self.omemo_devices_locked(&store, jid.as_str(), this)
    }

    fn omemo_devices_locked(
        &self,
        store: &crate::store::Store,
        jid: &str,
        this_device: Option<u32>,
    ) -> Result<Vec<OmemoDevice>, ClientError> {
        Ok(store
            .omemo_devices(jid)?
            .into_iter()
            .map(|d| {
                let mut versions = Vec::new();
                if d.listed_v2 {
                    versions.push("omemo2");
                }
                if d.listed_v03 {
                    versions.push("omemo0.3");
                }
                OmemoDevice {
                    jid: d.jid,
                    device_id: d.device_id,
                    fingerprint: d
                        .identity_key
                        .and_then(|k| PeerIdentity::from_curve25519(&k).ok())
                        .map(|i| i.fingerprint()),
                    trust: d.trust,
                    versions,
                    last_message_ms: d.last_message_ms,
                    this_device: Some(d.device_id) == this_device,
                }
            })
            .collect())
    }

    /// Records the user's decision about a device. Verifying any device of
    /// a contact ends blind trust for that contact's future devices.
    pub fn set_omemo_trust(
        &self,
        jid: &str,
        device_id: u32,
        trust: DeviceTrust,
    ) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let known = self
            .store()?
            .lock()
            .omemo_set_trust(jid.as_str(), device_id, trust)?;
        if !known {
            return Err(ClientError::UnknownDevice);
        }
        self.listener.on_event(ClientEvent::OmemoTrustChanged {
            jid: jid.to_string(),
            device_id,
            trust,
        });
        Ok(())
    }

    /// Sets end-to-end encryption for the conversation with `peer`. With
    /// it on, messages that cannot be encrypted fail; they never go out in
    /// plain text.
    pub fn set_encryption(
        &self,
        peer: &str,
        mode: ConversationEncryption,
    ) -> Result<(), ClientError> {
        let peer: BareJid = peer.parse().map_err(|_| ClientError::InvalidJid)?;
        Ok(self
            .store()?
            .lock()
            .omemo_set_conversation_encryption(peer.as_str(), mode)?)
    }

    /// The conversation's encryption setting.
    pub fn encryption(&self, peer: &str) -> Result<ConversationEncryption, ClientError> {
        let peer: BareJid = peer.parse().map_err(|_| ClientError::InvalidJid)?;
        Ok(self
            .store()?
            .lock()
            .omemo_conversation_encryption(peer.as_str())?)
    }
}

impl Client {
    fn own_bare(&self) -> BareJid {
        self.own.clone()
    }
}
