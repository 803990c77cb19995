//! The directory as the core sees it: find one user's entry, check one password by binding.
//! [`client::LdapDirectory`] is the ldap3 implementation; tests script a fake.

pub mod client;
pub mod entry;
pub mod net;
pub mod probe;
pub mod wire;

pub use entry::Entry;

/// The result of a user search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    None,
    One(Entry),
    /// Two or more entries matched; their DNs (at most the size limit).
    Many(Vec<String>),
    /// The server's own size limit ended the search (4 sizeLimitExceeded) before two entries
    /// came: more may match, so whether the name is unique cannot be told. Never a match.
    Unsure {
        /// The server that cut the search short (`host:port`).
        server: String,
        /// DNs of the entries that came before the limit (fewer than two).
        dns: Vec<String>,
    },
}

/// What the core asks of the directory.
pub trait Directory {
    /// Search the configured base with `filter` (already escaped), returning `attrs`.
    fn find(&self, filter: &str, attrs: &[String]) -> Result<Found, crate::error::Error>;
    /// Whether `password` is right for `dn`, by a simple bind on a connection that is never
    /// used for anything else. `Ok(false)` for wrong credentials; `Err(Error::Account)` when the
    /// directory refuses the account itself (locked, disabled, expired, password expired or to
    /// be changed, also after a bind that succeeded only for a password change: see
    /// [`crate::account::bind_outcome`]), a user's refusal at `FAIL`; other `Err`s when the
    /// check could not be made.
    fn check_password(&self, dn: &str, password: &str) -> Result<bool, crate::error::Error>;
}
