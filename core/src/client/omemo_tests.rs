//! The client's OMEMO layer against a real SQLCipher store, with a peer
//! device built from the crypto engine: what each kind of bad input turns
//! into, that nothing bad changes a session, signed prekey rotation, and
//! stale devices.

use minidom::Element;

use super::*;
use crate::features::omemo::elements::{EncryptedElement, KeyEntry};
use crate::features::omemo::sce;
use crate::omemo::x3dh::signed_pre_key_encoding;
use crate::omemo::{payload, Bundle, IdentityKeyPair, KeyPair, OmemoVersion, RatchetSession};
use crate::store::{Store, StoreKey};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const BOB_DEVICE: u32 = 77;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    omemo: Omemo,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &StoreKey::from_bytes([5; 32])).unwrap();
    let omemo = Omemo::load_or_create(&mut store, ALICE.parse().unwrap()).unwrap();
    Fixture {
        _dir: dir,
        store,
        omemo,
    }
}

/// The verified bundle of a device with `identity`, signed prekey
/// (`spk_id`, `spk`) and one-time prekeys `pre_keys`.
fn signed_bundle(
    identity: &IdentityKeyPair,
    version: OmemoVersion,
    spk_id: u32,
    spk: [u8; 32],
    pre_keys: Vec<(u32, [u8; 32])>,
) -> Bundle {
    let encoded = signed_pre_key_encoding(version, &spk);
    let signature = identity.sign(version, &encoded);
    let public = identity.public();
    let ik = match version {
        OmemoVersion::V2 => public.ed25519().unwrap().to_vec(),
        OmemoVersion::V0_3 => crate::omemo::wire::djb_key(&public.curve25519()),
    };
    Bundle::verified(version, &ik, spk_id, &encoded, &signature, pre_keys).unwrap()
}

/// Alice's bundle as Bob would fetch it.
fn alice_bundle(f: &Fixture, version: OmemoVersion) -> Bundle {
    let own = f.store.omemo_own().unwrap().unwrap();
    let identity = IdentityKeyPair::from_seed(&own.identity_seed);
    let ((spk_id, spk), _) = f
        .store
        .omemo_signed_pre_keys()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let pre_keys = f
        .store
        .omemo_pre_keys()
        .unwrap()
        .iter()
        .map(|(id, s)| (*id, KeyPair::from_secret(**s).public()))
        .collect();
    signed_bundle(
        &identity,
        version,
        spk_id,
        KeyPair::from_secret(*spk).public(),
        pre_keys,
    )
}

/// A bundle of a device with `identity`, a fresh signed prekey and one
/// one-time prekey.
fn bundle_of(identity: &IdentityKeyPair, version: OmemoVersion) -> Bundle {
    let pre_key = vec![(1, KeyPair::generate().public())];
    signed_bundle(identity, version, 1, KeyPair::generate().public(), pre_key)
}

/// Bob's device: his session with Alice, built from her bundle.
struct Bob {
    identity: IdentityKeyPair,
    session: RatchetSession,
    version: OmemoVersion,
}

impl Bob {
    fn new(f: &Fixture, version: OmemoVersion) -> Self {
        let identity = IdentityKeyPair::generate();
        let session =
            RatchetSession::initiate(version, &identity, BOB_DEVICE, &alice_bundle(f, version))
                .unwrap();
        Self {
            identity,
            session,
            version,
        }
    }

    /// A message stanza from Bob to Alice's device `rid`, `from` claimed
    /// in the SCE envelope.
    fn message(&mut self, body: &str, rid: u32, claimed_from: &str) -> Element {
        let plaintext = match self.version {
            OmemoVersion::V2 => sce::envelope(body, claimed_from, ALICE, "2026-11-25T00:00:00Z"),
            OmemoVersion::V0_3 => body.as_bytes().to_vec(),
        };
        let sealed = payload::encrypt(self.version, &plaintext);
        let key = self.session.encrypt(&sealed.key_material).unwrap();
        let encrypted = EncryptedElement {
            version: self.version,
            sid: BOB_DEVICE,
            keys: vec![KeyEntry {
                jid: Some(ALICE.into()),
                rid,
                key_exchange: key.key_exchange,
                data: key.data,
            }],
            iv: sealed.iv.map(|iv| iv.to_vec()),
            payload: Some(sealed.ciphertext),
        };
        let mut message = crate::features::stanza(
            "message",
            &[
                ("from", Some(&format!("{BOB}/phone"))),
                ("to", Some(ALICE)),
                ("type", Some("chat")),
            ],
            vec![],
        );
        message.append_child(encrypted.to_element());
        message
    }
}

/// Decrypts and commits, as the handler does for a batch.
fn receive(f: &mut Fixture, message: &Element) -> Received {
    let (received, _) = f
        .omemo
        .decrypt(&mut f.store, BOB, message)
        .expect("an encrypted message");
    let writes = f.omemo.take_writes();
    f.store
        .insert_incoming_batch_with(&[], &writes, &[])
        .unwrap();
    received
}

fn body_of(received: Received) -> (String, MessageSecurity) {
    match received {
        Received::Message { body, security } => (body, security),
        Received::KeyTransport | Received::Duplicate => panic!("expected a message"),
    }
}

#[test]
fn messages_decrypt_with_scheme_device_and_trust_in_both_versions() {
    for version in OmemoVersion::ALL {
        let mut f = fixture();
        let mut bob = Bob::new(&f, version);
        let device = f.omemo.device_id();
        for i in 0..3 {
            let (body, security) = body_of(receive(
                &mut f,
                &bob.message(&format!("hi {i}"), device, BOB),
            ));
            assert_eq!(body, format!("hi {i}"));
            assert_eq!(security.scheme, scheme(version));
            assert_eq!(security.sender_device, Some(BOB_DEVICE));
            assert_eq!(security.sender_trust, Some(DeviceTrust::BlindlyTrusted));
            assert_eq!(security.undecryptable, None);
        }
        // The device was recorded with its identity key.
        let record = f.store.omemo_device(BOB, BOB_DEVICE).unwrap().unwrap();
        assert_eq!(
            record.identity_key,
            Some(bob.identity.public().curve25519())
        );
        assert!(record.last_message_ms.is_some());
    }
}

#[test]
fn bad_input_is_kept_as_undecryptable_with_its_reason_and_breaks_nothing() {
    for version in OmemoVersion::ALL {
        let mut f = fixture();
        let mut bob = Bob::new(&f, version);
        let device = f.omemo.device_id();
        let first = bob.message("first", device, BOB);
        assert_eq!(body_of(receive(&mut f, &first)).0, "first");
        let reason = |f: &mut Fixture, m: &Element| body_of(receive(f, m)).1.undecryptable;

        // The same message again (a redelivery, or a replay): dropped
        // without a word (issue 13, item 7: it used to be stored as
        // undecryptable).
        assert!(matches!(receive(&mut f, &first), Received::Duplicate));
        // A key for another device only.
        let other = bob.message("not for you", device + 1, BOB);
        assert_eq!(
            reason(&mut f, &other).as_deref(),
            Some("message not encrypted for this device")
        );
        // A payload that fails to authenticate.
        let mut tampered = bob.message("tampered", device, BOB);
        let encrypted = tampered
            .get_child_mut("encrypted", version.namespace())
            .unwrap();
        let payload = encrypted
            .get_child_mut("payload", version.namespace())
            .unwrap();
        let text = payload.text();
        let flipped = if text.starts_with('A') {
            text.replacen('A', "B", 1)
        } else {
            format!("A{}", &text[1..])
        };
        *payload = crate::features::text_element("payload", version.namespace(), &flipped);
        assert_eq!(
            reason(&mut f, &tampered).as_deref(),
            Some("payload failed to authenticate")
        );
        // A malformed element.
        let mut malformed = crate::features::stanza("message", &[("type", Some("chat"))], vec![]);
        malformed.append_child(Element::bare("encrypted", version.namespace()));
        assert!(reason(&mut f, &malformed)
            .unwrap()
            .starts_with("malformed OMEMO data"));
        // None of it hurt the session.
        assert_eq!(
            body_of(receive(&mut f, &bob.message("still fine", device, BOB))).0,
            "still fine"
        );
    }
}

#[test]
fn an_envelope_claiming_another_sender_is_refused() {
    let mut f = fixture();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    let device = f.omemo.device_id();
    let forged = bob.message("I am Mallory", device, "mallory@example.org");
    let (_, security) = body_of(receive(&mut f, &forged));
    assert_eq!(
        security.undecryptable.as_deref(),
        Some("payload failed to authenticate")
    );
}

#[test]
fn a_changed_identity_for_a_known_device_is_refused() {
    for version in OmemoVersion::ALL {
        let mut f = fixture();
        let device = f.omemo.device_id();
        let mut bob = Bob::new(&f, version);
        assert_eq!(
            body_of(receive(&mut f, &bob.message("real", device, BOB))).0,
            "real"
        );
        // Someone else claims Bob's device id with a new identity key.
        let mut impostor = Bob::new(&f, version);
        let (body, security) = body_of(receive(&mut f, &impostor.message("fake", device, BOB)));
        assert_ne!(body, "fake");
        assert_eq!(
            security.undecryptable.as_deref(),
            Some("identity key changed")
        );
        // Bob's real session still works.
        assert_eq!(
            body_of(receive(&mut f, &bob.message("real again", device, BOB))).0,
            "real again"
        );
    }
}

#[test]
fn a_used_prekey_is_replaced_and_the_bundle_republished_after_commit() {
    let mut f = fixture();
    let before: Vec<u32> = f
        .store
        .omemo_pre_keys()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    let device = f.omemo.device_id();
    let message = bob.message("kex", device, BOB);
    let (_, stanzas) = f.omemo.decrypt(&mut f.store, BOB, &message).unwrap();
    assert!(stanzas.is_empty());
    // Nothing changes in the store before the batch commits.
    assert_eq!(f.store.omemo_pre_keys().unwrap().len(), before.len());
    assert!(f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().is_none());
    let writes = f.omemo.take_writes();
    f.store
        .insert_incoming_batch_with(&[], &writes, &[])
        .unwrap();
    let after: Vec<u32> = f
        .store
        .omemo_pre_keys()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(after.len(), before.len(), "still 100 prekeys");
    assert_ne!(after, before, "the used one was replaced");
    assert!(f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().is_some());
    let after_commit = f.omemo.after_commit(&mut f.store);
    assert_eq!(
        after_commit.iter().filter(|s| s.name() == "iq").count(),
        2,
        "bundles republished for both versions"
    );
    assert!(
        empty_message_to(&after_commit, BOB),
        "and the session completed"
    );
}

/// Issue 12, performance: a login republished both bundles (100 prekeys
/// each) every time; now only a bundle that changed since the server last
/// accepted it goes out.
#[test]
fn a_bundle_is_published_only_when_it_changed() {
    let mut f = fixture();
    let publishes = |out: &[Element]| {
        out.iter()
            .filter(|e| {
                e.get_child("pubsub", "http://jabber.org/protocol/pubsub")
                    .and_then(|p| p.get_child("publish", "http://jabber.org/protocol/pubsub"))
                    .and_then(|p| p.attr("node"))
                    .is_some_and(|node| node.contains("bundle"))
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    // An established device (in our published list).
    let me = f.omemo.device_id();
    f.omemo
        .record_device_list(&mut f.store, ALICE, OmemoVersion::V2, &[me])
        .unwrap();
    let now = now_ms();
    let first = publishes(&f.omemo.on_online(&mut f.store, now));
    assert_eq!(first.len(), 2, "both versions' bundles at first");
    let accepted = |f: &mut Fixture, sent: &[Element]| {
        for request in sent {
            let id = request.attr("id").unwrap();
            let result: Element = format!("<iq xmlns='jabber:client' type='result' id='{id}'/>")
                .parse()
                .unwrap();
            f.omemo.on_iq_result(&mut f.store, &result);
        }
    };
    accepted(&mut f, &first);
    assert!(
        publishes(&f.omemo.on_online(&mut f.store, now)).is_empty(),
        "unchanged: nothing published on the next login"
    );
    // A refused publish is tried again next time.
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    let device = f.omemo.device_id();
    receive(&mut f, &bob.message("uses a prekey", device, BOB));
    let republished = publishes(&f.omemo.after_commit(&mut f.store));
    assert_eq!(republished.len(), 2, "a used prekey changes both bundles");
    assert_eq!(
        publishes(&f.omemo.on_online(&mut f.store, now)).len(),
        2,
        "not yet accepted"
    );
}

/// Issue 12 (performance): our own devices silent past the stale period
/// are pruned from our published list; active ones and this one stay.
#[test]
fn our_silent_devices_leave_our_device_list() {
    let mut f = fixture();
    let me = f.omemo.device_id();
    let long_ago = now_ms() - STALE_DEVICE_MS - 1;
    // Device 5 was first seen long ago and never wrote; 6 is new.
    f.store
        .omemo_update_device_list(ALICE, true, &[me, 5], long_ago)
        .unwrap();
    let out = f
        .omemo
        .learn_device_list(&mut f.store, ALICE, OmemoVersion::V2, vec![me, 5, 6]);
    assert_eq!(out.len(), 1, "one list publish, no bundle");
    let published = String::from(&out[0]);
    assert!(
        published.contains(&format!("id='{me}'")) || published.contains(&format!("id=\"{me}\"")),
        "{published}"
    );
    assert!(
        !published.contains("id='5'") && !published.contains("id=\"5\""),
        "{published}"
    );
    assert!(
        published.contains("id='6'") || published.contains("id=\"6\""),
        "{published}"
    );
    // Nothing stale, ourselves listed: nothing to publish.
    let out = f
        .omemo
        .learn_device_list(&mut f.store, ALICE, OmemoVersion::V2, vec![me, 6]);
    assert!(out.is_empty());
}

/// Retiring this device: both lists without it, its OMEMO 2 bundle item
/// retracted and its OMEMO 0.3 bundle node deleted, and no republishing
/// afterwards in this process.
#[test]
fn retiring_this_device_takes_down_its_lists_and_bundles() {
    let mut f = fixture();
    let me = f.omemo.device_id();
    f.store
        .omemo_update_device_list(ALICE, true, &[me, 6], now_ms())
        .unwrap();
    let out: Vec<String> = f
        .omemo
        .remove_own_devices(&f.store, &[me])
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out
        .iter()
        .any(|s| s.contains("<retract") && s.contains("urn:xmpp:omemo:2:bundles")));
    assert!(out
        .iter()
        .any(|s| s.contains("<delete") && s.contains(&format!("axolotl.bundles:{me}"))));
    assert!(
        f.omemo
            .learn_device_list(&mut f.store, ALICE, OmemoVersion::V2, vec![6])
            .is_empty(),
        "not put back"
    );
    assert!(f
        .omemo
        .on_online(&mut f.store, now_ms())
        .iter()
        .all(|s| !String::from(s).contains("bundles")));
}

#[test]
fn the_signed_prekey_rotates_weekly_and_the_previous_one_still_works() {
    let mut f = fixture();
    let mut bob = Bob::new(&f, OmemoVersion::V2); // uses the current signed prekey
    let created = f.store.omemo_signed_pre_keys().unwrap()[0].1;
    f.omemo.on_online(&mut f.store, created + 1000);
    assert_eq!(
        f.store.omemo_signed_pre_keys().unwrap().len(),
        1,
        "not due yet"
    );
    f.omemo
        .on_online(&mut f.store, created + SIGNED_PRE_KEY_LIFETIME_MS);
    let keys = f.store.omemo_signed_pre_keys().unwrap();
    assert_eq!(keys.len(), 2, "the new one and the previous one");
    assert_eq!(f.store.omemo_own().unwrap().unwrap().signed_pre_key_id, 2);
    // A key exchange made with the previous signed prekey still works.
    let device = f.omemo.device_id();
    assert_eq!(
        body_of(receive(&mut f, &bob.message("late kex", device, BOB))).0,
        "late kex"
    );
}

#[test]
fn stale_devices_get_no_keys_unless_they_are_all_there_is() {
    let mut f = fixture();
    f.store
        .omemo_set_conversation_encryption(BOB, ConversationEncryption::Omemo2)
        .unwrap();
    f.store
        .omemo_update_device_list(BOB, true, &[1, 2], now_ms())
        .unwrap();
    let long_ago = now_ms() - STALE_DEVICE_MS - 1;
    // Issue 12: device 3 was first listed long ago and never wrote: it is
    // stale too (it used to count as fresh for ever).
    f.store
        .omemo_update_device_list(BOB, true, &[1, 2, 3], long_ago)
        .unwrap();
    f.store.omemo_touch_device(BOB, 1, long_ago).unwrap();
    // Device lists count as fetched on this connection.
    for version in OmemoVersion::ALL {
        f.omemo.lists_requested.insert((BOB.into(), version));
        f.omemo.lists_requested.insert((ALICE.into(), version));
    }
    let Prepared::Wait(requests) = f.omemo.prepare(&mut f.store, 1, BOB, "hi", "o1") else {
        panic!("expected bundle requests");
    };
    let asked: Vec<String> = requests.iter().map(String::from).collect();
    assert_eq!(asked.len(), 1, "only the fresh device's bundle");
    assert!(
        asked[0].contains("id='2'") || asked[0].contains("id=\"2\""),
        "{asked:?}"
    );
    // With every device stale, they are used after all.
    f.store.omemo_touch_device(BOB, 2, long_ago).unwrap();
    f.omemo.pending.clear();
    f.omemo.waiting.clear();
    let Prepared::Wait(requests) = f.omemo.prepare(&mut f.store, 1, BOB, "hi", "o1") else {
        panic!("expected bundle requests");
    };
    assert_eq!(requests.len(), 3);
}

/// Pins a fresh identity for `jid`'s `device`, as a fetched bundle would.
fn learn_key(f: &mut Fixture, jid: &str, device: u32) -> DeviceTrust {
    let identity = IdentityKeyPair::generate().public();
    f.omemo
        .pin_identity(&mut f.store, jid, device, &identity)
        .unwrap()
}

#[test]
fn blind_trust_until_the_user_verifies_one_device() {
    let mut f = fixture();
    // Our own other devices: this installation does not count as verified.
    f.omemo
        .record_device_list(
            &mut f.store,
            ALICE,
            OmemoVersion::V2,
            &[f.omemo.device_id(), 5],
        )
        .unwrap();
    // Listed, key unknown: no trust yet.
    assert_eq!(
        f.store.omemo_device(ALICE, 5).unwrap().unwrap().trust,
        DeviceTrust::Undecided
    );
    assert_eq!(learn_key(&mut f, ALICE, 5), DeviceTrust::BlindlyTrusted);
    // A contact: blindly trusted until one of theirs is verified ...
    f.omemo
        .record_device_list(&mut f.store, BOB, OmemoVersion::V2, &[1])
        .unwrap();
    assert_eq!(learn_key(&mut f, BOB, 1), DeviceTrust::BlindlyTrusted);
    f.store
        .omemo_set_trust(BOB, 1, DeviceTrust::Verified)
        .unwrap();
    // ... after which new ones wait for a decision.
    f.omemo
        .record_device_list(&mut f.store, BOB, OmemoVersion::V2, &[1, 2])
        .unwrap();
    assert_eq!(learn_key(&mut f, BOB, 2), DeviceTrust::Undecided);
    assert_eq!(
        f.omemo.take_new_devices(),
        vec![ALICE.to_owned(), BOB.to_owned()]
    );
}

/// Issue 13, defect 1: a device id seen only in an `<encrypted>` that does
/// not authenticate carries no trust. The old code recorded it with the
/// conversation's initial (blind) trust before decrypting anything; once the
/// user verified another device and the server listed the id, the first key
/// fetched for it was pinned, trusted, and given message keys.
#[test]
fn a_device_id_from_an_unauthenticated_message_gets_no_trust() {
    let mut f = fixture();
    let device = f.omemo.device_id();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    assert_eq!(
        body_of(receive(&mut f, &bob.message("hi", device, BOB))).0,
        "hi"
    );
    // Garbage "from" Bob under device id 666.
    let mut garbage = bob.message("x", device, BOB);
    let encrypted = garbage
        .get_child_mut("encrypted", OmemoVersion::V2.namespace())
        .unwrap();
    crate::features::set_attr(
        encrypted
            .get_child_mut("header", OmemoVersion::V2.namespace())
            .unwrap(),
        "sid",
        "666",
    );
    let (received, out) = f.omemo.decrypt(&mut f.store, BOB, &garbage).unwrap();
    assert!(body_of(received).1.undecryptable.is_some());
    assert!(
        out.is_empty(),
        "no bundle fetched for an unlisted id: {out:?}"
    );
    assert_eq!(
        f.store.omemo_device(BOB, 666).unwrap(),
        None,
        "not recorded"
    );
    // The user verifies Bob's real device; then the server lists 666.
    let fingerprint = hex::encode(bob.identity.public().curve25519());
    assert!(matches!(
        f.store.omemo_device(BOB, BOB_DEVICE).unwrap().unwrap().identity_key,
        Some(key) if hex::encode(key) == fingerprint
    ));
    f.store
        .omemo_set_trust(BOB, BOB_DEVICE, DeviceTrust::Verified)
        .unwrap();
    f.omemo.take_new_devices();
    f.omemo
        .record_device_list(&mut f.store, BOB, OmemoVersion::V2, &[BOB_DEVICE, 666])
        .unwrap();
    assert_eq!(
        f.omemo.take_new_devices(),
        vec![BOB.to_owned()],
        "devices-changed"
    );
    // Whatever key the server hands out for 666 is undecided: no message key.
    assert_eq!(learn_key(&mut f, BOB, 666), DeviceTrust::Undecided);
    f.store
        .omemo_set_conversation_encryption(BOB, ConversationEncryption::Omemo2)
        .unwrap();
    for version in OmemoVersion::ALL {
        f.omemo.lists_requested.insert((BOB.into(), version));
        f.omemo.lists_requested.insert((ALICE.into(), version));
    }
    let session = RatchetSession::initiate(
        OmemoVersion::V2,
        &f.omemo.identity,
        device,
        &bundle_of(&IdentityKeyPair::generate(), OmemoVersion::V2),
    )
    .unwrap();
    f.store
        .omemo_save_session(BOB, 666, 2, &session.to_bytes())
        .unwrap();
    let stanza = match f.omemo.prepare(&mut f.store, 1, BOB, "secret", "o1") {
        Prepared::Encrypted(stanza, _) => stanza,
        Prepared::Wait(r) => panic!(
            "waits for {:?}",
            r.iter().map(String::from).collect::<Vec<_>>()
        ),
        Prepared::Fail(why) => panic!("fails: {why}"),
        Prepared::Plain => panic!("plain"),
    };
    let rids: Vec<String> = stanza
        .get_child("encrypted", OmemoVersion::V2.namespace())
        .unwrap()
        .get_child("header", OmemoVersion::V2.namespace())
        .unwrap()
        .children()
        .flat_map(|keys| keys.children())
        .filter_map(|key| key.attr("rid").map(str::to_owned))
        .collect();
    assert_eq!(rids, vec![BOB_DEVICE.to_string()]);
}

/// Issue 13, item 3: a distrusted device's messages are not shown as
/// messages; an undecided device's are marked as such.
#[test]
fn a_distrusted_device_is_not_shown_and_an_undecided_one_is_marked() {
    let mut f = fixture();
    let device = f.omemo.device_id();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    assert_eq!(
        body_of(receive(&mut f, &bob.message("hi", device, BOB))).0,
        "hi"
    );
    f.store
        .omemo_set_trust(BOB, BOB_DEVICE, DeviceTrust::Undecided)
        .unwrap();
    let (body, security) = body_of(receive(&mut f, &bob.message("hello", device, BOB)));
    assert_eq!(body, "hello");
    assert_eq!(security.sender_trust, Some(DeviceTrust::Undecided));
    f.store
        .omemo_set_trust(BOB, BOB_DEVICE, DeviceTrust::Distrusted)
        .unwrap();
    let (body, security) = body_of(receive(&mut f, &bob.message("buy now", device, BOB)));
    assert!(!body.contains("buy now"), "{body}");
    assert_eq!(security.undecryptable.as_deref(), Some(DISTRUSTED_SENDER));
    assert_eq!(security.sender_trust, Some(DeviceTrust::Distrusted));
}

/// Issue 13, item 13: under the manual policy no new key is trusted blindly.
#[test]
fn the_manual_policy_trusts_no_new_key() {
    let mut f = fixture();
    f.store
        .put(AccountState::OMEMO_TRUST_POLICY, Some(&TrustPolicy::Manual))
        .unwrap();
    assert_eq!(learn_key(&mut f, BOB, 1), DeviceTrust::Undecided);
    assert_eq!(learn_key(&mut f, ALICE, 9), DeviceTrust::Undecided);
    let device = f.omemo.device_id();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    let (body, security) = body_of(receive(&mut f, &bob.message("hi", device, BOB)));
    assert_eq!(body, "hi");
    assert_eq!(security.sender_trust, Some(DeviceTrust::Undecided));
}

/// Flips the last byte of the key Alice's device gets (inside the ratchet
/// message's MAC): a message that fails authentication on its session.
fn with_bad_mac(message: &Element, version: OmemoVersion, rid: u32) -> Element {
    use base64::Engine;
    let mut message = message.clone();
    let ns = version.namespace();
    let header = message
        .get_child_mut("encrypted", ns)
        .unwrap()
        .get_child_mut("header", ns)
        .unwrap();
    let mut keys: Vec<&mut Element> = match version {
        OmemoVersion::V2 => header
            .children_mut()
            .flat_map(|keys| keys.children_mut())
            .collect(),
        OmemoVersion::V0_3 => header
            .children_mut()
            .filter(|c| c.name() == "key")
            .collect(),
    };
    let key = keys
        .iter_mut()
        .find(|k| k.attr("rid") == Some(rid.to_string().as_str()))
        .unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut data = engine.decode(key.text()).unwrap();
    *data.last_mut().unwrap() ^= 1;
    let attrs: Vec<(&str, String)> = ["rid", "prekey", "kex"]
        .into_iter()
        .filter_map(|name| key.attr(name).map(|v| (name, v.to_owned())))
        .collect();
    let mut replaced = crate::features::text_element("key", ns, &engine.encode(data));
    for (k, v) in attrs {
        crate::features::set_attr(&mut replaced, k, &v);
    }
    **key = replaced;
    message
}

/// Bob reads the empty message among `stanzas` (which confirms his session).
fn read_answer(bob: &mut Bob, stanzas: &[Element]) {
    let message = stanzas.iter().find(|s| s.name() == "message").unwrap();
    let parsed = EncryptedElement::parse(encrypted_child(message).unwrap()).unwrap();
    let key = parsed.key_for(BOB, BOB_DEVICE).unwrap();
    assert!(!key.key_exchange);
    bob.session.decrypt(&key.data).unwrap();
}

/// Alice and Bob with a complete session: Bob's key exchange ("one")
/// read, Alice's empty answer read by Bob.
fn established(version: OmemoVersion) -> (Fixture, u32, Bob) {
    let mut f = fixture();
    let device = f.omemo.device_id();
    let mut bob = Bob::new(&f, version);
    assert_eq!(
        body_of(receive(&mut f, &bob.message("one", device, BOB))).0,
        "one"
    );
    let answer = f.omemo.after_commit(&mut f.store);
    read_answer(&mut bob, &answer);
    (f, device, bob)
}

/// Whether `stanzas` hold a message (an empty OMEMO one) to `jid`.
fn empty_message_to(stanzas: &[Element], jid: &str) -> bool {
    stanzas
        .iter()
        .any(|s| s.name() == "message" && s.attr("to") == Some(jid))
}

/// Issue 13, defect 4: a decryption error on an existing session keeps the
/// session and asks for nothing (the old code fetched the device's bundle
/// to overwrite a working session); only a device that writes without any
/// session of ours gets one built, once per connection.
#[test]
fn a_failure_on_an_existing_session_never_replaces_it() {
    for version in OmemoVersion::ALL {
        let (mut f, device, mut bob) = established(version);
        let tampered = with_bad_mac(&bob.message("two", device, BOB), version, device);
        let (received, out) = f.omemo.decrypt(&mut f.store, BOB, &tampered).unwrap();
        assert_eq!(
            body_of(received).1.undecryptable.as_deref(),
            Some("message authentication failed")
        );
        assert!(out.is_empty(), "no bundle fetched: {out:?}");
        assert!(!f
            .omemo
            .pending
            .values()
            .any(|p| matches!(p, Pending::Bundle { .. })));
        assert_eq!(
            body_of(receive(&mut f, &bob.message("three", device, BOB))).0,
            "three",
            "the session still works"
        );
        // Without any session, from a device Bob's server lists: one
        // bundle request, not one per message.
        f.store.omemo_forget_sessions(BOB).unwrap();
        f.omemo
            .record_device_list(&mut f.store, BOB, version, &[BOB_DEVICE])
            .unwrap();
        let mut asked = 0;
        for body in ["four", "five"] {
            let (received, out) = f
                .omemo
                .decrypt(&mut f.store, BOB, &bob.message(body, device, BOB))
                .unwrap();
            assert_eq!(
                body_of(received).1.undecryptable.as_deref(),
                Some("no session with this device")
            );
            asked += out.len();
        }
        assert_eq!(asked, 1, "{version:?}");
    }
}

/// Issue 13, defect 4: a key exchange that replaces a session archives the
/// old one, so messages the peer sent on it before still decrypt (the old
/// code overwrote it and lost them).
#[test]
fn late_messages_for_a_replaced_session_still_decrypt() {
    for version in OmemoVersion::ALL {
        let (mut f, device, mut bob) = established(version);
        let late = bob.message("late", device, BOB);
        // Bob starts over (same identity, a new key exchange).
        bob.session = RatchetSession::initiate(
            version,
            &bob.identity,
            BOB_DEVICE,
            &alice_bundle(&f, version),
        )
        .unwrap();
        assert_eq!(
            body_of(receive(&mut f, &bob.message("new", device, BOB))).0,
            "new"
        );
        assert_eq!(body_of(receive(&mut f, &late)).0, "late", "{version:?}");
        assert_eq!(
            body_of(receive(&mut f, &bob.message("after", device, BOB))).0,
            "after"
        );
    }
}

/// Issue 13, item 6: a session built from a key exchange is completed with
/// an empty message once committed, and 53 messages received in a row
/// without an answer get one too; Bob's side reads both.
#[test]
fn key_exchanges_are_answered_and_long_silences_get_a_heartbeat() {
    for version in OmemoVersion::ALL {
        let mut f = fixture();
        let device = f.omemo.device_id();
        let mut bob = Bob::new(&f, version);
        body_of(receive(&mut f, &bob.message("hello", device, BOB)));
        let answer = f.omemo.after_commit(&mut f.store);
        assert!(empty_message_to(&answer, BOB), "{version:?}: {answer:?}");
        read_answer(&mut bob, &answer);
        for i in 1..=53 {
            body_of(receive(&mut f, &bob.message(&format!("m{i}"), device, BOB)));
            let out = f.omemo.after_commit(&mut f.store);
            assert_eq!(
                empty_message_to(&out, BOB),
                i == 53,
                "{version:?} after {i}"
            );
            if i == 53 {
                read_answer(&mut bob, &out);
            }
        }
    }
}

/// Issue 13, defect 4: the user can replace a session by hand (XEP-0384
/// §9's MUST): the old one is archived and still decrypts, and a new one
/// is built from the device's bundle.
#[test]
fn a_session_replaced_by_the_user_is_rebuilt_and_the_old_one_kept() {
    let mut f = fixture();
    let device = f.omemo.device_id();
    let mut bob = Bob::new(&f, OmemoVersion::V2);
    body_of(receive(&mut f, &bob.message("one", device, BOB)));
    let answer = f.omemo.after_commit(&mut f.store);
    read_answer(&mut bob, &answer);
    let late = bob.message("late", device, BOB);
    f.omemo
        .record_device_list(&mut f.store, BOB, OmemoVersion::V2, &[BOB_DEVICE])
        .unwrap();
    assert_eq!(f.store.omemo_archive_sessions(BOB, BOB_DEVICE).unwrap(), 1);
    assert!(f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().is_none());
    let requests: Vec<String> = f
        .omemo
        .rebuild_session(&f.store, BOB, BOB_DEVICE)
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].contains("urn:xmpp:omemo:2:bundles"),
        "{requests:?}"
    );
    assert_eq!(body_of(receive(&mut f, &late)).0, "late");
}

/// Issue 13, item 11: a new device id is checked against our own list
/// before anything is published under it (the old code published its
/// bundles at once and kept an id another device of ours had).
#[test]
fn a_new_device_id_taken_by_another_of_our_devices_is_replaced() {
    let mut f = fixture();
    let taken = f.omemo.device_id();
    let out: Vec<String> = f
        .omemo
        .on_online(&mut f.store, now_ms())
        .iter()
        .map(String::from)
        .collect();
    assert!(
        out.iter().all(|s| !s.contains("bundles")),
        "nothing published before our list is seen: {out:?}"
    );
    // Both lists are seen before anything is published (the id is taken
    // in the OMEMO 2 one here).
    assert!(f
        .omemo
        .learn_device_list(&mut f.store, ALICE, OmemoVersion::V2, vec![taken, 5])
        .is_empty());
    let out: Vec<String> = f
        .omemo
        .learn_device_list(&mut f.store, ALICE, OmemoVersion::V0_3, vec![])
        .iter()
        .map(String::from)
        .collect();
    let ours = f.omemo.device_id();
    assert_ne!(ours, taken);
    assert_eq!(f.store.omemo_own().unwrap().unwrap().device_id, ours);
    let list = out
        .iter()
        .find(|s| s.contains("urn:xmpp:omemo:2:devices"))
        .unwrap();
    for id in [ours, taken, 5] {
        assert!(list.contains(&format!("id='{id}'")) || list.contains(&format!("id=\"{id}\"")));
    }
    assert!(out.iter().any(|s| s.contains("urn:xmpp:omemo:2:bundles")));
    // Our identity moved with us; the taken id is the other device's.
    let me = f.store.omemo_device(ALICE, ours).unwrap().unwrap();
    assert_eq!(me.trust, DeviceTrust::Verified);
    assert!(me.identity_key.is_some());
    let other = f.store.omemo_device(ALICE, taken).unwrap().unwrap();
    assert_eq!(
        (other.identity_key, other.trust),
        (None, DeviceTrust::Undecided)
    );
    // The notification of our own publish (it can come before the
    // publish's answer) is no clash: the id stays.
    f.omemo
        .learn_device_list(&mut f.store, ALICE, OmemoVersion::V2, vec![ours, taken, 5]);
    assert_eq!(f.omemo.device_id(), ours);
}

/// Issue 13, item 11: a conversation that has used OMEMO 2 is not
/// downgraded to 0.3 for everyone because one device left the OMEMO 2 list.
#[test]
fn a_device_leaving_the_omemo_2_list_does_not_downgrade_the_conversation() {
    let device = |id, v2, v03| DeviceRecord {
        jid: BOB.into(),
        device_id: id,
        listed_v03: v03,
        listed_v2: v2,
        identity_key: None,
        identity_ed25519: None,
        trust: DeviceTrust::BlindlyTrusted,
        first_seen_ms: 0,
        last_message_ms: None,
    };
    let devices = [device(1, true, true), device(2, false, true)];
    assert_eq!(
        Omemo::choose_version(&devices, false),
        Some(OmemoVersion::V0_3)
    );
    assert_eq!(
        Omemo::choose_version(&devices, true),
        Some(OmemoVersion::V2)
    );
    let only_03 = [device(2, false, true)];
    assert_eq!(
        Omemo::choose_version(&only_03, true),
        Some(OmemoVersion::V0_3)
    );
    let mut f = fixture();
    assert!(!f.store.omemo_used_v2(BOB).unwrap());
    f.store.omemo_mark_used_v2(BOB).unwrap();
    assert!(f.store.omemo_used_v2(BOB).unwrap());
}

/// Issue 13, item 11: the signed prekey rotates while connected, not only
/// at login, and the bundles go out again.
#[test]
fn the_signed_prekey_rotates_while_connected() {
    let mut f = fixture();
    let created = f.store.omemo_signed_pre_keys().unwrap()[0].1;
    assert!(f.omemo.maintenance(&mut f.store, created + 1000).is_empty());
    let out = f
        .omemo
        .maintenance(&mut f.store, created + SIGNED_PRE_KEY_LIFETIME_MS);
    assert_eq!(f.store.omemo_own().unwrap().unwrap().signed_pre_key_id, 2);
    assert_eq!(out.len(), 2, "both bundles republished");
}

/// Issue 13 review: a late message for an archived session reads, in the
/// same batch as another one, and never makes that session current again
/// (which undid the user's replacement once the new session existed).
#[test]
fn archived_sessions_read_late_messages_without_becoming_current() {
    let (mut f, device, mut bob) = established(OmemoVersion::V2);
    let late = [
        bob.message("late 1", device, BOB),
        bob.message("late 2", device, BOB),
    ];
    // The user replaces the session; Bob's bundle comes and a new one is built.
    assert_eq!(f.store.omemo_archive_sessions(BOB, BOB_DEVICE).unwrap(), 1);
    let alice_view_of_bob = bundle_of(&bob.identity, OmemoVersion::V2);
    f.omemo
        .start_session(
            &mut f.store,
            BOB,
            BOB_DEVICE,
            OmemoVersion::V2,
            &alice_view_of_bob,
        )
        .unwrap();
    let current = f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().unwrap();
    // Both late messages in one batch.
    let bodies: Vec<String> = late
        .iter()
        .map(|m| body_of(f.omemo.decrypt(&mut f.store, BOB, m).unwrap().0).0)
        .collect();
    let writes = f.omemo.take_writes();
    f.store
        .insert_incoming_batch_with(&[], &writes, &[])
        .unwrap();
    assert_eq!(bodies, ["late 1", "late 2"]);
    assert_eq!(
        *f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().unwrap(),
        *current,
        "the new session stays current"
    );
    assert_eq!(
        f.store
            .omemo_old_sessions(BOB, BOB_DEVICE, 2)
            .unwrap()
            .len(),
        1
    );
    // Redelivered, they are duplicates: dropped, not undecryptable.
    assert!(matches!(receive(&mut f, &late[0]), Received::Duplicate));
}

/// Issue 13 review: a bundle that arrives after a key exchange already
/// built a session does not replace it.
#[test]
fn a_late_bundle_does_not_replace_a_working_session() {
    let (mut f, _, bob) = established(OmemoVersion::V2);
    let before = f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().unwrap();
    f.omemo
        .start_session(
            &mut f.store,
            BOB,
            BOB_DEVICE,
            OmemoVersion::V2,
            &bundle_of(&bob.identity, OmemoVersion::V2),
        )
        .unwrap();
    assert_eq!(
        *f.store.omemo_session(BOB, BOB_DEVICE, 2).unwrap().unwrap(),
        *before
    );
}

/// Issue 13 review: the archive keeps the newest 40 sessions per device.
#[test]
fn the_archive_keeps_forty_sessions() {
    let mut f = fixture();
    let records: Vec<zeroize::Zeroizing<Vec<u8>>> = (0..45u8)
        .map(|i| zeroize::Zeroizing::new(vec![i]))
        .collect();
    let writes = OmemoWrites {
        archives: vec![(BOB.into(), BOB_DEVICE, 2, records)],
        ..Default::default()
    };
    f.store
        .insert_incoming_batch_with(&[], &writes, &[])
        .unwrap();
    let kept = f.store.omemo_old_sessions(BOB, BOB_DEVICE, 2).unwrap();
    assert_eq!(kept.len(), 40);
    assert_eq!(*kept[0].1, vec![44], "newest first");
    assert_eq!(*kept[39].1, vec![5]);
}

/// Issue 13 review: a device that writes without a session gets one built
/// only if its owner's server lists it; an unknown id costs one device-list
/// request and nothing more.
#[test]
fn a_session_is_built_only_for_a_listed_device() {
    let (mut f, device, mut bob) = established(OmemoVersion::V2);
    let mut claiming = |sid: &str| {
        let mut message = bob.message("no session", device, BOB);
        let ns = OmemoVersion::V2.namespace();
        let header = message
            .get_child_mut("encrypted", ns)
            .unwrap()
            .get_child_mut("header", ns)
            .unwrap();
        crate::features::set_attr(header, "sid", sid);
        message
    };
    let (m666, m667) = (claiming("666"), claiming("667"));
    let asked = |out: &[Element]| out.iter().map(String::from).collect::<Vec<_>>();
    let (_, out) = f.omemo.decrypt(&mut f.store, BOB, &m666).unwrap();
    let out = asked(&out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("urn:xmpp:omemo:2:devices"), "{out:?}");
    let (_, out) = f.omemo.decrypt(&mut f.store, BOB, &m667).unwrap();
    assert!(
        out.is_empty(),
        "one list request per contact: {:?}",
        asked(&out)
    );
    // The list shows 666 but not 667: only 666's bundle is fetched.
    let out = asked(&f.omemo.learn_device_list(
        &mut f.store,
        BOB,
        OmemoVersion::V2,
        vec![BOB_DEVICE, 666],
    ));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].contains("urn:xmpp:omemo:2:bundles") && out[0].contains("666"),
        "{out:?}"
    );
}
