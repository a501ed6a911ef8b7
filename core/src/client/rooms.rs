//! The group-chat side of the `Client` API (XEP-0045): joining and leaving
//! rooms. Who is in a room, and whether we still are, comes as events.

use std::time::Duration;

use jid::BareJid;
use tokio::sync::oneshot;

use super::connection::Command;
use super::{Client, ClientError};
use crate::features::muc::JoinHistory;

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
        let room: BareJid = room.parse().map_err(|_| ClientError::InvalidJid)?;
        if room.node().is_none() || nick.is_empty() {
            return Err(ClientError::InvalidJid);
        }
        let commands = self.commands().ok_or(ClientError::NotConnected)?;
        let (reply, answer) = oneshot::channel();
        commands
            .send(Command::JoinRoom {
                room,
                nick: nick.to_owned(),
                // Room messages are not kept yet (a later slice of the
                // group-chat issue catches up from the room's archive).
                history: JoinHistory::FromArchive,
                reply,
            })
            .map_err(|_| ClientError::NotConnected)?;
        match tokio::time::timeout(JOIN_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::NotConnected),
            Err(_) => Err(ClientError::Timeout),
        }
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
