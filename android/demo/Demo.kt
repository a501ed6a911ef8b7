// The demo: a Kotlin program on the JVM using the Waxwing bindings.
//   chat    — logs in, chats with the peer (a slixmpp bot), logs out
//   history — a fresh process opens the encrypted store and prints history
package im.waxwing.demo

import im.waxwing.*
import java.io.File
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

fun config(): AccountConfig = AccountConfig(
    jid = System.getProperty("demo.jid"), password = Secret(System.getProperty("demo.password")), resource = "demo",
    serverHost = "127.0.0.1", serverPort = System.getProperty("demo.port").toUShort(), directTls = false,
    extraCaPem = File(System.getProperty("demo.ca")).readText(),
    storeDir = System.getProperty("demo.store"),
    storeKey = ByteArray(32) { i -> (i * 7 + 1).toByte() },
)

fun main(args: Array<String>) = runBlocking<Unit> {
    val peer = System.getProperty("demo.peer")
    val waxwing = Waxwing.open(config())
    when (args.firstOrNull()) {
        "chat" -> {
            println("[kotlin] logged in as ${waxwing.login()}")
            for (text in listOf("Hello from Kotlin!", "Waxwing keeps history encrypted.", "Bye for now.")) {
                val sent = waxwing.sendMessage(peer, text)
                println("[kotlin] -> $peer: ${sent.body}")
                val reply = withTimeout(15_000) {
                    waxwing.events.first { it is Event.MessageReceived && it.message.peer == peer } as Event.MessageReceived
                }
                println("[kotlin] <- ${reply.message.peer}: ${reply.message.body}")
            }
            waxwing.logout()
            println("[kotlin] logged out; the process ends here")
        }
        "history" -> {
            println("[kotlin] new process, store reopened with the same key (no network)")
            for (c in waxwing.conversations()) {
                println("[kotlin] conversation ${c.peer}: ${c.unreadCount} unread")
            }
            for (m in waxwing.history(peer).reversed()) {
                val arrow = if (m.direction == Direction.OUTGOING) "->" else "<-"
                println("[kotlin]   $arrow ${m.body}  [${m.state.name.lowercase()}]")
            }
        }
        else -> error("usage: demo chat|history")
    }
    waxwing.close()
}
