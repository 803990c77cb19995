//! The one error type. Its variants keep what happened as values: for a directory operation
//! the server, the step under way and the cause (an I/O error, a timeout, a TLS error, an LDAP
//! result, ...), with the underlying error as [`std::error::Error::source`].
//!
//! Every error renders as one log line, the [`Error::problem`] then, when an admin can act,
//! `"; "` and the [`Error::fix`], with options spelled as an admin writes them in imapd.conf
//! (`sasl_ldapdb_uri`). Admins and fail2ban read these lines: their words are the interface.
//! The SASL result code is derived from the values by an exhaustive match.

mod tls;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use libc::c_int;

use crate::account::{Condition, Finding};
use crate::config::{BaseSource, Bind, Config};
use crate::ffi::sasl::{
    SASL_BADAUTH, SASL_BADPROT, SASL_BUFOVER, SASL_CONFIGERR, SASL_DISABLED, SASL_EXPIRED, SASL_FAIL, SASL_NOUSER,
    SASL_UNAVAIL,
};
use crate::uri::{LdapUrl, Scheme};

/// What went wrong in one plugin call.
#[derive(Debug)]
pub enum Error {
    /// The plugin is not configured to work.
    Config(ConfigIssue),

    /// A user name that must never reach LDAP.
    BadName { shown: String, why: &'static str },

    /// The name is not in the directory.
    NoSuchUser { user: String, filter: String, base: String },

    /// More than one entry matches: never pick one.
    Ambiguous { user: String, filter: String, base: String, dns: String },

    /// A password checked by a bind as the user (libsasl2 2.1.27's `auxprop-hashed`) is wrong.
    WrongPassword { user: String, dn: String, why: String },

    /// The entry `dn` has no usable value for `ldapdb_canon_attr` (`attr`).
    Canon { dn: String, attr: String, issue: CanonIssue },

    /// The directory refuses the user's account `dn` (locked, disabled, expired, password
    /// expired or to be changed): said by its state attributes or by its answer to a bind.
    Account { condition: Condition, dn: String, seen: Box<Seen> },

    /// The canonical name does not fit the host's buffer.
    TooLong { len: usize, max: usize },

    /// A step of talking to one LDAP server failed: unreachable, slow, TLS, or the server's
    /// answer (a result another server or a later try may not give, or a refusal of the
    /// service account or its access).
    Ldap(Box<Attempt>),

    /// No server was tried before the operation's `ldapdb_timeout` ran out.
    NoAnswer { timeout: Duration },

    /// A search the server cut at its own size limit before a second entry came: whether the
    /// user is unique cannot be told.
    Unsure(Box<Unsure>),

    /// A libsasl2 utility call failed (e.g. `prop_set`).
    Host { call: &'static str, code: c_int },

    /// A bug: a panic caught at the C boundary, or a state the code rules out.
    Internal(String),
}

/// Why the plugin has no usable configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigIssue {
    /// The configuration read at init was rejected: the lines init logged, each naming its
    /// cause and fix ([`crate::config::ConfigError`]), repeated for the login that meets them.
    Rejected(String),
    /// libsasl2 calls ldapbind as the canonuser plugin, but `sasl_ldapdb_uri` is not set.
    CanonWithoutUri,
}

/// One step with one server and how it failed.
#[derive(Debug)]
pub struct Attempt {
    pub server: Server,
    pub step: Step,
    pub cause: Cause,
}

/// The server a step talked to, as one URL of `ldapdb_uri` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port` (IPv6 in brackets), or the socket path for ldapi://.
    pub endpoint: String,
    /// Host name or address (the socket path for ldapi://).
    pub host: String,
    pub port: u16,
    /// The URL names no port, so 389 or 636 was used.
    pub default_port: bool,
    pub ldapi: bool,
    /// The URL as the admin wrote it.
    pub url: String,
}

impl Server {
    pub fn of(url: &LdapUrl) -> Server {
        Server {
            endpoint: url.endpoint(),
            host: url.host.clone(),
            port: url.port,
            default_port: url.port_is_default,
            ldapi: url.scheme == Scheme::Ldapi,
            url: url.original.clone(),
        }
    }

    /// " (the default port: sasl_ldapdb_uri names none)" when the port was not written.
    fn port_note(&self) -> &'static str {
        if self.default_port { " (the default port: sasl_ldapdb_uri names none)" } else { "" }
    }
}

/// The steps of talking to a server, with what the messages about a refusal need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Resolving the host name (ldapi://: checking the socket path).
    Resolve,
    /// The TCP (or Unix socket) connect.
    Connect,
    /// Connect and TLS handshake (ldaps://).
    Ldaps,
    /// Connect, StartTLS request and TLS handshake.
    StartTls,
    /// The bind as the configured service account; `base` is the search base.
    ServiceBind { account: ServiceAccount, base: String },
    /// A search under the search base as the service account.
    Search(Box<SearchPlace>),
    /// The bind as a user's DN that checks a password.
    PasswordCheck { dn: String },
}

/// Who the service binds as (`ldapdb_id`, SASL EXTERNAL or nobody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccount {
    Simple { dn: String },
    External,
    Anonymous,
}

impl ServiceAccount {
    pub fn of(bind: &Bind) -> ServiceAccount {
        match bind {
            Bind::Simple { dn, .. } => ServiceAccount::Simple { dn: dn.clone() },
            Bind::External => ServiceAccount::External,
            Bind::Anonymous => ServiceAccount::Anonymous,
        }
    }
}

/// Where the service searches, as a refused search's message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPlace {
    pub account: ServiceAccount,
    pub base: String,
    /// The option the base comes from: `sasl_ldapdb_search_base`, or the DN in the URL.
    pub base_from: BaseSource,
    /// What the base's spelling may have changed (the seed's `%44`), see `Config::base_hint`.
    pub hint: Option<String>,
}

impl Step {
    pub fn service_bind(cfg: &Config) -> Step {
        Step::ServiceBind { account: ServiceAccount::of(&cfg.bind), base: cfg.search_base.clone() }
    }

    pub fn search(cfg: &Config) -> Step {
        Step::Search(Box::new(SearchPlace {
            account: ServiceAccount::of(&cfg.bind),
            base: cfg.search_base.clone(),
            base_from: cfg.base_source,
            hint: cfg.base_hint.clone(),
        }))
    }

    /// The step as "did not answer the …" and "failed during …" lines name it.
    fn doing(&self) -> &'static str {
        match self {
            Step::Resolve => "name lookup",
            Step::Connect => "connect",
            Step::Ldaps => "connect and TLS handshake",
            Step::StartTls => "connect and StartTLS",
            Step::ServiceBind { .. } => "bind",
            Step::Search(_) => "search",
            Step::PasswordCheck { .. } => "password check bind",
        }
    }

    /// The step as "answered the … with" lines name it.
    fn answered(&self) -> &'static str {
        match self {
            Step::Resolve => "name lookup",
            Step::Connect => "connect",
            Step::Ldaps => "TLS handshake",
            Step::StartTls => "StartTLS request",
            Step::ServiceBind { .. } => "service bind",
            Step::Search(_) => "user search",
            Step::PasswordCheck { .. } => "password check bind",
        }
    }

    /// Whether the result `code` at this step says no for a reason every server shares (the
    /// configuration, the ACLs): an admin's problem, never failed over. Results that say "not
    /// now" or "not here" ([`LdapCode::passing`]) are not, nor is a refused StartTLS (the
    /// server's TLS setup).
    fn refuses(&self, code: &LdapCode) -> bool {
        match self {
            Step::ServiceBind { .. } | Step::Search(_) | Step::PasswordCheck { .. } => !code.passing(),
            Step::Resolve | Step::Connect | Step::Ldaps | Step::StartTls => false,
        }
    }
}

/// What happened at a [`Step`].
#[derive(Debug)]
pub enum Cause {
    /// The network or the socket said no (refused, reset, no such socket file, ...).
    Io(io::Error),
    /// The name lookup failed; `chroot` when this process runs chrooted (its own etc/ files).
    Unresolved { source: io::Error, chroot: Option<Chroot> },
    /// Nothing came within the configured `ldapdb_timeout`.
    TimedOut { timeout: Duration },
    /// The TLS handshake failed; `trust` says what was trusted, for the message.
    Tls { source: rustls::Error, trust: Trust },
    /// The host name in the URL cannot be checked against a certificate (an IPv6 literal).
    TlsName(rustls::pki_types::InvalidDnsNameError),
    /// The server answered with this result.
    Result(LdapCode),
    /// The service account's bind was refused for the account's state (locked, expired, ...);
    /// `said` is the directory's answer as ldapbind read it.
    Policy { condition: Condition, said: String },
    /// StartTLS `try` went on in cleartext: the server refused StartTLS.
    Cleartext,
    /// The ldapi:// path is not a socket.
    NotSocket,
}

impl Cause {
    /// The cause a failed connection's I/O error stands for, with `cfg`'s timeout and trust for
    /// the message: [`crate::ldap::wire`] reports a timeout as kind `TimedOut` (or `WouldBlock`,
    /// a socket read timeout on Unix), a TLS failure and an unusable TLS name as the rustls error
    /// inside.
    pub fn of_io(source: io::Error, cfg: &Config) -> Cause {
        if matches!(source.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
            return Cause::TimedOut { timeout: cfg.timeout };
        }
        let inner = source.get_ref();
        if let Some(tls) = inner.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Cause::Tls { source: tls.clone(), trust: Trust::of(cfg) };
        }
        if inner.is_some_and(|inner| inner.is::<rustls::pki_types::InvalidDnsNameError>()) {
            return Cause::TlsName(rustls::pki_types::InvalidDnsNameError);
        }
        Cause::Io(source)
    }
}

/// What a TLS client trusted, for certificate messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// `sasl_ldapdb_tls_cacert`; `None`: the system certificate store.
    pub ca_file: Option<PathBuf>,
    /// A client certificate was presented (`sasl_ldapdb_tls_cert`).
    pub client_cert: bool,
}

impl Trust {
    pub fn of(cfg: &Config) -> Trust {
        Trust { ca_file: cfg.tls_cacert.clone(), client_cert: cfg.tls_cert.is_some() }
    }
}

/// This process runs chrooted; `missing` are the resolver files its root lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chroot {
    pub missing: Vec<&'static str>,
}

/// An LDAP result code and the server's diagnostic text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapCode {
    pub rc: u32,
    pub text: String,
}

impl LdapCode {
    pub fn of(res: &ldap3::LdapResult) -> LdapCode {
        LdapCode { rc: res.rc, text: res.text.clone() }
    }

    /// The RFC 4511 name of the code (4.1.9).
    pub fn name(&self) -> &'static str {
        rc_name(self.rc)
    }

    /// Results that say "not now" or "not here" rather than "no": another server of
    /// `ldapdb_uri`, or a later try, may answer. 3 timeLimitExceeded, 10 referral, 51 busy,
    /// 52 unavailable, 80 other.
    pub fn passing(&self) -> bool {
        matches!(self.rc, 3 | 10 | 51 | 52 | 80)
    }
}

/// `52 unavailable: Could not initialize TLS`, `49 invalidCredentials`.
impl fmt::Display for LdapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rc, self.name())?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// Why no value of `ldapdb_canon_attr` names the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonIssue {
    /// A value that could be no user name (`shown` as typed names are shown).
    NotAName { shown: String, why: &'static str },
    /// The entry has none, or the service account may not read it.
    Missing,
    /// Several values and none equals what was typed.
    NoneEquals { count: usize, typed: String },
}

/// How the directory said it refuses an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// By the entry's state attributes, found with the user search of `user` (no bind made).
    Entry { user: String, finding: Finding },
    /// By its answer to a bind as the account at `server` (`host:port`), `said` as ldapbind
    /// read it; `bound`: the bind itself succeeded, only the must-change rule said no.
    Bind { server: String, said: String, bound: bool },
}

/// A search cut at the server's size limit (4 sizeLimitExceeded) before a second entry came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsure {
    pub user: String,
    pub filter: String,
    pub base: String,
    /// The server that cut the search short (`host:port`).
    pub server: String,
    /// DNs of the entries that came before the limit.
    pub dns: Vec<String>,
    pub account: ServiceAccount,
}

impl Error {
    /// The error for a bind as the user at `server` that the directory refused for `condition`;
    /// `bound`: the bind itself succeeded (only the policy's must-change rule said no), so
    /// `ldapdb_allow_expired_password` could let it in.
    pub fn bind_refusal(server: &str, dn: &str, condition: Condition, said: &str, bound: bool) -> Error {
        Error::Account {
            condition,
            dn: dn.to_owned(),
            seen: Box::new(Seen::Bind { server: server.to_owned(), said: said.to_owned(), bound }),
        }
    }

    /// An `Error::Ldap` for `step` with the server `url`.
    pub fn at(url: &LdapUrl, step: Step, cause: Cause) -> Error {
        Error::Ldap(Box::new(Attempt { server: Server::of(url), step, cause }))
    }

    /// Talking to the server `url` at `step` failed with `e`.
    pub fn ldap(cfg: &Config, url: &LdapUrl, step: Step, e: io::Error) -> Error {
        Error::at(url, step, Cause::of_io(e, cfg))
    }

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
            Error::Ldap(a) => a.sasl_code(),
            Error::NoAnswer { .. } => SASL_UNAVAIL,
            Error::Host { code, .. } => *code,
            // Not the user's fault, so not SASL_BADAUTH, the code of a wrong password, on
            // which fail2ban's cyrus-imap filter bans (`SASL(-13)`).
            Error::Unsure(_) | Error::Internal(_) => SASL_FAIL,
        }
    }

    /// The SASL log level the error is reported at the first time: `Err` for what only the
    /// admin can fix (configuration, directory unreachable or slow, the service account refused
    /// or not allowed, the directory's data: ambiguous entries, a missing or oversized canonical
    /// name), `Fail` for the user's own failure (an unknown name, a name that must not reach
    /// LDAP). Repeats of an `Err` cause are logged at `Fail` ([`crate::host::FirstSeen`]).
    pub fn level(&self) -> crate::level::Level {
        use crate::level::Level;
        match self {
            Error::Config(_)
            | Error::Ldap(_)
            | Error::NoAnswer { .. }
            | Error::Unsure(_)
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

    /// What happened, without the advice.
    pub fn problem(&self) -> String {
        self.lines().0
    }

    /// What an admin does about it, when there is something to do.
    pub fn fix(&self) -> Option<String> {
        self.lines().1
    }

    fn lines(&self) -> (String, Option<String>) {
        match self {
            Error::Config(ConfigIssue::Rejected(lines)) => (lines.clone(), None),
            Error::Config(ConfigIssue::CanonWithoutUri) => (
                "sasl_canon_user_plugin is ldapbind but sasl_ldapdb_uri is not set".to_owned(),
                Some("add `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` or remove sasl_canon_user_plugin".to_owned()),
            ),
            Error::BadName { shown, why } => (format!("refusing user name {shown}: {why}"), None),
            Error::NoSuchUser { user, filter, base } => {
                (format!("user {user} not found: no entry matches {filter} under {base}"), None)
            }
            Error::Ambiguous { user, filter, base, dns } => (
                format!("user {user} is ambiguous: {filter} under {base} matches more than one entry ({dns})"),
                Some("make the entries' uid/mail unique or narrow sasl_ldapdb_filter".to_owned()),
            ),
            Error::WrongPassword { user, dn, why } => (format!("password for {user} ({dn}) refused: {why}"), None),
            Error::Canon { dn, attr, issue } => canon_lines(dn, attr, issue),
            Error::Account { condition, dn, seen } => account_lines(*condition, dn, seen),
            Error::TooLong { len, max } => {
                (format!("canonical name of {len} bytes does not fit libsasl2's {max}-byte buffer"), None)
            }
            Error::Ldap(a) => a.lines(),
            Error::NoAnswer { timeout } => (
                format!(
                    "no LDAP server in sasl_ldapdb_uri answered within {}s (sasl_ldapdb_timeout)",
                    timeout.as_secs_f64()
                ),
                Some("check that the servers are up, or raise sasl_ldapdb_timeout".to_owned()),
            ),
            Error::Unsure(u) => u.lines(),
            Error::Host { call, code } => (format!("libsasl2 {call} failed with code {code}"), None),
            Error::Internal(what) => (format!("internal error (please report): {what}"), None),
        }
    }
}

/// The problem, then "; " and the fix when there is one: the log line.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (problem, fix) = self.lines();
        f.write_str(&problem)?;
        if let Some(fix) = fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let Error::Ldap(a) = self else { return None };
        match &a.cause {
            Cause::Io(e) | Cause::Unresolved { source: e, .. } => Some(e),
            Cause::Tls { source, .. } => Some(source),
            Cause::TlsName(e) => Some(e),
            Cause::TimedOut { .. } | Cause::Result(_) | Cause::Policy { .. } | Cause::Cleartext | Cause::NotSocket => {
                None
            }
        }
    }
}

impl Attempt {
    fn sasl_code(&self) -> c_int {
        match &self.cause {
            Cause::Result(code) if self.step.refuses(code) => SASL_FAIL,
            // The service account's state needs an admin.
            Cause::Policy { .. } => SASL_FAIL,
            // No server could answer now: refused, unreachable, DNS, slow, TLS, or a result
            // another server or a later try may not give.
            Cause::Result(_)
            | Cause::Io(_)
            | Cause::Unresolved { .. }
            | Cause::TimedOut { .. }
            | Cause::Tls { .. }
            | Cause::TlsName(_)
            | Cause::Cleartext
            | Cause::NotSocket => SASL_UNAVAIL,
        }
    }

    fn lines(&self) -> (String, Option<String>) {
        let s = &self.server;
        let endpoint = &s.endpoint;
        let note = s.port_note();
        let host = &s.host;
        let ldapi_path = "the path in sasl_ldapdb_uri (percent-encoded, e.g. ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi)";
        let lines = |problem: String, fix: &str| (problem, Some(fix.to_owned()));
        match (&self.step, &self.cause) {
            (Step::Resolve, Cause::TimedOut { timeout }) if !s.ldapi => lines(
                format!(
                    "resolving {host} from sasl_ldapdb_uri took longer than {}s (sasl_ldapdb_timeout)",
                    timeout.as_secs_f64()
                ),
                "check the host name and this host's DNS resolver, or write the server's IP address",
            ),
            (_, Cause::Unresolved { source, chroot }) => (
                format!("cannot resolve {host} from sasl_ldapdb_uri ({source})"),
                Some(chroot.as_ref().map_or_else(|| "check the host name".to_owned(), Chroot::fix)),
            ),
            (Step::Resolve, Cause::NotSocket) => {
                lines(format!("{host} is not a socket"), &format!("check {ldapi_path}"))
            }
            (Step::Resolve, Cause::Io(e)) if s.ldapi => lines(
                format!("ldapi socket {host}: {e}"),
                &format!("check that the LDAP server listens on it and {ldapi_path}"),
            ),
            (step, Cause::TimedOut { timeout }) => {
                let place = if s.ldapi {
                    "the socket path in sasl_ldapdb_uri is"
                } else {
                    "host and port in sasl_ldapdb_uri are"
                };
                lines(
                    format!(
                        "LDAP server {endpoint}{note} did not answer the {} within {}s (sasl_ldapdb_timeout)",
                        step.doing(),
                        timeout.as_secs_f64()
                    ),
                    &format!("check that the server is up and that {place} right"),
                )
            }
            (_, Cause::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused && s.ldapi => lines(
                format!(
                    "cannot connect to LDAP server socket {endpoint}: connection refused (the socket file \
                     exists but no server listens on it)"
                ),
                "start the LDAP server, or check the socket path in sasl_ldapdb_uri against the ldapi:// URL \
                 the server listens on (slapd -h)",
            ),
            (_, Cause::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => lines(
                format!("cannot connect to LDAP server {endpoint}{note}: connection refused"),
                "check host and port in sasl_ldapdb_uri (glauth listens on 3893, slapd on 389)",
            ),
            (Step::StartTls, Cause::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => lines(
                format!("LDAP server {endpoint} closed the connection during StartTLS"),
                "check the server's TLS settings and its log",
            ),
            (Step::Ldaps, Cause::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => lines(
                format!("LDAP server {endpoint} closed the connection during the TLS handshake"),
                &format!(
                    "check that port {} serves ldaps:// (usually 636; 389 is ldap://, which takes \
                     sasl_ldapdb_starttls) and the server's TLS settings",
                    s.port
                ),
            ),
            // ldap3's words for an I/O error.
            (step, Cause::Io(e)) => other_lines(s, step, format_args!("I/O error: {e}")),
            (_, Cause::Tls { source, trust }) => tls::rustls_lines(s, trust, source),
            (_, Cause::TlsName(e)) => lines(
                format!("sasl_ldapdb_uri: `{}` cannot be checked against a TLS certificate ({e})", s.url),
                "ldapbind checks a certificate against a host name, not an IPv6 address literal: use a host name that is in the \
                 server's certificate",
            ),
            (_, Cause::Cleartext) => lines(
                format!(
                    "LDAP server {endpoint} refused StartTLS, so sasl_ldapdb_starttls: try goes on in cleartext \
                     and the bind password crosses the network unencrypted"
                ),
                "enable TLS on the server, or use ldaps://",
            ),
            (_, Cause::NotSocket) => lines(format!("{host} is not a socket"), &format!("check {ldapi_path}")),
            (Step::ServiceBind { account, .. }, Cause::Policy { condition, said }) => {
                let who = match account {
                    ServiceAccount::Simple { dn } => format!("the service account {dn} (sasl_ldapdb_id)"),
                    ServiceAccount::External | ServiceAccount::Anonymous => "the service account".to_owned(),
                };
                lines(
                    format!("{who} {} (LDAP server {endpoint} answered its bind with {said})", condition.says()),
                    condition.service_fix(),
                )
            }
            (step, Cause::Policy { condition, said }) => lines(
                format!("LDAP server {endpoint} refused the {} ({}: {said})", step.answered(), condition.says()),
                condition.service_fix(),
            ),
            (Step::StartTls, Cause::Result(code)) => lines(
                format!(
                    "LDAP server {endpoint} refused StartTLS ({code}) and sasl_ldapdb_starttls is demand, so \
                     ldapbind does not continue without TLS"
                ),
                "enable TLS on the server (slapd: olcTLSCertificateFile and olcTLSCertificateKeyFile) or use its \
                 ldaps:// URL",
            ),
            (step, Cause::Result(code)) if step.refuses(code) => refusal_lines(s, step, code),
            (step, Cause::Result(code)) => lines(
                format!(
                    "LDAP server {endpoint} answered the {} with {code} (a directory problem, not a wrong password)",
                    step.answered()
                ),
                match code.rc {
                    10 => "ldapbind does not follow referrals: list in sasl_ldapdb_uri a server that holds the entries",
                    _ => {
                        "the server cannot answer now; check its load and its log, or list another server in \
                          sasl_ldapdb_uri"
                    }
                },
            ),
        }
    }
}

/// "failed during …" with ldap3's words for the error.
fn other_lines(s: &Server, step: &Step, what: fmt::Arguments<'_>) -> (String, Option<String>) {
    (
        format!("LDAP server {}{} failed during {}: {what}", s.endpoint, s.port_note(), step.doing()),
        Some("check sasl_ldapdb_uri and the server".to_owned()),
    )
}

/// A refusal ([`Step::refuses`]) of the service bind, the search or a password check.
fn refusal_lines(s: &Server, step: &Step, code: &LdapCode) -> (String, Option<String>) {
    let server = &s.endpoint;
    let (rc, detail) = (code.rc, if code.text.is_empty() { String::new() } else { format!(": {}", code.text) });
    let (problem, fix) = match step {
        Step::ServiceBind { account, base } => match (account, rc) {
            (ServiceAccount::Simple { dn }, 49) => {
                let hint = if dn.contains('=')
                    && !base.is_empty()
                    && !dn.to_ascii_lowercase().ends_with(&base.to_ascii_lowercase())
                {
                    format!("; sasl_ldapdb_id must be the full DN, e.g. {dn},{base}")
                } else {
                    String::new()
                };
                (
                    format!("LDAP server {server} refused the service bind as {dn} ({code})"),
                    format!("check sasl_ldapdb_id and sasl_ldapdb_pw{hint}"),
                )
            }
            // Active Directory refuses a simple bind without TLS ("Transport encryption required").
            (_, 8) => (
                format!("LDAP server {server} refused the bind ({code})"),
                "it accepts a password only over an encrypted connection: use ldaps:// in sasl_ldapdb_uri or \
                 set sasl_ldapdb_starttls: demand"
                    .to_owned(),
            ),
            (ServiceAccount::External, _) => (
                format!("LDAP server {server} refused the SASL EXTERNAL service bind ({code})"),
                "the server must map the peer credentials or client certificate to an identity, or use \
                 sasl_ldapdb_id/sasl_ldapdb_pw with a simple bind"
                    .to_owned(),
            ),
            (_, 48 | 7) => (
                format!("LDAP server {server} refused the bind ({code})"),
                "the server does not accept this kind of bind: set sasl_ldapdb_id and sasl_ldapdb_pw for a \
                 simple bind"
                    .to_owned(),
            ),
            (ServiceAccount::Simple { dn }, _) => (
                format!("LDAP server {server} refused the service bind as {dn} ({code})"),
                "check sasl_ldapdb_id and sasl_ldapdb_pw".to_owned(),
            ),
            (ServiceAccount::Anonymous, _) => (
                format!("LDAP server {server} refused the anonymous bind ({code})"),
                "set sasl_ldapdb_id and sasl_ldapdb_pw".to_owned(),
            ),
        },
        Step::Search(place) => {
            let SearchPlace { account, base, base_from, hint } = &**place;
            let source = match base_from {
                BaseSource::SearchBaseOption => "sasl_ldapdb_search_base",
                BaseSource::Url => "the DN in sasl_ldapdb_uri",
            };
            let who = match account {
                ServiceAccount::Simple { dn } => dn.as_str(),
                ServiceAccount::External => "the EXTERNAL identity",
                ServiceAccount::Anonymous => "anonymous (no sasl_ldapdb_id)",
            };
            // The seed's `%44`: the base is not what the admin wrote, and the init warning is
            // below the default log level.
            let note = hint.as_deref().map(|h| format!("note: {h}"));
            let with_note = |fix: String| Some(note.as_ref().map_or_else(|| fix.clone(), |n| format!("{fix}; {n}")));
            let (problem, fix) = match rc {
                32 => (
                    format!(
                        "LDAP server {server}: search base {base} (from {source}) does not exist or {who} may not \
                         see it (32 noSuchObject{detail})"
                    ),
                    with_note(format!("fix {source} or the server's ACLs")),
                ),
                50 => (
                    format!("LDAP server {server}: {who} may not search {base} (50 insufficientAccessRights{detail})"),
                    with_note(
                        "grant the service account search and read access, or set sasl_ldapdb_id to an account \
                         that has it"
                            .to_owned(),
                    ),
                ),
                _ => (format!("LDAP server {server}: user search under {base} failed ({code})"), note.clone()),
            };
            return (problem, fix);
        }
        Step::PasswordCheck { dn } => {
            return (
                format!(
                    "LDAP server {server} refused the password check bind as {dn} with result {rc} ({})",
                    code.text
                ),
                None,
            );
        }
        Step::Resolve | Step::Connect | Step::Ldaps | Step::StartTls => {
            return (format!("LDAP server {server} answered the {} with {code}", step.answered()), None);
        }
    };
    (problem, Some(fix))
}

impl Chroot {
    /// What to do when a chrooted process cannot resolve a name.
    fn fix(&self) -> String {
        let missing = match self.missing.as_slice() {
            [] => String::new(),
            files => format!(", which has no {}", files.join(" and no ")),
        };
        format!(
            "this process runs chrooted (its root is not the system's `/`; Postfix's smtpd runs in \
             /var/spool/postfix){missing}: copy /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf into the \
             chroot's etc/ (Debian's postfix service does that when it starts, a bare `postfix start` does not), \
             or write the server's IP address in sasl_ldapdb_uri"
        )
    }
}

fn canon_lines(dn: &str, attr: &str, issue: &CanonIssue) -> (String, Option<String>) {
    let (problem, fix) = match issue {
        CanonIssue::NotAName { shown, why } => (
            format!(
                "entry {dn} has a {attr} (sasl_ldapdb_canon_attr) value that cannot be a user name: {shown} ({why})"
            ),
            "correct that value in the directory, or set sasl_ldapdb_canon_attr to an attribute that holds plain \
             names"
                .to_owned(),
        ),
        CanonIssue::Missing => (
            format!("entry {dn} has no {attr} (sasl_ldapdb_canon_attr), or the service account may not read it"),
            format!("give the entry a {attr} or set sasl_ldapdb_canon_attr to an attribute every user has"),
        ),
        CanonIssue::NoneEquals { count, typed } => (
            format!("entry {dn} has {count} values of {attr} (sasl_ldapdb_canon_attr) and none equals {typed}"),
            "refusing to pick one: use a single-valued attribute".to_owned(),
        ),
    };
    (problem, Some(fix))
}

fn account_lines(condition: Condition, dn: &str, seen: &Seen) -> (String, Option<String>) {
    match seen {
        Seen::Entry { user, finding } => (
            format!("user {user} ({dn}) {}: {}", condition.says(), finding.evidence()),
            Some(format!("the directory would refuse a bind, so ldapbind refuses the login; {}", condition.user_fix())),
        ),
        Seen::Bind { server, said, bound } => {
            let fix = if condition.is_password() && !bound {
                "the user must set a new password in the directory (it refuses binds with this one, whatever \
                 sasl_ldapdb_allow_expired_password says)"
            } else {
                condition.user_fix()
            };
            (
                format!(
                    "the account {dn} {} (LDAP server {server} answered the bind as it with {said})",
                    condition.says()
                ),
                Some(fix.to_owned()),
            )
        }
    }
}

impl Unsure {
    fn lines(&self) -> (String, Option<String>) {
        let Unsure { user, filter, base, server, dns, account } = self;
        let (who, slapd) = match account {
            ServiceAccount::Simple { dn } => {
                (format!("the service account {dn}"), format!("`limits dn.exact=\"{dn}\" size=unlimited`"))
            }
            ServiceAccount::External => (
                "the service account (the EXTERNAL identity)".to_owned(),
                "`limits dn.exact=\"<its DN>\" size=unlimited`".to_owned(),
            ),
            ServiceAccount::Anonymous => {
                ("anonymous searches".to_owned(), "`limits anonymous size=unlimited`".to_owned())
            }
        };
        let read = match dns.as_slice() {
            [] => "before any entry".to_owned(),
            [dn] => format!("after 1 entry ({dn})"),
            more => format!("after {} entries ({})", more.len(), more.join("; ")),
        };
        (
            format!(
                "cannot tell whether user {user} is unique: LDAP server {server} ended the search {filter} under \
                 {base} at its own size limit {read} (4 sizeLimitExceeded), so more entries may match and ldapbind \
                 refuses"
            ),
            Some(format!(
                "raise the size limit of {who} to at least 2 (slapd: {slapd}, olcLimits in cn=config, or \
                 sizelimit/olcSizeLimit)"
            )),
        )
    }
}

/// The RFC 4511 name of an LDAP result code (4.1.9), for "(10 referral: ...)" in messages.
fn rc_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        5 => "compareFalse",
        6 => "compareTrue",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        14 => "saslBindInProgress",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        33 => "aliasProblem",
        34 => "invalidDNSyntax",
        36 => "aliasDereferencingProblem",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        _ => "unknown result code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn cfg(bind: &str) -> Config {
        let options = |key: &str| match key {
            "ldapdb_uri" => Some("ldap://ldap.example.org/dc=users,dc=local".to_owned()),
            "ldapdb_id" if bind == "simple" => Some("cn=cyrus".to_owned()),
            "ldapdb_pw" if bind == "simple" => Some("pw".to_owned()),
            "ldapdb_timeout" => Some("2.5".to_owned()),
            _ => None,
        };
        Config::from_sources(&crate::config::SystemSources(options)).unwrap()
    }

    fn at(cfg: &Config, step: Step, cause: Cause) -> Error {
        Error::at(&cfg.urls[0], step, cause)
    }

    fn result(rc: u32, text: &str) -> Cause {
        Cause::Result(LdapCode { rc, text: text.into() })
    }

    /// Display is the problem, then "; " and the fix when there is one.
    fn parts(e: &Error) -> (String, Option<String>) {
        let (problem, fix) = (e.problem(), e.fix());
        let line = match &fix {
            Some(fix) => format!("{problem}; {fix}"),
            None => problem.clone(),
        };
        assert_eq!(e.to_string(), line);
        (problem, fix)
    }

    #[test]
    fn codes_are_stable() {
        let s = || String::from("x");
        let c = cfg("simple");
        let refused = || Cause::Io(io::ErrorKind::ConnectionRefused.into());
        let tls = || Cause::Tls { source: rustls::Error::HandshakeNotComplete, trust: Trust::of(&c) };
        let seen = || Box::new(Seen::Bind { server: s(), said: s(), bound: false });
        let cases: Vec<(Error, c_int)> = vec![
            (Error::Config(ConfigIssue::Rejected(s())), -100),
            (Error::Config(ConfigIssue::CanonWithoutUri), -100),
            (Error::BadName { shown: s(), why: "w" }, -5),
            (Error::NoSuchUser { user: s(), filter: s(), base: s() }, -20),
            (Error::Ambiguous { user: s(), filter: s(), base: s(), dns: s() }, -13),
            (Error::WrongPassword { user: s(), dn: s(), why: s() }, -13),
            (Error::Canon { dn: s(), attr: s(), issue: CanonIssue::Missing }, -13),
            (Error::Account { condition: Condition::Locked, dn: s(), seen: seen() }, -19),
            (Error::Account { condition: Condition::MustChange, dn: s(), seen: seen() }, -18),
            (Error::TooLong { len: 2, max: 1 }, -3),
            // Unreachable, slow, TLS: SASL_UNAVAIL.
            (at(&c, Step::Resolve, Cause::TimedOut { timeout: c.timeout }), -24),
            (at(&c, Step::Resolve, Cause::Unresolved { source: io::ErrorKind::NotFound.into(), chroot: None }), -24),
            (at(&c, Step::Connect, refused()), -24),
            (at(&c, Step::Connect, Cause::TimedOut { timeout: c.timeout }), -24),
            (at(&c, Step::Ldaps, tls()), -24),
            (at(&c, Step::Ldaps, Cause::TlsName(rustls::pki_types::InvalidDnsNameError)), -24),
            (at(&c, Step::StartTls, Cause::Cleartext), -24),
            (at(&c, Step::Resolve, Cause::NotSocket), -24),
            (at(&c, Step::search(&c), Cause::Io(io::ErrorKind::UnexpectedEof.into())), -24),
            (Error::NoAnswer { timeout: c.timeout }, -24),
            // StartTLS refused under `demand`: the server's TLS setup, whatever its result.
            (at(&c, Step::StartTls, result(2, "")), -24),
            // Results that say "not now": SASL_UNAVAIL at every step.
            (at(&c, Step::service_bind(&c), result(51, "")), -24),
            (at(&c, Step::search(&c), result(10, "")), -24),
            (at(&c, Step::PasswordCheck { dn: s() }, result(52, "")), -24),
            // Refusals of the service account or its access: an admin's problem, SASL_FAIL,
            // never SASL_BADAUTH (the code of a wrong password).
            (at(&c, Step::service_bind(&c), result(49, "")), -1),
            (at(&c, Step::service_bind(&c), Cause::Policy { condition: Condition::Locked, said: s() }), -1),
            (at(&c, Step::search(&c), result(32, "")), -1),
            (at(&c, Step::PasswordCheck { dn: s() }, result(53, "")), -1),
            (crate::core::unsure(&c, "u", s(), "h:389", &[]), -1),
            (Error::Host { call: "prop_set", code: -7 }, -7),
            (Error::Internal(s()), -1),
        ];
        for (e, code) in cases {
            assert_eq!(e.sasl_code(), code, "{e:?}");
        }
    }

    #[test]
    fn the_source_is_the_kept_cause() {
        let c = cfg("anonymous");
        // A refused connect keeps the io::Error.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = &crate::uri::parse_uri_list(&format!("ldap://127.0.0.1:{port}/dc=x")).unwrap().urls[0];
        let deadline = crate::ldap::net::Deadline::after(Duration::from_secs(2));
        let e = crate::ldap::net::connect(url, deadline, c.timeout).unwrap_err();
        let io = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("an io::Error source");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.problem(), format!("cannot connect to LDAP server 127.0.0.1:{port}: connection refused"));

        // A TLS failure keeps the rustls::Error, in the forms the wire gives it.
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        for source in [io::Error::other(bad()), io::Error::new(io::ErrorKind::InvalidData, bad())] {
            let e = Error::ldap(&c, &c.urls[0], Step::Ldaps, source);
            let tls = e.source().and_then(|s| s.downcast_ref::<rustls::Error>());
            assert_eq!(tls, Some(&bad()), "{e:?}");
            assert!(e.problem().starts_with("certificate of LDAP server ldap.example.org:389 is not signed"), "{e}");
            assert_eq!(e.fix().as_deref(), Some("set sasl_ldapdb_tls_cacert to the CA file"));
        }

        // A timeout, an I/O error of kind TimedOut: the configured seconds.
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        let e = Error::ldap(&c, &c.urls[0], Step::search(&c), timed_out);
        assert!(matches!(&e, Error::Ldap(a) if matches!(a.cause, Cause::TimedOut { timeout } if timeout == c.timeout)));
        assert!(e.source().is_none());
        assert_eq!(
            parts(&e),
            (
                "LDAP server ldap.example.org:389 (the default port: sasl_ldapdb_uri names none) did not answer the \
                 search within 2.5s (sasl_ldapdb_timeout)"
                    .to_owned(),
                Some("check that the server is up and that host and port in sasl_ldapdb_uri are right".to_owned())
            )
        );
        // Any other I/O error keeps its words and the error.
        let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
        let e = Error::ldap(&c, &c.urls[0], Step::service_bind(&c), closed);
        assert!(e.source().and_then(|s| s.downcast_ref::<io::Error>()).is_some());
        assert_eq!(
            e.problem(),
            "LDAP server ldap.example.org:389 (the default port: sasl_ldapdb_uri names none) failed during bind: \
             I/O error: the server closed the connection"
        );
        assert!(Error::NoAnswer { timeout: c.timeout }.source().is_none());
    }

    #[test]
    fn directory_answers_name_the_result_and_the_fix() {
        let c = cfg("simple");
        let e = at(&c, Step::service_bind(&c), result(49, ""));
        assert_eq!(
            parts(&e),
            (
                "LDAP server ldap.example.org:389 refused the service bind as cn=cyrus (49 invalidCredentials)"
                    .to_owned(),
                Some(
                    "check sasl_ldapdb_id and sasl_ldapdb_pw; sasl_ldapdb_id must be the full DN, e.g. \
                     cn=cyrus,dc=users,dc=local"
                        .to_owned()
                )
            )
        );
        let e = at(&c, Step::search(&c), result(51, "try later"));
        assert_eq!(
            parts(&e),
            (
                "LDAP server ldap.example.org:389 answered the user search with 51 busy: try later (a directory \
                 problem, not a wrong password)"
                    .to_owned(),
                Some(
                    "the server cannot answer now; check its load and its log, or list another server in \
                     sasl_ldapdb_uri"
                        .to_owned()
                )
            )
        );
        let e = at(&c, Step::search(&c), result(50, ""));
        assert_eq!(
            e.problem(),
            "LDAP server ldap.example.org:389: cn=cyrus may not search dc=users,dc=local (50 insufficientAccessRights)"
        );
        let e = at(&c, Step::search(&c), result(53, "no"));
        assert_eq!(
            parts(&e),
            ("LDAP server ldap.example.org:389: user search under dc=users,dc=local failed (53 unwillingToPerform: no)".to_owned(), None)
        );
        let e = at(&c, Step::PasswordCheck { dn: "uid=u".into() }, result(53, "no"));
        assert_eq!(
            parts(&e),
            (
                "LDAP server ldap.example.org:389 refused the password check bind as uid=u with result 53 (no)"
                    .to_owned(),
                None
            )
        );
        let e = at(&c, Step::StartTls, result(52, "Could not initialize TLS"));
        assert!(e.problem().ends_with("refused StartTLS (52 unavailable: Could not initialize TLS) and sasl_ldapdb_starttls is demand, so ldapbind does not continue without TLS"), "{e}");
        let external = Step::ServiceBind { account: ServiceAccount::External, base: c.search_base.clone() };
        let e = at(&c, external, result(48, ""));
        assert!(e.problem().contains("refused the SASL EXTERNAL service bind (48 inappropriateAuthentication)"), "{e}");
        let e = at(&cfg("anonymous"), Step::service_bind(&cfg("anonymous")), result(8, "TLS required"));
        assert_eq!(
            e.problem(),
            "LDAP server ldap.example.org:389 refused the bind (8 strongerAuthRequired: TLS required)"
        );
        assert_eq!(LdapCode { rc: 4242, text: String::new() }.to_string(), "4242 unknown result code");
        assert_eq!(LdapCode { rc: 11, text: String::new() }.name(), "adminLimitExceeded");
    }

    #[test]
    fn names_resolve_failures_and_the_chroot() {
        let c = cfg("anonymous");
        let e = at(&c, Step::Resolve, Cause::TimedOut { timeout: c.timeout });
        assert_eq!(
            parts(&e).0,
            "resolving ldap.example.org from sasl_ldapdb_uri took longer than 2.5s (sasl_ldapdb_timeout)"
        );
        let lookup = || io::Error::other("Name or service not known");
        let e = at(&c, Step::Resolve, Cause::Unresolved { source: lookup(), chroot: None });
        assert_eq!(
            e.to_string(),
            "cannot resolve ldap.example.org from sasl_ldapdb_uri (Name or service not known); check the host name"
        );
        let chroot = Some(Chroot { missing: vec!["/etc/hosts", "/etc/resolv.conf"] });
        let e = at(&c, Step::Resolve, Cause::Unresolved { source: lookup(), chroot });
        let fix = e.fix().unwrap();
        assert!(
            fix.starts_with("this process runs chrooted")
                && fix.contains("which has no /etc/hosts and no /etc/resolv.conf: copy"),
            "{fix}"
        );
        assert_eq!(e.source().map(ToString::to_string).as_deref(), Some("Name or service not known"));
    }

    #[test]
    fn user_and_entry_problems_keep_their_values() {
        let e = Error::Ambiguous {
            user: "shared@example.com".into(),
            filter: "(mail=shared@example.com)".into(),
            base: "dc=users,dc=local".into(),
            dns: "cn=a,dc=users,dc=local; cn=b,dc=users,dc=local".into(),
        };
        let (problem, fix) = parts(&e);
        assert!(problem.ends_with("(cn=a,dc=users,dc=local; cn=b,dc=users,dc=local)"), "{problem}");
        assert_eq!(fix.as_deref(), Some("make the entries' uid/mail unique or narrow sasl_ldapdb_filter"));

        let finding =
            Finding { condition: Condition::Locked, attr: "nsAccountLock", value: "true".into(), meaning: "389-ds" };
        let e = Error::Account {
            condition: Condition::Locked,
            dn: "uid=u,dc=x".into(),
            seen: Box::new(Seen::Entry { user: "u".into(), finding }),
        };
        assert_eq!(parts(&e).0, "user u (uid=u,dc=x) is locked: nsAccountLock is true (389-ds)");
        let e = Error::bind_refusal("h:389", "uid=u,dc=x", Condition::PasswordExpired, "result 49", false);
        assert_eq!(
            parts(&e),
            (
                "the account uid=u,dc=x has an expired password (LDAP server h:389 answered the bind as it with result 49)".to_owned(),
                Some("the user must set a new password in the directory (it refuses binds with this one, whatever sasl_ldapdb_allow_expired_password says)".to_owned())
            )
        );
        let e = Error::Canon {
            dn: "uid=u,dc=x".into(),
            attr: "mail".into(),
            issue: CanonIssue::NoneEquals { count: 2, typed: "u".into() },
        };
        assert_eq!(
            parts(&e),
            (
                "entry uid=u,dc=x has 2 values of mail (sasl_ldapdb_canon_attr) and none equals u".to_owned(),
                Some("refusing to pick one: use a single-valued attribute".to_owned())
            )
        );
        let e = crate::core::unsure(&cfg("simple"), "u", "(uid=u)".into(), "h:389", &["cn=a".into()]);
        let (problem, fix) = parts(&e);
        assert!(problem.contains("at its own size limit after 1 entry (cn=a) (4 sizeLimitExceeded)"), "{problem}");
        assert!(fix.unwrap().contains("`limits dn.exact=\"cn=cyrus\" size=unlimited`"));
        assert_eq!(parts(&Error::Internal("boom".into())), ("internal error (please report): boom".to_owned(), None));
        assert_eq!(parts(&Error::Config(ConfigIssue::Rejected("a; b".into()))), ("a; b".to_owned(), None));
        assert_eq!(
            Error::Config(ConfigIssue::CanonWithoutUri).to_string(),
            "sasl_canon_user_plugin is ldapbind but sasl_ldapdb_uri is not set; add \
             `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` or remove sasl_canon_user_plugin"
        );
    }
}
