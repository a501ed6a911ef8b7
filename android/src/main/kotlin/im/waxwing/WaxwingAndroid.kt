// Android's one-time setup: the certificate verifier (rustls-platform-verifier)
// checks servers against Android's trust store through the app's Context,
// which it gets here over JNI. The parameter is typed Any because these
// sources are also compiled and tested on a plain JVM (scripts/test-kotlin.sh),
// where android.content.Context does not exist; the Rust side checks the type.
package im.waxwing

object WaxwingAndroid {
    @Volatile private var initialised = false

    /**
     * Call once per process, before the first login, with the application
     * `Context` (e.g. in `Application.onCreate`). Later calls do nothing.
     * Without it every login fails with [WaxwingException.InvalidConfig].
     * Throws [IllegalArgumentException] when [context] is not a Context.
     */
    @Synchronized
    fun init(context: Any) {
        if (initialised) return
        // JNA loads the library for the bindings; a JNI entry point needs
        // the JVM to load it too (the same file, loaded once by the OS).
        System.loadLibrary("waxwing_ffi")
        require(nativeInit(context)) { "WaxwingAndroid.init needs the application's android.content.Context" }
        initialised = true
    }

    @JvmStatic private external fun nativeInit(context: Any): Boolean
}
