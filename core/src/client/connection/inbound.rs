//! Incoming messages: sorts each `<message/>` (live chat, carbon copy,
//! archive result, receipt, bounce), collects a turn's live messages, and
//! writes them in one transaction with their OMEMO session changes before
//! anything is acknowledged, told or receipted.

use jid::BareJid;
use minidom::Element;

use crate::client::connection::shared::Shared;
use crate::client::now_ms;
use crate::client::omemo::{Omemo, Received};
use crate::features::carbons::{self, Carbon};
use crate::features::mam::{self, MamMessage};
use crate::features::messages::{self, IncomingMessageStanza};
use crate::features::omemo::encrypted_child;
use crate::ns::{NS_CLIENT, NS_SID};
use crate::store::{AccountWrite, Direction, IncomingMessage, Position, StoreError, StoredMessage};

/// A receipt to send once a message is stored: (to, message id).
pub(crate) type Receipt = (String, String);

/// What a `<message/>` is to us.
#[derive(Debug)]
pub(crate) enum Routed {
    /// A message to store (with the receipt its sender asked for and may
    /// get, and the stanza to decrypt if it is OMEMO).
    Live {
        message: IncomingMessage,
        receipt: Option<Receipt>,
        encrypted: Option<Element>,
    },
    /// A result of our archive query `query_id`.
    Archived {
        query_id: String,
        message: IncomingMessage,
        encrypted: Option<Element>,
    },
    /// The peer confirmed our message `id` (XEP-0184).
    Receipt { from: BareJid, id: String },
    /// Our message `id` bounced.
    Bounce { from: BareJid, id: String },
    /// Nothing to store; `why` says what was refused, if anything.
    Dropped { why: Option<&'static str> },
}

/// Sorts a message stanza. `may_see_presence` says whether a bare JID may
/// learn we are online (it decides receipts: XEP-0184 §8).
/// `trust_stanza_ids`: our server stamps stanza-ids (XEP-0359 §6: only
/// then has it removed any a sender forged); otherwise a live message's
/// stanza-id is ignored (archive results carry the archive's own id).
pub(crate) fn route(
    element: &Element,
    own: &BareJid,
    trust_stanza_ids: bool,
    may_see_presence: impl Fn(&str) -> bool,
) -> Routed {
    let encrypted_copy =
        |stanza: &Element| encrypted_child(stanza).is_some().then(|| stanza.clone());
    match carbons::unwrap(element, own) {
        Carbon::Forged => {
            return Routed::Dropped {
                why: Some("a forged carbon"),
            }
        }
        // Copies are stored, but receipts are the receiving device's job.
        Carbon::Received(inner) | Carbon::Sent(inner) => {
            return match forwarded_message(&inner, own, None, None) {
                Some(mut message) => Routed::Live {
                    message: IncomingMessage {
                        stanza_id: message.stanza_id.take().filter(|_| trust_stanza_ids),
                        ..message
                    },
                    receipt: None,
                    encrypted: encrypted_copy(&inner),
                },
                None => Routed::Dropped { why: None },
            };
        }
        Carbon::None => {}
    }
    match mam::unwrap(element, own) {
        MamMessage::Forged => {
            return Routed::Dropped {
                why: Some("a MAM result not from our archive"),
            }
        }
        MamMessage::Result {
            query_id,
            archive_id,
            message,
            stamp_ms,
        } => {
            return match forwarded_message(&message, own, Some(archive_id), stamp_ms) {
                Some(stored) => Routed::Archived {
                    query_id,
                    message: stored,
                    encrypted: encrypted_copy(&message),
                },
                None => Routed::Dropped { why: None },
            };
        }
        MamMessage::None => {}
    }
    match messages::parse(element, own) {
        IncomingMessageStanza::Chat(chat) => {
            let receipt = match (&chat.id, chat.wants_receipt) {
                (Some(id), true) if may_see_presence(chat.from.as_str()) => {
                    Some((chat.from_full.clone(), id.clone()))
                }
                _ => None,
            };
            Routed::Live {
                message: IncomingMessage {
                    direction: Direction::Incoming,
                    peer: chat.from.to_string(),
                    sender: chat.from.to_string(),
                    body: chat.body,
                    origin_id: chat.origin_id,
                    stanza_id: chat.stanza_id.filter(|_| trust_stanza_ids),
                    remote_id: chat.id,
                    timestamp_ms: chat.delayed_ms.unwrap_or_else(now_ms),
                    position: Position::Append,
                    security: Default::default(),
                    room: None,
                },
                receipt,
                encrypted: encrypted_copy(element),
            }
        }
        IncomingMessageStanza::Receipt { from, id } => Routed::Receipt { from, id },
        IncomingMessageStanza::Bounce {
            from,
            id,
            condition,
        } => {
            tracing::info!(condition, "message bounced");
            Routed::Bounce { from, id }
        }
        IncomingMessageStanza::Ignored => Routed::Dropped { why: None },
    }
}

/// Reads a forwarded message (carbon or archive result) as one to store:
/// ours (from our bare JID, sent from another device) or theirs.
pub(crate) fn forwarded_message(
    inner: &Element,
    own: &BareJid,
    archive_id: Option<String>,
    stamp_ms: Option<i64>,
) -> Option<IncomingMessage> {
    let from = inner
        .attr("from")
        .and_then(|f| f.parse::<jid::Jid>().ok())?;
    if from.to_bare() == *own {
        let to = inner
            .attr("to")
            .and_then(|t| t.parse::<jid::Jid>().ok())?
            .to_bare();
        let body = inner.get_child("body", NS_CLIENT)?.text();
        return Some(IncomingMessage {
            direction: Direction::Outgoing,
            peer: to.to_string(),
            sender: own.to_string(),
            body,
            origin_id: inner
                .get_child("origin-id", NS_SID)
                .and_then(|o| o.attr("id"))
                .map(str::to_owned),
            stanza_id: archive_id,
            remote_id: inner.attr("id").map(str::to_owned),
            timestamp_ms: stamp_ms.unwrap_or_else(now_ms),
            position: Position::Append,
            security: Default::default(),
            room: None,
        });
    }
    let IncomingMessageStanza::Chat(chat) = messages::parse(inner, own) else {
        return None;
    };
    Some(IncomingMessage {
        direction: Direction::Incoming,
        peer: chat.from.to_string(),
        sender: chat.from.to_string(),
        body: chat.body,
        origin_id: chat.origin_id,
        stanza_id: archive_id.or(chat.stanza_id),
        remote_id: chat.id,
        timestamp_ms: stamp_ms.or(chat.delayed_ms).unwrap_or_else(now_ms),
        position: Position::Append,
        security: Default::default(),
        room: None,
    })
}

/// Decrypts the OMEMO messages of a batch, in order, dropping the
/// key-transport ones; returns the batch and what OMEMO wants sent. The
/// session changes wait in the OMEMO state for the batch's transaction
/// ([`Omemo::take_writes`]).
pub(crate) fn decrypt_batch<R>(
    shared: &Shared,
    omemo: Option<&mut Omemo>,
    batch: Vec<(IncomingMessage, Option<Element>, R)>,
) -> (Vec<(IncomingMessage, R)>, Vec<Element>) {
    let Some(omemo) = omemo else {
        return (
            batch.into_iter().map(|(m, _, r)| (m, r)).collect(),
            Vec::new(),
        );
    };
    let mut store = shared.store();
    let mut out = Vec::with_capacity(batch.len());
    let mut to_send = Vec::new();
    for (mut message, encrypted, extra) in batch {
        let Some(stanza) = encrypted else {
            out.push((message, extra));
            continue;
        };
        let sender = match message.direction {
            Direction::Incoming => message.peer.clone(),
            Direction::Outgoing => shared.own.to_string(),
        };
        let Some((received, stanzas)) = omemo.decrypt(&mut store, &sender, &stanza) else {
            out.push((message, extra));
            continue;
        };
        to_send.extend(stanzas);
        if let Received::Message { body, security } = received {
            message.body = body;
            message.security = security;
            out.push((message, extra));
        }
    }
    (out, to_send)
}

/// A turn's live messages, waiting for the end of the turn.
#[derive(Default)]
pub(crate) struct Inbound {
    batch: Vec<(IncomingMessage, Option<Receipt>, Option<Element>)>,
}

/// What writing a batch produced.
pub(crate) struct Flushed {
    /// The messages that were new (duplicates are left out).
    pub new_messages: Vec<StoredMessage>,
    /// Receipts to send, duplicates included: the sender may have missed
    /// the first one.
    pub receipts: Vec<Element>,
    /// What OMEMO wants sent after decrypting.
    pub omemo_stanzas: Vec<Element>,
}

impl Inbound {
    pub fn push(
        &mut self,
        message: IncomingMessage,
        receipt: Option<Receipt>,
        encrypted: Option<Element>,
    ) {
        self.batch.push((message, receipt, encrypted));
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Forgets the turn's messages (the connection dropped before they were
    /// written; the server still has them and sends them again).
    pub fn clear(&mut self) {
        self.batch.clear();
    }

    /// Decrypts and writes the turn's messages in one transaction, with the
    /// archive cursor `cursor` makes of their newest archive id (none while
    /// a catch-up is unfinished). `ahead_of_archive`: such a catch-up runs,
    /// so these go above the pages still to come (see `client::ordering`).
    pub fn flush(
        &mut self,
        shared: &Shared,
        mut omemo: Option<&mut Omemo>,
        ahead_of_archive: bool,
        cursor: impl Fn(Option<&String>) -> Option<AccountWrite>,
    ) -> Result<Flushed, StoreError> {
        let batch = std::mem::take(&mut self.batch)
            .into_iter()
            .map(|(m, receipt, encrypted)| (m, encrypted, receipt))
            .collect();
        let (batch, omemo_stanzas) = decrypt_batch(shared, omemo.as_deref_mut(), batch);
        let writes = omemo.map(Omemo::take_writes).unwrap_or_default();
        let position = if ahead_of_archive {
            Position::AppendAheadOfArchive
        } else {
            Position::Append
        };
        let messages: Vec<IncomingMessage> = batch
            .iter()
            .map(|(m, _)| IncomingMessage {
                position,
                ..m.clone()
            })
            .collect();
        // Room messages carry their room's archive ids, not ours.
        let newest_archive_id = batch
            .iter()
            .rev()
            .filter(|(m, _)| m.room.is_none())
            .find_map(|(m, _)| m.stanza_id.clone());
        let cursor: Vec<AccountWrite> = cursor(newest_archive_id.as_ref()).into_iter().collect();
        let stored = shared
            .store()
            .insert_incoming_batch_with(&messages, &writes, &cursor)?;
        let mut flushed = Flushed {
            new_messages: Vec::new(),
            receipts: Vec::new(),
            omemo_stanzas,
        };
        for (message, (incoming, receipt)) in stored.into_iter().zip(batch) {
            if message.is_none() && incoming.room.is_some() {
                super::rooms::reflected(shared, &incoming);
            }
            flushed.new_messages.extend(message);
            if let Some((to, id)) = receipt {
                flushed.receipts.push(messages::receipt(&to, &id));
            }
        }
        Ok(flushed)
    }
}
