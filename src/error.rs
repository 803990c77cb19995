//! The one error type. Every variant's `Display` is a complete log line that names the cause
//! and the fix, with options spelled as an admin writes them in imapd.conf (`sasl_ldapdb_uri`).
//! The SASL result code is derived from the variant by an exhaustive match.

use libc::c_int;

use crate::ffi::sasl::{
    SASL_BADAUTH, SASL_BADPROT, SASL_BUFOVER, SASL_CONFIGERR, SASL_FAIL, SASL_NOUSER, SASL_UNAVAIL,
};

/// What went wrong in one plugin call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration read at init was rejected; the same text was logged at init.
    #[error("{0}")]
    Config(String),

    /// A user name that must never reach LDAP.
    #[error("refusing user name {shown}: {why}")]
    BadName { shown: String, why: &'static str },

    /// The name is not in the directory.
    #[error("user {user} not found: no entry matches {filter} under {base}")]
    NoSuchUser { user: String, filter: String, base: String },

    /// More than one entry matches: never pick one.
    #[error(
        "user {user} is ambiguous: {filter} under {base} matches more than one entry ({dns}); \
         make the entries' uid/mail unique or narrow sasl_ldapdb_filter"
    )]
    Ambiguous { user: String, filter: String, base: String, dns: String },

    /// The entry has no usable value for `ldapdb_canon_attr`.
    #[error("{what}")]
    Canon { what: String },

    /// The canonical name does not fit the host's buffer.
    #[error("canonical name of {len} bytes does not fit libsasl2's {max}-byte buffer")]
    TooLong { len: usize, max: usize },

    /// Could not reach any LDAP server (refused, unreachable, DNS).
    #[error("{0}")]
    Unavailable(String),

    /// A step took longer than `ldapdb_timeout`.
    #[error("{0}")]
    Timeout(String),

    /// The directory refused the service account or its access (rc 49, 50, 32, 48, ...).
    #[error("{0}")]
    Directory(String),

    /// A libsasl2 utility call failed (e.g. `prop_set`).
    #[error("libsasl2 {call} failed with code {code}")]
    Host { call: &'static str, code: c_int },

    /// A panic was caught at the C boundary.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// The SASL result code for this error; no wildcard arm, so a new variant must choose.
    pub fn sasl_code(&self) -> c_int {
        match self {
            Error::Config(_) => SASL_CONFIGERR,
            Error::BadName { .. } => SASL_BADPROT,
            Error::NoSuchUser { .. } => SASL_NOUSER,
            Error::Ambiguous { .. } | Error::Canon { .. } | Error::Directory(_) => SASL_BADAUTH,
            Error::TooLong { .. } => SASL_BUFOVER,
            Error::Unavailable(_) | Error::Timeout(_) => SASL_UNAVAIL,
            Error::Host { code, .. } => *code,
            Error::Internal(_) => SASL_FAIL,
        }
    }

    /// The SASL log level the error is reported at the first time: `Err` for what only the
    /// admin can fix (configuration, directory unreachable or slow, the service account refused
    /// or not allowed, the directory's data: ambiguous entries, a missing or oversized canonical
    /// name), `Fail` for the user's own failure (an unknown name, a name that must not reach
    /// LDAP). Repeats of an `Err` cause are logged at `Fail` ([`crate::host::FirstSeen`]).
    pub fn level(&self) -> crate::host::Level {
        use crate::host::Level;
        match self {
            Error::Config(_)
            | Error::Unavailable(_)
            | Error::Timeout(_)
            | Error::Directory(_)
            | Error::Ambiguous { .. }
            | Error::Canon { .. }
            | Error::TooLong { .. }
            | Error::Host { .. }
            | Error::Internal(_) => Level::Err,
            Error::BadName { .. } | Error::NoSuchUser { .. } => Level::Fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let s = || String::from("x");
        let cases: Vec<(Error, c_int)> = vec![
            (Error::Config(s()), -100),
            (Error::BadName { shown: s(), why: "w" }, -5),
            (Error::NoSuchUser { user: s(), filter: s(), base: s() }, -20),
            (Error::Ambiguous { user: s(), filter: s(), base: s(), dns: s() }, -13),
            (Error::Canon { what: s() }, -13),
            (Error::TooLong { len: 2, max: 1 }, -3),
            (Error::Unavailable(s()), -24),
            (Error::Timeout(s()), -24),
            (Error::Directory(s()), -13),
            (Error::Host { call: "prop_set", code: -7 }, -7),
            (Error::Internal(s()), -1),
        ];
        for (e, code) in cases {
            assert_eq!(e.sasl_code(), code, "{e:?}");
        }
    }

    #[test]
    fn messages_name_the_fix() {
        let e = Error::Ambiguous {
            user: "shared@example.com".into(),
            filter: "(mail=shared@example.com)".into(),
            base: "dc=users,dc=local".into(),
            dns: "cn=a,dc=users,dc=local; cn=b,dc=users,dc=local".into(),
        };
        let m = e.to_string();
        assert!(m.contains("cn=a,dc=users,dc=local") && m.contains("sasl_ldapdb_filter"), "{m}");
    }
}
