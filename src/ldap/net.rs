//! TCP connections with every wait bounded, name resolution included.
//!
//! ldap3 resolves host names with tokio's `spawn_blocking(getaddrinfo)`, and dropping the
//! connection's runtime after a timeout waits for that thread: a hung resolver would hold the
//! login past `ldapdb_timeout`. So ldapbind resolves and connects itself and hands ldap3 the
//! connected socket; TLS still verifies the host name written in the URL.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ldap3::LdapError;

use super::client::{port_note, transport_error};
use crate::error::Error;
use crate::uri::LdapUrl;

/// Addresses of `host`, waiting at most `timeout`. An IP literal needs no lookup; a name is
/// looked up on a short-lived thread that is left behind if the resolver hangs (it ends when
/// getaddrinfo returns), so the caller never waits longer than `timeout`.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("ldapbind-dns".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(ResolveError::Failed)?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ResolveError::Failed(io::Error::new(io::ErrorKind::NotFound, "no address"))),
        Ok(Err(e)) => Err(ResolveError::Failed(e)),
        Err(_) => Err(ResolveError::TimedOut),
    }
}

enum ResolveError {
    TimedOut,
    Failed(io::Error),
}

/// A TCP connection to `url`'s host and port, trying each address in turn, all within
/// `timeout` (what is left of `configured`, the `ldapdb_timeout` that messages name).
pub fn connect(url: &LdapUrl, timeout: Duration, configured: Duration) -> Result<TcpStream, Error> {
    let deadline = Instant::now() + timeout;
    let secs = configured.as_secs_f64();
    let addrs = resolve(&url.host, url.port, timeout).map_err(|e| match e {
        ResolveError::TimedOut => Error::Timeout(format!(
            "resolving {} from sasl_ldapdb_uri took longer than {secs}s (sasl_ldapdb_timeout); check the \
             host name and this host's DNS resolver, or write the server's IP address",
            url.host
        )),
        ResolveError::Failed(e) => Error::Unavailable(format!(
            "cannot resolve {} from sasl_ldapdb_uri ({e}); {}",
            url.host,
            chroot_note().unwrap_or_else(|| "check the host name".to_owned())
        )),
    })?;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
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
            transport_error(url, "connect", configured, LdapError::Io { source: e })
        }
        _ => Error::Timeout(format!(
            "LDAP server {}{} did not answer the connect within {secs}s (sasl_ldapdb_timeout); check that the \
             server is up and that host and port in sasl_ldapdb_uri are right",
            url.endpoint(),
            port_note(url)
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

    #[test]
    fn ip_literals_need_no_lookup_and_refusals_name_the_port() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = connect(&url(&format!("ldap://127.0.0.1:{port}/dc=x")), Duration::from_secs(1), Duration::from_secs(1))
            .unwrap_err();
        assert!(e.to_string().contains("connection refused") && e.to_string().contains(&port.to_string()), "{e}");
    }

    #[test]
    fn names_resolve_and_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream =
            connect(&url(&format!("ldap://localhost:{port}/dc=x")), Duration::from_secs(2), Duration::from_secs(2));
        assert!(stream.is_ok(), "{:?}", stream.err());
        let e = connect(&url("ldap://no-such-host.invalid:389/dc=x"), Duration::from_secs(5), Duration::from_secs(5))
            .unwrap_err();
        assert!(e.to_string().contains("cannot resolve no-such-host.invalid"), "{e}");
    }
}
