//! What the core needs from its host (libsasl2 in production, a scripted fake in tests).

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

/// One entry of the connection's property context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The exact requested name, including a leading `*` for authid properties.
    pub name: String,
    /// Whether some plugin (or the application) already set values for it.
    pub has_values: bool,
    /// The first value, when present (used for the 2.1.27 verify-against-hash candidate).
    pub first_value: Option<Vec<u8>>,
}

/// The per-connection services of the host.
pub trait Host {
    /// Log one line; the implementation filters by level before formatting anything.
    fn log(&self, level: Level, msg: &str);
    /// Record the error text for `sasl_errdetail` without logging it again.
    fn set_error(&self, msg: &str);
    /// The server's user realm (`sparams->user_realm`), if any.
    fn realm(&self) -> Option<String>;
    /// An identifier of the SASL connection (its address), used to scope the per-login cache.
    fn conn_id(&self) -> usize;
    /// True once libsasl2 has recorded an authentication id for this connection, i.e. this
    /// call belongs to a login that already canonicalised its name.
    fn login_in_progress(&self) -> bool;
    /// The property requests and their state.
    fn requested(&self) -> Vec<Requested>;
    /// Remove the values of one property.
    fn prop_erase(&self, name: &str);
    /// One of libsasl2's own options for this connection (e.g. `pwcheck_method`).
    fn library_option(&self, key: &str) -> Option<String>;
    /// Append one value to one property.
    fn prop_set(&self, name: &str, value: &[u8]) -> Result<(), crate::error::Error>;
    /// The host's libsasl2 version `(major, minor, step)`, when it can be told.
    fn libsasl2_version(&self) -> Option<(u8, u8, u16)> {
        None
    }
}
