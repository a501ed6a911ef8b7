// The idiomatic Swift face of Waxwing: async/await and an AsyncStream of
// events over the generated bindings (WaxwingClient, Event, ...). Foundation
// only, so the same file is compiled and tested on Linux (scripts/test-swift.sh)
// and on Apple platforms. Swift 6 language mode (strict concurrency).
// Kept in step with android/.../Waxwing.kt by scripts/check-parity.py.
import Foundation

/// What the event buffer dropped and has not reported yet, shared by the
/// listener (which counts) and every iterator (which reports).
final class DroppedEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var count: UInt64 = 0
    /// An event held back while its marker goes first.
    private var held: Event?

    // lock()/unlock() rather than withLock, which Apple platforms have only
    // from iOS 16 / macOS 13 (Package.swift supports iOS 15 / macOS 12).
    func add() {
        lock.lock(); defer { lock.unlock() }
        count += 1
    }

    /// The held event, if any: it is next.
    func takeHeld() -> Event? {
        lock.lock(); defer { lock.unlock() }
        defer { held = nil }
        return held
    }

    /// The marker to hand out before `event` (which is then held), or nil.
    func marker(before event: Event) -> Event? {
        lock.lock(); defer { lock.unlock() }
        guard count > 0 else { return nil }
        defer { count = 0 }
        held = event
        return .eventsDropped(count: count)
    }
}

/// Bridges the foreign listener trait into an AsyncStream.
final class StreamListener: ClientListener, Sendable {
    let continuation: AsyncStream<Event>.Continuation
    let dropped: DroppedEvents

    init(continuation: AsyncStream<Event>.Continuation, dropped: DroppedEvents) {
        self.continuation = continuation
        self.dropped = dropped
    }

    func onEvent(event: Event) {
        if case .dropped = continuation.yield(event) { dropped.add() }
    }
}

/// The events of a session, in order. Buffer policy: up to the
/// `eventBuffer` given to `WaxwingSession.init` wait for a slow consumer;
/// beyond that the oldest are dropped and the consumer gets
/// `.eventsDropped(count:)` before the next one (re-read from the store,
/// which has everything). Memory stays bounded.
public struct WaxwingEvents: AsyncSequence, Sendable {
    public typealias Element = Event
    let stream: AsyncStream<Event>
    let dropped: DroppedEvents

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<Event>.Iterator
        let dropped: DroppedEvents

        public mutating func next() async -> Event? {
            if let held = dropped.takeHeld() { return held }
            guard let event = await base.next() else { return nil }
            return dropped.marker(before: event) ?? event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), dropped: dropped)
    }
}

/// One account. Iterate `events` from one task at a time; the stream ends
/// on `close()` or when the session is released. After `close()` every
/// throwing call throws `WaxwingError.Closed`; getters and lifecycle hooks
/// do nothing. Cancelling a Task that awaits a call is safe: a login goes
/// on in the background, a logout or suspension still completes.
public final class WaxwingSession: Sendable {
    /// Events held for a slow consumer before the oldest are dropped.
    public static let defaultEventBuffer = 1024

    /// Every event, in order, after the store has been updated.
    public let events: WaxwingEvents
    private let client: WaxwingClient
    private let continuation: AsyncStream<Event>.Continuation

    /// Opens the account's encrypted store; throws `WaxwingError.Store` on a wrong key or damage.
    public init(config: AccountConfig, eventBuffer: Int = WaxwingSession.defaultEventBuffer) throws {
        precondition(eventBuffer > 0, "eventBuffer must be positive")
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(eventBuffer))
        let dropped = DroppedEvents()
        events = WaxwingEvents(stream: stream, dropped: dropped)
        self.continuation = continuation
        client = try WaxwingClient.open(config: config, listener: StreamListener(continuation: continuation, dropped: dropped))
    }

    deinit {
        continuation.finish()
    }

    /// Releases the account: the connection drops (the server keeps the
    /// session resumable) and the store closes; `events` ends.
    public func close() {
        client.shutdown()
        continuation.finish()
    }

    public var ownJid: String { client.ownJid() }
    public var connectionState: ConnectionState { client.connectionState() }

    /// Connects and logs in; returns the bound JID.
    @discardableResult
    public func login() async throws -> String { try await client.login() }
    /// Ends the session on the server (no pushes, nothing to resume).
    public func logout() async throws { try await client.logout() }

    /// Stores the message first; it goes out now or on the next login.
    @discardableResult
    public func send(_ body: String, to: String) throws -> Message {
        try client.sendMessage(to: to, body: body)
    }

    // Group chats (XEP-0045).
    /// Joins `room` as `nick` (creating it if needed); returns the nick the room gave us.
    @discardableResult
    public func joinRoom(_ room: String, nick: String) async throws -> String {
        try await client.joinRoom(room: room, nick: nick)
    }
    public func leaveRoom(_ room: String) throws { try client.leaveRoom(room: room) }
    /// Changes our nick in `room`; a taken one is `.Refused` and leaves us as we were.
    @discardableResult
    public func changeNick(_ room: String, nick: String) async throws -> String {
        try await client.changeNick(room: room, nick: nick)
    }
    /// Creates `room` as a private group or a channel and joins it; `.Refused("room-exists")` if it exists.
    @discardableResult
    public func createRoom(_ room: String, nick: String, kind: RoomKind, name: String? = nil) async throws -> String {
        try await client.createRoom(room: room, nick: nick, kind: kind, name: name)
    }
    public func setRoomAffiliation(_ room: String, jid: String, affiliation: RoomAffiliation, reason: String? = nil) async throws {
        try await client.setRoomAffiliation(room: room, jid: jid, affiliation: affiliation, reason: reason)
    }
    /// Members, admins and owners of `room`, by bare JID.
    public func roomMembers(_ room: String) async throws -> [String] { try await client.roomMembers(room: room) }
    public func kickFromRoom(_ room: String, nick: String, reason: String? = nil) async throws {
        try await client.kickFromRoom(room: room, nick: nick, reason: reason)
    }
    public func destroyRoom(_ room: String, reason: String? = nil) async throws {
        try await client.destroyRoom(room: room, reason: reason)
    }
    /// Invites `jid` to `room`: through the room (an owner's invitation to a members-only room makes them a member) or, `direct`, from us.
    public func inviteToRoom(_ room: String, jid: String, reason: String? = nil, direct: Bool = false) throws {
        try client.inviteToRoom(room: room, jid: jid, reason: reason, direct: direct)
    }
    /// Declines a `.roomInvite` that came through the room.
    public func declineInvite(_ room: String, inviter: String, reason: String? = nil) throws {
        try client.declineInvite(room: room, inviter: inviter, reason: reason)
    }
    /// Bookmarks `room` (XEP-0402): with `autojoin` every device joins it, now and at each login; without, they leave it.
    public func setBookmark(_ room: String, autojoin: Bool, name: String? = nil, nick: String? = nil) async throws {
        try await client.setBookmark(room: room, name: name, nick: nick, autojoin: autojoin)
    }
    public func removeBookmark(_ room: String) async throws { try await client.removeBookmark(room: room) }
    public func bookmarks() throws -> [RoomBookmark] { try client.bookmarks() }
    /// Stored first; goes out while we are in the room, `.delivered` once the room reflects it.
    @discardableResult
    public func sendRoomMessage(_ body: String, to room: String) throws -> Message {
        try client.sendRoomMessage(room: room, body: body)
    }

    public func setPresence(_ availability: Availability, status: String? = nil) throws {
        try client.setPresence(availability: availability, status: status)
    }

    // Roster and presence subscriptions.
    public func addContact(_ jid: String, name: String? = nil) async throws {
        try await client.addContact(jid: jid, name: name)
    }
    public func renameContact(_ jid: String, name: String) async throws {
        try await client.renameContact(jid: jid, name: name)
    }
    public func removeContact(_ jid: String) async throws {
        try await client.removeContact(jid: jid)
    }
    /// Asks to see `jid`'s presence; the answer comes as a roster change.
    public func requestSubscription(_ jid: String) throws { try client.requestSubscription(jid: jid) }
    /// Answers an `Event.subscriptionRequest` from `jid`.
    public func approveSubscription(_ jid: String) throws { try client.approveSubscription(jid: jid) }
    public func denySubscription(_ jid: String) throws { try client.denySubscription(jid: jid) }
    /// Stops seeing `jid`'s presence.
    public func cancelSubscription(_ jid: String) throws { try client.cancelSubscription(jid: jid) }

    /// A contact's online resources; empty while offline.
    public func presence(of jid: String) -> [ResourcePresence] { client.presence(jid: jid) }

    public func roster() throws -> [Contact] { try client.roster() }

    /// Newest first; pass the oldest message of the previous page to page back.
    public func history(with peer: String, before: Message? = nil, limit: UInt32 = 50) throws -> [Message] {
        try client.history(peer: peer, before: before, limit: limit)
    }

    public func conversations() throws -> [Conversation] { try client.conversations() }
    public func markRead(_ peer: String) throws { try client.markRead(peer: peer) }

    // Lifecycle hooks: call from scene-phase changes and NWPathMonitor. In the
    // background the server holds unimportant traffic (XEP-0352); while the
    // network is lost no reconnect is tried, and networkAvailable() reconnects
    // (resuming the session) at once.
    public func setForeground(_ foreground: Bool) { client.setForeground(foreground: foreground) }
    public func networkAvailable() { client.networkAvailable() }
    public func networkLost() { client.networkLost() }

    /// Disconnects but keeps the session for the Notification Service
    /// Extension, and closes the store's database until the next call that
    /// needs it. Call before suspension.
    public func suspendSession() async throws { try await client.suspend() }

    /// Registers for push with the app server's JID and the node it issued for this device's token.
    public func enablePush(service: String, node: String, secret: String? = nil) async throws {
        try await client.enablePush(service: service, node: node, secret: secret)
    }
    public func disablePush() async throws { try await client.disablePush() }

    // OMEMO: encryption per conversation (a message that cannot be encrypted
    // fails, never goes out in plain text), fingerprints and trust.
    public func setEncryption(_ mode: ConversationEncryption, with peer: String) throws {
        try client.setEncryption(peer: peer, mode: mode)
    }
    public func encryption(with peer: String) throws -> ConversationEncryption { try client.encryption(peer: peer) }
    public func ownDevice() throws -> OmemoDevice { try client.ownOmemoDevice() }
    public func devices(of jid: String) throws -> [OmemoDevice] { try client.omemoDevices(jid: jid) }
    /// `.verified` takes the fingerprint the users compared and throws
    /// `WaxwingError.FingerprintMismatch` unless it is the device's key.
    public func setTrust(_ trust: DeviceTrust, jid: String, deviceId: UInt32, fingerprint: String? = nil) throws {
        try client.setOmemoTrust(jid: jid, deviceId: deviceId, trust: trust, fingerprint: fingerprint)
    }
    /// Replaces the session with a device, when the user asks (its messages
    /// keep failing to decrypt): never done automatically. The old one still
    /// reads late messages.
    public func replaceSession(jid: String, deviceId: UInt32) throws {
        try client.replaceOmemoSession(jid: jid, deviceId: deviceId)
    }
    /// Blind Trust Before Verification (the default) or manual: for keys learned from now on.
    public func setTrustPolicy(_ policy: TrustPolicy) throws { try client.setOmemoTrustPolicy(policy: policy) }
    public func trustPolicy() throws -> TrustPolicy { try client.omemoTrustPolicy() }
    /// Off: push notifications report "a new message" without its text.
    public func setPushPreviews(_ shown: Bool) throws { try client.setPushPreviews(shown: shown) }
    public func pushPreviews() throws -> Bool { try client.pushPreviews() }
    /// Takes devices of this account (old installations, or this one) off
    /// its published OMEMO lists.
    public func removeDevices(_ deviceIds: [UInt32]) throws {
        try client.removeOmemoDevices(deviceIds: deviceIds)
    }
}

/// For the Notification Service Extension: decrypt the payload, or run a
/// whole wake-up within the time the system gives. Both block, so they run
/// detached from the caller's executor.
public enum WaxwingPush {
    public static func decrypt(config: AccountConfig, push: EncryptedPush) async throws -> NotificationItem {
        try await Task.detached {
            try decryptPush(config: config, push: push)
        }.value
    }

    public static func wakeUp(config: AccountConfig, push: EncryptedPush?, deadline: TimeInterval = 10) async throws -> WakeUpResult {
        try await Task.detached {
            try Waxwing.wakeUp(config: config, push: push, deadlineMs: UInt64(deadline * 1000))
        }.value
    }
}
