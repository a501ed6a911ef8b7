//! OMEMO over the FFI: per-conversation encryption, devices with their
//! fingerprints and trust, trust decisions, and how each message was
//! protected. Thin mappings of `waxwing_core`'s types.

use waxwing_core::store::{
    ConversationEncryption as CoreConversationEncryption, DeviceTrust as CoreTrust,
    EncryptionScheme, MessageSecurity,
};

use crate::{WaxwingClient, WaxwingError};

/// How a message was protected end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Encryption {
    None,
    Omemo03,
    Omemo2,
}

/// The user's decision about a device's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceTrust {
    /// Needs a decision (a new device of a contact with verified devices).
    Undecided,
    /// Trusted without verification (Blind Trust Before Verification).
    BlindlyTrusted,
    Verified,
    Distrusted,
}

/// A conversation's end-to-end encryption setting.
/// How keys the user has not verified are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TrustPolicy {
    /// Blind Trust Before Verification (the default): a contact's new keys
    /// are trusted until the user verifies one of that contact's devices.
    BlindTrustBeforeVerification,
    /// Nothing is trusted blindly: every new key waits for the user.
    Manual,
}

impl From<TrustPolicy> for waxwing_core::store::TrustPolicy {
    fn from(p: TrustPolicy) -> Self {
        match p {
            TrustPolicy::BlindTrustBeforeVerification => Self::BlindTrustBeforeVerification,
            TrustPolicy::Manual => Self::Manual,
        }
    }
}

impl From<waxwing_core::store::TrustPolicy> for TrustPolicy {
    fn from(p: waxwing_core::store::TrustPolicy) -> Self {
        match p {
            waxwing_core::store::TrustPolicy::BlindTrustBeforeVerification => {
                Self::BlindTrustBeforeVerification
            }
            waxwing_core::store::TrustPolicy::Manual => Self::Manual,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationEncryption {
    Off,
    /// OMEMO 2 when all the contact's devices have it, else OMEMO 0.3.
    Auto,
    Omemo03,
    Omemo2,
}

/// An OMEMO device as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OmemoDevice {
    pub jid: String,
    pub device_id: u32,
    /// Hex of the identity key, once known: what users compare.
    pub fingerprint: Option<String>,
    pub trust: DeviceTrust,
    /// "omemo2" and/or "omemo0.3": the device lists naming it.
    pub versions: Vec<String>,
    pub last_message_ms: Option<i64>,
    /// This installation.
    pub this_device: bool,
}

/// End-to-end protection of a message, and its sending device's trust.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Security {
    pub encryption: Encryption,
    pub sender_device: Option<u32>,
    pub sender_trust: Option<DeviceTrust>,
    /// Why the message could not be decrypted (its body is a placeholder).
    pub undecryptable: Option<String>,
}

impl From<CoreTrust> for DeviceTrust {
    fn from(t: CoreTrust) -> Self {
        match t {
            CoreTrust::Undecided => Self::Undecided,
            CoreTrust::BlindlyTrusted => Self::BlindlyTrusted,
            CoreTrust::Verified => Self::Verified,
            CoreTrust::Distrusted => Self::Distrusted,
        }
    }
}

impl From<DeviceTrust> for CoreTrust {
    fn from(t: DeviceTrust) -> Self {
        match t {
            DeviceTrust::Undecided => Self::Undecided,
            DeviceTrust::BlindlyTrusted => Self::BlindlyTrusted,
            DeviceTrust::Verified => Self::Verified,
            DeviceTrust::Distrusted => Self::Distrusted,
        }
    }
}

impl From<MessageSecurity> for Security {
    fn from(s: MessageSecurity) -> Self {
        Security {
            encryption: match s.scheme {
                EncryptionScheme::None => Encryption::None,
                EncryptionScheme::Omemo03 => Encryption::Omemo03,
                EncryptionScheme::Omemo2 => Encryption::Omemo2,
            },
            sender_device: s.sender_device,
            sender_trust: s.sender_trust.map(Into::into),
            undecryptable: s.undecryptable,
        }
    }
}

impl From<waxwing_core::client::OmemoDevice> for OmemoDevice {
    fn from(d: waxwing_core::client::OmemoDevice) -> Self {
        OmemoDevice {
            jid: d.jid,
            device_id: d.device_id,
            fingerprint: d.fingerprint,
            trust: d.trust.into(),
            versions: d.versions.into_iter().map(str::to_owned).collect(),
            last_message_ms: d.last_message_ms,
            this_device: d.this_device,
        }
    }
}

fn to_core(mode: ConversationEncryption) -> CoreConversationEncryption {
    match mode {
        ConversationEncryption::Off => CoreConversationEncryption::Off,
        ConversationEncryption::Auto => CoreConversationEncryption::Auto,
        ConversationEncryption::Omemo03 => CoreConversationEncryption::Omemo03,
        ConversationEncryption::Omemo2 => CoreConversationEncryption::Omemo2,
    }
}

#[uniffi::export]
impl WaxwingClient {
    /// This installation's OMEMO device and fingerprint (created on first use).
    pub fn own_omemo_device(&self) -> Result<OmemoDevice, WaxwingError> {
        Ok(self.client()?.own_omemo_device()?.into())
    }

    /// The known OMEMO devices of `jid` (a contact, or our own account).
    pub fn omemo_devices(&self, jid: String) -> Result<Vec<OmemoDevice>, WaxwingError> {
        Ok(self
            .client()?
            .omemo_devices(&jid)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Records a trust decision. `Verified` takes the fingerprint the user
    /// compared (as `OmemoDevice.fingerprint` shows it; spaces, colons and
    /// case ignored) and fails with `FingerprintMismatch` unless it is the
    /// device's key; `BlindlyTrusted` needs a known key (`NoIdentityKey`).
    pub fn set_omemo_trust(
        &self,
        jid: String,
        device_id: u32,
        trust: DeviceTrust,
        fingerprint: Option<String>,
    ) -> Result<(), WaxwingError> {
        Ok(self
            .client()?
            .set_omemo_trust(&jid, device_id, trust.into(), fingerprint.as_deref())?)
    }

    /// Replaces the session with a device, by the user's decision (for a
    /// contact whose messages keep failing to decrypt; never done
    /// automatically). The old one still reads late messages.
    pub fn replace_omemo_session(&self, jid: String, device_id: u32) -> Result<(), WaxwingError> {
        Ok(self.client()?.replace_omemo_session(&jid, device_id)?)
    }

    /// How keys the user has not verified are treated (applies to keys
    /// learned from now on).
    pub fn set_omemo_trust_policy(&self, policy: TrustPolicy) -> Result<(), WaxwingError> {
        Ok(self.client()?.set_omemo_trust_policy(policy.into())?)
    }

    pub fn omemo_trust_policy(&self) -> Result<TrustPolicy, WaxwingError> {
        Ok(self.client()?.omemo_trust_policy()?.into())
    }

    /// Whether push notifications may carry message text (on by default);
    /// off, the push handler reports "a new message" without a preview.
    pub fn set_push_previews(&self, shown: bool) -> Result<(), WaxwingError> {
        Ok(self.client()?.set_push_previews(shown)?)
    }

    pub fn push_previews(&self) -> Result<bool, WaxwingError> {
        Ok(self.client()?.push_previews()?)
    }

    /// Takes OMEMO devices of this account off its published lists: old
    /// installations, or this one (with `own_omemo_device().device_id`)
    /// before the app removes the account from the phone. Needs a
    /// connection.
    pub fn remove_omemo_devices(&self, device_ids: Vec<u32>) -> Result<(), WaxwingError> {
        Ok(self.client()?.remove_omemo_devices(device_ids)?)
    }

    /// Turns end-to-end encryption on (or off) for a conversation. When on,
    /// a message that cannot be encrypted fails; it never goes out in plain.
    pub fn set_encryption(
        &self,
        peer: String,
        mode: ConversationEncryption,
    ) -> Result<(), WaxwingError> {
        Ok(self.client()?.set_encryption(&peer, to_core(mode))?)
    }

    pub fn encryption(&self, peer: String) -> Result<ConversationEncryption, WaxwingError> {
        Ok(match self.client()?.encryption(&peer)? {
            CoreConversationEncryption::Off => ConversationEncryption::Off,
            CoreConversationEncryption::Auto => ConversationEncryption::Auto,
            CoreConversationEncryption::Omemo03 => ConversationEncryption::Omemo03,
            CoreConversationEncryption::Omemo2 => ConversationEncryption::Omemo2,
        })
    }
}
