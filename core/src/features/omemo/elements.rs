//! The OMEMO elements of both versions, built and parsed with typed errors:
//! device lists, bundles (XEP-0384 §5.3.2 for OMEMO 2; the 0.3 schema of
//! `eu.siacs.conversations.axolotl`) and `<encrypted>` messages.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use minidom::Element;

use crate::features::{set_attr, text_element, with_attrs};
use crate::omemo::payload::MAX_PAYLOAD_LEN;
use crate::omemo::wire::MAX_KEY_ELEMENT_LEN;
use crate::omemo::x3dh::signed_pre_key_encoding;
use crate::omemo::{Bundle, IdentityKeyPair, OmemoError, OmemoVersion};

/// Most keys (recipient devices) one `<encrypted>` may carry.
pub const MAX_KEYS_PER_MESSAGE: usize = 1000;
/// Most devices we accept in one device list.
pub const MAX_DEVICES: usize = 1000;

/// The PEP node of the device list.
pub fn device_list_node(version: OmemoVersion) -> &'static str {
    match version {
        OmemoVersion::V0_3 => "eu.siacs.conversations.axolotl.devicelist",
        OmemoVersion::V2 => "urn:xmpp:omemo:2:devices",
    }
}

/// The PEP node and item id of a device's bundle.
pub fn bundle_node(version: OmemoVersion, device_id: u32) -> (String, String) {
    match version {
        OmemoVersion::V0_3 => (
            format!("eu.siacs.conversations.axolotl.bundles:{device_id}"),
            "current".into(),
        ),
        OmemoVersion::V2 => ("urn:xmpp:omemo:2:bundles".into(), device_id.to_string()),
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn un_b64(text: &str, limit: usize) -> Result<Vec<u8>, OmemoError> {
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if text.len() > limit.div_ceil(3) * 4 {
        return Err(OmemoError::TooLarge);
    }
    B64.decode(text)
        .map_err(|_| OmemoError::Malformed("bad base64"))
}

fn child<'a>(
    element: &'a Element,
    name: &str,
    version: OmemoVersion,
) -> Result<&'a Element, OmemoError> {
    element
        .get_child(name, version.namespace())
        .ok_or(OmemoError::Malformed("missing element"))
}

fn id_attr(element: &Element, name: &str) -> Result<u32, OmemoError> {
    element
        .attr(name)
        .and_then(|v| v.parse().ok())
        .ok_or(OmemoError::Malformed("missing or bad id"))
}

fn key_32(text: &str, version: OmemoVersion) -> Result<[u8; 32], OmemoError> {
    let bytes = un_b64(text, 64)?;
    match version {
        OmemoVersion::V0_3 => crate::omemo::wire::parse_djb_key(&bytes),
        OmemoVersion::V2 => bytes.try_into().map_err(|_| OmemoError::InvalidKey),
    }
}

fn key_text(version: OmemoVersion, key: &[u8; 32]) -> String {
    match version {
        OmemoVersion::V0_3 => b64(&crate::omemo::wire::djb_key(key)),
        OmemoVersion::V2 => b64(key),
    }
}

/// A device list: `<list>` of `<device id>` (0.3) or `<devices>` (2).
pub fn device_list_element(version: OmemoVersion, device_ids: &[u32]) -> Element {
    let (list, ns) = match version {
        OmemoVersion::V0_3 => ("list", version.namespace()),
        OmemoVersion::V2 => ("devices", version.namespace()),
    };
    let mut element = Element::bare(list, ns);
    for id in device_ids {
        element.append_child(with_attrs(
            Element::bare("device", ns),
            &[("id", &id.to_string())],
        ));
    }
    element
}

/// The device ids of a device list; entries without a valid id are skipped
/// (one bad entry must not hide the others).
pub fn parse_device_list(version: OmemoVersion, element: &Element) -> Result<Vec<u32>, OmemoError> {
    let list = match version {
        OmemoVersion::V0_3 => "list",
        OmemoVersion::V2 => "devices",
    };
    if !element.is(list, version.namespace()) {
        return Err(OmemoError::Malformed("not a device list"));
    }
    let mut ids: Vec<u32> = element
        .children()
        .filter(|c| c.is("device", version.namespace()))
        .filter_map(|c| c.attr("id").and_then(|v| v.parse().ok()))
        .filter(|id| *id != 0)
        .take(MAX_DEVICES)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// What we publish as our bundle (the signature is made here).
#[derive(Debug)]
pub struct OwnBundle<'a> {
    /// Our identity key.
    pub identity: &'a IdentityKeyPair,
    /// Id of the current signed prekey.
    pub signed_pre_key_id: u32,
    /// The current signed prekey's public key.
    pub signed_pre_key: [u8; 32],
    /// Unused one-time prekeys.
    pub pre_keys: &'a [(u32, [u8; 32])],
}

/// Our bundle element for `version`.
pub fn bundle_element(version: OmemoVersion, bundle: &OwnBundle<'_>) -> Element {
    let ns = version.namespace();
    let signature = bundle.identity.sign(
        version,
        &signed_pre_key_encoding(version, &bundle.signed_pre_key),
    );
    let identity = bundle.identity.public();
    let spk_id = bundle.signed_pre_key_id.to_string();
    let mut prekeys = Element::bare("prekeys", ns);
    let mut element = Element::bare("bundle", ns);
    match version {
        OmemoVersion::V0_3 => {
            let mut spk = text_element(
                "signedPreKeyPublic",
                ns,
                &key_text(version, &bundle.signed_pre_key),
            );
            set_attr(&mut spk, "signedPreKeyId", &spk_id);
            element.append_child(spk);
            element.append_child(text_element("signedPreKeySignature", ns, &b64(&signature)));
            element.append_child(text_element(
                "identityKey",
                ns,
                &key_text(version, &identity.curve25519()),
            ));
            for (id, key) in bundle.pre_keys {
                let mut pk = text_element("preKeyPublic", ns, &key_text(version, key));
                set_attr(&mut pk, "preKeyId", &id.to_string());
                prekeys.append_child(pk);
            }
        }
        OmemoVersion::V2 => {
            let mut spk = text_element("spk", ns, &key_text(version, &bundle.signed_pre_key));
            set_attr(&mut spk, "id", &spk_id);
            element.append_child(spk);
            element.append_child(text_element("spks", ns, &b64(&signature)));
            let ik = identity
                .ed25519()
                .expect("own identity has its Ed25519 form");
            element.append_child(text_element("ik", ns, &b64(&ik)));
            for (id, key) in bundle.pre_keys {
                let mut pk = text_element("pk", ns, &key_text(version, key));
                set_attr(&mut pk, "id", &id.to_string());
                prekeys.append_child(pk);
            }
        }
    }
    element.append_child(prekeys);
    element
}

/// Parses and verifies another device's bundle. Prekeys with a bad id or
/// key are skipped; a bundle without a valid signed prekey is refused.
pub fn parse_bundle(version: OmemoVersion, element: &Element) -> Result<Bundle, OmemoError> {
    if !element.is("bundle", version.namespace()) {
        return Err(OmemoError::Malformed("not a bundle"));
    }
    let (spk_name, spk_id_attr, sig_name, ik_name, pk_name, pk_id_attr) = match version {
        OmemoVersion::V0_3 => (
            "signedPreKeyPublic",
            "signedPreKeyId",
            "signedPreKeySignature",
            "identityKey",
            "preKeyPublic",
            "preKeyId",
        ),
        OmemoVersion::V2 => ("spk", "id", "spks", "ik", "pk", "id"),
    };
    let spk = child(element, spk_name, version)?;
    let spk_id = id_attr(spk, spk_id_attr)?;
    let spk_bytes = un_b64(&spk.text(), 64)?;
    let signature = un_b64(&child(element, sig_name, version)?.text(), 128)?;
    let identity = un_b64(&child(element, ik_name, version)?.text(), 64)?;
    let pre_keys = child(element, "prekeys", version)?
        .children()
        .filter(|c| c.is(pk_name, version.namespace()))
        .filter_map(|c| {
            Some((
                id_attr(c, pk_id_attr).ok()?,
                key_32(&c.text(), version).ok()?,
            ))
        })
        .collect();
    Bundle::verified(version, &identity, spk_id, &spk_bytes, &signature, pre_keys)
}

/// One recipient device's key in an `<encrypted>` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The bare JID the device belongs to (OMEMO 2 groups keys by JID; 0.3
    /// does not say).
    pub jid: Option<String>,
    /// The recipient device id.
    pub rid: u32,
    /// Whether `data` is a key exchange.
    pub key_exchange: bool,
    /// The ratchet message or key exchange.
    pub data: Vec<u8>,
}

/// An `<encrypted>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedElement {
    /// Which version.
    pub version: OmemoVersion,
    /// The sending device id.
    pub sid: u32,
    /// The keys, one per recipient device.
    pub keys: Vec<KeyEntry>,
    /// The IV (0.3 only).
    pub iv: Option<Vec<u8>>,
    /// The encrypted payload; none for key-transport (empty) messages.
    pub payload: Option<Vec<u8>>,
}

impl EncryptedElement {
    /// The element to put in a `<message>`.
    pub fn to_element(&self) -> Element {
        let ns = self.version.namespace();
        let mut header = with_attrs(
            Element::bare("header", ns),
            &[("sid", &self.sid.to_string())],
        );
        let key_element = |k: &KeyEntry| {
            let mut key = text_element("key", ns, &b64(&k.data));
            set_attr(&mut key, "rid", &k.rid.to_string());
            if k.key_exchange {
                let flag = if self.version == OmemoVersion::V0_3 {
                    "prekey"
                } else {
                    "kex"
                };
                set_attr(&mut key, flag, "true");
            }
            key
        };
        match self.version {
            OmemoVersion::V0_3 => {
                for k in &self.keys {
                    header.append_child(key_element(k));
                }
                if let Some(iv) = &self.iv {
                    header.append_child(text_element("iv", ns, &b64(iv)));
                }
            }
            OmemoVersion::V2 => {
                let mut jids: Vec<&str> = Vec::new();
                for k in &self.keys {
                    let jid = k.jid.as_deref().unwrap_or_default();
                    if !jids.contains(&jid) {
                        jids.push(jid);
                    }
                }
                for jid in jids {
                    let mut keys = with_attrs(Element::bare("keys", ns), &[("jid", jid)]);
                    for k in self
                        .keys
                        .iter()
                        .filter(|k| k.jid.as_deref().unwrap_or_default() == jid)
                    {
                        keys.append_child(key_element(k));
                    }
                    header.append_child(keys);
                }
            }
        }
        let mut element = Element::bare("encrypted", ns);
        element.append_child(header);
        if let Some(payload) = &self.payload {
            element.append_child(text_element("payload", ns, &b64(payload)));
        }
        element
    }

    /// Parses an `<encrypted>` element of either version.
    pub fn parse(element: &Element) -> Result<Self, OmemoError> {
        let version = OmemoVersion::ALL
            .into_iter()
            .find(|v| element.is("encrypted", v.namespace()))
            .ok_or(OmemoError::Malformed("not an encrypted element"))?;
        let header = child(element, "header", version)?;
        let sid = id_attr(header, "sid")?;
        let flag = if version == OmemoVersion::V0_3 {
            "prekey"
        } else {
            "kex"
        };
        let parse_key = |jid: Option<&str>, key: &Element| -> Result<KeyEntry, OmemoError> {
            Ok(KeyEntry {
                jid: jid.map(str::to_owned),
                rid: id_attr(key, "rid")?,
                key_exchange: matches!(key.attr(flag), Some("true" | "1")),
                data: un_b64(&key.text(), MAX_KEY_ELEMENT_LEN)?,
            })
        };
        let mut keys = Vec::new();
        match version {
            OmemoVersion::V0_3 => {
                for key in header
                    .children()
                    .filter(|c| c.is("key", version.namespace()))
                {
                    keys.push(parse_key(None, key)?);
                }
            }
            OmemoVersion::V2 => {
                for group in header
                    .children()
                    .filter(|c| c.is("keys", version.namespace()))
                {
                    let jid = group
                        .attr("jid")
                        .ok_or(OmemoError::Malformed("keys without jid"))?;
                    for key in group
                        .children()
                        .filter(|c| c.is("key", version.namespace()))
                    {
                        keys.push(parse_key(Some(jid), key)?);
                    }
                }
            }
        }
        if keys.len() > MAX_KEYS_PER_MESSAGE {
            return Err(OmemoError::TooLarge);
        }
        let iv = match version {
            OmemoVersion::V0_3 => Some(un_b64(&child(header, "iv", version)?.text(), 64)?),
            OmemoVersion::V2 => None,
        };
        let payload = element
            .get_child("payload", version.namespace())
            .map(|p| un_b64(&p.text(), MAX_PAYLOAD_LEN))
            .transpose()?;
        Ok(Self {
            version,
            sid,
            keys,
            iv,
            payload,
        })
    }

    /// The key for one of our devices, if the sender included one.
    pub fn key_for(&self, jid: &str, device_id: u32) -> Option<&KeyEntry> {
        self.keys
            .iter()
            .find(|k| k.rid == device_id && k.jid.as_deref().is_none_or(|j| j == jid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::KeyPair;

    fn own_bundle(identity: &IdentityKeyPair, version: OmemoVersion) -> Element {
        let pre_keys = [
            (1, KeyPair::generate().public()),
            (2, KeyPair::generate().public()),
        ];
        let own = OwnBundle {
            identity,
            signed_pre_key_id: 9,
            signed_pre_key: KeyPair::generate().public(),
            pre_keys: &pre_keys,
        };
        bundle_element(version, &own)
    }

    #[test]
    fn our_bundles_parse_back_verified() {
        for version in OmemoVersion::ALL {
            let identity = IdentityKeyPair::generate();
            let xml = String::from(&own_bundle(&identity, version));
            let bundle = parse_bundle(version, &xml.parse().unwrap()).unwrap();
            assert_eq!(bundle.identity, identity.public());
            assert_eq!(bundle.signed_pre_key_id, 9);
            assert_eq!(bundle.pre_keys.len(), 2);
            // The other version's parser refuses it.
            let other = if version == OmemoVersion::V2 {
                OmemoVersion::V0_3
            } else {
                OmemoVersion::V2
            };
            assert!(parse_bundle(other, &xml.parse().unwrap()).is_err());
        }
    }

    #[test]
    fn a_bundle_with_a_swapped_signed_prekey_is_refused() {
        for version in OmemoVersion::ALL {
            let mut element = own_bundle(&IdentityKeyPair::generate(), version);
            let name = if version == OmemoVersion::V2 {
                "spk"
            } else {
                "signedPreKeyPublic"
            };
            let spk = element.get_child_mut(name, version.namespace()).unwrap();
            let id = spk
                .attr(if version == OmemoVersion::V2 {
                    "id"
                } else {
                    "signedPreKeyId"
                })
                .unwrap()
                .to_owned();
            let mut replaced = text_element(
                name,
                version.namespace(),
                &key_text(version, &KeyPair::generate().public()),
            );
            set_attr(
                &mut replaced,
                if version == OmemoVersion::V2 {
                    "id"
                } else {
                    "signedPreKeyId"
                },
                &id,
            );
            *spk = replaced;
            assert_eq!(
                parse_bundle(version, &element).unwrap_err(),
                OmemoError::BadSignature
            );
        }
    }

    #[test]
    fn device_lists_round_trip_and_skip_bad_entries() {
        for version in OmemoVersion::ALL {
            let element = device_list_element(version, &[5, 3, 5]);
            assert_eq!(parse_device_list(version, &element).unwrap(), vec![3, 5]);
            let mut element = element;
            element.append_child(with_attrs(
                Element::bare("device", version.namespace()),
                &[("id", "x")],
            ));
            assert_eq!(parse_device_list(version, &element).unwrap(), vec![3, 5]);
        }
    }

    #[test]
    fn encrypted_elements_round_trip() {
        for version in OmemoVersion::ALL {
            let jid = |j: &str| (version == OmemoVersion::V2).then(|| j.to_owned());
            let element = EncryptedElement {
                version,
                sid: 77,
                keys: vec![
                    KeyEntry {
                        jid: jid("b@x"),
                        rid: 1,
                        key_exchange: true,
                        data: vec![1, 2, 3],
                    },
                    KeyEntry {
                        jid: jid("a@x"),
                        rid: 2,
                        key_exchange: false,
                        data: vec![4],
                    },
                    KeyEntry {
                        jid: jid("b@x"),
                        rid: 3,
                        key_exchange: false,
                        data: vec![5],
                    },
                ],
                iv: (version == OmemoVersion::V0_3).then(|| vec![9; 12]),
                payload: Some(vec![7; 40]),
            };
            let xml = String::from(&element.to_element());
            let parsed = EncryptedElement::parse(&xml.parse().unwrap()).unwrap();
            let mut expected = element.clone();
            if version == OmemoVersion::V2 {
                // Grouped by JID on the wire.
                expected.keys.swap(1, 2);
            }
            assert_eq!(parsed, expected);
            assert_eq!(parsed.key_for("b@x", 3).unwrap().data, vec![5]);
            assert!(parsed.key_for("b@x", 99).is_none());
        }
    }

    #[test]
    fn malformed_encrypted_elements_are_typed() {
        let cases = [
            "<encrypted xmlns='urn:xmpp:omemo:2'/>",
            "<encrypted xmlns='urn:xmpp:omemo:2'><header/></encrypted>",
            "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys><key rid='2'>AA==</key></keys></header></encrypted>",
            "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='a@b'><key rid='x'>AA==</key></keys></header></encrypted>",
            "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='a@b'><key rid='2'>!!</key></keys></header></encrypted>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>AA==</key></header></encrypted>",
            "<encrypted xmlns='urn:example'/>",
        ];
        for xml in cases {
            assert!(
                matches!(
                    EncryptedElement::parse(&xml.parse().unwrap()),
                    Err(OmemoError::Malformed(_))
                ),
                "{xml}"
            );
        }
        let huge = format!(
            "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='a@b'><key rid='2'>{}</key></keys></header></encrypted>",
            "A".repeat(MAX_KEY_ELEMENT_LEN * 2)
        );
        assert_eq!(
            EncryptedElement::parse(&huge.parse().unwrap()).unwrap_err(),
            OmemoError::TooLarge
        );
    }
}
