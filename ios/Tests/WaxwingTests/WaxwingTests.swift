// XCTest sources for the Swift layer. They need a Swift toolchain and a
// Prosody started by scripts/prosody.sh (ports in WAXWING_C2S / WAXWING_CA);
// on machines without Swift they are syntax-checked only.
import XCTest
@testable import Waxwing

final class WaxwingTests: XCTestCase {
    func config(user: String, password: String, dir: URL, key: [UInt8] = Array(repeating: 3, count: 32)) -> AccountConfig {
        let env = ProcessInfo.processInfo.environment
        return AccountConfig(
            jid: "\(user)@localhost", password: Secret(value: password), resource: "swift",
            serverHost: "127.0.0.1", serverPort: UInt16(env["WAXWING_C2S"] ?? "5222"), directTls: false,
            extraCaPem: env["WAXWING_CA"].flatMap { try? String(contentsOfFile: $0) },
            storeDir: dir.path, storeKey: Data(key)
        )
    }

    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Issue 12, defect 9: a printed config must not carry the password.
    func testAPrintedConfigDoesNotShowThePassword() {
        let printed = String(describing: config(user: "salice", password: "s3cret-pw", dir: tempDir()))
        XCTAssertTrue(printed.contains("salice@localhost"), printed)
        XCTAssertFalse(printed.contains("s3cret-pw"), printed)
    }

    func testWrongStoreKeyThrowsTypedError() throws {
        let dir = tempDir()
        _ = try WaxwingSession(config: config(user: "salice", password: "pw1", dir: dir))
        XCTAssertThrowsError(try WaxwingSession(config: config(user: "salice", password: "pw1", dir: dir, key: Array(repeating: 9, count: 32)))) { error in
            guard case WaxwingError.Store(let failure) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failure, .wrongKey)
        }
    }

    func testChatAndHistory() async throws {
        let alice = try WaxwingSession(config: config(user: "salice", password: "pw1", dir: tempDir()))
        let bob = try WaxwingSession(config: config(user: "sbob", password: "pw2", dir: tempDir()))
        try await alice.login()
        try await bob.login()
        let body = "from swift \(UUID())"
        try alice.send(body, to: "sbob@localhost")
        for await event in bob.events {
            if case .messageReceived(let message) = event, message.body == body { break }
        }
        XCTAssertEqual(try alice.history(with: "sbob@localhost").first?.body, body)
    }

    func testEncryptedChatShowsEncryptionAndTrust() async throws {
        let alice = try WaxwingSession(config: config(user: "salice", password: "pw1", dir: tempDir()))
        let bob = try WaxwingSession(config: config(user: "sbob", password: "pw2", dir: tempDir()))
        try await alice.login()
        try await bob.login()
        for session in [alice, bob] {
            while try session.ownDevice().versions.count < 2 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        try alice.setEncryption(.auto, with: "sbob@localhost")
        let body = "secret from swift \(UUID())"
        try alice.send(body, to: "sbob@localhost")
        for await event in bob.events {
            if case .messageReceived(let message) = event, message.body == body {
                XCTAssertEqual(message.security.encryption, .omemo2)
                XCTAssertEqual(message.security.senderTrust, .blindlyTrusted)
                let device = try bob.devices(of: "salice@localhost").first { $0.deviceId == message.security.senderDevice }
                XCTAssertEqual(device?.fingerprint, try alice.ownDevice().fingerprint)
                break
            }
        }
    }

    func testWrongPasswordThrowsAuthenticationFailed() async throws {
        let client = try WaxwingSession(config: config(user: "salice", password: "nope", dir: tempDir()))
        do {
            try await client.login()
            XCTFail("login should fail")
        } catch WaxwingError.AuthenticationFailed {
        }
    }
}
