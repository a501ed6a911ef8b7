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
}
