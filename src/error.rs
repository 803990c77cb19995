//! The one error type. Every variant's `Display` is a complete log line that names the cause
//! and the fix, with options spelled as an admin writes them in imapd.conf (`sasl_ldapdb_uri`).
//! The SASL result code is derived from the variant by an exhaustive match.

use libc::c_int;

use crate::ffi::sasl::{
    SASL_BADAUTH, SASL_BADPROT, SASL_BUFOVER, SASL_CONFIGERR, SASL_DISABLED, SASL_EXPIRED, SASL_FAIL, SASL_NOUSER,
    SASL_UNAVAIL,
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

    /// A password checked by a bind as the user (libsasl2 2.1.27's `auxprop-hashed`) is wrong.
    #[error("password for {user} ({dn}) refused: {why}")]
    WrongPassword { user: String, dn: String, why: String },

    /// The entry has no usable value for `ldapdb_canon_attr`.
    #[error("{what}")]
    Canon { what: String },

    /// The directory refuses the user's account (locked, disabled, expired, password expired
    /// or to be changed): said by its state attributes or by its answer to a bind as the user.
    #[error("{what}")]
    Account { condition: crate::account::Condition, what: String },

    /// The canonical name does not fit the host's buffer.
    #[error("canonical name of {len} bytes does not fit libsasl2's {max}-byte buffer")]
    TooLong { len: usize, max: usize },

    /// No LDAP server could answer: refused, unreachable, DNS, or a result another server or a
    /// later try may not give (51 busy, 52 unavailable, 3 timeLimitExceeded, 10 referral, 80 other).
    #[error("{0}")]
    Unavailable(String),

    /// A step took longer than `ldapdb_timeout`.
    #[error("{0}")]
    Timeout(String),

    /// The directory refused the service account or its access (service bind 49, 50, 48, 7,
    /// search 32, 50, ...): the configuration or the server's ACLs need an admin. Not the user's
    /// fault, so not `SASL_BADAUTH`, the code of a wrong password, on which fail2ban's
    /// cyrus-imap filter bans (`SASL(-13)`); libsasl2's generic failure instead.
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
            Error::Ambiguous { .. } | Error::WrongPassword { .. } | Error::Canon { .. } => SASL_BADAUTH,
            // DISABLED wins over other auxprop plugins' OK and NOUSER (auxprop.c's merge).
            Error::Account { condition, .. } if condition.is_password() => SASL_EXPIRED,
            Error::Account { .. } => SASL_DISABLED,
            Error::TooLong { .. } => SASL_BUFOVER,
            Error::Unavailable(_) | Error::Timeout(_) => SASL_UNAVAIL,
            Error::Host { code, .. } => *code,
            Error::Directory(_) | Error::Internal(_) => SASL_FAIL,
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
            // The user's own: a wrong password, a locked or expired account, an unknown name.
            Error::BadName { .. } | Error::NoSuchUser { .. } | Error::WrongPassword { .. } | Error::Account { .. } => {
                Level::Fail
            }
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
            (Error::WrongPassword { user: s(), dn: s(), why: s() }, -13),
            (Error::Canon { what: s() }, -13),
            (Error::Account { condition: crate::account::Condition::Locked, what: s() }, -19),
            (Error::Account { condition: crate::account::Condition::MustChange, what: s() }, -18),
            (Error::TooLong { len: 2, max: 1 }, -3),
            (Error::Unavailable(s()), -24),
            (Error::Timeout(s()), -24),
            (Error::Directory(s()), -1),
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
