//! Keys: the account's Ed25519 identity key (one for both OMEMO versions),
//! X25519 key pairs for prekeys and ratchets, the identities of other devices,
//! and signed-prekey signatures.
//!
//! OMEMO 0.3 publishes identity keys in their Curve25519 (Montgomery) form and
//! signs with XEdDSA. The Ed25519 sign bit is lost in the Montgomery form:
//! libsignal-style signers carry it in bit 7 of the signature's last byte,
//! XEdDSA proper signs so that the key with sign bit 0 verifies. We sign the
//! latter way (readable by both kinds of verifier) and verify both. OMEMO 2
//! publishes the Ed25519 key and signs with plain Ed25519.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{OmemoError, OmemoVersion};

/// Fills an array from the thread's CSPRNG (ChaCha, reseeded from the
/// operating system), for per-message keys: no system call per message.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

/// X25519 of a secret scalar and a peer's public key. An all-zero result
/// means the peer sent a low-order point; refuse it rather than derive keys
/// an attacker knows.
///
/// Computed on the Edwards form when the key is on the curve (true of every
/// honest key): dalek's Edwards multiplication uses AVX2 where the CPU has
/// it, about twice as fast as the Montgomery ladder. `mul_clamped` keeps the
/// scalar unreduced, so the result equals RFC 7748's X25519 even for points
/// with a small-order component; keys on the twist take the ladder.
fn x25519(secret: &[u8; 32], their_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OmemoError> {
    let point = MontgomeryPoint(*their_public);
    let shared = Zeroizing::new(match point.to_edwards(0) {
        Some(edwards) => edwards.mul_clamped(*secret).to_montgomery().to_bytes(),
        None => point.mul_clamped(*secret).to_bytes(),
    });
    // Constant time: the shared secret must not leak through timing.
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(OmemoError::InvalidKey);
    }
    Ok(shared)
}

/// p = 2^255 − 19, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether 32 little-endian bytes are the canonical encoding of a field
/// element: below p, so bit 255 clear too. Curve arithmetic reduces the
/// others silently, which would give one key two encodings (and two
/// fingerprints). Public keys only: not constant time.
fn is_canonical_field_element(bytes: &[u8; 32]) -> bool {
    for (b, p) in bytes.iter().zip(FIELD_PRIME.iter()).rev() {
        if b != p {
            return b < p;
        }
    }
    false // equal to p
}

/// The account device's long-term identity key. The secret seed is zeroized
/// on drop (ed25519-dalek's `zeroize` feature).
pub struct IdentityKeyPair {
    signing: SigningKey,
}

impl std::fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKeyPair").finish_non_exhaustive()
    }
}

impl IdentityKeyPair {
    /// A new random identity.
    pub fn generate() -> Self {
        // The long-term key comes straight from the operating system.
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The identity kept in the store, from its 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The seed, for the encrypted store only.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This identity as other devices see it.
    pub fn public(&self) -> PeerIdentity {
        let verifying = self.signing.verifying_key();
        PeerIdentity {
            curve: verifying.to_montgomery().to_bytes(),
            ed25519: Some(verifying.to_bytes()),
        }
    }

    /// X25519 with the identity key: its Montgomery secret is the Ed25519
    /// scalar (the first half of SHA-512 of the seed).
    pub(crate) fn dh(&self, their_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OmemoError> {
        let scalar = Zeroizing::new(self.signing.to_scalar_bytes());
        x25519(&scalar, their_public)
    }

    /// Signs a signed prekey's public encoding for `version`.
    pub fn sign(&self, version: OmemoVersion, message: &[u8]) -> [u8; 64] {
        match version {
            OmemoVersion::V2 => self.signing.sign(message).to_bytes(),
            OmemoVersion::V0_3 => self.xeddsa_sign(message),
        }
    }

    /// XEdDSA as its specification defines it: a verifier converts our
    /// Montgomery key to Edwards with sign bit 0, so when our Edwards key's
    /// sign bit is 1 we sign with the negated scalar (whose public key is
    /// that sign-0 point). Bit 7 of byte 63 stays 0, so verifiers that read
    /// the sign from there (libsignal's convention) accept it as well.
    fn xeddsa_sign(&self, message: &[u8]) -> [u8; 64] {
        let seed = Zeroizing::new(self.signing.to_bytes());
        let expanded = ExpandedSecretKey::from(&*seed);
        let negate = self.signing.verifying_key().to_bytes()[31] >> 7 == 1;
        let scalar = if negate {
            -expanded.scalar
        } else {
            expanded.scalar
        };
        // A nonce prefix of its own: the same prefix and message signed with
        // both the scalar and its negation would reveal the key.
        let mut prefix = Sha512::new()
            .chain_update(b"Waxwing XEdDSA nonce prefix")
            .chain_update(expanded.hash_prefix)
            .finalize();
        let mut hash_prefix = [0u8; 32];
        hash_prefix.copy_from_slice(&prefix[..32]);
        prefix.as_mut_slice().zeroize();
        let key = ExpandedSecretKey {
            scalar,
            hash_prefix,
        };
        hash_prefix.zeroize();
        let public = VerifyingKey::from(EdwardsPoint::mul_base(&key.scalar));
        debug_assert_eq!(public.to_bytes()[31] >> 7, 0);
        raw_sign::<Sha512>(&key, message, &public).to_bytes()
    }
}

/// An X25519 key pair: prekeys, signed prekeys, ephemeral and ratchet keys.
#[derive(Clone)]
pub struct KeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Self {
        Self::from_secret(random_bytes())
    }

    /// A stored key pair, from its secret scalar (clamped on use).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        Self {
            secret: Zeroizing::new(secret),
            public,
        }
    }

    /// The secret, for the encrypted store only.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The public key (Montgomery u-coordinate).
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    pub(crate) fn dh(&self, their_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OmemoError> {
        x25519(&self.secret, their_public)
    }
}

/// Another device's identity key. Devices are compared by the Curve25519
/// form, which both versions can produce; the Ed25519 form is known when the
/// device published it (OMEMO 2) or its 0.3 signature carried sign bit 1.
#[derive(Debug, Clone, Copy)]
pub struct PeerIdentity {
    curve: [u8; 32],
    ed25519: Option<[u8; 32]>,
}

impl PartialEq for PeerIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.curve == other.curve
    }
}
impl Eq for PeerIdentity {}

impl PeerIdentity {
    /// From an Ed25519 public key (OMEMO 2 bundles and key exchanges).
    /// Refuses a y-coordinate ≥ p and small-order points; bit 255 is the
    /// sign of x and may be either.
    pub fn from_ed25519(bytes: &[u8]) -> Result<Self, OmemoError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| OmemoError::InvalidKey)?;
        let mut y = bytes;
        y[31] &= 0x7f;
        if !is_canonical_field_element(&y) {
            return Err(OmemoError::InvalidKey);
        }
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| OmemoError::InvalidKey)?;
        if key.is_weak() {
            return Err(OmemoError::InvalidKey);
        }
        Ok(Self {
            curve: key.to_montgomery().to_bytes(),
            ed25519: Some(bytes),
        })
    }

    /// From a Curve25519 public key (OMEMO 0.3), without the Ed25519 sign.
    /// Refuses a u-coordinate ≥ p or with bit 255 set (X25519 ignores the
    /// bit and reduces mod p), and small-order points.
    pub fn from_curve25519(bytes: &[u8; 32]) -> Result<Self, OmemoError> {
        if !is_canonical_field_element(bytes) {
            return Err(OmemoError::InvalidKey);
        }
        let point = MontgomeryPoint(*bytes)
            .to_edwards(0)
            .ok_or(OmemoError::InvalidKey)?;
        if point.is_small_order() {
            return Err(OmemoError::InvalidKey);
        }
        Ok(Self {
            curve: *bytes,
            ed25519: None,
        })
    }

    /// The Curve25519 form: what X25519 uses and what 0.3 publishes.
    pub fn curve25519(&self) -> [u8; 32] {
        self.curve
    }

    /// The Ed25519 form, when known.
    pub fn ed25519(&self) -> Option<[u8; 32]> {
        self.ed25519
    }

    /// The fingerprint users compare: the Curve25519 form in hex, as the
    /// OMEMO 0.3 clients show it (the same key serves both versions).
    pub fn fingerprint(&self) -> String {
        hex::encode(self.curve)
    }

    /// Verifies a signed prekey signature made for `version`. For 0.3 the
    /// Edwards key is the Montgomery key with the sign bit that bit 7 of
    /// byte 63 carries: 1 from libsignal-style signers whose key has sign
    /// bit 1, else 0 (XEdDSA proper, which signs with the negated key when
    /// needed, as we do). Only a 1 tells the signer's real Ed25519 key, so
    /// only then is it learnt.
    pub fn verify(
        &mut self,
        version: OmemoVersion,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), OmemoError> {
        let mut signature: [u8; 64] = signature.try_into().map_err(|_| OmemoError::BadSignature)?;
        let mut sign = 0;
        let verifying = match version {
            OmemoVersion::V2 => {
                let ed = self.ed25519.ok_or(OmemoError::BadSignature)?;
                VerifyingKey::from_bytes(&ed).map_err(|_| OmemoError::InvalidKey)?
            }
            OmemoVersion::V0_3 => {
                sign = signature[63] >> 7;
                signature[63] &= 0x7f;
                let point = MontgomeryPoint(self.curve)
                    .to_edwards(sign)
                    .ok_or(OmemoError::InvalidKey)?;
                VerifyingKey::from(point)
            }
        };
        verifying
            .verify_strict(message, &Signature::from_bytes(&signature))
            .map_err(|_| OmemoError::BadSignature)?;
        if self.ed25519.is_none() && sign == 1 {
            self.ed25519 = Some(verifying.to_bytes());
        }
        Ok(())
    }

    /// Adopts the Ed25519 form of an identity already known by its Curve25519
    /// form (from a verified bundle), so that both forms stay consistent.
    pub fn with_ed25519_from(mut self, known: &PeerIdentity) -> Self {
        if self.ed25519.is_none() && self.curve == known.curve {
            self.ed25519 = known.ed25519;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    /// `value` as a little-endian field encoding plus `extra` (below 2^8).
    fn plus(value: &[u8; 32], extra: u8) -> [u8; 32] {
        let mut out = *value;
        let mut carry = extra as u16;
        for b in out.iter_mut() {
            let sum = *b as u16 + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        out
    }

    #[test]
    fn non_canonical_identity_keys_are_refused() {
        // Real keys still pass, Ed25519 ones with either x sign bit.
        let mut signs = [false; 2];
        while !(signs[0] && signs[1]) {
            let public = IdentityKeyPair::generate().public();
            let ed = public.ed25519().unwrap();
            signs[(ed[31] >> 7) as usize] = true;
            assert_eq!(PeerIdentity::from_ed25519(&ed).unwrap(), public);
            assert_eq!(
                PeerIdentity::from_curve25519(&public.curve25519()).unwrap(),
                public
            );
            // The same Curve25519 key with bit 255 set: X25519 reads it as
            // the same point, so it would be a second fingerprint.
            let mut high = public.curve25519();
            high[31] |= 0x80;
            assert_eq!(
                PeerIdentity::from_curve25519(&high).unwrap_err(),
                OmemoError::InvalidKey
            );
        }
        // u = p and u = p + 1 (0 and 1 reduced), and p + k for every k that
        // reaches a valid point.
        for k in 0..19 {
            assert_eq!(
                PeerIdentity::from_curve25519(&plus(&FIELD_PRIME, k)).unwrap_err(),
                OmemoError::InvalidKey,
                "u = p + {k}"
            );
        }
        // Ed25519: y = p + k, for k whose canonical point is a valid key of
        // large order (the canonical encoding is accepted, the other not).
        let mut tried = 0;
        for k in 0..19u8 {
            let mut canonical = [0u8; 32];
            canonical[0] = k;
            let Ok(key) = VerifyingKey::from_bytes(&canonical) else {
                continue;
            };
            if key.is_weak() {
                continue;
            }
            tried += 1;
            assert!(PeerIdentity::from_ed25519(&canonical).is_ok());
            for sign in [0, 0x80] {
                let mut encoding = plus(&FIELD_PRIME, k);
                encoding[31] |= sign;
                assert_eq!(
                    PeerIdentity::from_ed25519(&encoding).unwrap_err(),
                    OmemoError::InvalidKey,
                    "y = p + {k}, sign {sign}"
                );
            }
        }
        assert!(tried > 0);
        // Small order: the identity (y = 1, with either sign bit), y = p + 1,
        // y = -1 and y = 0.
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = FIELD_PRIME;
        minus_one[0] -= 1;
        for encoding in [one, plus(&FIELD_PRIME, 1), minus_one, [0; 32]] {
            for sign in [0, 0x80] {
                let mut encoding = encoding;
                encoding[31] |= sign;
                assert_eq!(
                    PeerIdentity::from_ed25519(&encoding).unwrap_err(),
                    OmemoError::InvalidKey
                );
            }
        }
    }

    #[test]
    fn x25519_on_edwards_equals_the_montgomery_ladder() {
        for i in 0..64 {
            let secret = random_bytes::<32>();
            let their = KeyPair::generate().public();
            // Half the time, a point with a small-order component added: the
            // clamped scalar (a multiple of 8) must cancel it in both paths.
            let their = if i % 2 == 0 {
                their
            } else {
                let edwards = MontgomeryPoint(their).to_edwards(0).unwrap() + EIGHT_TORSION[i % 8];
                edwards.to_montgomery().to_bytes()
            };
            let ladder = MontgomeryPoint(their).mul_clamped(secret).to_bytes();
            assert_eq!(*x25519(&secret, &their).unwrap(), ladder);
        }
        // A key on the twist still gets RFC 7748's answer.
        let twist = (2u8..)
            .map(|b| {
                let mut u = [0u8; 32];
                u[0] = b;
                u
            })
            .find(|u| MontgomeryPoint(*u).to_edwards(0).is_none())
            .unwrap();
        let secret = random_bytes::<32>();
        assert_eq!(
            *x25519(&secret, &twist).unwrap(),
            MontgomeryPoint(twist).mul_clamped(secret).to_bytes()
        );
        // Low-order points are refused.
        assert_eq!(
            x25519(&secret, &[0; 32]).unwrap_err(),
            OmemoError::InvalidKey
        );
    }
}
