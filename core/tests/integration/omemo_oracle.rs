//! OMEMO interoperability with python-omemo (oldmemo for 0.3, twomemo for 2)
//! as a library oracle (`scripts/omemo_oracle.py`): sessions built from their
//! bundles and from ours, messages both ways, in and out of order, bundles
//! whose signature carries the sign bit, replayed key exchanges.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use waxwing_core::features::omemo::elements::{bundle_element, parse_bundle};
use waxwing_core::features::omemo::OwnBundle;
use waxwing_core::omemo::wire::KeyExchange;
use waxwing_core::omemo::{
    payload, IdentityKeyPair, KeyPair, OmemoError, OmemoVersion, OwnPreKeys, RatchetSession,
};

const OUR_DEVICE: u32 = 4242;

struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Oracle {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/omemo_oracle.py");
        let mut child = Command::new(common::python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python venv from scripts/setup.sh");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("oracle said {line:?}"))
    }

    fn call_ok(&mut self, request: Value) -> Value {
        let answer = self.call(request.clone());
        assert!(
            answer.get("error").is_none(),
            "oracle failed {request}: {answer}"
        );
        answer
    }
}

fn version_label(version: OmemoVersion) -> &'static str {
    match version {
        OmemoVersion::V0_3 => "0.3",
        OmemoVersion::V2 => "2",
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().unwrap()).unwrap()
}

/// Our side: identity, prekeys and sessions, in memory.
struct Us {
    identity: IdentityKeyPair,
    signed: KeyPair,
    pre_keys: HashMap<u32, KeyPair>,
    sessions: HashMap<u32, RatchetSession>,
}

impl OwnPreKeys for Us {
    fn signed_pre_key(&self, id: u32) -> Option<KeyPair> {
        (id == 1).then(|| self.signed.clone())
    }
    fn pre_key(&self, id: u32) -> Option<KeyPair> {
        self.pre_keys.get(&id).cloned()
    }
}

impl Us {
    fn new() -> Self {
        Self::with_identity(IdentityKeyPair::generate())
    }

    fn with_identity(identity: IdentityKeyPair) -> Self {
        Self {
            identity,
            signed: KeyPair::generate(),
            pre_keys: (1..=20).map(|id| (id, KeyPair::generate())).collect(),
            sessions: HashMap::new(),
        }
    }

    fn bundle_xml(&self, version: OmemoVersion) -> String {
        let pre_keys: Vec<_> = self
            .pre_keys
            .iter()
            .map(|(id, k)| (*id, k.public()))
            .collect();
        let own = OwnBundle {
            identity: &self.identity,
            signed_pre_key_id: 1,
            signed_pre_key: self.signed.public(),
            pre_keys: &pre_keys,
        };
        String::from(&bundle_element(version, &own))
    }

    /// Receives a key element from `device`: builds a session from a key
    /// exchange (or reuses the one it built), else uses the session.
    fn receive(
        &mut self,
        version: OmemoVersion,
        device: u32,
        data: &[u8],
        kex: bool,
    ) -> Result<Vec<u8>, OmemoError> {
        if kex {
            let exchange = KeyExchange::parse(version, data)?;
            if let Some(session) = self.sessions.get_mut(&device) {
                if session.built_by(&exchange) {
                    return session.decrypt(&exchange.message).map(|p| p.to_vec());
                }
            }
            let responded = RatchetSession::respond(version, &self.identity, self, data)?;
            if let Some(id) = responded.used_pre_key_id {
                self.pre_keys.remove(&id);
            }
            self.sessions.insert(device, responded.session);
            return Ok(responded.plaintext.to_vec());
        }
        self.sessions
            .get_mut(&device)
            .ok_or(OmemoError::NoSession)?
            .decrypt(data)
            .map(|p| p.to_vec())
    }

    /// Encrypts `text` for the oracle's device; returns the decrypt request.
    fn send(&mut self, version: OmemoVersion, device: u32, text: &str) -> Value {
        let enc = payload::encrypt(version, text.as_bytes());
        let key = self
            .sessions
            .get_mut(&device)
            .unwrap()
            .encrypt(&enc.key_material)
            .unwrap();
        json!({
            "op": "decrypt", "name": "peer", "from_jid": "us@localhost", "from_device": OUR_DEVICE,
            "data": b64(&key.data), "kex": key.key_exchange,
            "payload": b64(&enc.ciphertext), "iv": enc.iv.map(|iv| b64(&iv)),
        })
    }
}

/// Decrypts what the oracle encrypted: key element, then payload.
fn open(
    us: &mut Us,
    version: OmemoVersion,
    device: u32,
    msg: &Value,
) -> Result<String, OmemoError> {
    let key_material = us.receive(
        version,
        device,
        &unb64(&msg["data"]),
        msg["kex"].as_bool().unwrap(),
    )?;
    let iv = msg["iv"].as_str().map(|_| unb64(&msg["iv"]));
    let plain = payload::decrypt(
        version,
        &key_material,
        iv.as_deref(),
        &unb64(&msg["payload"]),
    )?;
    Ok(String::from_utf8(plain.to_vec()).unwrap())
}

fn new_peer(oracle: &mut Oracle, version: OmemoVersion, sign_bit: Option<bool>) -> (u32, String) {
    let peer = oracle.call_ok(json!({"op": "new", "name": "peer", "version": version_label(version), "sign_bit": sign_bit}));
    if let Some(bit) = sign_bit {
        assert_eq!(peer["sign_bit"].as_bool(), Some(bit));
    }
    (
        peer["device_id"].as_u64().unwrap() as u32,
        peer["bundle"].as_str().unwrap().to_owned(),
    )
}

fn oracle_encrypts(oracle: &mut Oracle, us_bundle: &str, text: &str) -> Value {
    oracle.call_ok(json!({
        "op": "encrypt", "name": "peer", "to_jid": "us@localhost", "to_device": OUR_DEVICE,
        "bundle": us_bundle, "plaintext": b64(text.as_bytes()),
    }))
}

#[test]
fn session_from_their_bundle_both_versions() {
    let mut oracle = Oracle::start();
    for version in OmemoVersion::ALL {
        let mut us = Us::new();
        let (device, bundle_xml) = new_peer(&mut oracle, version, None);
        let bundle = parse_bundle(version, &bundle_xml.parse().unwrap()).unwrap();
        us.sessions.insert(
            device,
            RatchetSession::initiate(version, &us.identity, OUR_DEVICE, &bundle).unwrap(),
        );
        // Several messages before they answer: all carry the key exchange.
        for i in 0..3 {
            let request = us.send(version, device, &format!("hello {i} from Waxwing"));
            assert_eq!(request["kex"], true);
            let answer = oracle.call_ok(request);
            assert_eq!(
                unb64(&answer["plaintext"]),
                format!("hello {i} from Waxwing").as_bytes(),
                "{version:?}"
            );
        }
        // They answer; our session is confirmed and stops sending the key exchange.
        for i in 0..3 {
            let reply = oracle_encrypts(&mut oracle, "", &format!("reply {i}"));
            assert_eq!(reply["kex"], false, "{version:?}");
            assert_eq!(
                open(&mut us, version, device, &reply).unwrap(),
                format!("reply {i}")
            );
        }
        let request = us.send(version, device, "after the reply");
        assert_eq!(request["kex"], false);
        assert_eq!(
            unb64(&oracle.call_ok(request)["plaintext"]),
            b"after the reply"
        );
    }
}

#[test]
fn session_from_our_bundle_in_and_out_of_order() {
    let mut oracle = Oracle::start();
    for version in OmemoVersion::ALL {
        let mut us = Us::new();
        let (device, _) = new_peer(&mut oracle, version, None);
        let ours = us.bundle_xml(version);
        // python-omemo's schema-checked parser accepts our bundle.
        let msgs: Vec<Value> = (0..6)
            .map(|i| oracle_encrypts(&mut oracle, &ours, &format!("m{i}")))
            .collect();
        assert!(msgs.iter().all(|m| m["kex"] == true));
        for i in [0, 4, 2, 5, 1, 3] {
            assert_eq!(
                open(&mut us, version, device, &msgs[i]).unwrap(),
                format!("m{i}"),
                "{version:?}"
            );
        }
        assert_eq!(
            us.sessions.len(),
            1,
            "one session, however many key exchanges"
        );
        let request = us.send(version, device, "got them all");
        assert_eq!(
            request["kex"], false,
            "the responder never sends key exchanges"
        );
        assert_eq!(
            unb64(&oracle.call_ok(request)["plaintext"]),
            b"got them all"
        );
        // Confirmed: later messages are plain ratchet messages, out of order too.
        let later: Vec<Value> = (0..5)
            .map(|i| oracle_encrypts(&mut oracle, "", &format!("later {i}")))
            .collect();
        for i in [3, 0, 4, 1, 2] {
            assert_eq!(later[i]["kex"], false);
            assert_eq!(
                open(&mut us, version, device, &later[i]).unwrap(),
                format!("later {i}")
            );
        }
    }
}

#[test]
fn bundles_whose_signature_carries_the_sign_bit() {
    let mut oracle = Oracle::start();
    for version in OmemoVersion::ALL {
        for sign_bit in [true, false] {
            // Theirs: we parse and verify it, and they read what we send.
            let mut us = Us::new();
            let (device, bundle_xml) = new_peer(&mut oracle, version, Some(sign_bit));
            let bundle = parse_bundle(version, &bundle_xml.parse().unwrap())
                .unwrap_or_else(|e| panic!("{version:?} sign bit {sign_bit}: {e}"));
            us.sessions.insert(
                device,
                RatchetSession::initiate(version, &us.identity, OUR_DEVICE, &bundle).unwrap(),
            );
            let request = us.send(version, device, "signed");
            assert_eq!(unb64(&oracle.call_ok(request)["plaintext"]), b"signed");

            // Ours, from an identity with that sign bit.
            let identity = loop {
                let identity = IdentityKeyPair::generate();
                if (identity.public().ed25519().unwrap()[31] >> 7 == 1) == sign_bit {
                    break identity;
                }
            };
            let mut us = Us::with_identity(identity);
            let (device, _) = new_peer(&mut oracle, version, None);
            let msg = oracle_encrypts(&mut oracle, &us.bundle_xml(version), "to a signed bundle");
            assert_eq!(
                open(&mut us, version, device, &msg).unwrap(),
                "to a signed bundle"
            );
        }
    }
}

#[test]
fn replayed_key_exchange_does_not_break_the_session() {
    let mut oracle = Oracle::start();
    for version in OmemoVersion::ALL {
        let mut us = Us::new();
        let (device, _) = new_peer(&mut oracle, version, None);
        let first = oracle_encrypts(&mut oracle, &us.bundle_xml(version), "first");
        assert_eq!(open(&mut us, version, device, &first).unwrap(), "first");
        // The same key exchange again (a server replaying it, or MAM after live).
        assert_eq!(
            open(&mut us, version, device, &first).unwrap_err(),
            OmemoError::DuplicateMessage
        );
        let request = us.send(version, device, "still fine");
        assert_eq!(unb64(&oracle.call_ok(request)["plaintext"]), b"still fine");
        let next = oracle_encrypts(&mut oracle, "", "next");
        assert_eq!(open(&mut us, version, device, &next).unwrap(), "next");
        // Even after the used prekey is gone, the replay is recognised as ours.
        assert_eq!(
            open(&mut us, version, device, &first).unwrap_err(),
            OmemoError::DuplicateMessage
        );
    }
}

#[test]
fn key_transport_messages_and_tampering() {
    let mut oracle = Oracle::start();
    for version in OmemoVersion::ALL {
        let mut us = Us::new();
        let (device, _) = new_peer(&mut oracle, version, None);
        let empty = oracle.call_ok(json!({
            "op": "empty", "name": "peer", "to_jid": "us@localhost", "to_device": OUR_DEVICE,
            "bundle": us.bundle_xml(version),
        }));
        assert!(empty["payload"].is_null());
        let key_material = us
            .receive(version, device, &unb64(&empty["data"]), true)
            .unwrap();
        // Key transport: key material that decrypts, and no payload to open.
        assert!(key_material.len() >= 16, "{version:?}");
        // They reject what we tampered with, and still read the honest one.
        let request = us.send(version, device, "intact");
        let mut tampered = request.clone();
        let mut data = unb64(&request["data"]);
        let last = data.len() - 1;
        data[last] ^= 1;
        tampered["data"] = json!(b64(&data));
        assert!(oracle.call(tampered).get("error").is_some());
        assert_eq!(unb64(&oracle.call_ok(request)["plaintext"]), b"intact");
        // And a payload that fails to authenticate is typed on our side.
        let mut msg = oracle_encrypts(&mut oracle, "", "payload");
        let mut payload_bytes = unb64(&msg["payload"]);
        payload_bytes[0] ^= 1;
        msg["payload"] = json!(b64(&payload_bytes));
        assert_eq!(
            open(&mut us, version, device, &msg).unwrap_err(),
            OmemoError::PayloadAuthentication
        );
    }
}
