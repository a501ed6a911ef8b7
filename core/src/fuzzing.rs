//! Fuzzing harnesses for the parsers that read what a server, a network or a
//! contact sends, shared by the cargo-fuzz targets in `fuzz/` and by the test
//! that replays their corpus (`core/tests/integration/fuzz_corpus.rs`).
//!
//! Each harness takes arbitrary bytes and must return without panicking.
//! They live in the crate because `proto`, `xml` and `transport` are not
//! public; only this module (behind the `fuzzing` feature, never in the
//! mobile library) exposes them. The OMEMO harnesses are in
//! [`crate::features::omemo::fuzzing`], re-exported here as [`omemo`].
//!
//! Input formats (documented so a corpus file can be read by hand):
//! - [`xml_stream`]: byte 0 picks the chunk sizes (a small generator seeded
//!   with it) and, with bit 7 set, puts a server's stream header before the
//!   rest. The rest is fed in one piece and in chunks: both must give the
//!   same items (serialised), the same error, or end the stream.
//! - [`session`]: byte 0 picks one of [`SESSION_STATES`] states, which a
//!   scripted server reaches from a fresh session; the rest is split at
//!   every `0xFF` into chunks given to `Session::handle_input(Received)`.
//!   A chunk after the first may start with an operation: `T` the timer
//!   fires, `D` the socket drops and reconnects, `X` the app closes, `S` the
//!   app sends a message, `A` the app goes to the background or back; its
//!   remaining bytes are received after it.
//! - [`sasl`]: byte 0 picks the mechanism (SCRAM variants, PLAIN, HT, or
//!   the negotiation elements); for SCRAM the rest is the server-first
//!   message, a NUL, and the server-final message.
//! - [`message`]: the rest of a stream (after the header): every element is
//!   read as a message, carbon, archive result, presence, roster push and
//!   PEP event; every `stamp` attribute, and the whole input, as XEP-0082.
//! - [`sce`]: an OMEMO 2 SCE envelope's plaintext; as UTF-8 also a body
//!   that must survive an envelope round trip.
//! - [`push`]: byte 0 even: `iv` NEWLINE `payload` (base64, as the app
//!   server forwards them); odd: the plaintext, sealed with the device key
//!   first, so the JSON reading behind the AES-GCM check is reached.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jid::BareJid;
use minidom::Element;

use crate::features::omemo::{pep, sce as sce_envelope};
use crate::features::{carbons, mam, messages, presence, push as push_payload, roster};
use crate::proto::fast::{FastMechanism, FastToken, HtClient};
use crate::proto::sasl::{Mechanism, SaslClient};
use crate::proto::stream_features::{error_condition, Features};
use crate::proto::{Input, Output, Session, SessionConfig, SessionEvent, SmState, TlsInfo};
use crate::xml::{self, StreamItem, StreamReader, XmlError};

/// The OMEMO harnesses (ratchet message, key exchange, stanza).
pub use crate::features::omemo::fuzzing as omemo;

/// A harness: arbitrary bytes in, no panic.
pub type Harness = fn(&[u8]);

/// Every harness by its cargo-fuzz target name.
pub const TARGETS: [(&str, Harness); 9] = [
    ("omemo_message", omemo::message),
    ("omemo_key_exchange", omemo::key_exchange),
    ("omemo_stanza", omemo::stanza),
    ("xml_stream", xml_stream),
    ("session", session),
    ("sasl", sasl),
    ("message", message),
    ("sce", sce),
    ("push", push),
];

/// The harness of a cargo-fuzz target.
pub fn harness(target: &str) -> Option<Harness> {
    TARGETS.iter().find(|(t, _)| *t == target).map(|(_, h)| *h)
}

/// A server's stream header, as the scripted server sends it.
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>";

const OWN: &str = "alice@example.org";

fn own() -> &'static BareJid {
    static OWN_JID: OnceLock<BareJid> = OnceLock::new();
    OWN_JID.get_or_init(|| BareJid::new(OWN).expect("valid JID"))
}

// ---------------------------------------------------------------- xml stream

/// How the reader reacted to a whole input: its items (elements
/// serialised, so text split across chunks compares equal), then an error
/// or nothing. Collection stops at the stream's end.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Header,
    Element(Element),
    End,
    Error(XmlError),
}

fn read_in_chunks(data: &[u8], mut next_size: impl FnMut() -> usize) -> Vec<Seen> {
    let mut reader = StreamReader::default();
    let mut seen = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(next_size().clamp(1, rest.len()));
        rest = tail;
        match reader.feed(chunk) {
            Ok(items) => {
                for item in items {
                    seen.push(match item {
                        StreamItem::Header => Seen::Header,
                        StreamItem::Element(e) => Seen::Element(e),
                        StreamItem::End => {
                            seen.push(Seen::End);
                            return seen;
                        }
                    });
                }
            }
            Err(err) => {
                seen.push(Seen::Error(err));
                return seen;
            }
        }
    }
    seen
}

/// The XML stream reader, fed whole and in chunks.
pub fn xml_stream(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let input = if mode & 0x80 != 0 {
        [HEADER.as_bytes(), body].concat()
    } else {
        body.to_vec()
    };
    let whole = read_in_chunks(&input, || usize::MAX);
    let mut state = u32::from(mode) | 0x100;
    let chunked = read_in_chunks(&input, || {
        // xorshift: sizes 1..=32, the same for the same input.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 32) as usize + 1
    });
    match whole.last() {
        // Fed whole, an error drops the items of the same call; fed in
        // chunks the same error comes after them, or the stream ended
        // before the bytes in error.
        Some(Seen::Error(err)) => match chunked.last() {
            Some(Seen::Error(e)) => assert_eq!(e, err, "the same error in chunks"),
            Some(Seen::End) => {}
            other => panic!("whole: {err:?}; in chunks: {other:?}"),
        },
        _ => assert_eq!(whole, chunked, "the same items in chunks"),
    }
    // A small limit (elements and the header alike) and the standalone
    // document parser (SCE envelopes) on the same bytes.
    let mut small = StreamReader::new(256);
    for chunk in input.chunks(7) {
        if small.feed(chunk).is_err() {
            break;
        }
    }
    let _ = xml::parse_document(body, 4096);
}

// ------------------------------------------------------------------ session

/// The states the session harness starts from, by index (byte 0 modulo
/// their number), each reached by a scripted server from a fresh session.
pub const SESSION_STATES: [&str; 18] = [
    "connected, plain TCP: awaiting the stream header and features",
    "awaiting <proceed/> after <starttls/>",
    "after STARTTLS: awaiting the features (channel binding available)",
    "direct TLS: awaiting the stream header and features",
    "SASL PLAIN sent: awaiting <success/>",
    "SCRAM-SHA-1 sent: awaiting the server-first <challenge/>",
    "SCRAM-SHA-256-PLUS sent: awaiting the server-first <challenge/>",
    "SCRAM-SHA-1 answered: awaiting <success/> with the server-final message",
    "bind and <enable/> sent: awaiting their results",
    "online with stream management",
    "online without stream management",
    "<resume/> sent: awaiting <resumed/> or <failed/>",
    "SASL2 SCRAM-SHA-256 with Bind2 and a FAST request: awaiting the challenge",
    "SASL2 with a FAST token: awaiting <success/>",
    "SASL2 PLAIN with inline resumption: awaiting <success/>",
    "SASL2 succeeded with Bind2: awaiting the post-authentication features",
    "online with stream management, closing",
    "online through SASL2 and Bind2",
];

const NONCE: &str = "fuzznonce";
const PASSWORD: &str = "secret";
/// The scripted server's SCRAM-SHA-1 first message (one iteration keeps
/// the harness fast).
const SERVER_FIRST: &str = "r=fuzznonceSERVER,s=c2FsdA==,i=1";
const TLS_FEATURES: &str =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>";
const SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const BIND_FEATURES: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <sm xmlns='urn:xmpp:sm:3'/><ver xmlns='urn:xmpp:features:rosterver'/>\
    <csi xmlns='urn:xmpp:csi:0'/></stream:features>";
const BIND_RESULT: &str =
    "<iq type='result' id='wx1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
    <jid>alice@example.org/phone</jid></bind></iq>";
const ENABLED: &str = "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>";
const POST_AUTH_FEATURES: &str = "<stream:features><ver xmlns='urn:xmpp:features:rosterver'/>\
    <csi xmlns='urn:xmpp:csi:0'/></stream:features>";

fn mechanisms(names: &[&str]) -> String {
    let names: String = names
        .iter()
        .map(|n| format!("<mechanism>{n}</mechanism>"))
        .collect();
    format!(
        "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         {names}</mechanisms></stream:features>"
    )
}

fn sasl2_features(mechanism: &str) -> String {
    format!(
        "{HEADER}<stream:features><authentication xmlns='urn:xmpp:sasl:2'>\
         <mechanism>{mechanism}</mechanism><inline>\
         <bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/>\
         <feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:sm:3'/></inline></bind>\
         <sm xmlns='urn:xmpp:sm:3'/>\
         <fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism>\
         <mechanism>HT-SHA-256-EXPR</mechanism></fast></inline></authentication></stream:features>"
    )
}

fn channel_binding() -> TlsInfo {
    TlsInfo {
        channel_binding: Some(vec![0xcb; 32]),
    }
}

fn fast_token() -> FastToken {
    FastToken {
        mechanism: FastMechanism::HtSha256None,
        secret: "secret-token:fuzz".into(),
        expiry: None,
        count: 1,
    }
}

/// A stream to resume: one stanza the server may not have got.
fn resumable() -> SmState {
    SmState {
        resume_id: Some("sm-1".into()),
        bound_jid: Some("alice@example.org/phone".into()),
        inbound_handled: 3,
        outbound_acked: 1,
        unacked: {
            let text =
                "<message xmlns='jabber:client' to='bob@example.org' id='o2'><body>b</body></message>";
            let stanza: minidom::Element = text.parse().expect("a valid stanza");
            [crate::proto::sm::Unacked::new(&stanza, text.to_owned())].into()
        },
        ..SmState::default()
    }
}

/// A session driven as the transport drives it, against a script.
struct Driver {
    session: Session,
    now: Instant,
    wait: Option<Instant>,
    active: bool,
    /// `Online` and `Disconnected` events seen (the script checks them).
    online: u32,
    disconnected: u32,
}

impl Driver {
    fn new() -> Self {
        let jid = BareJid::new(OWN).expect("valid JID");
        let mut config = SessionConfig::new(jid, PASSWORD.into(), "phone".into());
        config.client_id = "fuzz-device".into();
        Self {
            session: Session::new(config),
            now: Instant::now(),
            wait: None,
            active: true,
            online: 0,
            disconnected: 0,
        }
    }

    /// Drains the output as the driver does: the client marks the turn's
    /// stanzas handled when the engine first waits. The output must end.
    fn drain(&mut self) {
        let mut handled = false;
        for _ in 0..100_000 {
            match self.session.poll_output() {
                Output::Event(SessionEvent::Online { .. }) => self.online += 1,
                Output::Event(SessionEvent::Disconnected { .. }) => self.disconnected += 1,
                Output::Transmit(_) | Output::StartTls | Output::CloseSocket | Output::Event(_) => {
                }
                Output::Wait(at) => {
                    if !std::mem::replace(&mut handled, true) {
                        self.session.mark_handled();
                        continue;
                    }
                    self.wait = at;
                    return;
                }
            }
        }
        panic!("the engine's output never ends");
    }

    fn input(&mut self, input: Input<'_>) {
        self.session.handle_input(self.now, input);
        self.drain();
    }

    fn recv(&mut self, bytes: &[u8]) {
        self.input(Input::Received(bytes));
    }

    fn connect(&mut self, tls: Option<TlsInfo>) {
        self.input(Input::Connected {
            tls,
            nonce: NONCE.into(),
        });
    }

    /// Plays the script that reaches `state` (an index in
    /// [`SESSION_STATES`]).
    fn reach(&mut self, state: usize) {
        match state {
            0 => self.connect(None),
            1 => {
                self.connect(None);
                self.recv(format!("{HEADER}{TLS_FEATURES}").as_bytes());
            }
            2 => {
                self.reach(1);
                self.recv(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
                self.input(Input::TlsEstablished(channel_binding()));
            }
            3 => self.connect(Some(channel_binding())),
            4 => {
                self.connect(Some(channel_binding()));
                self.recv(mechanisms(&["PLAIN"]).as_bytes());
            }
            5 => {
                // TLS without binding data (as under TLS 1.2): the gs2
                // header is "n,," (with data and no -PLUS offered it is
                // "y,,"), which the scripted server's final message expects.
                self.connect(Some(TlsInfo::default()));
                self.recv(mechanisms(&["SCRAM-SHA-1"]).as_bytes());
            }
            6 => {
                self.connect(Some(channel_binding()));
                self.recv(mechanisms(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]).as_bytes());
            }
            7 => {
                self.reach(5);
                let challenge = format!(
                    "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                    B64.encode(SERVER_FIRST)
                );
                self.recv(challenge.as_bytes());
            }
            8 => {
                self.reach(4);
                self.recv(SUCCESS.as_bytes());
                self.recv(format!("{HEADER}{BIND_FEATURES}").as_bytes());
            }
            9 => {
                self.reach(8);
                self.recv(BIND_RESULT.as_bytes());
                self.recv(b"<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='300'/>");
            }
            10 => {
                self.reach(4);
                self.recv(SUCCESS.as_bytes());
                self.recv(
                    format!(
                        "{HEADER}<stream:features>\
                         <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
                    )
                    .as_bytes(),
                );
                self.recv(BIND_RESULT.as_bytes());
            }
            11 => {
                self.session.restore_stream_management(resumable());
                self.reach(4);
                self.recv(SUCCESS.as_bytes());
                self.recv(format!("{HEADER}{BIND_FEATURES}").as_bytes());
            }
            12 => {
                self.connect(Some(channel_binding()));
                self.recv(sasl2_features("SCRAM-SHA-256").as_bytes());
            }
            13 => {
                self.session.set_fast_token(Some(fast_token()));
                self.connect(Some(channel_binding()));
                self.recv(sasl2_features("PLAIN").as_bytes());
            }
            14 => {
                self.session.restore_stream_management(resumable());
                self.connect(Some(channel_binding()));
                self.recv(sasl2_features("PLAIN").as_bytes());
            }
            15 => {
                self.connect(Some(channel_binding()));
                self.recv(sasl2_features("PLAIN").as_bytes());
                self.recv(
                    b"<success xmlns='urn:xmpp:sasl:2'>\
                      <authorization-identifier>alice@example.org/Waxwing~x</authorization-identifier>\
                      <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='sm-2' resume='1'/>\
                      <enabled xmlns='urn:xmpp:carbons:2'/></bound></success>",
                );
            }
            16 => {
                self.reach(9);
                self.session.close(self.now);
                self.drain();
            }
            _ => {
                self.reach(15);
                self.recv(POST_AUTH_FEATURES.as_bytes());
            }
        }
    }

    /// One chunk of the fuzz input: an operation, then bytes received.
    fn play(&mut self, chunk: &[u8], first: bool) {
        let (op, rest) = match chunk.split_first() {
            Some((&op, rest)) if !first && b"TDXSA".contains(&op) => (op, rest),
            _ => (0, chunk),
        };
        match op {
            b'T' => {
                self.now = self.wait.unwrap_or(self.now + Duration::from_secs(1));
                self.input(Input::Timeout);
            }
            b'D' => {
                self.input(Input::Disconnected);
                self.connect(Some(channel_binding()));
            }
            b'X' => {
                self.session.close(self.now);
                self.drain();
            }
            b'S' => {
                let stanza = messages::chat("bob@example.org", "hi", "fuzz-origin");
                let _ = self.session.send_stanza(self.now, &stanza);
                self.drain();
            }
            b'A' => {
                self.active = !self.active;
                self.session.set_client_state(self.now, self.active);
                self.drain();
            }
            _ => {}
        }
        if !rest.is_empty() {
            self.recv(rest);
        }
    }
}

/// Whether bytes hold a SCRAM server-first message asking for a costly
/// (but allowed) iteration count: skipped, so fuzzing stays fast. Counts
/// above the engine's bound (refused before any hashing) stay in.
fn costly_scram(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.split(',').any(|part| match part.split_once('=') {
        Some(("i", v)) => v
            .parse::<u32>()
            .is_ok_and(|i| (65..=1_000_000).contains(&i)),
        _ => false,
    })
}

/// Also looks inside every run of base64 characters (a `<challenge>`).
fn costly_scram_anywhere(data: &[u8]) -> bool {
    if costly_scram(data) {
        return true;
    }
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    data.split(|b| !is_b64(b))
        .filter(|run| run.len() >= 4)
        .any(|run| B64.decode(run).is_ok_and(|d| costly_scram(&d)))
}

/// `Session::handle_input(Received)` from one of [`SESSION_STATES`], fed a
/// sequence of chunks and operations.
pub fn session(data: &[u8]) {
    let Some((&state, body)) = data.split_first() else {
        return;
    };
    if costly_scram_anywhere(body) {
        return;
    }
    let mut driver = Driver::new();
    driver.reach(usize::from(state) % SESSION_STATES.len());
    for (n, chunk) in body.split(|&b| b == 0xff).enumerate() {
        driver.play(chunk, n == 0);
    }
    // Whatever happened, the session can be dropped and a new connection
    // (or a close) is handled.
    driver.session.close(driver.now);
    driver.drain();
    driver.input(Input::Disconnected);
}

// --------------------------------------------------------------------- sasl

/// SCRAM, PLAIN and HT client sides, and the negotiation elements
/// (features, errors, `<enabled/>`).
pub fn sasl(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let cb = [0xcbu8; 32];
    match mode % 8 {
        m @ 0..=3 => {
            if costly_scram(body) {
                return;
            }
            let mechanism = [
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha1Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
            ][usize::from(m)];
            let (first, last) = match body.iter().position(|&b| b == 0) {
                Some(at) => (&body[..at], &body[at + 1..]),
                None => (body, &[][..]),
            };
            let (mut client, _) =
                SaslClient::start(mechanism, "alice", PASSWORD, NONCE, Some(&cb), true);
            // Success before any challenge proves nothing.
            assert!(client.verify_success(last).is_err());
            if client.respond(first).is_ok() {
                let _ = client.verify_success(last);
            }
        }
        4 => {
            let (mut client, _) =
                SaslClient::start(Mechanism::Plain, "alice", PASSWORD, NONCE, None, false);
            assert!(client.respond(body).is_err(), "PLAIN has no challenge");
        }
        5 => {
            let token = fast_token();
            for cb in [None, Some(&cb[..])] {
                let (client, _) = HtClient::start(&token, "alice", cb);
                let _ = client.verify_success(body);
            }
        }
        6 => {
            let offered: Vec<String> = String::from_utf8_lossy(body)
                .split(',')
                .map(str::to_owned)
                .collect();
            for have_cb in [false, true] {
                if let Some(m) = Mechanism::choose(&offered, have_cb, &[]) {
                    assert!(have_cb || !m.uses_channel_binding());
                }
                if let Some(m) = FastMechanism::choose(&offered, have_cb) {
                    assert!(have_cb || !m.uses_channel_binding());
                }
            }
        }
        _ => {
            let Ok(element) = xml::parse_document(body, 1 << 16) else {
                return;
            };
            let _ = Features::parse(&element);
            let _ = error_condition(&element);
            if let Some(enabled) = crate::proto::sm::Enabled::parse(&element) {
                let _ = SmState::enabled_by(&enabled);
            }
            let _ = crate::proto::sm::ResumeAnswer::parse(&element);
            let _ = crate::proto::sm::A::parse(&element);
        }
    }
}

// ------------------------------------------------------------------ message

/// Whether `ms` lies within years 1..=9999 (with a day to spare for
/// offsets), as XEP-0082 parsing promises.
fn plausible_ms(ms: i64) -> bool {
    const DAY: i64 = 86_400_000;
    (-62_135_596_800_000 - 2 * DAY..=253_402_300_800_000 + 2 * DAY).contains(&ms)
}

fn stamp(text: &str) {
    if let Some(ms) = messages::parse_xep0082_ms(text) {
        assert!(plausible_ms(ms), "{text:?} read as {ms}");
    }
}

fn each_stamp(element: &Element) {
    if let Some(s) = element.attr("stamp") {
        stamp(s);
    }
    for child in element.children() {
        each_stamp(child);
    }
}

fn read_stanza(element: &Element, depth: u8) {
    let own = own();
    let _ = messages::parse(element, own);
    let _ = presence::parse(element);
    let _ = roster::parse_result(element);
    let _ = roster::parse_push(element, own);
    let _ = mam::parse_fin(element);
    let _ = pep::event_item(element);
    let _ = pep::first_item_payload(element);
    let _ = crate::features::omemo::encrypted_child(element);
    if depth > 3 {
        return;
    }
    match carbons::unwrap(element, own) {
        carbons::Carbon::Received(inner) | carbons::Carbon::Sent(inner) => {
            read_stanza(&inner, depth + 1)
        }
        _ => {}
    }
    if let mam::MamMessage::Result {
        message, stamp_ms, ..
    } = mam::unwrap(element, own)
    {
        if let Some(ms) = stamp_ms {
            assert!(plausible_ms(ms));
        }
        read_stanza(&message, depth + 1);
    }
}

/// Messages, carbons, archive results and their timestamps, as the stream
/// reader delivers them after the header.
pub fn message(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        stamp(text);
    }
    let mut reader = StreamReader::default();
    let Ok(mut items) = reader.feed(HEADER.as_bytes()) else {
        return;
    };
    match reader.feed(data) {
        Ok(more) => items.extend(more),
        Err(_) => return,
    }
    for item in items {
        if let StreamItem::Element(element) = item {
            each_stamp(&element);
            read_stanza(&element, 0);
        }
    }
}

// ---------------------------------------------------------------------- sce

/// Whether `c` survives XML text as itself (XML 1.0 characters, without
/// the carriage return that parsers turn into a line feed).
fn xml_text_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The OMEMO 2 SCE envelope (the decrypted plaintext any contact controls).
pub fn sce(data: &[u8]) {
    for sender in [OWN, "bob@example.org", "a@x"] {
        let _ = sce_envelope::open_envelope(data, sender, "bob@example.org");
    }
    if let Ok(body) = std::str::from_utf8(data) {
        if body.chars().all(xml_text_char) {
            let sealed =
                sce_envelope::envelope(body, OWN, "bob@example.org", "2026-01-01T00:00:00Z");
            assert_eq!(
                sce_envelope::open_envelope(&sealed, OWN, "bob@example.org").as_deref(),
                Ok(body),
                "a body survives its envelope"
            );
        }
    }
}

// --------------------------------------------------------------------- push

const PUSH_KEY: [u8; 16] = [7; 16];
const PUSH_IV: [u8; 12] = [1; 12];

/// Seals `plain` as the app server does.
fn seal(plain: &[u8]) -> (String, String) {
    use aes_gcm::aead::{Aead, KeyInit};
    let sealed = aes_gcm::Aes128Gcm::new(&PUSH_KEY.into())
        .encrypt(&PUSH_IV.into(), plain)
        .expect("AES-GCM seals any length here");
    (B64.encode(PUSH_IV), B64.encode(sealed))
}

/// The push payload, as `client::wake::decrypt_push` reads it once the
/// device's key is loaded from the store.
pub fn push(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let text = String::from_utf8_lossy(body);
        let (iv, payload) = text.split_once('\n').unwrap_or((&text, ""));
        let _ = push_payload::decrypt(&PUSH_KEY, iv, payload);
    } else {
        let (iv, payload) = seal(body);
        match push_payload::decrypt(&PUSH_KEY, &iv, &payload) {
            Ok(_) | Err(push_payload::PushError::UnexpectedContent) => {}
            Err(err) => panic!("a payload sealed with our key: {err:?}"),
        }
    }
}

// -------------------------------------------------------------------- seeds

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The scripted server's SCRAM-SHA-1 final message for [`SERVER_FIRST`].
fn server_final() -> String {
    let client_final = "c=biws,r=fuzznonceSERVER";
    let auth_message = format!("n=alice,r={NONCE},{SERVER_FIRST},{client_final}");
    let mut salted = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(PASSWORD.as_bytes(), b"salt", 1, &mut salted);
    let server_key = hmac_sha1(&salted, b"Server Key");
    format!(
        "v={}",
        B64.encode(hmac_sha1(&server_key, auth_message.as_bytes()))
    )
}

fn session_seed(state: u8, chunks: &[&str]) -> Vec<u8> {
    // 0xFF (not UTF-8) separates the chunks.
    let mut bytes = vec![state];
    for (n, chunk) in chunks.iter().enumerate() {
        if n > 0 {
            bytes.push(0xff);
        }
        bytes.extend_from_slice(chunk.as_bytes());
    }
    bytes
}

/// Seed inputs for the targets of this module (the OMEMO seeds are
/// [`omemo::seeds`]), as (target, bytes).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let stanzas = [
        "<message from='bob@example.org/x' to='alice@example.org' id='m1' type='chat'>\
         <body>hi &amp; bye</body><request xmlns='urn:xmpp:receipts'/>\
         <origin-id xmlns='urn:xmpp:sid:0' id='o1'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='alice@example.org'/>\
         <delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-11-24T18:00:00.123Z'/></message>",
        "<message from='bob@example.org/x' id='r1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>",
        "<message from='bob@example.org' id='e1' type='error'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<message from='alice@example.org' to='alice@example.org/phone'>\
         <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/laptop' type='chat'>\
         <body>carbon</body></message></forwarded></received></message>",
        "<message from='alice@example.org' to='alice@example.org/phone'>\
         <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' to='bob@example.org' from='alice@example.org/laptop' type='chat'>\
         <body>sent</body></message></forwarded></sent></message>",
        "<message to='alice@example.org/phone'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='a1'>\
         <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25+02:00'/>\
         <message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org'>\
         <body>archived</body></message></forwarded></result></message>",
        "<iq type='result' id='q1'><fin xmlns='urn:xmpp:mam:2' complete='true'>\
         <set xmlns='http://jabber.org/protocol/rsm'><first>a1</first><last>a9</last></set></fin></iq>",
        "<presence from='bob@example.org/x'><show>away</show><status>out</status></presence>",
        "<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='v2'>\
         <item jid='bob@example.org' name='Bob' subscription='both'><group>Friends</group></item></query></iq>",
        "<message from='bob@example.org'><event xmlns='http://jabber.org/protocol/pubsub#event'>\
         <items node='urn:xmpp:omemo:2:devices'><item id='current'>\
         <devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices></item></items></event></message>",
    ];
    for stanza in stanzas {
        seeds.push(("message", stanza.as_bytes().to_vec()));
        seeds.push(("xml_stream", [&[0x85u8][..], stanza.as_bytes()].concat()));
    }
    for stamp in [
        "2026-11-24T18:00:00Z",
        "1969-12-31T23:59:59.999-05:30",
        "9999-12-31T23:59:60.5+00:00",
    ] {
        seeds.push(("message", stamp.as_bytes().to_vec()));
    }
    seeds.push((
        "xml_stream",
        format!("\u{3}{HEADER}{BIND_FEATURES}<r xmlns='urn:xmpp:sm:3'/></stream:stream>")
            .into_bytes(),
    ));

    // Session: what a server says next in each state.
    let s = |state: u8, chunks: &[&str]| ("session", session_seed(state, chunks));
    let header_features = format!("{HEADER}{TLS_FEATURES}");
    let sasl2 = sasl2_features("PLAIN");
    let challenge = format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        B64.encode(SERVER_FIRST)
    );
    let final_success = format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        B64.encode(server_final())
    );
    let bind_features = format!("{HEADER}{BIND_FEATURES}");
    let stanza_burst = format!(
        "{}{}<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='0'/>\
         <iq type='get' id='ping1' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
        stanzas[0], stanzas[3]
    );
    let ht_success = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"secret-token:fuzz").expect("any key");
        mac.update(b"Responder");
        format!(
            "<success xmlns='urn:xmpp:sasl:2'><additional-data>{}</additional-data>\
             <authorization-identifier>alice@example.org/Waxwing~x</authorization-identifier>\
             <bound xmlns='urn:xmpp:bind:0'/></success>",
            B64.encode(mac.finalize().into_bytes())
        )
    };
    for seed in [
        s(0, &[&header_features, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"]),
        s(1, &["<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"]),
        s(2, &[&mechanisms(&["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"])]),
        s(3, &[&sasl2]),
        s(4, &[SUCCESS, &bind_features, BIND_RESULT, ENABLED]),
        s(4, &["<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"]),
        s(5, &[&challenge]),
        s(6, &["<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"]),
        s(7, &[&final_success, &bind_features, BIND_RESULT, ENABLED]),
        s(8, &[BIND_RESULT, "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>"]),
        s(9, &[&stanza_burst, "T", "T", "S<a xmlns='urn:xmpp:sm:3' h='1'/>"]),
        s(9, &["D", &bind_features]),
        s(10, &[stanzas[1], "T", "T<iq type='result' id='wx2'/>", "A", "X</stream:stream>"]),
        s(11, &["<resumed xmlns='urn:xmpp:sm:3' h='2' previd='sm-1'/>", stanzas[0]]),
        s(11, &["<failed xmlns='urn:xmpp:sm:3' h='1'/>", BIND_RESULT]),
        s(12, &["<challenge xmlns='urn:xmpp:sasl:2'>cj1mdXp6bm9uY2VTRVJWRVIscz1jMkZzZEE9PSxpPTE=</challenge>"]),
        s(13, &[&ht_success, POST_AUTH_FEATURES]),
        s(
            14,
            &[
                "<success xmlns='urn:xmpp:sasl:2'>\
                 <authorization-identifier>alice@example.org/phone</authorization-identifier>\
                 <resumed xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/></success>\
                 <message xmlns='jabber:client' from='bob@example.org/x'><body>missed</body></message>",
                POST_AUTH_FEATURES,
            ],
        ),
        s(15, &[POST_AUTH_FEATURES, stanzas[5]]),
        s(16, &["<a xmlns='urn:xmpp:sm:3' h='0'/>", "</stream:stream>"]),
        s(17, &[stanzas[6], "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"]),
    ] {
        seeds.push(seed);
    }

    // SASL: server messages for each mechanism.
    for (mode, first) in [
        (0u8, "r=fuzznonceS,s=c2FsdA==,i=1"),
        (1, "r=fuzznonceS,s=c2FsdA==,i=2"),
        (2, "r=fuzznonceS,s=c2FsdA==,i=4096000"),
        (3, SERVER_FIRST),
    ] {
        seeds.push((
            "sasl",
            [&[mode][..], first.as_bytes(), b"\0v=AAAA"].concat(),
        ));
    }
    seeds.push((
        "sasl",
        [
            &[3u8][..],
            SERVER_FIRST.as_bytes(),
            b"\0",
            server_final().as_bytes(),
        ]
        .concat(),
    ));
    seeds.push(("sasl", b"\x04whatever".to_vec()));
    seeds.push(("sasl", b"\x05AAAA".to_vec()));
    seeds.push((
        "sasl",
        b"\x06SCRAM-SHA-256-PLUS,HT-SHA-256-EXPR,PLAIN".to_vec(),
    ));
    seeds.push(("sasl", [&[7u8][..], BIND_FEATURES.as_bytes()].concat()));
    seeds.push((
        "sasl",
        b"\x07<enabled xmlns='urn:xmpp:sm:3' id='x' resume='1' max='60' location='h:5222'/>"
            .to_vec(),
    ));

    // SCE and push.
    seeds.push((
        "sce",
        sce_envelope::envelope("hi <there>", OWN, "bob@example.org", "2026-01-01T00:00:00Z"),
    ));
    seeds.push(("sce", "plain body ✓".as_bytes().to_vec()));
    let json = r#"{"unread":2,"sender":"bob@example.org","message":"hi","type":"chat"}"#;
    seeds.push(("push", [b"\x01", json.as_bytes()].concat()));
    let (iv, payload) = seal(json.as_bytes());
    seeds.push(("push", format!("\u{0}{iv}\n{payload}").into_bytes()));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script reaches every state without the session ending, and the
    /// online states are online.
    #[test]
    fn the_script_reaches_every_state() {
        for state in 0..SESSION_STATES.len() {
            let mut driver = Driver::new();
            driver.reach(state);
            assert_eq!(driver.disconnected, 0, "state {state} ended the session");
            let online = matches!(state, 9 | 10 | 16 | 17);
            assert_eq!(driver.online > 0, online, "state {state}");
            assert_eq!(driver.session.is_online(), online && state != 16);
        }
    }

    /// The seeds for the authentication states log in (their proofs are
    /// right), so fuzzing starts from the paths past them.
    #[test]
    fn the_login_seeds_go_online() {
        for (target, bytes) in seeds() {
            if target != "session" || !matches!(bytes[0], 4 | 7 | 13 | 14 | 15) {
                continue;
            }
            if bytes.windows(7).any(|w| w == b"failure") {
                continue;
            }
            let mut driver = Driver::new();
            driver.reach(usize::from(bytes[0]));
            for (n, chunk) in bytes[1..].split(|&b| b == 0xff).enumerate() {
                driver.play(chunk, n == 0);
            }
            assert!(driver.online > 0, "seed for state {}", bytes[0]);
            assert_eq!(driver.disconnected, 0, "seed for state {}", bytes[0]);
        }
    }
}
