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

use ldap3::asn1::{PL, StructureTag};
use ldap3::controls::RawControl;
use ldap3::{DerefAliases, LdapResult, ResultEntry, Scope as LdapScope, SearchEntry, SearchOptions};

use super::net::Deadline;
use super::wire::Conn;
use super::{Directory, Entry, Found};
use crate::account::{self, BindOutcome};
use crate::config::{Bind, Config, Scope};
use crate::error::{Cause, Error, LdapCode, Step};
use crate::uri::LdapUrl;

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
    /// unavailable, time limit, referral, see [`LdapCode::passing`]). Try the next server.
    Answer(Error),
    /// The server answered and said no for a reason every server shares (configuration, ACLs).
    Refused(Error),
}

/// Which pool an operation takes its connection from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Bound as `ldapdb_id`, for searches.
    Search,
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
        self.run(Purpose::Search, |conn, url, deadline| {
            let options = SearchOptions::new().deref(DerefAliases::Never).sizelimit(1);
            let transport = |e| Failure::Transport(Error::ldap(&cfg, url, Step::search(&cfg), e));
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
                return Err(answer(Error::at(url, Step::search(&cfg), Cause::Result(LdapCode::of(&res)))));
            }
            Ok((None, Keep::Yes))
        })
    }

    fn pool(&self, purpose: Purpose) -> &Mutex<Vec<Live>> {
        match purpose {
            Purpose::Search => &self.service,
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

    /// A new connection to URL `index`, bound as the service account for [`Purpose::Search`].
    fn open_one(&self, index: usize, purpose: Purpose, deadline: Deadline) -> Result<Live, Failure> {
        let cfg = &*self.config;
        let Some(url) = cfg.urls.get(index) else {
            return Err(Failure::Transport(Error::Internal(format!("no URL #{index} in sasl_ldapdb_uri"))));
        };
        let mut conn = crate::tls::connect(cfg, url, self.tls.as_ref(), deadline)
            .map_err(|e| Failure::Transport(e.into_error(cfg, url)))?;
        if purpose == Purpose::Search {
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
        let result = result.map_err(|e| Failure::Transport(Error::ldap(cfg, url, Step::service_bind(cfg), e)))?;
        service_bind_checked(cfg, url, &result).map_err(answer)
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
        let last = failures.pop().map(|(_, e)| e).unwrap_or(Error::NoAnswer { timeout: cfg.timeout });
        Err(report(failures, last))
    }

    /// Account for a failed attempt on URL `index`: `Some` error when the operation must end
    /// (a refusal); otherwise the server is put on back-off and the failure kept for the log.
    /// A kept connection found closed (`!fresh`: the server restarted, an idle cut) says
    /// nothing about the server: that one is only replaced.
    fn failed(&self, index: usize, fresh: bool, failure: Failure, failures: &mut Vec<(usize, Error)>) -> Option<Error> {
        match failure {
            Failure::Refused(e) => Some(e),
            Failure::Transport(e)
                if !fresh && !matches!(&e, Error::Ldap(a) if matches!(a.cause, Cause::TimedOut { .. })) =>
            {
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
        // "1.1": no attributes (RFC 4511 4.5.1.8).
        let wanted: Vec<&str> = if attrs.is_empty() { vec!["1.1"] } else { attrs.iter().map(String::as_str).collect() };
        self.run(Purpose::Search, |conn, url, deadline| {
            let options = SearchOptions::new().deref(DerefAliases::Never).sizelimit(SIZE_LIMIT);
            let transport = |e| Failure::Transport(Error::ldap(&cfg, url, Step::search(&cfg), e));
            let mut stream =
                conn.search_for(&cfg.search_base, scope, filter, &wanted, options, deadline).map_err(transport)?;
            // Read at most SIZE_LIMIT + 1 entries whatever the server sends: enough to tell
            // "one" from "ambiguous", and a bound on memory. A search cut short leaves work on
            // the server, so that connection is closed instead of kept.
            let mut entries: Vec<Entry> = Vec::new();
            let mut cut_short = false;
            loop {
                let Some(raw) = stream.next_entry().map_err(transport)? else { break };
                if raw.is_ref() || raw.is_intermediate() {
                    continue;
                }
                entries.push(to_entry(raw));
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
                    return Err(answer(Error::at(url, Step::search(&cfg), Cause::Result(LdapCode::of(&res)))));
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
        // A simple bind with an empty password is an unauthenticated bind, which servers answer
        // with success (RFC 4513 5.1.2): never a right password, whoever calls this.
        if password.is_empty() {
            return Ok(false);
        }
        let cfg = &*self.config;
        let step = || Step::PasswordCheck { dn: dn.to_owned() };
        self.run(Purpose::Verify, |conn, url, deadline| {
            let res = conn
                .simple_bind(dn, password, deadline)
                .map_err(|e| Failure::Transport(Error::ldap(cfg, url, step(), e)))?;
            let code = LdapCode::of(&res);
            if code.passing() {
                return Err(answer(Error::at(url, step(), Cause::Result(code))));
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
                    Err(Failure::Refused(Error::bind_refusal(&url.endpoint(), dn, condition, &said, res.rc == 0)))
                }
                BindOutcome::Other => Err(answer(Error::at(url, step(), Cause::Result(code)))),
            }
        })
    }
}

/// A result's response controls as sent, whatever ldap3 parsed of them.
fn raw_controls(res: &LdapResult) -> Vec<RawControl> {
    res.ctrls.iter().map(|c| c.1.clone()).collect()
}

/// How an attempt ended by the server's answer `e` counts: a result another server or a later
/// try may not give ([`LdapCode::passing`]) fails over, anything else is a refusal.
fn answer(e: Error) -> Failure {
    match &e {
        Error::Ldap(a) if matches!(&a.cause, Cause::Result(code) if code.passing()) => Failure::Answer(e),
        _ => Failure::Refused(e),
    }
}

/// The service bind's answer `res`: `Ok` when bound and usable: not a [`LdapCode::passing`]
/// result (the server's problem), nor a refusal of the configured account, its password
/// policy state included (a bind the policy accepted only for a password change is no
/// success either: every search would then be refused with 53).
pub(crate) fn service_bind_checked(cfg: &Config, url: &LdapUrl, res: &LdapResult) -> Result<(), Error> {
    let code = LdapCode::of(res);
    let cause = if code.passing() {
        Cause::Result(code)
    } else {
        match account::bind_outcome(res.rc, &res.text, &raw_controls(res)) {
            BindOutcome::Accepted => return Ok(()),
            BindOutcome::Refused { condition, said } => Cause::Policy { condition, said },
            BindOutcome::WrongPassword | BindOutcome::Other => Cause::Result(code),
        }
    };
    Err(Error::at(url, Step::service_bind(cfg), cause))
}

/// Values of one attribute kept from one entry; more are ignored (with a warning).
pub const MAX_VALUES: usize = 64;
/// Largest attribute value kept, in bytes; larger values are ignored, never truncated.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The entry as sent, decoded straight from its BER (wire.rs checked its shape: a UTF-8 DN, then
/// attributes each with a UTF-8 name and primitive values), without ldap3's `SearchEntry` maps.
/// Attributes keep the server's order; an attribute's values are ordered as
/// `SearchEntry::construct` orders them (those that are not UTF-8 first, each group as sent).
fn to_entry(raw: ResultEntry) -> Entry {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    let PL::C(parts) = raw.0.payload else { return Entry { dn: String::new(), attrs: Vec::new() } };
    let mut parts = parts.into_iter();
    let dn = match parts.next() {
        Some(StructureTag { payload: PL::P(dn), .. }) => text(dn),
        _ => String::new(),
    };
    let sent = match parts.next() {
        Some(StructureTag { payload: PL::C(list), .. }) => list,
        _ => Vec::new(),
    };
    let sent = sent.into_iter().filter_map(|attr| {
        let PL::C(parts) = attr.payload else { return None };
        let mut parts = parts.into_iter();
        let (Some(StructureTag { payload: PL::P(name), .. }), Some(StructureTag { payload: PL::C(values), .. })) =
            (parts.next(), parts.next())
        else {
            return None;
        };
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .filter_map(|v| match v.payload {
                PL::P(bytes) => Some(bytes),
                PL::C(_) => None,
            })
            .collect();
        if values.iter().any(|v| std::str::from_utf8(v).is_err()) {
            values.sort_by_key(|v| std::str::from_utf8(v).is_ok());
        }
        Some((text(name), values))
    });
    entry_of(dn, sent)
}

/// An [`Entry`] of the attributes `sent`: at most [`MAX_VALUES`] values of at most
/// [`MAX_VALUE_BYTES`] each per attribute (a warning for the rest), names that differ only in
/// case merged.
fn entry_of(dn: String, sent: impl Iterator<Item = (String, Vec<Vec<u8>>)>) -> Entry {
    let mut attrs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, values) in sent {
        let count = values.len();
        let kept: Vec<Vec<u8>> = values.into_iter().filter(|v| v.len() <= MAX_VALUE_BYTES).take(MAX_VALUES).collect();
        if kept.len() < count {
            log::warn!(
                target: "ldapbind",
                "entry {}: ignoring {} of {count} values of {name} (more than {MAX_VALUES}, or larger than {MAX_VALUE_BYTES} bytes)",
                dn,
                count - kept.len()
            );
        }
        match attrs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            Some((_, existing)) => existing.extend(kept),
            None => attrs.push((name, kept)),
        }
    }
    Entry { dn, attrs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> LdapUrl {
        crate::uri::parse_uri_list(s).unwrap().urls.remove(0)
    }

    #[test]
    fn an_ldapi_socket_is_never_a_default_port_or_glauths_3893() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let u = url("ldapi://%2Frun%2Fslapd%2Fldapi/dc=x");
        let cfg = Config::from_sources(&Opts).unwrap();
        let transport_error = |u: &LdapUrl, e| Error::ldap(&cfg, u, Step::Connect, e);
        assert_eq!(
            transport_error(&u, refused()).to_string(),
            "cannot connect to LDAP server socket /run/slapd/ldapi: connection refused (the socket file exists \
             but no server listens on it); start the LDAP server, or check the socket path in sasl_ldapdb_uri \
             against the ldapi:// URL the server listens on (slapd -h)"
        );
        // TCP keeps its port advice.
        let e = transport_error(&url("ldap://h/dc=x"), refused()).to_string();
        assert!(e.contains("h:389 (the default port: sasl_ldapdb_uri names none): connection refused"), "{e}");
        assert!(e.contains("glauth listens on 3893"), "{e}");
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
        let service_bind_result = |res: &LdapResult| service_bind_checked(&cfg, url, res).map_err(|e| e.to_string());
        assert_eq!(service_bind_result(&res(0, "", Vec::new())), Ok(()));
        let locked =
            service_bind_result(&res(53, "Account inactivated. Contact system administrator.", vec![])).unwrap_err();
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
        let must = service_bind_result(&res(0, "", vec![expired])).unwrap_err();
        assert!(must.contains("must change its password") && must.contains("set a new password for it"), "{must}");
        let wrong = service_bind_result(&res(49, "", Vec::new())).unwrap_err();
        assert!(wrong.contains("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{wrong}");
    }

    /// A SearchResultEntry as wire.rs hands it over.
    fn raw_entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> ResultEntry {
        use ldap3::asn1::{TagClass, Types};
        let tag = |class, id, payload| StructureTag { class, id, payload };
        let octets = |b: &[u8]| tag(TagClass::Universal, Types::OctetString as u64, PL::P(b.to_vec()));
        let attrs = attrs.iter().map(|(name, values)| {
            let values = tag(TagClass::Universal, Types::Set as u64, PL::C(values.iter().map(|v| octets(v)).collect()));
            tag(TagClass::Universal, Types::Sequence as u64, PL::C(vec![octets(name.as_bytes()), values]))
        });
        let attrs = tag(TagClass::Universal, Types::Sequence as u64, PL::C(attrs.collect()));
        ResultEntry::new(tag(TagClass::Application, 4, PL::C(vec![octets(dn.as_bytes()), attrs])))
    }

    #[test]
    fn entries_are_decoded_as_ldap3_search_entry_gives_them() {
        let raw = raw_entry(
            "uid=a,dc=x",
            &[("uid", &[b"a"]), ("userPassword", &[b"secret", b"\xff\xfe", b"x", b"\x80"]), ("mail", &[b"m1", b"m2"])],
        );
        let e = to_entry(raw.clone());
        let se = SearchEntry::construct(raw);
        assert_eq!(e.dn, se.dn);
        let names: Vec<&str> = e.attrs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["uid", "userPassword", "mail"], "the server's order");
        for (name, values) in &se.attrs {
            let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
            assert_eq!(e.values(name), values, "{name}");
        }
        for (name, values) in &se.bin_attrs {
            assert_eq!(e.values(name), values.as_slice(), "{name}");
        }
        assert_eq!(
            e.values("userPassword"),
            [b"\xff\xfe".to_vec(), b"\x80".to_vec(), b"secret".to_vec(), b"x".to_vec()]
        );
    }

    #[test]
    fn an_empty_password_is_wrong_without_a_bind() {
        // Nothing listens on the configured URL: a bind attempt would be an error, not Ok(false).
        let dir = LdapDirectory::new(Arc::new(Config::from_sources(&Opts).unwrap()), None);
        assert!(matches!(dir.check_password("uid=jdoe,dc=users,dc=local", ""), Ok(false)));
    }

    #[test]
    fn entries_keep_bounded_values_and_never_truncate_one() {
        let many: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
        let sent = [
            ("mail".to_owned(), many),
            ("uid".to_owned(), vec![b"x".to_vec()]),
            ("userPassword".to_owned(), vec![vec![b'a'; MAX_VALUE_BYTES + 1], b"ok".to_vec()]),
        ];
        let e = entry_of("cn=x,dc=users,dc=local".into(), sent.into_iter());
        assert_eq!(e.values("mail").len(), MAX_VALUES);
        assert_eq!(e.values("UID"), [b"x".to_vec()]);
        assert_eq!(e.values("userpassword"), [b"ok".to_vec()], "an oversized value is dropped whole");
    }
}
