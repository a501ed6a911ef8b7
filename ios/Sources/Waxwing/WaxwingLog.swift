// Logging: the core's lines go to the platform's log — the unified log
// (os_log, subsystem "im.waxwing") on Apple platforms, as logcat on Android —
// and to the app's own sink if it gives one. The core logs no message bodies,
// passwords or keys.
import Foundation
#if canImport(os)
import os
#endif

public enum WaxwingLog {
    /// Starts logging once per process; later calls do nothing.
    public static func start(level: LogLevel = .info, sink: LogSink? = nil) {
        initLogging(level: level, sink: PlatformSink(app: sink))
    }
}

/// Forwards each line to os_log where there is one, then to the app's sink.
final class PlatformSink: LogSink {
    let app: LogSink?
    #if canImport(os)
    // Compiled on Apple platforms only (not by the Linux test run).
    let logger = Logger(subsystem: "im.waxwing", category: "core")
    #endif

    init(app: LogSink?) {
        self.app = app
    }

    func log(level: LogLevel, line: String) {
        #if canImport(os)
        // Public: the core never logs bodies, passwords or keys, and with
        // the default (private) the lines read "<private>" outside a debugger.
        switch level {
        case .error: logger.error("\(line, privacy: .public)")
        case .warn: logger.warning("\(line, privacy: .public)")
        case .info: logger.info("\(line, privacy: .public)")
        case .debug, .trace: logger.debug("\(line, privacy: .public)")
        }
        #endif
        app?.log(level: level, line: line)
    }
}
