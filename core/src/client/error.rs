//! The client's error type: a small set of outcomes an app can act on.

use crate::proto::sasl::SaslError;
use crate::proto::SessionError;
use crate::store::{OpenStoreError, StoreError};
use crate::transport::TransportError;

/// What went wrong, in terms an app can show or act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Wrong password or no acceptable mechanism: ask the user; no retry.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The server's certificate is not trusted: never downgraded.
    #[error("the server's certificate is not trusted")]
    UntrustedCertificate,
    /// TLS failed for another reason, or the server offers no TLS: retried
    /// with backoff, never downgraded.
    #[error("a secure connection could not be established")]
    Tls,
    /// The server rejected our TLS channel binding for an account where
    /// binding has worked (or it says it supports ours), or the server's
    /// XEP-0474 hash shows that the mechanisms or binding types it
    /// advertised were altered on the way: the connection may be
    /// intercepted. Not retried, never downgraded to an unbound login.
    #[error("the secure connection could not be verified (channel binding rejected)")]
    ChannelBindingRejected,
    /// Network trouble; the client retries with backoff.
    #[error("network error")]
    Network,
    /// The server broke the protocol (bad XML, stream error).
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("not connected")]
    NotConnected,
    #[error("not a valid JID")]
    InvalidJid,
    /// The server refused a request (roster edit), with its condition.
    #[error("the server refused: {condition}")]
    Refused { condition: String },
    #[error("the server did not answer in time")]
    Timeout,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("store: {0}")]
    OpenStore(#[from] OpenStoreError),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No such OMEMO device is known for that JID.
    #[error("unknown OMEMO device")]
    UnknownDevice,
    /// The fingerprint given to verify a device is not its identity key's.
    #[error("the fingerprint does not match the device's identity key")]
    FingerprintMismatch,
    /// The device's identity key is not known yet (no bundle or message
    /// from it): there is nothing to verify or trust.
    #[error("the device's identity key is not known yet")]
    NoIdentityKey,
}

impl ClientError {
    /// Whether reconnecting could help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ClientError::AuthenticationFailed
                | ClientError::ChannelBindingRejected
                | ClientError::UntrustedCertificate
                | ClientError::Config(_)
                | ClientError::InvalidJid
        )
    }
}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::AuthFailed { condition }
                if crate::proto::error::is_transient_auth_failure(&condition) =>
            {
                ClientError::Protocol(format!("the server cannot authenticate now: {condition}"))
            }
            SessionError::ChannelBindingRejected
            | SessionError::Sasl(SaslError::DowngradeDetected) => {
                ClientError::ChannelBindingRejected
            }
            SessionError::AuthFailed { .. }
            | SessionError::NoCommonMechanism
            | SessionError::Sasl(_) => ClientError::AuthenticationFailed,
            SessionError::TlsUnavailable | SessionError::TlsRefused => ClientError::Tls,
            SessionError::ConnectionLost => ClientError::Network,
            SessionError::Timeout(_) => ClientError::Timeout,
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

impl From<TransportError> for ClientError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::UntrustedCertificate => ClientError::UntrustedCertificate,
            // Retried with backoff (never without TLS).
            TransportError::TlsHandshake => ClientError::Tls,
            TransportError::TlsSetup => {
                ClientError::Config("TLS could not be set up on this device".into())
            }
            TransportError::VerifierNotInitialised => ClientError::Config(
                "call WaxwingAndroid.init(context) once before the first login".into(),
            ),
            TransportError::BadCaFile => {
                ClientError::Config("the extra CA file holds no certificate".into())
            }
            TransportError::InvalidDomain => ClientError::InvalidJid,
            TransportError::Network(_) | TransportError::Unreachable => ClientError::Network,
        }
    }
}
