//! The key derivations and symmetric primitives both OMEMO versions share
//! (HKDF-SHA-256, the HMAC chain step, AES-256-CBC), with the secrets in
//! zeroizing buffers.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::LazyLock;

use zeroize::Zeroizing;

use super::{OmemoError, OmemoVersion};

type HmacSha256 = Hmac<Sha256>;

/// HMAC keyed with the 32 zero bytes every OMEMO HKDF but the root chain's
/// uses as salt: keyed once, cloned per use (two SHA-256 blocks saved).
static ZERO_SALT: LazyLock<HmacSha256> = LazyLock::new(|| {
    <HmacSha256 as KeyInit>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key")
});

/// HKDF-SHA-256 with `N` bytes of output.
pub(crate) fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        .expect("N is at most 255 * 32");
    out
}

/// HKDF-SHA-256 with a salt of 32 zero bytes (RFC 5869's default).
pub(crate) fn hkdf_zero_salt<const N: usize>(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut extract = ZERO_SALT.clone();
    extract.update(ikm);
    let prk = Zeroizing::new(<[u8; 32]>::from(extract.finalize().into_bytes()));
    let mut out = Zeroizing::new([0u8; N]);
    hkdf::Hkdf::<Sha256>::from_prk(prk.as_ref())
        .expect("a 32-byte PRK")
        .expand(info, out.as_mut())
        .expect("N is at most 255 * 32");
    out
}

/// HMAC-SHA-256 over the concatenation of `parts`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks a truncated HMAC-SHA-256 tag in constant time.
pub(crate) fn verify_hmac(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), OmemoError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.verify_truncated_left(tag)
        .map_err(|_| OmemoError::BadMac)
}

/// One step of a message chain: (next chain key, message key).
pub(crate) fn chain_step(chain_key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    // Keyed once, used twice: saves two SHA-256 blocks per message.
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(chain_key).expect("HMAC takes any key");
    let mut next = keyed.clone();
    next.update(&[0x02]);
    let mut message = keyed;
    message.update(&[0x01]);
    (
        Zeroizing::new(next.finalize().into_bytes().into()),
        Zeroizing::new(message.finalize().into_bytes().into()),
    )
}

/// The root chain step: (new root key, new chain key).
pub(crate) fn root_step(
    version: OmemoVersion,
    root_key: &[u8; 32],
    dh_output: &[u8; 32],
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let out = hkdf::<64>(root_key, dh_output, version.root_info());
    split_32(&out)
}

fn split_32(out: &[u8; 64]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut a = Zeroizing::new([0u8; 32]);
    let mut b = Zeroizing::new([0u8; 32]);
    a.copy_from_slice(&out[..32]);
    b.copy_from_slice(&out[32..]);
    (a, b)
}

/// Encryption key, authentication key and IV from 80 bytes of HKDF output.
pub(crate) struct CbcHmacKeys(Zeroizing<[u8; 80]>);

impl CbcHmacKeys {
    pub(crate) fn derive(ikm: &[u8], info: &[u8]) -> Self {
        Self(hkdf_zero_salt::<80>(ikm, info))
    }

    pub(crate) fn auth_key(&self) -> &[u8] {
        &self.0[32..64]
    }

    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.0[..32], &self.0[64..])
            .expect("fixed key and IV lengths")
            .encrypt_padded_vec::<Pkcs7>(plaintext)
    }

    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, OmemoError> {
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
            return Err(OmemoError::Malformed("ciphertext is not whole AES blocks"));
        }
        cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.0[..32], &self.0[64..])
            .expect("fixed key and IV lengths")
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(|_| OmemoError::Malformed("bad padding"))
    }
}
