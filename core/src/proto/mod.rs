//! The sans-IO session engine: one XMPP client stream from the first byte
//! to `</stream:stream>` — stream negotiation (STARTTLS, SASL, resource
//! binding), XEP-0198 stream management, XEP-0199 keepalive and clean close;
//! with servers that offer it, SASL2 + Bind2 + FAST (see [`sasl2`]).
//!
//! It performs no I/O and never reads the clock. The driver
//! ([`crate::transport`]) feeds it:
//! - [`Session::handle_input`] with what happened ([`Input`]), and the
//!   commands [`Session::send_stanza`] and [`Session::close`];
//! - then drains [`Session::poll_output`] until it returns
//!   [`Output::Wait`], writing [`Output::Transmit`] bytes to the socket,
//!   upgrading to TLS on [`Output::StartTls`], passing
//!   [`Output::Event`]s up, and calling back with [`Input::Timeout`] once
//!   the deadline in `Wait` passes.
//!
//! One `Session` value can live across many connections: after
//! [`SessionEvent::Disconnected`] it accepts [`Input::Connected`] again.

pub mod error;
pub mod fast;
pub mod sasl;
pub mod sasl2;
pub mod sm;
pub mod stream_features;

use crate::ns::{NS_BIND, NS_CLIENT, NS_CSI, NS_PING, NS_SASL, NS_SM, NS_STREAM, NS_TLS};
use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration, Instant};

use jid::{BareJid, FullJid};
use minidom::Element;

pub use error::{CommandError, SessionError, TimeoutKind};
use sasl::{Mechanism, SaslClient};
pub use sm::SmState;
use stream_features::*;

use crate::xml::{self, StreamItem, StreamReader};

/// What the engine needs to know to log in.
#[derive(Clone)]
pub struct SessionConfig {
    pub jid: BareJid,
    pub password: String,
    /// Resource to request; the server may change it.
    pub resource: String,
    /// Whether to enable XEP-0198.
    pub stream_management: bool,
    /// Idle time after which we check the connection is alive.
    pub ping_interval: Duration,
    /// How long a ping (or the close handshake) may go unanswered.
    pub ping_timeout: Duration,
    /// Upper bound for the whole negotiation.
    pub negotiation_timeout: Duration,
    pub max_element_bytes: usize,
    /// XEP-0388 user-agent id: stable per installation, so the server can
    /// tie FAST tokens and the Bind2 resource to this device.
    pub client_id: String,
    /// XEP-0388 user-agent software name, also the Bind2 resource tag.
    pub software: String,
    /// Use SASL2 when offered (off only to exercise the classic path).
    pub sasl2: bool,
    /// Enable XEP-0280 carbons inline with Bind2 when the server can.
    pub carbons: bool,
    /// A SCRAM (or FAST) login has worked with this account before: PLAIN,
    /// which hands the server the password, is refused from now on (a
    /// server or a man in the middle offering only PLAIN is a downgrade).
    pub refuse_plain: bool,
}

impl Drop for SessionConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl std::fmt::Debug for SessionConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    pub fn new(jid: BareJid, password: String, resource: String) -> Self {
        Self {
            jid,
            password,
            resource,
            stream_management: true,
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(30),
            negotiation_timeout: Duration::from_secs(30),
            max_element_bytes: xml::DEFAULT_MAX_ELEMENT_BYTES,
            client_id: String::new(),
            software: "Waxwing".to_owned(),
            sasl2: true,
            carbons: true,
            refuse_plain: false,
        }
    }
}

/// TLS facts the driver reports once the handshake is done.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// RFC 9266 `tls-exporter` value; `None` below TLS 1.3.
    pub channel_binding: Option<Vec<u8>>,
}

/// Something that happened outside the engine.
pub enum Input<'a> {
    /// The TCP connection is up; `tls` is set when it is direct TLS
    /// (XEP-0368). `nonce` is fresh randomness for SASL.
    Connected {
        tls: Option<TlsInfo>,
        nonce: String,
    },
    /// The STARTTLS handshake completed.
    TlsEstablished(TlsInfo),
    Received(&'a [u8]),
    /// The deadline from the last [`Output::Wait`] passed.
    Timeout,
    /// The socket closed or failed.
    Disconnected,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Output {
    Transmit(Vec<u8>),
    /// Upgrade the socket to TLS now, then report [`Input::TlsEstablished`].
    StartTls,
    Event(SessionEvent),
    /// Close the socket (after writing everything transmitted so far).
    CloseSocket,
    /// Nothing more to do until input arrives or the instant passes.
    Wait(Option<Instant>),
}

/// What the layers above learn from the engine.
#[derive(Debug)]
pub enum SessionEvent {
    /// Negotiation finished; stanzas can flow.
    Online {
        jid: FullJid,
        stream_management: bool,
        roster_versioning: bool,
        /// Request/response round trips from the stream header to here.
        round_trips: u32,
        /// The SASL mechanism that authenticated us, e.g. `SCRAM-SHA-256-PLUS`,
        /// or `HT-SHA-256-EXPR` for a FAST token.
        mechanism: &'static str,
        /// Carbons (XEP-0280) were enabled inline (Bind2): no IQ needed.
        carbons_enabled: bool,
        /// The previous stream was resumed (XEP-0198 §5): presence, roster
        /// and server state carried over.
        resumed: bool,
        /// Ids of stanzas the engine re-sent on resumption (they were not
        /// acknowledged before): the client must not send them again.
        resent_ids: Vec<String>,
    },
    /// A stanza (`message`, `presence`, `iq`) from the server.
    Stanza(Element),
    /// The server confirmed it holds these stanzas we sent (XEP-0198).
    Acked(Vec<Element>),
    /// The connection is gone; `error` is `None` after a clean close.
    Disconnected { error: Option<SessionError> },
    /// XEP-0484: the server issued a FAST token (`Some`, to persist) or
    /// refused the one we had (`None`, to forget).
    FastToken(Option<fast::FastToken>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Initial,
    Secured,
    Authenticated,
}

/// Where the stream stands. A handler takes it by value and returns the
/// next one (see `Session::handle_element`), so no path can forget it.
enum State {
    /// No stream; also what `self.state` holds while a handler owns the
    /// real state.
    Offline,
    AwaitFeatures(Stage),
    AwaitProceed,
    AwaitTls,
    Authenticating {
        client: SaslClient,
        mechanism: Mechanism,
        offered: Vec<String>,
    },
    Binding {
        bind_id: String,
        bound: Option<FullJid>,
        sm_pending: bool,
    },
    Resuming {
        previous: SmState,
    },
    /// SASL2 in progress (XEP-0388).
    Sasl2(Box<sasl2::Attempt>),
    /// SASL2 succeeded with a bound or resumed session; the server's
    /// `<stream:features/>` follows at once (XEP-0388 §2.6.1).
    AwaitPostAuthFeatures {
        online: sasl2::PendingOnline,
        /// Stanzas and SM elements that came before the features.
        early: Vec<Element>,
    },
    Online,
    Closing,
}

/// Whether there is a connection, and whether our side of the stream is
/// still open on it: what ending the stream must still do. Independent of
/// [`State`], which a handler owns while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No connection, and `Disconnected` was reported for the last one.
    Down,
    /// Connected; our stream is open (a header went out, no close tag).
    Open,
    /// Connected; we sent `</stream:stream>` and wait for the server's.
    Closed,
}

/// Named deadlines; the earliest one is reported in [`Output::Wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Negotiation,
    KeepAlive,
    PingAnswer,
    Close,
}
const TIMERS: [Timer; 4] = [
    Timer::Negotiation,
    Timer::KeepAlive,
    Timer::PingAnswer,
    Timer::Close,
];

/// One XMPP client session; see the module docs for the calling contract.
pub struct Session {
    config: SessionConfig,
    state: State,
    link: Link,
    reader: StreamReader,
    tls: Option<TlsInfo>,
    nonce: String,
    features: Features,
    sm: Option<SmState>,
    /// Whether an `<r/>` should follow the stanzas sent in this turn.
    ack_request_due: bool,
    /// The server asked for an `<a/>` while stanzas were still unhandled:
    /// it is sent once the client marks them handled.
    ack_owed: bool,
    round_trips: u32,
    next_id: u64,
    ping_id: Option<String>,
    rejected_channel_binding: bool,
    /// Name of the mechanism that authenticated this stream.
    authenticated_with: &'static str,
    /// XEP-0484 token to authenticate with next time.
    fast_token: Option<fast::FastToken>,
    /// XEP-0352 state the app wants: applied on every (re)connection.
    client_active: bool,
    /// State of a previous stream to resume on the next connection.
    resume_from: Option<SmState>,
    /// Whether the SM state changed since [`Session::take_sm_changed`].
    sm_changed: bool,
    timers: [Option<Instant>; 4],
    last_timeout_reason: Option<Timer>,
    outputs: VecDeque<Output>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        let reader = StreamReader::new(config.max_element_bytes);
        Self {
            config,
            state: State::Offline,
            link: Link::Down,
            reader,
            tls: None,
            nonce: String::new(),
            features: Features::default(),
            sm: None,
            ack_request_due: false,
            ack_owed: false,
            round_trips: 0,
            next_id: 0,
            ping_id: None,
            rejected_channel_binding: false,
            authenticated_with: "",
            fast_token: None,
            client_active: true,
            resume_from: None,
            sm_changed: false,
            timers: [None; 4],
            last_timeout_reason: None,
            outputs: VecDeque::new(),
        }
    }

    // ---- getters ----

    pub fn is_online(&self) -> bool {
        matches!(self.state, State::Online)
    }

    /// Stream management state, for inspection in tests.
    #[cfg(test)]
    pub fn stream_management(&self) -> Option<&SmState> {
        self.sm.as_ref()
    }

    /// Hands over the stream-management state of an earlier stream (from
    /// the store, possibly written by another process): the next connection
    /// tries to resume it before binding a new session.
    pub fn restore_stream_management(&mut self, state: SmState) {
        if state.can_resume() {
            self.resume_from = Some(state);
        }
    }

    /// Replaces what this (offline) session would resume with the state in
    /// the store, which another process may have moved on or ended.
    pub fn reload_stream_management(&mut self, state: Option<SmState>) {
        if !matches!(self.state, State::Offline) {
            return;
        }
        self.sm = None;
        self.resume_from = state.filter(SmState::can_resume);
    }

    /// The state worth persisting now: the live stream's, or the one
    /// waiting to be resumed. `None` means there is nothing to resume.
    pub fn resumable_state(&self) -> Option<&SmState> {
        self.sm
            .as_ref()
            .filter(|s| s.can_resume())
            .or(self.resume_from.as_ref())
    }

    /// True once after every change of the stream-management state, so the
    /// caller knows when to persist [`Session::resumable_state`].
    pub fn take_sm_changed(&mut self) -> bool {
        std::mem::take(&mut self.sm_changed)
    }

    /// Hands over a FAST token (from the store) to authenticate with.
    pub fn set_fast_token(&mut self, token: Option<fast::FastToken>) {
        self.fast_token = token;
    }

    /// The FAST token held now, with its use count (persist it after use).
    pub fn fast_token(&self) -> Option<&fast::FastToken> {
        self.fast_token.as_ref()
    }

    /// Which timer caused the last [`Input::Timeout`] to act.
    #[cfg(test)]
    pub fn last_timeout_reason(&self) -> Option<Timer> {
        self.last_timeout_reason
    }

    // ---- inputs ----

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Connected { tls, nonce } => {
                self.nonce = nonce;
                self.tls = tls;
                self.round_trips = 0;
                self.rejected_channel_binding = false;
                if let Some(mut sm) = self.sm.take().filter(SmState::can_resume) {
                    // What the old stream did not get handled, the server
                    // sends again after resuming.
                    sm.inbound_unhandled = 0;
                    self.resume_from = Some(sm);
                }
                self.ack_owed = false;
                self.timers = [None; 4];
                self.set_timer(Timer::Negotiation, now + self.config.negotiation_timeout);
                let stage = if self.tls.is_some() {
                    Stage::Secured
                } else {
                    Stage::Initial
                };
                self.link = Link::Open;
                self.state = self.open_stream(stage);
            }
            Input::TlsEstablished(info) => {
                if matches!(self.state, State::AwaitTls) {
                    self.tls = Some(info);
                    self.state = self.open_stream(Stage::Secured);
                }
            }
            Input::Received(bytes) => self.receive(now, bytes),
            Input::Timeout => self.handle_timeout(now),
            Input::Disconnected => match self.state {
                State::Closing => self.finish(None),
                _ => self.finish(Some(SessionError::ConnectionLost)),
            },
        }
    }

    // ---- commands ----

    /// Queues a stanza; counted and kept until acked when XEP-0198 is on.
    pub fn send_stanza(&mut self, _now: Instant, stanza: &Element) -> Result<(), CommandError> {
        if !self.is_online() {
            return Err(CommandError::NotOnline);
        }
        let bytes = xml::to_bytes(stanza);
        if let Some(sm) = &mut self.sm {
            sm.record_sent(String::from_utf8_lossy(&bytes).into_owned());
            self.ack_request_due = true;
            self.sm_changed = true;
        }
        self.outputs.push_back(Output::Transmit(bytes));
        Ok(())
    }

    /// XEP-0352: tells the server whether the user is looking (active) or
    /// the app is in the background (inactive), so it can hold back
    /// unimportant traffic. Remembered while offline and applied on every
    /// connection (inline with Bind2 when possible). Does nothing on the
    /// wire if the server lacks CSI.
    pub fn set_client_state(&mut self, _now: Instant, active: bool) {
        let changed = self.client_active != active;
        self.client_active = active;
        if changed && self.is_online() && self.features.client_state_indication {
            let name = if active { "active" } else { "inactive" };
            self.transmit(format!("<{name} xmlns='{NS_CSI}'/>"));
        }
    }

    /// The client has handled (stored, answered) every stanza received so
    /// far: XEP-0198's `h` may now cover them, and an `<a/>` the server
    /// asked for meanwhile goes out.
    /// Only on a live stream: once it dropped, what was not marked is for
    /// the server to send again.
    pub fn mark_handled(&mut self) {
        if !matches!(self.state, State::Online) {
            return;
        }
        let Some(sm) = &mut self.sm else { return };
        if sm.mark_handled() {
            self.sm_changed = true;
        }
        if std::mem::take(&mut self.ack_owed) {
            let ack = format!("<a xmlns='{NS_SM}' h='{}'/>", sm.inbound_handled);
            self.transmit(ack);
        }
    }

    /// Starts a clean close: acknowledges what we handled, closes our side
    /// of the stream and waits (bounded) for the server's.
    pub fn close(&mut self, now: Instant) {
        if self.link != Link::Open {
            return;
        }
        if let (State::Online, Some(sm)) = (&self.state, &self.sm) {
            let ack = format!("<a xmlns='{NS_SM}' h='{}'/>", sm.inbound_handled);
            self.transmit(ack);
        }
        self.close_our_stream();
        self.state = State::Closing;
        self.timers = [None; 4];
        self.set_timer(Timer::Close, now + self.config.ping_timeout);
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        if self.ack_request_due {
            self.ack_request_due = false;
            return Output::Transmit(format!("<r xmlns='{NS_SM}'/>").into_bytes());
        }
        Output::Wait(self.timers.iter().flatten().min().copied())
    }

    // ---- internals ----

    fn set_timer(&mut self, timer: Timer, at: Instant) {
        self.timers[timer as usize] = Some(at);
    }

    fn stop_timer(&mut self, timer: Timer) {
        self.timers[timer as usize] = None;
    }

    fn transmit(&mut self, text: String) {
        self.outputs.push_back(Output::Transmit(text.into_bytes()));
    }

    fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("wx{}", self.next_id)
    }

    /// Sends a stream header; the server answers with its features.
    fn open_stream(&mut self, stage: Stage) -> State {
        self.reader = StreamReader::new(self.config.max_element_bytes);
        let domain = xml::escape(self.config.jid.domain().as_str());
        // RFC 6120 §4.7.1: announce who we are only once the stream is
        // encrypted.
        let from = match stage {
            Stage::Initial => String::new(),
            _ => format!(" from='{}'", xml::escape(self.config.jid.as_str())),
        };
        self.transmit(format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
             to='{domain}'{from} version='1.0' xml:lang='en'>"
        ));
        self.round_trips += 1;
        State::AwaitFeatures(stage)
    }

    /// Ends the connection and reports it, once per connection.
    fn finish(&mut self, error: Option<SessionError>) {
        if self.link == Link::Down {
            return;
        }
        self.link = Link::Down;
        if let Some(err) = &error {
            tracing::info!(error = %err, "session ended");
        }
        if error.is_none() {
            // A clean close ends the server's session: nothing to resume.
            if self.sm.take().is_some() | self.resume_from.take().is_some() {
                self.sm_changed = true;
            }
        }
        self.state = State::Offline;
        self.timers = [None; 4];
        self.ack_request_due = false;
        self.ping_id = None;
        self.outputs.push_back(Output::CloseSocket);
        self.outputs
            .push_back(Output::Event(SessionEvent::Disconnected { error }));
    }

    /// Sends our `</stream:stream>` unless it went out already.
    fn close_our_stream(&mut self) {
        if self.link == Link::Open {
            self.transmit("</stream:stream>".to_owned());
            self.link = Link::Closed;
        }
    }

    /// Ends the stream because of what the server did.
    fn fail(&mut self, error: SessionError) {
        if self.link != Link::Open {
            // Our side is closed already: no stream error can follow.
            return self.finish(Some(error));
        }
        if let SessionError::StreamManagement(_) = error {
            self.transmit(
                "<stream:error><handled-count-too-high xmlns='urn:xmpp:sm:3'/>\
                 <undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                    .to_owned(),
            );
        } else if let SessionError::Xml(_) = error {
            self.transmit(
                "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>".to_owned(),
            );
        }
        self.close_our_stream();
        self.finish(Some(error));
    }

    fn handle_timeout(&mut self, now: Instant) {
        for timer in TIMERS {
            let Some(at) = self.timers[timer as usize] else {
                continue;
            };
            if at > now {
                continue;
            }
            self.stop_timer(timer);
            self.last_timeout_reason = Some(timer);
            match timer {
                Timer::Negotiation => {
                    if let State::Resuming { .. } = self.state {
                        // A server that never answers the resume: start
                        // fresh next time rather than wait again.
                        tracing::info!("resumption timed out; the next connection starts fresh");
                        self.sm = None;
                        self.resume_from = None;
                        self.sm_changed = true;
                    }
                    return self.fail(SessionError::Timeout(TimeoutKind::Negotiation));
                }
                Timer::PingAnswer => return self.fail(SessionError::Timeout(TimeoutKind::Ping)),
                Timer::Close => return self.finish(None),
                Timer::KeepAlive => self.send_ping(now),
            }
        }
    }

    fn send_ping(&mut self, now: Instant) {
        if !self.is_online() {
            return;
        }
        if self.sm.is_some() {
            // An ack request is the cheapest liveness probe when SM is on.
            self.ack_request_due = true;
        } else {
            let id = self.next_id();
            self.transmit(format!(
                "<iq type='get' id='{id}'><ping xmlns='{NS_PING}'/></iq>"
            ));
            self.ping_id = Some(id);
        }
        self.set_timer(Timer::PingAnswer, now + self.config.ping_timeout);
    }

    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        if self.link == Link::Down {
            return;
        }
        if self.is_online() {
            // Any traffic proves the connection alive.
            self.stop_timer(Timer::PingAnswer);
            self.set_timer(Timer::KeepAlive, now + self.config.ping_interval);
        }
        let items = match self.reader.feed(bytes) {
            Ok(items) => items,
            Err(err) => return self.fail(err.into()),
        };
        for item in items {
            if self.link == Link::Down {
                return;
            }
            match item {
                StreamItem::Header => {}
                StreamItem::End => {
                    if matches!(self.state, State::Closing) {
                        return self.finish(None);
                    }
                    self.close_our_stream();
                    return self.finish(Some(SessionError::ConnectionLost));
                }
                StreamItem::Element(element) => self.handle_element(now, element),
            }
        }
    }

    /// Hands the current state to the handler for its element; the handler
    /// returns the next state, or an error that ends the stream.
    fn handle_element(&mut self, now: Instant, element: Element) {
        if element.is("error", NS_STREAM) {
            let condition = error_condition(&element);
            return self.fail(SessionError::StreamError { condition });
        }
        let state = std::mem::replace(&mut self.state, State::Offline);
        match self.step(now, state, element) {
            Ok(next) => self.state = next,
            Err(err) => self.fail(err),
        }
    }

    fn step(
        &mut self,
        now: Instant,
        state: State,
        element: Element,
    ) -> Result<State, SessionError> {
        match state {
            // Not reached: nothing is read without a connection.
            State::Offline => Ok(State::Offline),
            State::AwaitFeatures(stage) => self.on_features(stage, element),
            State::AwaitProceed => self.on_proceed(element),
            State::AwaitTls => Err(unexpected("the TLS handshake", &element)),
            State::Authenticating {
                client,
                mechanism,
                offered,
            } => self.on_sasl(client, mechanism, offered, element),
            State::Binding {
                bind_id,
                bound,
                sm_pending,
            } => self.on_binding(now, bind_id, bound, sm_pending, element),
            State::Resuming { previous } => self.on_resuming(now, previous, element),
            State::Sasl2(attempt) => self.on_sasl2(*attempt, element),
            State::AwaitPostAuthFeatures { online, early } => {
                self.on_post_auth_features(now, online, early, element)
            }
            State::Online => {
                self.on_online_element(element)?;
                Ok(State::Online)
            }
            State::Closing => {
                // Stanzas still arriving while we close are delivered.
                if element.has_ns(NS_CLIENT) {
                    self.outputs
                        .push_back(Output::Event(SessionEvent::Stanza(element)));
                }
                Ok(State::Closing)
            }
        }
    }

    fn on_features(&mut self, stage: Stage, element: Element) -> Result<State, SessionError> {
        if !element.is("features", NS_STREAM) {
            return Err(unexpected("<stream:features/>", &element));
        }
        let features = Features::parse(&element);
        match stage {
            Stage::Initial => {
                if !features.starttls {
                    return Err(SessionError::TlsUnavailable);
                }
                self.transmit(format!("<starttls xmlns='{NS_TLS}'/>"));
                self.round_trips += 1;
                Ok(State::AwaitProceed)
            }
            Stage::Secured => {
                self.features = features;
                if self.config.sasl2 && self.features.sasl2.is_some() {
                    self.start_sasl2(&[])
                } else {
                    self.start_auth(&[])
                }
            }
            Stage::Authenticated => {
                self.features.bind = features.bind;
                self.features.stream_management = features.stream_management;
                self.features.roster_versioning |= features.roster_versioning;
                self.features.client_state_indication = features.client_state_indication;
                if !features.bind {
                    return Err(SessionError::BindFailed {
                        condition: "not-offered".to_owned(),
                    });
                }
                let use_sm = self.config.stream_management && features.stream_management;
                if let Some(previous) = self.resume_from.take() {
                    if use_sm {
                        // XEP-0198 §5: resume instead of binding anew.
                        self.transmit(format!(
                            "<resume xmlns='{NS_SM}' h='{}' previd='{}'/>",
                            previous.inbound_handled,
                            xml::escape(previous.resume_id.as_deref().unwrap_or_default())
                        ));
                        self.round_trips += 1;
                        return Ok(State::Resuming { previous });
                    }
                    self.sm_changed = true;
                }
                Ok(self.start_bind())
            }
        }
    }

    fn on_proceed(&mut self, element: Element) -> Result<State, SessionError> {
        if !element.is("proceed", NS_TLS) {
            return Err(SessionError::TlsRefused);
        }
        self.outputs.push_back(Output::StartTls);
        Ok(State::AwaitTls)
    }

    fn start_bind(&mut self) -> State {
        let bind_id = self.next_id();
        self.transmit(format!(
            "<iq type='set' id='{bind_id}'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            xml::escape(&self.config.resource)
        ));
        // Pipelined with the bind request: servers handle them in order,
        // which saves a round trip (XEP-0198 §3 only needs enable to come
        // after bind).
        let sm_pending = self.config.stream_management && self.features.stream_management;
        if sm_pending {
            self.transmit(format!("<enable xmlns='{NS_SM}' resume='true'/>"));
        }
        self.round_trips += 1;
        State::Binding {
            bind_id,
            bound: None,
            sm_pending,
        }
    }

    fn on_resuming(
        &mut self,
        now: Instant,
        previous: SmState,
        element: Element,
    ) -> Result<State, SessionError> {
        let h = element.attr("h").and_then(|h| h.parse::<u32>().ok());
        if element.is("resumed", NS_SM) {
            let (jid, resent_ids) = self.accept_resumption(previous, h)?;
            self.apply_client_state(true);
            Ok(self.go_online(now, jid, true, resent_ids, false))
        } else if element.is("failed", NS_SM) {
            self.refuse_resumption(previous, h);
            Ok(self.start_bind())
        } else {
            Err(unexpected("<resumed/> or <failed/>", &element))
        }
    }

    /// The server resumed `previous` and says it handled `h` of our
    /// stanzas: whatever it did not get goes out again, in order, and stays
    /// queued until acknowledged (XEP-0198 §5). Returns the stream's JID
    /// and the ids of the re-sent stanzas.
    fn accept_resumption(
        &mut self,
        mut previous: SmState,
        h: Option<u32>,
    ) -> Result<(FullJid, Vec<String>), SessionError> {
        let Some(h) = h else {
            return Err(SessionError::UnexpectedElement {
                expected: "<resumed h='…'/>",
                got: "resumed".to_owned(),
            });
        };
        let acked = previous.remote_acked(h)?;
        self.emit_acked(&acked);
        let jid = previous
            .bound_jid
            .as_deref()
            .and_then(|j| FullJid::from_str(j).ok())
            .ok_or_else(|| SessionError::BindFailed {
                condition: "no-previous-jid".to_owned(),
            })?;
        let mut resent_ids = Vec::new();
        for stanza in &previous.unacked {
            self.outputs
                .push_back(Output::Transmit(stanza.clone().into_bytes()));
            if let Some(id) = Element::from_str(stanza)
                .ok()
                .and_then(|e| e.attr("id").map(str::to_owned))
            {
                resent_ids.push(id);
            }
        }
        self.ack_request_due = !previous.unacked.is_empty();
        self.sm = Some(previous);
        self.sm_changed = true;
        Ok((jid, resent_ids))
    }

    /// The server could not resume `previous`; `h` (XEP-0198 §5, on
    /// `<failed/>`) still tells which of its stanzas the old stream got.
    fn refuse_resumption(&mut self, mut previous: SmState, h: Option<u32>) {
        if let Some(h) = h {
            if let Ok(acked) = previous.remote_acked(h) {
                self.emit_acked(&acked);
            }
        }
        tracing::info!("resumption refused; binding a new session");
        self.sm_changed = true;
    }

    fn emit_acked(&mut self, acked: &[String]) {
        if acked.is_empty() {
            return;
        }
        self.sm_changed = true;
        let elements = acked
            .iter()
            .filter_map(|s| Element::from_str(s).ok())
            .collect();
        self.outputs
            .push_back(Output::Event(SessionEvent::Acked(elements)));
    }

    /// Reports the session online and starts the keepalive; returns
    /// [`State::Online`].
    fn go_online(
        &mut self,
        now: Instant,
        jid: FullJid,
        resumed: bool,
        resent_ids: Vec<String>,
        carbons_enabled: bool,
    ) -> State {
        if let Some(sm) = &mut self.sm {
            sm.bound_jid = Some(jid.to_string());
            self.sm_changed = true;
        }
        self.stop_timer(Timer::Negotiation);
        self.set_timer(Timer::KeepAlive, now + self.config.ping_interval);
        self.outputs.push_back(Output::Event(SessionEvent::Online {
            jid,
            stream_management: self.sm.is_some(),
            roster_versioning: self.features.roster_versioning,
            round_trips: self.round_trips,
            mechanism: self.authenticated_with,
            carbons_enabled,
            resumed,
            resent_ids,
        }));
        State::Online
    }

    fn start_auth(&mut self, exclude: &[Mechanism]) -> Result<State, SessionError> {
        let have_cb = self
            .tls
            .as_ref()
            .is_some_and(|t| t.channel_binding.is_some());
        let offered = self.features.mechanisms.clone();
        let exclude = self.excluded_mechanisms(exclude);
        let mechanism = Mechanism::choose(&offered, have_cb, &exclude)
            .ok_or(SessionError::NoCommonMechanism)?;
        let cb = self.tls.as_ref().and_then(|t| t.channel_binding.clone());
        let username = self
            .config
            .jid
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let (client, initial) = SaslClient::start(
            mechanism,
            &username,
            &self.config.password,
            &self.nonce,
            cb.as_deref(),
        );
        use base64::Engine as _;
        let initial = base64::engine::general_purpose::STANDARD.encode(initial);
        self.transmit(format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{initial}</auth>",
            mechanism.name()
        ));
        self.round_trips += 1;
        Ok(State::Authenticating {
            client,
            mechanism,
            offered,
        })
    }

    fn on_sasl(
        &mut self,
        mut client: SaslClient,
        mechanism: Mechanism,
        offered: Vec<String>,
        element: Element,
    ) -> Result<State, SessionError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |element: &Element| {
            b64.decode(element.text().trim())
                .map_err(|_| sasl::SaslError::MalformedChallenge)
        };
        if element.is("challenge", NS_SASL) {
            let challenge = decode(&element)?;
            match client.respond(&challenge) {
                Ok(reply) => {
                    self.transmit(format!(
                        "<response xmlns='{NS_SASL}'>{}</response>",
                        b64.encode(reply)
                    ));
                    self.round_trips += 1;
                    Ok(State::Authenticating {
                        client,
                        mechanism,
                        offered,
                    })
                }
                Err(err) => {
                    self.transmit(format!("<abort xmlns='{NS_SASL}'/>"));
                    Err(err.into())
                }
            }
        } else if element.is("success", NS_SASL) {
            client.verify_success(&decode(&element)?)?;
            self.authenticated_with = mechanism.name();
            Ok(self.open_stream(Stage::Authenticated))
        } else if element.is("failure", NS_SASL) {
            let condition = error_condition(&element);
            if mechanism.uses_channel_binding()
                && !self.rejected_channel_binding
                && condition != "account-disabled"
            {
                // Some servers advertise -PLUS but reject tls-exporter
                // (ejabberd 23.01): retry once, same hash, without binding.
                tracing::info!(
                    mechanism = mechanism.name(),
                    "channel binding rejected, retrying without"
                );
                self.rejected_channel_binding = true;
                self.features.mechanisms = offered;
                return self.start_auth(&[Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
            }
            Err(SessionError::AuthFailed { condition })
        } else {
            Err(unexpected("a SASL reply", &element))
        }
    }

    fn on_binding(
        &mut self,
        now: Instant,
        bind_id: String,
        mut bound: Option<FullJid>,
        mut sm_pending: bool,
        element: Element,
    ) -> Result<State, SessionError> {
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some(bind_id.as_str()) {
            if element.attr("type") != Some("result") {
                let condition = element
                    .get_child("error", NS_CLIENT)
                    .map(error_condition)
                    .unwrap_or_else(|| "undefined-condition".to_owned());
                return Err(SessionError::BindFailed { condition });
            }
            let jid = element
                .get_child("bind", NS_BIND)
                .and_then(|b| b.get_child("jid", NS_BIND))
                .and_then(|j| FullJid::from_str(j.text().trim()).ok())
                .ok_or_else(|| SessionError::BindFailed {
                    condition: "bad-jid".to_owned(),
                })?;
            bound = Some(jid);
        } else if element.is("enabled", NS_SM) && sm_pending {
            sm_pending = false;
            self.sm = Some(SmState::enabled_by(&element));
        } else if element.is("failed", NS_SM) && sm_pending {
            tracing::info!("server refused stream management; continuing without");
            sm_pending = false;
        } else if element.is("r", NS_SM) || element.is("a", NS_SM) {
            // Nothing to ack before enabled; ignore.
        } else if element.has_ns(NS_CLIENT) && bound.is_some() {
            // A stanza can overtake <enabled/>; deliver it rather than drop.
            self.outputs
                .push_back(Output::Event(SessionEvent::Stanza(element)));
        } else {
            return Err(unexpected("the bind result", &element));
        }
        Ok(match bound {
            Some(jid) if !sm_pending => {
                self.apply_client_state(false);
                self.go_online(now, jid, false, Vec::new(), false)
            }
            bound => State::Binding {
                bind_id,
                bound,
                sm_pending,
            },
        })
    }

    /// A new stream starts active (XEP-0352 §4): tell the server if the
    /// app is in the background. A resumed one keeps the old stream's
    /// state, which may be stale: say it either way.
    fn apply_client_state(&mut self, resumed: bool) {
        if !self.features.client_state_indication {
            return;
        }
        if !self.client_active {
            self.transmit(format!("<inactive xmlns='{NS_CSI}'/>"));
        } else if resumed {
            self.transmit(format!("<active xmlns='{NS_CSI}'/>"));
        }
    }

    /// An element on the live stream (the state stays `Online`).
    fn on_online_element(&mut self, element: Element) -> Result<(), SessionError> {
        if element.is("r", NS_SM) {
            if let Some(sm) = &self.sm {
                if sm.inbound_unhandled == 0 {
                    let ack = format!("<a xmlns='{NS_SM}' h='{}'/>", sm.inbound_handled);
                    self.transmit(ack);
                } else {
                    // Answered by `mark_handled`: `h` must not cover a
                    // stanza the client has not stored yet.
                    self.ack_owed = true;
                }
            }
            return Ok(());
        }
        if element.is("a", NS_SM) {
            let Some(h) = element.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                return Err(unexpected("<a h='…'/>", &element));
            };
            if let Some(sm) = &mut self.sm {
                let acked = sm.remote_acked(h)?;
                self.emit_acked(&acked);
            }
            return Ok(());
        }
        if !element.has_ns(NS_CLIENT) || !matches!(element.name(), "message" | "presence" | "iq") {
            // XEP-0198 counts only stanzas; unknown nonzas are dropped.
            tracing::debug!(name = element.name(), "dropping unknown top-level element");
            return Ok(());
        }
        if let Some(sm) = &mut self.sm {
            sm.record_received();
            self.sm_changed = true;
        }
        if element.name() == "iq" {
            let id = element.attr("id");
            if self.ping_id.is_some() && id == self.ping_id.as_deref() {
                self.ping_id = None;
                return Ok(());
            }
            // Pings from our server are answered here; anyone else's go up
            // to the client, which answers only those allowed to see our
            // presence (XEP-0199 §4.2).
            if element.attr("type") == Some("get")
                && element.has_child("ping", NS_PING)
                && self.sent_by_our_server(&element)
            {
                let reply = ping_reply(&element);
                self.transmit(reply);
                return Ok(());
            }
        }
        self.outputs
            .push_back(Output::Event(SessionEvent::Stanza(element)));
        Ok(())
    }
}

impl Session {
    /// `exclude`, plus PLAIN once a stronger mechanism has worked.
    pub(crate) fn excluded_mechanisms(&self, exclude: &[Mechanism]) -> Vec<Mechanism> {
        let mut excluded = exclude.to_vec();
        if self.config.refuse_plain {
            excluded.push(Mechanism::Plain);
        }
        excluded
    }

    /// No `from`, our domain, or our own bare JID.
    fn sent_by_our_server(&self, element: &Element) -> bool {
        match element.attr("from") {
            None => true,
            Some(from) => {
                from == self.config.jid.domain().as_str() || from == self.config.jid.as_str()
            }
        }
    }
}

fn ping_reply(ping: &Element) -> String {
    let id = xml::escape(ping.attr("id").unwrap_or(""));
    match ping.attr("from") {
        Some(from) => format!("<iq type='result' id='{id}' to='{}'/>", xml::escape(from)),
        None => format!("<iq type='result' id='{id}'/>"),
    }
}

fn unexpected(expected: &'static str, got: &Element) -> SessionError {
    SessionError::UnexpectedElement {
        expected,
        got: got.name().to_owned(),
    }
}

#[cfg(test)]
mod tests;
