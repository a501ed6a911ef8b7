//! X3DH key agreement (the Signal specification, as OMEMO uses it): a
//! device's published bundle, the initiator's and the responder's side.
//!
//! Shared secret = HKDF-SHA-256(salt 32×0, 32×0xFF ‖ DH1 ‖ DH2 ‖ DH3 ‖ DH4,
//! version's info, 32 bytes) with DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B),
//! DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B). DH4 is never left out (the
//! Signal spec allows it): without a one-time prekey a key exchange can be
//! replayed, so both sides refuse one ([`OmemoError::MissingPreKey`]).

use zeroize::Zeroizing;

use super::kdf::hkdf_zero_salt;
use super::keys::{IdentityKeyPair, KeyPair, PeerIdentity};
use super::wire::{djb_key, parse_djb_key};
use super::{OmemoError, OmemoVersion};

/// Another device's bundle, verified: its identity signed its signed prekey.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The device's identity key.
    pub identity: PeerIdentity,
    /// Id of the signed prekey.
    pub signed_pre_key_id: u32,
    /// The signed prekey (Curve25519).
    pub signed_pre_key: [u8; 32],
    /// One-time prekeys: id and Curve25519 key.
    pub pre_keys: Vec<(u32, [u8; 32])>,
}

impl Bundle {
    /// Builds a bundle from its published parts, checking the signature.
    /// `identity_key` is `0x05 ‖ Curve25519` for 0.3 and Ed25519 for 2.
    pub fn verified(
        version: OmemoVersion,
        identity_key: &[u8],
        signed_pre_key_id: u32,
        signed_pre_key: &[u8],
        signature: &[u8],
        pre_keys: Vec<(u32, [u8; 32])>,
    ) -> Result<Self, OmemoError> {
        let (mut identity, spk) = match version {
            OmemoVersion::V0_3 => (
                PeerIdentity::from_curve25519(&parse_djb_key(identity_key)?)?,
                parse_djb_key(signed_pre_key)?,
            ),
            OmemoVersion::V2 => (
                PeerIdentity::from_ed25519(identity_key)?,
                signed_pre_key
                    .try_into()
                    .map_err(|_| OmemoError::InvalidKey)?,
            ),
        };
        identity.verify(version, &signed_pre_key_encoding(version, &spk), signature)?;
        Ok(Self {
            identity,
            signed_pre_key_id,
            signed_pre_key: spk,
            pre_keys,
        })
    }
}

/// What a signed prekey's signature covers.
pub fn signed_pre_key_encoding(version: OmemoVersion, key: &[u8; 32]) -> Vec<u8> {
    match version {
        OmemoVersion::V0_3 => djb_key(key),
        OmemoVersion::V2 => key.to_vec(),
    }
}

/// The responder's secret prekeys, looked up by the ids a key exchange names.
pub trait OwnPreKeys {
    /// A signed prekey (current or recently rotated out).
    fn signed_pre_key(&self, id: u32) -> Option<KeyPair>;
    /// A one-time prekey not used yet.
    fn pre_key(&self, id: u32) -> Option<KeyPair>;
}

/// The identity key as a version writes it in key exchanges and associated
/// data.
pub(crate) fn identity_encoding(
    version: OmemoVersion,
    identity: &PeerIdentity,
) -> Result<[u8; 32], OmemoError> {
    match version {
        OmemoVersion::V0_3 => Ok(identity.curve25519()),
        OmemoVersion::V2 => identity.ed25519().ok_or(OmemoError::InvalidKey),
    }
}

/// Associated data: initiator's identity ‖ responder's identity.
pub(crate) fn associated_data(
    version: OmemoVersion,
    initiator: &PeerIdentity,
    responder: &PeerIdentity,
) -> Result<Vec<u8>, OmemoError> {
    let (a, b) = (
        identity_encoding(version, initiator)?,
        identity_encoding(version, responder)?,
    );
    Ok(match version {
        OmemoVersion::V0_3 => [djb_key(&a), djb_key(&b)].concat(),
        OmemoVersion::V2 => [a, b].concat(),
    })
}

fn shared_secret(version: OmemoVersion, dhs: &[&[u8; 32]]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&[0xff; 32]);
    for dh in dhs {
        ikm.extend_from_slice(*dh);
    }
    hkdf_zero_salt::<32>(&ikm, version.x3dh_info())
}

/// The initiator's side: the shared secret and the ephemeral key sent along.
pub(crate) fn initiate(
    version: OmemoVersion,
    own: &IdentityKeyPair,
    bundle: &Bundle,
    pre_key: &[u8; 32],
) -> Result<(Zeroizing<[u8; 32]>, KeyPair), OmemoError> {
    let ephemeral = KeyPair::generate();
    let dh1 = own.dh(&bundle.signed_pre_key)?;
    let dh2 = ephemeral.dh(&bundle.identity.curve25519())?;
    let dh3 = ephemeral.dh(&bundle.signed_pre_key)?;
    let dh4 = ephemeral.dh(pre_key)?;
    Ok((shared_secret(version, &[&dh1, &dh2, &dh3, &dh4]), ephemeral))
}

/// The responder's side, from the initiator's identity and base key and our
/// secret prekeys.
pub(crate) fn respond(
    version: OmemoVersion,
    own: &IdentityKeyPair,
    initiator: &PeerIdentity,
    base_key: &[u8; 32],
    signed_pre_key: &KeyPair,
    pre_key: &KeyPair,
) -> Result<Zeroizing<[u8; 32]>, OmemoError> {
    let dh1 = signed_pre_key.dh(&initiator.curve25519())?;
    let dh2 = own.dh(base_key)?;
    let dh3 = signed_pre_key.dh(base_key)?;
    let dh4 = pre_key.dh(base_key)?;
    Ok(shared_secret(version, &[&dh1, &dh2, &dh3, &dh4]))
}
