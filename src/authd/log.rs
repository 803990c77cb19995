//! Where ldapbind-authd's lines go: syslog (facility auth) as a daemon, standard error with
//! `-d`. Lines from other crates (ldap3) are kept to warnings and worse.

use std::io::Write;
use std::sync::Mutex;

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

enum Sink {
    Stderr,
    Syslog(Mutex<Syslog>),
}

struct DaemonLogger {
    sink: Sink,
    max: log::Level,
}

impl log::Log for DaemonLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        let max = if m.target().starts_with("ldapbind") { self.max } else { log::Level::Warn };
        m.level() <= max
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = match record.target() {
            t if t.starts_with("ldapbind") => record.args().to_string(),
            t => format!("({t}) {}", record.args()),
        };
        match &self.sink {
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "ldapbind-authd: {msg}");
            }
            Sink::Syslog(logger) => {
                let mut l = logger.lock().unwrap_or_else(|p| p.into_inner());
                let _ = match record.level() {
                    log::Level::Error => l.err(msg),
                    log::Level::Warn => l.warning(msg),
                    log::Level::Info => l.info(msg),
                    log::Level::Debug | log::Level::Trace => l.debug(msg),
                };
            }
        }
    }

    fn flush(&self) {}
}

fn formatter() -> syslog::Formatter3164 {
    syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTH,
        hostname: None,
        process: "ldapbind-authd".into(),
        pid: std::process::id(),
    }
}

/// Whether syslog can be reached now (asked before going to the background, where standard
/// error is gone).
pub fn syslog_reachable() -> Result<(), String> {
    syslog::unix(formatter()).map(drop).map_err(|e| e.to_string())
}

/// Install the logger once per process: standard error when `foreground`, else syslog with
/// facility auth (standard error when syslog cannot be reached, said on standard error).
pub fn install(foreground: bool, verbose: bool) {
    let sink = if foreground {
        Sink::Stderr
    } else {
        match syslog::unix(formatter()) {
            Ok(logger) => Sink::Syslog(Mutex::new(logger)),
            Err(e) => {
                eprintln!("ldapbind-authd: cannot reach syslog ({e}); logging to standard error");
                Sink::Stderr
            }
        }
    };
    let max = if verbose { log::Level::Debug } else { log::Level::Info };
    if log::set_boxed_logger(Box::new(DaemonLogger { sink, max })).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}
