//! The tokio driver: finds the server (SRV or an explicit host:port), opens
//! TCP and TLS, and moves bytes, timers and commands between the socket and
//! the sans-IO [`Session`]. It holds no protocol logic of its own.
//!
//! Call order per turn (modelled on quinn's connection driver): drain
//! [`Session::poll_output`] until `Wait`, write what was produced, then wait
//! for the first of socket data, the deadline, or a command.

pub mod dns;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::proto::{Input, Output, Session, SessionEvent, TlsInfo};

pub use dns::Target;

/// Where and how to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `host:port` that skips SRV lookup.
    pub server: Option<(String, u16)>,
    /// Use direct TLS (XEP-0368) with `server`; SRV results carry their own.
    pub direct_tls: bool,
    /// PEM of an extra CA to trust besides the platform's.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Failures below XMPP: DNS, TCP, TLS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("the server's certificate is not trusted")]
    UntrustedCertificate,
    #[error("the TLS handshake failed")]
    TlsHandshake,
    #[error("TLS could not be set up on this platform")]
    TlsSetup,
    /// Android: the app has not handed the certificate verifier its
    /// `Context` (`WaxwingAndroid.init`).
    #[error("the platform certificate verifier is not initialised")]
    VerifierNotInitialised,
    #[error("the extra CA file holds no usable certificate")]
    BadCaFile,
    #[error("the account's domain is not a valid host name")]
    InvalidDomain,
    #[error("network error: {0:?}")]
    Network(std::io::ErrorKind),
    #[error("no server address could be reached")]
    Unreachable,
}

impl TransportError {
    /// Errors that another attempt cannot fix.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TransportError::UntrustedCertificate
                | TransportError::TlsSetup
                | TransportError::VerifierNotInitialised
                | TransportError::BadCaFile
                | TransportError::InvalidDomain
        )
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 16 * 1024;

/// Any byte stream a connection can run over: a TCP socket, or in tests
/// one end of a `tokio::io::duplex` pipe with a scripted server on the
/// other.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// The byte stream, before or after TLS.
enum Socket {
    Plain(Box<dyn ByteStream>),
    Tls(Box<TlsStream<Box<dyn ByteStream>>>),
    /// Only while the TCP stream is being upgraded, or after a failed one.
    Detached,
}

impl Socket {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Plain(s) => s.read(buf).await,
            Socket::Tls(s) => s.read(buf).await,
            Socket::Detached => Ok(0),
        }
    }

    /// Writes everything, or fails after `limit`: a server that stops
    /// reading must not hang the connection task.
    async fn write_all(&mut self, buf: &[u8], limit: Duration) -> std::io::Result<()> {
        let write = async {
            match self {
                Socket::Plain(s) => write_flush(s, buf).await,
                Socket::Tls(s) => write_flush(s.as_mut(), buf).await,
                Socket::Detached => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        tokio::time::timeout(limit, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Closes our side (TLS close_notify), bounded like a write.
    async fn shutdown(&mut self) {
        let close = async {
            let _ = match self {
                Socket::Plain(s) => s.shutdown().await,
                Socket::Tls(s) => s.shutdown().await,
                Socket::Detached => Ok(()),
            };
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, close).await;
    }
}

async fn write_flush<S: AsyncWrite + Unpin>(s: &mut S, buf: &[u8]) -> std::io::Result<()> {
    s.write_all(buf).await?;
    s.flush().await
}

/// An open connection whose TLS (if direct) is established.
pub struct Connection {
    socket: Socket,
    tls_config: Arc<ClientConfig>,
    domain: String,
    direct_tls_info: Option<TlsInfo>,
    /// Round trips spent below XMPP (TCP, TLS), for the benchmarks.
    pub transport_round_trips: u32,
}

/// Opens TCP (and TLS for direct-TLS targets) to the first reachable target.
pub async fn connect(domain: &str, options: &ConnectOptions) -> Result<Connection, TransportError> {
    let targets = match &options.server {
        Some((host, port)) => vec![Target {
            host: host.clone(),
            port: *port,
            direct_tls: options.direct_tls,
        }],
        None => dns::resolve(domain).await,
    };
    let mut last_error = TransportError::Unreachable;
    for target in targets {
        let tls_config = tls::client_config(options.extra_ca_pem.as_deref(), target.direct_tls)?;
        match connect_target(domain, &target, tls_config).await {
            Ok(conn) => return Ok(conn),
            Err(err) if err.is_permanent() => return Err(err),
            Err(err) => {
                tracing::info!(port = target.port, error = %err, "connection attempt failed");
                last_error = err;
            }
        }
    }
    Err(last_error)
}

async fn connect_target(
    domain: &str,
    target: &Target,
    tls_config: Arc<ClientConfig>,
) -> Result<Connection, TransportError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await?
                .collect();
        happy_eyeballs(addresses, TcpStream::connect).await
    })
    .await
    .map_err(|_| TransportError::Network(std::io::ErrorKind::TimedOut))?
    .map_err(|e| TransportError::Network(e.kind()))?;
    // Stanzas are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let mut conn = Connection::over(Box::new(tcp), tls_config, domain);
    conn.transport_round_trips = 1;
    if target.direct_tls {
        let info = conn.upgrade_tls().await?;
        conn.direct_tls_info = Some(info);
    }
    Ok(conn)
}

/// How long an attempt has before the next address is tried beside it
/// (RFC 8305 §5 recommends 250 ms).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to the first address that answers (RFC 8305, "Happy
/// Eyeballs"): IPv6 and IPv4 addresses interleaved, a new attempt every
/// [`ATTEMPT_DELAY`] or as soon as one fails, the first success wins. An
/// address family whose route swallows packets then costs 250 ms, not the
/// whole connect budget.
async fn happy_eyeballs<S, F, Fut>(addresses: Vec<SocketAddr>, connect: F) -> std::io::Result<S>
where
    S: Send + 'static,
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>> + Send + 'static,
{
    let (v6, v4): (Vec<_>, Vec<_>) = addresses.into_iter().partition(SocketAddr::is_ipv6);
    let mut queue = Vec::with_capacity(v6.len() + v4.len());
    let (mut v6, mut v4) = (v6.into_iter(), v4.into_iter());
    loop {
        match (v6.next(), v4.next()) {
            (None, None) => break,
            (a, b) => queue.extend(a.into_iter().chain(b)),
        }
    }
    let mut queue = queue.into_iter();
    let mut attempts = tokio::task::JoinSet::new();
    let mut last_error = std::io::Error::from(std::io::ErrorKind::NotFound);
    let mut start_next = true;
    loop {
        if start_next {
            if let Some(address) = queue.next() {
                attempts.spawn(connect(address));
            }
        }
        if attempts.is_empty() {
            return Err(last_error);
        }
        let more_to_try = queue.len() > 0;
        tokio::select! {
            done = attempts.join_next() => {
                match done {
                    // The others are aborted when `attempts` drops.
                    Some(Ok(Ok(stream))) => return Ok(stream),
                    Some(Ok(Err(err))) => last_error = err,
                    Some(Err(join)) => last_error = std::io::Error::other(join),
                    None => {}
                }
                start_next = true;
            }
            _ = tokio::time::sleep(ATTEMPT_DELAY), if more_to_try => start_next = true,
        }
    }
}

impl Connection {
    /// A connection over an open byte stream, before TLS (STARTTLS comes
    /// from the session; nothing is ever sent in the clear but the stream
    /// header and `<starttls/>`).
    pub fn over(stream: Box<dyn ByteStream>, tls_config: Arc<ClientConfig>, domain: &str) -> Self {
        Connection {
            socket: Socket::Plain(stream),
            tls_config,
            domain: domain.to_owned(),
            direct_tls_info: None,
            transport_round_trips: 0,
        }
    }

    async fn upgrade_tls(&mut self) -> Result<TlsInfo, TransportError> {
        // Take the socket out to upgrade it by value.
        let Socket::Plain(tcp) = std::mem::replace(&mut self.socket, Socket::Detached) else {
            return Err(TransportError::TlsHandshake);
        };
        let name = tls::server_name(&self.domain)?;
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(self.tls_config.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| TransportError::Network(std::io::ErrorKind::TimedOut))?
        .map_err(|e| tls::classify_handshake_error(&e))?;
        let (_, state) = stream.get_ref();
        // RFC 9266: tls-exporter is defined for TLS 1.3 only.
        let channel_binding = if state.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        {
            state
                .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                .ok()
                .map(|out| out.to_vec())
        } else {
            None
        };
        self.transport_round_trips += 1;
        self.socket = Socket::Tls(Box::new(stream));
        Ok(TlsInfo { channel_binding })
    }
}

/// What the connection should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommand {
    Continue,
    /// Close the stream cleanly (logout).
    Close,
    /// Drop the connection at once, keeping the session resumable (the
    /// platform says the network is gone).
    Drop,
    /// Leave the session resumable once the server has read what we sent
    /// (`Session::suspend`).
    Suspend,
}

/// What the layer above does with session events and its own commands.
pub trait Handler {
    type Command;
    /// How a connection ended, as the layer above sees it.
    type Outcome;
    /// Handles an event; may queue stanzas on `session`.
    fn on_event(&mut self, session: &mut Session, now: std::time::Instant, event: SessionEvent);
    /// Handles a command and says what the connection does next.
    fn on_command(
        &mut self,
        session: &mut Session,
        now: std::time::Instant,
        command: Self::Command,
    ) -> AfterCommand;
    /// Called once the engine's output is drained, before waiting: the
    /// place to commit work batched during the turn, and then to tell the
    /// session the turn's stanzas are handled (`Session::mark_handled`),
    /// which is all this default does.
    fn end_of_turn(&mut self, session: &mut Session, _now: std::time::Instant) {
        session.mark_handled();
    }
    /// When the handler's own timeout (an unanswered request) next falls due.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
    /// Called when [`Handler::deadline`] has passed.
    fn on_deadline(&mut self, _session: &mut Session, _now: std::time::Instant) {}
    /// The connection ended: what it came to. `commands_open` is false
    /// when the command sender was dropped; `failure` is set when the
    /// transport failed before the session could tell (a failed STARTTLS
    /// upgrade: the handler saw no `Disconnected`).
    fn outcome(&mut self, commands_open: bool, failure: Option<TransportError>) -> Self::Outcome;
}

/// Runs one connection until the session reports `Disconnected` (which the
/// handler has seen), and returns what the handler makes of the end.
pub async fn drive<H: Handler>(
    mut conn: Connection,
    session: &mut Session,
    nonce: String,
    handler: &mut H,
    commands: &mut mpsc::UnboundedReceiver<H::Command>,
) -> H::Outcome {
    let tls = conn.direct_tls_info.take();
    session.handle_input(std::time::Instant::now(), Input::Connected { tls, nonce });
    let mut buf = vec![0u8; READ_BUFFER];
    let mut out = Vec::with_capacity(READ_BUFFER);
    let mut commands_open = true;
    loop {
        let deadline;
        let mut finished = false;
        let mut turn_ended = false;
        loop {
            match session.poll_output() {
                Output::Transmit(bytes) => out.extend_from_slice(&bytes),
                Output::StartTls => {
                    if flush(&mut conn.socket, &mut out).await.is_err() {
                        session.handle_input(std::time::Instant::now(), Input::Disconnected);
                        continue;
                    }
                    match conn.upgrade_tls().await {
                        Ok(info) => session
                            .handle_input(std::time::Instant::now(), Input::TlsEstablished(info)),
                        Err(err) => return handler.outcome(commands_open, Some(err)),
                    }
                }
                Output::Event(event) => {
                    let is_end = matches!(event, SessionEvent::Disconnected { .. });
                    handler.on_event(session, std::time::Instant::now(), event);
                    finished |= is_end;
                }
                Output::CloseSocket => {
                    let _ = flush(&mut conn.socket, &mut out).await;
                    conn.socket.shutdown().await;
                }
                Output::Wait(at) => {
                    if !turn_ended && !finished {
                        turn_ended = true;
                        handler.end_of_turn(session, std::time::Instant::now());
                        continue;
                    }
                    deadline = at;
                    break;
                }
            }
        }
        if finished {
            return handler.outcome(commands_open, None);
        }
        if flush(&mut conn.socket, &mut out).await.is_err() {
            session.handle_input(std::time::Instant::now(), Input::Disconnected);
            continue;
        }
        let next = match (deadline, handler.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep_until = next.map(Instant::from_std);
        tokio::select! {
            read = conn.socket.read(&mut buf) => {
                let now = std::time::Instant::now();
                match read {
                    Ok(0) | Err(_) => session.handle_input(now, Input::Disconnected),
                    Ok(n) => session.handle_input(now, Input::Received(&buf[..n])),
                }
            }
            _ = sleep_or_forever(sleep_until) => {
                let now = std::time::Instant::now();
                session.handle_input(now, Input::Timeout);
                if handler.deadline().is_some_and(|at| at <= now) {
                    handler.on_deadline(session, now);
                }
            }
            command = commands.recv(), if commands_open => {
                let now = std::time::Instant::now();
                match command {
                    Some(command) => {
                        match handler.on_command(session, now, command) {
                            AfterCommand::Continue => {}
                            AfterCommand::Close => session.close(now),
                            AfterCommand::Drop => session.handle_input(now, Input::Disconnected),
                            AfterCommand::Suspend => session.suspend(now),
                        }
                    }
                    None => {
                        // The app let go of the client without logging out:
                        // like a killed process, drop the socket and keep
                        // the session resumable for the next one.
                        commands_open = false;
                        session.handle_input(now, Input::Disconnected);
                    }
                }
            }
        }
    }
}

/// How long one write (or the close) may take before the connection counts
/// as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

async fn flush(socket: &mut Socket, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let result = socket.write_all(out, WRITE_TIMEOUT).await;
    out.clear();
    result
}

async fn sleep_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, defect 18: an address whose route swallows packets costs
    /// one attempt delay, not the connect budget; families interleave.
    #[tokio::test(start_paused = true)]
    async fn a_blackholed_address_does_not_eat_the_connect_budget() {
        let v6: SocketAddr = "[2001:db8::1]:5222".parse().unwrap();
        let v4: SocketAddr = "192.0.2.1:5222".parse().unwrap();
        let tried = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = tried.clone();
        let started = tokio::time::Instant::now();
        let connected = happy_eyeballs(
            vec![v6, "[2001:db8::2]:5222".parse().unwrap(), v4],
            move |a| {
                log.lock().unwrap().push(a);
                async move {
                    if a.is_ipv6() {
                        // Blackholed: never answers.
                        std::future::pending::<()>().await;
                    }
                    Ok(a)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(connected, v4);
        assert_eq!(started.elapsed(), ATTEMPT_DELAY, "one delay, then IPv4");
        assert_eq!(tried.lock().unwrap()[..2], [v6, v4], "families interleaved");
        // Every address failing fast gives the last error, at once.
        let refused = happy_eyeballs(vec![v6, v4], |_| async {
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        })
        .await;
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }

    /// Issue 12, defect 11: a server that stops reading fills the socket
    /// buffers; the write then fails after its limit instead of hanging the
    /// connection task forever.
    #[tokio::test]
    async fn a_peer_that_stops_reading_fails_the_write_instead_of_hanging() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_silent_peer, _) = listener.accept().await.unwrap();
        let mut socket = Socket::Plain(Box::new(client));
        let big = vec![b'x'; 64 << 20];
        let written = tokio::time::timeout(
            Duration::from_secs(20),
            socket.write_all(&big, Duration::from_millis(500)),
        )
        .await
        .expect("the write is bounded");
        assert_eq!(written.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }
}
