//! The Double Ratchet session with one other device (Signal's specification;
//! both OMEMO versions use the same mechanics with their own info strings,
//! wire formats and associated data).
//!
//! Decryption is transactional: it works on a copy and keeps it only if the
//! message authenticates and decrypts, so a forged, corrupted or replayed
//! message never changes the session. Skipped message keys (out-of-order
//! delivery) are kept, bounded per message and per session.

use std::collections::VecDeque;

use prost::Message;
use rand::seq::SliceRandom;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::kdf::{chain_step, hmac, root_step, verify_hmac, CbcHmacKeys};
use super::keys::{IdentityKeyPair, KeyPair, PeerIdentity};
use super::wire::{self, KeyExchange, RatchetHeader, RatchetMessage};
use super::x3dh::{self, Bundle, OwnPreKeys};
use super::{OmemoError, OmemoVersion};

/// Most message keys one message may make us skip (and keep).
pub const MAX_SKIP_PER_MESSAGE: u32 = 1000;
/// Most skipped message keys a session keeps; the oldest go first.
pub const MAX_SKIPPED_KEYS: usize = 1000;
/// After this many messages decrypted in a row without one sent back, send
/// an empty OMEMO message so the other device's ratchet steps forward
/// (XEP-0384, Business Rules: the heartbeat). See
/// [`RatchetSession::needs_heartbeat`].
pub const HEARTBEAT_AFTER: u32 = 53;
/// How many of the other device's past ratchet keys we remember, to tell a
/// replayed old message from a forged new ratchet step.
const PAST_REMOTE_KEYS: usize = 8;

#[derive(Clone)]
struct Chain {
    key: Zeroizing<[u8; 32]>,
    n: u32,
}

impl Chain {
    fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key, n: 0 }
    }

    /// Advances the chain and returns the message key for number `n`.
    fn next_message_key(&mut self) -> Zeroizing<[u8; 32]> {
        let (next, message_key) = chain_step(&self.key);
        self.key = next;
        self.n += 1;
        message_key
    }
}

#[derive(Clone)]
struct SkippedKey {
    dh: [u8; 32],
    n: u32,
    key: Zeroizing<[u8; 32]>,
}

/// What the initiator repeats in every message until the responder answers.
#[derive(Clone, Debug)]
struct PendingKeyExchange {
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    base_key: [u8; 32],
    own_identity: [u8; 32],
}

/// A ratchet message ready for a `<key>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKey {
    /// The bytes to base64 into the element.
    pub data: Vec<u8>,
    /// Whether it is a key exchange (`prekey="true"` in 0.3, `kex="true"` in 2).
    pub key_exchange: bool,
}

/// A session built from someone else's key exchange.
pub struct Responded {
    /// The new session.
    pub session: RatchetSession,
    /// The first message's plaintext (key material).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The one-time prekey it used: delete it and publish a replacement.
    /// Always `Some` (a key exchange without one is refused).
    pub used_pre_key_id: Option<u32>,
}

/// Leaves the plaintext (key material) out.
impl std::fmt::Debug for Responded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responded")
            .field("session", &self.session)
            .field("plaintext_len", &self.plaintext.len())
            .field("used_pre_key_id", &self.used_pre_key_id)
            .finish()
    }
}

/// A Double Ratchet session with one device.
#[derive(Clone)]
pub struct RatchetSession {
    version: OmemoVersion,
    initiator: bool,
    remote: PeerIdentity,
    /// Initiator's identity ‖ responder's identity, version-encoded.
    associated_data: Vec<u8>,
    /// [`Self::associated_data`] in the order each direction's MACs use.
    ad_sending: Vec<u8>,
    ad_receiving: Vec<u8>,
    root: Zeroizing<[u8; 32]>,
    dh_self: KeyPair,
    dh_remote: Option<[u8; 32]>,
    past_remote: VecDeque<[u8; 32]>,
    send: Option<Chain>,
    recv: Option<Chain>,
    previous_send_len: u32,
    skipped: VecDeque<SkippedKey>,
    pending: Option<PendingKeyExchange>,
    /// The base key of the key exchange that built this session (responder).
    remote_base_key: Option<[u8; 32]>,
    registration_id: u32,
    /// Messages decrypted since our last `encrypt` (for heartbeats).
    received_since_send: u32,
}

impl std::fmt::Debug for RatchetSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetSession")
            .field("version", &self.version)
            .field("initiator", &self.initiator)
            .field("remote", &self.remote.fingerprint())
            .field("confirmed", &self.pending.is_none())
            .finish_non_exhaustive()
    }
}

impl RatchetSession {
    /// Starts a session from another device's bundle (X3DH, initiator side).
    /// Its messages carry the key exchange until the device answers.
    pub fn initiate(
        version: OmemoVersion,
        own: &IdentityKeyPair,
        registration_id: u32,
        bundle: &Bundle,
    ) -> Result<Self, OmemoError> {
        // Both versions: a session without a one-time prekey could be
        // replayed into existence by anyone who saw its key exchange.
        let (pre_key_id, pre_key) = *bundle
            .pre_keys
            .choose(&mut rand::rngs::OsRng)
            .ok_or(OmemoError::MissingPreKey)?;
        let (secret, ephemeral) = x3dh::initiate(version, own, bundle, &pre_key)?;
        let own_public = own.public();
        let dh_self = KeyPair::generate();
        let (root, send_key) = root_step(version, &secret, &*dh_self.dh(&bundle.signed_pre_key)?);
        let associated_data = x3dh::associated_data(version, &own_public, &bundle.identity)?;
        let (ad_sending, ad_receiving) = directional_ad(version, true, &associated_data);
        Ok(Self {
            version,
            initiator: true,
            remote: bundle.identity,
            associated_data,
            ad_sending,
            ad_receiving,
            root,
            dh_self,
            dh_remote: Some(bundle.signed_pre_key),
            past_remote: VecDeque::new(),
            send: Some(Chain::new(send_key)),
            recv: None,
            previous_send_len: 0,
            skipped: VecDeque::new(),
            pending: Some(PendingKeyExchange {
                pre_key_id: Some(pre_key_id),
                signed_pre_key_id: bundle.signed_pre_key_id,
                base_key: ephemeral.public(),
                own_identity: x3dh::identity_encoding(version, &own_public)?,
            }),
            remote_base_key: None,
            registration_id,
            received_since_send: 0,
        })
    }

    /// Builds a session from a key exchange someone sent us (responder side)
    /// and decrypts its message. Nothing is consumed on failure.
    pub fn respond(
        version: OmemoVersion,
        own: &IdentityKeyPair,
        keys: &dyn OwnPreKeys,
        key_exchange: &[u8],
    ) -> Result<Responded, OmemoError> {
        let kex = KeyExchange::parse(version, key_exchange)?;
        let initiator = match version {
            OmemoVersion::V0_3 => PeerIdentity::from_curve25519(&kex.identity_key)?,
            OmemoVersion::V2 => PeerIdentity::from_ed25519(&kex.identity_key)?,
        };
        let signed = keys
            .signed_pre_key(kex.signed_pre_key_id)
            .ok_or(OmemoError::UnknownSignedPreKey)?;
        // Parsing refuses a key exchange without one; checked again here so
        // no path builds a replayable session.
        let pre_key_id = kex.pre_key_id.ok_or(OmemoError::MissingPreKey)?;
        let one_time = keys.pre_key(pre_key_id).ok_or(OmemoError::UnknownPreKey)?;
        let secret = x3dh::respond(version, own, &initiator, &kex.base_key, &signed, &one_time)?;
        let associated_data = x3dh::associated_data(version, &initiator, &own.public())?;
        let (ad_sending, ad_receiving) = directional_ad(version, false, &associated_data);
        let mut session = Self {
            version,
            initiator: false,
            remote: initiator,
            associated_data,
            ad_sending,
            ad_receiving,
            root: secret,
            dh_self: signed,
            dh_remote: None,
            past_remote: VecDeque::new(),
            send: None,
            recv: None,
            previous_send_len: 0,
            skipped: VecDeque::new(),
            pending: None,
            remote_base_key: Some(kex.base_key),
            registration_id: 0,
            received_since_send: 0,
        };
        let plaintext = session.decrypt(&kex.message)?;
        Ok(Responded {
            session,
            plaintext,
            used_pre_key_id: Some(pre_key_id),
        })
    }

    /// The OMEMO version of this session.
    pub fn version(&self) -> OmemoVersion {
        self.version
    }

    /// The other device's identity key.
    pub fn remote_identity(&self) -> &PeerIdentity {
        &self.remote
    }

    /// Whether the other device has answered (our messages no longer carry
    /// the key exchange).
    pub fn confirmed(&self) -> bool {
        self.pending.is_none()
    }

    /// Whether we have decrypted [`HEARTBEAT_AFTER`] or more messages from
    /// the other device since we last encrypted one for it: then send it an
    /// empty OMEMO message (a heartbeat), so its ratchet moves forward and
    /// its chain does not grow without bound. XEP-0384 words the rule as a
    /// message counter of 53 or more on a new ratchet key; counting what we
    /// decrypted since we last sent is the same in a lossless conversation.
    pub fn needs_heartbeat(&self) -> bool {
        self.received_since_send >= HEARTBEAT_AFTER
    }

    /// Whether a key exchange is the one that built this session (a
    /// duplicate or replay, to be decrypted with this session rather than
    /// replacing it).
    pub fn built_by(&self, key_exchange: &KeyExchange) -> bool {
        self.remote_base_key == Some(key_exchange.base_key)
    }

    /// Encrypts key material (or any short plaintext) for the other device.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<EncryptedKey, OmemoError> {
        let send = self.send.as_mut().ok_or(OmemoError::NoSession)?;
        self.received_since_send = 0;
        let header = RatchetHeader {
            dh: self.dh_self.public(),
            n: send.n,
            pn: self.previous_send_len,
        };
        let keys = CbcHmacKeys::derive(
            send.next_message_key().as_ref(),
            self.version.message_info(),
        );
        let mac_len = self.version.mac_len();
        let ad = &self.ad_sending;
        let message = wire::encode_message(
            self.version,
            &header,
            keys.encrypt(plaintext),
            |authenticated| hmac(keys.auth_key(), &[ad, authenticated])[..mac_len].to_vec(),
        );
        Ok(match &self.pending {
            None => EncryptedKey {
                data: message,
                key_exchange: false,
            },
            Some(pending) => {
                let kex = KeyExchange {
                    pre_key_id: pending.pre_key_id,
                    signed_pre_key_id: pending.signed_pre_key_id,
                    identity_key: pending.own_identity,
                    base_key: pending.base_key,
                    message,
                };
                EncryptedKey {
                    data: wire::encode_key_exchange(self.version, &kex, self.registration_id),
                    key_exchange: true,
                }
            }
        })
    }

    /// Decrypts a ratchet message from the other device. On error the
    /// session is unchanged.
    pub fn decrypt(&mut self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, OmemoError> {
        let message = wire::decode_message(self.version, data)?;
        let plaintext = self.decrypt_message(&message)?;
        self.received_since_send = self.received_since_send.saturating_add(1);
        Ok(plaintext)
    }

    /// Decrypts without touching `self` until the message has authenticated
    /// and decrypted: the new chain state and skipped keys are computed on
    /// the side and committed at the end (no copy of the whole session).
    fn decrypt_message(
        &mut self,
        message: &RatchetMessage,
    ) -> Result<Zeroizing<Vec<u8>>, OmemoError> {
        let header = &message.header;
        if let Some(pos) = self
            .skipped
            .iter()
            .position(|k| k.dh == header.dh && k.n == header.n)
        {
            let plaintext = self.open(&self.skipped[pos].key, message)?;
            self.skipped.remove(pos);
            self.pending = None;
            return Ok(plaintext);
        }
        if self.past_remote.contains(&header.dh) {
            // A chain we have moved past, and the key is not among the
            // skipped ones: it was used already (or evicted).
            return Err(OmemoError::DuplicateMessage);
        }
        let mut skipped = Vec::new();
        let (step, mut recv) = if self.dh_remote == Some(header.dh) {
            (None, self.recv.clone().ok_or(OmemoError::NoSession)?)
        } else {
            // The rest of the current receiving chain is kept for late messages.
            if let (Some(recv), Some(dh)) = (&self.recv, self.dh_remote) {
                skip(&mut recv.clone(), dh, header.pn, &mut skipped)?;
            }
            let step = self.ratchet_step(&header.dh)?;
            let recv = Chain::new(step.recv_key.clone());
            (Some(step), recv)
        };
        if header.n < recv.n {
            return Err(OmemoError::DuplicateMessage);
        }
        skip(&mut recv, header.dh, header.n, &mut skipped)?;
        let key = recv.next_message_key();
        let plaintext = self.open(&key, message)?;
        // Authenticated and decrypted: commit.
        if let Some(step) = step {
            self.previous_send_len = self.send.as_ref().map_or(0, |c| c.n);
            if let Some(past) = self.dh_remote {
                self.past_remote.push_back(past);
                if self.past_remote.len() > PAST_REMOTE_KEYS {
                    self.past_remote.pop_front();
                }
            }
            self.root = step.root;
            self.dh_self = step.dh_self;
            self.send = Some(Chain::new(step.send_key));
            self.dh_remote = Some(header.dh);
        }
        self.recv = Some(recv);
        for key in skipped {
            self.skipped.push_back(key);
            if self.skipped.len() > MAX_SKIPPED_KEYS {
                self.skipped.pop_front();
            }
        }
        self.pending = None;
        Ok(plaintext)
    }

    fn open(
        &self,
        message_key: &[u8; 32],
        message: &RatchetMessage,
    ) -> Result<Zeroizing<Vec<u8>>, OmemoError> {
        let keys = CbcHmacKeys::derive(message_key, self.version.message_info());
        verify_hmac(
            keys.auth_key(),
            &[&self.ad_receiving, &message.authenticated],
            &message.mac,
        )?;
        keys.decrypt(&message.ciphertext).map(Zeroizing::new)
    }

    /// The DH ratchet step on a new ratchet key from the other device,
    /// computed but not applied.
    fn ratchet_step(&self, their: &[u8; 32]) -> Result<RatchetStep, OmemoError> {
        let (root, recv_key) = root_step(self.version, &self.root, &*self.dh_self.dh(their)?);
        let dh_self = KeyPair::generate();
        let (root, send_key) = root_step(self.version, &root, &*dh_self.dh(their)?);
        Ok(RatchetStep {
            root,
            dh_self,
            recv_key,
            send_key,
        })
    }
}

/// A DH ratchet step, computed before the message proves authentic.
struct RatchetStep {
    root: Zeroizing<[u8; 32]>,
    dh_self: KeyPair,
    recv_key: Zeroizing<[u8; 32]>,
    send_key: Zeroizing<[u8; 32]>,
}

/// Advances `chain` (of ratchet key `dh`) to message `until`, keeping the
/// keys passed over in `out`.
fn skip(
    chain: &mut Chain,
    dh: [u8; 32],
    until: u32,
    out: &mut Vec<SkippedKey>,
) -> Result<(), OmemoError> {
    if until <= chain.n {
        return Ok(());
    }
    if until - chain.n > MAX_SKIP_PER_MESSAGE {
        return Err(OmemoError::TooManySkipped);
    }
    while chain.n < until {
        let n = chain.n;
        out.push(SkippedKey {
            dh,
            n,
            key: chain.next_message_key(),
        });
    }
    Ok(())
}

/// OMEMO 2 authenticates initiator ‖ responder both ways; 0.3 follows
/// libsignal: sender ‖ recipient. Returns (sending, receiving).
fn directional_ad(
    version: OmemoVersion,
    initiator: bool,
    associated_data: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (first, second) = associated_data.split_at(associated_data.len() / 2);
    let swapped = [second, first].concat();
    match (version, initiator) {
        (OmemoVersion::V2, _) => (associated_data.to_vec(), associated_data.to_vec()),
        (OmemoVersion::V0_3, true) => (associated_data.to_vec(), swapped),
        (OmemoVersion::V0_3, false) => (swapped, associated_data.to_vec()),
    }
}

impl KeyExchange {
    /// Decodes a key exchange (`prekey="true"` / `kex="true"` key element).
    pub fn parse(version: OmemoVersion, data: &[u8]) -> Result<Self, OmemoError> {
        wire::decode_key_exchange(version, data)
    }
}

// Persistence: a protobuf record, compact and extensible. The records hold
// root, chain and message keys: every one is zeroized when dropped.

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
struct SessionRecord {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(bool, tag = "2")]
    initiator: bool,
    #[prost(bytes = "vec", tag = "3")]
    remote_curve: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "4")]
    remote_ed25519: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "5")]
    associated_data: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    root: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    dh_self_secret: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "8")]
    dh_remote: Option<Vec<u8>>,
    #[prost(message, optional, tag = "9")]
    send: Option<ChainRecord>,
    #[prost(message, optional, tag = "10")]
    recv: Option<ChainRecord>,
    #[prost(uint32, tag = "11")]
    previous_send_len: u32,
    #[prost(message, repeated, tag = "12")]
    skipped: Vec<SkippedRecord>,
    #[prost(message, optional, tag = "13")]
    pending: Option<PendingRecord>,
    #[prost(bytes = "vec", optional, tag = "14")]
    remote_base_key: Option<Vec<u8>>,
    #[prost(uint32, tag = "15")]
    registration_id: u32,
    #[prost(bytes = "vec", repeated, tag = "16")]
    past_remote: Vec<Vec<u8>>,
    /// Absent in records of older versions: loads as 0.
    #[prost(uint32, optional, tag = "17")]
    received_since_send: Option<u32>,
}

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
struct ChainRecord {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(uint32, tag = "2")]
    n: u32,
}

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
struct SkippedRecord {
    #[prost(bytes = "vec", tag = "1")]
    dh: Vec<u8>,
    #[prost(uint32, tag = "2")]
    n: u32,
    #[prost(bytes = "vec", tag = "3")]
    key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message, Zeroize)]
struct PendingRecord {
    #[prost(uint32, optional, tag = "1")]
    pre_key_id: Option<u32>,
    #[prost(uint32, tag = "2")]
    signed_pre_key_id: u32,
    #[prost(bytes = "vec", tag = "3")]
    base_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    own_identity: Vec<u8>,
}

fn arr(bytes: &[u8]) -> Result<[u8; 32], OmemoError> {
    bytes
        .try_into()
        .map_err(|_| OmemoError::Malformed("stored session"))
}

impl RatchetSession {
    /// The session's state for the encrypted store (contains secrets).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let chain = |c: &Chain| ChainRecord {
            key: c.key.to_vec(),
            n: c.n,
        };
        let record = SessionRecord {
            version: match self.version {
                OmemoVersion::V0_3 => 3,
                OmemoVersion::V2 => 2,
            },
            initiator: self.initiator,
            remote_curve: self.remote.curve25519().to_vec(),
            remote_ed25519: self.remote.ed25519().map(|k| k.to_vec()),
            associated_data: self.associated_data.clone(),
            root: self.root.to_vec(),
            dh_self_secret: self.dh_self.secret().to_vec(),
            dh_remote: self.dh_remote.map(|k| k.to_vec()),
            send: self.send.as_ref().map(chain),
            recv: self.recv.as_ref().map(chain),
            previous_send_len: self.previous_send_len,
            skipped: self
                .skipped
                .iter()
                .map(|k| SkippedRecord {
                    dh: k.dh.to_vec(),
                    n: k.n,
                    key: k.key.to_vec(),
                })
                .collect(),
            pending: self.pending.as_ref().map(|p| PendingRecord {
                pre_key_id: p.pre_key_id,
                signed_pre_key_id: p.signed_pre_key_id,
                base_key: p.base_key.to_vec(),
                own_identity: p.own_identity.to_vec(),
            }),
            remote_base_key: self.remote_base_key.map(|k| k.to_vec()),
            registration_id: self.registration_id,
            past_remote: self.past_remote.iter().map(|k| k.to_vec()).collect(),
            received_since_send: Some(self.received_since_send),
        };
        Zeroizing::new(record.encode_to_vec())
    }

    /// A session back from the store.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OmemoError> {
        let r =
            SessionRecord::decode(bytes).map_err(|_| OmemoError::Malformed("stored session"))?;
        let version = match r.version {
            3 => OmemoVersion::V0_3,
            2 => OmemoVersion::V2,
            _ => return Err(OmemoError::Malformed("stored session")),
        };
        let remote = match &r.remote_ed25519 {
            Some(ed) => PeerIdentity::from_ed25519(ed)?,
            None => PeerIdentity::from_curve25519(&arr(&r.remote_curve)?)?,
        };
        let chain = |c: &ChainRecord| -> Result<Chain, OmemoError> {
            Ok(Chain {
                key: Zeroizing::new(arr(&c.key)?),
                n: c.n,
            })
        };
        let (ad_sending, ad_receiving) = directional_ad(version, r.initiator, &r.associated_data);
        Ok(Self {
            version,
            initiator: r.initiator,
            remote,
            associated_data: r.associated_data.clone(),
            ad_sending,
            ad_receiving,
            root: Zeroizing::new(arr(&r.root)?),
            dh_self: KeyPair::from_secret(arr(&r.dh_self_secret)?),
            dh_remote: r.dh_remote.as_deref().map(arr).transpose()?,
            past_remote: r
                .past_remote
                .iter()
                .map(|k| arr(k))
                .collect::<Result<_, _>>()?,
            send: r.send.as_ref().map(chain).transpose()?,
            recv: r.recv.as_ref().map(chain).transpose()?,
            previous_send_len: r.previous_send_len,
            skipped: r
                .skipped
                .iter()
                .map(|k| {
                    Ok(SkippedKey {
                        dh: arr(&k.dh)?,
                        n: k.n,
                        key: Zeroizing::new(arr(&k.key)?),
                    })
                })
                .collect::<Result<_, OmemoError>>()?,
            pending: r
                .pending
                .as_ref()
                .map(|p| -> Result<_, OmemoError> {
                    Ok(PendingKeyExchange {
                        pre_key_id: p.pre_key_id,
                        signed_pre_key_id: p.signed_pre_key_id,
                        base_key: arr(&p.base_key)?,
                        own_identity: arr(&p.own_identity)?,
                    })
                })
                .transpose()?,
            remote_base_key: r.remote_base_key.as_deref().map(arr).transpose()?,
            registration_id: r.registration_id,
            received_since_send: r.received_since_send.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroized_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn records_holding_keys_are_zeroized_on_drop() {
        zeroized_on_drop::<SessionRecord>();
        zeroized_on_drop::<ChainRecord>();
        zeroized_on_drop::<SkippedRecord>();
    }
}
