//! The connection's parts without a server: each gets stanzas as a server
//! would send them and a real (temporary, encrypted) store, and is judged
//! by what it stores, tells the app and gives back to send.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minidom::Element;

use super::account::AccountState;
use super::catchup::CatchUp;
use super::inbound::{route, Inbound, Routed};
use super::iq::{answer_request, Answered, Requests};
use super::outbox::Outbox;
use super::shared::Shared;
use crate::client::events::{ClientEvent, EventListener};
use crate::client::ClientError;
use crate::store::{
    Direction, IncomingMessage, MessageState, Position, RosterEntry, Store, StoreKey, Subscription,
};

#[derive(Default)]
struct Recorder(Mutex<Vec<ClientEvent>>);

impl EventListener for Recorder {
    fn on_event(&self, event: ClientEvent) {
        self.0.lock().unwrap().push(event);
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    shared: Shared,
    events: Arc<Recorder>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreKey::from_bytes([9; 32])).unwrap();
        let events = Arc::new(Recorder::default());
        Fixture {
            shared: Shared {
                store: Arc::new(Mutex::new(store)),
                listener: events.clone(),
                own: "alice@localhost".parse().unwrap(),
            },
            events,
            _dir: dir,
        }
    }

    fn befriend(&self, jid: &str) {
        let entry = RosterEntry {
            jid: jid.into(),
            name: None,
            subscription: Subscription::Both,
            pending_out: false,
            groups: Vec::new(),
        };
        self.shared
            .store()
            .apply_roster_push(Some(&entry), None, None)
            .unwrap();
    }

    fn received(&self) -> Vec<String> {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ClientEvent::MessageReceived(m) => Some(m.body.clone()),
                ClientEvent::CaughtUp => Some("<caught up>".into()),
                _ => None,
            })
            .collect()
    }

    /// The conversation in display order, oldest first.
    fn history(&self, peer: &str) -> Vec<String> {
        let store = self.shared.store();
        let newest_first = store.history(peer, None, 100).unwrap();
        newest_first.into_iter().rev().map(|m| m.body).collect()
    }
}

fn cursor(f: &Fixture) -> Option<String> {
    f.shared.store().get(AccountState::ARCHIVE_CURSOR).unwrap()
}

fn set_cursor(f: &Fixture, id: &str) {
    let id = id.to_owned();
    f.shared
        .store()
        .put(AccountState::ARCHIVE_CURSOR, Some(&id))
        .unwrap();
}

fn xml(text: &str) -> Element {
    text.parse().unwrap()
}

fn live(from: &str, id: &str, body: &str) -> Element {
    xml(&format!(
        "<message xmlns='jabber:client' from='{from}/phone' to='alice@localhost/a' type='chat' id='{id}'>\
         <body>{body}</body><request xmlns='urn:xmpp:receipts'/></message>"
    ))
}

fn incoming(peer: &str, body: &str, stanza_id: &str) -> IncomingMessage {
    IncomingMessage {
        direction: Direction::Incoming,
        peer: peer.into(),
        sender: peer.into(),
        body: body.into(),
        origin_id: None,
        stanza_id: Some(stanza_id.into()),
        remote_id: Some(format!("r-{stanza_id}")),
        timestamp_ms: 1_700_000_000_000,
        position: Position::Append,
        security: Default::default(),
        room: None,
    }
}

// ---- inbound ----

#[test]
fn receipts_go_only_to_those_who_may_see_our_presence() {
    let f = Fixture::new();
    let own = f.shared.own.clone();
    let friend = route(&live("bob@localhost", "m1", "hi"), &own, true, |j| {
        j == "bob@localhost"
    });
    let Routed::Live { receipt, .. } = friend else {
        panic!("a chat message is stored: {friend:?}")
    };
    assert_eq!(receipt, Some(("bob@localhost/phone".into(), "m1".into())));
    let stranger = route(&live("mallory@evil", "m2", "hi"), &own, true, |j| {
        j == "bob@localhost"
    });
    let Routed::Live { receipt, .. } = stranger else {
        panic!("a stranger's message is still stored: {stranger:?}")
    };
    assert_eq!(receipt, None);
}

#[test]
fn forged_carbons_and_foreign_archive_results_are_dropped() {
    let own = "alice@localhost".parse().unwrap();
    let forged_carbon = xml(
        "<message xmlns='jabber:client' from='mallory@evil' to='alice@localhost/a'>\
         <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'>\
         <body>fake</body></message></forwarded></received></message>",
    );
    assert!(matches!(
        route(&forged_carbon, &own, true, |_| true),
        Routed::Dropped { why: Some(_) }
    ));
    let foreign_result = xml(
        "<message xmlns='jabber:client' from='mallory@evil' to='alice@localhost/a'>\
         <result xmlns='urn:xmpp:mam:2' queryid='q' id='s1'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'>\
         <body>fake</body></message></forwarded></result></message>",
    );
    assert!(matches!(
        route(&foreign_result, &own, true, |_| true),
        Routed::Dropped { why: Some(_) }
    ));
}

#[test]
fn a_batch_is_stored_once_duplicates_are_not_told_but_get_their_receipt() {
    let f = Fixture::new();
    let mut inbound = Inbound::default();
    let receipt = Some(("bob@localhost/phone".to_owned(), "r-s1".to_owned()));
    inbound.push(
        incoming("bob@localhost", "one", "s1"),
        receipt.clone(),
        None,
    );
    inbound.push(incoming("bob@localhost", "one", "s1"), receipt, None);
    inbound.push(incoming("bob@localhost", "two", "s2"), None, None);
    let flushed = inbound
        .flush(&f.shared, None, false, |newest| {
            Some(AccountState::ARCHIVE_CURSOR.write(newest))
        })
        .unwrap();
    let told: Vec<_> = flushed
        .new_messages
        .iter()
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(told, ["one", "two"]);
    assert_eq!(
        flushed.receipts.len(),
        2,
        "the duplicate is receipted again"
    );
    assert_eq!(
        cursor(&f).as_deref(),
        Some("s2"),
        "the cursor, in the same transaction"
    );
    assert_eq!(f.history("bob@localhost"), ["one", "two"]);
    assert!(inbound.is_empty());
}

/// Issue 12, defect 18: a stanza-id counts only when our server stamps
/// them (it then strips any a sender put in with our JID).
#[test]
fn stanza_ids_count_only_when_the_server_says_it_stamps_them() {
    let f = Fixture::new();
    let stamped = xml(
        "<message xmlns='jabber:client' from='bob@localhost/phone' to='alice@localhost/a' type='chat' id='m1'>\
         <body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='s-1'/></message>",
    );
    let stanza_id = |routed: Routed| match routed {
        Routed::Live { message, .. } => message.stanza_id,
        other => panic!("a chat message is stored: {other:?}"),
    };
    assert_eq!(
        stanza_id(route(&stamped, &f.shared.own, true, |_| true)).as_deref(),
        Some("s-1")
    );
    assert_eq!(
        stanza_id(route(&stamped, &f.shared.own, false, |_| true)),
        None
    );
    // The server's disco#info answer decides, and is remembered.
    let mut requests = Requests::default();
    for (features, trusted) in [("", false), ("<feature var='urn:xmpp:sid:0'/>", true)] {
        let query = requests.discover_server(&f.shared);
        assert_eq!(query.attr("to"), Some("alice@localhost"));
        let answer = xml(&format!(
            "<iq xmlns='jabber:client' type='result' id='{}'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <feature var='urn:xmpp:mam:2'/>{features}</query></iq>",
            query.attr("id").unwrap()
        ));
        assert_eq!(
            requests.on_answer(&f.shared, answer),
            Answered::ServerInfo {
                stanza_ids: trusted
            }
        );
        let stored = f
            .shared
            .store()
            .get(AccountState::SERVER_STANZA_IDS)
            .unwrap();
        assert_eq!(stored, Some(trusted));
    }
}

// ---- outbox ----

#[test]
fn an_outbox_message_goes_out_once_per_connection_and_moves_on_with_acks_and_receipts() {
    let f = Fixture::new();
    let queued = f
        .shared
        .store()
        .insert_outgoing("bob@localhost", "alice@localhost", "hello", "o1", 1)
        .unwrap();
    let mut outbox = Outbox::default();
    outbox.on_online(&f.shared, true, &[]);
    let sent = outbox.flush(&f.shared, None, &|_| false);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attr("to"), Some("bob@localhost"));
    assert_eq!(
        sent[0].attr("id"),
        Some("o1"),
        "the origin-id is the stanza id"
    );
    assert!(
        outbox.flush(&f.shared, None, &|_| false).is_empty(),
        "not twice"
    );
    let state = |f: &Fixture| f.shared.store().message(queued.id).unwrap().unwrap().state;
    assert_eq!(state(&f), MessageState::Sent);
    outbox.on_acked(&f.shared, &sent);
    assert_eq!(state(&f), MessageState::Acked);
    super::outbox::advance(&f.shared, "bob@localhost", "o1", MessageState::Delivered);
    assert_eq!(state(&f), MessageState::Delivered);
    // A new connection does not resend what the server acknowledged.
    outbox.on_online(&f.shared, true, &[]);
    assert!(outbox.flush(&f.shared, None, &|_| false).is_empty());
}

#[test]
fn what_the_engine_resent_on_resumption_is_not_sent_again() {
    let f = Fixture::new();
    f.shared
        .store()
        .insert_outgoing("bob@localhost", "alice@localhost", "hello", "o1", 1)
        .unwrap();
    let mut outbox = Outbox::default();
    outbox.on_online(&f.shared, true, &["o1".to_owned()]);
    assert!(outbox.flush(&f.shared, None, &|_| false).is_empty());
}

// ---- catch-up ----

fn fin(id: &str, complete: bool, first: &str, last: &str) -> Element {
    xml(&format!(
        "<iq xmlns='jabber:client' type='result' id='{id}'><fin xmlns='urn:xmpp:mam:2' complete='{complete}'>\
         <set xmlns='http://jabber.org/protocol/rsm'><first>{first}</first><last>{last}</last></set></fin></iq>"
    ))
}

fn ids(query: &Element) -> (String, String) {
    let q = query.get_child("query", "urn:xmpp:mam:2").unwrap();
    (
        query.attr("id").unwrap().to_owned(),
        q.attr("queryid").unwrap().to_owned(),
    )
}

fn rsm(query: &Element, name: &str) -> Option<String> {
    query
        .get_child("query", "urn:xmpp:mam:2")?
        .get_child("set", "http://jabber.org/protocol/rsm")?
        .get_child(name, "http://jabber.org/protocol/rsm")
        .map(|e| e.text())
}

#[test]
fn a_forward_catch_up_stores_pages_moves_the_cursor_and_releases_held_live_messages_after() {
    let f = Fixture::new();
    set_cursor(&f, "s0");
    let mut catchup = CatchUp::default();
    catchup.on_online(&f.shared);
    let now = Instant::now();
    let query = catchup.start(&f.shared, now, Vec::new(), 0);
    assert_eq!(rsm(&query, "after").as_deref(), Some("s0"));
    let (iq_id, query_id) = ids(&query);
    assert!(catchup.live_is_ahead_of_archive());
    assert!(!catchup.add_result("another", incoming("bob@localhost", "x", "s9"), None));
    assert!(catchup.add_result(&query_id, incoming("bob@localhost", "old 1", "s1"), None));
    assert!(catchup.add_result(&query_id, incoming("bob@localhost", "old 2", "s2"), None));
    // A live message arrives meanwhile: stored, its event held back.
    let mut inbound = Inbound::default();
    inbound.push(incoming("bob@localhost", "live", "s3"), None, None);
    let flushed = inbound
        .flush(&f.shared, None, true, |newest| catchup.live_cursor(newest))
        .unwrap();
    assert_eq!(
        cursor(&f).as_deref(),
        Some("s0"),
        "live messages do not move it"
    );
    for m in flushed.new_messages {
        assert!(catchup.hold(m).is_empty(), "held while the archive comes");
    }
    let end = catchup.on_page_end(&f.shared, None, now, &fin(&iq_id, true, "s1", "s2"));
    assert!(end.committed && end.next_query.is_none());
    let stored: Vec<_> = end.stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(stored, ["old 1", "old 2"]);
    let released: Vec<_> = end.released.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(released, ["live"]);
    assert_eq!(f.history("bob@localhost"), ["old 1", "old 2", "live"]);
    assert_eq!(cursor(&f).as_deref(), Some("s2"));
    let pending = f.shared.store().get(AccountState::CATCHUP_PENDING).unwrap();
    assert_eq!(pending, None);
    assert!(!catchup.live_is_ahead_of_archive());
}

/// Issue 12, defect 15: held-back events are bounded; past the bound
/// they are told at once (the messages themselves are stored in order).
#[test]
fn held_back_live_messages_are_bounded() {
    let f = Fixture::new();
    let mut catchup = CatchUp::default();
    catchup.start(&f.shared, Instant::now(), Vec::new(), 0);
    let mut inbound = Inbound::default();
    for i in 0..super::catchup::MAX_HELD_EVENTS + 5 {
        inbound.push(
            incoming("bob@localhost", &format!("m{i}"), &format!("s{i}")),
            None,
            None,
        );
    }
    let flushed = inbound.flush(&f.shared, None, true, |_| None).unwrap();
    let told: Vec<_> = flushed
        .new_messages
        .into_iter()
        .flat_map(|m| catchup.hold(m))
        .collect();
    assert_eq!(told.len(), super::catchup::MAX_HELD_EVENTS);
    assert_eq!(told[0].body, "m0", "in order");
    assert_eq!(catchup.on_disconnected().len(), 5);
}

#[test]
fn an_expired_cursor_pages_back_from_the_newest_and_a_failed_query_stays_pending() {
    let f = Fixture::new();
    set_cursor(&f, "gone");
    let mut catchup = CatchUp::default();
    let now = Instant::now();
    let (iq_id, _) = ids(&catchup.start(&f.shared, now, Vec::new(), 0));
    let expired = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{iq_id}'><error type='cancel'>\
         <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    let end = catchup.on_page_end(&f.shared, None, now, &expired);
    let next = end.next_query.expect("asks again");
    assert_eq!(rsm(&next, "before").as_deref(), Some(""), "from the newest");
    assert!(end.released.is_none());
    let (iq_id, _) = ids(&next);
    let failed = xml(&format!(
        "<iq xmlns='jabber:client' type='error' id='{iq_id}'><error type='wait'>\
         <internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    let end = catchup.on_page_end(&f.shared, None, now, &failed);
    assert!(end.next_query.is_none() && end.released.is_some());
    assert!(catchup.is_pending(), "the next connection tries again");
    assert!(
        catchup.live_is_ahead_of_archive(),
        "live messages do not skip the gap"
    );
}

#[test]
fn a_page_that_does_not_move_the_cursor_ends_the_catch_up_instead_of_looping() {
    let f = Fixture::new();
    set_cursor(&f, "s5");
    let mut catchup = CatchUp::default();
    let now = Instant::now();
    let (iq_id, _) = ids(&catchup.start(&f.shared, now, Vec::new(), 0));
    let end = catchup.on_page_end(&f.shared, None, now, &fin(&iq_id, false, "s5", "s5"));
    assert!(end.next_query.is_none() && end.released.is_some());
}

#[test]
fn a_silent_archive_releases_held_messages_at_its_deadline() {
    let f = Fixture::new();
    let mut catchup = CatchUp::default();
    let now = Instant::now();
    catchup.start(&f.shared, now, Vec::new(), 0);
    assert!(catchup.on_timeout(now).is_none(), "not yet");
    let deadline = catchup.deadline().unwrap();
    assert!(deadline >= now + Duration::from_secs(10));
    assert!(catchup.on_timeout(deadline).is_some());
    assert!(catchup.deadline().is_none());
    assert!(catchup.is_pending());
}

// ---- IQs ----

#[test]
fn strangers_learn_nothing_from_ping_or_disco_but_the_server_and_contacts_get_answers() {
    let f = Fixture::new();
    f.befriend("bob@localhost");
    let ask = |from: &str, child: &str| {
        let request = xml(&format!(
            "<iq xmlns='jabber:client' type='get' id='q1' from='{from}'>{child}</iq>"
        ));
        answer_request(&f.shared, &request)
    };
    let ping = "<ping xmlns='urn:xmpp:ping'/>";
    let disco = "<query xmlns='http://jabber.org/protocol/disco#info'/>";
    assert_eq!(ask("localhost", ping).attr("type"), Some("result"));
    assert_eq!(
        ask("bob@localhost/phone", disco).attr("type"),
        Some("result")
    );
    for child in [ping, disco] {
        let answer = ask("mallory@evil/x", child);
        assert_eq!(answer.attr("type"), Some("error"));
        let error = answer.get_child("error", "jabber:client").unwrap();
        assert!(error.has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    }
}

#[test]
fn roster_pushes_are_taken_only_from_our_own_account() {
    let f = Fixture::new();
    let push = |from: &str| {
        xml(&format!(
            "<iq xmlns='jabber:client' type='set' id='p1'{from}><query xmlns='jabber:iq:roster'>\
             <item jid='carol@localhost' subscription='both'/></query></iq>"
        ))
    };
    let refused = answer_request(&f.shared, &push(" from='mallory@evil'"));
    assert_eq!(refused.attr("type"), Some("error"));
    assert!(f.shared.store().roster().unwrap().is_empty());
    let taken = answer_request(&f.shared, &push(""));
    assert_eq!(taken.attr("type"), Some("result"));
    assert_eq!(f.shared.store().roster().unwrap()[0].jid, "carol@localhost");
}

#[test]
fn the_app_gets_the_answer_to_its_iq_and_a_typed_error_when_the_connection_ends() {
    let f = Fixture::new();
    let mut requests = Requests::default();
    let (tx, mut answered) = tokio::sync::oneshot::channel();
    requests.track("a1".into(), tx);
    let refused = xml(
        "<iq xmlns='jabber:client' type='error' id='a1'><error type='cancel'>\
         <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    );
    assert_eq!(requests.on_answer(&f.shared, refused), Answered::App);
    assert!(matches!(
        answered.try_recv().unwrap(),
        Err(ClientError::Refused { condition }) if condition == "not-allowed"
    ));
    let (tx, mut waiting) = tokio::sync::oneshot::channel();
    requests.track("a2".into(), tx);
    requests.on_disconnected();
    assert!(matches!(
        waiting.try_recv().unwrap(),
        Err(ClientError::NotConnected)
    ));
    let stray = xml("<iq xmlns='jabber:client' type='result' id='a2'/>");
    assert_eq!(requests.on_answer(&f.shared, stray), Answered::Unknown);
    assert!(f.received().is_empty());
}

// ---- account state ----

fn token(expiry: Option<&str>) -> crate::proto::fast::FastToken {
    crate::proto::fast::FastToken {
        mechanism: crate::proto::fast::FastMechanism::HtSha256None,
        secret: "s3cret".into(),
        expiry: expiry.map(str::to_owned),
        count: 1,
    }
}

/// Issue 12, defect 18: an expired FAST token is not offered.
#[test]
fn an_expired_fast_token_is_not_used() {
    use super::account::usable_fast_token;
    let now = crate::features::messages::parse_xep0082_ms("2026-11-29T12:00:00Z").unwrap();
    assert!(usable_fast_token(Some(token(Some("2026-11-29T11:59:59Z"))), now).is_none());
    assert!(usable_fast_token(Some(token(Some("2026-12-29T12:00:00Z"))), now).is_some());
    // No expiry, or one we cannot read: the server decides.
    assert!(usable_fast_token(Some(token(None)), now).is_some());
    assert!(usable_fast_token(Some(token(Some("soon"))), now).is_some());
}

/// Issue 12, defect 18: logging out erases the FAST token (it stands in for
/// the password); a dropped connection keeps it for the next login.
#[test]
fn logout_erases_the_fast_token_and_a_drop_keeps_it() {
    use crate::proto::{Session, SessionConfig, SessionError, SessionEvent};
    use crate::transport::Handler;
    let f = Fixture::new();
    let (state, _) = tokio::sync::watch::channel(crate::client::ConnectionState::Connecting);
    let mut handler = super::ConnectionHandler::new(
        f.shared.store.clone(),
        f.events.clone(),
        f.shared.own.clone(),
        state,
        Arc::default(),
    );
    let own = f.shared.own.clone();
    let mut session = Session::new(SessionConfig::new(own, "pw".into(), "r".into()));
    let stored = |f: &Fixture| f.shared.store().get(AccountState::FAST_TOKEN).unwrap();
    for (error, kept) in [(Some(SessionError::ConnectionLost), true), (None, false)] {
        session.set_fast_token(Some(token(None)));
        handler
            .written
            .persist_fast_token(&f.shared, session.fast_token());
        assert!(stored(&f).is_some());
        handler.on_event(
            &mut session,
            Instant::now(),
            SessionEvent::Disconnected { error },
        );
        assert_eq!(stored(&f).is_some(), kept);
        assert_eq!(session.fast_token().is_some(), kept);
    }
}

/// Issue 12, defect 6: what a login proves is remembered for the next.
#[test]
fn a_bound_login_pins_binding_and_an_unbound_retry_is_remembered() {
    use super::account::pin_authentication;
    let f = Fixture::new();
    let flag = |field| f.shared.store().get(field).unwrap();
    pin_authentication(&f.shared, "PLAIN", false);
    assert_eq!(flag(AccountState::NO_PLAIN), None, "PLAIN proves nothing");
    pin_authentication(&f.shared, "SCRAM-SHA-1", true);
    assert_eq!(flag(AccountState::NO_PLAIN), Some(true));
    assert_eq!(flag(AccountState::SERVER_REJECTS_BINDING), Some(true));
    assert_eq!(flag(AccountState::CHANNEL_BINDING_PINNED), None);
    pin_authentication(&f.shared, "HT-SHA-256-EXPR", false);
    assert_eq!(flag(AccountState::CHANNEL_BINDING_PINNED), Some(true));
}

#[path = "rooms_tests.rs"]
mod rooms;
