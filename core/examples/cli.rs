//! `cli`: a command-line XMPP client on the Waxwing core, for scripts and
//! for people debugging their server. Every event and result is one JSON
//! object per line on stdout; errors go to stderr with a non-zero exit.
//!
//! ```text
//! cargo run -p waxwing-core --example cli -- [options] <command>
//!   --jid JID             account (password from env WAXWING_PASSWORD)
//!   --server HOST:PORT    skip SRV lookup
//!   --direct-tls          direct TLS (XEP-0368) instead of STARTTLS
//!   --ca FILE             extra trusted CA (PEM)
//!   --store DIR           encrypted store (key: env WAXWING_STORE_KEY, 64 hex);
//!                         with a store, commands end by suspending the
//!                         session (the next run resumes it) unless --logout
//!   --background          tell the server the app is in the background (CSI)
//!   --classic             do not use SASL2/Bind2/FAST even if offered
//! commands:
//!   send [--encrypt omemo0.3|omemo2|auto] TO BODY [--await-reply SECS]
//!                                         (encrypted: also {"left_out": […]},
//!                                          the devices that got no key)
//!   listen [--count N] [--timeout SECS]   (messages show their encryption
//!                                          and the sending device's trust)
//!   fingerprints [JID]                    (ours, or JID's known devices)
//!   trust JID DEVICE_ID verified --fingerprint HEX | distrusted | blind
//!                                         (HEX as `fingerprints` prints it;
//!                                          spaces and colons are ignored)
//!   trust-policy [blind|manual]           (show or set the account's policy)
//!   replace-session JID DEVICE_ID         (a new OMEMO session, by hand)
//!   roster
//!   history WITH [--limit N]
//!   push enable --service JID --node NODE [--secret S]
//!   push disable
//!   wake [--payload FILE] [--deadline SECS]   (FILE: {"iv": …, "payload": …})
//! ```
//!
//! Connection events say how the session was set up: `"session"` is
//! `resumed` (XEP-0198), `fast` (a XEP-0484 token) or `fresh`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use waxwing_core::client::wake::{self, EncryptedPush, WakeOutcome};
use waxwing_core::client::ConnectionState;
use waxwing_core::features::muc_admin::RoomKind;
use waxwing_core::features::presence::Availability;
use waxwing_core::store::{
    ConversationEncryption, DeviceTrust, MessageState, StoreKey, StoredMessage, TrustPolicy,
};
use waxwing_core::ConnectOptions;
use waxwing_core::{Client, ClientConfig, ClientEvent, EventListener};

const USAGE: &str = "usage: cli --jid JID [--server HOST:PORT] [--direct-tls] [--ca FILE] [--store DIR] \
    [--logout] [--background] [--classic] \
    (send [--encrypt omemo0.3|omemo2|auto] TO BODY [--await-reply SECS] | listen [--count N] [--timeout SECS] \
    | roster | history WITH [--limit N] | fingerprints [JID] \
    | trust JID DEVICE_ID (verified --fingerprint HEX|distrusted|blind) | trust-policy [blind|manual] | replace-session JID DEVICE_ID \
    | push enable --service JID --node NODE [--secret S] | push disable | wake [--payload FILE] [--deadline SECS] \
    | create ROOM (--private|--channel) [--name NAME] | join ROOM [NICK] | leave ROOM | rooms | invite ROOM JID \
    | occupants ROOM)";

struct Args {
    jid: Option<String>,
    server: Option<(String, u16)>,
    direct_tls: bool,
    ca: Option<String>,
    store: Option<String>,
    command: Vec<String>,
    await_reply: Option<u64>,
    count: Option<usize>,
    timeout: Option<u64>,
    limit: u32,
    logout: bool,
    background: bool,
    classic: bool,
    service: Option<String>,
    node: Option<String>,
    secret: Option<String>,
    payload: Option<String>,
    deadline: u64,
    encrypt: Option<String>,
    fingerprint: Option<String>,
    room_kind: Option<RoomKind>,
    name: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        jid: None,
        server: None,
        direct_tls: false,
        ca: None,
        store: None,
        command: Vec::new(),
        await_reply: None,
        count: None,
        timeout: None,
        limit: 50,
        logout: false,
        background: false,
        classic: false,
        service: None,
        node: None,
        secret: None,
        payload: None,
        deadline: 25,
        encrypt: None,
        fingerprint: None,
        room_kind: None,
        name: None,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> Result<u64, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or(format!("{name} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--jid" => args.jid = it.next(),
            "--server" => {
                let value = it.next().ok_or("--server needs HOST:PORT")?;
                let (host, port) = value.rsplit_once(':').ok_or("--server needs HOST:PORT")?;
                let port = port.parse().map_err(|_| "--server port is not a number")?;
                args.server = Some((host.to_owned(), port));
            }
            "--direct-tls" => args.direct_tls = true,
            "--ca" => args.ca = it.next(),
            "--store" => args.store = it.next(),
            "--await-reply" => args.await_reply = Some(number(it.next(), "--await-reply")?),
            "--count" => args.count = Some(number(it.next(), "--count")? as usize),
            "--timeout" => args.timeout = Some(number(it.next(), "--timeout")?),
            "--limit" => args.limit = number(it.next(), "--limit")? as u32,
            "--logout" => args.logout = true,
            "--background" => args.background = true,
            "--classic" => args.classic = true,
            "--service" => args.service = it.next(),
            "--node" => args.node = it.next(),
            "--secret" => args.secret = it.next(),
            "--payload" => args.payload = it.next(),
            "--deadline" => args.deadline = number(it.next(), "--deadline")?,
            "--encrypt" => args.encrypt = it.next(),
            "--fingerprint" => args.fingerprint = it.next(),
            "--private" => args.room_kind = Some(RoomKind::PrivateGroup),
            "--channel" => args.room_kind = Some(RoomKind::Channel),
            "--name" => args.name = it.next(),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other}\n{USAGE}"))
            }
            _ => args.command.push(arg),
        }
    }
    Ok(args)
}

/// Forwards events into a channel the command loop reads.
struct Forward(mpsc::UnboundedSender<ClientEvent>);

impl EventListener for Forward {
    fn on_event(&self, event: ClientEvent) {
        let _ = self.0.send(event);
    }
}

fn print(value: Value) {
    println!("{value}");
}

fn event_json(event: &ClientEvent) -> Value {
    match event {
        ClientEvent::ConnectionChanged(state) => match state {
            ConnectionState::Connecting => json!({"event": "connection", "state": "connecting"}),
            ConnectionState::Online {
                jid,
                round_trips,
                authentication,
                resumed,
            } => {
                let session = if *resumed {
                    "resumed"
                } else if authentication.starts_with("HT-") {
                    "fast"
                } else {
                    "fresh"
                };
                json!({"event": "connection", "state": "online", "jid": jid, "round_trips": round_trips,
                       "authentication": authentication, "resumed": resumed, "session": session})
            }
            ConnectionState::Disconnected { error, will_retry } => json!({
                "event": "connection", "state": "disconnected",
                "error": error.as_ref().map(|e| e.to_string()), "will_retry": will_retry
            }),
        },
        ClientEvent::MessageReceived(m) => json!({"event": "message", "message": message_json(m),
            "encryption": m.security.scheme.label(),
            "trust": m.security.sender_trust.map(|t| t.label())}),
        ClientEvent::MessageStateChanged(m) => json!({"event": "message_state", "message": m}),
        ClientEvent::RosterChanged(r) => json!({"event": "roster", "contacts": r}),
        ClientEvent::PresenceChanged {
            jid,
            resource,
            availability,
            status,
        } => json!({
            "event": "presence", "jid": jid, "resource": resource,
            "availability": format!("{availability:?}").to_lowercase(), "status": status
        }),
        ClientEvent::SubscriptionRequest { from } => {
            json!({"event": "subscription_request", "from": from})
        }
        ClientEvent::CaughtUp => json!({"event": "caught_up"}),
        ClientEvent::OmemoDevicesChanged { jid } => json!({"event": "omemo_devices", "jid": jid}),
        ClientEvent::OmemoTrustChanged {
            jid,
            device_id,
            trust,
        } => {
            json!({"event": "omemo_trust", "jid": jid, "device_id": device_id, "trust": trust})
        }
        ClientEvent::RoomJoined { room, nick } => {
            json!({"event": "room_joined", "room": room, "nick": nick})
        }
        ClientEvent::RoomOccupantsChanged { room, occupants } => {
            let nicks: Vec<&str> = occupants.iter().map(|o| o.nick.as_str()).collect();
            json!({"event": "room_occupants", "room": room, "nicks": nicks})
        }
        ClientEvent::RoomLeft { room, reason } => {
            json!({"event": "room_left", "room": room, "reason": reason})
        }
        ClientEvent::RoomSubject { room, subject } => {
            json!({"event": "room_subject", "room": room, "subject": subject})
        }
        ClientEvent::BookmarksChanged => json!({"event": "bookmarks"}),
        ClientEvent::RoomInvite {
            room,
            from,
            reason,
            direct,
            ..
        } => json!({"event": "invite", "room": room, "from": from, "reason": reason,
                    "direct": direct}),
    }
}

/// The nick we use in rooms unless told otherwise: our JID's local part.
fn own_nick(args: &Args) -> String {
    args.jid
        .as_deref()
        .and_then(|j| j.split('@').next())
        .unwrap_or("waxwing")
        .to_owned()
}

/// Waits (up to 10 s) for the bookmarks to arrive and every autojoin room
/// to be joined; returns the rooms joined.
async fn await_autojoins(
    client: &Client,
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
) -> std::collections::BTreeSet<String> {
    let mut joined = std::collections::BTreeSet::new();
    let mut fetched = false;
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        if fetched {
            let wanted = client.bookmarks().unwrap_or_else(|e| fail(e));
            if wanted
                .iter()
                .filter(|b| b.autojoin)
                .all(|b| joined.contains(&b.room))
            {
                return joined;
            }
        }
        tokio::select! {
            Some(event) = events.recv() => match event {
                ClientEvent::BookmarksChanged => fetched = true,
                ClientEvent::RoomJoined { room, .. } => { joined.insert(room); }
                ClientEvent::RoomLeft { room, .. } => { joined.remove(&room); }
                _ => {}
            },
            _ = &mut deadline => return joined,
        }
    }
}

/// A stored message as the cli prints it: the store's fields plus `room`
/// (the room's bare JID, null for 1:1), `nick` and `sender_jid` (the real
/// JID where known).
fn message_json(m: &StoredMessage) -> Value {
    let mut value = json!(m);
    if let Value::Object(map) = &mut value {
        let room = m.room.as_ref();
        map.insert("room".into(), json!(room.map(|_| m.peer.clone())));
        map.insert("nick".into(), json!(room.map(|r| r.nick.clone())));
        let sender_jid = match room {
            Some(r) => r.real_jid.clone(),
            None => Some(m.sender.clone()),
        };
        map.insert("sender_jid".into(), json!(sender_jid));
    }
    value
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(e));
    // A push handler's budget is small: the wake-up runs on one thread.
    let runtime = if args.command.first().map(String::as_str) == Some("wake") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let code = runtime.unwrap_or_else(|e| fail(e)).block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let jid = args
        .jid
        .clone()
        .unwrap_or_else(|| fail(format!("--jid is required\n{USAGE}")));
    let password = std::env::var("WAXWING_PASSWORD").unwrap_or_default();
    let extra_ca_pem = args.ca.as_ref().map(|path| {
        std::fs::read(path).unwrap_or_else(|e| fail(format!("cannot read {path}: {e}")))
    });
    // Without --store the client still needs somewhere to keep its outbox:
    // an ephemeral store with a random key.
    let ephemeral = tempfile_dir();
    let (store_dir, store_key) = match &args.store {
        Some(dir) => {
            let hex_key = std::env::var("WAXWING_STORE_KEY")
                .unwrap_or_else(|_| fail("WAXWING_STORE_KEY is not set"));
            (
                dir.into(),
                StoreKey::from_hex(&hex_key).unwrap_or_else(|e| fail(e)),
            )
        }
        None => (ephemeral.clone(), StoreKey::from_bytes(rand_key())),
    };
    let config = ClientConfig {
        jid,
        password,
        resource: None,
        connect: ConnectOptions {
            server: args.server.clone(),
            direct_tls: args.direct_tls,
            extra_ca_pem,
        },
        store_dir,
        store_key,
        initial_backoff: Duration::from_secs(1),
        sasl2: !args.classic,
    };
    if args.command.first().map(String::as_str) == Some("wake") {
        if args.store.is_none() {
            fail("wake needs --store");
        }
        return wake(config, args.payload.as_deref(), args.deadline).await;
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let client = Arc::new(Client::open(config, Arc::new(Forward(tx))).unwrap_or_else(|e| fail(e)));
    if args.background {
        client.set_foreground(false);
    }
    let command: Vec<&str> = args.command.iter().map(String::as_str).collect();
    let code = match command.as_slice() {
        ["roster"] => {
            // A fresh session fetches the roster (it arrives before the
            // catch-up ends); a resumed one keeps it, so the stored one is
            // current once the resumed backlog is through. Either event may
            // already have come while login() returned.
            let early = login(&client, &mut events).await;
            let settled = |event: &ClientEvent| match event {
                ClientEvent::RosterChanged(r) => Some(r.clone()),
                ClientEvent::CaughtUp => Some(client.roster().unwrap_or_else(|e| fail(e))),
                _ => None,
            };
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            let roster = match early.iter().find_map(settled) {
                Some(roster) => roster,
                None => loop {
                    tokio::select! {
                        Some(event) = events.recv() => if let Some(roster) = settled(&event) {
                            break roster;
                        },
                        _ = &mut deadline => fail("no roster within 10 s"),
                    }
                },
            };
            for contact in roster {
                print(json!({"contact": contact}));
            }
            0
        }
        ["history", with] => {
            let messages = client
                .history(with, None, args.limit)
                .unwrap_or_else(|e| fail(e));
            for m in messages {
                print(json!({"message": message_json(&m)}));
            }
            0
        }
        ["join", room, rest @ ..] => {
            let nick = rest
                .first()
                .map(|n| n.to_string())
                .unwrap_or_else(|| own_nick(&args));
            login(&client, &mut events).await;
            let nick = client
                .join_room(room, &nick)
                .await
                .unwrap_or_else(|e| fail(e));
            // Bookmarked with autojoin: every login (and every device of
            // the account) joins it again.
            client
                .set_bookmark(room, None, Some(nick.clone()), true)
                .await
                .unwrap_or_else(|e| fail(e));
            print(json!({"joined": {"room": room, "nick": nick}}));
            0
        }
        ["create", room] => {
            let Some(kind) = args.room_kind else {
                fail("create needs --private or --channel")
            };
            let nick = own_nick(&args);
            login(&client, &mut events).await;
            let nick = client
                .create_room(room, &nick, kind, args.name.clone())
                .await
                .unwrap_or_else(|e| fail(e));
            client
                .set_bookmark(room, args.name.clone(), Some(nick.clone()), true)
                .await
                .unwrap_or_else(|e| fail(e));
            print(json!({"created": {"room": room, "nick": nick}}));
            0
        }
        ["occupants", room] => {
            let nick = client
                .room_nick(room)
                .unwrap_or_else(|e| fail(e))
                .unwrap_or_else(|| own_nick(&args));
            login(&client, &mut events).await;
            client
                .join_room(room, &nick)
                .await
                .unwrap_or_else(|e| fail(e));
            let wait = async {
                loop {
                    match events.recv().await {
                        Some(ClientEvent::RoomOccupantsChanged { room: r, occupants })
                            if r == *room =>
                        {
                            break occupants
                        }
                        Some(_) => continue,
                        None => fail("the connection ended"),
                    }
                }
            };
            let occupants = tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .unwrap_or_else(|_| fail("no occupants within 10 s"));
            for o in occupants {
                print(
                    json!({"occupant": {"nick": o.nick, "jid": o.real_jid.map(|j| j.to_string()),
                             "affiliation": o.affiliation, "role": o.role}}),
                );
            }
            0
        }
        ["invite", room, jid] => {
            login(&client, &mut events).await;
            client
                .invite_to_room(room, jid, None, false)
                .unwrap_or_else(|e| fail(e));
            // Out once the server has it (the logout waits for the ack).
            print(json!({"invited": {"room": room, "jid": jid}}));
            0
        }
        ["leave", room] => {
            login(&client, &mut events).await;
            // The bookmark stays, without autojoin (which also leaves the
            // room on the account's other devices).
            client
                .set_bookmark(room, None, None, false)
                .await
                .unwrap_or_else(|e| fail(e));
            client.leave_room(room).unwrap_or_else(|e| fail(e));
            print(json!({"left": {"room": room}}));
            0
        }
        ["rooms"] => {
            login(&client, &mut events).await;
            let joined = await_autojoins(&client, &mut events).await;
            for b in client.bookmarks().unwrap_or_else(|e| fail(e)) {
                let in_room = joined.contains(&b.room);
                print(json!({"room": b.room, "name": b.name, "nick": b.nick,
                             "autojoin": b.autojoin, "joined": in_room}));
            }
            0
        }
        ["send", to, body] => {
            let mut encrypted = false;
            if let Some(mode) = &args.encrypt {
                let mode = match mode.as_str() {
                    "omemo0.3" => ConversationEncryption::Omemo03,
                    "omemo2" => ConversationEncryption::Omemo2,
                    "auto" => ConversationEncryption::Auto,
                    "none" => ConversationEncryption::Off,
                    _ => fail("--encrypt takes omemo0.3, omemo2, auto or none"),
                };
                client.set_encryption(to, mode).unwrap_or_else(|e| fail(e));
                encrypted = mode != ConversationEncryption::Off;
            }
            let status = send(&client, &mut events, to, body, args.await_reply).await;
            if encrypted {
                print(json!({"left_out": left_out(&client, to)}));
            }
            status
        }
        ["replace-session", jid, device] => {
            let device: u32 = device
                .parse()
                .unwrap_or_else(|_| fail("DEVICE_ID is a number"));
            login(&client, &mut events).await;
            client
                .replace_omemo_session(jid, device)
                .unwrap_or_else(|e| fail(e));
            print(json!({"replaced_session": {"jid": jid, "device_id": device}}));
            0
        }
        ["trust-policy"] => {
            let policy = client.omemo_trust_policy().unwrap_or_else(|e| fail(e));
            print(json!({"trust_policy": policy}));
            0
        }
        ["trust-policy", policy] => {
            let policy = match *policy {
                "blind" => TrustPolicy::BlindTrustBeforeVerification,
                "manual" => TrustPolicy::Manual,
                _ => fail("trust-policy takes blind or manual"),
            };
            client
                .set_omemo_trust_policy(policy)
                .unwrap_or_else(|e| fail(e));
            print(json!({"trust_policy": policy}));
            0
        }
        ["fingerprints"] => {
            let own = client.own_omemo_device().unwrap_or_else(|e| fail(e));
            let devices = client
                .omemo_devices(&own.jid.clone())
                .unwrap_or_else(|e| fail(e));
            for device in devices {
                print(json!({"device": device}));
            }
            0
        }
        ["fingerprints", jid] => {
            for device in client.omemo_devices(jid).unwrap_or_else(|e| fail(e)) {
                print(json!({"device": device}));
            }
            0
        }
        ["trust", jid, device, decision] => {
            let device: u32 = device
                .parse()
                .unwrap_or_else(|_| fail("DEVICE_ID is a number"));
            let trust = DeviceTrust::from_label(decision)
                .unwrap_or_else(|| fail("trust takes verified, distrusted or blind"));
            if trust == DeviceTrust::Verified && args.fingerprint.is_none() {
                fail("verified needs --fingerprint HEX: the fingerprint you compared with the contact's")
            }
            client
                .set_omemo_trust(jid, device, trust, args.fingerprint.as_deref())
                .unwrap_or_else(|e| fail(e));
            print(json!({"trust": {"jid": jid, "device_id": device, "trust": trust}}));
            0
        }
        ["listen"] => listen(&client, &mut events, args.count, args.timeout).await,
        ["push", "enable"] => {
            let (Some(service), Some(node)) = (&args.service, &args.node) else {
                fail("push enable needs --service JID --node NODE")
            };
            login(&client, &mut events).await;
            client
                .enable_push(service, node, args.secret.as_deref())
                .await
                .unwrap_or_else(|e| fail(format!("push enable failed: {e}")));
            print(json!({"push": "enabled", "service": service, "node": node}));
            0
        }
        ["push", "disable"] => {
            login(&client, &mut events).await;
            client
                .disable_push()
                .await
                .unwrap_or_else(|e| fail(format!("push disable failed: {e}")));
            print(json!({"push": "disabled"}));
            0
        }
        _ => fail(USAGE),
    };
    if args.store.is_some() && !args.logout {
        // Keep the session on the server: the next run resumes it.
        client.suspend().await;
    } else {
        client.logout().await;
    }
    let _ = std::fs::remove_dir_all(&ephemeral);
    code
}

/// Runs the wake-up API as a push handler would, printing each item and
/// then the outcome.
async fn wake(config: ClientConfig, payload_file: Option<&str>, deadline: u64) -> i32 {
    let push = payload_file.map(|path| {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| fail(format!("cannot read {path}: {e}")));
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| fail(format!("{path} is not JSON: {e}")));
        let field = |name: &str| {
            value[name]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| fail(format!("{path} has no \"{name}\"")))
        };
        EncryptedPush {
            iv: field("iv"),
            payload: field("payload"),
        }
    });
    let result = wake::wake_up(config, push, Duration::from_secs(deadline))
        .await
        .unwrap_or_else(|e| fail(format!("wake-up failed: {e}")));
    for item in &result.items {
        print(
            json!({"notification": {"sender": item.sender, "conversation": item.conversation,
                     "preview": item.preview, "message_id": item.message_id}}),
        );
    }
    let outcome = match &result.outcome {
        WakeOutcome::Decrypted => json!({"outcome": "decrypted"}),
        WakeOutcome::Fetched {
            resumed,
            authentication,
        } => json!({"outcome": "fetched", "resumed": resumed, "authentication": authentication}),
        WakeOutcome::AppIsActive => json!({"outcome": "app_is_active"}),
        WakeOutcome::DeadlineReached => json!({"outcome": "deadline_reached"}),
    };
    let mut outcome = outcome;
    if let Some(err) = result.payload_error {
        outcome["payload_error"] = json!(err.to_string());
    }
    print(outcome);
    0
}

/// Logs in and prints (and returns) the events that came meanwhile, so a
/// command waiting for one of them does not miss it.
async fn login(
    client: &Client,
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
) -> Vec<ClientEvent> {
    match client.login().await {
        Ok(_) => {
            let mut early = Vec::new();
            while let Ok(event) = events.try_recv() {
                print(event_json(&event));
                early.push(event);
            }
            early
        }
        Err(e) => fail(format!("login failed: {e}")),
    }
}

/// The listed devices of `to` and of our own account that get no message
/// key because they are not trusted (undecided or distrusted).
fn left_out(client: &Client, to: &str) -> Vec<Value> {
    let own = client.own_jid();
    [to, own.as_str()]
        .into_iter()
        .flat_map(|jid| client.omemo_devices(jid).unwrap_or_else(|e| fail(e)))
        .filter(|d| !d.this_device && !d.versions.is_empty() && !d.trust.is_trusted())
        .map(|d| json!({"jid": d.jid, "device_id": d.device_id, "trust": d.trust}))
        .collect()
}

async fn send(
    client: &Client,
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
    to: &str,
    body: &str,
    await_reply: Option<u64>,
) -> i32 {
    login(client, events).await;
    // A room we joined before gets a groupchat message (we join it again
    // first); it counts as sent once the room reflects it.
    let room_nick = client.room_nick(to).unwrap_or_else(|e| fail(e));
    let (message, wanted) = match room_nick {
        Some(nick) => {
            client
                .join_room(to, &nick)
                .await
                .unwrap_or_else(|e| fail(e));
            let m = client
                .send_room_message(to, body)
                .unwrap_or_else(|e| fail(e));
            (m, MessageState::Delivered)
        }
        None => {
            let m = client.send_message(to, body).unwrap_or_else(|e| fail(e));
            (m, MessageState::Acked)
        }
    };
    print(json!({"sent": message}));
    let peer = message.peer.clone();
    let mut acked = false;
    let deadline = tokio::time::sleep(Duration::from_secs(30 + await_reply.unwrap_or(0)));
    tokio::pin!(deadline);
    let mut reply_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                print(event_json(&event));
                match &event {
                    ClientEvent::MessageStateChanged(m) if m.id == message.id && m.state == MessageState::Failed => {
                        fail("the message bounced")
                    }
                    ClientEvent::MessageStateChanged(m) if m.id == message.id && m.state >= wanted && !acked => {
                        acked = true;
                        match await_reply {
                            None => return 0,
                            Some(secs) => reply_deadline = Some(Box::pin(tokio::time::sleep(Duration::from_secs(secs)))),
                        }
                    }
                    ClientEvent::MessageReceived(m) if await_reply.is_some() && m.peer == peer => {
                        print(json!({"reply": m}));
                        return 0;
                    }
                    _ => {}
                }
            }
            _ = async { reply_deadline.as_mut().unwrap().await }, if reply_deadline.is_some() => fail("no reply in time"),
            _ = &mut deadline => fail("the server did not acknowledge the message in time"),
        }
    }
}

async fn listen(
    client: &Client,
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
    count: Option<usize>,
    timeout: Option<u64>,
) -> i32 {
    login(client, events).await;
    let _ = client.set_presence(Availability::Available, None);
    let mut seen = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(timeout.unwrap_or(u64::MAX / 4)));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                print(event_json(&event));
                if matches!(event, ClientEvent::MessageReceived(_)) {
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) { return 0; }
                }
            }
            _ = &mut deadline => return if count.is_some() { 1 } else { 0 },
        }
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("waxwing-cli-{}", hex::encode(rand_key())))
}

fn rand_key() -> [u8; 32] {
    use rand::Rng;
    rand::thread_rng().gen()
}
