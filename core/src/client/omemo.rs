//! OMEMO for the running connection: our device's keys and their
//! publication, decryption of incoming messages (live, carbons, archive),
//! encryption of outgoing ones, and the trust model.
//!
//! Lifecycle: [`Omemo::load_or_create`] when the connection comes online,
//! then [`Omemo::on_online`] publishes our device list and bundles. Sending
//! to an encrypted conversation goes through [`Omemo::prepare`]: it fetches
//! the device lists and bundles it lacks (IQs whose answers come back
//! through [`Omemo::on_iq_result`]) and parks the message meanwhile. Every
//! received `<encrypted>` goes through [`Omemo::decrypt`], which always
//! yields something to store: the body, or a placeholder with the reason.
//!
//! Trust is decided when a device's identity key is learned (from a
//! verified bundle or an authenticated key exchange) and stays bound to
//! that key. The default policy is Blind Trust Before Verification: a
//! contact's new keys are trusted until the user verifies one of that
//! contact's devices; after that, new ones wait for a decision and get no
//! message keys. The manual policy trusts nothing blindly.

use crate::client::connection::account::AccountState;
use crate::ns::NS_EME;
use crate::store::Field;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

use jid::BareJid;
use minidom::Element;
use rand::Rng;

use super::{now_ms, random_id};
use crate::features::messages;
use crate::features::omemo::elements::{self, EncryptedElement, KeyEntry, OwnBundle};
use crate::features::omemo::{encrypted_child, pep, sce};
use crate::features::with_attrs;
use crate::omemo::wire::KeyExchange;
use crate::omemo::{
    payload, Bundle, IdentityKeyPair, KeyPair, OmemoError, OmemoVersion, OwnPreKeys, PeerIdentity,
    RatchetSession,
};
use crate::store::{
    ConversationEncryption, DeviceRecord, DeviceTrust, EncryptionScheme, MessageSecurity,
    OmemoWrites, OwnDevice, Pinned, SessionArchive, Store, StoreError, TrustPolicy,
};

/// How many one-time prekeys we keep published.
const PRE_KEYS: u32 = 100;
/// How long a signed prekey is used before a new one replaces it.
const SIGNED_PRE_KEY_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;
/// A device silent for this long is stale: messages are no longer
/// encrypted to it (unless it is the contact's only one). It comes back
/// by sending a message.
const STALE_DEVICE_MS: i64 = 90 * 24 * 3600 * 1000;
/// Why a message from a distrusted device is not shown.
pub(crate) const DISTRUSTED_SENDER: &str = "sent from a device you distrusted";
/// How many devices may wait for their contact's device list (see
/// [`Omemo::build_when_listed`]).
const MAX_WAITING_FOR_LISTS: usize = 100;
/// Body sent alongside for clients without OMEMO.
pub(crate) const FALLBACK_BODY: &str =
    "This message is OMEMO encrypted; your client does not seem to support that.";

fn version_code(version: OmemoVersion) -> u8 {
    match version {
        OmemoVersion::V0_3 => 3,
        OmemoVersion::V2 => 2,
    }
}

fn scheme(version: OmemoVersion) -> EncryptionScheme {
    match version {
        OmemoVersion::V0_3 => EncryptionScheme::Omemo03,
        OmemoVersion::V2 => EncryptionScheme::Omemo2,
    }
}

/// Where the digest of the bundle the server last accepted for `version`
/// is kept.
fn published_bundle(version: OmemoVersion) -> Field<String> {
    match version {
        OmemoVersion::V2 => AccountState::OMEMO2_BUNDLE,
        OmemoVersion::V0_3 => AccountState::OMEMO03_BUNDLE,
    }
}

/// A request of ours in flight.
#[derive(Debug, Clone)]
enum Pending {
    DeviceList {
        jid: String,
        version: OmemoVersion,
    },
    Bundle {
        jid: String,
        device: u32,
        version: OmemoVersion,
    },
    /// Our bundle for `version`, whose content has this digest (recorded
    /// once the server accepts it).
    Publish {
        version: OmemoVersion,
        digest: String,
    },
    /// One of our bundles taken down.
    RemoveBundle,
    /// Our device list with our device added: once accepted, our device
    /// counts as published for that version.
    PublishDeviceList {
        version: OmemoVersion,
        ids: Vec<u32>,
    },
}

/// What sending a message to an encrypted conversation needs next.
pub(crate) enum Prepared {
    /// The conversation is not encrypted: send as usual.
    Plain,
    /// Send this stanza (the message, encrypted).
    Encrypted(Box<Element>, EncryptionScheme),
    /// Send these requests first; the message waits.
    Wait(Vec<Element>),
    /// It cannot be encrypted (no devices, none trusted).
    Fail(String),
}

/// What a received `<encrypted>` turned out to be.
pub(crate) enum Received {
    /// A message to store, readable or not.
    Message {
        body: String,
        security: MessageSecurity,
    },
    /// A key-transport message: it moved a session on, nothing to show.
    KeyTransport,
    /// A redelivery of a message already decrypted: dropped silently
    /// (XEP-0384 §8), not stored as undecryptable.
    Duplicate,
}

/// Our secret prekeys, read from the store for a key exchange; those used
/// earlier in the same batch are gone already.
struct StoredPreKeys<'a>(&'a Store, &'a OmemoWrites);

impl OwnPreKeys for StoredPreKeys<'_> {
    fn signed_pre_key(&self, id: u32) -> Option<KeyPair> {
        let keys = self.0.omemo_signed_pre_keys().ok()?;
        keys.into_iter()
            .find(|((kid, _), _)| *kid == id)
            .map(|((_, s), _)| KeyPair::from_secret(*s))
    }
    fn pre_key(&self, id: u32) -> Option<KeyPair> {
        if self
            .1
            .replaced_pre_keys
            .iter()
            .any(|(used, _, _)| *used == id)
        {
            return None;
        }
        let keys = self.0.omemo_pre_keys().ok()?;
        keys.into_iter()
            .find(|(kid, _)| *kid == id)
            .map(|(_, s)| KeyPair::from_secret(*s))
    }
}

/// The connection's OMEMO state (what is not in the store).
pub(crate) struct Omemo {
    own: BareJid,
    identity: IdentityKeyPair,
    device_id: u32,
    pending: HashMap<String, Pending>,
    /// Outbox rows waiting for fetches, per conversation.
    waiting: HashMap<String, HashSet<i64>>,
    /// Device lists asked for on this connection.
    lists_requested: HashSet<(String, OmemoVersion)>,
    /// Devices whose bundle could not be had on this connection.
    unreachable: HashSet<(String, u32, OmemoVersion)>,
    /// Devices we built (or started building) a session with on this
    /// connection because they wrote to us without one: at most once per
    /// device per connection, so a contact cannot make us fetch bundles
    /// and answer without end.
    healed: HashSet<(String, u32)>,
    /// Devices that wrote to us without a session and are not in the
    /// device list we know: waiting for their contact's list.
    listing: HashSet<(String, u32, OmemoVersion)>,
    /// Devices whose bundle we wait for, to send them an empty message.
    healing: HashSet<(String, u32, OmemoVersion)>,
    /// Devices to send an empty OMEMO message once the batch is committed:
    /// a session just built from their key exchange (completing it), or
    /// one that received [`RatchetSession::needs_heartbeat`] messages in a
    /// row without answering (XEP-0384 §7).
    to_answer: Vec<(String, u32, OmemoVersion)>,
    /// Session and prekey changes from decrypting, stored with the batch.
    writes: OmemoWrites,
    /// The archived sessions this batch touched (see [`Omemo::archive`]).
    archives: HashMap<(String, u32, u8), SessionArchive>,
    /// A prekey was used: publish the bundle again once committed.
    republish: bool,
    /// The app took this device off our published lists: until the next
    /// process, it is not put back (our own list's notification would
    /// otherwise look like someone dropped us).
    retired: bool,
    /// We published a device list with our device in it on this
    /// connection: our id showing up in our list is our own doing (its
    /// notification can come before the publish's answer), not a clash.
    announced: bool,
    /// While our new device waits to be listed: the own lists seen so far
    /// on this connection (see [`Omemo::learn_device_list`]).
    own_lists: HashMap<OmemoVersion, Vec<u32>>,
    /// JIDs with newly seen devices, for `OmemoDevicesChanged` events.
    new_devices: Vec<String>,
}

impl Omemo {
    /// Loads our device from the store, creating it (identity, device id,
    /// signed prekey, prekeys) on first use.
    pub(crate) fn load_or_create(store: &mut Store, own: BareJid) -> Result<Self, StoreError> {
        let device = match store.omemo_own()? {
            Some(device) => device,
            None => {
                let identity = IdentityKeyPair::generate();
                let signed = KeyPair::generate();
                let pre_keys: Vec<(u32, [u8; 32])> = (1..=PRE_KEYS)
                    .map(|id| (id, *KeyPair::generate().secret()))
                    .collect();
                let device = OwnDevice {
                    device_id: rand::thread_rng().gen_range(1..i32::MAX as u32),
                    identity_seed: identity.seed(),
                    signed_pre_key_id: 1,
                    next_pre_key_id: PRE_KEYS + 1,
                };
                store.omemo_create_own(&device, signed.secret(), &pre_keys, now_ms())?;
                let public = identity.public();
                store.omemo_pin_identity(
                    own.as_str(),
                    device.device_id,
                    &public.curve25519(),
                    public.ed25519().as_ref(),
                    DeviceTrust::Verified,
                    now_ms(),
                )?;
                tracing::info!(device = device.device_id, "created our OMEMO device");
                device
            }
        };
        Ok(Self {
            own,
            identity: IdentityKeyPair::from_seed(&device.identity_seed),
            device_id: device.device_id,
            pending: HashMap::new(),
            waiting: HashMap::new(),
            lists_requested: HashSet::new(),
            unreachable: HashSet::new(),
            healed: HashSet::new(),
            healing: HashSet::new(),
            listing: HashSet::new(),
            to_answer: Vec::new(),
            writes: OmemoWrites::default(),
            archives: HashMap::new(),
            republish: false,
            retired: false,
            announced: false,
            own_lists: HashMap::new(),
            new_devices: Vec::new(),
        })
    }

    /// A session record: this batch's change if any, else the stored one.
    fn load_session(
        &self,
        store: &Store,
        jid: &str,
        device: u32,
        code: u8,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let staged = self
            .writes
            .sessions
            .iter()
            .rev()
            .find(|(j, d, c, _)| j == jid && *d == device && *c == code);
        match staged {
            Some((_, _, _, record)) => Some(record.clone()),
            None => store.omemo_session(jid, device, code).ok().flatten(),
        }
    }

    /// Keeps a session change for the batch's transaction.
    fn stage_session(&mut self, jid: &str, device: u32, code: u8, session: &RatchetSession) {
        self.writes
            .sessions
            .retain(|(j, d, c, _)| !(j == jid && *d == device && *c == code));
        self.writes
            .sessions
            .push((jid.to_owned(), device, code, session.to_bytes()));
    }

    /// Saves a session changed by sending: staged if the batch has changed
    /// it too (so the newer state wins), else written now.
    fn save_session(
        &mut self,
        store: &mut Store,
        jid: &str,
        device: u32,
        code: u8,
        session: &RatchetSession,
    ) -> Result<(), OmemoError> {
        if self
            .writes
            .sessions
            .iter()
            .any(|(j, d, c, _)| j == jid && *d == device && *c == code)
        {
            self.stage_session(jid, device, code, session);
            return Ok(());
        }
        store
            .omemo_save_session(jid, device, code, &session.to_bytes())
            .map_err(|_| OmemoError::NoSession)
    }

    /// JIDs whose device lists gained devices since the last call.
    pub(crate) fn take_new_devices(&mut self) -> Vec<String> {
        let mut jids = std::mem::take(&mut self.new_devices);
        jids.dedup();
        jids
    }

    /// The session and prekey changes of the batch decrypted since the
    /// last call, for [`Store::insert_incoming_batch_with`].
    pub(crate) fn take_writes(&mut self) -> OmemoWrites {
        let mut writes = std::mem::take(&mut self.writes);
        writes.archives = self
            .archives
            .drain()
            .map(|((jid, device, code), records)| (jid, device, code, records))
            .collect();
        writes
    }

    /// After the batch's transaction: republish our bundle if a prekey
    /// was used.
    pub(crate) fn after_commit(&mut self, store: &mut Store) -> Vec<Element> {
        let mut out = self.maintenance(store, now_ms());
        if std::mem::take(&mut self.republish) && out.is_empty() {
            out = self.publish_bundles(store, &OmemoVersion::ALL, false);
        }
        // Empty messages, once the sessions they continue are committed
        // (sent before, a crash would leave the peer a step ahead of us).
        let mut answers = std::mem::take(&mut self.to_answer);
        let mut seen = HashSet::new();
        answers.retain(|answer| seen.insert(answer.clone()));
        for (jid, device, version) in answers {
            match self.key_transport(store, &jid, device, version) {
                Some(message) => out.push(message),
                None => tracing::warn!(device, "cannot answer with an empty OMEMO message"),
            }
        }
        out
    }

    pub(crate) fn device_id(&self) -> u32 {
        self.device_id
    }

    /// Asks for `jid`'s bundle of `device` in `version`.
    fn request_bundle(&mut self, jid: &str, device: u32, version: OmemoVersion) -> Element {
        let jid = jid.to_owned();
        self.request(
            Pending::Bundle {
                jid: jid.clone(),
                device,
                version,
            },
            |id| pep::fetch_bundle(id, &jid, version, device),
        )
    }

    fn request(&mut self, pending: Pending, build: impl FnOnce(&str) -> Element) -> Element {
        let id = format!("omemo-{}", random_id());
        let stanza = build(&id);
        self.pending.insert(id, pending);
        stanza
    }

    /// On a new session: fetch our own device lists (to add ourselves) and
    /// publish our bundles.
    pub(crate) fn on_online(&mut self, store: &mut Store, now_ms: i64) -> Vec<Element> {
        self.rotate_signed_pre_key_if_due(store, now_ms);
        let own = self.own.to_string();
        let mut out = Vec::new();
        // A device never listed yet publishes nothing before it has seen
        // our list: its id must be checked against the ids there (XEP-0384
        // §5.3.1), and the answer publishes list and bundles together.
        let listed = self.listed_before(store);
        for version in OmemoVersion::ALL {
            self.lists_requested.insert((own.clone(), version));
            out.push(self.request(
                Pending::DeviceList {
                    jid: own.clone(),
                    version,
                },
                |id| pep::fetch_device_list(id, &own, version),
            ));
        }
        if listed {
            out.extend(self.publish_bundles(store, &OmemoVersion::ALL, false));
        }
        out
    }

    /// Whether our device has been in one of our published device lists.
    fn listed_before(&self, store: &Store) -> bool {
        store
            .omemo_device(self.own.as_str(), self.device_id)
            .ok()
            .flatten()
            .is_some_and(|d| d.listed_v2 || d.listed_v03)
    }

    /// While connected: a signed prekey past its lifetime is replaced and
    /// the bundles published again (not only at login: a session can stay
    /// up for weeks).
    pub(crate) fn maintenance(&mut self, store: &mut Store, now_ms: i64) -> Vec<Element> {
        if self.rotate_signed_pre_key_if_due(store, now_ms) {
            self.publish_bundles(store, &OmemoVersion::ALL, false)
        } else {
            Vec::new()
        }
    }

    /// A new signed prekey once the current one is a week old (the
    /// previous one stays usable for key exchanges in flight). Returns
    /// whether it rotated.
    fn rotate_signed_pre_key_if_due(&mut self, store: &mut Store, now_ms: i64) -> bool {
        let (Ok(Some(own)), Ok(signed)) = (store.omemo_own(), store.omemo_signed_pre_keys()) else {
            return false;
        };
        let current = signed
            .iter()
            .find(|((id, _), _)| *id == own.signed_pre_key_id);
        let due = current.is_none_or(|(_, created)| now_ms - created >= SIGNED_PRE_KEY_LIFETIME_MS);
        if !due {
            return false;
        }
        let next_id = signed.iter().map(|((id, _), _)| *id).max().unwrap_or(0) + 1;
        match store.omemo_rotate_signed_pre_key(next_id, KeyPair::generate().secret(), now_ms) {
            Ok(()) => {
                tracing::info!(id = next_id, "rotated our signed prekey");
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot rotate our signed prekey");
                false
            }
        }
    }

    /// Publishes our bundle for `versions` — only what differs from the
    /// bundle the server last accepted, unless `force` (our device went
    /// missing from our list, so its bundle may be gone too). Prosody's
    /// file storage rewrites the whole OMEMO 2 bundles node on each publish,
    /// so republishing an unchanged bundle on every login costs every
    /// client of the server (issue 12, performance).
    fn publish_bundles(
        &mut self,
        store: &Store,
        versions: &[OmemoVersion],
        force: bool,
    ) -> Vec<Element> {
        if self.retired {
            return Vec::new();
        }
        let (Ok(Some(own)), Ok(signed), Ok(pre_keys)) = (
            store.omemo_own(),
            store.omemo_signed_pre_keys(),
            store.omemo_pre_keys(),
        ) else {
            tracing::warn!("cannot read our OMEMO keys");
            return Vec::new();
        };
        let Some(((spk_id, spk_secret), _)) = signed
            .into_iter()
            .find(|((id, _), _)| *id == own.signed_pre_key_id)
        else {
            return Vec::new();
        };
        let pre_keys: Vec<(u32, [u8; 32])> = pre_keys
            .iter()
            .map(|(id, s)| (*id, KeyPair::from_secret(**s).public()))
            .collect();
        let bundle = OwnBundle {
            identity: &self.identity,
            signed_pre_key_id: spk_id,
            signed_pre_key: KeyPair::from_secret(*spk_secret).public(),
            pre_keys: &pre_keys,
        };
        let device_id = self.device_id;
        let changed: Vec<(OmemoVersion, Element, String)> = versions
            .iter()
            .map(|&version| {
                let element = elements::bundle_element(version, &bundle);
                let digest = hex::encode(Sha256::digest(String::from(&element).as_bytes()));
                (version, element, digest)
            })
            .filter(|(version, _, digest)| {
                let published = store.get(published_bundle(*version)).ok().flatten();
                force || published.as_deref() != Some(digest.as_str())
            })
            .collect();
        changed
            .into_iter()
            .map(|(version, element, digest)| {
                self.request(Pending::Publish { version, digest }, |id| {
                    pep::publish_bundle(id, version, device_id, element)
                })
            })
            .collect()
    }

    /// A PEP notification of a device list (ours or a contact's, pushed by
    /// the server because we announce `+notify`). Returns `None` for other
    /// messages, else what to send (our list again if someone dropped us).
    pub(crate) fn on_pep_event(
        &mut self,
        store: &mut Store,
        message: &Element,
    ) -> Option<Vec<Element>> {
        let (node, payload) = pep::event_item(message)?;
        let version = OmemoVersion::ALL
            .into_iter()
            .find(|v| elements::device_list_node(*v) == node)?;
        // PEP events come from the publisher's bare JID.
        let from: BareJid = message
            .attr("from")
            .unwrap_or(self.own.as_str())
            .parse()
            .ok()?;
        let jid = from.to_string();
        // Only a published list counts; a notification without one is ignored.
        let Some(payload) = payload else {
            return Some(Vec::new());
        };
        let ids = elements::parse_device_list(version, payload).unwrap_or_default();
        Some(self.learn_device_list(store, &jid, version, ids))
    }

    /// Records `jid`'s device list; when it is ours and we are missing from
    /// it, returns the requests that put us (and our bundle) back.
    fn learn_device_list(
        &mut self,
        store: &mut Store,
        jid: &str,
        version: OmemoVersion,
        ids: Vec<u32>,
    ) -> Vec<Element> {
        let own = jid == self.own.as_str();
        if own && !self.announced && !self.retired && !self.listed_before(store) {
            // A device never listed yet: its id must be unique among our
            // devices in both lists (XEP-0384 §5.3.1, MUST), so nothing is
            // published before both lists are seen (nor recorded: our id
            // in them may be another device's).
            self.own_lists.insert(version, ids);
            if self.own_lists.len() < OmemoVersion::ALL.len() {
                return Vec::new();
            }
            let lists = std::mem::take(&mut self.own_lists);
            let taken: Vec<u32> = lists.values().flatten().copied().collect();
            if taken.contains(&self.device_id) {
                // Another device of this account has our new id: take
                // another before anything is published under it.
                match store.omemo_change_own_device_id(self.own.as_str(), &taken, now_ms()) {
                    Ok(id) => {
                        tracing::warn!(id, "our new OMEMO device id was taken; chose another");
                        self.device_id = id;
                    }
                    Err(err) => tracing::warn!(%err, "cannot change our OMEMO device id"),
                }
            }
            let mut out = Vec::new();
            for (version, ids) in lists {
                if let Err(err) = self.record_device_list(store, jid, version, &ids) {
                    tracing::warn!(error = %err, "cannot store a device list");
                }
                out.extend(self.reconcile_own_list(store, version, ids));
            }
            return out;
        }
        if let Err(err) = self.record_device_list(store, jid, version, &ids) {
            tracing::warn!(error = %err, "cannot store a device list");
        }
        if !own {
            // Devices that wrote to us without a session, now listed.
            let waiting: Vec<u32> = self
                .listing
                .iter()
                .filter(|(j, _, v)| j == jid && *v == version)
                .map(|(_, device, _)| *device)
                .collect();
            let mut out = Vec::new();
            for device in waiting {
                self.listing.remove(&(jid.to_owned(), device, version));
                if ids.contains(&device) {
                    out.extend(self.build_session_for(jid, device, version));
                }
            }
            return out;
        }
        self.reconcile_own_list(store, version, ids)
    }

    /// Our own device list for `version` as the server has it: publishes it
    /// again without our stale devices and with us, if needed (and our
    /// bundle with us, which may be gone too).
    fn reconcile_own_list(
        &mut self,
        store: &mut Store,
        version: OmemoVersion,
        ids: Vec<u32>,
    ) -> Vec<Element> {
        let jid = self.own.to_string();
        // Our other devices silent past the stale period leave our list
        // (every contact's client would otherwise fetch their bundles and
        // encrypt to them); one still installed puts itself back when it
        // next comes online, as we do below.
        let now = now_ms();
        let stale: Vec<u32> = store
            .omemo_devices(&jid)
            .unwrap_or_default()
            .iter()
            .filter(|d| d.device_id != self.device_id && ids.contains(&d.device_id))
            .filter(|d| now - d.last_message_ms.unwrap_or(d.first_seen_ms) > STALE_DEVICE_MS)
            .map(|d| d.device_id)
            .collect();
        let missing_self = !ids.contains(&self.device_id) && !self.retired;
        if stale.is_empty() && !missing_self {
            return Vec::new();
        }
        if !stale.is_empty() {
            tracing::info!(
                count = stale.len(),
                "removing our silent devices from our list"
            );
        }
        let mut ids: Vec<u32> = ids.into_iter().filter(|id| !stale.contains(id)).collect();
        if missing_self {
            ids.push(self.device_id);
            self.announced = true;
        }
        let list = elements::device_list_element(version, &ids);
        let mut out = vec![
            self.request(Pending::PublishDeviceList { version, ids }, |id| {
                pep::publish_device_list(id, version, list)
            }),
        ];
        if missing_self {
            // Whoever dropped us from the list may have deleted our bundle.
            out.extend(self.publish_bundles(store, &[version], true));
        }
        out
    }

    /// Takes `devices` of ours off our published device lists (both
    /// versions); when this device is among them, also its bundles, and it
    /// stays off until the next process (an app about to remove the
    /// account from this phone, or a user cleaning up old installations).
    pub(crate) fn remove_own_devices(&mut self, store: &Store, devices: &[u32]) -> Vec<Element> {
        let own = self.own.to_string();
        let known = store.omemo_devices(&own).unwrap_or_default();
        let mut out = Vec::new();
        for version in OmemoVersion::ALL {
            let ids: Vec<u32> = known
                .iter()
                .filter(|d| match version {
                    OmemoVersion::V2 => d.listed_v2,
                    OmemoVersion::V0_3 => d.listed_v03,
                })
                .map(|d| d.device_id)
                .filter(|id| !devices.contains(id))
                .collect();
            let list = elements::device_list_element(version, &ids);
            out.push(
                self.request(Pending::PublishDeviceList { version, ids }, |id| {
                    pep::publish_device_list(id, version, list)
                }),
            );
        }
        if devices.contains(&self.device_id) {
            self.retired = true;
            let device_id = self.device_id;
            for version in OmemoVersion::ALL {
                // Published again only after a new decision to.
                if let Err(err) = store.put(published_bundle(version), None) {
                    tracing::warn!(%err, "cannot forget our published bundle");
                }
                out.push(self.request(Pending::RemoveBundle, |id| {
                    pep::remove_bundle(id, version, device_id)
                }));
            }
        }
        out
    }

    /// Whether an IQ answer is one of ours.
    pub(crate) fn owns(&self, iq_id: &str) -> bool {
        self.pending.contains_key(iq_id)
    }

    /// Handles the answer to one of our requests. Returns stanzas to send
    /// and the conversations whose waiting messages may now go out.
    pub(crate) fn on_iq_result(
        &mut self,
        store: &mut Store,
        iq: &Element,
    ) -> (Vec<Element>, Vec<i64>) {
        let Some(pending) = iq.attr("id").and_then(|id| self.pending.remove(id)) else {
            return (Vec::new(), Vec::new());
        };
        let ok = iq.attr("type") == Some("result");
        tracing::debug!(?pending, ok, "OMEMO request answered");
        let mut out = Vec::new();
        match pending {
            Pending::RemoveBundle => {
                if !ok {
                    tracing::warn!("removing our OMEMO bundle was refused");
                }
            }
            Pending::Publish { version, digest } => {
                if !ok {
                    tracing::warn!("publishing OMEMO data was refused");
                } else if let Err(err) = store.put(published_bundle(version), Some(&digest)) {
                    // The next login publishes the same bundle again.
                    tracing::warn!(%err, "cannot record our published bundle");
                }
            }
            Pending::PublishDeviceList { version, ids } => {
                if ok {
                    let own = self.own.to_string();
                    if let Err(err) = self.record_device_list(store, &own, version, &ids) {
                        tracing::warn!(error = %err, "cannot store our device list");
                    }
                } else {
                    tracing::warn!("publishing our OMEMO device list was refused");
                }
            }
            Pending::DeviceList { jid, version } => {
                // No node yet (item-not-found) is an empty list.
                let ids = pep::first_item_payload(iq)
                    .and_then(|p| elements::parse_device_list(version, p).ok())
                    .unwrap_or_default();
                out.extend(self.learn_device_list(store, &jid, version, ids));
            }
            Pending::Bundle {
                jid,
                device,
                version,
            } => {
                let bundle = pep::bundle_answer(iq, self.own.as_str(), &jid, version, device)
                    .ok_or(OmemoError::Malformed("no bundle for the device asked for"))
                    .and_then(|p| elements::parse_bundle(version, p));
                match bundle {
                    Ok(bundle) => {
                        if let Err(reason) =
                            self.start_session(store, &jid, device, version, &bundle)
                        {
                            tracing::warn!(%reason, device, "cannot start an OMEMO session");
                            self.healing.remove(&(jid.clone(), device, version));
                            self.unreachable.insert((jid.clone(), device, version));
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, device, "no usable OMEMO bundle");
                        self.healing.remove(&(jid.clone(), device, version));
                        self.unreachable.insert((jid, device, version));
                    }
                }
            }
        }
        // Messages whose requests are all answered may go now.
        let busy: HashSet<String> = self
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::DeviceList { jid, .. } | Pending::Bundle { jid, .. } => Some(jid.clone()),
                Pending::Publish { .. }
                | Pending::RemoveBundle
                | Pending::PublishDeviceList { .. } => None,
            })
            .collect();
        let own = self.own.to_string();
        let ready: Vec<String> = self
            .waiting
            .keys()
            .filter(|peer| !busy.contains(*peer) && !busy.contains(&own))
            .cloned()
            .collect();
        let retry = ready
            .into_iter()
            .flat_map(|peer| self.waiting.remove(&peer).unwrap_or_default())
            .collect();
        (out, retry)
    }

    /// The trust a newly learned identity key of `jid` gets. Blind Trust
    /// Before Verification (the default policy): trusted unless the user
    /// has verified one of that JID's devices (this installation, verified
    /// by definition, does not count). Manual policy: never trusted blindly.
    fn initial_trust(&self, store: &Store, jid: &str) -> DeviceTrust {
        let policy = store
            .get(AccountState::OMEMO_TRUST_POLICY)
            .ok()
            .flatten()
            .unwrap_or_default();
        if policy == TrustPolicy::Manual {
            return DeviceTrust::Undecided;
        }
        let this = (jid == self.own.as_str()).then_some(self.device_id);
        let verified = store
            .omemo_devices(jid)
            .map(|devices| {
                devices
                    .iter()
                    .any(|d| d.trust == DeviceTrust::Verified && Some(d.device_id) != this)
            })
            .unwrap_or(false);
        if verified {
            DeviceTrust::Undecided
        } else {
            DeviceTrust::BlindlyTrusted
        }
    }

    fn record_device_list(
        &mut self,
        store: &mut Store,
        jid: &str,
        version: OmemoVersion,
        ids: &[u32],
    ) -> Result<(), StoreError> {
        let new =
            store.omemo_update_device_list(jid, version == OmemoVersion::V2, ids, now_ms())?;
        if !new.is_empty() {
            tracing::info!(count = new.len(), "new OMEMO devices");
            self.new_devices.push(jid.to_owned());
        }
        Ok(())
    }

    /// Builds a session from a verified bundle, unless the device's identity
    /// differs from the one we know. The bundle is where we learn a
    /// device's key: its trust is decided here.
    fn start_session(
        &mut self,
        store: &mut Store,
        jid: &str,
        device: u32,
        version: OmemoVersion,
        bundle: &Bundle,
    ) -> Result<(), OmemoError> {
        let code = version_code(version);
        if self.load_session(store, jid, device, code).is_some() {
            // A key exchange from the device built one while the bundle
            // was on its way: a working session is never replaced.
            return Ok(());
        }
        let session = RatchetSession::initiate(version, &self.identity, self.device_id, bundle)?;
        self.pin_identity(store, jid, device, &bundle.identity)?;
        self.save_session(store, jid, device, code, &session)
    }

    /// Pins `device`'s identity key, deciding its trust if the key is new
    /// (a key that needs the user's decision raises a devices-changed
    /// event); another key than the pinned one is refused.
    fn pin_identity(
        &mut self,
        store: &mut Store,
        jid: &str,
        device: u32,
        identity: &PeerIdentity,
    ) -> Result<DeviceTrust, OmemoError> {
        let initial = self.initial_trust(store, jid);
        let pinned = store
            .omemo_pin_identity(
                jid,
                device,
                &identity.curve25519(),
                identity.ed25519().as_ref(),
                initial,
                now_ms(),
            )
            .map_err(|_| OmemoError::NoSession)?;
        match pinned {
            Pinned::Changed => {
                tracing::warn!(device, "a device presented another identity key");
                // The app hears of it (its device list shows the pinned key).
                self.new_devices.push(jid.to_owned());
                Err(OmemoError::IdentityChanged)
            }
            Pinned::Known(trust) => Ok(trust),
            Pinned::New(trust) => {
                if !trust.is_trusted() {
                    self.new_devices.push(jid.to_owned());
                }
                Ok(trust)
            }
        }
    }

    /// The version to use with `devices` (a contact's): OMEMO 2 when every
    /// device publishes it, else 0.3 when any does. A conversation that has
    /// used OMEMO 2 (`used_v2`) stays on it while any device publishes it:
    /// a device leaving the OMEMO 2 list (or one listed for 0.3 only) does
    /// not downgrade everyone to 0.3 — that takes the user's decision
    /// (setting the conversation to OMEMO 0.3).
    fn choose_version(devices: &[DeviceRecord], used_v2: bool) -> Option<OmemoVersion> {
        let listed: Vec<&DeviceRecord> = devices
            .iter()
            .filter(|d| d.listed_v2 || d.listed_v03)
            .collect();
        if listed.is_empty() {
            None
        } else if listed.iter().all(|d| d.listed_v2)
            || (used_v2 && listed.iter().any(|d| d.listed_v2))
        {
            Some(OmemoVersion::V2)
        } else if listed.iter().any(|d| d.listed_v03) {
            Some(OmemoVersion::V0_3)
        } else {
            Some(OmemoVersion::V2)
        }
    }

    /// Prepares outbox row `id` (to `peer`) for sending.
    pub(crate) fn prepare(
        &mut self,
        store: &mut Store,
        id: i64,
        peer: &str,
        body: &str,
        origin_id: &str,
    ) -> Prepared {
        let forced = match store.omemo_conversation_encryption(peer) {
            Ok(ConversationEncryption::Off) => return Prepared::Plain,
            Ok(ConversationEncryption::Auto) => None,
            Ok(ConversationEncryption::Omemo03) => Some(OmemoVersion::V0_3),
            Ok(ConversationEncryption::Omemo2) => Some(OmemoVersion::V2),
            Err(err) => {
                return Prepared::Fail(format!("cannot read the conversation's setting: {err}"))
            }
        };
        let own = self.own.to_string();
        // First the device lists (once per connection).
        let mut requests = Vec::new();
        for jid in [peer.to_owned(), own.clone()] {
            for version in OmemoVersion::ALL {
                if self.lists_requested.insert((jid.clone(), version)) {
                    requests.push(self.request(
                        Pending::DeviceList {
                            jid: jid.clone(),
                            version,
                        },
                        |rid| pep::fetch_device_list(rid, &jid, version),
                    ));
                }
            }
        }
        if !requests.is_empty() || self.awaiting(peer, true) {
            return self.park(id, peer, requests);
        }
        let devices = store.omemo_devices(peer).unwrap_or_default();
        let used_v2 = store.omemo_used_v2(peer).unwrap_or(false);
        let Some(version) = forced.or_else(|| Self::choose_version(&devices, used_v2)) else {
            return Prepared::Fail("the contact has no OMEMO devices".into());
        };
        let listed = |d: &DeviceRecord| match version {
            OmemoVersion::V2 => d.listed_v2,
            OmemoVersion::V0_3 => d.listed_v03,
        };
        let now = now_ms();
        // Silent since its last message, or since we first saw it if it
        // never wrote: a device listed for months that never sent anything
        // (an uninstalled app) costs a bundle fetch per send otherwise.
        let stale =
            |d: &DeviceRecord| now - d.last_message_ms.unwrap_or(d.first_seen_ms) > STALE_DEVICE_MS;
        // A device whose key we have not learned yet may turn out trusted
        // once its bundle comes (its trust is decided then).
        let candidate = |d: &DeviceRecord| {
            d.trust.is_trusted() || (d.identity_key.is_none() && d.trust == DeviceTrust::Undecided)
        };
        let usable: Vec<&DeviceRecord> = devices
            .iter()
            .filter(|d| listed(d) && candidate(d))
            .filter(|d| {
                !self
                    .unreachable
                    .contains(&(peer.to_owned(), d.device_id, version))
            })
            .collect();
        let fresh: Vec<&DeviceRecord> = usable.iter().copied().filter(|d| !stale(d)).collect();
        // Stale devices are left out, unless nothing else is left.
        let chosen = if fresh.is_empty() { usable } else { fresh };
        let mut targets: Vec<(String, u32)> = chosen
            .iter()
            .map(|d| (peer.to_owned(), d.device_id))
            .collect();
        if targets.is_empty() {
            return Prepared::Fail(
                "none of the contact's OMEMO devices is trusted and reachable".into(),
            );
        }
        for own_device in store.omemo_devices(&own).unwrap_or_default() {
            if own_device.device_id != self.device_id
                && listed(&own_device)
                && candidate(&own_device)
                && !stale(&own_device)
                && !self
                    .unreachable
                    .contains(&(own.clone(), own_device.device_id, version))
            {
                targets.push((own.clone(), own_device.device_id));
            }
        }
        // Then a bundle for every device we have no session with.
        for (jid, device) in &targets {
            let has_session = self
                .load_session(store, jid, *device, version_code(version))
                .is_some();
            let asked = self.pending.values().any(
                |p| matches!(p, Pending::Bundle { jid: j, device: d, .. } if j == jid && d == device),
            );
            if !has_session && !asked {
                let (jid, device) = (jid.clone(), *device);
                requests.push(self.request_bundle(&jid, device, version));
            }
        }
        if !requests.is_empty() || self.awaiting(peer, false) {
            return self.park(id, peer, requests);
        }
        // Keys learned from the bundles just fetched have their trust now:
        // only trusted devices get the message key.
        targets.retain(|(jid, device)| {
            store
                .omemo_device(jid, *device)
                .ok()
                .flatten()
                .is_some_and(|d| d.trust.is_trusted())
        });
        match self.encrypt(store, version, peer, body, &targets) {
            Ok(encrypted)
                if encrypted
                    .keys
                    .iter()
                    .any(|k| k.jid.as_deref() == Some(peer)) =>
            {
                let mut stanza = messages::chat(peer, FALLBACK_BODY, origin_id);
                stanza.append_child(encrypted.to_element());
                stanza.append_child(with_attrs(
                    Element::bare("encryption", NS_EME),
                    &[("namespace", version.namespace()), ("name", "OMEMO")],
                ));
                if version == OmemoVersion::V2 {
                    if let Err(err) = store.omemo_mark_used_v2(peer) {
                        tracing::warn!(%err, "cannot record the conversation's OMEMO version");
                    }
                }
                Prepared::Encrypted(Box::new(stanza), scheme(version))
            }
            Ok(_) => Prepared::Fail("no session with any of the contact's devices".into()),
            Err(err) => Prepared::Fail(format!("encryption failed: {err}")),
        }
    }

    /// Whether answers about `peer`'s or our own device lists (`lists`) or
    /// bundles (`!lists`) are still awaited.
    fn awaiting(&self, peer: &str, lists: bool) -> bool {
        let own = self.own.as_str();
        self.pending.values().any(|p| match p {
            Pending::DeviceList { jid, .. } if lists => jid == peer || jid == own,
            Pending::Bundle { jid, .. } if !lists => jid == peer || jid == own,
            _ => false,
        })
    }

    /// Parks outbox row `id` until the answers are in; sends `requests`.
    fn park(&mut self, id: i64, peer: &str, requests: Vec<Element>) -> Prepared {
        self.waiting.entry(peer.to_owned()).or_default().insert(id);
        Prepared::Wait(requests)
    }

    /// Encrypts `body` once and its key to every target with a session.
    fn encrypt(
        &mut self,
        store: &mut Store,
        version: OmemoVersion,
        peer: &str,
        body: &str,
        targets: &[(String, u32)],
    ) -> Result<EncryptedElement, OmemoError> {
        let plaintext = match version {
            OmemoVersion::V0_3 => body.as_bytes().to_vec(),
            OmemoVersion::V2 => sce::envelope(body, self.own.as_str(), peer, &xep0082_now()),
        };
        let sealed = payload::encrypt(version, &plaintext);
        let mut keys = Vec::new();
        for (jid, device) in targets {
            let Some(record) = self.load_session(store, jid, *device, version_code(version)) else {
                continue;
            };
            let mut session = RatchetSession::from_bytes(&record)?;
            let key = session.encrypt(&sealed.key_material)?;
            if self
                .save_session(store, jid, *device, version_code(version), &session)
                .is_err()
            {
                continue;
            }
            keys.push(KeyEntry {
                jid: Some(jid.clone()),
                rid: *device,
                key_exchange: key.key_exchange,
                data: key.data,
            });
        }
        Ok(EncryptedElement {
            version,
            sid: self.device_id,
            keys,
            iv: sealed.iv.map(|iv| iv.to_vec()),
            payload: Some(sealed.ciphertext),
        })
    }

    /// Decrypts the `<encrypted>` of a message from `sender` (bare JID).
    /// Returns `None` when the message has none. Also returns stanzas to
    /// send: a republished bundle after a prekey was used, or a healing
    /// key-transport message after a session broke.
    pub(crate) fn decrypt(
        &mut self,
        store: &mut Store,
        sender: &str,
        message: &Element,
    ) -> Option<(Received, Vec<Element>)> {
        let element = encrypted_child(message)?;
        let mut out = Vec::new();
        let parsed = match EncryptedElement::parse(element) {
            Ok(parsed) => parsed,
            Err(err) => return Some((undecryptable(EncryptionScheme::None, None, None, err), out)),
        };
        let version = parsed.version;
        let device = parsed.sid;
        if sender == self.own.as_str() && device == self.device_id {
            // Our own message reflected back (archive, carbons): we stored
            // its plaintext when we sent it.
            return Some((
                undecryptable(
                    scheme(version),
                    Some(device),
                    None,
                    OmemoError::NotForThisDevice,
                ),
                out,
            ));
        }
        // Nothing about the device is recorded before the message
        // authenticates: a device id in an `<encrypted>` anyone could have
        // sent carries no trust (issue 13).
        let known = store.omemo_device(sender, device).ok().flatten();
        let trust = known.as_ref().map(|d| d.trust);
        let Some(key) = parsed.key_for(self.own.as_str(), self.device_id) else {
            return Some((
                undecryptable(
                    scheme(version),
                    Some(device),
                    trust,
                    OmemoError::NotForThisDevice,
                ),
                out,
            ));
        };
        let key_material = match self.open_key(store, sender, device, version, key, known.as_ref())
        {
            Ok(key_material) => key_material,
            // XEP-0384 §8: a redelivery of what we decrypted already is
            // dropped without a word.
            Err(OmemoError::DuplicateMessage) => return Some((Received::Duplicate, out)),
            Err(err) => {
                // A device that writes without a session of ours (we never
                // had one, or lost it): build one from its bundle and answer
                // with an empty message (XEP-0384 §7, SHOULD). A failure on
                // an existing session never replaces it (§9: "MUST NOT react
                // to decryption errors by initiating new sessions
                // automatically"); the app can, by the user's decision
                // (`replace_session`).
                // Only for a device its owner's server lists (an id seen
                // only in this unauthenticated element carries nothing, and
                // makes us fetch nothing), and only when there is truly no
                // session: a ratchet message that names a chain our session
                // does not have also fails with `NoSession`.
                let listed = known.as_ref().is_some_and(|d| match version {
                    OmemoVersion::V2 => d.listed_v2,
                    OmemoVersion::V0_3 => d.listed_v03,
                });
                let code = version_code(version);
                let sessionless = self.load_session(store, sender, device, code).is_none()
                    && store
                        .omemo_old_sessions(sender, device, code)
                        .is_ok_and(|old| old.is_empty());
                if err == OmemoError::NoSession && !key.key_exchange && sessionless {
                    if listed {
                        out.extend(self.build_session_for(sender, device, version));
                    } else {
                        // Its list may not be known yet: ask for it, and
                        // build the session if the device is in it.
                        out.extend(self.build_when_listed(sender, device, version));
                    }
                }
                return Some((
                    undecryptable(scheme(version), Some(device), trust, err),
                    out,
                ));
            }
        };
        // Only the staleness clock: a lost write makes the device look
        // quieter than it is, nothing more.
        let _ = store.omemo_touch_device(sender, device, now_ms());
        // Authenticated now; a key exchange may just have pinned its key.
        let trust = store
            .omemo_device(sender, device)
            .ok()
            .flatten()
            .map(|d| d.trust)
            .or(trust);
        let Some(ciphertext) = &parsed.payload else {
            return Some((Received::KeyTransport, out));
        };
        let security = |undecryptable: Option<String>| MessageSecurity {
            scheme: scheme(version),
            sender_device: Some(device),
            sender_trust: trust,
            undecryptable,
        };
        // The conversation the stanza belongs to: ours for a contact's
        // message; the contact's for one of ours (a carbon, the archive).
        let recipient = if sender == self.own.as_str() {
            message
                .attr("to")
                .and_then(|to| to.parse::<jid::Jid>().ok())
                .map(|to| to.to_bare().to_string())
                .unwrap_or_else(|| self.own.to_string())
        } else {
            self.own.to_string()
        };
        let body = payload::decrypt(version, &key_material, parsed.iv.as_deref(), ciphertext)
            .and_then(|plain| match version {
                OmemoVersion::V0_3 => Ok(String::from_utf8_lossy(&plain).into_owned()),
                OmemoVersion::V2 => {
                    sce::open_envelope(&plain, sender, &recipient).map_err(|e| match e {
                        sce::SceError::Malformed => OmemoError::Malformed("SCE envelope"),
                        sce::SceError::WrongSender | sce::SceError::WrongRecipient => {
                            OmemoError::PayloadAuthentication
                        }
                    })
                }
            });
        Some(match body {
            // The user refused this device: its words are not shown as
            // a message (Conversations refuses them too).
            Ok(_) if trust == Some(DeviceTrust::Distrusted) => (
                Received::Message {
                    body: "[OMEMO message from a device you distrusted]".into(),
                    security: security(Some(DISTRUSTED_SENDER.into())),
                },
                out,
            ),
            Ok(body) => (
                Received::Message {
                    body,
                    security: security(None),
                },
                out,
            ),
            Err(err) => (
                undecryptable(scheme(version), Some(device), trust, err),
                out,
            ),
        })
    }

    /// Decrypts the key element with the device's session (building it from
    /// a key exchange if needed) and saves the session.
    fn open_key(
        &mut self,
        store: &mut Store,
        sender: &str,
        device: u32,
        version: OmemoVersion,
        key: &KeyEntry,
        known: Option<&DeviceRecord>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, OmemoError> {
        let code = version_code(version);
        let existing_record = self.load_session(store, sender, device, code);
        let existing = existing_record
            .as_ref()
            .map(|r| RatchetSession::from_bytes(r))
            .transpose()?;
        if key.key_exchange {
            let exchange = KeyExchange::parse(version, &key.data)?;
            if let Some(mut session) = existing.clone().filter(|s| s.built_by(&exchange)) {
                // A repeat of the key exchange that built our session.
                let plain = session.decrypt(&exchange.message)?;
                self.stage_session(sender, device, code, &session);
                return Ok(plain);
            }
            // A repeat of one that built a session replaced since (the
            // peer has not heard from us on it yet).
            let repeat = |s: &RatchetSession| s.built_by(&exchange);
            if let Some(opened) =
                self.open_with_archived(store, sender, device, code, &exchange.message, repeat)
            {
                return opened;
            }
            let responded = RatchetSession::respond(
                version,
                &self.identity,
                &StoredPreKeys(store, &self.writes),
                &key.data,
            )?;
            let identity = *responded.session.remote_identity();
            if let Some(known) = known.and_then(|d| d.identity_key) {
                if known != identity.curve25519() {
                    return Err(OmemoError::IdentityChanged);
                }
            }
            // The key exchange authenticated: this is where we learn the
            // device's key (and decide its trust).
            self.pin_identity(store, sender, device, &identity)?;
            // The session it replaces is kept for messages still on their
            // way (the peer may have sent some before this one).
            if let Some(record) = existing_record {
                self.archive(store, sender, device, code).push(record);
            }
            self.stage_session(sender, device, code, &responded.session);
            // Completes the session on the peer's side, which otherwise
            // keeps sending key exchanges (XEP-0384 §7).
            self.to_answer.push((sender.to_owned(), device, version));
            if let Some(used) = responded.used_pre_key_id {
                self.replace_pre_key(store, used);
            }
            return Ok(responded.plaintext);
        }
        let any = |_: &RatchetSession| true;
        let Some(mut session) = existing else {
            // The user replaced the session and the new one is not built
            // yet: a late message for the old one still reads.
            return self
                .open_with_archived(store, sender, device, code, &key.data, any)
                .unwrap_or(Err(OmemoError::NoSession));
        };
        let plain = match session.decrypt(&key.data) {
            Ok(plain) => plain,
            Err(
                err @ (OmemoError::BadMac | OmemoError::TooManySkipped | OmemoError::NoSession),
            ) => {
                // Perhaps for a session a key exchange replaced.
                return self
                    .open_with_archived(store, sender, device, code, &key.data, any)
                    .unwrap_or(Err(err));
            }
            Err(err) => return Err(err),
        };
        self.stage_session(sender, device, code, &session);
        self.heartbeat_if_due(sender, device, version, &session);
        Ok(plain)
    }

    /// The sessions with `device` that newer ones replaced, oldest first:
    /// this batch's working copy, loaded from the store on first use and
    /// written back whole with the batch ([`OmemoWrites::archives`]).
    fn archive(&mut self, store: &Store, jid: &str, device: u32, code: u8) -> &mut SessionArchive {
        self.archives
            .entry((jid.to_owned(), device, code))
            .or_insert_with(|| {
                let mut stored: Vec<_> = store
                    .omemo_old_sessions(jid, device, code)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, record)| record)
                    .collect();
                stored.reverse();
                stored
            })
    }

    /// Tries the sessions with `device` that newer ones replaced (those
    /// `eligible`), newest first, on ratchet message `data`; the one that
    /// decrypts is updated in place. It stays archived: the current session
    /// is the newest one (ours, or the peer's latest key exchange), and the
    /// peer moves to it once it reads us — so a late message never undoes
    /// a replacement, the user's included. `None` when none of them knows
    /// the message; a duplicate is reported as such.
    fn open_with_archived(
        &mut self,
        store: &Store,
        sender: &str,
        device: u32,
        code: u8,
        data: &[u8],
        eligible: impl Fn(&RatchetSession) -> bool,
    ) -> Option<Result<zeroize::Zeroizing<Vec<u8>>, OmemoError>> {
        let archive = self.archive(store, sender, device, code);
        let mut duplicate = false;
        for record in archive.iter_mut().rev() {
            let Ok(mut session) = RatchetSession::from_bytes(record) else {
                continue;
            };
            if !eligible(&session) {
                continue;
            }
            match session.decrypt(data) {
                Ok(plain) => {
                    tracing::debug!(device, "decrypted with an older session");
                    *record = session.to_bytes();
                    return Some(Ok(plain));
                }
                Err(OmemoError::DuplicateMessage) => duplicate = true,
                Err(_) => {}
            }
        }
        duplicate.then_some(Err(OmemoError::DuplicateMessage))
    }

    /// XEP-0384 §7: after 53 messages received in a row on a session without
    /// an answer, send an empty one so the ratchet moves on.
    fn heartbeat_if_due(
        &mut self,
        jid: &str,
        device: u32,
        version: OmemoVersion,
        session: &RatchetSession,
    ) {
        if session.needs_heartbeat() {
            self.to_answer.push((jid.to_owned(), device, version));
        }
    }

    /// Stages the deletion of a used prekey and its replacement; the
    /// bundle is published again once they are committed.
    fn replace_pre_key(&mut self, store: &Store, used: u32) {
        let Ok(Some(own)) = store.omemo_own() else {
            return;
        };
        let id = own.next_pre_key_id + self.writes.replaced_pre_keys.len() as u32;
        let fresh = KeyPair::generate();
        self.writes
            .replaced_pre_keys
            .push((used, id, zeroize::Zeroizing::new(*fresh.secret())));
        self.republish = true;
    }

    /// A session for a device that wrote to us without one: fetch its
    /// bundle; the empty message sent when the bundle arrives (or our next
    /// message) carries the key exchange. Once per device per connection.
    fn build_session_for(&mut self, jid: &str, device: u32, version: OmemoVersion) -> Vec<Element> {
        if !self.healed.insert((jid.to_owned(), device)) {
            return Vec::new();
        }
        tracing::info!(
            device,
            "building an OMEMO session for a device that has none"
        );
        self.healing.insert((jid.to_owned(), device, version));
        vec![self.request_bundle(jid, device, version)]
    }

    /// Builds a session for `device` once `jid`'s device list for
    /// `version` shows it: asks for the list if this connection has not.
    /// Bounded: an unknown id gets one list request per contact and version
    /// per connection, and at most [`MAX_WAITING_FOR_LISTS`] wait.
    fn build_when_listed(&mut self, jid: &str, device: u32, version: OmemoVersion) -> Vec<Element> {
        if self.listing.len() >= MAX_WAITING_FOR_LISTS {
            return Vec::new();
        }
        self.listing.insert((jid.to_owned(), device, version));
        if !self.lists_requested.insert((jid.to_owned(), version)) {
            return Vec::new();
        }
        let jid = jid.to_owned();
        vec![self.request(
            Pending::DeviceList {
                jid: jid.clone(),
                version,
            },
            |id| pep::fetch_device_list(id, &jid, version),
        )]
    }

    /// After the user replaced the session with `jid`'s `device` (the old
    /// one is archived): fetch its bundle for each version it is listed in;
    /// an empty message with the new key exchange goes out when it comes.
    pub(crate) fn rebuild_session(
        &mut self,
        store: &Store,
        jid: &str,
        device: u32,
    ) -> Vec<Element> {
        let Ok(Some(record)) = store.omemo_device(jid, device) else {
            return Vec::new();
        };
        let versions = [
            (OmemoVersion::V2, record.listed_v2),
            (OmemoVersion::V0_3, record.listed_v03),
        ];
        let mut out = Vec::new();
        for (version, listed) in versions {
            if !listed {
                continue;
            }
            self.unreachable.remove(&(jid.to_owned(), device, version));
            self.healing.insert((jid.to_owned(), device, version));
            out.push(self.request_bundle(jid, device, version));
        }
        out
    }

    /// Builds a key-transport (empty) message to `jid`'s `device` using its
    /// session: completes a rebuilt session on the other side.
    pub(crate) fn key_transport(
        &mut self,
        store: &mut Store,
        jid: &str,
        device: u32,
        version: OmemoVersion,
    ) -> Option<Element> {
        let code = version_code(version);
        let mut session =
            RatchetSession::from_bytes(&self.load_session(store, jid, device, code)?).ok()?;
        let key = session
            .encrypt(&payload::empty_key_material(version))
            .ok()?;
        self.save_session(store, jid, device, code, &session).ok()?;
        let element = EncryptedElement {
            version,
            sid: self.device_id,
            keys: vec![KeyEntry {
                jid: Some(jid.to_owned()),
                rid: device,
                key_exchange: key.key_exchange,
                data: key.data,
            }],
            iv: (version == OmemoVersion::V0_3).then(|| vec![0; 12]),
            payload: None,
        };
        let mut stanza = crate::features::stanza(
            "message",
            &[
                ("to", Some(jid)),
                ("type", Some("chat")),
                ("id", Some(&random_id())),
            ],
            vec![element.to_element()],
        );
        stanza.append_child(Element::bare("store", "urn:xmpp:hints"));
        Some(stanza)
    }

    /// Healing bundles that arrived: the key-transport messages to send.
    pub(crate) fn healing_messages(&mut self, store: &mut Store) -> Vec<Element> {
        let mut out = Vec::new();
        let waiting: Vec<(String, u32, OmemoVersion)> = self.healing.iter().cloned().collect();
        for (jid, device, version) in waiting {
            let asked = self.pending.values().any(
                |p| matches!(p, Pending::Bundle { jid: j, device: d, .. } if *j == jid && *d == device),
            );
            if asked {
                continue;
            }
            self.healing.remove(&(jid.clone(), device, version));
            match self.key_transport(store, &jid, device, version) {
                Some(message) => {
                    tracing::debug!(
                        device,
                        "sending a key-transport message to rebuild the session"
                    );
                    out.push(message)
                }
                None => tracing::warn!(device, "could not rebuild the OMEMO session"),
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "omemo_tests.rs"]
mod tests;

fn undecryptable(
    scheme: EncryptionScheme,
    device: Option<u32>,
    trust: Option<DeviceTrust>,
    err: OmemoError,
) -> Received {
    Received::Message {
        body: format!("[OMEMO message that could not be decrypted: {err}]"),
        security: MessageSecurity {
            scheme,
            sender_device: device,
            sender_trust: trust,
            undecryptable: Some(err.to_string()),
        },
    }
}

/// The current time as an XEP-0082 timestamp.
fn xep0082_now() -> String {
    crate::features::messages::format_xep0082_ms(now_ms())
}
