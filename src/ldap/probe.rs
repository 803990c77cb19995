//! One URL of `ldapdb_uri`, step by step, for `ldapbind-check`: resolve, connect, TLS, service
//! bind, each reported on its own so an admin sees *which* step fails (the seed's author needed
//! gdb to learn that libldap was connecting to port 389).
//!
//! It connects the way [`super::client::LdapDirectory`] does ([`net::resolve`],
//! [`net::connect_addrs`], [`crate::tls::connect_on`], one deadline, the same TLS configuration)
//! and reports with the same one-line messages ([`transport_error`], [`service_bind_checked`]),
//! but keeps nothing: every probe opens its
//! own connection and closes it. The plugin never calls this module.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::client::{service_bind_checked, transport_error};
use super::net::{self, Deadline};
use super::wire::Conn;
use crate::config::{Bind, Config};
use crate::error::Error;
use crate::tls::{ConnectError, Mode};
use crate::uri::{LdapUrl, Scheme};

/// How long the closing unbind may take; its outcome does not matter.
const UNBIND_TIMEOUT: Duration = Duration::from_millis(200);

/// The steps of opening a service connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    Resolve,
    Connect,
    Tls,
    ServiceBind,
}

impl ProbeStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStep::Resolve => "resolve",
            ProbeStep::Connect => "connect",
            ProbeStep::Tls => "TLS",
            ProbeStep::ServiceBind => "service bind",
        }
    }
}

/// How one step went.
#[derive(Debug)]
pub enum Outcome {
    /// Done; what was done.
    Ok(String),
    /// Not needed with this configuration; why.
    NotNeeded(String),
    /// Failed; the plugin's own message (cause and fix).
    Failed(Error),
}

/// The steps taken for one URL, up to and including the first failure.
#[derive(Debug)]
pub struct Probe {
    pub steps: Vec<(ProbeStep, Outcome)>,
    /// StartTLS `try` fell back to cleartext: a problem, but the plugin works on.
    downgraded: bool,
}

impl Probe {
    /// The plugin can search through this URL: every step succeeded or was not needed (a
    /// cleartext fallback of StartTLS `try` counts as usable).
    pub fn usable(&self) -> bool {
        self.steps.iter().all(|(step, o)| match o {
            Outcome::Ok(_) | Outcome::NotNeeded(_) => true,
            Outcome::Failed(_) => self.downgraded && *step == ProbeStep::Tls,
        }) && self.steps.iter().any(|(s, _)| *s == ProbeStep::ServiceBind)
    }
}

/// Take the steps for `url` with the plugin's settings, all by one `ldapdb_timeout` as a
/// plugin operation; stop at the first failure. `tls` is the configuration from
/// [`crate::tls::client_config`] (`Some` when `url` uses TLS).
pub fn probe(cfg: &Config, url: &LdapUrl, tls: Option<&Arc<ClientConfig>>) -> Probe {
    let deadline = Deadline::after(cfg.timeout);
    let mut steps = Vec::new();
    let (outcome, addrs) = resolve(cfg, url, deadline);
    let failed = matches!(outcome, Outcome::Failed(_));
    steps.push((ProbeStep::Resolve, outcome));
    if failed {
        return Probe { steps, downgraded: false };
    }

    let (outcome, stream) = connect(cfg, url, &addrs, deadline);
    let failed = matches!(outcome, Outcome::Failed(_));
    steps.push((ProbeStep::Connect, outcome));
    if failed {
        return Probe { steps, downgraded: false };
    }

    // The plugin's own connect on that socket: for ldaps:// or StartTLS, the TLS handshake.
    let mode = Mode::of(url, cfg.starttls);
    let mut conn = match crate::tls::connect_on(cfg, url, tls, stream, deadline) {
        Ok(conn) => conn,
        Err(e) => {
            let err = match e {
                ConnectError::Tls(line) => Error::Unavailable(line),
                ConnectError::Ldap { step, source } => transport_error(url, step, cfg.timeout, source),
                ConnectError::Net(e) => e,
            };
            if mode.uses_tls() {
                steps.push((ProbeStep::Tls, Outcome::Failed(err)));
            } else if let Some(last) = steps.last_mut() {
                last.1 = Outcome::Failed(err);
            }
            return Probe { steps, downgraded: false };
        }
    };
    let encrypted = conn.encrypted();
    let tls_outcome = match mode {
        Mode::Ldaps => Outcome::Ok("established (ldaps://, TLS from the first byte)".into()),
        Mode::StartTls { .. } if encrypted => Outcome::Ok("established (StartTLS, sasl_ldapdb_starttls)".into()),
        // `try` went on in cleartext: the server refused StartTLS.
        Mode::StartTls { .. } => Outcome::Failed(Error::Unavailable(format!(
            "LDAP server {} refused StartTLS, so sasl_ldapdb_starttls: try goes on in cleartext and the \
             bind password crosses the network unencrypted; enable TLS on the server, or use ldaps://",
            url.endpoint()
        ))),
        Mode::Plain if url.scheme == Scheme::Ldapi => Outcome::NotNeeded("not used: ldapi:// is a local socket".into()),
        Mode::Plain => Outcome::NotNeeded(
            "not used: ldap:// without sasl_ldapdb_starttls (fine on localhost; across a network \
             use ldaps:// or sasl_ldapdb_starttls: demand)"
                .into(),
        ),
    };
    // A cleartext fallback still lets the plugin work: report it, then go on to the bind.
    let downgraded = matches!(tls_outcome, Outcome::Failed(_));
    steps.push((ProbeStep::Tls, tls_outcome));
    steps.push((ProbeStep::ServiceBind, service_bind(cfg, url, &mut conn, deadline)));
    conn.unbind(UNBIND_TIMEOUT);
    Probe { steps, downgraded }
}

/// The addresses of the URL's host, in the resolver's order (ldapi: none, the path is checked),
/// by the plugin's bounded lookup.
fn resolve(cfg: &Config, url: &LdapUrl, deadline: Deadline) -> (Outcome, Vec<SocketAddr>) {
    if url.scheme == Scheme::Ldapi {
        let outcome = match std::fs::metadata(&url.host) {
            Ok(m) if m.file_type().is_socket() => Outcome::Ok(format!("socket {} exists", url.host)),
            Ok(_) => Outcome::Failed(Error::Unavailable(format!(
                "{} is not a socket; check the path in sasl_ldapdb_uri (percent-encoded, e.g. \
                 ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi)",
                url.host
            ))),
            Err(e) => Outcome::Failed(Error::Unavailable(format!(
                "ldapi socket {}: {e}; check that the LDAP server listens on it and the path in \
                 sasl_ldapdb_uri (percent-encoded, e.g. ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi)",
                url.host
            ))),
        };
        return (outcome, Vec::new());
    }
    match net::resolve(&url.host, url.port, deadline) {
        Ok(addrs) => {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            (Outcome::Ok(format!("{} is {}", url.host, shown.join(", "))), addrs)
        }
        Err(e) => (Outcome::Failed(e.into_error(url, cfg.timeout)), Vec::new()),
    }
}

/// The plugin's TCP connect, on its own so that a refused or silent port is told apart from TLS
/// and LDAP; the socket is then used for the rest (ldapi: only checked, ldap3 connects).
fn connect(cfg: &Config, url: &LdapUrl, addrs: &[SocketAddr], deadline: Deadline) -> (Outcome, Option<TcpStream>) {
    let started = Instant::now();
    if url.scheme == Scheme::Ldapi {
        let outcome = match super::wire::connect_unix(&url.host, deadline) {
            Ok(_) => Outcome::Ok(format!("connected to {} ({} ms)", url.host, started.elapsed().as_millis())),
            Err(e) => Outcome::Failed(transport_error(url, "connect", cfg.timeout, e)),
        };
        return (outcome, None);
    }
    match net::connect_addrs(url, addrs, deadline, cfg.timeout) {
        Ok(stream) => {
            let peer = stream.peer_addr().map_or_else(|_| url.endpoint(), |a| a.to_string());
            (Outcome::Ok(format!("connected to {peer} ({} ms)", started.elapsed().as_millis())), Some(stream))
        }
        Err(e) => (Outcome::Failed(e), None),
    }
}

fn service_bind(cfg: &Config, url: &LdapUrl, conn: &mut Conn, deadline: Deadline) -> Outcome {
    let (result, who) = match &cfg.bind {
        Bind::Anonymous => {
            return Outcome::NotNeeded("none: sasl_ldapdb_id is not set, so searches run as anonymous".into());
        }
        Bind::Simple { dn, password } => (conn.simple_bind(dn, password.expose(), deadline), format!("as {dn}")),
        Bind::External => (conn.sasl_external_bind(deadline), "with SASL EXTERNAL".to_string()),
    };
    match result {
        Err(e) => Outcome::Failed(transport_error(url, "bind", cfg.timeout, e)),
        Ok(res) => match service_bind_checked(cfg, url, &res) {
            Ok(()) => Outcome::Ok(format!("bound {who}")),
            Err(e) => Outcome::Failed(e),
        },
    }
}
