// Runs the JUnit tests and ends with the line "kotlin: N passed, M failed".
package im.waxwing

import kotlin.system.exitProcess
import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.Request
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

fun main() {
    var failed = 0
    var total = 0
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        private var current: Description? = null
        private var currentFailed = false
        override fun testStarted(d: Description) { current = d; currentFailed = false; total++ }
        override fun testFailure(f: Failure) {
            currentFailed = true; failed++
            println("FAIL ${f.description.methodName}: ${f.message}")
            f.exception.printStackTrace(System.out)
        }
        override fun testFinished(d: Description) { if (!currentFailed) println("PASS ${d.methodName}") }
    })
    // -Dwaxwing.test=<method> runs one test (scripts/test-kotlin.sh passes WAXWING_KOTLIN_TEST).
    val only = System.getProperty("waxwing.test")?.takeIf { it.isNotEmpty() }
    if (only == null) core.run(WaxwingTest::class.java) else core.run(Request.method(WaxwingTest::class.java, only))
    println("kotlin: ${total - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
