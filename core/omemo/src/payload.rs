//! Message payloads: the body is encrypted once with a fresh key, and that
//! key material is what the ratchet encrypts for each device.
//!
//! - OMEMO 0.3: AES-128-GCM, 12-byte IV sent in `<iv>` (16-byte IVs from
//!   older clients are accepted); key material is key(16) ‖ tag(16), the
//!   `<payload>` the ciphertext without the tag.
//! - OMEMO 2 (XEP-0384 §6.1): a random 32-byte key → HKDF-SHA-256(salt 32×0,
//!   info "OMEMO Payload", 80) → AES-256-CBC key, HMAC key, IV; key material
//!   is key(32) ‖ HMAC-SHA-256(ciphertext) truncated to 16.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Nonce as AesNonce, Tag};
use aes_gcm::aes::Aes128;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use zeroize::Zeroizing;

use super::kdf::{hmac, verify_hmac, CbcHmacKeys};
use super::keys::random_bytes;
use super::{OmemoError, OmemoVersion};

/// The biggest payload we decrypt (a chat message, not a file).
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024;

const PAYLOAD_INFO_2: &[u8] = b"OMEMO Payload";

/// An encrypted payload and the key material to send to each device.
#[derive(Clone)]
pub struct EncryptedPayload {
    /// The `<payload>` bytes.
    pub ciphertext: Vec<u8>,
    /// The `<iv>` (OMEMO 0.3 only).
    pub iv: Option<[u8; 12]>,
    /// What each device's ratchet encrypts.
    pub key_material: Zeroizing<Vec<u8>>,
}

/// Leaves the key material out.
impl std::fmt::Debug for EncryptedPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedPayload")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("iv", &self.iv.map(hex::encode))
            .finish_non_exhaustive()
    }
}

/// Encrypts a payload for `version`.
pub fn encrypt(version: OmemoVersion, plaintext: &[u8]) -> EncryptedPayload {
    match version {
        OmemoVersion::V0_3 => {
            let key = Zeroizing::new(random_bytes::<16>());
            let iv = random_bytes::<12>();
            let mut ciphertext = plaintext.to_vec();
            let tag = gcm_key(key.as_ref())
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::empty(),
                    &mut ciphertext,
                )
                .expect("AES-GCM encrypts any chat-sized message");
            let key_material = Zeroizing::new([key.as_slice(), tag.as_ref()].concat());
            EncryptedPayload {
                ciphertext,
                iv: Some(iv),
                key_material,
            }
        }
        OmemoVersion::V2 => {
            let key = Zeroizing::new(random_bytes::<32>());
            let keys = CbcHmacKeys::derive(key.as_ref(), PAYLOAD_INFO_2);
            let ciphertext = keys.encrypt(plaintext);
            let mac = hmac(keys.auth_key(), &[&ciphertext]);
            let key_material = Zeroizing::new([key.as_slice(), &mac[..16]].concat());
            EncryptedPayload {
                ciphertext,
                iv: None,
                key_material,
            }
        }
    }
}

/// Decrypts a payload with the key material a ratchet message gave us.
pub fn decrypt(
    version: OmemoVersion,
    key_material: &[u8],
    iv: Option<&[u8]>,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OmemoError> {
    if ciphertext.len() > MAX_PAYLOAD_LEN {
        return Err(OmemoError::TooLarge);
    }
    match version {
        OmemoVersion::V0_3 => {
            let iv = iv.ok_or(OmemoError::Malformed("no IV"))?;
            if iv.len() != 12 && iv.len() != 16 {
                return Err(OmemoError::Malformed("the IV must be 12 or 16 bytes"));
            }
            // Key material is key ‖ tag; some old clients sent only the key
            // and appended the tag to the payload instead.
            let mut sealed = Zeroizing::new(match key_material.len() {
                32 => [ciphertext, &key_material[16..]].concat(),
                16 => ciphertext.to_vec(),
                _ => return Err(OmemoError::Malformed("key material length")),
            });
            let key = &key_material[..16];
            let plain_len = match <[u8; 12]>::try_from(iv) {
                Ok(iv) => gcm_key(key)
                    .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut sealed)
                    .map_err(|_| OmemoError::PayloadAuthentication)?
                    .len(),
                Err(_) => open_with_16_byte_iv(key, iv, &mut sealed)?,
            };
            sealed.truncate(plain_len);
            Ok(sealed)
        }
        OmemoVersion::V2 => {
            if key_material.len() != 48 {
                return Err(OmemoError::Malformed("key material length"));
            }
            let keys = CbcHmacKeys::derive(&key_material[..32], PAYLOAD_INFO_2);
            verify_hmac(keys.auth_key(), &[ciphertext], &key_material[32..])
                .map_err(|_| OmemoError::PayloadAuthentication)?;
            keys.decrypt(ciphertext).map(Zeroizing::new)
        }
    }
}

/// AES-128-GCM with a 16-byte IV (GCM hashes an IV of any length other than
/// 12 bytes into its counter block): older OMEMO 0.3 clients send these.
/// Opens `sealed` (ciphertext ‖ tag) in place; returns the plaintext length.
fn open_with_16_byte_iv(key: &[u8], iv: &[u8], sealed: &mut [u8]) -> Result<usize, OmemoError> {
    type Aes128Gcm16 = AesGcm<Aes128, U16>;
    let plain_len = sealed
        .len()
        .checked_sub(16)
        .ok_or(OmemoError::PayloadAuthentication)?; // as ring answers
    let (text, tag) = sealed.split_at_mut(plain_len);
    let tag = Tag::<Aes128Gcm16>::try_from(&*tag).map_err(|_| OmemoError::PayloadAuthentication)?;
    let nonce = AesNonce::<Aes128Gcm16>::try_from(iv).map_err(|_| OmemoError::Malformed("IV"))?;
    Aes128Gcm16::new_from_slice(key)
        .map_err(|_| OmemoError::Malformed("key material length"))?
        .decrypt_inout_detached(&nonce, &[], text.into(), &tag)
        .map_err(|_| OmemoError::PayloadAuthentication)?;
    Ok(plain_len)
}

fn gcm_key(key: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).expect("a 16-byte key"))
}

/// Key material for an empty (key-transport) message, which only moves the
/// ratchet forward: used to heal or confirm sessions.
pub fn empty_key_material(version: OmemoVersion) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match version {
        OmemoVersion::V0_3 => random_bytes::<32>().to_vec(),
        OmemoVersion::V2 => vec![0; 32],
    })
}
