//! Typed failures of the OMEMO engine. Each maps to an "undecryptable"
//! message item with its reason; none of them changes a session.

/// Why an OMEMO operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OmemoError {
    /// The bytes are not a well-formed message of the expected version:
    /// truncated, missing fields, wrong lengths.
    #[error("malformed OMEMO data: {0}")]
    Malformed(&'static str),
    /// Larger than any honest message; refused before parsing.
    #[error("OMEMO data too large")]
    TooLarge,
    /// An OMEMO 0.3 message with a version byte other than 3.
    #[error("unsupported OMEMO message version")]
    UnsupportedVersion,
    /// The message's MAC does not verify: forged, corrupted, or not for the
    /// session it was tried with.
    #[error("message authentication failed")]
    BadMac,
    /// A public key that is not a valid curve point, or one of low order.
    #[error("invalid public key")]
    InvalidKey,
    /// The signed prekey's signature does not verify under the identity key.
    #[error("bad signed prekey signature")]
    BadSignature,
    /// A key exchange names a one-time prekey we do not have (used already,
    /// or never ours).
    #[error("unknown prekey")]
    UnknownPreKey,
    /// A key exchange without a one-time prekey, or a bundle offering none.
    /// Refused both ways: without the one-time prekey's DH the key exchange
    /// can be replayed to build the same session again (Conversations
    /// rejects such OMEMO 0.3 messages too; OMEMO 2 requires the prekey).
    #[error("no one-time prekey")]
    MissingPreKey,
    /// A key exchange names a signed prekey we do not have.
    #[error("unknown signed prekey")]
    UnknownSignedPreKey,
    /// The device presented a different identity key than the one we know.
    #[error("identity key changed")]
    IdentityChanged,
    /// A message claims to be further ahead than we are willing to skip.
    #[error("too many skipped messages")]
    TooManySkipped,
    /// The message's key was used already (a replay) or has been forgotten.
    #[error("message already decrypted or too old")]
    DuplicateMessage,
    /// A normal message arrived for a device we have no session with.
    #[error("no session with this device")]
    NoSession,
    /// The payload does not authenticate with the key the sender gave us.
    #[error("payload failed to authenticate")]
    PayloadAuthentication,
    /// The message carries no key for this device.
    #[error("message not encrypted for this device")]
    NotForThisDevice,
}
