// JVM tests of the Kotlin API against the real library and a real Prosody
// (started by scripts/test-kotlin.sh; its ports and CA come in as system
// properties).
package im.waxwing

import java.io.File
import java.nio.file.Files
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Test

class WaxwingTest {
    private val port = System.getProperty("waxwing.c2s").toUShort()
    private val ca = File(System.getProperty("waxwing.ca")).readText()
    private val key = ByteArray(32) { 3 }

    private fun config(user: String, password: String, dir: File, storeKey: ByteArray = key) = AccountConfig(
        jid = "$user@localhost", password = Secret(password), resource = "jvm",
        serverHost = "127.0.0.1", serverPort = port, directTls = false,
        extraCaPem = ca, storeDir = dir.path, storeKey = storeKey,
    )

    private fun tempDir(): File = Files.createTempDirectory("waxwing-kt").toFile()

    /** Mutual presence subscription, as contacts who chat have: receipts go only to such contacts.
     *  A server answers a request it already granted by itself, so each side waits
     *  for either the request or its roster showing the subscription. */
    private suspend fun befriend(a: Waxwing, aJid: String, b: Waxwing, bJid: String) {
        suspend fun friends() = a.roster().any { it.jid == bJid && it.subscription == Subscription.BOTH } &&
            b.roster().any { it.jid == aJid && it.subscription == Subscription.BOTH }
        suspend fun ask(asker: Waxwing, askerJid: String, answerer: Waxwing, answererJid: String) {
            asker.requestSubscription(answererJid)
            val asked = answerer.events.awaitEvent {
                when {
                    it is Event.SubscriptionRequest && it.from == askerJid -> true
                    it is Event.RosterChanged && it.contacts.any { c ->
                        c.jid == askerJid && c.subscription in setOf(Subscription.FROM, Subscription.BOTH)
                    } -> false
                    else -> null
                }
            }
            if (asked) answerer.approveSubscription(askerJid)
        }
        if (friends()) return
        ask(a, aJid, b, bJid)
        ask(b, bJid, a, aJid)
        withTimeout(10_000) { while (!friends()) delay(100) }
    }

    private suspend fun <T> Flow<Event>.awaitEvent(pick: (Event) -> T?): T =
        withTimeout(10_000) { first { pick(it) != null }.let { pick(it)!! } }

    /** Issue 12, defect 9: a config printed into a log or a crash report
     *  must not carry the password (a generated data class prints every field). */
    @Test
    fun aPrintedConfigDoesNotShowThePassword() {
        val printed = config("kalice", "s3cret-pw", tempDir()).toString()
        assertTrue("kalice@localhost" in printed, printed)
        assertFalse("s3cret-pw" in printed, printed)
    }

    /** Issue 12, defect 14: a listener that throws costs its events, not the connection. */
    @Test
    fun aListenerThatThrowsDoesNotKillTheConnection() = runBlocking<Unit> {
        val throwing = object : ClientListener {
            override fun onEvent(event: Event) = throw IllegalStateException("app bug")
        }
        val alice = WaxwingClient.open(config("kalice", "pw1", tempDir()), throwing)
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login()
        bob.login()
        val body = "to a clumsy app ${System.nanoTime()}"
        bob.sendMessage("kalice@localhost", body)
        withTimeout(10_000) {
            while (alice.history("kbob@localhost", null, 10u).none { it.body == body }) delay(100)
        }
        alice.logout()
        bob.logout()
        alice.close()
        bob.close()
    }

    @Test
    fun chatsWithAnotherClientAndReadsHistoryBackAfterRestart() = runBlocking<Unit> {
        val aliceDir = tempDir()
        val alice = Waxwing.open(config("kalice", "pw1", aliceDir))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        // With Bind2 the server picks the resource (tag + installation id).
        assertTrue(alice.login().startsWith("kalice@localhost/"))
        bob.login()
        befriend(alice, "kalice@localhost", bob, "kbob@localhost")
        val body = "from kotlin ${System.nanoTime()}"
        val sent = alice.sendMessage("kbob@localhost", body)
        assertEquals(MessageState.QUEUED, sent.state)
        val got = bob.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        assertEquals("kalice@localhost", got.peer)
        alice.events.awaitEvent {
            (it as? Event.MessageStateChanged)?.message?.takeIf { m -> m.id == sent.id && m.state == MessageState.DELIVERED }
        }
        alice.logout(); bob.logout()
        alice.close(); bob.close()

        val again = Waxwing.open(config("kalice", "pw1", aliceDir))
        val history = again.history("kbob@localhost")
        // Newest first; other tests' messages with kbob may come from the archive.
        assertEquals(body, history.first().body)
        assertEquals(1, history.count { it.body == body })
        assertEquals("kbob@localhost", again.conversations().single().peer)
        again.close()
    }

    @Test
    fun roomsAreJoinedAndTheirMessagesSayWhoWroteThem() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login(); bob.login()
        val room = "kotlin-${System.nanoTime()}@muc.localhost"
        assertEquals("alice", alice.joinRoom(room, "alice"))
        alice.inviteToRoom(room, "kbob@localhost", "come in")
        val invite = bob.events.awaitEvent { it as? Event.RoomInvite }
        assertEquals(room, invite.room)
        // A semi-anonymous room names the inviter by nick.
        assertEquals("$room/alice", invite.from)
        assertEquals("come in", invite.reason)
        assertEquals("bob", bob.joinRoom(room, "bob"))
        val other = Waxwing.open(config("kbob", "pw2", tempDir()))
        other.login()
        val taken = assertFailsWith<WaxwingException.Refused> { other.joinRoom(room, "alice") }
        assertTrue(taken.condition.contains("NickInUse"), taken.condition)
        other.logout(); other.close()
        val body = "to the room ${System.nanoTime()}"
        val sent = alice.sendRoomMessage(room, body)
        val got = bob.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        assertEquals(room, got.peer)
        assertEquals("alice", got.room?.nick)
        alice.events.awaitEvent {
            (it as? Event.MessageStateChanged)?.message?.takeIf { m -> m.id == sent.id && m.state == MessageState.DELIVERED }
        }
        assertEquals(1, alice.history(room).count { it.body == body })
        assertEquals("bobby", bob.changeNick(room, "bobby"))
        alice.setBookmark(room, autojoin = true, name = "Kotlin room")
        val bookmark = alice.bookmarks().single { it.room == room }
        assertEquals("Kotlin room", bookmark.name)
        assertTrue(bookmark.autojoin)
        alice.removeBookmark(room)
        assertTrue(alice.bookmarks().none { it.room == room })
        // A private group: bob gets in once he is a member.
        val group = "kgroup-${System.nanoTime()}@muc.localhost"
        alice.createRoom(group, "alice", RoomKind.PRIVATE_GROUP, "Kotlin group")
        val refused = assertFailsWith<WaxwingException.Refused> { bob.joinRoom(group, "bob") }
        assertTrue(refused.condition.contains("MembersOnly"), refused.condition)
        alice.setRoomAffiliation(group, "kbob@localhost", RoomAffiliation.MEMBER)
        assertEquals("bob", bob.joinRoom(group, "bob"))
        assertEquals(listOf("kalice@localhost", "kbob@localhost"), alice.roomMembers(group))
        alice.destroyRoom(group)
        alice.logout(); bob.logout()
        alice.close(); bob.close()
    }

    @Test
    fun wrongPasswordIsATypedException() = runBlocking<Unit> {
        val client = Waxwing.open(config("kalice", "not-the-password", tempDir()))
        assertFailsWith<WaxwingException.AuthenticationFailed> { client.login() }
        val state = client.connectionState
        assertTrue(state is ConnectionState.Disconnected && !state.willRetry)
        client.close()
    }

    @Test
    fun wrongStoreKeyIsATypedException() = runBlocking<Unit> {
        val dir = tempDir()
        Waxwing.open(config("kalice", "pw1", dir)).close()
        val e = assertFailsWith<WaxwingException.Store> {
            Waxwing.open(config("kalice", "pw1", dir, ByteArray(32) { 9 }))
        }
        assertEquals(StoreFailure.WRONG_KEY, e.failure)
        val short = assertFailsWith<WaxwingException.Store> { Waxwing.open(config("kalice", "pw1", tempDir(), ByteArray(5))) }
        assertEquals(StoreFailure.INVALID_KEY, short.failure)
    }

    /** Issue 16: a store shared with an iOS Notification Service Extension keeps
     *  SQLite's header in plaintext (the option is the same on every platform). */
    @Test
    fun aStoreWithAPlaintextHeaderLooksLikeSqliteAndNeedsItsSalt() = runBlocking<Unit> {
        val dir = tempDir()
        val shared = config("kalice", "pw1", dir).copy(storeHeaderSalt = ByteArray(16) { 7 })
        Waxwing.open(shared).use { it.sendMessage("kbob@localhost", "kept in a shared container") }
        val header = File(dir, "waxwing.db").readBytes().copyOfRange(0, 16)
        assertEquals("SQLite format 3\u0000", String(header, Charsets.US_ASCII))
        val unsalted = assertFailsWith<WaxwingException.Store> { Waxwing.open(config("kalice", "pw1", dir)) }
        assertEquals(StoreFailure.WRONG_KEY, unsalted.failure)
        val badSalt = assertFailsWith<WaxwingException.Store> {
            Waxwing.open(shared.copy(storeHeaderSalt = ByteArray(3)))
        }
        assertEquals(StoreFailure.INVALID_KEY, badSalt.failure)
        Waxwing.open(shared).use { again ->
            assertEquals(listOf("kept in a shared container"), again.history("kbob@localhost").map { it.body })
        }
    }

    @Test
    fun messagesSentOfflineGoOutOnLogin() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        bob.login()
        val body = "queued ${System.nanoTime()}"
        assertEquals(MessageState.QUEUED, alice.sendMessage("kbob@localhost", body).state)
        alice.login()
        bob.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        alice.logout(); bob.logout(); alice.close(); bob.close()
    }

    @Test
    fun rosterEditsArriveAsEvents() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        alice.login()
        alice.addContact("kbob@localhost", "Bob")
        alice.events.awaitEvent { (it as? Event.RosterChanged)?.contacts?.takeIf { c -> c.any { x -> x.name == "Bob" } } }
        assertEquals(listOf("kbob@localhost"), alice.roster().map { it.jid })
        alice.renameContact("kbob@localhost", "Robert")
        alice.events.awaitEvent { (it as? Event.RosterChanged)?.contacts?.takeIf { c -> c.any { x -> x.name == "Robert" } } }
        assertEquals(listOf("Robert"), alice.roster().map { it.name })
        alice.removeContact("kbob@localhost")
        alice.logout(); alice.close()
    }

    @Test
    fun presenceAndUnreadCountsOfAContact() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login(); bob.login()
        befriend(alice, "kalice@localhost", bob, "kbob@localhost")
        val status = "in a meeting ${System.nanoTime()}"
        bob.setPresence(Availability.AWAY, status)
        alice.events.awaitEvent {
            (it as? Event.PresenceChanged)?.takeIf { p -> p.jid == "kbob@localhost" && p.availability == Availability.AWAY && p.status == status }
        }
        assertTrue(alice.presence("kbob@localhost").any { it.availability == Availability.AWAY && it.status == status })
        val body = "unread ${System.nanoTime()}"
        bob.sendMessage("kalice@localhost", body)
        alice.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        val unread = alice.conversations().first { it.peer == "kbob@localhost" }
        assertEquals(body, unread.lastMessage?.body)
        assertTrue(unread.unreadCount > 0u)
        alice.markRead("kbob@localhost")
        assertEquals(0u, alice.conversations().first { it.peer == "kbob@localhost" }.unreadCount)
        bob.logout()
        alice.events.awaitEvent {
            (it as? Event.PresenceChanged)?.takeIf { p -> p.jid == "kbob@localhost" && p.availability == Availability.UNAVAILABLE }
        }
        assertEquals(emptyList(), alice.presence("kbob@localhost"))
        alice.logout(); alice.close(); bob.close()
    }

    @Test
    fun lifecycleHooksDropAndResumeTheSession() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login(); bob.login()
        alice.setForeground(false)
        alice.networkLost()
        alice.events.awaitEvent {
            ((it as? Event.ConnectionChanged)?.state as? ConnectionState.Disconnected)?.takeIf { s -> s.willRetry }
        }
        val body = "while the network was down ${System.nanoTime()}"
        bob.sendMessage("kalice@localhost", body)
        alice.networkAvailable()
        alice.events.awaitEvent {
            ((it as? Event.ConnectionChanged)?.state as? ConnectionState.Online)?.takeIf { s -> s.resumed }
        }
        alice.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        alice.setForeground(true)
        alice.logout(); bob.logout(); alice.close(); bob.close()
    }

    /** The app server's record of each push (scripts/push_app_server.py). */
    private fun pushes(): List<String> =
        File(System.getProperty("waxwing.pushes")).takeIf { it.exists() }?.readLines() ?: emptyList()

    private fun field(json: String, name: String): String? =
        Regex("\"$name\": \"([^\"]*)\"").find(json)?.groupValues?.get(1)

    @Test
    fun pushRegistrationDecryptionAndWakeUp() = runBlocking<Unit> {
        val dir = tempDir()
        val alice = Waxwing.open(config("kalice", "pw1", dir))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login(); bob.login()
        alice.enablePush("push.localhost", "kotlin-node", "s3cret")
        alice.suspendSession()
        alice.close()
        val body = "pushed ${System.nanoTime()}"
        val seen = pushes().size
        bob.sendMessage("kalice@localhost", body)
        // Find the push about bob's message (others may carry no sender, or
        // be about a receipt without a body).
        val payload = withTimeout(10_000) {
            var found: EncryptedPush? = null
            var next = seen
            while (found == null) {
                val lines = pushes()
                if (lines.size > next) {
                    val line = lines[next++]
                    val push = EncryptedPush(field(line, "iv")!!, field(line, "payload")!!)
                    val item = runCatching { WaxwingPush.decrypt(config("kalice", "pw1", dir), push) }.getOrNull()
                    if (item?.sender == "kbob@localhost" && item.preview == body) found = push
                } else kotlinx.coroutines.delay(100)
            }
            found
        }
        val decrypted = WaxwingPush.wakeUp(config("kalice", "pw1", dir), payload)
        assertEquals(WakeOutcome.Decrypted, decrypted.outcome)
        assertEquals(body, decrypted.items.single().preview)
        // Unreadable payload: typed failure, and the message fetched instead.
        val broken = EncryptedPush(payload.iv, "AAAA" + payload.payload.drop(4))
        val fetched = WaxwingPush.wakeUp(config("kalice", "pw1", dir), broken)
        assertEquals(PushFailure.DECRYPTION_FAILED, fetched.payloadFailure)
        assertTrue(fetched.outcome is WakeOutcome.Fetched && (fetched.outcome as WakeOutcome.Fetched).resumed)
        assertEquals(listOf(body), fetched.items.map { it.preview })
        val e = assertFailsWith<WaxwingException.Push> { decryptPush(config("kalice", "pw1", tempDir()), payload) }
        assertEquals(PushFailure.NOT_REGISTERED, e.failure)
        val again = Waxwing.open(config("kalice", "pw1", dir))
        again.login()
        again.disablePush()
        again.logout(); again.close()
        bob.logout(); bob.close()
    }

    @Test
    fun logLinesReachTheAppSink() = runBlocking<Unit> {
        val lines = java.util.concurrent.ConcurrentLinkedQueue<String>()
        WaxwingLog.start(LogLevel.INFO, object : LogSink {
            override fun log(level: LogLevel, line: String) { lines.add(line) }
        })
        // A new store creates its OMEMO device at the first login, and says so.
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        alice.login()
        withTimeout(10_000) { while (lines.none { "created our OMEMO device" in it }) delay(50) }
        alice.logout(); alice.close()
    }

    @Test
    fun aRustPanicIsAnExceptionNotACrash() {
        assertFailsWith<InternalException> { diagnosticsTriggerPanic() }
        // The library still works afterwards.
        assertTrue(waxwingVersion().isNotEmpty())
    }

    @Test
    fun badJidIsATypedException() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        assertFailsWith<WaxwingException.InvalidJid> { alice.sendMessage("not a jid@@", "x") }
        alice.close()
    }

    @Test
    fun encryptedChatShowsEncryptionFingerprintsAndTrust() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        alice.login(); bob.login()
        // Contacts find a device once it is in the published device lists.
        for (client in listOf(alice, bob)) {
            withTimeout(10_000) { while (client.ownDevice().versions.size < 2) delay(50) }
        }
        alice.setEncryption("kbob@localhost", ConversationEncryption.AUTO)
        assertEquals(ConversationEncryption.AUTO, alice.encryption("kbob@localhost"))
        val body = "secret from kotlin ${System.nanoTime()}"
        val sent = alice.sendMessage("kbob@localhost", body)
        val got = bob.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        assertEquals(Encryption.OMEMO2, got.security.encryption)
        assertEquals(DeviceTrust.BLINDLY_TRUSTED, got.security.senderTrust)
        assertEquals(null, got.security.undecryptable)
        val mine = alice.history("kbob@localhost").first { it.id == sent.id }
        assertEquals(Encryption.OMEMO2, mine.security.encryption)
        // Bob sees Alice's device with the fingerprint Alice sees for herself.
        val aliceDevice = alice.ownDevice()
        assertTrue(aliceDevice.thisDevice)
        val seen = bob.devices("kalice@localhost").first { it.deviceId == got.security.senderDevice }
        assertEquals(aliceDevice.fingerprint, seen.fingerprint)
        // Verification takes the fingerprint compared; another one is refused.
        assertFailsWith<WaxwingException.FingerprintMismatch> {
            bob.setTrust("kalice@localhost", seen.deviceId, DeviceTrust.VERIFIED, "00" + seen.fingerprint!!.drop(2))
        }
        bob.setTrust("kalice@localhost", seen.deviceId, DeviceTrust.VERIFIED, seen.fingerprint)
        bob.events.awaitEvent { (it as? Event.OmemoTrustChanged)?.takeIf { e -> e.trust == DeviceTrust.VERIFIED } }
        assertEquals(DeviceTrust.VERIFIED, bob.devices("kalice@localhost").first { it.deviceId == seen.deviceId }.trust)
        assertFailsWith<WaxwingException.UnknownDevice> { bob.setTrust("kalice@localhost", 1u, DeviceTrust.VERIFIED, "00") }
        // The user replaces the session with Alice's device: the chat goes on.
        bob.replaceSession("kalice@localhost", seen.deviceId)
        val after = "after a new session ${System.nanoTime()}"
        alice.sendMessage("kbob@localhost", after)
        val read = bob.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == after } }
        assertEquals(null, read.security.undecryptable)
        // The account's policy: blind trust by default, manual on request.
        assertEquals(TrustPolicy.BLIND_TRUST_BEFORE_VERIFICATION, bob.trustPolicy())
        bob.setTrustPolicy(TrustPolicy.MANUAL)
        assertEquals(TrustPolicy.MANUAL, bob.trustPolicy())
        // Push previews: on by default, off on request.
        assertTrue(bob.pushPreviews())
        bob.setPushPreviews(false)
        assertFalse(bob.pushPreviews())
        alice.logout(); bob.logout(); alice.close(); bob.close()
    }

    /** Issue 16, capability 6: a collector that does not keep up costs the
     *  oldest events, never unbounded memory, and is told so. */
    @Test
    fun aSlowCollectorGetsTheNewestEventsAndACountOfTheDropped() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()), eventBuffer = 3)
        alice.login()
        // Nobody collects while ten messages go out: each is stored, sent
        // and acknowledged, an event each time.
        val sent = (1..10).map { alice.sendMessage("kbob@localhost", "burst $it ${System.nanoTime()}") }
        withTimeout(10_000) {
            val ids = sent.map { it.id }.toSet()
            val done = setOf(MessageState.ACKED, MessageState.DELIVERED)
            while (alice.history("kbob@localhost", limit = 50).filter { it.id in ids }.any { it.state !in done }) delay(50)
        }
        // The buffer holds the three newest; the marker comes first, with at
        // least one acknowledgement per message minus those three dropped.
        val got = withTimeout(10_000) { alice.events.take(4).toList() }
        val marker = got.first()
        assertTrue(marker is Event.EventsDropped && marker.count >= 7uL, "$got")
        assertTrue(got.drop(1).none { it is Event.EventsDropped }, "$got")
        // The oldest went: nine acknowledgements came after any event about the first message.
        assertTrue(got.none { (it as? Event.MessageStateChanged)?.message?.id == sent.first().id }, "$got")
        alice.logout(); alice.close()
    }

    /** Issue 16, capability 6: every call after close() is a typed error, never a crash. */
    @Test
    fun callsAfterCloseAreATypedError() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        alice.login()
        alice.close()
        assertFailsWith<WaxwingException.Closed> { alice.login() }
        assertFailsWith<WaxwingException.Closed> { alice.sendMessage("kbob@localhost", "too late") }
        assertFailsWith<WaxwingException.Closed> { alice.history("kbob@localhost") }
        assertFailsWith<WaxwingException.Closed> { alice.roster() }
        assertFailsWith<WaxwingException.Closed> { alice.addContact("kbob@localhost") }
        assertFailsWith<WaxwingException.Closed> { alice.ownDevice() }
        assertFailsWith<WaxwingException.Closed> { alice.enablePush("push.localhost", "n") }
        assertFailsWith<WaxwingException.Closed> { alice.suspendSession() }
        assertFailsWith<WaxwingException.Closed> { alice.logout() }
        // Getters and lifecycle hooks stay harmless.
        assertEquals("kalice@localhost", alice.ownJid)
        assertTrue(alice.connectionState is ConnectionState.Disconnected)
        alice.setForeground(true); alice.networkAvailable(); alice.networkLost()
        assertEquals(emptyList(), alice.presence("kbob@localhost"))
        alice.close()
    }

    /** Issue 16, capability 6: cancelling the coroutine of a call leaves the account usable. */
    @Test
    fun cancelledCallsLeaveTheAccountUsable() = runBlocking<Unit> {
        val alice = Waxwing.open(config("kalice", "pw1", tempDir()))
        val bob = Waxwing.open(config("kbob", "pw2", tempDir()))
        bob.login()
        launch { alice.login() }.also { delay(5) }.cancelAndJoin()
        alice.login()
        launch { alice.logout() }.also { delay(5) }.cancelAndJoin()
        launch { alice.suspendSession() }.also { delay(1) }.cancelAndJoin()
        // Whatever the cancelled calls left behind, a login brings it back.
        alice.login()
        val body = "after cancellations ${System.nanoTime()}"
        bob.sendMessage("kalice@localhost", body)
        alice.events.awaitEvent { (it as? Event.MessageReceived)?.message?.takeIf { m -> m.body == body } }
        alice.logout(); bob.logout(); alice.close(); bob.close()
    }

    /** Issue 16, capability 4: the JNI entry point that hands Android's Context to the
     *  certificate verifier is found under the name the Kotlin side calls. (On the JVM
     *  there is no Context to check; on Android the Rust side checks its type.) */
    @Test
    fun theAndroidEntryPointIsReachable() {
        WaxwingAndroid.init(Any())
        WaxwingAndroid.init(Any())
    }
}
