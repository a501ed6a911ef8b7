//! The two OMEMO versions and the parameters that differ between them
//! (see shared guide omemo.md and XEP-0384 §7 for OMEMO 2).

use serde::{Deserialize, Serialize};

/// An OMEMO protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OmemoVersion {
    /// `eu.siacs.conversations.axolotl`: libsignal's formats, AES-128-GCM payloads.
    V0_3,
    /// `urn:xmpp:omemo:2`: own protobufs, SCE envelopes, AES-256-CBC + HMAC payloads.
    V2,
}

impl OmemoVersion {
    /// Both versions, newest first (the order of preference).
    pub const ALL: [OmemoVersion; 2] = [OmemoVersion::V2, OmemoVersion::V0_3];

    /// The XML namespace of the version's elements.
    pub fn namespace(self) -> &'static str {
        match self {
            OmemoVersion::V0_3 => "eu.siacs.conversations.axolotl",
            OmemoVersion::V2 => "urn:xmpp:omemo:2",
        }
    }

    /// The name used in APIs and the command line.
    pub fn label(self) -> &'static str {
        match self {
            OmemoVersion::V0_3 => "omemo0.3",
            OmemoVersion::V2 => "omemo2",
        }
    }

    pub(crate) fn x3dh_info(self) -> &'static [u8] {
        match self {
            OmemoVersion::V0_3 => b"WhisperText",
            OmemoVersion::V2 => b"OMEMO X3DH",
        }
    }

    pub(crate) fn root_info(self) -> &'static [u8] {
        match self {
            OmemoVersion::V0_3 => b"WhisperRatchet",
            OmemoVersion::V2 => b"OMEMO Root Chain",
        }
    }

    pub(crate) fn message_info(self) -> &'static [u8] {
        match self {
            OmemoVersion::V0_3 => b"WhisperMessageKeys",
            OmemoVersion::V2 => b"OMEMO Message Key Material",
        }
    }

    /// Length of the truncated HMAC on ratchet messages.
    pub(crate) fn mac_len(self) -> usize {
        match self {
            OmemoVersion::V0_3 => 8,
            OmemoVersion::V2 => 16,
        }
    }
}
