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
//!
//! # Layout
//! - this file: the [`Session`] value, its calls, and the dispatch of each
//!   received element to the handler for the current state — a handler
//!   takes the state by value and returns the next one or the
//!   [`SessionError`] that ends the stream (as rustls' `State::handle`);
//! - [`io`]: the types at the boundary ([`Input`], [`Output`],
//!   [`SessionEvent`], [`SessionConfig`]);
//! - `negotiation`: stream features, STARTTLS, SASL and resource binding,
//!   up to `Online`; [`sasl2`] for SASL2 + Bind2 + FAST;
//! - `stream_management`: XEP-0198 acks and resumption on the stream;
//!   [`sm`] holds the counters, the unacked queue and the wire elements;
//! - `online`: the live stream (stanzas up, pings answered and sent);
//! - [`timer`]: the named deadlines.

pub mod error;
pub mod fast;
pub mod io;
mod negotiation;
mod online;
pub mod sasl;
pub mod sasl2;
pub mod sm;
pub mod stream_features;
mod stream_management;
pub mod timer;

use crate::ns::{NS_CLIENT, NS_CSI, NS_STREAM};
use std::collections::VecDeque;
use std::time::Instant;

use jid::FullJid;
use minidom::Element;

pub use error::{CommandError, SessionError, TimeoutKind};
pub use io::{Input, Output, SessionConfig, SessionEvent, TlsInfo};
use sasl::{Mechanism, SaslClient};
pub use sm::SmState;
use stream_features::*;
pub use timer::Timer;
use timer::TimerTable;

use crate::xml::{self, StreamItem, StreamReader};

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
    /// Leaving the stream resumable: waiting (bounded) for the server to
    /// acknowledge what we sent before the socket drops (see
    /// [`Session::suspend`]).
    Suspending,
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

/// How long [`Session::suspend`] waits for the server's acknowledgement.
pub const SUSPEND_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// When the last input or command reached the engine: the clock for
    /// the ack deadline armed when an `<r/>` goes out.
    last_now: Option<Instant>,
    /// The server asked for an `<a/>` while stanzas were still unhandled:
    /// it is sent once the client marks them handled.
    ack_owed: bool,
    round_trips: u32,
    next_id: u64,
    ping_id: Option<String>,
    rejected_channel_binding: bool,
    /// SASL exchanges started on this connection (each gets its own nonce).
    auth_attempts: u32,
    /// Name of the mechanism that authenticated this stream.
    authenticated_with: &'static str,
    /// XEP-0484 token to authenticate with next time.
    fast_token: Option<fast::FastToken>,
    /// The server's post-TLS features as of the last connection: with a
    /// FAST token, `<authenticate/>` goes out right behind the stream
    /// header instead of a round trip later (see `open_stream`).
    known_features: Option<Features>,
    /// A pipelined `<authenticate/>` awaits its answer on this connection.
    pipelined_in_flight: bool,
    /// A pipelined login ended other than by a SASL answer or a lost
    /// connection (a server that does not take it): from now on this
    /// session waits for the features.
    pipelining_failed: bool,
    /// XEP-0352 state the app wants: applied on every (re)connection.
    client_active: bool,
    /// State of a previous stream to resume on the next connection.
    resume_from: Option<SmState>,
    /// Stanzas of a stream the server refused to resume, sent again once
    /// the new session is online (see `refuse_resumption`).
    resend_after_bind: Vec<Element>,
    /// Whether the SM state changed since [`Session::take_sm_changed`].
    sm_changed: bool,
    timers: TimerTable,
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
            last_now: None,
            ack_owed: false,
            round_trips: 0,
            next_id: 0,
            ping_id: None,
            rejected_channel_binding: false,
            auth_attempts: 0,
            authenticated_with: "",
            fast_token: None,
            known_features: None,
            pipelined_in_flight: false,
            pipelining_failed: false,
            client_active: true,
            resume_from: None,
            resend_after_bind: Vec::new(),
            sm_changed: false,
            timers: TimerTable::default(),
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

    /// Hands over the server's post-TLS features from the last connection
    /// (from the store); see [`SessionEvent::ServerFeatures`].
    pub fn remember_features(&mut self, features: Option<Features>) {
        self.known_features = features;
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
        self.last_now = Some(now);
        match input {
            Input::Connected { tls, nonce } => {
                self.nonce = nonce;
                self.auth_attempts = 0;
                self.pipelined_in_flight = false;
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
                self.timers.clear();
                self.timers
                    .set(Timer::Negotiation, now + self.config.negotiation_timeout);
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
    pub fn send_stanza(&mut self, now: Instant, stanza: &Element) -> Result<(), CommandError> {
        self.last_now = Some(now);
        if !self.is_online() {
            return Err(CommandError::NotOnline);
        }
        self.transmit_stanza(stanza);
        Ok(())
    }

    /// Writes a stanza, counted by XEP-0198 when it is on.
    fn transmit_stanza(&mut self, stanza: &Element) {
        let bytes = xml::to_bytes(stanza);
        if let Some(sm) = &mut self.sm {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            sm.record_sent(sm::Unacked::new(stanza, text));
            self.ack_request_due = true;
            self.sm_changed = true;
        }
        self.outputs.push_back(Output::Transmit(bytes));
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
            let ack = sm.ack();
            self.transmit(ack.to_string());
        }
    }

    /// Starts a clean close: acknowledges what we handled, closes our side
    /// of the stream and waits (bounded) for the server's.
    pub fn close(&mut self, now: Instant) {
        if self.link != Link::Open {
            return;
        }
        if let (State::Online, Some(sm)) = (&self.state, &self.sm) {
            let ack = sm.ack();
            self.transmit(ack.to_string());
        }
        self.close_our_stream();
        self.state = State::Closing;
        self.timers.clear();
        self.timers
            .set(Timer::Close, now + self.config.ping_timeout);
    }

    /// Leaves the stream resumable and drops the connection — but first
    /// lets the server read everything we sent: with stanzas still
    /// unacknowledged, an `<r/>` goes out and the socket drops when the
    /// `<a/>` covers them (or after [`SUSPEND_ACK_WAIT`]). Why: Prosody
    /// feeds bytes it had not yet read from a dropped connection into the
    /// session that a new connection resumed, which ends the resumed stream
    /// as not-well-formed (seen when a resume follows a suspend at once, as
    /// a push handler's does). Without stream management, or with nothing
    /// outstanding, the socket drops at once.
    pub fn suspend(&mut self, now: Instant) {
        if self.link != Link::Open {
            return;
        }
        let outstanding = matches!(self.state, State::Online)
            && self.sm.as_ref().is_some_and(|sm| !sm.all_acked());
        if !outstanding {
            return self.handle_input(now, Input::Disconnected);
        }
        self.transmit(sm::R.to_string());
        self.state = State::Suspending;
        self.timers.clear();
        self.timers.set(Timer::Close, now + SUSPEND_ACK_WAIT);
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        if self.ack_request_due {
            self.ack_request_due = false;
            self.arm_ack_answer();
            return Output::Transmit(sm::R.to_string().into_bytes());
        }
        Output::Wait(self.timers.next_deadline())
    }

    // ---- internals ----

    /// An `<r/>` goes out: the server must answer it within the ping
    /// timeout. Other traffic does not count: a server can keep sending
    /// while it no longer handles what we send (Prosody 13.0 after a
    /// resumption whose connection paused for buffered input), and our
    /// messages would sit unacknowledged until the keep-alive, minutes
    /// later. An earlier unanswered request keeps its deadline.
    fn arm_ack_answer(&mut self) {
        if let (Some(now), None) = (self.last_now, self.timers.get(Timer::AckAnswer)) {
            self.timers
                .set(Timer::AckAnswer, now + self.config.ping_timeout);
        }
    }

    fn transmit(&mut self, text: String) {
        self.outputs.push_back(Output::Transmit(text.into_bytes()));
    }

    fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("wx{}", self.next_id)
    }

    /// Ends the connection and reports it, once per connection.
    fn finish(&mut self, error: Option<SessionError>) {
        if self.link == Link::Down {
            return;
        }
        self.link = Link::Down;
        if std::mem::take(&mut self.pipelined_in_flight)
            && !matches!(error, None | Some(SessionError::ConnectionLost))
        {
            tracing::info!("this server did not take a pipelined login; waiting for features");
            self.pipelining_failed = true;
        }
        if let Some(err) = &error {
            tracing::info!(error = %err, "session ended");
            // Cut off while resuming: the server still holds the session
            // (XEP-0198 §5, until its timeout), so the next connection
            // tries again instead of starting fresh.
            let interrupted = match std::mem::replace(&mut self.state, State::Offline) {
                State::Resuming { previous } => Some(previous),
                State::Sasl2(attempt) => attempt.into_resuming(),
                _ => None,
            };
            if let Some(previous) = interrupted {
                if self.resume_from.is_none() && self.sm.is_none() {
                    self.resume_from = Some(previous);
                    self.sm_changed = true;
                }
            }
        }
        if error.is_none() {
            // A clean close ends the server's session: nothing to resume.
            if self.sm.take().is_some() | self.resume_from.take().is_some() {
                self.sm_changed = true;
            }
        }
        self.state = State::Offline;
        self.timers.clear();
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
        for timer in Timer::ALL {
            if !self.timers.expire(timer, now) {
                continue;
            }
            self.last_timeout_reason = Some(timer);
            match timer {
                Timer::Negotiation => {
                    if let State::Resuming { .. } = self.state {
                        // A server that never answers the resume: start
                        // fresh next time rather than wait again.
                        tracing::info!("resumption timed out; the next connection starts fresh");
                        self.state = State::Closing;
                        self.sm = None;
                        self.resume_from = None;
                        self.sm_changed = true;
                    }
                    return self.fail(SessionError::Timeout(TimeoutKind::Negotiation));
                }
                Timer::PingAnswer | Timer::AckAnswer => {
                    return self.fail(SessionError::Timeout(TimeoutKind::Ping))
                }
                Timer::Close if matches!(self.state, State::Suspending) => {
                    // The server did not confirm in time: drop anyway.
                    return self.finish(Some(SessionError::ConnectionLost));
                }
                Timer::Close => return self.finish(None),
                Timer::KeepAlive => self.send_ping(now),
            }
        }
    }

    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        if self.link == Link::Down {
            return;
        }
        if self.is_online() {
            // Any traffic proves the connection alive.
            self.timers.stop(Timer::PingAnswer);
            self.timers
                .set(Timer::KeepAlive, now + self.config.ping_interval);
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
            State::Suspending => {
                self.on_online_element(element)?;
                if self.sm.as_ref().is_none_or(SmState::all_acked) {
                    // Everything we sent has been read: drop the socket,
                    // keeping the stream resumable.
                    self.finish(Some(SessionError::ConnectionLost));
                    return Ok(State::Offline);
                }
                Ok(State::Suspending)
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
}

impl Session {
    /// `exclude`, plus PLAIN once a stronger mechanism has worked.
    pub(crate) fn excluded_mechanisms(&self, exclude: &[Mechanism]) -> Vec<Mechanism> {
        let mut excluded = exclude.to_vec();
        if self.config.refuse_plain {
            excluded.push(Mechanism::Plain);
        }
        if self.config.server_rejects_binding && !self.config.channel_binding_pinned {
            // Remembered from an earlier login: this server advertises
            // -PLUS but rejects our binding; do not fail first every time.
            excluded.extend([Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
        }
        excluded
    }

    /// The SCRAM client nonce for the next exchange: the connection's
    /// random nonce (from the driver), made distinct per attempt so that a
    /// retry on the same connection never repeats one (RFC 5802 §5.1).
    pub(crate) fn next_nonce(&mut self) -> String {
        self.auth_attempts += 1;
        match self.auth_attempts {
            1 => self.nonce.clone(),
            n => format!("{}{n}", self.nonce),
        }
    }

    /// Starts a password exchange with `mechanism` (chosen from `offered`):
    /// our username, a fresh nonce, and the connection's binding data.
    pub(crate) fn start_password_sasl(
        &mut self,
        mechanism: sasl::Mechanism,
        offered: &[String],
    ) -> (sasl::SaslClient, Vec<u8>) {
        let cb = self.channel_binding();
        let username = self.username();
        let nonce = self.next_nonce();
        let (mut client, initial) = sasl::SaslClient::start(
            mechanism,
            &username,
            &self.config.password,
            &nonce,
            cb.as_deref(),
            offers_plus(offered),
        );
        client.check_advertised(offered, self.features.channel_bindings.as_deref());
        (client, initial)
    }

    /// Our tls-exporter binding (RFC 9266), unless the server listed its
    /// binding types (XEP-0440) without it: then a -PLUS login with it
    /// would only fail, so we log in unbound with gs2 "n" and the server's
    /// XEP-0474 hash, if it sends one, shows whether that list was genuine
    /// (XEP-0474 §6, rule 6).
    pub(crate) fn channel_binding(&self) -> Option<Vec<u8>> {
        self.channel_binding_with(&self.features)
    }

    /// [`Session::channel_binding`] as `features` would allow it.
    pub(crate) fn channel_binding_with(&self, features: &Features) -> Option<Vec<u8>> {
        let offered_types = features.channel_bindings.as_deref();
        if offered_types.is_some_and(|types| !types.iter().any(|t| t == "tls-exporter")) {
            return None;
        }
        self.tls.as_ref().and_then(|t| t.channel_binding.clone())
    }

    /// The SASL username: our JID's local part.
    pub(crate) fn username(&self) -> String {
        self.config
            .jid
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default()
    }

    /// A login with `mechanism` failed with `condition`. `Ok(true)`: retry
    /// once without channel binding (a server that advertises -PLUS but
    /// rejects the binding, like ejabberd 23.01: trust on first use, the
    /// client remembers it). When that cannot be a server's quirk — a bound
    /// login worked with this account before, or the server says it
    /// supports tls-exporter (XEP-0440) — there is no unbound retry: a
    /// `not-authorized` is an ordinary failure (a wrong password; Prosody
    /// answers a binding mismatch with `malformed-request`), anything else
    /// is `ChannelBindingRejected`: the TLS connection the server sees may
    /// not be ours.
    pub(crate) fn retry_without_binding(
        &mut self,
        mechanism: Mechanism,
        condition: &str,
    ) -> Result<bool, SessionError> {
        if !mechanism.uses_channel_binding()
            || self.rejected_channel_binding
            || condition == "account-disabled"
            || error::is_transient_auth_failure(condition)
        {
            return Ok(false);
        }
        let advertised = self
            .features
            .channel_bindings
            .as_ref()
            .is_some_and(|types| types.iter().any(|t| t == "tls-exporter"));
        if self.config.channel_binding_pinned || advertised {
            if condition == "not-authorized" {
                return Ok(false);
            }
            return Err(SessionError::ChannelBindingRejected);
        }
        tracing::info!(
            mechanism = mechanism.name(),
            "channel binding rejected, retrying without"
        );
        self.rejected_channel_binding = true;
        Ok(true)
    }
}

/// Whether the server offers a channel-bound SCRAM mechanism.
fn offers_plus(offered: &[String]) -> bool {
    offered.iter().any(|m| m.ends_with("-PLUS"))
}

fn unexpected(expected: &'static str, got: &Element) -> SessionError {
    SessionError::UnexpectedElement {
        expected,
        got: got.name().to_owned(),
    }
}

#[cfg(test)]
mod tests;
