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

/// One formatted event on its way to the app's sink, with its real level.
struct SinkWriter {
    sink: Option<Arc<dyn LogSink>>,
    level: LogLevel,
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
                // A sink that throws loses its line, nothing more.
                let level = self.level;
                let call = std::panic::AssertUnwindSafe(|| sink.log(level, line));
                let _ = std::panic::catch_unwind(call);
            }
        }
    }
}

/// Makes one [`SinkWriter`] per event, carrying the event's level (the
/// formatter asks with the event's metadata).
struct SinkMakeWriter(Option<Arc<dyn LogSink>>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SinkMakeWriter {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter {
            sink: self.0.clone(),
            level: LogLevel::Info,
            buffer: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SinkWriter {
        let level = match *meta.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        };
        SinkWriter {
            sink: self.0.clone(),
            level,
            buffer: Vec::new(),
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
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(SinkMakeWriter(sink));
        let registry = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::from_level(max))
            .with(fmt);
        #[cfg(target_os = "android")]
        let registry = registry.with(tracing_android::layer("waxwing").ok());
        let _ = tracing::subscriber::set_global_default(registry);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(LogLevel, String)>>);

    impl LogSink for Collect {
        fn log(&self, level: LogLevel, line: String) {
            self.0.lock().unwrap().push((level, line));
        }
    }

    /// Issue 12, defect 10: the sink hears each line at its own level
    /// (it used to hear everything as Info), so an app can filter.
    #[test]
    fn the_sink_gets_each_lines_real_level() {
        let sink = Arc::new(Collect::default());
        init_logging(LogLevel::Debug, Some(sink.clone()));
        tracing::error!("level probe e");
        tracing::warn!("level probe w");
        tracing::info!("level probe i");
        tracing::debug!("level probe d");
        tracing::trace!("level probe t");
        let got: Vec<(LogLevel, String)> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, line)| line.contains("level probe"))
            .cloned()
            .collect();
        let levels: Vec<LogLevel> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            levels,
            vec![
                LogLevel::Error,
                LogLevel::Warn,
                LogLevel::Info,
                LogLevel::Debug
            ],
            "{got:?}"
        );
    }
}
