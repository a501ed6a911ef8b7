//! The `Client` facade: what apps call. It owns the account's store and one
//! background task that keeps the connection (connect, negotiate, run,
//! reconnect with backoff on network errors, stop on authentication and
//! certificate errors). Every event reaches the [`EventListener`] after the
//! store has been updated.
//!
//! Lifecycle: [`Client::open`] (opens the encrypted store; works offline),
//! [`Client::login`] (starts the task, returns the first attempt's outcome),
//! then commands, and [`Client::logout`]. Messages sent while offline wait in
//! the outbox and go out, once, on the next login.

mod connection;
mod encryption;
mod error;
mod events;
mod lock;
mod omemo;
mod ordering;
mod push;
mod rooms;
pub mod wake;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jid::BareJid;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use connection::account::{usable_fast_token, AccountState, SavedPresence};
use connection::{Command, ConnectionHandler, Outcome};
pub use encryption::OmemoDevice;
pub use error::ClientError;
pub use events::{ClientEvent, ConnectionState, EventListener};

use crate::features::presence::{
    self, Availability, PresenceBook, ResourcePresence, SubscriptionAction,
};
use crate::features::roster;
use crate::proto::{Session, SessionConfig};
use crate::store::{
    ConversationSummary, HistoryCursor, RosterEntry, Store, StoreKey, StoredMessage,
};
use crate::transport::{self, ConnectOptions};

/// Everything needed to open an account.
#[derive(Clone)]
pub struct ClientConfig {
    pub jid: String,
    pub password: String,
    /// Resource to ask for on servers without Bind2 (a stable random one
    /// when `None`); with Bind2 (XEP-0386) the server derives it from the
    /// software tag and this installation's id.
    pub resource: Option<String>,
    pub connect: ConnectOptions,
    pub store_dir: PathBuf,
    pub store_key: StoreKey,
    /// First reconnect delay; doubles up to [`MAX_BACKOFF`], with jitter.
    pub initial_backoff: Duration,
    /// Use SASL2 + Bind2 + FAST when the server offers them; `false` forces
    /// the classic RFC 6120 path (to debug a server, or to compare).
    pub sasl2: bool,
}

/// The password leaves memory with the config (the store key wipes itself).
impl Drop for ClientConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// How long [`Client::login`] waits for the first attempt to come online
/// or fail: every step below it is bounded too (connect 10 s, TLS 10 s,
/// negotiation), but a push handler holding the session lock, or a bug,
/// must not leave the app's call hanging.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Ceiling of the reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const IQ_TIMEOUT: Duration = Duration::from_secs(30);

struct Running {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

/// The open store, shared by the `Client` and its connection task.
#[derive(Clone)]
struct StoreHandle(Arc<Mutex<Store>>);

impl StoreHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One account.
pub struct Client {
    config: ClientConfig,
    own: BareJid,
    /// The open store, or `None` while suspended: see [`Client::suspend`].
    store: Arc<Mutex<Option<StoreHandle>>>,
    listener: Arc<dyn EventListener>,
    running: Arc<Mutex<Option<Running>>>,
    state: watch::Sender<ConnectionState>,
    presences: Arc<Mutex<PresenceBook>>,
    /// A session lock taken before login (the wake-up path does), handed to
    /// the connection task instead of waiting for it.
    held_lock: Mutex<Option<lock::SessionLock>>,
    /// The app asked to be connected (login, and no logout or suspend
    /// since), with the runtime to run the connection on: a task that
    /// stopped on a permanent error is started again when the network
    /// changes (a captive portal's certificate is "permanent" only until
    /// the next network).
    wanted: Mutex<Option<tokio::runtime::Handle>>,
    /// Held while a logout or suspension completes (in a task of its own,
    /// see [`Client::stop`]); a login waits for it, so the old connection's
    /// last state change cannot land on top of the new one's.
    stopping: Arc<tokio::sync::Mutex<()>>,
}

impl Client {
    /// Opens the account's store. Fails with a typed store error on a wrong
    /// key or a damaged file, without touching it.
    pub fn open(
        config: ClientConfig,
        listener: Arc<dyn EventListener>,
    ) -> Result<Client, ClientError> {
        let own: BareJid = config.jid.parse().map_err(|_| ClientError::InvalidJid)?;
        if own.node().is_none() {
            return Err(ClientError::InvalidJid);
        }
        let store = Store::open(&config.store_dir, &config.store_key)?;
        let (state, _) = watch::channel(ConnectionState::Disconnected {
            error: None,
            will_retry: false,
        });
        Ok(Client {
            config,
            own,
            store: Arc::new(Mutex::new(Some(StoreHandle(Arc::new(Mutex::new(store)))))),
            listener,
            running: Arc::default(),
            state,
            presences: Arc::default(),
            held_lock: Mutex::new(None),
            wanted: Mutex::new(None),
            stopping: Arc::default(),
        })
    }

    pub fn own_jid(&self) -> String {
        self.own.to_string()
    }

    /// The store, opened again if [`Client::suspend`] closed it.
    fn store(&self) -> Result<StoreHandle, ClientError> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = slot.as_ref() {
            return Ok(handle.clone());
        }
        let store = Store::open(&self.config.store_dir, &self.config.store_key)?;
        let handle = StoreHandle(Arc::new(Mutex::new(store)));
        *slot = Some(handle.clone());
        tracing::debug!("store reopened");
        Ok(handle)
    }

    /// Whether the store's database is open (it is closed while suspended).
    pub fn store_is_open(&self) -> bool {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn commands(&self) -> Option<mpsc::UnboundedSender<Command>> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .as_ref()
            .filter(|r| !r.task.is_finished())
            .map(|r| r.commands.clone())
    }

    pub fn connection_state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Connects and keeps the connection up. Returns once the first attempt
    /// is online (`Ok(full JID)`) or has failed; after a network failure the
    /// client keeps retrying in the background, after an authentication or
    /// certificate failure it stops. After [`LOGIN_TIMEOUT`] it returns
    /// [`ClientError::Timeout`] and keeps trying in the background (watch
    /// the connection events; `logout` stops it).
    pub async fn login(&self) -> Result<String, ClientError> {
        tokio::time::timeout(LOGIN_TIMEOUT, self.login_unbounded())
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }

    async fn login_unbounded(&self) -> Result<String, ClientError> {
        drop(self.stopping.lock().await);
        if let ConnectionState::Online { jid, .. } = self.connection_state() {
            return Ok(jid);
        }
        let mut watcher = self.state.subscribe();
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::runtime::Handle::current());
        self.ensure_running(&tokio::runtime::Handle::current())?;
        watcher.mark_unchanged();
        loop {
            if watcher.changed().await.is_err() {
                return Err(ClientError::NotConnected);
            }
            match watcher.borrow_and_update().clone() {
                ConnectionState::Online { jid, .. } => return Ok(jid),
                ConnectionState::Disconnected {
                    error: Some(err), ..
                } => return Err(err),
                ConnectionState::Disconnected { error: None, .. } => {
                    return Err(ClientError::NotConnected)
                }
                ConnectionState::Connecting => {}
            }
        }
    }

    /// Starts the connection task on `runtime` unless one is running
    /// (opening the store if it was closed).
    fn ensure_running(&self, runtime: &tokio::runtime::Handle) -> Result<(), ClientError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.as_ref().is_none_or(|r| r.task.is_finished()) {
            let store = self.store()?.0;
            let (tx, rx) = mpsc::unbounded_channel();
            let held_lock = self
                .held_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let shared = TaskShared {
                config: self.config.clone(),
                own: self.own.clone(),
                store,
                listener: self.listener.clone(),
                state: self.state.clone(),
                presences: self.presences.clone(),
            };
            let task = runtime.spawn(connection_task(shared, held_lock, rx));
            *running = Some(Running { commands: tx, task });
        }
        Ok(())
    }

    /// Closes the stream cleanly and stops reconnecting.
    pub async fn logout(&self) {
        self.stop(Command::Close).await;
    }

    /// Disconnects without ending the session: the server keeps it (XEP-0198
    /// hibernation, and pushes if enabled) and the state stays in the store,
    /// so the next login — in this process, or in a push handler's —
    /// resumes it. Also releases the session lock for that handler and
    /// closes the store's database (opened again by the next call that
    /// needs it). Call it when the app is about to be suspended (iOS
    /// background). Takes up to 2 s when stanzas are unacknowledged: the
    /// server reads them first.
    pub async fn suspend(&self) {
        self.stop(Command::Suspend).await;
    }

    async fn stop(&self, how: Command) {
        let suspending = matches!(how, Command::Suspend);
        let stopping = self.stopping.clone().lock_owned().await;
        // Logged out or suspended: the network coming back is no reason
        // to connect.
        self.wanted.lock().unwrap_or_else(|p| p.into_inner()).take();
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let state = self.state.clone();
        let (store, tasks) = (self.store.clone(), self.running.clone());
        // In a task of its own, so a caller that stops waiting (a cancelled
        // coroutine or Swift Task drops this future) does not cut the close
        // short: the server still gets its goodbye, the session lock is
        // released, a suspension still closes the store, and a login
        // meanwhile waits for `stopping`.
        let closing = tokio::spawn(async move {
            let _stopping = stopping;
            if let Some(running) = running {
                // The sender stays open until the task ends: dropping it
                // would tell the task the client is gone, and it would drop
                // the socket at once instead of waiting for the server's
                // `</stream:stream>` (RFC 6120 §4.4), leaving the server
                // mid-close while the next login starts.
                let _ = running.commands.send(how);
                let mut task = running.task;
                if tokio::time::timeout(Duration::from_secs(10), &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                }
                drop(running.commands);
            }
            state.send_replace(ConnectionState::Disconnected {
                error: None,
                will_retry: false,
            });
            if suspending {
                close_store_if_idle(&store, &tasks);
            }
        });
        let _ = closing.await;
    }

    /// Stores the message in the outbox, then sends it if online. Returns the
    /// stored message (state `Queued` or later).
    pub fn send_message(&self, to: &str, body: &str) -> Result<StoredMessage, ClientError> {
        // A full JID names the contact's conversation too; the message goes
        // to the bare JID, where the server reaches whichever of the
        // contact's devices are online and the archive keeps it (XEP-0296:
        // resources come and go).
        let to: BareJid = to
            .parse::<jid::Jid>()
            .map_err(|_| ClientError::InvalidJid)?
            .to_bare();
        let origin_id = random_id();
        let message = self.store()?.lock().insert_outgoing(
            to.as_str(),
            self.own.as_str(),
            body,
            &origin_id,
            now_ms(),
        )?;
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::SendQueued(message.id));
        }
        Ok(message)
    }

    /// Lifecycle hook: the app came to the foreground (`true`) or went to
    /// the background. Sets XEP-0352 client state (inactive in background)
    /// now and on every reconnect.
    pub fn set_foreground(&self, foreground: bool) {
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::SetForeground(foreground));
        }
    }

    /// Lifecycle hook: the platform reports the network came back (or
    /// changed); a waiting reconnect happens now instead of after its
    /// backoff, and a connection that stopped on an untrusted certificate
    /// is tried again — on a new network it may have been a captive
    /// portal's — unless the app logged out or suspended. (Authentication
    /// errors stay stopped: the same password would fail again.)
    pub fn network_available(&self) {
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::NetworkAvailable);
            return;
        }
        let certificate_failed = matches!(
            self.connection_state(),
            ConnectionState::Disconnected {
                error: Some(ClientError::UntrustedCertificate),
                ..
            }
        );
        let wanted = self
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let (true, Some(runtime)) = (certificate_failed, wanted) {
            tracing::info!("the network changed; connecting again");
            if let Err(err) = self.ensure_running(&runtime) {
                tracing::warn!(%err, "cannot connect again");
            }
        }
    }

    /// Takes OMEMO devices of this account off its published device lists:
    /// old installations that will never come back, or — with
    /// [`Client::own_omemo_device`]'s id — this one, before the app removes
    /// the account from the phone (its bundles go too, and it is not put
    /// back until the next process logs in). Contacts then stop encrypting
    /// to them. Needs a connection.
    pub fn remove_omemo_devices(&self, devices: Vec<u32>) -> Result<(), ClientError> {
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        commands
            .send(Command::RemoveOmemoDevices(devices))
            .map_err(|_| ClientError::NotConnected)
    }

    /// Lifecycle hook: the platform reports the network is gone; the socket
    /// is dropped at once (the session stays resumable) and no reconnect is
    /// tried until [`Client::network_available`].
    pub fn network_lost(&self) {
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::NetworkLost);
        }
    }

    /// Sets and remembers own availability; sent now if online, and on
    /// every login.
    pub fn set_presence(
        &self,
        availability: Availability,
        status: Option<String>,
    ) -> Result<(), ClientError> {
        let saved = encode_presence(availability, status.as_deref());
        self.store()?
            .lock()
            .put(AccountState::PRESENCE, Some(&saved))?;
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::Send(presence::own_presence(
                availability,
                status.as_deref(),
            )));
        }
        Ok(())
    }

    async fn iq(&self, iq: minidom::Element) -> Result<minidom::Element, ClientError> {
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        let (tx, rx) = oneshot::channel();
        commands
            .send(Command::Iq(iq, tx))
            .map_err(|_| ClientError::NotConnected)?;
        match tokio::time::timeout(IQ_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::NotConnected),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Adds a contact or renames it; the roster push updates the store and
    /// emits `RosterChanged`.
    pub async fn add_contact(&self, jid: &str, name: Option<String>) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        self.iq(roster::set_item(&random_id(), &jid, name.as_deref(), &[]))
            .await
            .map(|_| ())
    }

    pub async fn rename_contact(&self, jid: &str, name: String) -> Result<(), ClientError> {
        self.add_contact(jid, Some(name)).await
    }

    pub async fn remove_contact(&self, jid: &str) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        self.iq(roster::remove_item(&random_id(), &jid))
            .await
            .map(|_| ())
    }

    /// Sends a subscription request, approval, denial or cancellation.
    pub fn subscription(&self, jid: &str, action: SubscriptionAction) -> Result<(), ClientError> {
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        commands
            .send(Command::Send(presence::subscription(&jid, action)))
            .map_err(|_| ClientError::NotConnected)
    }

    /// The online resources of a contact, as last announced; empty offline.
    pub fn presence(&self, jid: &str) -> Vec<ResourcePresence> {
        self.presences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of(jid)
    }

    pub fn roster(&self) -> Result<Vec<RosterEntry>, ClientError> {
        Ok(self.store()?.lock().roster()?)
    }

    /// A page of history with `peer`, newest first, older than `before`.
    pub fn history(
        &self,
        peer: &str,
        before: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        let peer: BareJid = peer.parse().map_err(|_| ClientError::InvalidJid)?;
        Ok(self.store()?.lock().history(peer.as_str(), before, limit)?)
    }

    /// Messages the server has not confirmed yet (queued or sent), oldest
    /// first: they go out, once, as soon as there is a connection.
    pub fn outbox(&self) -> Result<Vec<StoredMessage>, ClientError> {
        Ok(self.store()?.lock().outbox()?)
    }

    pub fn conversations(&self) -> Result<Vec<ConversationSummary>, ClientError> {
        Ok(self.store()?.lock().conversations()?)
    }

    pub fn mark_read(&self, peer: &str) -> Result<(), ClientError> {
        Ok(self.store()?.lock().mark_read(peer)?)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(running) = self.running.lock().ok().and_then(|mut r| r.take()) {
            running.task.abort();
        }
    }
}

/// Closes the store's database unless a connection task (started by a
/// login since) uses it. iOS kills a suspended app that holds a lock on a
/// file in a shared (App Group) container — SQLite's WAL locks included —
/// so a suspended client holds none; the next call that needs the store
/// opens it again.
fn close_store_if_idle(store: &Mutex<Option<StoreHandle>>, running: &Mutex<Option<Running>>) {
    let running = running.lock().unwrap_or_else(|p| p.into_inner());
    if running.as_ref().is_none_or(|r| r.task.is_finished()) {
        store.lock().unwrap_or_else(|p| p.into_inner()).take();
        tracing::debug!("store closed while suspended");
    }
}

/// Keeps one account connected until logout or a permanent error.
/// What the connection task shares with the [`Client`].
struct TaskShared {
    config: ClientConfig,
    own: BareJid,
    store: Arc<Mutex<Store>>,
    listener: Arc<dyn EventListener>,
    state: watch::Sender<ConnectionState>,
    presences: Arc<Mutex<PresenceBook>>,
}

async fn connection_task(
    shared: TaskShared,
    held_lock: Option<lock::SessionLock>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let TaskShared {
        config,
        own,
        store,
        listener,
        state,
        presences,
    } = shared;
    // Own the connection before reading its state: a push handler in
    // another process may be using (and updating) it until its deadline.
    let connecting = ConnectionState::Connecting;
    state.send_replace(connecting.clone());
    listener.on_event(ClientEvent::ConnectionChanged(connecting));
    let mut held_session_lock = match held_lock {
        Some(lock) => Some(lock),
        None => take_session_lock(&config.store_dir).await,
    };
    let (resource, client_id, (refuse_plain, binding_pinned, rejects_binding), known_features) = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        // A stable resource per installation: resumption and the server's
        // view of "this device" survive restarts.
        let resource = match (
            &config.resource,
            store.get(AccountState::RESOURCE).ok().flatten(),
        ) {
            (Some(r), _) => r.clone(),
            (None, Some(saved)) => saved,
            (None, None) => {
                let fresh = format!("waxwing-{}", &random_id()[..8]);
                // If lost, the next start picks another: the server sees a
                // new device once, nothing more.
                let _ = store.put(AccountState::RESOURCE, Some(&fresh));
                fresh
            }
        };
        let client_id = match store.get(AccountState::CLIENT_ID).ok().flatten() {
            Some(id) => id,
            None => {
                let fresh = random_id();
                // As above: a lost id only makes Bind2 derive a new resource.
                let _ = store.put(AccountState::CLIENT_ID, Some(&fresh));
                fresh
            }
        };
        let pinned = |field| store.get(field).ok().flatten() == Some(true);
        let pins = (
            pinned(AccountState::NO_PLAIN),
            pinned(AccountState::CHANNEL_BINDING_PINNED),
            pinned(AccountState::SERVER_REJECTS_BINDING),
        );
        let known_features = store.get(AccountState::SERVER_FEATURES).ok().flatten();
        (resource, client_id, pins, known_features)
    };
    let mut handler = ConnectionHandler::new(
        store.clone(),
        listener.clone(),
        own.clone(),
        state.clone(),
        presences,
    );
    let (fast_token, saved_sm) = handler.written.parse();
    let mut session_config = SessionConfig::new(own.clone(), config.password.clone(), resource);
    session_config.client_id = client_id;
    session_config.sasl2 = config.sasl2;
    session_config.refuse_plain = refuse_plain;
    session_config.channel_binding_pinned = binding_pinned;
    session_config.server_rejects_binding = rejects_binding;
    let mut session = Session::new(session_config);
    session.remember_features(known_features);
    session.set_fast_token(usable_fast_token(fast_token, now_ms()));
    if let Some(sm) = saved_sm {
        session.restore_stream_management(sm);
    }
    let mut backoff = config.initial_backoff;
    let mut first_attempt = true;
    let mut network_down = false;
    loop {
        if !std::mem::take(&mut first_attempt) {
            let connecting = ConnectionState::Connecting;
            state.send_replace(connecting.clone());
            listener.on_event(ClientEvent::ConnectionChanged(connecting));
        }
        // A token may expire while the process lives (days in the
        // background between connections).
        let token = session.fast_token().cloned();
        if token.is_some() && usable_fast_token(token, now_ms()).is_none() {
            session.set_fast_token(None);
        }
        if held_session_lock.is_none() {
            held_session_lock = take_session_lock(&config.store_dir).await;
            // While we waited, a push handler may have resumed the session
            // and left it in a new state (and spent the FAST token). What
            // we hold ourselves stays when the store has nothing newer
            // (our own last write may have failed).
            let stored = handler.stored_session();
            let (fast_token, saved_sm) = stored.parse();
            if stored.fast_token != handler.written.fast_token {
                session.set_fast_token(usable_fast_token(fast_token, now_ms()));
            }
            if stored.stream_management != handler.written.stream_management {
                session.reload_stream_management(saved_sm);
            }
            handler.written = stored;
        }
        let mut panicked = false;
        let outcome = match transport::connect(own.domain().as_str(), &config.connect).await {
            Ok(conn) => {
                handler.begin_connection();
                let driven = CatchPanic(Box::pin(transport::drive(
                    conn,
                    &mut session,
                    random_id(),
                    &mut handler,
                    &mut commands,
                )))
                .await;
                driven.unwrap_or_else(|()| {
                    // A bug reached from the stream: the connection is
                    // dropped (nothing of this turn was acknowledged) and
                    // retried, instead of a dead task that still looks
                    // online.
                    tracing::error!("the connection task panicked; reconnecting");
                    panicked = true;
                    Outcome::Failed(ClientError::Protocol(
                        "internal error while handling the stream".into(),
                    ))
                })
            }
            Err(err) => Outcome::Failed(err.into()),
        };
        let (error, stop) = match outcome {
            // Nobody to reconnect for.
            Outcome::ClientDropped => return,
            // The app logged out, or suspended the session (which waits on
            // the server for whoever resumes).
            Outcome::LoggedOut | Outcome::Suspended => (None, true),
            // Reconnect once the platform says the network is back.
            Outcome::NetworkLost => {
                network_down = true;
                (Some(ClientError::Network), false)
            }
            Outcome::Failed(err) => {
                let stop = err.is_permanent();
                (Some(err), stop)
            }
        };
        // Let a push handler use the account while we wait (released
        // before anyone hears of the disconnection).
        drop(held_session_lock.take());
        let was_online = session_was_online(&state);
        let disconnected = ConnectionState::Disconnected {
            error: error.clone(),
            will_retry: !stop,
        };
        listener.on_event(ClientEvent::ConnectionChanged(disconnected.clone()));
        state.send_replace(disconnected);
        if stop {
            return;
        }
        // A stanza that panics us comes back on every resumption: keep
        // backing off rather than reconnecting at once each time.
        if was_online && !panicked {
            backoff = config.initial_backoff;
        }
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        // Without a network there is no point in trying: wait for the
        // platform to say it is back (bounded, in case it never does).
        let delay = if network_down {
            MAX_BACKOFF
        } else {
            backoff.mul_f64(jitter)
        };
        backoff = (backoff * 2).min(MAX_BACKOFF);
        // Wait, but leave at once when the app logs out meanwhile.
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                command = commands.recv() => match command {
                    None | Some(Command::Close) | Some(Command::Suspend) => return,
                    Some(Command::Iq(_, reply)) => { let _ = reply.send(Err(ClientError::NotConnected)); }
                    Some(Command::NetworkAvailable) => {
                        network_down = false;
                        backoff = config.initial_backoff;
                        break;
                    }
                    Some(Command::NetworkLost) => network_down = true,
                    Some(Command::SetForeground(foreground)) => {
                        session.set_client_state(std::time::Instant::now(), foreground)
                    }
                    // Outbox rows are flushed on the next login anyway.
                    Some(_) => {}
                }
            }
        }
    }
}

/// Runs a future, turning a panic inside it into `Err(())`.
struct CatchPanic<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// Waits for the account's session lock (a push handler in another process
/// holds it only until its deadline).
async fn take_session_lock(store_dir: &std::path::Path) -> Option<lock::SessionLock> {
    match lock::SessionLock::acquire(store_dir).await {
        Ok(lock) => Some(lock),
        Err(err) => {
            tracing::warn!(%err, "no session lock; continuing without");
            None
        }
    }
}

fn session_was_online(state: &watch::Sender<ConnectionState>) -> bool {
    matches!(*state.borrow(), ConnectionState::Online { .. })
}

/// 128 random bits, hex: ids for stanzas, origin-ids and SASL nonces.
pub(crate) fn random_id() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; 16]>())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn encode_presence(availability: Availability, status: Option<&str>) -> SavedPresence {
    let code = match availability {
        Availability::Available => "available",
        Availability::Chat => "chat",
        Availability::Away => "away",
        Availability::ExtendedAway => "xa",
        Availability::DoNotDisturb => "dnd",
        Availability::Unavailable => "unavailable",
    };
    SavedPresence {
        availability: code.to_owned(),
        status: status.map(str::to_owned),
    }
}

pub(crate) fn decode_presence(saved: Option<SavedPresence>) -> (Availability, Option<String>) {
    let Some(saved) = saved else {
        return (Availability::Available, None);
    };
    let availability = match saved.availability.as_str() {
        "chat" => Availability::Chat,
        "away" => Availability::Away,
        "xa" => Availability::ExtendedAway,
        "dnd" => Availability::DoNotDisturb,
        "unavailable" => Availability::Unavailable,
        _ => Availability::Available,
    };
    (availability, saved.status)
}

#[cfg(test)]
mod login_tests {
    use super::*;

    struct Silent;
    impl EventListener for Silent {
        fn on_event(&self, _: ClientEvent) {}
    }

    /// Issue 12, defect 14: a login that cannot get going (here another
    /// process holds the session lock and never lets go) returns a typed
    /// timeout instead of hanging the app's call.
    #[tokio::test(start_paused = true)]
    async fn a_login_that_cannot_start_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig {
            jid: "alice@localhost".into(),
            password: "pw".into(),
            resource: None,
            connect: ConnectOptions {
                server: Some(("127.0.0.1".into(), 9)),
                direct_tls: true,
                extra_ca_pem: None,
            },
            store_dir: dir.path().into(),
            store_key: StoreKey::from_bytes([3; 32]),
            initial_backoff: Duration::from_secs(1),
            sasl2: true,
        };
        let client = Client::open(config, Arc::new(Silent)).unwrap();
        let _other_process = lock::SessionLock::try_acquire(dir.path()).unwrap().unwrap();
        let started = tokio::time::Instant::now();
        assert!(matches!(client.login().await, Err(ClientError::Timeout)));
        assert_eq!(started.elapsed().as_secs(), LOGIN_TIMEOUT.as_secs());
        assert_eq!(client.connection_state(), ConnectionState::Connecting);
        client.logout().await;
    }
}

#[cfg(test)]
mod catch_panic_tests {
    use super::CatchPanic;

    #[tokio::test]
    async fn a_panic_inside_becomes_an_error_and_a_value_passes_through() {
        assert_eq!(CatchPanic(Box::pin(async { 7 })).await, Ok(7));
        let panicking = async {
            tokio::task::yield_now().await;
            let stamp = std::hint::black_box("12€");
            stamp[..3].len()
        };
        assert_eq!(CatchPanic(Box::pin(panicking)).await, Err(()));
    }
}
