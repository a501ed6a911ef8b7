// XCTests of the Swift layer against the real library and a real Prosody,
// run by scripts/test-swift.sh (ports, CA and the push app server's record
// come in as WAXWING_C2S, WAXWING_CA, WAXWING_PUSHES). The same scenarios as
// android/src/test/kotlin/im/waxwing/WaxwingTest.kt, test for test and with
// the same names (scripts/check-parity.py checks that).
import Foundation
import XCTest
@testable import Waxwing

struct Timeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// The first event `pick` maps to a value, within `seconds` (earlier events are consumed).
func awaitEvent<T: Sendable>(
    _ session: WaxwingSession, _ what: String, seconds: Double = 10,
    _ pick: @escaping @Sendable (Event) -> T?
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            for await event in session.events {
                if let value = pick(event) { return value }
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        guard let value = first else { throw Timeout(what: what) }
        return value
    }
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(_ what: String, seconds: Double = 10, _ condition: () throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        if Date() > deadline { throw Timeout(what: what) }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
}

let environment = ProcessInfo.processInfo.environment

func config(_ user: String, _ password: String, _ dir: URL, key: [UInt8] = Array(repeating: 3, count: 32)) -> AccountConfig {
    AccountConfig(
        jid: "\(user)@localhost", password: Secret(value: password), resource: "swift",
        serverHost: "127.0.0.1", serverPort: UInt16(environment["WAXWING_C2S"] ?? "5222"), directTls: false,
        extraCaPem: environment["WAXWING_CA"].flatMap { try? String(contentsOfFile: $0, encoding: .utf8) },
        storeDir: dir.path, storeKey: Data(key)
    )
}

func tempDir() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("waxwing-swift-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func unique(_ text: String) -> String { "\(text) \(UUID().uuidString)" }

/// Mutual presence subscription, as contacts who chat have: receipts go only to such contacts.
/// A server answers a request it already granted by itself, so each side waits
/// for either the request or its roster showing the subscription.
func befriend(_ a: WaxwingSession, _ aJid: String, _ b: WaxwingSession, _ bJid: String) async throws {
    func friends() throws -> Bool {
        try a.roster().contains { $0.jid == bJid && $0.subscription == .both }
            && b.roster().contains { $0.jid == aJid && $0.subscription == .both }
    }
    if try friends() { return }
    for (asker, askerJid, answerer, answererJid) in [(a, aJid, b, bJid), (b, bJid, a, aJid)] {
        try asker.requestSubscription(answererJid)
        let asked = try await awaitEvent(answerer, "a subscription request from \(askerJid)") { event -> Bool? in
            if case .subscriptionRequest(let from) = event, from == askerJid { return true }
            if case .rosterChanged(let contacts) = event,
               contacts.contains(where: { $0.jid == askerJid && [.from, .both].contains($0.subscription) }) { return false }
            return nil
        }
        if asked { try answerer.approveSubscription(askerJid) }
    }
    try await eventually("a mutual subscription", friends)
}

func received(_ body: String) -> @Sendable (Event) -> Message? {
    { event in
        if case .messageReceived(let message) = event, message.body == body { return message }
        return nil
    }
}

final class WaxwingTests: XCTestCase {
    /// Issue 12, defect 9: a config printed into a log or a crash report must not carry the password.
    func testAPrintedConfigDoesNotShowThePassword() {
        let printed = String(describing: config("salice", "s3cret-pw", tempDir()))
        XCTAssertTrue(printed.contains("salice@localhost"), printed)
        XCTAssertFalse(printed.contains("s3cret-pw"), printed)
    }

    func testChatsWithAnotherClientAndReadsHistoryBackAfterRestart() async throws {
        let aliceDir = tempDir()
        let body = unique("from swift")
        do {
            let alice = try WaxwingSession(config: config("salice", "pw1", aliceDir))
            let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
            // With Bind2 the server picks the resource (tag + installation id).
            let bound = try await alice.login()
            XCTAssertTrue(bound.hasPrefix("salice@localhost/"), bound)
            try await bob.login()
            try await befriend(alice, "salice@localhost", bob, "sbob@localhost")
            let sent = try alice.send(body, to: "sbob@localhost")
            XCTAssertEqual(sent.state, .queued)
            let got = try await awaitEvent(bob, "bob receiving the message", received(body))
            XCTAssertEqual(got.peer, "salice@localhost")
            _ = try await awaitEvent(alice, "the message delivered") { event -> Message? in
                if case .messageStateChanged(let m) = event, m.id == sent.id, m.state == .delivered { return m }
                return nil
            }
            try await alice.logout()
            try await bob.logout()
        }
        // Both sessions are released here; a new one reads the store back.
        let again = try WaxwingSession(config: config("salice", "pw1", aliceDir))
        let history = try again.history(with: "sbob@localhost")
        // Newest first; other tests' messages with sbob may come from the archive.
        XCTAssertEqual(history.first?.body, body)
        XCTAssertEqual(history.filter { $0.body == body }.count, 1)
        XCTAssertEqual(try again.conversations().map(\.peer), ["sbob@localhost"])
    }

    func testRoomsAreJoinedAndTheirMessagesSayWhoWroteThem() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await alice.login()
        try await bob.login()
        let room = unique("swift").replacingOccurrences(of: " ", with: "-").lowercased() + "@muc.localhost"
        let aliceNick = try await alice.joinRoom(room, nick: "alice")
        XCTAssertEqual(aliceNick, "alice")
        try alice.inviteToRoom(room, jid: "sbob@localhost", reason: "come in")
        let invite = try await awaitEvent(bob, "bob invited") { event -> (String, String, String?)? in
            if case .roomInvite(let r, let from, let reason, _, _) = event { return (r, from, reason) }
            return nil
        }
        XCTAssertEqual(invite.0, room)
        // A semi-anonymous room names the inviter by nick.
        XCTAssertEqual(invite.1, "\(room)/alice")
        XCTAssertEqual(invite.2, "come in")
        let bobNick = try await bob.joinRoom(room, nick: "bob")
        XCTAssertEqual(bobNick, "bob")
        let other = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await other.login()
        do {
            try await other.joinRoom(room, nick: "alice")
            XCTFail("a taken nick should be refused")
        } catch WaxwingError.Refused(let condition) {
            XCTAssertTrue(condition.contains("NickInUse"), condition)
        }
        let body = unique("to the room")
        let sent = try alice.sendRoomMessage(body, to: room)
        let got = try await awaitEvent(bob, "bob receiving the room message", received(body))
        XCTAssertEqual(got.peer, room)
        XCTAssertEqual(got.room?.nick, "alice")
        _ = try await awaitEvent(alice, "the room reflecting the message") { event -> Message? in
            if case .messageStateChanged(let m) = event, m.id == sent.id, m.state == .delivered { return m }
            return nil
        }
        XCTAssertEqual(try alice.history(with: room).filter { $0.body == body }.count, 1)
        let newNick = try await bob.changeNick(room, nick: "bobby")
        XCTAssertEqual(newNick, "bobby")
        try await alice.setBookmark(room, autojoin: true, name: "Swift room")
        let bookmark = try alice.bookmarks().first { $0.room == room }
        XCTAssertEqual(bookmark?.name, "Swift room")
        XCTAssertEqual(bookmark?.autojoin, true)
        try await alice.removeBookmark(room)
        XCTAssertTrue(try alice.bookmarks().allSatisfy { $0.room != room })
        // A private group: bob gets in once he is a member.
        let group = unique("sgroup").replacingOccurrences(of: " ", with: "-").lowercased() + "@muc.localhost"
        try await alice.createRoom(group, nick: "alice", kind: .privateGroup, name: "Swift group")
        do {
            try await bob.joinRoom(group, nick: "bob")
            XCTFail("a members-only room should refuse a non-member")
        } catch WaxwingError.Refused(let condition) {
            XCTAssertTrue(condition.contains("MembersOnly"), condition)
        }
        try await alice.setRoomAffiliation(group, jid: "sbob@localhost", affiliation: .member)
        let bobInGroup = try await bob.joinRoom(group, nick: "bob")
        XCTAssertEqual(bobInGroup, "bob")
        let members = try await alice.roomMembers(group)
        XCTAssertEqual(members, ["salice@localhost", "sbob@localhost"])
        try await alice.destroyRoom(group)
        try await alice.logout()
        try await bob.logout()
        try await other.logout()
    }

    func testWrongPasswordIsATypedException() async throws {
        let client = try WaxwingSession(config: config("salice", "not-the-password", tempDir()))
        do {
            try await client.login()
            XCTFail("login should fail")
        } catch WaxwingError.AuthenticationFailed {
        }
        guard case .disconnected(_, let willRetry) = client.connectionState else {
            return XCTFail("\(client.connectionState)")
        }
        XCTAssertFalse(willRetry)
    }

    func testWrongStoreKeyIsATypedException() throws {
        let dir = tempDir()
        _ = try WaxwingSession(config: config("salice", "pw1", dir))
        XCTAssertThrowsError(try WaxwingSession(config: config("salice", "pw1", dir, key: Array(repeating: 9, count: 32)))) { error in
            guard case WaxwingError.Store(let failure) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failure, .wrongKey)
        }
        XCTAssertThrowsError(try WaxwingSession(config: config("salice", "pw1", tempDir(), key: Array(repeating: 1, count: 5)))) { error in
            guard case WaxwingError.Store(let failure) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failure, .invalidKey)
        }
    }

    /// Issue 16: a store shared with the Notification Service Extension keeps
    /// SQLite's header in plaintext, so iOS does not kill the suspended app.
    func testAStoreWithAPlaintextHeaderLooksLikeSqliteAndNeedsItsSalt() throws {
        let dir = tempDir()
        var shared = config("salice", "pw1", dir)
        shared.storeHeaderSalt = Data(Array(repeating: 7, count: 16))
        do {
            let alice = try WaxwingSession(config: shared)
            try alice.send("kept in a shared container", to: "sbob@localhost")
        }
        let header = try Data(contentsOf: dir.appendingPathComponent("waxwing.db")).prefix(16)
        XCTAssertEqual(header, Data("SQLite format 3\0".utf8))
        XCTAssertThrowsError(try WaxwingSession(config: config("salice", "pw1", dir))) { error in
            guard case WaxwingError.Store(let failure) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failure, .wrongKey)
        }
        var badSalt = shared
        badSalt.storeHeaderSalt = Data([1, 2, 3])
        XCTAssertThrowsError(try WaxwingSession(config: badSalt)) { error in
            guard case WaxwingError.Store(let failure) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failure, .invalidKey)
        }
        let again = try WaxwingSession(config: shared)
        XCTAssertEqual(try again.history(with: "sbob@localhost").map(\.body), ["kept in a shared container"])
    }

    func testMessagesSentOfflineGoOutOnLogin() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await bob.login()
        let body = unique("queued")
        XCTAssertEqual(try alice.send(body, to: "sbob@localhost").state, .queued)
        try await alice.login()
        _ = try await awaitEvent(bob, "bob receiving the queued message", received(body))
        try await alice.logout()
        try await bob.logout()
    }

    func testRosterEditsArriveAsEvents() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        try await alice.login()
        try await alice.addContact("sbob@localhost", name: "Bob")
        _ = try await awaitEvent(alice, "a roster with Bob") { event -> Bool? in
            if case .rosterChanged(let contacts) = event, contacts.contains(where: { $0.name == "Bob" }) { return true }
            return nil
        }
        XCTAssertEqual(try alice.roster().map(\.jid), ["sbob@localhost"])
        try await alice.renameContact("sbob@localhost", name: "Robert")
        _ = try await awaitEvent(alice, "a roster with Robert") { event -> Bool? in
            if case .rosterChanged(let contacts) = event, contacts.contains(where: { $0.name == "Robert" }) { return true }
            return nil
        }
        XCTAssertEqual(try alice.roster().map(\.name), ["Robert"])
        try await alice.removeContact("sbob@localhost")
        try await alice.logout()
    }

    func testPresenceAndUnreadCountsOfAContact() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await alice.login()
        try await bob.login()
        try await befriend(alice, "salice@localhost", bob, "sbob@localhost")
        let status = unique("in a meeting")
        try bob.setPresence(.away, status: status)
        _ = try await awaitEvent(alice, "bob's away presence") { event -> Bool? in
            if case .presenceChanged(let jid, _, let availability, let text) = event,
               jid == "sbob@localhost", availability == .away, text == status { return true }
            return nil
        }
        XCTAssertTrue(alice.presence(of: "sbob@localhost").contains { $0.availability == .away && $0.status == status })
        let body = unique("unread")
        try bob.send(body, to: "salice@localhost")
        _ = try await awaitEvent(alice, "alice receiving the message", received(body))
        let unread = try alice.conversations().first { $0.peer == "sbob@localhost" }
        XCTAssertEqual(unread?.lastMessage?.body, body)
        XCTAssertGreaterThan(unread?.unreadCount ?? 0, 0)
        try alice.markRead("sbob@localhost")
        XCTAssertEqual(try alice.conversations().first { $0.peer == "sbob@localhost" }?.unreadCount, 0)
        try await bob.logout()
        _ = try await awaitEvent(alice, "bob going offline") { event -> Bool? in
            if case .presenceChanged(let jid, _, .unavailable, _) = event, jid == "sbob@localhost" { return true }
            return nil
        }
        XCTAssertEqual(alice.presence(of: "sbob@localhost"), [])
        try await alice.logout()
    }

    func testLifecycleHooksDropAndResumeTheSession() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await alice.login()
        try await bob.login()
        alice.setForeground(false)
        alice.networkLost()
        _ = try await awaitEvent(alice, "a disconnect that will retry") { event -> Bool? in
            if case .connectionChanged(.disconnected(_, true)) = event { return true }
            return nil
        }
        let body = unique("while the network was down")
        try bob.send(body, to: "salice@localhost")
        alice.networkAvailable()
        _ = try await awaitEvent(alice, "the session resumed") { event -> Bool? in
            if case .connectionChanged(.online(_, _, _, true)) = event { return true }
            return nil
        }
        _ = try await awaitEvent(alice, "the message sent while down", received(body))
        alice.setForeground(true)
        try await alice.logout()
        try await bob.logout()
    }

    /// The app server's record of each push (scripts/push_app_server.py), one JSON object a line.
    func pushes() -> [[String: Any]] {
        guard let path = environment["WAXWING_PUSHES"],
              let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func testPushRegistrationDecryptionAndWakeUp() async throws {
        let dir = tempDir()
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        do {
            let alice = try WaxwingSession(config: config("salice", "pw1", dir))
            try await alice.login()
            try await bob.login()
            try await alice.enablePush(service: "push.localhost", node: "swift-node", secret: "s3cret")
            try await alice.suspendSession()
        }
        let body = unique("pushed")
        let seen = pushes().count
        try bob.send(body, to: "salice@localhost")
        // Find the push about bob's message (others may carry no sender, or
        // be about a receipt without a body).
        var found: EncryptedPush?
        var next = seen
        let deadline = Date().addingTimeInterval(10)
        while found == nil {
            let records = pushes()
            if records.count > next {
                let record = records[next]
                next += 1
                guard let iv = record["iv"] as? String, let payload = record["payload"] as? String else { continue }
                let push = EncryptedPush(iv: iv, payload: payload)
                if let item = try? await WaxwingPush.decrypt(config: config("salice", "pw1", dir), push: push),
                   item.sender == "sbob@localhost", item.preview == body {
                    found = push
                }
            } else {
                if Date() > deadline { throw Timeout(what: "a push about bob's message") }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        let payload = try XCTUnwrap(found)
        let decrypted = try await WaxwingPush.wakeUp(config: config("salice", "pw1", dir), push: payload)
        guard case .decrypted = decrypted.outcome else { return XCTFail("\(decrypted.outcome)") }
        XCTAssertEqual(decrypted.items.map(\.preview), [body])
        // Unreadable payload: typed failure, and the message fetched instead.
        let broken = EncryptedPush(iv: payload.iv, payload: "AAAA" + payload.payload.dropFirst(4))
        let fetched = try await WaxwingPush.wakeUp(config: config("salice", "pw1", dir), push: broken)
        XCTAssertEqual(fetched.payloadFailure, .decryptionFailed)
        guard case .fetched(let resumed, _) = fetched.outcome else { return XCTFail("\(fetched.outcome)") }
        XCTAssertTrue(resumed)
        XCTAssertEqual(fetched.items.map(\.preview), [body])
        do {
            _ = try await WaxwingPush.decrypt(config: config("salice", "pw1", tempDir()), push: payload)
            XCTFail("a store that never registered must not decrypt")
        } catch WaxwingError.Push(let failure) {
            XCTAssertEqual(failure, .notRegistered)
        }
        let again = try WaxwingSession(config: config("salice", "pw1", dir))
        try await again.login()
        try await again.disablePush()
        try await again.logout()
        try await bob.logout()
    }

    func testLogLinesReachTheAppSink() async throws {
        final class Lines: LogSink, @unchecked Sendable {
            private let lock = NSLock()
            private var lines: [String] = []
            func log(level: LogLevel, line: String) { lock.lock(); lines.append(line); lock.unlock() }
            var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
        }
        let lines = Lines()
        WaxwingLog.start(level: .info, sink: lines)
        // A new store creates its OMEMO device at the first login, and says so.
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        try await alice.login()
        try await eventually("the log line about our new device") {
            lines.all.contains { $0.contains("created our OMEMO device") }
        }
        try await alice.logout()
    }

    func testARustPanicIsAnExceptionNotACrash() {
        // A throwing call only: uniffi's Swift calls a non-throwing function
        // with `try!`, where a panic would stop the app.
        XCTAssertThrowsError(try diagnosticsTriggerPanic()) { error in
            XCTAssertTrue("\(error)".contains("diagnostics_trigger_panic was called"), "\(error)")
        }
        // The library still works afterwards.
        XCTAssertFalse(waxwingVersion().isEmpty)
    }

    func testBadJidIsATypedException() throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        XCTAssertThrowsError(try alice.send("x", to: "not a jid@@")) { error in
            guard case WaxwingError.InvalidJid = error else { return XCTFail("\(error)") }
        }
    }

    func testEncryptedChatShowsEncryptionFingerprintsAndTrust() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await alice.login()
        try await bob.login()
        // Contacts find a device once it is in the published device lists.
        for session in [alice, bob] {
            try await eventually("our device published") { try session.ownDevice().versions.count >= 2 }
        }
        try alice.setEncryption(.auto, with: "sbob@localhost")
        XCTAssertEqual(try alice.encryption(with: "sbob@localhost"), .auto)
        let body = unique("secret from swift")
        let sent = try alice.send(body, to: "sbob@localhost")
        let got = try await awaitEvent(bob, "bob receiving the encrypted message", received(body))
        XCTAssertEqual(got.security.encryption, .omemo2)
        XCTAssertEqual(got.security.senderTrust, .blindlyTrusted)
        XCTAssertNil(got.security.undecryptable)
        let mine = try alice.history(with: "sbob@localhost").first { $0.id == sent.id }
        XCTAssertEqual(mine?.security.encryption, .omemo2)
        // Bob sees Alice's device with the fingerprint Alice sees for herself.
        let aliceDevice = try alice.ownDevice()
        XCTAssertTrue(aliceDevice.thisDevice)
        let seen = try XCTUnwrap(try bob.devices(of: "salice@localhost").first { $0.deviceId == got.security.senderDevice })
        XCTAssertEqual(seen.fingerprint, aliceDevice.fingerprint)
        // Verification takes the fingerprint compared; another one is refused.
        let wrong = "00" + String(try XCTUnwrap(seen.fingerprint).dropFirst(2))
        XCTAssertThrowsError(try bob.setTrust(.verified, jid: "salice@localhost", deviceId: seen.deviceId, fingerprint: wrong)) { error in
            guard case WaxwingError.FingerprintMismatch = error else { return XCTFail("\(error)") }
        }
        try bob.setTrust(.verified, jid: "salice@localhost", deviceId: seen.deviceId, fingerprint: seen.fingerprint)
        _ = try await awaitEvent(bob, "the trust change") { event -> Bool? in
            if case .omemoTrustChanged(_, _, .verified) = event { return true }
            return nil
        }
        XCTAssertEqual(try bob.devices(of: "salice@localhost").first { $0.deviceId == seen.deviceId }?.trust, .verified)
        XCTAssertThrowsError(try bob.setTrust(.verified, jid: "salice@localhost", deviceId: 1, fingerprint: "00")) { error in
            guard case WaxwingError.UnknownDevice = error else { return XCTFail("\(error)") }
        }
        // The user replaces the session with Alice's device: the chat goes on.
        try bob.replaceSession(jid: "salice@localhost", deviceId: seen.deviceId)
        let after = unique("after a new session")
        try alice.send(after, to: "sbob@localhost")
        let read = try await awaitEvent(bob, "the message after the new session", received(after))
        XCTAssertNil(read.security.undecryptable)
        // The account's policy: blind trust by default, manual on request.
        XCTAssertEqual(try bob.trustPolicy(), .blindTrustBeforeVerification)
        try bob.setTrustPolicy(.manual)
        XCTAssertEqual(try bob.trustPolicy(), .manual)
        // Push previews: on by default, off on request.
        XCTAssertTrue(try bob.pushPreviews())
        try bob.setPushPreviews(false)
        XCTAssertFalse(try bob.pushPreviews())
        try await alice.logout()
        try await bob.logout()
    }

    /// Issue 16, capability 6: a consumer that does not keep up costs the
    /// oldest events, never unbounded memory, and is told so.
    func testASlowCollectorGetsTheNewestEventsAndACountOfTheDropped() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()), eventBuffer: 3)
        try await alice.login()
        // Nobody iterates while ten messages go out: each is stored, sent
        // and acknowledged, an event each time.
        let sent = try (1...10).map { try alice.send(unique("burst \($0)"), to: "sbob@localhost") }
        let ids = Set(sent.map(\.id))
        try await eventually("all ten acknowledged") {
            try alice.history(with: "sbob@localhost", limit: 50).filter { ids.contains($0.id) }
                .allSatisfy { $0.state == .acked || $0.state == .delivered }
        }
        // The buffer holds the three newest; the marker comes first, with at
        // least one acknowledgement per message minus those three dropped.
        var got: [Event] = []
        for await event in alice.events {
            got.append(event)
            if got.count == 4 { break }
        }
        guard case .eventsDropped(let count) = got.first, count >= 7 else { return XCTFail("\(got)") }
        XCTAssertFalse(got.dropFirst().contains { if case .eventsDropped = $0 { return true } else { return false } }, "\(got)")
        // The oldest went: nine acknowledgements came after any event about the first message.
        XCTAssertFalse(got.contains { if case .messageStateChanged(let m) = $0 { return m.id == sent[0].id } else { return false } }, "\(got)")
        try await alice.logout()
    }

    /// Issue 16, capability 6: every call after close() is a typed error, never a crash.
    func testCallsAfterCloseAreATypedError() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        try await alice.login()
        alice.close()
        func closed(_ what: String, _ error: Error) {
            guard case WaxwingError.Closed = error else { return XCTFail("\(what): \(error)") }
        }
        do { _ = try await alice.login(); XCTFail("login") } catch { closed("login", error) }
        XCTAssertThrowsError(try alice.send("too late", to: "sbob@localhost")) { closed("send", $0) }
        XCTAssertThrowsError(try alice.history(with: "sbob@localhost")) { closed("history", $0) }
        XCTAssertThrowsError(try alice.roster()) { closed("roster", $0) }
        do { try await alice.addContact("sbob@localhost"); XCTFail("addContact") } catch { closed("addContact", error) }
        XCTAssertThrowsError(try alice.ownDevice()) { closed("ownDevice", $0) }
        do { try await alice.enablePush(service: "push.localhost", node: "n"); XCTFail("enablePush") } catch { closed("enablePush", error) }
        do { try await alice.suspendSession(); XCTFail("suspendSession") } catch { closed("suspendSession", error) }
        do { try await alice.logout(); XCTFail("logout") } catch { closed("logout", error) }
        // Getters and lifecycle hooks stay harmless.
        XCTAssertEqual(alice.ownJid, "salice@localhost")
        guard case .disconnected = alice.connectionState else { return XCTFail("\(alice.connectionState)") }
        alice.setForeground(true)
        alice.networkAvailable()
        alice.networkLost()
        XCTAssertEqual(alice.presence(of: "sbob@localhost"), [])
        alice.close()
    }

    /// Issue 16, capability 6: cancelling the Task of a call leaves the account usable.
    func testCancelledCallsLeaveTheAccountUsable() async throws {
        let alice = try WaxwingSession(config: config("salice", "pw1", tempDir()))
        let bob = try WaxwingSession(config: config("sbob", "pw2", tempDir()))
        try await bob.login()
        let login = Task { try await alice.login() }
        try await Task.sleep(nanoseconds: 5_000_000)
        login.cancel()
        _ = await login.result
        try await alice.login()
        for call in [{ try await alice.logout() }, { try await alice.suspendSession() }] as [@Sendable () async throws -> Void] {
            let task = Task { try await call() }
            try await Task.sleep(nanoseconds: 2_000_000)
            task.cancel()
            _ = await task.result
        }
        // Whatever the cancelled calls left behind, a login brings it back.
        try await alice.login()
        let body = unique("after cancellations")
        try bob.send(body, to: "salice@localhost")
        _ = try await awaitEvent(alice, "the message after cancellations", received(body))
        try await alice.logout()
        try await bob.logout()
    }
}
