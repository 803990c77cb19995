//! The `log` facade, routed to the libsasl2 logger of the call in progress on this thread.
//!
//! ldapbind's own deep code (the LDAP client) and ldap3 log through `log::…!`; the boundary
//! sets the current host logger for the duration of each call from libsasl2. Records from
//! other crates are capped at `SASL_LOG_DEBUG`. Outside any call (which ldapbind never does
//! itself) errors and warnings go to syslog(3) with facility `LOG_AUTH`.

use std::cell::Cell;
use std::sync::Once;

use libc::c_int;

use super::sasl::{SASL_LOG_DEBUG, SASL_LOG_ERR, SASL_LOG_NOTE, SASL_LOG_TRACE, SASL_LOG_WARN, sasl_utils_t};
use super::utils::Utils;

#[derive(Clone, Copy)]
struct Sink {
    utils: *const sasl_utils_t,
    max: c_int,
}

thread_local! {
    static CURRENT: Cell<Option<Sink>> = const { Cell::new(None) };
}

/// While alive, `log` records on this thread go to `utils`.
pub struct Scope {
    previous: Option<Sink>,
}

impl Scope {
    pub fn enter(utils: Utils<'_>) -> Scope {
        install();
        let sink = Sink { utils: std::ptr::from_ref(utils.raw()), max: utils.max_level() };
        Scope { previous: CURRENT.with(|c| c.replace(Some(sink))) }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

fn sasl_level(record: &log::Metadata<'_>) -> c_int {
    let level = match record.level() {
        log::Level::Error => SASL_LOG_ERR,
        log::Level::Warn => SASL_LOG_WARN,
        log::Level::Info => SASL_LOG_NOTE,
        log::Level::Debug => SASL_LOG_DEBUG,
        log::Level::Trace => SASL_LOG_TRACE,
    };
    if record.target().starts_with("ldapbind") { level } else { level.max(SASL_LOG_DEBUG) }
}

struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let level = sasl_level(metadata);
        match CURRENT.with(Cell::get) {
            Some(sink) => level <= sink.max,
            None => level <= SASL_LOG_WARN,
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = sasl_level(record.metadata());
        // The sinks add ldapbind's prefix; a line from another crate also names that crate.
        let from = record.target();
        let emit = |msg: std::fmt::Arguments<'_>| match CURRENT.with(Cell::get) {
            Some(sink) => {
                // SAFETY: the sink was taken from a live `Utils` by a Scope that is still on
                // this thread's stack (it is removed when the Scope drops).
                if let Some(utils) = unsafe { Utils::from_ptr(sink.utils, sink.max) } {
                    utils.log(level, msg);
                }
            }
            None => to_syslog(level, &crate::host::line(msg)),
        };
        if from == "ldapbind" {
            emit(*record.args());
        } else {
            emit(format_args!("({from}) {}", record.args()));
        }
    }

    fn flush(&self) {}
}

fn to_syslog(level: c_int, msg: &str) {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTH,
        hostname: None,
        process: "ldapbind".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = if level <= SASL_LOG_ERR { logger.err(msg) } else { logger.warning(msg) };
    }
}

static LOGGER: HostLogger = HostLogger;
static INSTALL: Once = Once::new();

/// Register the facade once; in a host that already has a `log` logger (a Rust host linking
/// the rlib) ours is not installed and records go to theirs.
fn install() {
    INSTALL.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}
