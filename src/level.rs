//! The log levels of a line ldapbind logs, those of libsasl2 (`SASL_LOG_*`): an error's level
//! is chosen where the error is made ([`crate::error`]), the host filters by it ([`crate::host`]).

/// SASL log levels the plugin uses (`SASL_LOG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err = 1,
    Fail = 2,
    Warn = 3,
    Note = 4,
    Debug = 5,
    Trace = 6,
}
