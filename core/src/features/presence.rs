//! Presence: own availability, subscription requests and answers, and
//! contacts' presence per resource (RFC 6121 §3–4).

use crate::ns::NS_CLIENT;
use jid::BareJid;
use minidom::Element;

use super::{stanza, text_element};

/// Own availability, as the user picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    Chat,
    Away,
    ExtendedAway,
    DoNotDisturb,
    Unavailable,
}

impl Availability {
    fn show(self) -> Option<&'static str> {
        match self {
            Availability::Chat => Some("chat"),
            Availability::Away => Some("away"),
            Availability::ExtendedAway => Some("xa"),
            Availability::DoNotDisturb => Some("dnd"),
            Availability::Available | Availability::Unavailable => None,
        }
    }

    fn from_show(show: Option<&str>) -> Availability {
        match show {
            Some("chat") => Availability::Chat,
            Some("away") => Availability::Away,
            Some("xa") => Availability::ExtendedAway,
            Some("dnd") => Availability::DoNotDisturb,
            _ => Availability::Available,
        }
    }
}

/// Broadcast presence with availability and an optional status text.
pub fn own_presence(availability: Availability, status: Option<&str>) -> Element {
    let mut children = Vec::new();
    if let Some(show) = availability.show() {
        children.push(text_element("show", NS_CLIENT, show));
    }
    if let Some(status) = status.filter(|s| !s.is_empty()) {
        children.push(text_element("status", NS_CLIENT, status));
    }
    let kind = (availability == Availability::Unavailable).then_some("unavailable");
    if kind.is_none() {
        // Entity capabilities: the server learns our +notify interests.
        children.push(super::disco::caps_element());
    }
    stanza("presence", &[("type", kind)], children)
}

/// The subscription presence types (RFC 6121 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAction {
    Subscribe,
    Approve,
    Unsubscribe,
    Deny,
}

pub fn subscription(to: &BareJid, action: SubscriptionAction) -> Element {
    let kind = match action {
        SubscriptionAction::Subscribe => "subscribe",
        SubscriptionAction::Approve => "subscribed",
        SubscriptionAction::Unsubscribe => "unsubscribe",
        SubscriptionAction::Deny => "unsubscribed",
    };
    stanza(
        "presence",
        &[("to", Some(to.as_str())), ("type", Some(kind))],
        Vec::new(),
    )
}

/// What an incoming presence tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceUpdate {
    /// A contact's resource changed availability.
    Resource {
        from: BareJid,
        resource: String,
        availability: Availability,
        status: Option<String>,
    },
    /// Someone asks to see our presence.
    SubscriptionRequest {
        from: BareJid,
    },
    /// A contact answered our request, or revoked theirs.
    SubscriptionChanged {
        from: BareJid,
        approved: bool,
    },
    Ignored,
}

/// One resource's current presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePresence {
    pub resource: String,
    pub availability: Availability,
    pub status: Option<String>,
}

/// Contacts' presence per resource, as the server last told this session.
/// Kept across a resumed stream (the server sends nothing again), cleared
/// for a fresh session (it sends everything again).
#[derive(Debug, Default)]
pub struct PresenceBook {
    contacts:
        std::collections::HashMap<String, std::collections::BTreeMap<String, ResourcePresence>>,
}

/// Resources kept per contact, and contacts kept: presence comes from the
/// network, so the book is bounded (XMPP clients rarely have more than a
/// handful of resources; a roster of thousands is large).
const MAX_RESOURCES_PER_CONTACT: usize = 32;
const MAX_CONTACTS: usize = 10_000;

impl PresenceBook {
    pub fn apply(&mut self, jid: &BareJid, presence: ResourcePresence) {
        if presence.availability == Availability::Unavailable && presence.resource.is_empty() {
            // RFC 6121 §4.5.3: unavailable from the bare JID (e.g. the
            // contact's server after a subscription ended) covers every
            // resource.
            self.contacts.remove(jid.as_str());
            return;
        }
        if presence.availability != Availability::Unavailable
            && !self.contacts.contains_key(jid.as_str())
            && self.contacts.len() >= MAX_CONTACTS
        {
            return;
        }
        let resources = self.contacts.entry(jid.to_string()).or_default();
        if presence.availability == Availability::Unavailable {
            resources.remove(&presence.resource);
            if resources.is_empty() {
                self.contacts.remove(jid.as_str());
            }
        } else if resources.len() < MAX_RESOURCES_PER_CONTACT
            || resources.contains_key(&presence.resource)
        {
            resources.insert(presence.resource.clone(), presence);
        }
    }

    /// The online resources of `jid`, ordered by resource name.
    pub fn of(&self, jid: &str) -> Vec<ResourcePresence> {
        self.contacts
            .get(jid)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.contacts.clear();
    }
}

pub fn parse(element: &Element) -> PresenceUpdate {
    let Some(from) = element
        .attr("from")
        .and_then(|f| f.parse::<jid::Jid>().ok())
    else {
        return PresenceUpdate::Ignored;
    };
    let resource = from
        .resource()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default();
    let bare = from.to_bare();
    let status = element.get_child("status", NS_CLIENT).map(|s| s.text());
    match element.attr("type") {
        None => {
            let show = element.get_child("show", NS_CLIENT).map(|s| s.text());
            PresenceUpdate::Resource {
                from: bare,
                resource,
                availability: Availability::from_show(show.as_deref().map(str::trim)),
                status,
            }
        }
        Some("unavailable") => PresenceUpdate::Resource {
            from: bare,
            resource,
            availability: Availability::Unavailable,
            status,
        },
        Some("subscribe") => PresenceUpdate::SubscriptionRequest { from: bare },
        Some("subscribed") => PresenceUpdate::SubscriptionChanged {
            from: bare,
            approved: true,
        },
        Some("unsubscribed") => PresenceUpdate::SubscriptionChanged {
            from: bare,
            approved: false,
        },
        _ => PresenceUpdate::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_presence_round_trips_through_the_parser() {
        let mut p = own_presence(Availability::Away, Some("lunch"));
        super::super::set_attr(&mut p, "from", "alice@example.org/phone");
        assert_eq!(
            parse(&p),
            PresenceUpdate::Resource {
                from: "alice@example.org".parse().unwrap(),
                resource: "phone".into(),
                availability: Availability::Away,
                status: Some("lunch".into())
            }
        );
    }

    #[test]
    fn the_book_tracks_resources_and_forgets_unavailable_ones() {
        let bob: BareJid = "bob@example.org".parse().unwrap();
        let mut book = PresenceBook::default();
        let p = |r: &str, a| ResourcePresence {
            resource: r.into(),
            availability: a,
            status: None,
        };
        book.apply(&bob, p("phone", Availability::Away));
        book.apply(&bob, p("laptop", Availability::Available));
        assert_eq!(book.of("bob@example.org").len(), 2);
        book.apply(&bob, p("phone", Availability::Unavailable));
        assert_eq!(
            book.of("bob@example.org"),
            vec![p("laptop", Availability::Available)]
        );
        book.apply(&bob, p("laptop", Availability::Unavailable));
        assert!(book.of("bob@example.org").is_empty());
    }

    #[test]
    fn subscription_stanzas() {
        let bob: BareJid = "bob@example.org".parse().unwrap();
        let s = subscription(&bob, SubscriptionAction::Approve);
        assert_eq!(s.attr("type"), Some("subscribed"));
        let mut req = subscription(&bob, SubscriptionAction::Subscribe);
        super::super::set_attr(&mut req, "from", "bob@example.org");
        assert_eq!(
            parse(&req),
            PresenceUpdate::SubscriptionRequest { from: bob }
        );
    }

    /// Issue 12, defect 16: an unavailable presence from the bare JID
    /// removes every resource (it used to remove only a resource named "").
    #[test]
    fn a_bare_jid_unavailable_removes_every_resource() {
        let bob: BareJid = "bob@example.org".parse().unwrap();
        let mut book = PresenceBook::default();
        for r in ["phone", "laptop"] {
            book.apply(
                &bob,
                ResourcePresence {
                    resource: r.into(),
                    availability: Availability::Available,
                    status: None,
                },
            );
        }
        assert_eq!(book.of("bob@example.org").len(), 2);
        let gone = parse(
            &"<presence xmlns='jabber:client' from='bob@example.org' type='unavailable'/>"
                .parse()
                .unwrap(),
        );
        let PresenceUpdate::Resource {
            from,
            resource,
            availability,
            status,
        } = gone
        else {
            panic!("{gone:?}")
        };
        book.apply(
            &from,
            ResourcePresence {
                resource,
                availability,
                status,
            },
        );
        assert!(book.of("bob@example.org").is_empty());
    }

    /// Issue 12, defect 15: presence from the network cannot grow the book
    /// without end.
    #[test]
    fn the_presence_book_is_bounded() {
        let mut book = PresenceBook::default();
        let bob: BareJid = "bob@example.org".parse().unwrap();
        for i in 0..1000 {
            book.apply(
                &bob,
                ResourcePresence {
                    resource: format!("r{i}"),
                    availability: Availability::Available,
                    status: None,
                },
            );
        }
        assert_eq!(book.of("bob@example.org").len(), MAX_RESOURCES_PER_CONTACT);
        for i in 0..(MAX_CONTACTS + 10) {
            let jid: BareJid = format!("c{i}@example.org").parse().unwrap();
            book.apply(
                &jid,
                ResourcePresence {
                    resource: "x".into(),
                    availability: Availability::Available,
                    status: None,
                },
            );
        }
        assert_eq!(book.contacts.len(), MAX_CONTACTS);
    }
}
