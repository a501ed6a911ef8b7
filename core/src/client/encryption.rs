//! The OMEMO side of the `Client` API: per-conversation encryption, our own
//! device and fingerprint, the devices of a contact (or of our account)
//! with their fingerprints and trust, and trust decisions.

use jid::BareJid;

use super::connection::account::AccountState;
use super::connection::Command;
use super::omemo::Omemo;
use super::{Client, ClientError, ClientEvent};
use crate::omemo::PeerIdentity;
use crate::store::{ConversationEncryption, DeviceTrust, TrustPolicy};

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

    /// Records the user's decision about a device. `Verified` needs the
    /// fingerprint the user compared (hex as [`OmemoDevice::fingerprint`]
    /// shows it; spaces, colons and case do not matter): it must match the
    /// device's pinned key, so a verification can never apply to a key the
    /// server hands out later. `BlindlyTrusted` needs a pinned key too;
    /// `Distrusted` and `Undecided` need nothing. Verifying any device of a
    /// contact ends blind trust for that contact's future devices.
    pub fn set_omemo_trust(
        &self,
        jid: &str,
        device_id: u32,
        trust: DeviceTrust,
        fingerprint: Option<&str>,
    ) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let handle = self.store()?;
        let mut store = handle.lock();
        let device = store
            .omemo_device(jid.as_str(), device_id)?
            .ok_or(ClientError::UnknownDevice)?;
        check_trust_decision(device.identity_key.as_ref(), trust, fingerprint)?;
        store.omemo_set_trust(jid.as_str(), device_id, trust)?;
        drop(store);
        self.listener.on_event(ClientEvent::OmemoTrustChanged {
            jid: jid.to_string(),
            device_id,
            trust,
        });
        Ok(())
    }

    /// Replaces the session with `jid`'s `device`, by the user's decision
    /// (XEP-0384 §9: never automatically): the current one is archived (it
    /// still decrypts late messages) and a new one is built — now if
    /// connected (an empty message tells the device), else with the next
    /// message. For a contact whose messages keep failing to decrypt.
    pub fn replace_omemo_session(&self, jid: &str, device_id: u32) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        {
            let handle = self.store()?;
            let mut store = handle.lock();
            store
                .omemo_device(jid.as_str(), device_id)?
                .ok_or(ClientError::UnknownDevice)?;
            store.omemo_archive_sessions(jid.as_str(), device_id)?;
        }
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::RebuildOmemoSession(jid.to_string(), device_id));
        }
        Ok(())
    }

    /// How devices whose keys the user has not verified are treated:
    /// Blind Trust Before Verification (the default) or manual. Applies to
    /// keys learned from now on.
    pub fn set_omemo_trust_policy(&self, policy: TrustPolicy) -> Result<(), ClientError> {
        Ok(self
            .store()?
            .lock()
            .put(AccountState::OMEMO_TRUST_POLICY, Some(&policy))?)
    }

    pub fn omemo_trust_policy(&self) -> Result<TrustPolicy, ClientError> {
        Ok(self
            .store()?
            .lock()
            .get(AccountState::OMEMO_TRUST_POLICY)?
            .unwrap_or_default())
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

/// Whether `trust` may be recorded for a device whose pinned key (Curve25519
/// form) is `pinned`, given the fingerprint the user compared.
fn check_trust_decision(
    pinned: Option<&[u8; 32]>,
    trust: DeviceTrust,
    fingerprint: Option<&str>,
) -> Result<(), ClientError> {
    match trust {
        DeviceTrust::Distrusted | DeviceTrust::Undecided => Ok(()),
        DeviceTrust::BlindlyTrusted => pinned.map(|_| ()).ok_or(ClientError::NoIdentityKey),
        DeviceTrust::Verified => {
            let pinned = pinned.ok_or(ClientError::NoIdentityKey)?;
            let compared: String = fingerprint
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect::<String>()
                .to_ascii_lowercase();
            if compared == hex::encode(pinned) {
                Ok(())
            } else {
                Err(ClientError::FingerprintMismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, defect 2: verification is bound to the fingerprint the user
    /// compared (the old API verified a device whatever its key, even none).
    #[test]
    fn verification_needs_the_pinned_keys_fingerprint() {
        let key = [0xab; 32];
        let shown = hex::encode(key);
        let spaced: String = shown
            .as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        let verify = |pinned, fp| check_trust_decision(pinned, DeviceTrust::Verified, fp);
        assert_eq!(verify(Some(&key), Some(shown.as_str())), Ok(()));
        assert_eq!(verify(Some(&key), Some(spaced.as_str())), Ok(()));
        assert_eq!(
            verify(Some(&key), Some("ab:ab")),
            Err(ClientError::FingerprintMismatch)
        );
        assert_eq!(
            verify(Some(&key), None),
            Err(ClientError::FingerprintMismatch)
        );
        assert_eq!(
            verify(None, Some(shown.as_str())),
            Err(ClientError::NoIdentityKey)
        );
        let blind = |pinned| check_trust_decision(pinned, DeviceTrust::BlindlyTrusted, None);
        assert_eq!(blind(Some(&key)), Ok(()));
        assert_eq!(blind(None), Err(ClientError::NoIdentityKey));
        assert_eq!(
            check_trust_decision(None, DeviceTrust::Distrusted, None),
            Ok(())
        );
    }
}
