//! What the core needs from its host (libsasl2 in production, a scripted fake in tests).

pub use crate::level::Level;

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

/// What every line ldapbind gives its host starts with. Callers never write it: the sinks add it,
/// through [`line`], after their level check.
pub const PREFIX: &str = "ldapbind: ";

/// `msg` as the host receives it: [`PREFIX`] and the message, formatted once.
pub fn line(msg: std::fmt::Arguments<'_>) -> String {
    format!("{PREFIX}{msg}")
}

/// The per-connection services of the host.
pub trait Host {
    /// Log one line at `level`. The implementation checks the level first and formats `msg`
    /// (with [`line`]) only when the line is wanted; callers pass `format_args!`.
    fn log(&self, level: Level, msg: std::fmt::Arguments<'_>);
    /// Record the error text (without [`PREFIX`], the host adds it) for `sasl_errdetail`
    /// without logging it again.
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
    /// The monotonic clock the per-login cache ages by (a test host moves it by hand).
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// Problems only the admin can fix (directory unreachable, service bind refused, passwords the
/// service account cannot read, ...) are logged at [`Level::Err`] the first time a process
/// meets each distinct cause, so that the default `sasl_log_level` (1) shows them, and at
/// [`Level::Fail`] afterwards, so that a long-lived process does not repeat them at every login
/// (short-lived ones, like Cyrus's imapd, each say it once). A user's own failure (unknown name,
/// wrong password) is always `Fail`. Bounded: the oldest causes are forgotten first.
#[derive(Debug, Default)]
pub struct FirstSeen(std::sync::Mutex<std::collections::VecDeque<String>>);

impl FirstSeen {
    /// Causes remembered at once.
    pub const CAPACITY: usize = 64;

    /// `Err` for a cause not seen before (and remembers it), `Fail` for one already logged.
    pub fn level(&self, cause: &str) -> Level {
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.iter().any(|c| c == cause) {
            return Level::Fail;
        }
        if seen.len() >= Self::CAPACITY {
            seen.pop_front();
        }
        seen.push_back(cause.to_owned());
        Level::Err
    }
}

/// How the admin of the host that loaded ldapbind writes its options: `sasl_ldapdb_uri` in
/// Cyrus's imapd.conf (the messages' own spelling), `ldapdb_uri` in a libsasl2 application
/// config such as Postfix's `/etc/postfix/sasl/smtpd.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    Prefixed,
    Bare,
}

impl Spelling {
    /// Postfix's daemons (`smtpd`, anything under a `postfix` directory such as
    /// `/usr/lib/postfix/sbin/`) read `<app>.conf` without the `sasl_` prefix.
    pub fn for_exe(exe: &std::path::Path) -> Spelling {
        let postfix = exe.file_name().is_some_and(|n| n == "smtpd")
            || exe.parent().is_some_and(|d| d.components().any(|c| c.as_os_str() == "postfix"));
        if postfix { Spelling::Bare } else { Spelling::Prefixed }
    }

    /// This process's spelling, decided once; [`crate::plugin`] asks at init, before the host
    /// may chroot. From the path the process was started by, in memory (no `/proc` lookup).
    pub fn of_process() -> Spelling {
        static SPELLING: std::sync::OnceLock<Spelling> = std::sync::OnceLock::new();
        *SPELLING.get_or_init(|| crate::ffi::exe::exec_path().map_or(Spelling::Prefixed, |exe| Spelling::for_exe(&exe)))
    }

    /// `text` with every option named as this host's admin writes it.
    pub fn apply(self, text: &str) -> std::borrow::Cow<'_, str> {
        if self == Spelling::Prefixed || !text.contains("sasl_") {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        let keys = crate::config::keys::ALL.iter().chain(crate::config::keys::LIBRARY).chain(&["log_level"]);
        for key in keys {
            out = out.replace(&format!("sasl_{key}"), key);
        }
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_names_options_without_the_sasl_prefix() {
        use std::path::Path;
        for exe in ["/usr/lib/postfix/sbin/smtpd", "/usr/libexec/postfix/smtpd", "/usr/sbin/smtpd"] {
            assert_eq!(Spelling::for_exe(Path::new(exe)), Spelling::Bare, "{exe}");
        }
        for exe in ["/usr/lib/cyrus/bin/imapd", "/usr/sbin/slapd", "/work/target/debug/deps/sasl_ldap-0123"] {
            assert_eq!(Spelling::for_exe(Path::new(exe)), Spelling::Prefixed, "{exe}");
        }
        let line = "sasl_ldapdb_uri is not set; add `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` \
                    (sasl_pwcheck_method auxprop, sasl_ldapdb_pw_file)";
        assert_eq!(
            Spelling::Bare.apply(line),
            "ldapdb_uri is not set; add `ldapdb_uri: ldap://HOST:PORT/BASE-DN` (pwcheck_method auxprop, ldapdb_pw_file)"
        );
        assert_eq!(Spelling::Prefixed.apply(line), line);
    }

    #[test]
    fn first_seen_is_err_once_per_cause_then_fail() {
        let seen = FirstSeen::default();
        assert_eq!(seen.level("directory unreachable"), Level::Err);
        assert_eq!(seen.level("directory unreachable"), Level::Fail);
        assert_eq!(seen.level("service bind refused"), Level::Err);
        assert_eq!(seen.level("directory unreachable"), Level::Fail);
        for i in 0..FirstSeen::CAPACITY {
            seen.level(&i.to_string());
        }
        // Bounded: the oldest cause was forgotten and is said again.
        assert_eq!(seen.level("directory unreachable"), Level::Err);
    }
}
