//! Engine tests without a network: two simulated devices talking through
//! both versions, and every kind of bad input the issue names.

use std::collections::HashMap;

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::keys::{IdentityKeyPair, KeyPair};
use super::ratchet::{RatchetSession, HEARTBEAT_AFTER, MAX_SKIP_PER_MESSAGE};
use super::x3dh::{signed_pre_key_encoding, Bundle, OwnPreKeys};
use super::{payload, wire, OmemoError, OmemoVersion};

struct Device {
    identity: IdentityKeyPair,
    signed: (u32, KeyPair),
    pre_keys: HashMap<u32, KeyPair>,
}

impl OwnPreKeys for Device {
    fn signed_pre_key(&self, id: u32) -> Option<KeyPair> {
        (self.signed.0 == id).then(|| self.signed.1.clone())
    }
    fn pre_key(&self, id: u32) -> Option<KeyPair> {
        self.pre_keys.get(&id).cloned()
    }
}

impl Device {
    fn new() -> Self {
        Self::with_identity(IdentityKeyPair::generate())
    }

    fn with_identity(identity: IdentityKeyPair) -> Self {
        let pre_keys = (1..=5).map(|id| (id, KeyPair::generate())).collect();
        Self {
            identity,
            signed: (7, KeyPair::generate()),
            pre_keys,
        }
    }

    /// The bundle as published (identity in the version's encoding), parsed
    /// back and verified as a peer would.
    fn bundle(&self, version: OmemoVersion) -> Bundle {
        let spk = self.signed.1.public();
        let signature = self
            .identity
            .sign(version, &signed_pre_key_encoding(version, &spk));
        let public = self.identity.public();
        let identity = match version {
            OmemoVersion::V0_3 => wire::djb_key(&public.curve25519()),
            OmemoVersion::V2 => public.ed25519().unwrap().to_vec(),
        };
        let spk_bytes = match version {
            OmemoVersion::V0_3 => wire::djb_key(&spk),
            OmemoVersion::V2 => spk.to_vec(),
        };
        let pre_keys = self
            .pre_keys
            .iter()
            .map(|(id, k)| (*id, k.public()))
            .collect();
        Bundle::verified(
            version,
            &identity,
            self.signed.0,
            &spk_bytes,
            &signature,
            pre_keys,
        )
        .unwrap()
    }
}

/// Alice starts a session with Bob; Bob answers. Returns both sessions.
fn pair(version: OmemoVersion) -> (RatchetSession, RatchetSession, Device) {
    let alice = Device::new();
    let bob = Device::new();
    let mut a =
        RatchetSession::initiate(version, &alice.identity, 1234, &bob.bundle(version)).unwrap();
    let first = a.encrypt(b"key material 1").unwrap();
    assert!(first.key_exchange);
    let responded = RatchetSession::respond(version, &bob.identity, &bob, &first.data).unwrap();
    assert_eq!(&responded.plaintext[..], b"key material 1");
    assert!(responded.used_pre_key_id.is_some());
    assert_eq!(
        responded.session.remote_identity(),
        &alice.identity.public()
    );
    (a, responded.session, bob)
}

#[test]
fn conversation_both_ways_in_both_versions() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        for round in 0..5 {
            for i in 0..3 {
                let text = format!("a{round}.{i}");
                let m = a.encrypt(text.as_bytes()).unwrap();
                // Alice keeps sending the key exchange until Bob answers.
                assert_eq!(m.key_exchange, round == 0, "{version:?}");
                let plain = if m.key_exchange {
                    let kex = wire::KeyExchange::parse(version, &m.data).unwrap();
                    assert!(b.built_by(&kex));
                    b.decrypt(&kex.message).unwrap()
                } else {
                    b.decrypt(&m.data).unwrap()
                };
                assert_eq!(&plain[..], text.as_bytes());
            }
            let text = format!("b{round}");
            let m = b.encrypt(text.as_bytes()).unwrap();
            assert!(!m.key_exchange);
            assert_eq!(&a.decrypt(&m.data).unwrap()[..], text.as_bytes());
            assert!(a.confirmed());
        }
    }
}

#[test]
fn out_of_order_messages_decrypt_once() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let reply = b.encrypt(b"ack").unwrap();
        a.decrypt(&reply.data).unwrap();
        let msgs: Vec<_> = (0..6)
            .map(|i| a.encrypt(format!("m{i}").as_bytes()).unwrap())
            .collect();
        for i in [5, 1, 0, 3, 2, 4] {
            assert_eq!(
                &b.decrypt(&msgs[i].data).unwrap()[..],
                format!("m{i}").as_bytes()
            );
        }
        // Each key works once.
        assert_eq!(
            b.decrypt(&msgs[3].data).unwrap_err(),
            OmemoError::DuplicateMessage
        );
        assert_eq!(
            b.decrypt(&msgs[5].data).unwrap_err(),
            OmemoError::DuplicateMessage
        );
    }
}

#[test]
fn messages_across_ratchet_steps_arrive_late() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let early = a.encrypt(b"early").unwrap();
        let r = b.encrypt(b"r").unwrap(); // Bob has not seen `early` yet
        a.decrypt(&r.data).unwrap();
        let late = a.encrypt(b"after ratchet").unwrap();
        assert_eq!(&b.decrypt(&late.data).unwrap()[..], b"after ratchet");
        let kex = wire::KeyExchange::parse(version, &early.data).unwrap();
        assert_eq!(&b.decrypt(&kex.message).unwrap()[..], b"early");
    }
}

#[test]
fn a_tampered_message_fails_and_leaves_the_session_intact() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let m = b.encrypt(b"hello").unwrap();
        for pos in [0, m.data.len() / 2, m.data.len() - 1] {
            let mut bad = m.data.clone();
            bad[pos] ^= 0x01;
            assert!(a.decrypt(&bad).is_err(), "{version:?} flipped byte {pos}");
        }
        assert_eq!(&a.decrypt(&m.data).unwrap()[..], b"hello");
    }
}

#[test]
fn a_wrong_mac_is_bad_mac() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let m = b.encrypt(b"hello").unwrap();
        let mut bad = m.data.clone();
        match version {
            // The MAC is the last 8 bytes.
            OmemoVersion::V0_3 => *bad.last_mut().unwrap() ^= 0x80,
            // The MAC is field 1, right after its tag and length bytes.
            OmemoVersion::V2 => bad[2] ^= 0x80,
        }
        assert_eq!(a.decrypt(&bad).unwrap_err(), OmemoError::BadMac);
    }
}

#[test]
fn a_message_for_another_session_fails_to_authenticate() {
    for version in OmemoVersion::ALL {
        let (mut a, _, _) = pair(version);
        let (_, mut other_b, _) = pair(version);
        let m = other_b.encrypt(b"not for you").unwrap();
        assert!(matches!(a.decrypt(&m.data), Err(OmemoError::BadMac)));
    }
}

#[test]
fn truncated_oversized_and_garbage_input_is_typed() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, bob) = pair(version);
        let m = b.encrypt(b"hello").unwrap();
        for len in 0..m.data.len() {
            assert!(
                a.decrypt(&m.data[..len]).is_err(),
                "{version:?} truncated to {len}"
            );
        }
        let big = vec![0x33; wire::MAX_KEY_ELEMENT_LEN + 1];
        assert_eq!(a.decrypt(&big).unwrap_err(), OmemoError::TooLarge);
        assert!(
            RatchetSession::respond(version, &bob.identity, &bob, &[0xff, 0xff, 0xff]).is_err()
        );
        assert!(RatchetSession::respond(version, &bob.identity, &bob, &[]).is_err());
        assert_eq!(&a.decrypt(&m.data).unwrap()[..], b"hello");
    }
}

#[test]
fn unknown_protobuf_fields_are_ignored_but_authenticated() {
    // OMEMO 2: an extra field inside OMEMOMessage changes the MAC input, so a
    // third party cannot add one; the sender's own extension would verify.
    let (mut a, mut b, _) = pair(OmemoVersion::V2);
    let m = b.encrypt(b"x").unwrap();
    let mut extended = m.data.clone();
    extended.extend_from_slice(&[0x78, 0x01]); // field 15, varint 1, outside the MAC
    assert_eq!(&a.decrypt(&extended).unwrap()[..], b"x");
}

#[test]
fn skipping_too_far_is_refused() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let first = b.encrypt(b"1").unwrap();
        a.decrypt(&first.data).unwrap();
        let mut last = None;
        for _ in 0..=MAX_SKIP_PER_MESSAGE + 1 {
            last = Some(b.encrypt(b"n").unwrap());
        }
        assert_eq!(
            a.decrypt(&last.unwrap().data).unwrap_err(),
            OmemoError::TooManySkipped
        );
    }
}

#[test]
fn unknown_prekeys_and_changed_identities_are_typed() {
    for version in OmemoVersion::ALL {
        let alice = Device::new();
        let mut bob = Device::new();
        let mut a =
            RatchetSession::initiate(version, &alice.identity, 1, &bob.bundle(version)).unwrap();
        let m = a.encrypt(b"k").unwrap();
        let kept = bob.pre_keys.clone();
        bob.pre_keys.clear();
        assert_eq!(
            RatchetSession::respond(version, &bob.identity, &bob, &m.data).unwrap_err(),
            OmemoError::UnknownPreKey
        );
        bob.pre_keys = kept;
        bob.signed.0 = 8;
        assert_eq!(
            RatchetSession::respond(version, &bob.identity, &bob, &m.data).unwrap_err(),
            OmemoError::UnknownSignedPreKey
        );
        bob.signed.0 = 7;
        // Another identity answering the same key exchange cannot read it.
        let impostor = Device {
            identity: IdentityKeyPair::generate(),
            ..Device::new()
        };
        let impostor = Device {
            signed: (7, bob.signed.1.clone()),
            pre_keys: bob.pre_keys.clone(),
            ..impostor
        };
        assert_eq!(
            RatchetSession::respond(version, &impostor.identity, &impostor, &m.data).unwrap_err(),
            OmemoError::BadMac
        );
        assert!(RatchetSession::respond(version, &bob.identity, &bob, &m.data).is_ok());
    }
}

#[test]
fn bundles_with_bad_signatures_are_refused() {
    for version in OmemoVersion::ALL {
        let bob = Device::new();
        let good = bob.bundle(version);
        let spk = bob.signed.1.public();
        let mut signature = bob
            .identity
            .sign(version, &signed_pre_key_encoding(version, &spk));
        signature[10] ^= 1;
        let identity = match version {
            OmemoVersion::V0_3 => wire::djb_key(&good.identity.curve25519()),
            OmemoVersion::V2 => good.identity.ed25519().unwrap().to_vec(),
        };
        let spk_bytes = signed_pre_key_encoding(version, &spk);
        assert_eq!(
            Bundle::verified(version, &identity, 7, &spk_bytes, &signature, vec![]).unwrap_err(),
            OmemoError::BadSignature
        );
        // Signed by someone else.
        let other =
            IdentityKeyPair::generate().sign(version, &signed_pre_key_encoding(version, &spk));
        assert_eq!(
            Bundle::verified(version, &identity, 7, &spk_bytes, &other, vec![]).unwrap_err(),
            OmemoError::BadSignature
        );
        assert_eq!(
            Bundle::verified(version, &identity, 7, &spk_bytes, &other[..63], vec![]).unwrap_err(),
            OmemoError::BadSignature
        );
    }
}

#[test]
fn libsignal_style_signatures_verify_for_both_signs() {
    // Other 0.3 clients sign with the Ed25519 key itself and carry its sign
    // bit in bit 7 of byte 63: still accepted, and a 1 there tells us the
    // real Ed25519 form.
    let mut seen = [false, false];
    while !(seen[0] && seen[1]) {
        let seed = super::keys::random_bytes::<32>();
        let identity = IdentityKeyPair::from_seed(&seed);
        let public = identity.public();
        let ed = public.ed25519().unwrap();
        let sign = ed[31] >> 7;
        seen[sign as usize] = true;
        let spk = KeyPair::generate().public();
        let encoding = signed_pre_key_encoding(OmemoVersion::V0_3, &spk);
        let mut signature = SigningKey::from_bytes(&seed).sign(&encoding).to_bytes();
        signature[63] |= sign << 7;
        let bundle = Bundle::verified(
            OmemoVersion::V0_3,
            &wire::djb_key(&public.curve25519()),
            7,
            &encoding,
            &signature,
            vec![],
        )
        .unwrap();
        assert_eq!(bundle.identity, public);
        assert_eq!(bundle.identity.ed25519(), (sign == 1).then_some(ed));
        // Our own 0.3 signatures verify too.
        let device = Device::with_identity(identity);
        assert_eq!(device.bundle(OmemoVersion::V0_3).identity, public);
    }
}

#[test]
fn our_xeddsa_signatures_verify_under_the_sign_0_key() {
    // A strict XEdDSA verifier: the Montgomery key converted with sign bit
    // 0, the 64 signature bytes taken as they are.
    let mut signs = [0; 2];
    for _ in 0..64 {
        let device = Device::new();
        let public = device.identity.public();
        signs[(public.ed25519().unwrap()[31] >> 7) as usize] += 1;
        let spk = device.signed.1.public();
        let encoding = signed_pre_key_encoding(OmemoVersion::V0_3, &spk);
        let signature = device.identity.sign(OmemoVersion::V0_3, &encoding);
        let edwards = MontgomeryPoint(public.curve25519()).to_edwards(0).unwrap();
        VerifyingKey::from(edwards)
            .verify_strict(&encoding, &Signature::from_bytes(&signature))
            .expect("verifies under the sign-0 key");
        // And our own verifier (the bundle as a peer parses it).
        assert_eq!(device.bundle(OmemoVersion::V0_3).identity, public);
    }
    assert!(
        signs[0] > 0 && signs[1] > 0,
        "both sign bits seen: {signs:?}"
    );
}

#[test]
fn sessions_survive_serialisation_mid_conversation() {
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        let skipped = a.encrypt(b"late").unwrap();
        let m = a.encrypt(b"now").unwrap();
        let kex = wire::KeyExchange::parse(version, &m.data).unwrap();
        b.decrypt(&kex.message).unwrap();
        let mut a = RatchetSession::from_bytes(&a.to_bytes()).unwrap();
        let mut b = RatchetSession::from_bytes(&b.to_bytes()).unwrap();
        let kex = wire::KeyExchange::parse(version, &skipped.data).unwrap();
        assert_eq!(&b.decrypt(&kex.message).unwrap()[..], b"late");
        let r = b.encrypt(b"reply").unwrap();
        assert_eq!(&a.decrypt(&r.data).unwrap()[..], b"reply");
        assert!(RatchetSession::from_bytes(&[1, 2, 3]).is_err());
    }
}

#[test]
fn payloads_round_trip_and_refuse_tampering() {
    for version in OmemoVersion::ALL {
        let body = "Grüße 👋".repeat(50);
        let enc = payload::encrypt(version, body.as_bytes());
        let iv = enc.iv.as_ref().map(|iv| &iv[..]);
        let plain = payload::decrypt(version, &enc.key_material, iv, &enc.ciphertext).unwrap();
        assert_eq!(&plain[..], body.as_bytes());
        let mut bad = enc.ciphertext.clone();
        bad[0] ^= 1;
        assert_eq!(
            payload::decrypt(version, &enc.key_material, iv, &bad).unwrap_err(),
            OmemoError::PayloadAuthentication
        );
        let mut bad_key = enc.key_material.to_vec();
        bad_key[0] ^= 1;
        assert_eq!(
            payload::decrypt(version, &bad_key, iv, &enc.ciphertext).unwrap_err(),
            OmemoError::PayloadAuthentication
        );
        assert!(matches!(
            payload::decrypt(version, &enc.key_material[..20], iv, &enc.ciphertext),
            Err(OmemoError::Malformed(_))
        ));
    }
    let enc = payload::encrypt(OmemoVersion::V0_3, b"x");
    assert_eq!(enc.iv.unwrap().len(), 12);
    for (iv, err) in [
        (None, OmemoError::Malformed("no IV")),
        (
            Some(&[0; 8][..]),
            OmemoError::Malformed("the IV must be 12 or 16 bytes"),
        ),
        (Some(&[0; 16][..]), OmemoError::PayloadAuthentication),
    ] {
        assert_eq!(
            payload::decrypt(OmemoVersion::V0_3, &enc.key_material, iv, &enc.ciphertext)
                .unwrap_err(),
            err
        );
    }
}

#[test]
fn payloads_with_16_byte_ivs_decrypt() {
    use aes_gcm::aead::consts::U16;
    use aes_gcm::aes::Aes128;
    use aes_gcm::{AeadInOut, AesGcm, KeyInit};

    // As older OMEMO 0.3 clients encrypt: AES-128-GCM under a 16-byte IV.
    let key = super::keys::random_bytes::<16>();
    let iv = super::keys::random_bytes::<16>();
    let body = b"from an older client".to_vec();
    let mut ciphertext = body.clone();
    let tag = AesGcm::<Aes128, U16>::new_from_slice(&key)
        .unwrap()
        .encrypt_inout_detached(&iv.into(), &[], ciphertext.as_mut_slice().into())
        .unwrap();
    let key_material = [&key[..], &tag[..]].concat();
    let plain =
        payload::decrypt(OmemoVersion::V0_3, &key_material, Some(&iv), &ciphertext).unwrap();
    assert_eq!(&plain[..], &body[..]);
    // The tag appended to the payload, key alone in the key material.
    let appended = [&ciphertext[..], &tag[..]].concat();
    let plain = payload::decrypt(OmemoVersion::V0_3, &key, Some(&iv), &appended).unwrap();
    assert_eq!(&plain[..], &body[..]);
    // Tampering and the wrong IV fail to authenticate.
    let mut bad = ciphertext.clone();
    bad[0] ^= 1;
    assert_eq!(
        payload::decrypt(OmemoVersion::V0_3, &key_material, Some(&iv), &bad).unwrap_err(),
        OmemoError::PayloadAuthentication
    );
    assert_eq!(
        payload::decrypt(
            OmemoVersion::V0_3,
            &key_material,
            Some(&iv[..12]),
            &ciphertext
        )
        .unwrap_err(),
        OmemoError::PayloadAuthentication
    );
    assert_eq!(
        payload::decrypt(OmemoVersion::V0_3, &key, Some(&iv), &appended[..10]).unwrap_err(),
        OmemoError::PayloadAuthentication
    );
}

#[test]
fn key_exchanges_without_a_one_time_prekey_are_refused_both_ways() {
    for version in OmemoVersion::ALL {
        let alice = Device::new();
        let bob = Device::new();
        // Initiating from a bundle that offers no one-time prekey.
        let mut bundle = bob.bundle(version);
        bundle.pre_keys.clear();
        assert_eq!(
            RatchetSession::initiate(version, &alice.identity, 1, &bundle).unwrap_err(),
            OmemoError::MissingPreKey,
            "{version:?}"
        );
        // Receiving a key exchange that names none (0.3's preKeyId, 2's pk_id).
        let mut a =
            RatchetSession::initiate(version, &alice.identity, 1, &bob.bundle(version)).unwrap();
        let m = a.encrypt(b"k").unwrap();
        let mut kex = wire::KeyExchange::parse(version, &m.data).unwrap();
        assert!(kex.pre_key_id.is_some());
        kex.pre_key_id = None;
        let stripped = wire::encode_key_exchange(version, &kex, 1);
        assert_eq!(
            wire::KeyExchange::parse(version, &stripped).unwrap_err(),
            OmemoError::MissingPreKey,
            "{version:?}"
        );
        assert_eq!(
            RatchetSession::respond(version, &bob.identity, &bob, &stripped).unwrap_err(),
            OmemoError::MissingPreKey,
            "{version:?}"
        );
        assert!(RatchetSession::respond(version, &bob.identity, &bob, &m.data).is_ok());
    }
}

#[test]
fn non_canonical_identity_keys_are_refused_in_bundles_and_key_exchanges() {
    // OMEMO 0.3: the same identity with bit 255 of its Curve25519 key set
    // is the same X25519 key under a second fingerprint.
    let version = OmemoVersion::V0_3;
    let alice = Device::new();
    let bob = Device::new();
    let spk = bob.signed.1.public();
    let signature = bob
        .identity
        .sign(version, &signed_pre_key_encoding(version, &spk));
    let mut high = bob.identity.public().curve25519();
    high[31] |= 0x80;
    assert_eq!(
        Bundle::verified(
            version,
            &wire::djb_key(&high),
            7,
            &wire::djb_key(&spk),
            &signature,
            vec![]
        )
        .unwrap_err(),
        OmemoError::InvalidKey
    );
    let mut a =
        RatchetSession::initiate(version, &alice.identity, 1, &bob.bundle(version)).unwrap();
    let m = a.encrypt(b"k").unwrap();
    let mut kex = wire::KeyExchange::parse(version, &m.data).unwrap();
    kex.identity_key[31] |= 0x80;
    let altered = wire::encode_key_exchange(version, &kex, 1);
    assert_eq!(
        RatchetSession::respond(version, &bob.identity, &bob, &altered).unwrap_err(),
        OmemoError::InvalidKey
    );
    let responded = RatchetSession::respond(version, &bob.identity, &bob, &m.data).unwrap();
    assert_eq!(
        responded.session.remote_identity().fingerprint(),
        alice.identity.public().fingerprint()
    );
}

#[test]
fn debug_output_leaves_key_material_out() {
    // No byte list and no hex of a secret may appear in `{:?}`.
    fn assert_hidden(debug: &str, secret: &[u8]) {
        assert!(!debug.contains(&format!("{secret:?}")), "{debug}");
        assert!(!debug.contains(&hex::encode(secret)), "{debug}");
        assert!(!debug.contains(&hex::encode(&secret[..8])), "{debug}");
    }
    for version in OmemoVersion::ALL {
        let enc = payload::encrypt(version, b"hello");
        assert_hidden(&format!("{enc:?}"), &enc.key_material);

        let alice = Device::new();
        let bob = Device::new();
        let mut a =
            RatchetSession::initiate(version, &alice.identity, 1, &bob.bundle(version)).unwrap();
        let m = a.encrypt(&enc.key_material).unwrap();
        let responded = RatchetSession::respond(version, &bob.identity, &bob, &m.data).unwrap();
        assert_eq!(&responded.plaintext[..], &enc.key_material[..]);
        assert_hidden(&format!("{responded:?}"), &enc.key_material);
    }
}

#[test]
fn heartbeat_after_53_messages_without_a_reply() {
    assert_eq!(HEARTBEAT_AFTER, 53);
    for version in OmemoVersion::ALL {
        let (mut a, mut b, _) = pair(version);
        // Bob decrypted Alice's first message in `pair`; he answers, so both
        // counters start from a reply.
        let r = b.encrypt(b"r").unwrap();
        a.decrypt(&r.data).unwrap();
        assert!(!a.needs_heartbeat() && !b.needs_heartbeat());
        for i in 1..=53 {
            let m = a.encrypt(b"m").unwrap();
            b.decrypt(&m.data).unwrap();
            assert_eq!(b.needs_heartbeat(), i >= 53, "{version:?} message {i}");
            assert!(!a.needs_heartbeat());
        }
        // Kept across the store.
        let mut b = RatchetSession::from_bytes(&b.to_bytes()).unwrap();
        assert!(b.needs_heartbeat());
        // A failed decryption does not count; one message back resets it.
        assert!(b.decrypt(&r.data).is_err());
        let heartbeat = b.encrypt(&payload::empty_key_material(version)).unwrap();
        assert!(!b.needs_heartbeat());
        a.decrypt(&heartbeat.data).unwrap();
        assert!(!a.needs_heartbeat());
    }
}

/// Two sessions (OMEMO 2) stored by the code before the heartbeat counter:
/// Alice had decrypted three messages from Bob.
const OLD_RECORD_ALICE: &str = concat!(
    "080210011a20a2b52f5c263a1059977798be6c1735c5f2d25194af23c2d6e370b32f645d68352220fb181f8b",
    "840bb521b6dec0fa983a02330eed7be1f06e860453bafa66866bbd002a408bbb46c6bc8e3f2384564a041237",
    "f4886acec2b007428eac2f1acd457ba75b86fb181f8b840bb521b6dec0fa983a02330eed7be1f06e860453ba",
    "fa66866bbd00322074fd59edfb0e3f724f01ca0a5823dbbfc5d3ea3ac04b14dc7d491cec53ae2ac53a2073e2",
    "bb1b9d770d4b000b48f165c250bea7c2dcc036263f32133e5ff1953a6be142207b561237a8dba17683c33814",
    "4509934a54d23c63041fdca457d5060a492b8f314a220a200d04959d4ec6347aec781c7429eb7d89c875faa0",
    "d4d7b4401040de710011d1ea52240a20e6091195967851489521206bbc20c6ef5c51c55087277e83de6d6cd8",
    "6031c6b01003580178d209820120021fae79c9054f8f52129bd96deb39030b79c8837f2657b06de6453171e5",
    "852f",
);
const OLD_RECORD_BOB: &str = concat!(
    "08021a20dff49b23f33d3312492e262858a7ec25f30312ee193a2ec170b840c2c64e7b0d22208bbb46c6bc8e",
    "3f2384564a041237f4886acec2b007428eac2f1acd457ba75b862a408bbb46c6bc8e3f2384564a041237f488",
    "6acec2b007428eac2f1acd457ba75b86fb181f8b840bb521b6dec0fa983a02330eed7be1f06e860453bafa66",
    "866bbd0032204a3093bef01bc6bb4cbdc70f9256b316a3b69e606fe89a0480b9aabc3610df403a2030e509fc",
    "f650868426a522d53e12287dec57c6b66c21ed6bc56f055f130e156c422070e518ed0c7a4d46fec921f92769",
    "1051f1d45497c545b1c4a190c59c8ed404574a240a20e6091195967851489521206bbc20c6ef5c51c5508727",
    "7e83de6d6cd86031c6b0100352240a20f9da546d6c5b7136a1eed03e192390fa5b565567a730d879650687b3",
    "535489711001722063be83e361fab2e2c05fd8c26c0527494a450d6febd54d3cc07832fbfe8f9410",
);

#[test]
fn records_stored_before_the_heartbeat_counter_load() {
    let mut a = RatchetSession::from_bytes(&hex::decode(OLD_RECORD_ALICE).unwrap()).unwrap();
    let mut b = RatchetSession::from_bytes(&hex::decode(OLD_RECORD_BOB).unwrap()).unwrap();
    assert!(!a.needs_heartbeat() && !b.needs_heartbeat());
    for _ in 0..HEARTBEAT_AFTER {
        let m = b.encrypt(b"x").unwrap();
        assert_eq!(&a.decrypt(&m.data).unwrap()[..], b"x");
    }
    // The counter started from 0: the three before do not count.
    assert!(a.needs_heartbeat());
    let m = a.encrypt(b"y").unwrap();
    assert_eq!(&b.decrypt(&m.data).unwrap()[..], b"y");
    assert!(!a.needs_heartbeat());
}
