// The idiomatic Swift face of Waxwing: async/await and an AsyncStream of
// events over the generated bindings (WaxwingClient, Event, ...). Foundation
// only, so the same file is compiled and tested on Linux (scripts/test-swift.sh)
// and on Apple platforms. Swift 6 language mode (strict concurrency).
// Kept in step with android/.../Waxwing.kt by scripts/check-parity.py.
import Foundation

/// Bridges the foreign listener trait into an AsyncStream.
final class StreamListener: ClientListener, Sendable {
    let continuation: AsyncStream<Event>.Continuation

    init(continuation: AsyncStream<Event>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: Event) {
        continuation.yield(event)
    }
}

/// One account. Iterate `events` from one task at a time; the stream ends
/// when the session is released.
public final class WaxwingSession: Sendable {
    /// Every event, in order, after the store has been updated.
    public let events: AsyncStream<Event>
    private let client: WaxwingClient
    private let continuation: AsyncStream<Event>.Continuation

    /// Opens the account's encrypted store; throws `WaxwingError.Store` on a wrong key or damage.
    public init(config: AccountConfig) throws {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        self.events = events
        self.continuation = continuation
        client = try WaxwingClient.open(config: config, listener: StreamListener(continuation: continuation))
    }

    deinit {
        continuation.finish()
    }

    public var ownJid: String { client.ownJid() }
    public var connectionState: ConnectionState { client.connectionState() }

    /// Connects and logs in; returns the bound JID.
    @discardableResult
    public func login() async throws -> String { try await client.login() }
    public func logout() async { await client.logout() }

    /// Stores the message first; it goes out now or on the next login.
    @discardableResult
    public func send(_ body: String, to: String) throws -> Message {
        try client.sendMessage(to: to, body: body)
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

    /// Disconnects but keeps the session for the Notification Service Extension. Call before suspension.
    public func suspendSession() async { await client.suspend() }

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
    public func setTrust(_ trust: DeviceTrust, jid: String, deviceId: UInt32) throws {
        try client.setOmemoTrust(jid: jid, deviceId: deviceId, trust: trust)
    }
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
