// The idiomatic Swift face of Waxwing: async/await and an AsyncStream of
// events over the generated bindings (WaxwingClient, Event, ...).
import Foundation

/// Bridges the foreign listener trait into an AsyncStream.
final class StreamListener: ClientListener, @unchecked Sendable {
    let continuation: AsyncStream<Event>.Continuation

    init(continuation: AsyncStream<Event>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: Event) {
        continuation.yield(event)
    }
}

/// One account. Iterate `events` once; it ends when the session is closed.
public final class WaxwingSession: @unchecked Sendable {
    public let events: AsyncStream<Event>
    private let client: WaxwingClient
    private let continuation: AsyncStream<Event>.Continuation

    /// Opens the account's encrypted store; throws `WaxwingError.Store` on a wrong key.
    public init(config: AccountConfig) throws {
        var captured: AsyncStream<Event>.Continuation!
        events = AsyncStream(bufferingPolicy: .unbounded) { captured = $0 }
        continuation = captured
        client = try WaxwingClient.open(config: config, listener: StreamListener(continuation: captured))
    }

    deinit {
        continuation.finish()
    }

    public var ownJid: String { client.ownJid() }
    public var connectionState: ConnectionState { client.connectionState() }

    @discardableResult
    public func login() async throws -> String { try await client.login() }
    public func logout() async { await client.logout() }

    @discardableResult
    public func send(_ body: String, to: String) throws -> Message {
        try client.sendMessage(to: to, body: body)
    }

    public func setPresence(_ availability: Availability, status: String? = nil) throws {
        try client.setPresence(availability: availability, status: status)
    }

    public func addContact(_ jid: String, name: String? = nil) async throws {
        try await client.addContact(jid: jid, name: name)
    }

    public func removeContact(_ jid: String) async throws {
        try await client.removeContact(jid: jid)
    }

    public func roster() throws -> [Contact] { try client.roster() }

    public func history(with peer: String, before: Message? = nil, limit: UInt32 = 50) throws -> [Message] {
        try client.history(peer: peer, before: before, limit: limit)
    }

    public func conversations() throws -> [Conversation] { try client.conversations() }

    // Lifecycle hooks: call from scene-phase changes and NWPathMonitor.
    public func setForeground(_ foreground: Bool) { client.setForeground(foreground: foreground) }
    public func networkAvailable() { client.networkAvailable() }
    public func networkLost() { client.networkLost() }

    /// Disconnects but keeps the session for the Notification Service Extension. Call before suspension.
    public func suspendSession() async { await client.suspend() }

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
}

/// For the Notification Service Extension: decrypt the payload, or fetch
/// within the time the system gives (the call blocks; it runs detached).
public enum WaxwingPush {
    public static func wakeUp(config: AccountConfig, push: EncryptedPush?, deadline: TimeInterval) async throws -> WakeUpResult {
        try await Task.detached {
            try Waxwing.wakeUp(config: config, push: push, deadlineMs: UInt64(deadline * 1000))
        }.value
    }
}
