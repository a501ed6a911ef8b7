// The idiomatic Kotlin face of Waxwing: suspend functions and a Flow of
// events over the generated uniffi bindings (package im.waxwing). Store
// reads run on Dispatchers.IO so callers may use the main thread.
package im.waxwing

import java.util.concurrent.atomic.AtomicLong
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withContext

/**
 * One account. Create with [Waxwing.open]; collect [events] once; [close]
 * when done (every call after that throws [WaxwingException.Closed]).
 * Cancelling a coroutine that awaits a call is safe: a login goes on in
 * the background, a logout or suspension still completes.
 */
class Waxwing private constructor(
    private val client: WaxwingClient,
    private val channel: Channel<Event>,
    private val dropped: AtomicLong,
) : AutoCloseable {

    /**
     * Every event, in order, after the store has been updated. Single
     * collector. Buffer policy: up to the `eventBuffer` given to [open] wait
     * for a slow collector; beyond that the oldest are dropped and the
     * collector gets [Event.EventsDropped] before the next one (re-read
     * from the store, which has everything). Memory stays bounded.
     */
    val events: Flow<Event> = flow {
        for (event in channel) {
            val lost = dropped.getAndSet(0)
            if (lost > 0) emit(Event.EventsDropped(lost.toULong()))
            emit(event)
        }
    }

    val ownJid: String get() = client.ownJid()
    val connectionState: ConnectionState get() = client.connectionState()

    suspend fun login(): String = client.login()
    /** Ends the session on the server (no pushes, nothing to resume). */
    suspend fun logout() = client.logout()

    suspend fun sendMessage(to: String, body: String): Message =
        withContext(Dispatchers.IO) { client.sendMessage(to, body) }

    /** Joins a group chat as [nick] (creating it if needed); returns the nick the room gave us. */
    suspend fun joinRoom(room: String, nick: String): String = client.joinRoom(room, nick)
    fun leaveRoom(room: String) = client.leaveRoom(room)
    /** Changes our nick in [room]; a taken one is Refused and leaves us as we were. */
    suspend fun changeNick(room: String, nick: String): String = client.changeNick(room, nick)
    /** Creates [room] as a private group or a channel and joins it; Refused("room-exists") if it exists. */
    suspend fun createRoom(room: String, nick: String, kind: RoomKind, name: String? = null): String =
        client.createRoom(room, nick, kind, name)
    suspend fun setRoomAffiliation(room: String, jid: String, affiliation: RoomAffiliation, reason: String? = null) =
        client.setRoomAffiliation(room, jid, affiliation, reason)
    /** Members, admins and owners of [room], by bare JID. */
    suspend fun roomMembers(room: String): List<String> = client.roomMembers(room)
    suspend fun kickFromRoom(room: String, nick: String, reason: String? = null) = client.kickFromRoom(room, nick, reason)
    suspend fun destroyRoom(room: String, reason: String? = null) = client.destroyRoom(room, reason)
    /** Invites [jid] to [room]: through the room (an owner's invitation to a members-only room makes them a member) or, [direct], from us. */
    fun inviteToRoom(room: String, jid: String, reason: String? = null, direct: Boolean = false) =
        client.inviteToRoom(room, jid, reason, direct)
    /** Declines an [Event.RoomInvite] that came through the room. */
    fun declineInvite(room: String, inviter: String, reason: String? = null) = client.declineInvite(room, inviter, reason)
    /** Bookmarks [room] (XEP-0402): with [autojoin] every device joins it, now and at each login; without, they leave it. */
    suspend fun setBookmark(room: String, autojoin: Boolean, name: String? = null, nick: String? = null) =
        client.setBookmark(room, name, nick, autojoin)
    suspend fun removeBookmark(room: String) = client.removeBookmark(room)
    suspend fun bookmarks(): List<RoomBookmark> = withContext(Dispatchers.IO) { client.bookmarks() }
    /** Stored first; goes out while we are in [room], DELIVERED once the room reflects it. */
    suspend fun sendRoomMessage(room: String, body: String): Message =
        withContext(Dispatchers.IO) { client.sendRoomMessage(room, body) }

    suspend fun setPresence(availability: Availability, status: String? = null) =
        withContext(Dispatchers.IO) { client.setPresence(availability, status) }

    suspend fun addContact(jid: String, name: String? = null) = client.addContact(jid, name)
    suspend fun renameContact(jid: String, name: String) = client.renameContact(jid, name)
    suspend fun removeContact(jid: String) = client.removeContact(jid)
    /** Asks to see [jid]'s presence; the answer comes as a roster change. */
    fun requestSubscription(jid: String) = client.requestSubscription(jid)
    /** Answers an [Event.SubscriptionRequest] from [jid]. */
    fun approveSubscription(jid: String) = client.approveSubscription(jid)
    fun denySubscription(jid: String) = client.denySubscription(jid)
    /** Stops seeing [jid]'s presence. */
    fun cancelSubscription(jid: String) = client.cancelSubscription(jid)

    /** A contact's online resources; empty while offline. */
    fun presence(jid: String): List<ResourcePresence> = client.presence(jid)

    suspend fun roster(): List<Contact> = withContext(Dispatchers.IO) { client.roster() }

    /** Newest first; pass the oldest message of the previous page to page back. */
    suspend fun history(peer: String, before: Message? = null, limit: Int = 50): List<Message> =
        withContext(Dispatchers.IO) { client.history(peer, before, limit.toUInt()) }

    suspend fun conversations(): List<Conversation> = withContext(Dispatchers.IO) { client.conversations() }
    suspend fun markRead(peer: String) = withContext(Dispatchers.IO) { client.markRead(peer) }

    /**
     * Lifecycle hooks: call from the app's lifecycle observer and network
     * callback. In the background the server holds unimportant traffic
     * (XEP-0352); while the network is lost no reconnect is tried, and
     * [networkAvailable] reconnects (resuming the session) at once.
     */
    fun setForeground(foreground: Boolean) = client.setForeground(foreground)
    fun networkAvailable() = client.networkAvailable()
    fun networkLost() = client.networkLost()

    /**
     * Disconnects but keeps the session (and pushes) for the next login or
     * the push handler, and closes the store's database until the next call
     * that needs it.
     */
    suspend fun suspendSession() = client.suspend()

    /** Registers for push with the app server's JID and the node it issued for this device's token. */
    suspend fun enablePush(service: String, node: String, secret: String? = null) =
        client.enablePush(service, node, secret)
    suspend fun disablePush() = client.disablePush()

    /**
     * OMEMO end-to-end encryption. [setEncryption] turns it on per
     * conversation (a message that cannot be encrypted then fails; it never
     * goes out in plain text). Fingerprints are compared by the users;
     * [setTrust] records the decision. Each [Message] says how it was
     * protected and how far its sending device is trusted.
     */
    suspend fun setEncryption(peer: String, mode: ConversationEncryption) =
        withContext(Dispatchers.IO) { client.setEncryption(peer, mode) }
    suspend fun encryption(peer: String): ConversationEncryption = withContext(Dispatchers.IO) { client.encryption(peer) }
    suspend fun ownDevice(): OmemoDevice = withContext(Dispatchers.IO) { client.ownOmemoDevice() }
    suspend fun devices(jid: String): List<OmemoDevice> = withContext(Dispatchers.IO) { client.omemoDevices(jid) }
    /**
     * Records a trust decision. [DeviceTrust.VERIFIED] takes the [fingerprint]
     * the users compared and throws [WaxwingException.FingerprintMismatch]
     * unless it is the device's key (so a verification never applies to a
     * key the server hands out later).
     */
    suspend fun setTrust(jid: String, deviceId: UInt, trust: DeviceTrust, fingerprint: String? = null) =
        withContext(Dispatchers.IO) { client.setOmemoTrust(jid, deviceId, trust, fingerprint) }
    /**
     * Replaces the session with a device, when the user asks (its messages keep
     * failing to decrypt): never done automatically. The old one still reads late messages.
     */
    suspend fun replaceSession(jid: String, deviceId: UInt) =
        withContext(Dispatchers.IO) { client.replaceOmemoSession(jid, deviceId) }
    /** Blind Trust Before Verification (the default) or manual: for keys learned from now on. */
    suspend fun setTrustPolicy(policy: TrustPolicy) = withContext(Dispatchers.IO) { client.setOmemoTrustPolicy(policy) }
    suspend fun trustPolicy(): TrustPolicy = withContext(Dispatchers.IO) { client.omemoTrustPolicy() }
    /** Off: push notifications report "a new message" without its text. */
    suspend fun setPushPreviews(shown: Boolean) = withContext(Dispatchers.IO) { client.setPushPreviews(shown) }
    suspend fun pushPreviews(): Boolean = withContext(Dispatchers.IO) { client.pushPreviews() }
    /** Takes devices of this account (old installations, or this one) off its published OMEMO lists. */
    fun removeDevices(deviceIds: List<UInt>) = client.removeOmemoDevices(deviceIds)

    /**
     * Releases the account: the connection drops (the server keeps the
     * session resumable) and the store closes. Later calls throw
     * [WaxwingException.Closed]; getters and lifecycle hooks do nothing.
     * The native object itself is freed when this one is collected.
     */
    override fun close() {
        client.shutdown()
        channel.close()
    }

    companion object {
        /** Events held for a slow collector before the oldest are dropped. */
        const val DEFAULT_EVENT_BUFFER = 1024

        /** Opens the account's encrypted store; throws [WaxwingException.Store] on a wrong key or damage. */
        fun open(config: AccountConfig, eventBuffer: Int = DEFAULT_EVENT_BUFFER): Waxwing {
            require(eventBuffer > 0) { "eventBuffer must be positive" }
            val dropped = AtomicLong()
            val channel = Channel<Event>(eventBuffer, BufferOverflow.DROP_OLDEST) { dropped.incrementAndGet() }
            val listener = object : ClientListener {
                override fun onEvent(event: Event) {
                    channel.trySend(event)
                }
            }
            return Waxwing(WaxwingClient.open(config, listener), channel, dropped)
        }
    }
}

/**
 * For the push handler (an FCM service): decrypt a payload, or run a whole
 * wake-up within a deadline. Both run on Dispatchers.IO.
 */
object WaxwingPush {
    suspend fun decrypt(config: AccountConfig, push: EncryptedPush): NotificationItem =
        withContext(Dispatchers.IO) { decryptPush(config, push) }

    suspend fun wakeUp(config: AccountConfig, push: EncryptedPush?, deadlineMs: Long = 10_000): WakeUpResult =
        withContext(Dispatchers.IO) { im.waxwing.wakeUp(config, push, deadlineMs.toULong()) }
}

/**
 * Logging: the core's lines go to logcat on Android (the Rust side writes
 * there itself) and to the app's own [sink] if it gives one. The core logs
 * no message bodies, passwords or keys.
 */
object WaxwingLog {
    /** Starts logging once per process; later calls do nothing. */
    fun start(level: LogLevel = LogLevel.INFO, sink: LogSink? = null) = initLogging(level, sink)
}
