//! Every XML namespace Waxwing speaks, in one place, each with the
//! specification that defines it.

/// RFC 6120 §7: resource binding.
pub(crate) const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// XEP-0386: Bind 2.
pub(crate) const NS_BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0115: entity capabilities.
pub(crate) const NS_CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0280: message carbons.
pub(crate) const NS_CARBONS: &str = "urn:xmpp:carbons:2";
/// RFC 6120 §4.8.3: the client stream's default namespace.
pub(crate) const NS_CLIENT: &str = "jabber:client";
/// XEP-0352: client state indication.
pub(crate) const NS_CSI: &str = "urn:xmpp:csi:0";
/// XEP-0004: data forms.
pub(crate) const NS_DATA: &str = "jabber:x:data";
/// XEP-0203: delayed delivery.
pub(crate) const NS_DELAY: &str = "urn:xmpp:delay";
/// XEP-0030: service discovery (info).
pub(crate) const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0380: tells other clients which encryption a message uses.
pub(crate) const NS_EME: &str = "urn:xmpp:eme:0";
/// XEP-0484: fast authentication streamlining tokens.
pub(crate) const NS_FAST: &str = "urn:xmpp:fast:0";
/// XEP-0297: stanza forwarding.
pub(crate) const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0334: message processing hints.
pub(crate) const NS_HINTS: &str = "urn:xmpp:hints";
/// XEP-0313: message archive management.
pub(crate) const NS_MAM: &str = "urn:xmpp:mam:2";
/// XEP-0199: XMPP ping.
pub(crate) const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0060: publish-subscribe.
pub(crate) const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0060 §8: pubsub node owner use cases (deleting a node).
pub(crate) const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// XEP-0060 §7.1.2: pubsub event notifications.
pub(crate) const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// XEP-0357: push notifications.
pub(crate) const NS_PUSH: &str = "urn:xmpp:push:0";
/// Encrypted push payloads (Tigase's extension, as Conversations and
/// Monal use it).
pub(crate) const NS_PUSH_ENCRYPT: &str = "tigase:push:encrypt:0";
/// XEP-0184: message delivery receipts.
pub(crate) const NS_RECEIPTS: &str = "urn:xmpp:receipts";
/// RFC 6121 §2: the roster.
pub(crate) const NS_ROSTER: &str = "jabber:iq:roster";
/// RFC 6121 §2.6: roster versioning stream feature.
pub(crate) const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";
/// XEP-0059: result set management.
pub(crate) const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// RFC 6120 §6: SASL.
pub(crate) const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0440: SASL channel-binding type capability.
pub(crate) const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0388: extensible SASL profile (SASL2).
pub(crate) const NS_SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0420: stanza content encryption (OMEMO 2's envelope).
pub(crate) const NS_SCE: &str = "urn:xmpp:sce:1";
/// XEP-0359: unique and stable stanza ids.
pub(crate) const NS_SID: &str = "urn:xmpp:sid:0";
/// XEP-0198: stream management.
pub(crate) const NS_SM: &str = "urn:xmpp:sm:3";
/// RFC 6120 §8.3: stanza error conditions.
pub(crate) const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120 §4: the stream wrapper and stream errors.
pub(crate) const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 6120 §5: STARTTLS.
pub(crate) const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
