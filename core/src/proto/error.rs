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
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SessionError::TlsUnavailable
                | SessionError::TlsRefused
                | SessionError::NoCommonMechanism
                | SessionError::AuthFailed { .. }
                | SessionError::Sasl(_)
        )
    }
}

/// A command the session cannot carry out in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the session is not online")]
    NotOnline,
}
