//! OMEMO engine throughput, for docs/benchmarks.md (run by scripts/bench.sh
//! next to scripts/omemo_bench.py, python-omemo doing the same work):
//! - messages/s: payload encryption, one ratchet encryption per recipient
//!   device, then every device decrypting (ratchet + payload); sessions are
//!   established beforehand;
//! - sessions/s: bundle verification, X3DH on both sides and the first
//!   message (key exchange) decrypted.
//!
//! Usage: omemo_bench [MESSAGES [SESSIONS [VERSION]]]. Prints one JSON
//! object per figure.

use std::collections::HashMap;
use std::time::Instant;

use waxwing_core::features::omemo::elements::{bundle_element, parse_bundle};
use waxwing_core::features::omemo::OwnBundle;
use waxwing_core::omemo::{
    payload, IdentityKeyPair, KeyPair, OmemoVersion, OwnPreKeys, RatchetSession,
};

struct Device {
    identity: IdentityKeyPair,
    signed: KeyPair,
    pre_keys: HashMap<u32, KeyPair>,
}

impl OwnPreKeys for Device {
    fn signed_pre_key(&self, _id: u32) -> Option<KeyPair> {
        Some(self.signed.clone())
    }
    fn pre_key(&self, id: u32) -> Option<KeyPair> {
        self.pre_keys.get(&id).cloned()
    }
}

impl Device {
    fn new() -> Self {
        Self {
            identity: IdentityKeyPair::generate(),
            signed: KeyPair::generate(),
            pre_keys: (1..=100).map(|id| (id, KeyPair::generate())).collect(),
        }
    }

    fn bundle_xml(&self, version: OmemoVersion) -> String {
        let pre_keys: Vec<_> = self
            .pre_keys
            .iter()
            .map(|(id, k)| (*id, k.public()))
            .collect();
        String::from(&bundle_element(
            version,
            &OwnBundle {
                identity: &self.identity,
                signed_pre_key_id: 1,
                signed_pre_key: self.signed.public(),
                pre_keys: &pre_keys,
            },
        ))
    }
}

fn label(version: OmemoVersion) -> &'static str {
    version.label()
}

fn main() {
    let messages: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let sessions: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    // Optional third argument: one version only ("omemo2", "omemo0.3").
    let only = std::env::args().nth(3);
    for version in OmemoVersion::ALL {
        if only.as_deref().is_some_and(|o| o != label(version)) {
            continue;
        }
        for recipients in [1usize, 5] {
            let sender = Device::new();
            let devices: Vec<Device> = (0..recipients).map(|_| Device::new()).collect();
            let mut pairs: Vec<(RatchetSession, RatchetSession)> = devices
                .iter()
                .map(|d| {
                    let bundle =
                        parse_bundle(version, &d.bundle_xml(version).parse().unwrap()).unwrap();
                    let mut out =
                        RatchetSession::initiate(version, &sender.identity, 1, &bundle).unwrap();
                    let first = out.encrypt(&[0; 32]).unwrap();
                    let mut back = RatchetSession::respond(version, &d.identity, d, &first.data)
                        .unwrap()
                        .session;
                    out.decrypt(&back.encrypt(&[0; 32]).unwrap().data).unwrap();
                    (out, back)
                })
                .collect();
            let body = "A typical chat message of some sixty characters, give or take.";
            // An untimed tenth first: page faults, CPU frequency, lazy statics.
            let mut start = Instant::now();
            for round in 0..messages + messages / 10 {
                if round == messages / 10 {
                    start = Instant::now();
                }
                let enc = payload::encrypt(version, body.as_bytes());
                for (out, back) in pairs.iter_mut() {
                    let key = out.encrypt(&enc.key_material).unwrap();
                    let material = back.decrypt(&key.data).unwrap();
                    let plain = payload::decrypt(
                        version,
                        &material,
                        enc.iv.as_ref().map(|iv| &iv[..]),
                        &enc.ciphertext,
                    )
                    .unwrap();
                    assert_eq!(plain.len(), body.len());
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{{\"bench\":\"omemo_encrypt_decrypt\",\"client\":\"waxwing\",\"version\":\"{}\",\"recipient_devices\":{recipients},\"messages\":{messages},\"messages_per_s\":{:.0}}}",
                label(version),
                messages as f64 / secs
            );
        }
        let alice = Device::new();
        let bobs: Vec<Device> = (0..sessions.min(50)).map(|_| Device::new()).collect();
        let bundles: Vec<String> = bobs.iter().map(|b| b.bundle_xml(version)).collect();
        let start = Instant::now();
        for i in 0..sessions {
            let bob = &bobs[i % bobs.len()];
            let bundle = parse_bundle(version, &bundles[i % bobs.len()].parse().unwrap()).unwrap();
            let mut out = RatchetSession::initiate(version, &alice.identity, 1, &bundle).unwrap();
            let first = out.encrypt(&[0; 32]).unwrap();
            let responded =
                RatchetSession::respond(version, &bob.identity, bob, &first.data).unwrap();
            assert_eq!(responded.plaintext.len(), 32);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"omemo_session_establishment\",\"client\":\"waxwing\",\"version\":\"{}\",\"sessions\":{sessions},\"sessions_per_s\":{:.0}}}",
            label(version),
            sessions as f64 / secs
        );
    }
}
