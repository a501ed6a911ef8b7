//! The protobuf wire formats of both OMEMO versions (XEP-0384 §5.1 for
//! OMEMO 2; libsignal's `WhisperTextProtocol.proto` for 0.3): ratchet
//! messages and key exchanges, encoded and decoded with typed errors.
//!
//! | | OMEMO 0.3 | OMEMO 2 |
//! |---|---|---|
//! | ratchet message | `0x33 ‖ SignalMessage ‖ mac(8)` | `OMEMOAuthenticatedMessage{mac(16), OMEMOMessage}` |
//! | key exchange | `0x33 ‖ PreKeySignalMessage` | `OMEMOKeyExchange` |
//! | public keys | `0x05 ‖ 32 bytes` | raw 32 bytes |

use prost::Message;

use super::{OmemoError, OmemoVersion};

/// No honest key element comes near this; refuse bigger input unparsed.
pub const MAX_KEY_ELEMENT_LEN: usize = 4096;

/// libsignal's current message version, in both nibbles.
const VERSION_BYTE_0_3: u8 = 0x33;
/// libsignal's "DJB" key type prefix on Curve25519 public keys.
const DJB_TYPE: u8 = 0x05;

#[derive(Clone, PartialEq, Message)]
struct SignalMessage {
    #[prost(bytes = "vec", optional, tag = "1")]
    ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PreKeySignalMessage {
    #[prost(uint32, optional, tag = "1")]
    pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    signed_pre_key_id: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
struct OmemoMessage {
    #[prost(uint32, optional, tag = "1")]
    n: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pn: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    dh_pub: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct OmemoAuthenticatedMessage {
    #[prost(bytes = "vec", optional, tag = "1")]
    mac: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    message: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct OmemoKeyExchange {
    #[prost(uint32, optional, tag = "1")]
    pk_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    spk_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    ik: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ek: Option<Vec<u8>>,
    // An embedded OMEMOAuthenticatedMessage; kept as bytes (same encoding).
    #[prost(bytes = "vec", optional, tag = "5")]
    message: Option<Vec<u8>>,
}

/// The ratchet header every message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatchetHeader {
    /// The sender's current ratchet public key.
    pub dh: [u8; 32],
    /// The message's number in the sending chain.
    pub n: u32,
    /// The length of the sender's previous sending chain.
    pub pn: u32,
}

/// A decoded ratchet message.
#[derive(Debug, Clone)]
pub(crate) struct RatchetMessage {
    pub header: RatchetHeader,
    pub ciphertext: Vec<u8>,
    pub mac: Vec<u8>,
    /// The exact bytes the MAC covers (after the associated data).
    pub authenticated: Vec<u8>,
}

/// A decoded key exchange (the first messages of a session, until the
/// responder answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExchange {
    /// The responder's one-time prekey used. Always `Some` in a parsed key
    /// exchange: one without is refused ([`OmemoError::MissingPreKey`]).
    pub pre_key_id: Option<u32>,
    /// The responder's signed prekey used.
    pub signed_pre_key_id: u32,
    /// The initiator's identity key: Curve25519 for 0.3, Ed25519 for 2.
    pub identity_key: [u8; 32],
    /// The initiator's ephemeral ("base") key.
    pub base_key: [u8; 32],
    /// The first ratchet message, encoded.
    pub message: Vec<u8>,
}

fn key_32(bytes: Option<Vec<u8>>, what: &'static str) -> Result<[u8; 32], OmemoError> {
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or(OmemoError::Malformed(what))
}

/// Parses a 0.3 public key: `0x05 ‖ key` (a bare 32-byte key is tolerated).
pub fn parse_djb_key(bytes: &[u8]) -> Result<[u8; 32], OmemoError> {
    match bytes {
        [DJB_TYPE, rest @ ..] if rest.len() == 32 => Ok(rest.try_into().expect("32 bytes")),
        _ if bytes.len() == 32 => Ok(bytes.try_into().expect("32 bytes")),
        _ => Err(OmemoError::InvalidKey),
    }
}

/// Serialises a 0.3 public key.
pub fn djb_key(key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(DJB_TYPE);
    out.extend_from_slice(key);
    out
}

fn check_len(bytes: &[u8]) -> Result<(), OmemoError> {
    if bytes.len() > MAX_KEY_ELEMENT_LEN {
        return Err(OmemoError::TooLarge);
    }
    Ok(())
}

/// Encodes a ratchet message; `mac` receives the authenticated bytes and
/// returns the (truncated) tag.
pub(crate) fn encode_message(
    version: OmemoVersion,
    header: &RatchetHeader,
    ciphertext: Vec<u8>,
    mac: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    match version {
        OmemoVersion::V0_3 => {
            let body = SignalMessage {
                ratchet_key: Some(djb_key(&header.dh)),
                counter: Some(header.n),
                previous_counter: Some(header.pn),
                ciphertext: Some(ciphertext),
            };
            let mut out = Vec::with_capacity(body.encoded_len() + 9);
            out.push(VERSION_BYTE_0_3);
            body.encode(&mut out).expect("Vec grows");
            let tag = mac(&out);
            out.extend_from_slice(&tag);
            out
        }
        OmemoVersion::V2 => {
            let message = OmemoMessage {
                n: Some(header.n),
                pn: Some(header.pn),
                dh_pub: Some(header.dh.to_vec()),
                ciphertext: Some(ciphertext),
            }
            .encode_to_vec();
            let tag = mac(&message);
            OmemoAuthenticatedMessage {
                mac: Some(tag),
                message: Some(message),
            }
            .encode_to_vec()
        }
    }
}

/// Decodes a ratchet message (the MAC is checked later, by the ratchet).
pub(crate) fn decode_message(
    version: OmemoVersion,
    bytes: &[u8],
) -> Result<RatchetMessage, OmemoError> {
    check_len(bytes)?;
    let mac_len = version.mac_len();
    let (authenticated, mac, inner) = match version {
        OmemoVersion::V0_3 => {
            if bytes.len() < 1 + mac_len {
                return Err(OmemoError::Malformed("message too short"));
            }
            if bytes[0] >> 4 != 3 {
                return Err(OmemoError::UnsupportedVersion);
            }
            let (authenticated, mac) = bytes.split_at(bytes.len() - mac_len);
            let body = SignalMessage::decode(&authenticated[1..])
                .map_err(|_| OmemoError::Malformed("undecodable SignalMessage"))?;
            let dh = parse_djb_key(
                &body
                    .ratchet_key
                    .ok_or(OmemoError::Malformed("no ratchet key"))?,
            )?;
            let header = RatchetHeader {
                dh,
                n: body.counter.ok_or(OmemoError::Malformed("no counter"))?,
                pn: body.previous_counter.unwrap_or(0),
            };
            (
                authenticated.to_vec(),
                mac.to_vec(),
                (header, body.ciphertext),
            )
        }
        OmemoVersion::V2 => {
            let outer = OmemoAuthenticatedMessage::decode(bytes)
                .map_err(|_| OmemoError::Malformed("undecodable OMEMOAuthenticatedMessage"))?;
            let mac = outer.mac.ok_or(OmemoError::Malformed("no mac"))?;
            if mac.len() != mac_len {
                return Err(OmemoError::Malformed("mac length"));
            }
            let authenticated = outer.message.ok_or(OmemoError::Malformed("no message"))?;
            let body = OmemoMessage::decode(authenticated.as_slice())
                .map_err(|_| OmemoError::Malformed("undecodable OMEMOMessage"))?;
            let header = RatchetHeader {
                dh: key_32(body.dh_pub, "dh_pub")?,
                n: body.n.ok_or(OmemoError::Malformed("no n"))?,
                pn: body.pn.ok_or(OmemoError::Malformed("no pn"))?,
            };
            (authenticated, mac, (header, body.ciphertext))
        }
    };
    let (header, ciphertext) = inner;
    Ok(RatchetMessage {
        header,
        ciphertext: ciphertext.ok_or(OmemoError::Malformed("no ciphertext"))?,
        mac,
        authenticated,
    })
}

/// Encodes a key exchange around its first ratchet message.
pub(crate) fn encode_key_exchange(
    version: OmemoVersion,
    kex: &KeyExchange,
    registration_id: u32,
) -> Vec<u8> {
    match version {
        OmemoVersion::V0_3 => {
            let body = PreKeySignalMessage {
                pre_key_id: kex.pre_key_id,
                base_key: Some(djb_key(&kex.base_key)),
                identity_key: Some(djb_key(&kex.identity_key)),
                message: Some(kex.message.clone()),
                registration_id: Some(registration_id),
                signed_pre_key_id: Some(kex.signed_pre_key_id),
            };
            let mut out = Vec::with_capacity(body.encoded_len() + 1);
            out.push(VERSION_BYTE_0_3);
            body.encode(&mut out).expect("Vec grows");
            out
        }
        OmemoVersion::V2 => OmemoKeyExchange {
            pk_id: kex.pre_key_id,
            spk_id: Some(kex.signed_pre_key_id),
            ik: Some(kex.identity_key.to_vec()),
            ek: Some(kex.base_key.to_vec()),
            message: Some(kex.message.clone()),
        }
        .encode_to_vec(),
    }
}

/// Decodes a key exchange.
pub(crate) fn decode_key_exchange(
    version: OmemoVersion,
    bytes: &[u8],
) -> Result<KeyExchange, OmemoError> {
    check_len(bytes)?;
    match version {
        OmemoVersion::V0_3 => {
            let (&first, rest) = bytes
                .split_first()
                .ok_or(OmemoError::Malformed("empty key exchange"))?;
            if first >> 4 != 3 {
                return Err(OmemoError::UnsupportedVersion);
            }
            let body = PreKeySignalMessage::decode(rest)
                .map_err(|_| OmemoError::Malformed("undecodable PreKeySignalMessage"))?;
            Ok(KeyExchange {
                // libsignal makes it optional, but a key exchange without it
                // can be replayed: refuse it.
                pre_key_id: Some(body.pre_key_id.ok_or(OmemoError::MissingPreKey)?),
                signed_pre_key_id: body
                    .signed_pre_key_id
                    .ok_or(OmemoError::Malformed("no signed prekey id"))?,
                identity_key: parse_djb_key(
                    &body
                        .identity_key
                        .ok_or(OmemoError::Malformed("no identity key"))?,
                )?,
                base_key: parse_djb_key(
                    &body.base_key.ok_or(OmemoError::Malformed("no base key"))?,
                )?,
                message: body.message.ok_or(OmemoError::Malformed("no message"))?,
            })
        }
        OmemoVersion::V2 => {
            let body = OmemoKeyExchange::decode(bytes)
                .map_err(|_| OmemoError::Malformed("undecodable OMEMOKeyExchange"))?;
            Ok(KeyExchange {
                pre_key_id: Some(body.pk_id.ok_or(OmemoError::MissingPreKey)?),
                signed_pre_key_id: body.spk_id.ok_or(OmemoError::Malformed("no spk_id"))?,
                identity_key: key_32(body.ik, "ik")?,
                base_key: key_32(body.ek, "ek")?,
                message: body.message.ok_or(OmemoError::Malformed("no message"))?,
            })
        }
    }
}
