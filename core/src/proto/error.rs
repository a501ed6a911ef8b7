//! Typed failures of the session engine.

use super::sasl::SaslError;
use super::sm::SmError;
use crate::xml::XmlError;

/// Why a session ended or could not be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the server sent bad XML: {0}")]
    Xml(#[from] XmlError),
    #[error("the server closed the stream with <{condition}/>")]
    StreamError { condition: String },
    #[error("the server does not offer TLS, and Waxwing never talks in plaintext")]
    TlsUnavailable,
    #[error("the server refused to start TLS")]
    TlsRefused,
    #[error("the server offers no SASL mechanism Waxwing accepts")]
    NoCommonMechanism,
    #[error("authentication failed: <{condition}/>")]
    AuthFailed { condition: String },
    /// The server refused our TLS channel binding although a bound login
    /// worked with it before, or it says it supports our binding type
    /// (XEP-0440): the TLS connection it sees is not ours — a possible man
    /// in the middle. Never retried without binding.
    #[error("the server rejected our TLS channel binding (possible interception)")]
    ChannelBindingRejected,
    #[error("the server broke the SASL exchange: {0}")]
    Sasl(#[from] SaslError),
    #[error("resource binding failed: <{condition}/>")]
    BindFailed { condition: String },
    #[error("expected {expected}, the server sent <{got}/>")]
    UnexpectedElement { expected: &'static str, got: String },
    #[error("stream management: {0}")]
    StreamManagement(#[from] SmError),
    #[error("the server did not answer in time ({0:?})")]
    Timeout(TimeoutKind),
    #[error("the connection was lost")]
    ConnectionLost,
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Negotiation,
    Ping,
    Close,
}

impl SessionError {
    /// True when trying again cannot help (wrong password, a server we will
    /// not talk to): the client must stop instead of looping.
    ///
    /// A stripped or refused STARTTLS is not: it may be an attacker on this
    /// network or a broken middlebox, and trying again later (never without
    /// TLS) is safe. Nor are the SASL conditions that say "not now"
    /// (RFC 6120 §6.5: `temporary-auth-failure`; `aborted`).
    pub fn is_permanent(&self) -> bool {
        match self {
            SessionError::AuthFailed { condition } => !is_transient_auth_failure(condition),
            SessionError::NoCommonMechanism
            | SessionError::Sasl(_)
            | SessionError::ChannelBindingRejected => true,
            _ => false,
        }
    }
}

/// SASL failure conditions that say "try again later", not "wrong".
pub fn is_transient_auth_failure(condition: &str) -> bool {
    matches!(condition, "temporary-auth-failure" | "aborted")
}

/// A command the session cannot carry out in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the session is not online")]
    NotOnline,
}
