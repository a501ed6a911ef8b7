//! Logging: `tracing` from the core goes to logcat on Android and to an
//! app-supplied sink everywhere (so apps can route logs). The core never
//! logs message bodies, passwords or keys.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Receives formatted log lines.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, level: LogLevel, line: String);
}

static INSTALLED: OnceLock<()> = OnceLock::new();

struct SinkWriter {
    sink: Option<Arc<dyn LogSink>>,
    buffer: Vec<u8>,
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SinkWriter {
    fn drop(&mut self) {
        if let Some(sink) = &self.sink {
            let line = String::from_utf8_lossy(&self.buffer).trim_end().to_owned();
            if !line.is_empty() {
                sink.log(LogLevel::Info, line);
            }
        }
    }
}

/// Installs logging once per process; later calls do nothing.
#[uniffi::export]
pub fn init_logging(level: LogLevel, sink: Option<Arc<dyn LogSink>>) {
    INSTALLED.get_or_init(|| {
        let max = match level {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        };
        let make_writer = move || SinkWriter {
            sink: sink.clone(),
            buffer: Vec::new(),
        };
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(make_writer);
        let registry = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::from_level(max))
            .with(fmt);
        #[cfg(target_os = "android")]
        let registry = registry.with(tracing_android::layer("waxwing").ok());
        let _ = tracing::subscriber::set_global_default(registry);
    });
}
