//! TCP connections with every wait bounded, name resolution included, and the one deadline a
//! directory operation shares among all its steps.
//!
//! getaddrinfo has no timeout: a hung resolver would hold the login past `ldapdb_timeout`. So
//! names are looked up on a short-lived thread that is waited for until the deadline only (one
//! per name at a time); TLS still verifies the host name written in the URL.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::client::{port_note, transport_error};
use crate::error::Error;
use crate::uri::LdapUrl;

/// When a directory operation must be done: every URL, connect, TLS handshake, bind and message
/// of one operation shares the time up to it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline(Instant::now() + budget)
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left, at least 1 ms (a wait given it then fails by timing out).
    pub fn left(self) -> Duration {
        self.0.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
    }

    pub fn passed(self) -> bool {
        Instant::now() >= self.0
    }

    /// The deadline of one attempt of several: half of what is left when `more` attempts may
    /// follow (so a server that does not answer leaves time for the next), else all of it.
    pub fn share(self, more: bool) -> Deadline {
        if more { Deadline(Instant::now() + self.0.saturating_duration_since(Instant::now()) / 2) } else { self }
    }
}

type Lookup = Result<Vec<IpAddr>, (io::ErrorKind, String)>;

/// A name lookup under way on its own thread; every caller asking for the same name meanwhile
/// waits for this one instead of starting another, so a hung resolver costs one thread per name.
struct Pending {
    host: String,
    /// The process that started it: after `fork()` the thread does not exist in the child.
    pid: u32,
    result: Mutex<Option<Lookup>>,
    done: Condvar,
}

static PENDING: Mutex<Vec<Arc<Pending>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lookup of `host` under way, or a new one.
fn pending_lookup(host: &str) -> io::Result<Arc<Pending>> {
    let pid = std::process::id();
    let mut pending = lock(&PENDING);
    pending.retain(|p| p.pid == pid);
    if let Some(p) = pending.iter().find(|p| p.host == host) {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(Pending { host: host.to_owned(), pid, result: Mutex::new(None), done: Condvar::new() });
    let theirs = Arc::clone(&p);
    std::thread::Builder::new().name("ldapbind-dns".into()).spawn(move || {
        let result = (theirs.host.as_str(), 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(|e| (e.kind(), e.to_string()));
        *lock(&theirs.result) = Some(result);
        theirs.done.notify_all();
        lock(&PENDING).retain(|q| !Arc::ptr_eq(q, &theirs));
    })?;
    pending.push(Arc::clone(&p));
    Ok(p)
}

/// Addresses of `host`, waiting until `deadline` at most. An IP literal needs no lookup; a name
/// is looked up on a short-lived thread that is left behind if the resolver hangs (it ends
/// when getaddrinfo returns), and at most one such thread runs per name.
pub fn resolve(host: &str, port: u16, deadline: Deadline) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let pending = pending_lookup(host).map_err(|e| ResolveError::Failed(e.to_string()))?;
    let guard = lock(&pending.result);
    let (guard, _) =
        pending.done.wait_timeout_while(guard, deadline.left(), |r| r.is_none()).unwrap_or_else(|p| p.into_inner());
    match &*guard {
        Some(Ok(ips)) if !ips.is_empty() => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
        Some(Ok(_)) => Err(ResolveError::Failed("no address".into())),
        Some(Err((_, e))) => Err(ResolveError::Failed(e.clone())),
        None => Err(ResolveError::TimedOut),
    }
}

pub enum ResolveError {
    TimedOut,
    Failed(String),
}

impl ResolveError {
    /// The log line for `url`; `configured` is the `ldapdb_timeout` the message names.
    pub fn into_error(self, url: &LdapUrl, configured: Duration) -> Error {
        match self {
            ResolveError::TimedOut => Error::Timeout(format!(
                "resolving {} from sasl_ldapdb_uri took longer than {}s (sasl_ldapdb_timeout); check the \
                 host name and this host's DNS resolver, or write the server's IP address",
                url.host,
                configured.as_secs_f64()
            )),
            ResolveError::Failed(e) => Error::Unavailable(format!(
                "cannot resolve {} from sasl_ldapdb_uri ({e}); {}",
                url.host,
                chroot_note().unwrap_or_else(|| "check the host name".to_owned())
            )),
        }
    }
}

/// A TCP connection to `url`'s host and port, resolution included, by `deadline`;
/// `configured` is the `ldapdb_timeout` that messages name.
pub fn connect(url: &LdapUrl, deadline: Deadline, configured: Duration) -> Result<TcpStream, Error> {
    let addrs = resolve(&url.host, url.port, deadline).map_err(|e| e.into_error(url, configured))?;
    connect_addrs(url, &addrs, deadline, configured)
}

/// A TCP connection to the first of `addrs` that accepts, by `deadline`.
pub fn connect_addrs(
    url: &LdapUrl,
    addrs: &[SocketAddr],
    deadline: Deadline,
    configured: Duration,
) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        if deadline.passed() {
            break;
        }
        match TcpStream::connect_timeout(addr, deadline.left()) {
            Ok(stream) => {
                // Login traffic is small request/response pairs: do not let Nagle delay them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() != io::ErrorKind::TimedOut && e.kind() != io::ErrorKind::WouldBlock => {
            transport_error(url, "connect", configured, e)
        }
        _ => Error::Timeout(format!(
            "LDAP server {}{} did not answer the connect within {}s (sasl_ldapdb_timeout); check that the \
             server is up and that host and port in sasl_ldapdb_uri are right",
            url.endpoint(),
            port_note(url),
            configured.as_secs_f64()
        )),
    })
}

/// When this process runs chrooted (Postfix's smtpd in /var/spool/postfix opens its LDAP
/// connections there), name resolution uses the chroot's own `etc/` files, which may be missing
/// or stale while the admin's shell resolves the name fine: say so, and name the fix.
fn chroot_note() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let root_id = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    // No /proc at all (a chroot seldom has one), or a root other than init's.
    let chrooted = if std::path::Path::new("/proc/self").exists() {
        matches!((root_id("/"), root_id("/proc/1/root")), (Some(a), Some(b)) if a != b)
    } else {
        true
    };
    if !chrooted {
        return None;
    }
    let missing: Vec<&str> =
        ["/etc/hosts", "/etc/resolv.conf"].into_iter().filter(|f| !std::path::Path::new(f).exists()).collect();
    let missing = match missing.as_slice() {
        [] => String::new(),
        files => format!(", which has no {}", files.join(" and no ")),
    };
    Some(format!(
        "this process runs chrooted (its root is not the system's `/`; Postfix's smtpd runs in \
         /var/spool/postfix){missing}: copy /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf into the \
         chroot's etc/ (Debian's postfix service does that when it starts, a bare `postfix start` does not), \
         or write the server's IP address in sasl_ldapdb_uri"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> LdapUrl {
        crate::uri::parse_uri_list(s).unwrap().urls.remove(0)
    }

    fn secs(n: u64) -> (Deadline, Duration) {
        (Deadline::after(Duration::from_secs(n)), Duration::from_secs(n))
    }

    #[test]
    fn ip_literals_need_no_lookup_and_refusals_name_the_port() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (d, t) = secs(1);
        let e = connect(&url(&format!("ldap://127.0.0.1:{port}/dc=x")), d, t).unwrap_err();
        assert!(e.to_string().contains("connection refused") && e.to_string().contains(&port.to_string()), "{e}");
    }

    #[test]
    fn names_resolve_and_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (d, t) = secs(2);
        let stream = connect(&url(&format!("ldap://localhost:{port}/dc=x")), d, t);
        assert!(stream.is_ok(), "{:?}", stream.err());
        let (d, t) = secs(5);
        let e = connect(&url("ldap://no-such-host.invalid:389/dc=x"), d, t).unwrap_err();
        assert!(e.to_string().contains("cannot resolve no-such-host.invalid"), "{e}");
    }

    #[test]
    fn a_share_leaves_half_for_the_next_attempt() {
        let d = Deadline::after(Duration::from_secs(10));
        let first = d.share(true).left();
        assert!(first <= Duration::from_secs(5) && first > Duration::from_millis(4900), "{first:?}");
        assert!(d.share(false).left() > Duration::from_millis(9900));
        assert_eq!(Deadline::after(Duration::ZERO).left(), Duration::from_millis(1));
    }
}
