//! Fuzzing harnesses for the OMEMO decoders, shared by the cargo-fuzz
//! targets in `fuzz/` and by the test that replays their corpus
//! (`core/tests/integration/fuzz_corpus.rs`). Each takes arbitrary bytes and must
//! return without panicking; a valid session must stay usable.

use std::sync::OnceLock;

use minidom::Element;

use super::elements::{parse_bundle, parse_device_list, EncryptedElement, KeyEntry};
use crate::omemo::wire::{djb_key, KeyExchange};
use crate::omemo::x3dh::{signed_pre_key_encoding, Bundle, OwnPreKeys};
use crate::omemo::{payload, IdentityKeyPair, KeyPair, OmemoVersion, RatchetSession};

struct Responder {
    identity: IdentityKeyPair,
    signed: KeyPair,
    pre_key: KeyPair,
}

impl OwnPreKeys for Responder {
    fn signed_pre_key(&self, id: u32) -> Option<KeyPair> {
        (id == 1).then(|| self.signed.clone())
    }
    fn pre_key(&self, id: u32) -> Option<KeyPair> {
        (id == 1).then(|| self.pre_key.clone())
    }
}

/// Fixed keys (the same on every run, so crashes reproduce) and one
/// confirmed session pair per version (index 0: OMEMO 2, 1: OMEMO 0.3).
struct Fixture {
    responder: Responder,
    /// The receiving side the harnesses decrypt with.
    sessions: [RatchetSession; 2],
    /// The other side, which makes valid seed messages.
    initiators: [RatchetSession; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let responder = Responder {
            identity: IdentityKeyPair::from_seed(&[1; 32]),
            signed: KeyPair::from_secret([2; 32]),
            pre_key: KeyPair::from_secret([3; 32]),
        };
        let initiator = IdentityKeyPair::from_seed(&[4; 32]);
        let pairs = OmemoVersion::ALL.map(|version| {
            let public = responder.identity.public();
            let ik = match version {
                OmemoVersion::V2 => public.ed25519().expect("own key").to_vec(),
                OmemoVersion::V0_3 => djb_key(&public.curve25519()),
            };
            let spk = signed_pre_key_encoding(version, &responder.signed.public());
            let signature = responder.identity.sign(version, &spk);
            let bundle = Bundle::verified(
                version,
                &ik,
                1,
                &spk,
                &signature,
                vec![(1, responder.pre_key.public())],
            )
            .expect("own bundle");
            let mut out =
                RatchetSession::initiate(version, &initiator, 9, &bundle).expect("session");
            let first = out.encrypt(&[0; 32]).expect("encrypt");
            let mut back =
                RatchetSession::respond(version, &responder.identity, &responder, &first.data)
                    .expect("respond")
                    .session;
            out.decrypt(&back.encrypt(&[0; 32]).expect("encrypt").data)
                .expect("confirm");
            (back, out)
        });
        let [(s2, i2), (s3, i3)] = pairs;
        Fixture {
            responder,
            sessions: [s2, s3],
            initiators: [i2, i3],
        }
    })
}

fn version(selector: Option<&u8>) -> OmemoVersion {
    if selector.is_some_and(|b| b & 1 == 1) {
        OmemoVersion::V0_3
    } else {
        OmemoVersion::V2
    }
}

/// A ratchet message (first byte: version) decrypted with a real session.
pub fn message(data: &[u8]) {
    let version = version(data.first());
    let index = usize::from(version == OmemoVersion::V0_3);
    let mut session = fixture().sessions[index].clone();
    let _ = session.decrypt(data.get(1..).unwrap_or_default());
    // Whatever happened, the session still decrypts and encrypts.
    let _ = session.encrypt(b"still usable").expect("session intact");
}

/// A key exchange (first byte: version) parsed and answered.
pub fn key_exchange(data: &[u8]) {
    let version = version(data.first());
    let body = data.get(1..).unwrap_or_default();
    let _ = KeyExchange::parse(version, body);
    let f = fixture();
    let _ = RatchetSession::respond(version, &f.responder.identity, &f.responder, body);
}

/// Bytes as XML: an `<encrypted>` element (every key tried as a key
/// exchange and as a message, and the payload with the key material),
/// a bundle and a device list of both versions.
pub fn stanza(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(element) = text.parse::<Element>() else {
        return;
    };
    if let Ok(encrypted) = EncryptedElement::parse(&element) {
        let index = usize::from(encrypted.version == OmemoVersion::V0_3);
        for key in &encrypted.keys {
            key_exchange(&[[index as u8].as_slice(), &key.data].concat());
            let mut session = fixture().sessions[index].clone();
            if let Ok(material) = session.decrypt(&key.data) {
                if let Some(ciphertext) = &encrypted.payload {
                    let _ = payload::decrypt(
                        encrypted.version,
                        &material,
                        encrypted.iv.as_deref(),
                        ciphertext,
                    );
                }
            }
        }
    }
    for version in OmemoVersion::ALL {
        let _ = parse_bundle(version, &element);
        let _ = parse_device_list(version, &element);
    }
}

fn sealed_key(version: OmemoVersion) -> Vec<u8> {
    payload::encrypt(version, b"seed").key_material.to_vec()
}

/// Seed inputs: valid messages, key exchanges and elements of both versions.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let f = fixture();
    let mut seeds = Vec::new();
    for version in OmemoVersion::ALL {
        let selector = u8::from(version == OmemoVersion::V0_3);
        let public = f.responder.identity.public();
        let ik = match version {
            OmemoVersion::V2 => public.ed25519().expect("own key").to_vec(),
            OmemoVersion::V0_3 => djb_key(&public.curve25519()),
        };
        let spk = signed_pre_key_encoding(version, &f.responder.signed.public());
        let signature = f.responder.identity.sign(version, &spk);
        let bundle = Bundle::verified(
            version,
            &ik,
            1,
            &spk,
            &signature,
            vec![(1, f.responder.pre_key.public())],
        )
        .expect("own bundle");
        let mut sender =
            RatchetSession::initiate(version, &IdentityKeyPair::from_seed(&[6; 32]), 5, &bundle)
                .expect("session");
        let sealed = payload::encrypt(version, b"seed body");
        let kex = sender.encrypt(&sealed.key_material).expect("encrypt");
        seeds.push(("key_exchange", [vec![selector], kex.data.clone()].concat()));
        let element = EncryptedElement {
            version,
            sid: 5,
            keys: vec![KeyEntry {
                jid: Some("a@b".into()),
                rid: 1,
                key_exchange: true,
                data: kex.data,
            }],
            iv: sealed.iv.map(|iv| iv.to_vec()),
            payload: Some(sealed.ciphertext),
        };
        seeds.push(("stanza", String::from(&element.to_element()).into_bytes()));
        let mut out = f.initiators[usize::from(selector)].clone();
        let message = out.encrypt(&sealed_key(version)).expect("encrypt");
        seeds.push(("message", [vec![selector], message.data].concat()));
    }
    seeds
}
