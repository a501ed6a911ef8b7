//! Push notifications (XEP-0357) with encrypted payloads (Prosody's
//! mod_cloud_notify_encrypted, namespace `tigase:push:encrypt:0`): the
//! enable/disable IQs, the registration we keep, and decryption of what
//! the app server forwards to the device. Pure functions.

use crate::ns::{NS_PUSH, NS_PUSH_ENCRYPT};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use minidom::Element;

use super::{stanza, with_attrs};

use super::{submit_form, PUBLISH_OPTIONS};

/// Where the server sends our pushes, and the key they are encrypted with.
/// Kept in the encrypted store; the key never leaves the device except to
/// our own server.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushRegistration {
    /// The app server's JID (XEP-0357 "App Server").
    pub service: String,
    /// The node the app server gave this device (from its FCM/APNs token).
    pub node: String,
    /// AES-128-GCM key, 16 bytes.
    pub key: [u8; 16],
    /// The app server's publish-options secret, if it wants one: every
    /// fresh session registers again with it.
    #[serde(default)]
    pub secret: Option<String>,
}

impl Drop for PushRegistration {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        if let Some(secret) = &mut self.secret {
            zeroize::Zeroize::zeroize(secret);
        }
    }
}

impl std::fmt::Debug for PushRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRegistration")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// `<iq type='set'><enable …/></iq>` (XEP-0357 §5) with publish-options
/// (e.g. the app server's secret) and our payload key.
pub fn enable(id: &str, registration: &PushRegistration, secret: Option<&str>) -> Element {
    let mut enable = with_attrs(
        Element::bare("enable", NS_PUSH),
        &[
            ("jid", registration.service.as_str()),
            ("node", registration.node.as_str()),
        ],
    );
    let mut fields = vec![("FORM_TYPE", PUBLISH_OPTIONS)];
    if let Some(secret) = secret {
        fields.push(("secret", secret));
    }
    enable.append_child(submit_form(&fields));
    let mut encrypt = with_attrs(
        Element::bare("encrypt", NS_PUSH_ENCRYPT),
        &[("alg", "aes-128-gcm")],
    );
    encrypt.append_text(B64.encode(registration.key));
    enable.append_child(encrypt);
    stanza(
        "iq",
        &[("type", Some("set")), ("id", Some(id))],
        vec![enable],
    )
}

/// `<iq type='set'><disable …/></iq>` (XEP-0357 §6) for this device's node.
pub fn disable(id: &str, registration: &PushRegistration) -> Element {
    let disable = with_attrs(
        Element::bare("disable", NS_PUSH),
        &[
            ("jid", registration.service.as_str()),
            ("node", registration.node.as_str()),
        ],
    );
    stanza(
        "iq",
        &[("type", Some("set")), ("id", Some(id))],
        vec![disable],
    )
}

/// What an encrypted push says, decrypted on the device without connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNotification {
    /// Bare JID of the sender (full JID for calls).
    pub sender: String,
    /// The message text, `None` when there is none to show. For end-to-end
    /// encrypted messages the server puts a placeholder sentence here.
    pub body: Option<String>,
    /// `chat`, `groupchat`, `call` or `subscribe`.
    pub kind: String,
    /// Messages waiting on the server, as it counted them.
    pub unread: u32,
}

/// Why a push payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("push is not enabled on this device, so there is no key")]
    NotRegistered,
    #[error("the push payload is not valid base64 or has the wrong size")]
    Malformed,
    #[error("the push payload does not decrypt with this device's key")]
    DecryptionFailed,
    #[error("the decrypted push payload is not what the server sends")]
    UnexpectedContent,
}

#[derive(serde::Deserialize)]
struct Payload {
    sender: Option<String>,
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    unread: Option<u32>,
}

/// Decrypts the `<encrypted iv='…'>…</encrypted>` content an app server
/// forwards: base64 IV (12 bytes) and base64 ciphertext with its GCM tag.
pub fn decrypt(
    key: &[u8; 16],
    iv_b64: &str,
    payload_b64: &str,
) -> Result<PushNotification, PushError> {
    let iv = B64
        .decode(iv_b64.trim())
        .map_err(|_| PushError::Malformed)?;
    let sealed = B64
        .decode(payload_b64.trim())
        .map_err(|_| PushError::Malformed)?;
    let nonce = Nonce::try_from(iv.as_slice()).map_err(|_| PushError::Malformed)?;
    if sealed.len() < 16 {
        return Err(PushError::Malformed);
    }
    let cipher = Aes128Gcm::new(key.into());
    let plain = cipher
        .decrypt(&nonce, sealed.as_slice())
        .map_err(|_| PushError::DecryptionFailed)?;
    let payload: Payload =
        serde_json::from_slice(&plain).map_err(|_| PushError::UnexpectedContent)?;
    Ok(PushNotification {
        sender: payload.sender.ok_or(PushError::UnexpectedContent)?,
        body: payload.message.filter(|m| !m.is_empty()),
        kind: payload.kind.unwrap_or_else(|| "chat".to_owned()),
        unread: payload.unread.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &[u8; 16], iv: &[u8; 12], json: &str) -> (String, String) {
        let sealed = Aes128Gcm::new(key.into())
            .encrypt(&Nonce::from(*iv), json.as_bytes())
            .unwrap();
        (B64.encode(iv), B64.encode(sealed))
    }

    #[test]
    fn a_payload_sealed_with_our_key_decrypts() {
        let key = [7u8; 16];
        let (iv, payload) = seal(
            &key,
            &[1; 12],
            r#"{"unread":2,"sender":"bob@example.org","message":"hi","type":"chat"}"#,
        );
        assert_eq!(
            decrypt(&key, &iv, &payload),
            Ok(PushNotification {
                sender: "bob@example.org".into(),
                body: Some("hi".into()),
                kind: "chat".into(),
                unread: 2,
            })
        );
    }

    #[test]
    fn bad_payloads_get_typed_errors() {
        let key = [7u8; 16];
        let (iv, payload) = seal(&key, &[1; 12], r#"{"sender":"bob@example.org"}"#);
        assert_eq!(
            decrypt(&[8u8; 16], &iv, &payload),
            Err(PushError::DecryptionFailed)
        );
        let mut tampered = B64.decode(&payload).unwrap();
        tampered[0] ^= 1;
        assert_eq!(
            decrypt(&key, &iv, &B64.encode(tampered)),
            Err(PushError::DecryptionFailed)
        );
        assert_eq!(
            decrypt(&key, "not base64!", &payload),
            Err(PushError::Malformed)
        );
        assert_eq!(
            decrypt(&key, &B64.encode([0u8; 5]), &payload),
            Err(PushError::Malformed)
        );
        let (iv, not_json) = seal(&key, &[2; 12], "<xml/>");
        assert_eq!(
            decrypt(&key, &iv, &not_json),
            Err(PushError::UnexpectedContent)
        );
        let (iv, no_sender) = seal(&key, &[3; 12], r#"{"message":"x"}"#);
        assert_eq!(
            decrypt(&key, &iv, &no_sender),
            Err(PushError::UnexpectedContent)
        );
    }

    #[test]
    fn enable_carries_publish_options_and_the_key() {
        let registration = PushRegistration {
            secret: None,
            service: "push.example.org".into(),
            node: "device-token-1".into(),
            key: [1; 16],
        };
        let xml = String::from(&enable("p1", &registration, Some("s3cret")));
        for part in [
            "jid='push.example.org'",
            "node='device-token-1'",
            "<value>s3cret</value>",
            "alg='aes-128-gcm'",
            &B64.encode([1u8; 16]),
        ] {
            assert!(xml.contains(part), "{part} in {xml}");
        }
        assert!(!format!("{registration:?}").contains("key"));
    }
}
