//! The outbox on the wire: sends stored outgoing messages (encrypted when
//! the conversation is), never twice on one connection, and moves each
//! message's state on as the server acknowledges it (XEP-0198), the peer
//! confirms it (XEP-0184) or it bounces.

use std::collections::HashSet;

use minidom::Element;

use crate::client::connection::shared::Shared;
use crate::client::events::ClientEvent;
use crate::client::omemo::{Omemo, Prepared};
use crate::client::random_id;
use crate::features::{messages, muc_messages};
use crate::ns::NS_CLIENT;
use crate::store::MessageState;

#[derive(Default)]
pub(crate) struct Outbox {
    /// Outbox rows already written on this connection.
    sent_now: HashSet<i64>,
    /// XEP-0198 is on: the server's acks move messages to `Acked`.
    sm_enabled: bool,
}

impl Outbox {
    /// A connection came online. On a resumed stream the engine already
    /// re-sent what the server had not acknowledged (`resent_ids`, by
    /// origin-id): those are not sent again.
    pub fn on_online(&mut self, shared: &Shared, sm_enabled: bool, resent_ids: &[String]) {
        self.sm_enabled = sm_enabled;
        self.sent_now.clear();
        if resent_ids.is_empty() {
            return;
        }
        let outbox = shared.store().outbox();
        if let Ok(outbox) = outbox {
            for message in outbox {
                if message
                    .origin_id
                    .as_ref()
                    .is_some_and(|o| resent_ids.contains(o))
                {
                    self.sent_now.insert(message.id);
                }
            }
        }
    }

    /// Every unsent outbox message, as stanzas to send (a room's only
    /// while we are in it: `joined`).
    pub fn flush(
        &mut self,
        shared: &Shared,
        mut omemo: Option<&mut Omemo>,
        joined: &dyn Fn(&str) -> bool,
    ) -> Vec<Element> {
        let outbox = match shared.store().outbox() {
            Ok(outbox) => outbox,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the outbox");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for message in outbox {
            out.extend(self.send_queued(shared, omemo.as_deref_mut(), message.id, joined));
        }
        out
    }

    /// The stanzas that send outbox row `id` (the message, or the OMEMO
    /// requests it waits for), unless it went out on this connection
    /// already or needs nothing more.
    pub fn send_queued(
        &mut self,
        shared: &Shared,
        omemo: Option<&mut Omemo>,
        id: i64,
        joined: &dyn Fn(&str) -> bool,
    ) -> Vec<Element> {
        if self.sent_now.contains(&id) {
            return Vec::new();
        }
        let message = match shared.store().message(id) {
            Ok(Some(m)) => m,
            _ => return Vec::new(),
        };
        if message.state >= MessageState::Acked {
            return Vec::new();
        }
        if message.room.is_some() {
            // A room takes messages only from occupants (XEP-0045 §7.4); it
            // waits for the join. OMEMO in rooms is a later slice of the
            // group-chat issue: these go in the clear, as the room is.
            if !joined(&message.peer) {
                return Vec::new();
            }
            return self.mark_sent(
                shared,
                id,
                muc_messages::groupchat(
                    &message.peer,
                    &message.body,
                    &message.origin_id.unwrap_or_else(random_id),
                ),
            );
        }
        // The original origin-id goes out again, so a resend after a crash
        // is deduplicated by the receiver.
        let origin_id = message.origin_id.clone().unwrap_or_else(random_id);
        let prepared = match omemo {
            Some(omemo) => {
                let mut store = shared.store();
                omemo.prepare(&mut store, id, &message.peer, &message.body, &origin_id)
            }
            None => Prepared::Plain,
        };
        let stanza = match prepared {
            Prepared::Plain => messages::chat(&message.peer, &message.body, &origin_id),
            Prepared::Encrypted(stanza, scheme) => {
                if let Err(err) = shared.store().set_outgoing_encryption(id, scheme) {
                    tracing::warn!(error = %err, "cannot record the message's encryption");
                }
                *stanza
            }
            // Device lists or bundles first; the message goes once they
            // are in (the OMEMO part asks for a retry).
            Prepared::Wait(requests) => return requests,
            Prepared::Fail(reason) => {
                // Never fall back to plain text in an encrypted conversation.
                tracing::warn!(%reason, "cannot encrypt a message");
                let failed = shared.store().advance_outgoing(id, MessageState::Failed);
                if let Ok(Some(updated)) = failed {
                    shared.emit(ClientEvent::MessageStateChanged(updated));
                }
                return Vec::new();
            }
        };
        self.mark_sent(shared, id, stanza)
    }

    /// Outbox row `id` goes out now as `stanza`.
    fn mark_sent(&mut self, shared: &Shared, id: i64, stanza: Element) -> Vec<Element> {
        self.sent_now.insert(id);
        let advanced = shared.store().advance_outgoing(id, MessageState::Sent);
        if let Ok(Some(updated)) = advanced {
            shared.emit(ClientEvent::MessageStateChanged(updated));
        }
        if !self.sm_enabled {
            // Without XEP-0198 nothing more will confirm the server has it;
            // the receipt will move it on to delivered.
            tracing::debug!("stream management off: message stays 'sent' until a receipt");
        }
        vec![stanza]
    }

    /// XEP-0198: the server acknowledged these stanzas.
    pub fn on_acked(&self, shared: &Shared, stanzas: &[Element]) {
        for stanza in stanzas.iter().filter(|s| s.name() == "message") {
            let (Some(to), Some(id)) = (stanza.attr("to"), stanza.attr("id")) else {
                continue;
            };
            if stanza.has_child("body", NS_CLIENT) {
                advance(shared, to, id, MessageState::Acked);
            }
        }
    }
}

/// Moves our message `origin_id` to `peer` on to `state` (states only move
/// forward) and tells the app.
pub(crate) fn advance(shared: &Shared, peer: &str, origin_id: &str, state: MessageState) {
    let result = {
        let mut store = shared.store();
        match store.outgoing_by_origin_id(peer, origin_id) {
            Ok(Some(id)) => store.advance_outgoing(id, state),
            other => other.map(|_| None),
        }
    };
    match result {
        Ok(Some(updated)) => shared.emit(ClientEvent::MessageStateChanged(updated)),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "cannot record message state"),
    }
}
