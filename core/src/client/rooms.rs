//! The group-chat side of the `Client` API (XEP-0045): joining and leaving
//! rooms. Who is in a room, and whether we still are, comes as events.

use std::time::Duration;

use jid::BareJid;
use tokio::sync::oneshot;

use super::connection::Command;
use super::{now_ms, random_id, Client, ClientError};
use crate::features::bookmarks::{self, Bookmark};
use crate::features::muc_admin::{self, Affiliation, RoomKind};
use crate::features::muc_invites;
use crate::store::{RoomBookmark, StoredMessage};
use jid::ResourcePart;
use xmpp_parsers::bookmarks2::Conference;

/// How long a join may take: the room answers with every occupant's
/// presence first, then ours.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// Joins `room` as `nick`; returns the nick the room gave us (it may
    /// change it, XEP-0045 §7.2.9). A room that does not exist is created
    /// with the service's default configuration. Typed failures: the nick
    /// is taken, the room is members-only, we are banned… (`Refused`, with
    /// the reason). Needs a connection; a new session leaves every room
    /// (`RoomLeft` with `disconnected`), a resumed one keeps them.
    pub async fn join_room(&self, room: &str, nick: &str) -> Result<String, ClientError> {
        self.join_or_create(room, nick, None).await
    }

    /// Creates `room` as a private group (members only, real JIDs visible
    /// to its members, so OMEMO works) or a channel (public, real JIDs for
    /// moderators only), both persistent and archived, and joins it as
    /// `nick`. `Refused { condition: "room-exists" }` if it exists.
    pub async fn create_room(
        &self,
        room: &str,
        nick: &str,
        kind: RoomKind,
        name: Option<String>,
    ) -> Result<String, ClientError> {
        self.join_or_create(room, nick, Some((kind, name))).await
    }

    async fn join_or_create(
        &self,
        room: &str,
        nick: &str,
        create: Option<(RoomKind, Option<String>)>,
    ) -> Result<String, ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        if room.node().is_none() || nick.is_empty() {
            return Err(ClientError::InvalidJid);
        }
        self.ask_rooms(|reply| Command::JoinRoom {
            room,
            nick: nick.to_owned(),
            create,
            reply,
        })
        .await
    }

    /// Sends the connection a rooms command and waits (bounded) for the
    /// nick it answers with.
    async fn ask_rooms(
        &self,
        command: impl FnOnce(super::connection::rooms::JoinReply) -> Command,
    ) -> Result<String, ClientError> {
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        let (reply, answer) = oneshot::channel();
        commands
            .send(command(reply))
            .map_err(|_| ClientError::NotConnected)?;
        match tokio::time::timeout(JOIN_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::NotConnected),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Sends `body` to everyone in `room`: stored at once (and returned),
    /// it goes out once we are in the room and is `Delivered` when the room
    /// reflects it back (XEP-0045 §7.4). Needs a room we joined before.
    pub fn send_room_message(&self, room: &str, body: &str) -> Result<StoredMessage, ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let store = self.store()?;
        let nick = store
            .lock()
            .room(room.as_str())?
            .map(|r| r.nick)
            .ok_or_else(|| ClientError::Refused {
                condition: "not-a-room-we-joined".into(),
            })?;
        let message = store.lock().insert_outgoing_to_room(
            room.as_str(),
            self.own.as_str(),
            &nick,
            body,
            &random_id(),
            now_ms(),
        )?;
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::SendQueued(message.id));
        }
        Ok(message)
    }

    /// Changes our nick in `room` (XEP-0045 §7.6); returns the nick the
    /// room gave us. A taken nick is `Refused` and leaves us in the room
    /// under the old one.
    pub async fn change_nick(&self, room: &str, nick: &str) -> Result<String, ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        self.ask_rooms(|reply| Command::ChangeNick {
            room,
            nick: nick.to_owned(),
            reply,
        })
        .await
    }

    /// Our nick in `room`, if we joined it before (from the store).
    pub fn room_nick(&self, room: &str) -> Result<Option<String>, ClientError> {
        let room = room
            .parse::<jid::Jid>()
            .map_err(|_| ClientError::InvalidJid)?
            .to_bare();
        Ok(self.store()?.lock().room(room.as_str())?.map(|r| r.nick))
    }

    /// Bookmarks `room` on the account (XEP-0402), keeping what other
    /// clients stored with it: `autojoin` true joins it on every device
    /// (this one included, now and at each login), false leaves it.
    /// `name` and `nick` left `None` keep what the bookmark had.
    pub async fn set_bookmark(
        &self,
        room: &str,
        name: Option<String>,
        nick: Option<String>,
        autojoin: bool,
    ) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let stored = self.store()?.lock().bookmark_element(room.as_str())?;
        let mut conference = stored
            .and_then(|xml| xml.parse::<minidom::Element>().ok())
            .and_then(|e| Conference::try_from(e).ok())
            .unwrap_or_default();
        conference.autojoin = autojoin;
        if name.is_some() {
            conference.name = name;
        }
        if let Some(nick) = nick {
            let nick = ResourcePart::new(&nick).map_err(|_| ClientError::InvalidJid)?;
            conference.nick = Some(nick.into_owned());
        }
        let bookmark = Bookmark { room, conference };
        self.iq(bookmarks::publish(&random_id(), &bookmark)).await?;
        // Our own notification records it too; the store is current now.
        let element: minidom::Element = bookmark.conference.clone().into();
        let xml = String::from_utf8(crate::xml::to_bytes(&element)).unwrap_or_default();
        let nick = bookmark
            .nick()
            .or_else(|| self.own.node().map(|n| n.to_string()))
            .unwrap_or_default();
        self.store()?.lock().set_bookmark(
            bookmark.room.as_str(),
            &nick,
            bookmark.conference.name.as_deref(),
            autojoin,
            &xml,
        )?;
        Ok(())
    }

    /// Removes `room`'s bookmark (and leaves it, on every device).
    pub async fn remove_bookmark(&self, room: &str) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        self.iq(bookmarks::retract(&random_id(), &room)).await?;
        self.store()?.lock().remove_bookmark(room.as_str())?;
        Ok(())
    }

    /// The account's bookmarked rooms, as last fetched or edited.
    pub fn bookmarks(&self) -> Result<Vec<RoomBookmark>, ClientError> {
        Ok(self.store()?.lock().bookmarks()?)
    }

    /// Gives `jid` an affiliation with `room` (member, admin, owner; none
    /// takes it away; outcast bans). Needs the room's admin or owner.
    pub async fn set_room_affiliation(
        &self,
        room: &str,
        jid: &str,
        affiliation: Affiliation,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let iq = muc_admin::set_affiliation(&random_id(), &room, &jid, affiliation, reason);
        self.iq(iq).await.map(|_| ())
    }

    /// Kicks the occupant `nick` out of `room` (a moderator's power).
    pub async fn kick_from_room(
        &self,
        room: &str,
        nick: &str,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        self.iq(muc_admin::kick(&random_id(), &room, nick, reason))
            .await
            .map(|_| ())
    }

    /// Everyone affiliated with `room` as member, admin or owner (what a
    /// private group's messages are encrypted to), by bare JID.
    pub async fn room_members(&self, room: &str) -> Result<Vec<String>, ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let mut members = std::collections::BTreeSet::new();
        for affiliation in [Affiliation::Owner, Affiliation::Admin, Affiliation::Member] {
            let answer = self
                .iq(muc_admin::affiliation_list(
                    &random_id(),
                    &room,
                    affiliation,
                ))
                .await?;
            let list = muc_admin::parse_affiliation_list(&answer).ok_or_else(|| {
                ClientError::Protocol("a room's affiliation list did not read".into())
            })?;
            members.extend(list.into_iter().map(|j| j.to_string()));
        }
        Ok(members.into_iter().collect())
    }

    /// Destroys `room` (its owner's power); occupants are told `reason`.
    pub async fn destroy_room(&self, room: &str, reason: Option<&str>) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        self.iq(muc_admin::destroy(&random_id(), &room, reason))
            .await
            .map(|_| ())
    }

    /// Invites `jid` to `room`: through the room (XEP-0045 §7.8.2; in a
    /// members-only room an owner's or admin's invitation makes them a
    /// member) or, with `direct`, from us (XEP-0249).
    pub fn invite_to_room(
        &self,
        room: &str,
        jid: &str,
        reason: Option<&str>,
        direct: bool,
    ) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let jid: BareJid = jid.parse().map_err(|_| ClientError::InvalidJid)?;
        let id = random_id();
        let message = if direct {
            muc_invites::direct(&room, &jid, reason, &id)
        } else {
            muc_invites::mediated(&room, &jid, reason, &id)
        };
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        commands
            .send(Command::Send(message))
            .map_err(|_| ClientError::NotConnected)
    }

    /// Declines a mediated invitation to `room` from `inviter`.
    pub fn decline_invite(
        &self,
        room: &str,
        inviter: &str,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let inviter: BareJid = inviter.parse().map_err(|_| ClientError::InvalidJid)?;
        let message = muc_invites::decline(&room, &inviter, reason, &random_id());
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        commands
            .send(Command::Send(message))
            .map_err(|_| ClientError::NotConnected)
    }

    /// Leaves `room` (nothing happens if we are not in it).
    pub fn leave_room(&self, room: &str) -> Result<(), ClientError> {
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        commands
            .send(Command::LeaveRoom(room))
            .map_err(|_| ClientError::NotConnected)
    }
}
