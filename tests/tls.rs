//! TLS through real libsasl2 and the built plugin against a real slapd whose certificates the
//! test makes with `openssl` (a CA; a server certificate for 127.0.0.1 and localhost; one for a
//! wrong name; an expired one; a client certificate): ldaps:// and StartTLS with the CA from
//! `sasl_ldapdb_tls_cacert`, the system store, `TLS_REQCERT never` from `ldapdb_rc`, SASL
//! EXTERNAL with a client certificate, StartTLS `try` and `demand` against a server without TLS,
//! a listener that never answers, and the one log line for each way TLS fails.
//!
//! "The system store" is pinned with `SSL_CERT_FILE` (read by rustls-native-certs) to an
//! unrelated CA, so the outcome does not depend on the machine's ca-certificates. One libsasl2
//! per process: run with cargo nextest.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::sasl::{self, PluginDir, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_LOG_WARN, SASL_OK, Server};
use common::slapd::{self, Slapd, SlapdOptions, TestCa, TlsFiles};

const APP: &str = "ldapbind-tls";
/// The names in the good server certificate.
const NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

struct Host {
    _dir: PluginDir,
    server: Server,
}

/// libsasl2 with ldapbind for `uri` (base DN appended) and `extra` options ("" removes one).
fn host(uri: &str, extra: &[(&str, &str)]) -> Host {
    let uri = format!("{uri}/{}", slapd::BASE_DN);
    let mut options: Vec<(&str, &str)> = vec![
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop"),
        ("mech_list", "PLAIN SCRAM-SHA-256"),
        ("log_level", "4"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", slapd::SERVICE_DN),
        ("ldapdb_pw", slapd::SERVICE_PW),
        ("ldapdb_timeout", "2"),
    ];
    for (k, v) in extra {
        options.retain(|(key, _)| key != k);
        if !v.is_empty() {
            options.push((k, v));
        }
    }
    let dir = PluginDir::with_ldapbind();
    let server = Server::init(APP, dir.path(), &options);
    Host { _dir: dir, server }
}

fn tls_slapd(files: TlsFiles) -> Slapd {
    Slapd::start_with(SlapdOptions { tls: Some(files), ..SlapdOptions::default() })
}

/// Pins what rustls-native-certs reads as the system store to `ca`'s certificate.
fn system_store_is(ca: &TestCa) {
    // SAFETY: called before libsasl2 (and with it ldapbind) starts, while this test's thread is
    // the only one that reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", ca.cert_path()) };
    // SAFETY: as above.
    unsafe { std::env::remove_var("SSL_CERT_DIR") };
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn login(h: &Host) -> i32 {
    let john = slapd::JOHNDOE;
    h.server.new_conn("imap").checkpass(john.uid.as_bytes(), john.pw().as_bytes())
}

/// Messages logged at `level` (with a connection) that contain `needle`.
fn lines_at(level: i32, needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == level && m.contains(needle)).map(|(_, m)| m).collect()
}

/// A failed login logged exactly `ldapbind: <line>` at ERR.
fn assert_login_fails_with(h: &Host, line: &str) {
    Server::clear_logs();
    assert_ne!(login(h), SASL_OK, "the login succeeded");
    let want = format!("ldapbind: {line}");
    assert!(
        Server::logs().iter().any(|(l, m)| *l == SASL_LOG_ERR && *m == want),
        "no ERR line {want:?} in {:#?}",
        Server::logs()
    );
}

/// A login by checkpass and by a full SCRAM-SHA-256 and PLAIN exchange.
fn assert_logins_work(h: &Host) {
    let john = slapd::JOHNDOE;
    assert_eq!(login(h), SASL_OK, "checkpass: {:#?}", Server::logs());
    for mech in ["SCRAM-SHA-256", "PLAIN"] {
        let r = sasl::exchange(&h.server, mech, john.uid, None, john.pw());
        assert_eq!(r.code, SASL_OK, "{mech}: {} / {:#?}", r.errdetail, Server::logs());
        assert_eq!(r.username.as_deref(), Some(john.uid));
    }
}

const STARTTLS_OID: &str = "EXT oid=1.3.6.1.4.1.1466.20037";

#[test]
fn ldaps_with_the_ca_logs_in() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.ldaps_url(), &[("ldapdb_tls_cacert", path(&ca.cert_path()))]);
    let mark = slapd.mark();
    assert_logins_work(&h);
    let log = slapd.log_since(&mark);
    assert!(log.contains("TLS established"), "{log}");
    assert!(slapd.ops_since(&mark).binds >= 1);
}

#[test]
fn ldaps_by_host_name_logs_in() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&format!("ldaps://localhost:{}", slapd.ldaps_port()), &[("ldapdb_tls_cacert", path(&ca.cert_path()))]);
    assert_logins_work(&h);
}

#[test]
fn starttls_demand_with_the_ca_logs_in() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.url(), &[("ldapdb_starttls", "demand"), ("ldapdb_tls_cacert", path(&ca.cert_path()))]);
    let mark = slapd.mark();
    assert_logins_work(&h);
    let log = slapd.log_since(&mark);
    assert!(log.contains(STARTTLS_OID) && log.contains("TLS established"), "{log}");
}

#[test]
fn ldaps_without_the_ca_names_the_fix() {
    let ca = TestCa::new("ldapbind test CA");
    let public = TestCa::new("some public CA");
    system_store_is(&public);
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.ldaps_url(), &[]);
    let mark = slapd.mark();
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is not signed by a trusted CA (trusted: the \
             system certificate store); set sasl_ldapdb_tls_cacert to the CA file",
            slapd.ldaps_port()
        ),
    );
    assert_eq!(slapd.ops_since(&mark).binds, 0, "the service password was sent");
}

#[test]
fn starttls_demand_without_the_ca_names_the_fix() {
    let ca = TestCa::new("ldapbind test CA");
    let public = TestCa::new("some public CA");
    system_store_is(&public);
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.url(), &[("ldapdb_starttls", "demand")]);
    let mark = slapd.mark();
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is not signed by a trusted CA (trusted: the \
             system certificate store); set sasl_ldapdb_tls_cacert to the CA file",
            slapd.port()
        ),
    );
    let ops = slapd.ops_since(&mark);
    assert_eq!((ops.other_ops, ops.binds), (1, 0), "StartTLS and nothing after it: {ops:?}");
}

#[test]
fn ldaps_with_another_ca_file_names_that_file() {
    let ca = TestCa::new("ldapbind test CA");
    let other = TestCa::new("another CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.ldaps_url(), &[("ldapdb_tls_cacert", path(&other.cert_path()))]);
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is not signed by a trusted CA (trusted: the CA \
             file {}); set sasl_ldapdb_tls_cacert to the CA file",
            slapd.ldaps_port(),
            other.cert_path().display()
        ),
    );
}

#[test]
fn ldaps_with_a_wrong_host_name_names_both() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&["ldap.example.org"]));
    let h = host(&slapd.ldaps_url(), &[("ldapdb_tls_cacert", path(&ca.cert_path()))]);
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is for ldap.example.org, not 127.0.0.1; use \
             the name in the certificate in sasl_ldapdb_uri",
            slapd.ldaps_port()
        ),
    );
}

#[test]
fn starttls_demand_with_a_wrong_host_name_names_both() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&["127.0.0.1"]));
    let h = host(
        &format!("ldap://localhost:{}", slapd.port()),
        &[("ldapdb_starttls", "demand"), ("ldapdb_tls_cacert", path(&ca.cert_path()))],
    );
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server localhost:{} is for 127.0.0.1, not localhost; use the name \
             in the certificate in sasl_ldapdb_uri",
            slapd.port()
        ),
    );
}

#[test]
fn an_expired_certificate_is_named() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.expired_server(&NAMES));
    let h = host(&slapd.ldaps_url(), &[("ldapdb_tls_cacert", path(&ca.cert_path()))]);
    Server::clear_logs();
    assert_ne!(login(&h), SASL_OK);
    let want = format!(
        "ldapbind: certificate of LDAP server 127.0.0.1:{} expired on 2020-01-02 00:00:00 UTC (it is now ",
        slapd.ldaps_port()
    );
    let lines = lines_at(SASL_LOG_ERR, &want);
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    assert!(lines[0].starts_with(&want) && lines[0].ends_with(" UTC); renew the server's certificate"), "{lines:?}");
}

#[test]
fn starttls_try_without_tls_on_the_server_works_and_warns_each_time() {
    let mut slapd = Slapd::start();
    let h = host(&slapd.url(), &[("ldapdb_starttls", "try")]);
    let warning = format!(
        "ldapbind: LDAP server 127.0.0.1:{} does not offer StartTLS (2 protocolError: unsupported \
         extended operation); continuing WITHOUT TLS because sasl_ldapdb_starttls is try, so passwords cross the \
         network in clear; enable TLS on the server and set sasl_ldapdb_starttls: demand",
        slapd.port()
    );
    let warnings = || Server::logs().iter().filter(|(l, m)| *l == SASL_LOG_WARN && *m == warning).count();
    assert_logins_work(&h);
    assert_eq!(warnings(), 1, "one connection, one warning: {:#?}", Server::logs());
    // A new connection (the kept one died with the restart) warns again.
    slapd.restart();
    assert_eq!(login(&h), SASL_OK, "{:#?}", Server::logs());
    assert_eq!(warnings(), 2, "{:#?}", Server::logs());
}

#[test]
fn starttls_try_never_falls_back_after_a_bad_certificate() {
    let ca = TestCa::new("ldapbind test CA");
    let other = TestCa::new("another CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    let h = host(&slapd.url(), &[("ldapdb_starttls", "try"), ("ldapdb_tls_cacert", path(&other.cert_path()))]);
    let mark = slapd.mark();
    assert_login_fails_with(
        &h,
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is not signed by a trusted CA (trusted: the CA \
             file {}); set sasl_ldapdb_tls_cacert to the CA file",
            slapd.port(),
            other.cert_path().display()
        ),
    );
    assert!(Server::any_log_containing("does not offer StartTLS").is_empty(), "{:#?}", Server::logs());
    let ops = slapd.ops_since(&mark);
    assert_eq!((ops.binds, ops.searches), (0, 0), "fell back to cleartext: {ops:?}");
}

#[test]
fn starttls_demand_without_tls_on_the_server_fails_closed() {
    let slapd = Slapd::start();
    let h = host(&slapd.url(), &[("ldapdb_starttls", "demand")]);
    let mark = slapd.mark();
    assert_login_fails_with(
        &h,
        &format!(
            "LDAP server 127.0.0.1:{} refused StartTLS (2 protocolError: unsupported extended \
             operation) and sasl_ldapdb_starttls is demand, so ldapbind does not continue without TLS; enable TLS \
             on the server (slapd: olcTLSCertificateFile and olcTLSCertificateKeyFile) or use its \
             ldaps:// URL",
            slapd.port()
        ),
    );
    assert_eq!(slapd.ops_since(&mark).binds, 0, "the service password was sent in clear");
}

#[test]
fn tls_reqcert_never_from_the_rc_file_accepts_an_untrusted_certificate() {
    let untrusted = TestCa::new("nobody trusts this CA");
    let public = TestCa::new("some public CA");
    system_store_is(&public);
    let slapd = tls_slapd(untrusted.server(&["somewhere.else"]));
    let rc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rc.path(), "# like /etc/ldap/ldap.conf\nTLS_REQCERT never\n").unwrap();
    let h = host(&slapd.ldaps_url(), &[("ldapdb_rc", path(rc.path()))]);
    assert_logins_work(&h);
    // Logged at init (no connection yet, so libsasl2 sends it to syslog), at WARN (LOG_WARNING).
    let warning = "ldapbind: sasl_ldapdb_rc: TLS_REQCERT never/allow: ldapbind will not verify the \
                   LDAP server's certificate, so anyone on the network path can read the bind \
                   password and user passwords; set TLS_REQCERT demand and sasl_ldapdb_tls_cacert";
    assert!(
        Server::syslog_logs().iter().any(|(prio, m)| *prio == 4 && m == warning),
        "no warning at init: {:#?}",
        Server::syslog_logs()
    );
}

#[test]
fn external_bind_with_a_client_certificate() {
    let ca = TestCa::new("ldapbind test CA");
    let slapd = tls_slapd(ca.server(&NAMES));
    // The subject is the service account's DN, which slapd takes as the EXTERNAL identity.
    let (cert, key) = ca.client("/DC=local/DC=users/OU=machines/CN=cyrus");
    let h = host(
        &slapd.ldaps_url(),
        &[
            ("ldapdb_mech", "EXTERNAL"),
            ("ldapdb_id", ""),
            ("ldapdb_pw", ""),
            ("ldapdb_tls_cacert", path(&ca.cert_path())),
            ("ldapdb_tls_cert", path(&cert)),
            ("ldapdb_tls_key", path(&key)),
        ],
    );
    let mark = slapd.mark();
    assert_logins_work(&h);
    let log = slapd.log_since(&mark);
    assert!(log.contains("mech=EXTERNAL"), "{log}");
    assert!(log.contains("dn=\"cn=cyrus,ou=machines,dc=users,dc=local\" mech=EXTERNAL"), "{log}");
}

#[test]
fn an_unusable_ca_file_is_an_init_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let h = host("ldaps://127.0.0.1:1", &[("ldapdb_tls_cacert", path(&ca))]);
    let want = format!("ldapbind: sasl_ldapdb_tls_cacert: {} holds no CA certificate rustls can use (", ca.display());
    assert!(Server::syslog_logs().iter().any(|(_, m)| m.starts_with(&want)), "{:#?}", Server::syslog_logs());
    assert_ne!(login(&h), SASL_OK);
}

#[test]
fn ldaps_to_a_plain_ldap_port_says_so() {
    let slapd = Slapd::start();
    let h = host(&format!("ldaps://127.0.0.1:{}", slapd.port()), &[]);
    assert_login_fails_with(
        &h,
        &format!(
            "LDAP server 127.0.0.1:{port} closed the connection during the TLS handshake; check \
             that port {port} serves ldaps:// (usually 636; 389 is ldap://, which takes \
             sasl_ldapdb_starttls) and the server's TLS settings",
            port = slapd.port()
        ),
    );
}

/// Accepts TCP connections and never sends a byte (reads and discards what arrives).
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut reader = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            });
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_silent_ldaps_listener_times_out_within_the_timeout() {
    let port = silent_listener();
    let ca = TestCa::new("ldapbind test CA");
    let h = host(
        &format!("ldaps://127.0.0.1:{port}"),
        &[("ldapdb_timeout", "1"), ("ldapdb_tls_cacert", path(&ca.cert_path()))],
    );
    // ERR the first time this process meets the cause, FAIL afterwards.
    for level in [SASL_LOG_ERR, SASL_LOG_FAIL] {
        Server::clear_logs();
        let started = Instant::now();
        assert_ne!(login(&h), SASL_OK);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "login took {took:?} with ldapdb_timeout 1");
        let lines = lines_at(
            level,
            &format!(
                "LDAP server 127.0.0.1:{port} did not answer the connect and TLS handshake within 1s (sasl_ldapdb_timeout)"
            ),
        );
        assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    }
}
