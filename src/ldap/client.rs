//! The ldap3 implementation of [`Directory`]: lazy, kept connections, failover across the URLs
//! of `ldapdb_uri`, a back-off for servers that failed, no reuse across `fork()`, and one
//! deadline per operation that every URL, step and message shares.
//!
//! An operation is a series of attempts, each on one connection: a kept one first, then a new
//! one per URL (those not backing off first). Every attempt but the last gets half of the time
//! left, so a server or a kept connection that does not answer leaves time for the next; a
//! connection whose attempt failed is closed, never kept.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ldap3::controls::RawControl;
use ldap3::{DerefAliases, LdapResult, Scope as LdapScope, SearchEntry, SearchOptions};

use super::net::Deadline;
use super::wire::Conn;
use super::{Directory, Entry, Found};
use crate::account::{self, BindOutcome};
use crate::config::{Bind, Config, Scope};
use crate::error::Error;
use crate::uri::{LdapUrl, Scheme};

/// How long a server that failed is skipped while another one is available.
pub const BACKOFF: Duration = Duration::from_secs(30);
/// Idle connections kept per purpose; more concurrent callers open extra ones and drop them.
const MAX_IDLE: usize = 4;
/// At most this many entries are read from a user search: two are enough to call it ambiguous.
const SIZE_LIMIT: i32 = 2;

/// One open connection and where it came from.
struct Live {
    conn: Conn,
    url: usize,
    pid: u32,
}

impl Live {
    /// A connection inherited across `fork()` belongs to the parent: never send on it. Dropping
    /// it only closes this process's copy of the socket (a `Conn` never writes when dropped).
    fn discard_if_foreign(self) -> Option<Live> {
        (self.pid == std::process::id()).then_some(self)
    }
}

/// Which kind of failure ended an attempt; decides failover and back-off.
enum Failure {
    /// The connection is unusable (I/O error, closed, timeout). Try another connection.
    Transport(Error),
    /// The server answered with a result another server or a later try may not give (busy,
    /// unavailable, time limit, referral, see [`passing`]). Try the next server.
    Answer(Error),
    /// The server answered and said no for a reason every server shares (configuration, ACLs).
    Refused(Error),
}

/// Which pool an operation takes its connection from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Bound as `ldapdb_id`, for searches.
    Service,
    /// For password checks; never used for searches.
    Verify,
}

/// The directory behind `ldapdb_uri`.
pub struct LdapDirectory {
    config: Arc<Config>,
    /// Idle service connections (bound as `ldapdb_id`).
    service: Mutex<Vec<Live>>,
    /// Idle connections for password checks; never used for searches.
    verify: Mutex<Vec<Live>>,
    /// Per URL: skip it until this instant while another URL is usable.
    backoff: Mutex<Vec<Option<Instant>>>,
    /// For ldaps:// and StartTLS; built at init by [`crate::tls::client_config`].
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LdapDirectory {
    /// Nothing is opened here: connections are made on first use. `tls` must be `Some` when
    /// any URL uses TLS (see [`crate::tls::client_config`]).
    pub fn new(config: Arc<Config>, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        let n = config.urls.len();
        LdapDirectory {
            config,
            service: Mutex::new(Vec::new()),
            verify: Mutex::new(Vec::new()),
            backoff: Mutex::new(vec![None; n]),
            tls,
        }
    }

    /// The configuration this directory was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Close every idle connection (at `sasl_done`).
    pub fn close_all(&self) {
        for pool in [&self.service, &self.verify] {
            let idle: Vec<Live> = std::mem::take(&mut *lock(pool));
            for live in idle {
                if let Some(mut live) = live.discard_if_foreign() {
                    live.conn.unbind(Duration::from_millis(200));
                }
            }
        }
    }

    /// The DN of an entry the service account sees right below the search base (a one-level
    /// search for `(objectClass=*)`, size limit 1, no attributes), `None` when it sees none: then
    /// a user search that found nothing says nothing about the user name. Never a subtree search
    /// (a server walks every entry it hides from the account); the base entry itself proves
    /// nothing (389-ds lets anyone read a domain entry, and nothing below it).
    pub fn first_below_base(&self) -> Result<Option<String>, Error> {
        let cfg = Arc::clone(&self.config);
        self.run(Purpose::Service, |conn, url, deadline| {
            let options = SearchOptions::new().deref(DerefAliases::Never).sizelimit(1);
            let transport = |e| Failure::Transport(transport_error(url, "search", cfg.timeout, e));
            let mut stream = conn
                .search(
                    &cfg.search_base,
                    LdapScope::OneLevel,
                    "(objectClass=*)",
                    vec!["1.1".to_owned()],
                    options,
                    deadline,
                )
                .map_err(transport)?;
            while let Some(raw) = stream.next_entry().map_err(transport)? {
                if !raw.is_ref() && !raw.is_intermediate() {
                    // The rest of the search is not read: close this connection.
                    return Ok((Some(SearchEntry::construct(raw).dn), Keep::No));
                }
            }
            let res = stream.result();
            if res.rc != 0 && res.rc != 4 {
                return Err(Failure::Refused(Error::Directory(search_refused_message(&cfg, url, res.rc, &res.text))));
            }
            Ok((None, Keep::Yes))
        })
    }

    fn pool(&self, purpose: Purpose) -> &Mutex<Vec<Live>> {
        match purpose {
            Purpose::Service => &self.service,
            Purpose::Verify => &self.verify,
        }
    }

    fn take_idle(&self, purpose: Purpose) -> Option<Live> {
        let mut idle = lock(self.pool(purpose));
        while let Some(live) = idle.pop() {
            if let Some(live) = live.discard_if_foreign() {
                return Some(live);
            }
        }
        None
    }

    fn put_idle(&self, purpose: Purpose, live: Live) {
        let mut idle = lock(self.pool(purpose));
        if idle.len() < MAX_IDLE {
            idle.push(live);
        }
    }

    /// Drop the idle connections to `url` in every pool: its server failed or restarted, so
    /// they are dead or about to time out too.
    fn forget(&self, url: usize) {
        for pool in [&self.service, &self.verify] {
            let gone: Vec<Live> = {
                let mut idle = lock(pool);
                let (gone, kept) = std::mem::take(&mut *idle).into_iter().partition(|l| l.url == url);
                *idle = kept;
                gone
            };
            gone.into_iter().for_each(|l| drop(l.discard_if_foreign()));
        }
    }

    /// The URL indexes to try, in order: those not backing off, then the others, the one whose
    /// back-off ends first first (a server that failed is skipped while another answers, and a
    /// lone server that came back is found again).
    fn candidates(&self) -> Vec<usize> {
        let now = Instant::now();
        let backoff = lock(&self.backoff);
        let mut order: Vec<usize> = (0..backoff.len()).collect();
        order.sort_by_key(|&i| backoff[i].filter(|until| *until > now));
        order
    }

    fn mark_failed(&self, url: usize) {
        if let Some(slot) = lock(&self.backoff).get_mut(url) {
            *slot = Some(Instant::now() + BACKOFF);
        }
        self.forget(url);
    }

    fn mark_ok(&self, url: usize) {
        if let Some(slot) = lock(&self.backoff).get_mut(url) {
            *slot = None;
        }
    }

    /// A new connection to URL `index`, bound as the service for [`Purpose::Service`].
    fn open_one(&self, index: usize, purpose: Purpose, deadline: Deadline) -> Result<Live, Failure> {
        let cfg = &*self.config;
        let Some(url) = cfg.urls.get(index) else {
            return Err(Failure::Transport(Error::Unavailable(format!("no URL #{index}"))));
        };
        let mut conn = crate::tls::connect(cfg, url, self.tls.as_ref(), deadline).map_err(|e| {
            Failure::Transport(match e {
                crate::tls::ConnectError::Tls(line) => Error::Unavailable(line),
                crate::tls::ConnectError::Ldap { step, source } => transport_error(url, step, cfg.timeout, source),
                crate::tls::ConnectError::Net(e) => e,
            })
        })?;
        if purpose == Purpose::Service {
            self.service_bind(&mut conn, url, deadline)?;
        }
        log::debug!(target: "ldapbind", "connected to {}", url.endpoint());
        Ok(Live { conn, url: index, pid: std::process::id() })
    }

    fn service_bind(&self, conn: &mut Conn, url: &LdapUrl, deadline: Deadline) -> Result<(), Failure> {
        let cfg = &*self.config;
        let result = match &cfg.bind {
            Bind::Anonymous => return Ok(()),
            Bind::Simple { dn, password } => conn.simple_bind(dn, password.expose(), deadline),
            Bind::External => conn.sasl_external_bind(deadline),
        };
        let result = result.map_err(|e| Failure::Transport(transport_error(url, "bind", cfg.timeout, e)))?;
        service_bind_checked(cfg, url, &result).map_err(|e| match e {
            Error::Unavailable(_) => Failure::Answer(e),
            e => Failure::Refused(e),
        })
    }

    /// Run `op` by the deadline of one operation: on a kept connection of `purpose` first, then
    /// on new ones, one per URL in [`Self::candidates`] order, until an attempt succeeds or a
    /// server refuses. What failed on the way is logged, as warnings when another server
    /// answered and as errors when none did (the last failure is returned for the caller).
    fn run<T>(
        &self,
        purpose: Purpose,
        mut op: impl FnMut(&mut Conn, &LdapUrl, Deadline) -> Result<(T, Keep), Failure>,
    ) -> Result<T, Error> {
        let cfg = &*self.config;
        let deadline = Deadline::after(cfg.timeout);
        // What failed so far, with the index of its URL.
        let mut failures: Vec<(usize, Error)> = Vec::new();
        let mut kept = self.take_idle(purpose);
        // Computed after the kept connection's attempt, which may put its server on back-off.
        let mut candidates: Option<Vec<usize>> = None;
        loop {
            let (mut live, share) = match kept.take() {
                Some(live) => (live, deadline.share(true)),
                None => {
                    let todo = candidates.get_or_insert_with(|| self.candidates().into_iter().rev().collect());
                    let Some(url) = todo.pop() else { break };
                    if deadline.passed() && !failures.is_empty() {
                        break;
                    }
                    let share = deadline.share(!todo.is_empty());
                    match self.open_one(url, purpose, share) {
                        Ok(live) => (live, share),
                        Err(failure) => match self.failed(url, true, failure, &mut failures) {
                            Some(refused) => return Err(report(failures, refused)),
                            None => continue,
                        },
                    }
                }
            };
            let fresh = candidates.is_some();
            let url = &cfg.urls[live.url.min(cfg.urls.len() - 1)];
            match op(&mut live.conn, url, share) {
                Ok((v, keep)) => {
                    let live_url = live.url;
                    if fresh {
                        self.mark_ok(live_url);
                    }
                    if keep == Keep::Yes {
                        self.put_idle(purpose, live);
                    }
                    for (index, e) in failures {
                        if index == live_url {
                            log::warn!(
                                target: "ldapbind",
                                "{e}; a new connection to the same server answered (a firewall or NAT may drop \
                                 idle connections)"
                            );
                        } else {
                            log::warn!(
                                target: "ldapbind",
                                "{e}; another server in sasl_ldapdb_uri answered, this one is skipped for {}s",
                                BACKOFF.as_secs()
                            );
                        }
                    }
                    return Ok(v);
                }
                Err(failure) => {
                    let index = live.url;
                    let refused = matches!(failure, Failure::Refused(_));
                    if refused {
                        // The connection is fine; the server said no.
                        self.put_idle(purpose, live);
                    }
                    if let Some(refused) = self.failed(index, fresh, failure, &mut failures) {
                        return Err(report(failures, refused));
                    }
                }
            }
        }
        let last = failures.pop().map(|(_, e)| e).unwrap_or_else(|| {
            Error::Timeout(format!(
                "no LDAP server in sasl_ldapdb_uri answered within {}s (sasl_ldapdb_timeout); check that the \
                 servers are up, or raise sasl_ldapdb_timeout",
                cfg.timeout.as_secs_f64()
            ))
        });
        Err(report(failures, last))
    }

    /// Account for a failed attempt on URL `index`: `Some` error when the operation must end
    /// (a refusal); otherwise the server is put on back-off and the failure kept for the log.
    /// A kept connection found closed (`!fresh`: the server restarted, an idle cut) says
    /// nothing about the server: that one is only replaced.
    fn failed(&self, index: usize, fresh: bool, failure: Failure, failures: &mut Vec<(usize, Error)>) -> Option<Error> {
        match failure {
            Failure::Refused(e) => Some(e),
            Failure::Transport(e) if !fresh && !matches!(e, Error::Timeout(_)) => {
                log::debug!(target: "ldapbind", "kept connection failed ({e}); reconnecting");
                self.forget(index);
                None
            }
            Failure::Transport(e) | Failure::Answer(e) => {
                self.mark_failed(index);
                failures.push((index, e));
                None
            }
        }
    }
}

/// Log the failures before `last`, the one the caller reports, as errors: the operation failed.
fn report(failures: Vec<(usize, Error)>, last: Error) -> Error {
    for (_, e) in failures {
        log::error!(target: "ldapbind", "{e}");
    }
    last
}

/// Whether a connection may go back to the pool after an operation that succeeded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    /// The operation was cut short (a search still running on the server): close it.
    No,
}

impl Directory for LdapDirectory {
    fn find(&self, filter: &str, attrs: &[String]) -> Result<Found, Error> {
        let cfg = Arc::clone(&self.config);
        let scope = match cfg.scope {
            Scope::Base => LdapScope::Base,
            Scope::One => LdapScope::OneLevel,
            Scope::Sub => LdapScope::Subtree,
        };
        let wanted: Vec<String> = if attrs.is_empty() { vec!["1.1".to_owned()] } else { attrs.to_vec() };
        self.run(Purpose::Service, |conn, url, deadline| {
            let options = SearchOptions::new().deref(DerefAliases::Never).sizelimit(SIZE_LIMIT);
            let mut stream = conn
                .search(&cfg.search_base, scope, filter, wanted.clone(), options, deadline)
                .map_err(|e| Failure::Transport(transport_error(url, "search", cfg.timeout, e)))?;
            // Read at most SIZE_LIMIT + 1 entries whatever the server sends: enough to tell
            // "one" from "ambiguous", and a bound on memory. A search cut short leaves work on
            // the server, so that connection is closed instead of kept.
            let mut entries: Vec<Entry> = Vec::new();
            let mut cut_short = false;
            loop {
                let next = stream
                    .next_entry()
                    .map_err(|e| Failure::Transport(transport_error(url, "search", cfg.timeout, e)))?;
                let Some(raw) = next else { break };
                if raw.is_ref() || raw.is_intermediate() {
                    continue;
                }
                entries.push(to_entry(SearchEntry::construct(raw)));
                if entries.len() > SIZE_LIMIT as usize {
                    cut_short = true;
                    break;
                }
            }
            let mut unsure = false;
            let keep = if cut_short {
                drop(stream);
                Keep::No
            } else {
                let res = stream.result();
                if res.rc != 0 && res.rc != 4 {
                    if passing(res.rc) {
                        return Err(Failure::Answer(passing_result(url, "user search", &res)));
                    }
                    return Err(Failure::Refused(Error::Directory(search_refused_message(
                        &cfg, url, res.rc, &res.text,
                    ))));
                }
                // 4 = sizeLimitExceeded: after SIZE_LIMIT entries, more than one matched; after
                // fewer, the server's own lower limit cut the search and more may match.
                unsure = res.rc == 4 && entries.len() < SIZE_LIMIT as usize;
                Keep::Yes
            };
            let found = match entries.len() {
                _ if unsure => {
                    Found::Unsure { server: url.endpoint(), dns: entries.into_iter().map(|e| e.dn).collect() }
                }
                0 => Found::None,
                1 => Found::One(entries.remove(0)),
                _ => Found::Many(entries.into_iter().map(|e| e.dn).collect()),
            };
            Ok((found, keep))
        })
    }

    fn check_password(&self, dn: &str, password: &str) -> Result<bool, Error> {
        let timeout = self.config.timeout;
        self.run(Purpose::Verify, |conn, url, deadline| {
            let res = conn
                .simple_bind(dn, password, deadline)
                .map_err(|e| Failure::Transport(transport_error(url, "password check bind", timeout, e)))?;
            if passing(res.rc) {
                return Err(Failure::Answer(passing_result(url, "password check bind", &res)));
            }
            match account::bind_outcome(res.rc, &res.text, &raw_controls(&res)) {
                BindOutcome::Accepted => Ok((true, Keep::Yes)),
                BindOutcome::WrongPassword => Ok((false, Keep::Yes)),
                // The bind succeeded; only the policy's must-change rule said no.
                BindOutcome::Refused { condition, .. }
                    if res.rc == 0 && condition.is_password() && self.config.allow_expired_password =>
                {
                    Ok((true, Keep::Yes))
                }
                BindOutcome::Refused { condition, said } => {
                    Err(Failure::Refused(account::bind_refusal(&url.endpoint(), dn, condition, &said, res.rc == 0)))
                }
                BindOutcome::Other => Err(Failure::Refused(Error::Directory(format!(
                    "LDAP server {} refused the password check bind as {dn} with result {} ({})",
                    url.endpoint(),
                    res.rc,
                    res.text
                )))),
            }
        })
    }
}

/// A result's response controls as sent, whatever ldap3 parsed of them.
fn raw_controls(res: &LdapResult) -> Vec<RawControl> {
    res.ctrls.iter().map(|c| c.1.clone()).collect()
}

/// Results that say "not now" or "not here" rather than "no": another server of
/// `ldapdb_uri`, or a later try, may answer. 3 timeLimitExceeded, 10 referral, 51 busy,
/// 52 unavailable, 80 other.
fn passing(rc: u32) -> bool {
    matches!(rc, 3 | 10 | 51 | 52 | 80)
}

/// The service bind's answer `res`: `Ok` when bound and usable; a [`passing`] result is the
/// server's problem ([`Error::Unavailable`]), anything else a refusal of the configured account
/// (its password policy state included) ([`Error::Directory`]).
pub(crate) fn service_bind_checked(cfg: &Config, url: &LdapUrl, res: &LdapResult) -> Result<(), Error> {
    if passing(res.rc) {
        return Err(passing_result(url, "service bind", res));
    }
    service_bind_result(cfg, url, res).map_err(Error::Directory)
}

/// The line for a [`passing`] result at `step`.
fn passing_result(url: &LdapUrl, step: &str, res: &LdapResult) -> Error {
    let detail = if res.text.is_empty() { String::new() } else { format!(": {}", res.text) };
    let fix = match res.rc {
        10 => "ldapbind does not follow referrals: list in sasl_ldapdb_uri a server that holds the entries",
        _ => "the server cannot answer now; check its load and its log, or list another server in sasl_ldapdb_uri",
    };
    Error::Unavailable(format!(
        "LDAP server {} answered the {step} with {} {}{detail} (a directory problem, not a wrong password); {fix}",
        url.endpoint(),
        res.rc,
        ldap_rc_name(res.rc)
    ))
}

/// Values of one attribute kept from one entry; more are ignored (with a warning).
pub const MAX_VALUES: usize = 64;
/// Largest attribute value kept, in bytes; larger values are ignored, never truncated.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

fn to_entry(se: SearchEntry) -> Entry {
    let text = se.attrs.into_iter().map(|(name, values)| (name, values.into_iter().map(String::into_bytes).collect()));
    let mut attrs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, values) in text.chain(se.bin_attrs) {
        let values: Vec<Vec<u8>> = values;
        let count = values.len();
        let kept: Vec<Vec<u8>> = values.into_iter().filter(|v| v.len() <= MAX_VALUE_BYTES).take(MAX_VALUES).collect();
        if kept.len() < count {
            log::warn!(
                target: "ldapbind",
                "entry {}: ignoring {} of {count} values of {name} (more than {MAX_VALUES}, or larger than {MAX_VALUE_BYTES} bytes)",
                se.dn,
                count - kept.len()
            );
        }
        match attrs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            Some((_, existing)) => existing.extend(kept),
            None => attrs.push((name, kept)),
        }
    }
    Entry { dn: se.dn, attrs }
}

pub(crate) fn port_note(url: &LdapUrl) -> &'static str {
    if url.port_is_default { " (the default port: sasl_ldapdb_uri names none)" } else { "" }
}

/// One line for a failure to talk to a server at `step`.
pub(crate) fn transport_error(url: &LdapUrl, step: &str, timeout: Duration, e: std::io::Error) -> Error {
    let endpoint = url.endpoint();
    let note = port_note(url);
    let ldapi = url.scheme == Scheme::Ldapi;
    let place = if ldapi { "the socket path in sasl_ldapdb_uri is" } else { "host and port in sasl_ldapdb_uri are" };
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::Timeout(format!(
            "LDAP server {endpoint}{note} did not answer the {step} within {}s (sasl_ldapdb_timeout); \
             check that the server is up and that {place} right",
            timeout.as_secs_f64()
        )),
        std::io::ErrorKind::ConnectionRefused if ldapi => Error::Unavailable(format!(
            "cannot connect to LDAP server socket {endpoint}: connection refused (the socket file \
                 exists but no server listens on it); start the LDAP server, or check the socket path in \
                 sasl_ldapdb_uri against the ldapi:// URL the server listens on (slapd -h)"
        )),
        std::io::ErrorKind::ConnectionRefused => Error::Unavailable(format!(
            "cannot connect to LDAP server {endpoint}{note}: connection refused; \
                 check host and port in sasl_ldapdb_uri (glauth listens on 3893, slapd on 389)"
        )),
        _ => Error::Unavailable(format!(
            "LDAP server {endpoint}{note} failed during {step}: {e}; check sasl_ldapdb_uri and the server"
        )),
    }
}

/// The RFC 4511 name of an LDAP result code (4.1.9), for "(10 referral: ...)" in messages.
fn ldap_rc_name(rc: u32) -> &'static str {
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

/// Whether the service bind that returned `res` lets ldapbind search, or why not: a bind the
/// password policy accepted only for a password change (every search would then be refused
/// with 53) is no success either.
pub(crate) fn service_bind_result(cfg: &Config, url: &LdapUrl, res: &LdapResult) -> Result<(), String> {
    match account::bind_outcome(res.rc, &res.text, &raw_controls(res)) {
        BindOutcome::Accepted => Ok(()),
        BindOutcome::Refused { condition, said } => {
            let who = match &cfg.bind {
                Bind::Simple { dn, .. } => format!("the service account {dn} (sasl_ldapdb_id)"),
                Bind::External | Bind::Anonymous => "the service account".to_owned(),
            };
            Err(format!(
                "{who} {} (LDAP server {} answered its bind with {said}); {}",
                condition.says(),
                url.endpoint(),
                condition.service_fix()
            ))
        }
        BindOutcome::WrongPassword | BindOutcome::Other => Err(bind_refused_message(cfg, url, res.rc, &res.text)),
    }
}

pub(crate) fn bind_refused_message(cfg: &Config, url: &LdapUrl, rc: u32, text: &str) -> String {
    let server = url.endpoint();
    let detail = if text.is_empty() { String::new() } else { format!(": {text}") };
    match (&cfg.bind, rc) {
        (Bind::Simple { dn, .. }, 49) => {
            let base = &cfg.search_base;
            let hint = if dn.contains('=')
                && !base.is_empty()
                && !dn.to_ascii_lowercase().ends_with(&base.to_ascii_lowercase())
            {
                format!("; sasl_ldapdb_id must be the full DN, e.g. {dn},{base}")
            } else {
                String::new()
            };
            format!(
                "LDAP server {server} refused the service bind as {dn} (49 invalidCredentials{detail}); \
                 check sasl_ldapdb_id and sasl_ldapdb_pw{hint}"
            )
        }
        // Active Directory refuses a simple bind without TLS ("Transport encryption required").
        (_, 8) => format!(
            "LDAP server {server} refused the bind (8 strongerAuthRequired{detail}); it accepts a \
             password only over an encrypted connection: use ldaps:// in sasl_ldapdb_uri or set \
             sasl_ldapdb_starttls: demand"
        ),
        (Bind::External, _) => format!(
            "LDAP server {server} refused the SASL EXTERNAL service bind ({rc} {}{detail}); \
             the server must map the peer credentials or client certificate to an identity, or use \
             sasl_ldapdb_id/sasl_ldapdb_pw with a simple bind",
            ldap_rc_name(rc)
        ),
        (_, 48) | (_, 7) => format!(
            "LDAP server {server} refused the bind ({rc} {}{detail}); the server does not accept this \
             kind of bind: set sasl_ldapdb_id and sasl_ldapdb_pw for a simple bind",
            ldap_rc_name(rc)
        ),
        (Bind::Simple { dn, .. }, _) => format!(
            "LDAP server {server} refused the service bind as {dn} ({rc} {}{detail}); check sasl_ldapdb_id and sasl_ldapdb_pw",
            ldap_rc_name(rc)
        ),
        (Bind::Anonymous, _) => format!(
            "LDAP server {server} refused the anonymous bind ({rc} {}{detail}); set sasl_ldapdb_id and sasl_ldapdb_pw",
            ldap_rc_name(rc)
        ),
    }
}

fn search_refused_message(cfg: &Config, url: &LdapUrl, rc: u32, text: &str) -> String {
    let server = url.endpoint();
    let base = &cfg.search_base;
    let source = match cfg.base_source {
        crate::config::BaseSource::SearchBaseOption => "sasl_ldapdb_search_base",
        crate::config::BaseSource::Url => "the DN in sasl_ldapdb_uri",
    };
    let who = match &cfg.bind {
        Bind::Simple { dn, .. } => dn.clone(),
        Bind::External => "the EXTERNAL identity".into(),
        Bind::Anonymous => "anonymous (no sasl_ldapdb_id)".into(),
    };
    let detail = if text.is_empty() { String::new() } else { format!(": {text}") };
    // The seed's `%44`: the base is not what the admin wrote, and the init warning is below
    // the default log level.
    let note = cfg.base_hint.as_deref().map(|h| format!("; note: {h}")).unwrap_or_default();
    let line = match rc {
        32 => format!(
            "LDAP server {server}: search base {base} (from {source}) does not exist or {who} may not see it \
             (32 noSuchObject{detail}); fix {source} or the server's ACLs"
        ),
        50 => format!(
            "LDAP server {server}: {who} may not search {base} (50 insufficientAccessRights{detail}); \
             grant the service account search and read access, or set sasl_ldapdb_id to an account that has it"
        ),
        _ => format!("LDAP server {server}: user search under {base} failed ({rc} {}{detail})", ldap_rc_name(rc)),
    };
    line + &note
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn url(s: &str) -> LdapUrl {
        crate::uri::parse_uri_list(s).unwrap().urls.remove(0)
    }

    #[test]
    fn an_ldapi_socket_is_never_a_default_port_or_glauths_3893() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let u = url("ldapi://%2Frun%2Fslapd%2Fldapi/dc=x");
        assert_eq!(
            transport_error(&u, "connect", Duration::from_secs(5), refused()).to_string(),
            "cannot connect to LDAP server socket /run/slapd/ldapi: connection refused (the socket file exists \
             but no server listens on it); start the LDAP server, or check the socket path in sasl_ldapdb_uri \
             against the ldapi:// URL the server listens on (slapd -h)"
        );
        // TCP keeps its port advice.
        let e = transport_error(&url("ldap://h/dc=x"), "connect", Duration::from_secs(5), refused()).to_string();
        assert!(e.contains("h:389 (the default port: sasl_ldapdb_uri names none): connection refused"), "{e}");
        assert!(e.contains("glauth listens on 3893"), "{e}");
    }

    #[test]
    fn result_codes_have_their_rfc_4511_names() {
        assert_eq!(ldap_rc_name(10), "referral");
        assert_eq!(ldap_rc_name(4), "sizeLimitExceeded");
        assert_eq!(ldap_rc_name(11), "adminLimitExceeded");
        assert_eq!(ldap_rc_name(80), "other");
        assert_eq!(ldap_rc_name(4242), "unknown result code");
    }

    struct Opts;
    impl crate::config::Sources for Opts {
        fn option(&self, key: &str) -> Option<String> {
            match key {
                "ldapdb_uri" => Some("ldap://127.0.0.1:3893/dc=users,dc=local".into()),
                "ldapdb_id" => Some("cn=cyrus,ou=machines,dc=users,dc=local".into()),
                "ldapdb_pw" => Some("cyrus".into()),
                _ => None,
            }
        }
        fn read_file(&self, path: &std::path::Path) -> std::io::Result<crate::config::FileData> {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.display().to_string()))
        }
    }

    #[test]
    fn a_service_account_in_a_policy_state_gets_the_policy_fix() {
        let cfg = Config::from_sources(&Opts).unwrap();
        let url = &cfg.urls[0];
        let res = |rc: u32, text: &str, ctrls: Vec<ldap3::controls::Control>| LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: Vec::new(),
            ctrls,
        };
        assert_eq!(service_bind_result(&cfg, url, &res(0, "", Vec::new())), Ok(()));
        let locked =
            service_bind_result(&cfg, url, &res(53, "Account inactivated. Contact system administrator.", vec![]))
                .unwrap_err();
        assert!(
            locked.starts_with("the service account cn=cyrus,ou=machines,dc=users,dc=local (sasl_ldapdb_id) is locked")
                && locked.contains("Account inactivated")
                && locked.contains("exempt it from the password policy")
                && !locked.contains("check sasl_ldapdb_id and sasl_ldapdb_pw"),
            "{locked}"
        );
        // Bound, but only to change its password: every search would be refused.
        let expired = ldap3::controls::Control(
            None,
            RawControl { ctype: account::NETSCAPE_EXPIRED_OID.into(), crit: false, val: Some(b"0".to_vec()) },
        );
        let must = service_bind_result(&cfg, url, &res(0, "", vec![expired])).unwrap_err();
        assert!(must.contains("must change its password") && must.contains("set a new password for it"), "{must}");
        let wrong = service_bind_result(&cfg, url, &res(49, "", Vec::new())).unwrap_err();
        assert!(wrong.contains("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{wrong}");
    }

    #[test]
    fn entries_keep_bounded_values_and_never_truncate_one() {
        let many: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let se = SearchEntry {
            dn: "cn=x,dc=users,dc=local".into(),
            attrs: HashMap::from([("mail".to_owned(), many), ("uid".to_owned(), vec!["x".to_owned()])]),
            bin_attrs: HashMap::from([(
                "userPassword".to_owned(),
                vec![vec![b'a'; MAX_VALUE_BYTES + 1], b"ok".to_vec()],
            )]),
        };
        let e = to_entry(se);
        assert_eq!(e.values("mail").len(), MAX_VALUES);
        assert_eq!(e.values("UID"), [b"x".to_vec()]);
        assert_eq!(e.values("userpassword"), [b"ok".to_vec()], "an oversized value is dropped whole");
    }
}
