//! The ldap3 implementation of [`Directory`]: lazy, kept connections with a bounded wait on
//! every step, failover across the URLs of `ldapdb_uri`, a back-off for servers that failed,
//! one retry on a connection that died while idle, and no reuse across `fork()`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ldap3::{DerefAliases, LdapConn, LdapError, Scope as LdapScope, SearchEntry, SearchOptions};

use super::{Directory, Entry, Found};
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
    conn: LdapConn,
    url: usize,
    pid: u32,
}

impl Live {
    /// A connection inherited across `fork()` belongs to the parent: never send on it, never
    /// run its destructor (which would tear down a runtime whose threads do not exist here).
    fn discard_if_foreign(self) -> Option<Live> {
        if self.pid == std::process::id() {
            Some(self)
        } else {
            std::mem::forget(self);
            None
        }
    }
}

/// Which kind of failure ended an attempt; decides retry and back-off.
enum Failure {
    /// The connection is unusable (I/O error, closed, timeout). Try another connection.
    Transport(Error),
    /// The server answered and said no. Retrying elsewhere will not help.
    Refused(Error),
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
                    let _ = live.conn.with_timeout(Duration::from_millis(200)).unbind();
                }
            }
        }
    }

    fn take_idle(pool: &Mutex<Vec<Live>>) -> Option<Live> {
        let mut idle = lock(pool);
        while let Some(live) = idle.pop() {
            if let Some(live) = live.discard_if_foreign() {
                return Some(live);
            }
        }
        None
    }

    fn put_idle(pool: &Mutex<Vec<Live>>, live: Live) {
        let mut idle = lock(pool);
        if idle.len() < MAX_IDLE {
            idle.push(live);
        }
    }

    /// The URL indexes to try, in order: those not backing off, or else the one whose
    /// back-off ends first (so a lone server that came back is found again).
    fn candidates(&self) -> Vec<usize> {
        let now = Instant::now();
        let backoff = lock(&self.backoff);
        let ready: Vec<usize> = (0..backoff.len()).filter(|&i| backoff[i].is_none_or(|until| until <= now)).collect();
        if !ready.is_empty() {
            return ready;
        }
        (0..backoff.len()).min_by_key(|&i| backoff[i]).into_iter().collect()
    }

    fn mark_failed(&self, url: usize) {
        if let Some(slot) = lock(&self.backoff).get_mut(url) {
            *slot = Some(Instant::now() + BACKOFF);
        }
    }

    fn mark_ok(&self, url: usize) {
        if let Some(slot) = lock(&self.backoff).get_mut(url) {
            *slot = None;
        }
    }

    /// Open a connection to the first reachable URL, bound as the service when `service_bind`.
    fn open(&self, service_bind: bool) -> Result<Live, Error> {
        let candidates = self.candidates();
        let mut last = None;
        for (n, &url) in candidates.iter().enumerate() {
            match self.open_one(url, service_bind) {
                Ok(live) => {
                    self.mark_ok(url);
                    return Ok(live);
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Transport(e)) => {
                    self.mark_failed(url);
                    // The last failure is returned and reported once by the caller; earlier
                    // ones are said here, since the login goes on with the next server.
                    if n + 1 < candidates.len() {
                        log::warn!(
                            target: "ldapbind",
                            "{e}; trying the next server in sasl_ldapdb_uri and skipping this one for {}s",
                            BACKOFF.as_secs()
                        );
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable("sasl_ldapdb_uri lists no server".into())))
    }

    fn open_one(&self, index: usize, service_bind: bool) -> Result<Live, Failure> {
        let cfg = &*self.config;
        let Some(url) = cfg.urls.get(index) else {
            return Err(Failure::Transport(Error::Unavailable(format!("no URL #{index}"))));
        };
        let mut conn = crate::tls::connect(cfg, url, self.tls.as_ref()).map_err(|e| {
            Failure::Transport(match e {
                crate::tls::ConnectError::Tls(line) => Error::Unavailable(line),
                crate::tls::ConnectError::Ldap { step, source } => transport_error(url, step, cfg.timeout, source),
                crate::tls::ConnectError::Net(e) => e,
            })
        })?;
        if service_bind {
            self.service_bind(&mut conn, url)?;
        }
        log::debug!(target: "ldapbind", "connected to {}", url.endpoint());
        Ok(Live { conn, url: index, pid: std::process::id() })
    }

    fn service_bind(&self, conn: &mut LdapConn, url: &LdapUrl) -> Result<(), Failure> {
        let cfg = &*self.config;
        let result = match &cfg.bind {
            Bind::Anonymous => return Ok(()),
            Bind::Simple { dn, password } => conn.with_timeout(cfg.timeout).simple_bind(dn, password.expose()),
            Bind::External => conn.with_timeout(cfg.timeout).sasl_external_bind(),
        };
        let result = result.map_err(|e| Failure::Transport(transport_error(url, "bind", cfg.timeout, e)))?;
        if result.rc == 0 {
            return Ok(());
        }
        Err(Failure::Refused(Error::Directory(bind_refused_message(cfg, url, result.rc, &result.text))))
    }

    /// Run `op` on a pooled service connection; a kept connection that turns out dead is
    /// replaced and `op` retried once.
    fn with_service<T>(
        &self,
        op: impl FnMut(&mut LdapConn, &LdapUrl) -> Result<(T, Keep), Failure>,
    ) -> Result<T, Error> {
        self.with_pooled(&self.service, true, op)
    }

    /// [`LdapDirectory::with_service`] on `pool`, whose new connections bind as the service
    /// account when `service_bind`.
    fn with_pooled<T>(
        &self,
        pool: &Mutex<Vec<Live>>,
        service_bind: bool,
        mut op: impl FnMut(&mut LdapConn, &LdapUrl) -> Result<(T, Keep), Failure>,
    ) -> Result<T, Error> {
        let (mut live, mut reused) = match Self::take_idle(pool) {
            Some(live) => (live, true),
            None => (self.open(service_bind)?, false),
        };
        loop {
            let url = &self.config.urls[live.url.min(self.config.urls.len() - 1)];
            match op(&mut live.conn, url) {
                Ok((v, keep)) => {
                    if keep == Keep::Yes {
                        Self::put_idle(pool, live);
                    }
                    return Ok(v);
                }
                Err(Failure::Refused(e)) => {
                    Self::put_idle(pool, live);
                    return Err(e);
                }
                Err(Failure::Transport(e)) => {
                    let url = live.url;
                    drop(live);
                    // A server that stopped answering costs this login its one timeout; a kept
                    // connection that died (server restarted, idle cut) is replaced at once.
                    if !reused || matches!(e, Error::Timeout(_)) {
                        self.mark_failed(url);
                        return Err(e);
                    }
                    log::debug!(target: "ldapbind", "kept connection failed ({e}); reconnecting once");
                    live = self.open(service_bind)?;
                    reused = false;
                }
            }
        }
    }
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
        let wanted: Vec<&str> = if attrs.is_empty() { vec!["1.1"] } else { attrs.iter().map(String::as_str).collect() };
        self.with_service(|conn, url| {
            let mut stream = conn
                .with_timeout(cfg.timeout)
                .with_search_options(SearchOptions::new().deref(DerefAliases::Never).sizelimit(SIZE_LIMIT))
                .streaming_search(&cfg.search_base, scope, filter, wanted.clone())
                .map_err(|e| Failure::Transport(transport_error(url, "search", cfg.timeout, e)))?;
            // Read at most SIZE_LIMIT + 1 entries whatever the server sends: enough to tell
            // "one" from "ambiguous", and a bound on memory. A search cut short leaves work on
            // the server, so that connection is closed instead of kept.
            let mut entries: Vec<Entry> = Vec::new();
            let mut cut_short = false;
            loop {
                let next =
                    stream.next().map_err(|e| Failure::Transport(transport_error(url, "search", cfg.timeout, e)))?;
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
        // A kept connection that died (directory restarted) is replaced, as for searches.
        self.with_pooled(&self.verify, false, |conn, url| match conn.with_timeout(timeout).simple_bind(dn, password) {
            Ok(res) if res.rc == 0 => Ok((true, Keep::Yes)),
            Ok(res) if res.rc == 49 => Ok((false, Keep::Yes)),
            Ok(res) => Err(Failure::Refused(Error::Directory(format!(
                "LDAP server {} refused the password check bind as {dn} with result {} ({})",
                url.endpoint(),
                res.rc,
                res.text
            )))),
            Err(e) => Err(Failure::Transport(transport_error(url, "password check bind", timeout, e))),
        })
    }
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
pub(crate) fn transport_error(url: &LdapUrl, step: &str, timeout: Duration, e: LdapError) -> Error {
    let endpoint = url.endpoint();
    let note = port_note(url);
    let ldapi = url.scheme == Scheme::Ldapi;
    let place = if ldapi { "the socket path in sasl_ldapdb_uri is" } else { "host and port in sasl_ldapdb_uri are" };
    match e {
        LdapError::Timeout { .. } => Error::Timeout(format!(
            "LDAP server {endpoint}{note} did not answer the {step} within {}s (sasl_ldapdb_timeout); \
             check that the server is up and that {place} right",
            timeout.as_secs_f64()
        )),
        LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused && ldapi => {
            Error::Unavailable(format!(
                "cannot connect to LDAP server socket {endpoint}: connection refused (the socket file \
                 exists but no server listens on it); start the LDAP server, or check the socket path in \
                 sasl_ldapdb_uri against the ldapi:// URL the server listens on (slapd -h)"
            ))
        }
        LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            Error::Unavailable(format!(
                "cannot connect to LDAP server {endpoint}{note}: connection refused; \
                 check host and port in sasl_ldapdb_uri (glauth listens on 3893, slapd on 389)"
            ))
        }
        other => Error::Unavailable(format!(
            "LDAP server {endpoint}{note} failed during {step}: {other}; check sasl_ldapdb_uri and the server"
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
    match rc {
        32 => format!(
            "LDAP server {server}: search base {base} (from {source}) does not exist or {who} may not see it \
             (32 noSuchObject{detail}); fix {source} or the server's ACLs"
        ),
        50 => format!(
            "LDAP server {server}: {who} may not search {base} (50 insufficientAccessRights{detail}); \
             grant the service account search and read access, or set sasl_ldapdb_id to an account that has it"
        ),
        _ => format!("LDAP server {server}: user search under {base} failed ({rc} {}{detail})", ldap_rc_name(rc)),
    }
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
        let refused = || LdapError::Io { source: std::io::ErrorKind::ConnectionRefused.into() };
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
