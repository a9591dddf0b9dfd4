//! Log output of the binaries: the reference's text lines, or JSON, to stdout and optionally a file.
//!
//! The text format is the Python service's (BEHAVIOUR.md §7), so the Loki queries and alerts that
//! key on `event=` keep working:
//!
//! ```text
//! 2026-03-27T19:02:14Z [INFO] event=tasks_created count=3
//! ```
//!
//! UTC with second resolution, the level in brackets (`WARNING`, as Python names it), then
//! `event=<name>` and the event's fields as `key=value`. One deliberate difference: a value holding
//! whitespace, `"` or `=` (an error text, say) is written in double quotes with `\"` and `\\`
//! escapes, logfmt-style, so Loki's `logfmt` parser reads it whole. A line without an `event` field
//! starts with its message instead. JSON output is one object per line (tracing-subscriber's).
//!
//! While a progress bar is on the terminal, log lines are written around it (see
//! [`crate::progress`]).

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use scheduler_store::{Clock as _, SystemClock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// The reference's line format (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceText;

/// The level as Python's logging names it.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// An event's fields in the order they were written.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    event: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = Some(value),
            "event" => self.event = Some(value),
            name => self.rest.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// Writes `value` bare when it is a single token, else quoted with `"` and `\` escaped.
fn write_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
    if bare {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// The line for one event at `time` (Unix UTC nanoseconds), without the newline.
fn format_line(
    out: &mut impl fmt::Write,
    time: transform_core::UtcNanos,
    level: &Level,
    fields: &Fields,
) -> fmt::Result {
    // format_timestamp_micros gives `YYYY-MM-DD HH:MM:SS.ffffff`: keep the seconds, ISO 8601.
    let stamp = transform_core::time::format_timestamp_micros(time);
    let (date, clock) = (
        stamp.get(..10).unwrap_or(""),
        stamp.get(11..19).unwrap_or(""),
    );
    write!(out, "{date}T{clock}Z [{}]", level_name(level))?;
    match (&fields.event, &fields.message) {
        (Some(event), _) => {
            out.write_str(" event=")?;
            write_value(out, event)?;
        }
        (None, Some(message)) => write!(out, " {message}")?,
        (None, None) => {}
    }
    for (key, value) in &fields.rest {
        write!(out, " {key}=")?;
        write_value(out, value)?;
    }
    Ok(())
}

impl<S, N> FormatEvent<S, N> for ReferenceText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        format_line(
            &mut writer,
            SystemClock.now(),
            event.metadata().level(),
            &fields,
        )?;
        writeln!(writer)
    }
}

/// Stdout that steps around an active progress bar, plus an optional log file.
struct Output {
    file: Option<Mutex<std::fs::File>>,
}

/// One log line's writer: buffers the line and writes it whole on drop.
struct LineWriter<'a> {
    output: &'a Output,
    buffer: Vec<u8>,
}

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        crate::progress::suspend(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&self.buffer);
            let _ = stdout.flush();
        });
        if let Some(file) = &self.output.file
            && let Ok(mut file) = file.lock()
        {
            let _ = file.write_all(&self.buffer);
        }
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            output: self,
            buffer: Vec::with_capacity(256),
        }
    }
}

/// Sets up logging at `level` (default `info`; a tracing filter such as `debug` or
/// `pipeline=debug,info`) to stdout and, when given, appended to `logfile`.
///
/// A log file that cannot be opened is reported (`event=logging_file_init_failed`, as the
/// reference) and logging goes on to stdout. Does nothing when a subscriber is already set.
pub fn init_logging(format: LogFormat, logfile: Option<&Path>, level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::new(level.unwrap_or("info").to_ascii_lowercase());
    let mut file_error = None;
    let file = logfile.and_then(|path| {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| file_error = Some(format!("{}: {e}", path.display())))
            .ok()
    });
    let output = Output {
        file: file.map(Mutex::new),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(output);
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.event_format(ReferenceText).try_init(),
    };
    if installed.is_ok()
        && let Some(error) = file_error
    {
        tracing::warn!(
            message = "Cannot open the log file; logging to stdout only.",
            event = "logging_file_init_failed",
            error
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        level: Level,
        event: Option<&str>,
        message: Option<&str>,
        rest: &[(&'static str, &str)],
    ) -> String {
        let fields = Fields {
            message: message.map(str::to_owned),
            event: event.map(str::to_owned),
            rest: rest.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        let mut out = String::new();
        // 2026-03-27T19:02:14.999Z
        let t = transform_core::UtcNanos(1_774_638_134_999_000_000);
        format_line(&mut out, t, &level, &fields).unwrap();
        out
    }

    #[test]
    fn lines_follow_the_reference_format() {
        assert_eq!(
            line(
                Level::INFO,
                Some("tasks_created"),
                Some("Tasks created."),
                &[("count", "3")]
            ),
            "2026-03-27T19:02:14Z [INFO] event=tasks_created count=3"
        );
        assert_eq!(
            line(Level::WARN, Some("shutdown_signal_received"), None, &[]),
            "2026-03-27T19:02:14Z [WARNING] event=shutdown_signal_received"
        );
        assert_eq!(
            line(
                Level::DEBUG,
                None,
                Some("No exposures or visits found for the period."),
                &[]
            ),
            "2026-03-27T19:02:14Z [DEBUG] No exposures or visits found for the period."
        );
    }

    #[test]
    fn values_with_spaces_quotes_or_equals_are_quoted() {
        assert_eq!(
            line(
                Level::ERROR,
                Some("task_processing_failed"),
                None,
                &[
                    ("id", "7"),
                    ("error", "EFD \"down\": a=b \\ c\nnext"),
                    ("empty", "")
                ]
            ),
            "2026-03-27T19:02:14Z [ERROR] event=task_processing_failed id=7 \
             error=\"EFD \\\"down\\\": a=b \\\\ c\\nnext\" empty=\"\""
        );
        assert_eq!(
            line(
                Level::INFO,
                Some("x"),
                None,
                &[("path", "/a/b.yaml"), ("t", "2025-10-02T03:00:00")]
            ),
            "2026-03-27T19:02:14Z [INFO] event=x path=/a/b.yaml t=2025-10-02T03:00:00"
        );
    }
}
