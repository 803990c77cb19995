//! Logins through real libsasl2 with the built plugin against a real slapd configured like
//! glauth (simple binds only, no anonymous search). One libsasl2 per process: cargo nextest.

mod common;

use common::sasl::{self, PluginDir, SASL_BADAUTH, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_NOUSER, SASL_OK, Server};
use common::slapd::{self, SizeLimit, Slapd, SlapdOptions};

const APP: &str = "ldapbind-test";
const MECHS: [&str; 6] = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];

struct Setup {
    slapd: Slapd,
    _dir: PluginDir,
    server: Server,
}

fn start(extra: &[(&str, &str)]) -> Setup {
    start_on(Slapd::start(), extra)
}

fn start_with(opts: slapd::SlapdOptions, extra: &[(&str, &str)]) -> Setup {
    start_on(Slapd::start_with(opts), extra)
}

fn start_on(slapd: Slapd, extra: &[(&str, &str)]) -> Setup {
    let uri = format!("{}/{}", slapd.url(), slapd::BASE_DN);
    let mech_list = MECHS.join(" ");
    let mut options: Vec<(&str, &str)> = vec![
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop"),
        ("mech_list", &mech_list),
        ("log_level", "5"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", slapd::SERVICE_DN),
        ("ldapdb_pw", slapd::SERVICE_PW),
    ];
    for (k, v) in extra {
        options.retain(|(key, _)| key != k);
        if !v.is_empty() {
            options.push((k, v));
        }
    }
    let dir = PluginDir::with_ldapbind();
    let server = Server::init(APP, dir.path(), &options);
    Setup { slapd, _dir: dir, server }
}

fn lines_at(level: i32, needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == level && m.contains(needle)).map(|(_, m)| m).collect()
}

fn checkpass(s: &Setup, user: &str, pw: &str) -> (i32, Option<String>, String) {
    let conn = s.server.new_conn("imap");
    let rc = conn.checkpass(user.as_bytes(), pw.as_bytes());
    (rc, conn.username(), conn.errdetail())
}

#[test]
fn every_mechanism_logs_in_by_uid_and_by_mail() {
    let s = start(&[]);
    let john = slapd::JOHNDOE;
    for name in [john.uid, john.mail] {
        let (rc, user, detail) = checkpass(&s, name, john.pw());
        assert_eq!((rc, user.as_deref()), (SASL_OK, Some(name)), "checkpass {name}: {detail}");
        for mech in MECHS {
            let r = sasl::exchange(&s.server, mech, name, None, john.pw());
            assert_eq!(r.code, SASL_OK, "{mech} as {name}: {} / logs {:#?}", r.errdetail, Server::logs());
            assert_eq!(r.username.as_deref(), Some(name), "{mech}");
        }
    }
    // A mail address with + and ' in it is found (escaped, not interpreted).
    let o = slapd::OBRIEN;
    assert_eq!(checkpass(&s, o.mail, o.pw()).0, SASL_OK);
    assert_eq!(sasl::exchange(&s.server, "SCRAM-SHA-256", o.mail, None, o.pw()).code, SASL_OK);
}

#[test]
fn the_canonical_name_is_the_canon_attr_value() {
    let s = start(&[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "uid")]);
    let john = slapd::JOHNDOE;
    let (rc, user, detail) = checkpass(&s, &format!("  {}  ", john.mail), john.pw());
    assert_eq!((rc, user.as_deref()), (SASL_OK, Some(john.uid)), "{detail}");
    for mech in MECHS {
        let r = sasl::exchange(&s.server, mech, john.mail, None, john.pw());
        assert_eq!((r.code, r.username.as_deref()), (SASL_OK, Some(john.uid)), "{mech}: {}", r.errdetail);
    }
    // Unknown users are refused by the canonicalisation itself.
    let (rc, _, _) = checkpass(&s, "nobody@example.com", "x");
    assert_ne!(rc, SASL_OK);
    assert!(!lines_at(SASL_LOG_FAIL, "nobody@example.com not found").is_empty(), "{:#?}", Server::logs());
}

#[test]
fn wrong_password_and_unknown_user() {
    let s = start(&[]);
    let john = slapd::JOHNDOE;
    assert_eq!(checkpass(&s, john.uid, "wrong").0, SASL_BADAUTH);
    for mech in MECHS {
        let r = sasl::exchange(&s.server, mech, john.uid, None, "wrong");
        assert_ne!(r.code, SASL_OK, "{mech} accepted a wrong password");
    }
    Server::clear_logs();
    assert_eq!(checkpass(&s, "nobody@example.com", "x").0, SASL_NOUSER);
    let lines = lines_at(SASL_LOG_FAIL, "user nobody@example.com not found");
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    assert!(lines[0].contains("(mail=nobody@example.com)") && lines[0].contains(slapd::BASE_DN), "{lines:?}");
}

/// Refused for the reason in `needle`, by checkpass and by every mechanism.
fn never_authenticates(s: &Setup, user: &[u8], pw: &str, level: i32, needle: &str) {
    Server::clear_logs();
    let conn = s.server.new_conn("imap");
    let rc = conn.checkpass(user, pw.as_bytes());
    assert_ne!(rc, SASL_OK, "checkpass {:?} succeeded", String::from_utf8_lossy(user));
    if let Ok(name) = std::str::from_utf8(user) {
        if !name.contains('\0') {
            for mech in MECHS {
                let r = sasl::exchange(&s.server, mech, name, None, pw);
                assert_ne!(r.code, SASL_OK, "{mech} as {name:?} succeeded");
            }
        }
    }
    if !needle.is_empty() {
        assert!(!lines_at(level, needle).is_empty(), "no level-{level} line with {needle:?}: {:#?}", Server::logs());
    }
}

#[test]
fn ambiguous_hashed_empty_and_hostile_names_never_authenticate() {
    let s = start(&[]);
    let a = slapd::TWIN_A;
    never_authenticates(&s, a.mail.as_bytes(), a.pw(), SASL_LOG_FAIL, "is ambiguous");
    assert!(!lines_at(SASL_LOG_FAIL, slapd::TWIN_B.dn).is_empty(), "both DNs are named");

    for u in [slapd::SSHA_USER, slapd::CRYPT_USER] {
        let scheme = if u.uid == slapd::SSHA_USER.uid { "{SSHA}" } else { "{CRYPT}" };
        never_authenticates(&s, u.uid.as_bytes(), u.pw(), SASL_LOG_FAIL, &format!("stored as {scheme}"));
        // Debian 12's libsasl2 (2.1.28) has no auxprop-hashed: the advice does not name it.
        let advice = Server::logs_containing(&format!("stored as {scheme}"));
        assert!(advice.iter().all(|(_, l)| !l.contains("auxprop-hashed")), "{advice:?}");
        // Typing the stored hash itself must not work either.
        never_authenticates(
            &s,
            u.uid.as_bytes(),
            u.stored.unwrap(),
            SASL_LOG_FAIL,
            "run ldapbind-authd and set sasl_pwcheck_method: auxprop saslauthd",
        );
    }
    never_authenticates(&s, slapd::JOHNDOE.uid.as_bytes(), "", 0, "");
    never_authenticates(&s, slapd::NOPASS.uid.as_bytes(), "", 0, "");
    never_authenticates(&s, slapd::NOPASS.uid.as_bytes(), "anything", SASL_LOG_FAIL, "has no userPassword");
    for hostile in ["*", "x)(uid=*", "\\", "johndoe)(|(uid=*", "*)(userPassword=*"] {
        never_authenticates(&s, hostile.as_bytes(), slapd::JOHNDOE.pw(), SASL_LOG_FAIL, "not found");
    }
    // With INTERNAL canonicalisation libsasl2 itself cuts a name at a NUL byte before ldapbind
    // sees it; the login can then only be johndoe's own (see the next test for ldapbind's canon).
    let conn = s.server.new_conn("imap");
    let rc = conn.checkpass(b"johndoe\0x", slapd::JOHNDOE.pw().as_bytes());
    assert_eq!((rc, conn.username().as_deref()), (SASL_OK, Some("johndoe")), "{}", conn.errdetail());
}

#[test]
fn ldapbinds_canonicalisation_refuses_nul_and_hostile_names() {
    let s = start(&[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "uid")]);
    never_authenticates(&s, b"johndoe\0x", slapd::JOHNDOE.pw(), SASL_LOG_FAIL, "contains a NUL byte");
    never_authenticates(&s, b"\xffjohndoe", slapd::JOHNDOE.pw(), SASL_LOG_FAIL, "not valid UTF-8");
    never_authenticates(&s, "x".repeat(600).as_bytes(), slapd::JOHNDOE.pw(), SASL_LOG_FAIL, "longer than 512 bytes");
    never_authenticates(&s, b"x)(uid=*", slapd::JOHNDOE.pw(), SASL_LOG_FAIL, "not found");
}

/// A canonical name longer than libsasl2's buffer (CANON_BUF_SIZE, 1024 bytes with its NUL) is
/// refused, never written past the buffer nor cut. Directory values go through the same checks
/// as typed names, so the 512-byte name limit refuses it first (SASL_BADAUTH with its ERR line);
/// the out_umax check behind it is the second guard.
#[test]
fn a_canonical_name_longer_than_libsasl2s_buffer_is_refused() {
    let long = "l".repeat(1100);
    let ldif = format!(
        "dn: cn=longuid,{}\nobjectClass: inetOrgPerson\ncn: longuid\nsn: Long\nuid: {long}\n\
         mail: long@example.com\nuserPassword: longpass\n",
        slapd::USERS_DN
    );
    let opts = slapd::SlapdOptions { extra_ldif: Some(ldif), ..Default::default() };
    let s = start_with(opts, &[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "uid")]);
    let (rc, user, detail) = checkpass(&s, "long@example.com", "longpass");
    assert_eq!((rc, user), (sasl::SASL_BADAUTH, None), "{detail}\n{:#?}", Server::logs());
    // The directory's data, the admin's to fix: ERR the first time.
    let lines = lines_at(SASL_LOG_ERR, "longer than 512 bytes");
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    for mech in ["PLAIN", "SCRAM-SHA-256"] {
        let r = sasl::exchange(&s.server, mech, "long@example.com", None, "longpass");
        assert_ne!(r.code, sasl::SASL_OK, "{mech}: {}", r.errdetail);
    }
    // Names that fit are still canonicalised.
    let john = slapd::JOHNDOE;
    assert_eq!(checkpass(&s, john.mail, john.pw()).1.as_deref(), Some(john.uid));
}

fn login_costs(s: &Setup, login: impl Fn()) -> slapd::OpCounts {
    login(); // warm-up: connection and service bind
    let mark = s.slapd.mark();
    login();
    login();
    s.slapd.ops_since(&mark)
}

#[test]
fn a_login_costs_one_search_and_no_bind() {
    let s = start(&[]);
    let john = slapd::JOHNDOE;
    let checkpass_ops = login_costs(&s, || assert_eq!(checkpass(&s, john.uid, john.pw()).0, SASL_OK));
    assert_eq!(
        (checkpass_ops.searches, checkpass_ops.binds, checkpass_ops.connections),
        (2, 0, 0),
        "{checkpass_ops:?}"
    );
    let cram_ops =
        login_costs(&s, || assert_eq!(sasl::exchange(&s.server, "CRAM-MD5", john.uid, None, john.pw()).code, SASL_OK));
    assert_eq!((cram_ops.searches, cram_ops.binds, cram_ops.connections), (2, 0, 0), "{cram_ops:?}");
}

#[test]
fn with_ldapbind_canonicalising_every_mechanism_costs_one_search() {
    let s = start(&[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "mail")]);
    let john = slapd::JOHNDOE;
    let ops = login_costs(&s, || assert_eq!(checkpass(&s, john.mail, john.pw()).0, SASL_OK));
    assert_eq!((ops.searches, ops.binds), (2, 0), "checkpass: {ops:?}");
    for mech in MECHS {
        let ops =
            login_costs(&s, || assert_eq!(sasl::exchange(&s.server, mech, john.mail, None, john.pw()).code, SASL_OK));
        assert_eq!((ops.searches, ops.binds), (2, 0), "{mech}: {ops:?}");
    }
}

#[test]
fn a_refused_service_bind_names_the_options() {
    let s = start(&[("ldapdb_pw", "not-the-password")]);
    let john = slapd::JOHNDOE;
    assert_ne!(checkpass(&s, john.uid, john.pw()).0, SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "invalidCredentials");
    assert!(
        lines.iter().any(|l| l.contains("sasl_ldapdb_id") && l.contains("sasl_ldapdb_pw")),
        "{:#?}",
        Server::logs()
    );
    assert!(lines.iter().all(|l| !l.contains("not-the-password")), "the password is never logged");
}

#[test]
fn the_seeds_relative_service_id_gets_the_full_dn_as_fix() {
    let s = start(&[("ldapdb_id", "cn=cyrus,ou=machines")]);
    let john = slapd::JOHNDOE;
    assert_ne!(checkpass(&s, john.uid, john.pw()).0, SASL_OK);
    assert!(!lines_at(SASL_LOG_ERR, "cn=cyrus,ou=machines,dc=users,dc=local").is_empty(), "{:#?}", Server::logs());
}

#[test]
fn unreachable_server_names_the_default_port() {
    let s = start(&[("ldapdb_uri", "ldap://127.0.0.1/dc=users,dc=local")]);
    assert_ne!(checkpass(&s, "johndoe", "dogood").0, SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "connection refused");
    assert!(lines.iter().any(|l| l.contains("127.0.0.1:389") && l.contains("default port")), "{:#?}", Server::logs());
}

#[test]
fn a_missing_base_is_named_with_its_source() {
    let s = start(&[("ldapdb_search_base", "ou=nowhere,dc=users,dc=local")]);
    assert_ne!(checkpass(&s, "johndoe", "dogood").0, SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "ou=nowhere,dc=users,dc=local (from sasl_ldapdb_search_base)");
    assert!(!lines.is_empty(), "{:#?}", Server::logs());
}

#[test]
fn anonymous_search_refused_is_explained() {
    let s = start(&[("ldapdb_id", ""), ("ldapdb_pw", "")]);
    assert_ne!(checkpass(&s, "johndoe", "dogood").0, SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "anonymous");
    assert!(lines.iter().any(|l| l.contains("sasl_ldapdb_id")), "{:#?}", Server::logs());
}

fn with_odd_values() -> Slapd {
    Slapd::start_with(SlapdOptions { extra_ldif: Some(slapd::ODD_VALUES_LDIF.into()), ..Default::default() })
}

#[test]
fn empty_and_nul_secrets_in_the_directory_never_log_in() {
    let s = start_on(with_odd_values(), &[]);
    // The empty password against the empty userPassword (and empty authPassword and
    // cmusaslsecretPLAIN): checkpass, PLAIN, LOGIN and every other mechanism refuse it.
    let e = slapd::EMPTY_PW;
    never_authenticates(
        &s,
        e.uid.as_bytes(),
        "",
        SASL_LOG_FAIL,
        &format!("userPassword of {} ({}) is empty", e.uid, e.dn),
    );
    for attr in ["authPassword", "cmusaslsecretPLAIN"] {
        assert!(
            !lines_at(SASL_LOG_FAIL, &format!("{attr} of {} ({}) is empty", e.uid, e.dn)).is_empty(),
            "{attr}: {:#?}",
            Server::logs()
        );
    }
    let fail = lines_at(SASL_LOG_FAIL, &format!("userPassword of {} ({}) is empty", e.uid, e.dn));
    assert!(fail[0].contains("; store the user's password in userPassword"), "the fix: {fail:?}");
    assert!(
        lines_at(SASL_LOG_FAIL, "has no userPassword").is_empty(),
        "not also called missing: {:#?}",
        Server::logs()
    );
    for mech in ["PLAIN", "LOGIN"] {
        let r = sasl::exchange(&s.server, mech, e.mail, None, "");
        assert_ne!(r.code, SASL_OK, "{mech} with an empty password");
    }
    // `dogood\0xxx` stored: `dogood` (what a C string compare would see) is no password.
    let n = slapd::NUL_PW;
    never_authenticates(
        &s,
        n.uid.as_bytes(),
        n.pw(),
        SASL_LOG_FAIL,
        &format!("userPassword of {} ({}) holds a NUL byte", n.uid, n.dn),
    );
    never_authenticates(&s, n.uid.as_bytes(), "dogood\0xxx", 0, "");
    // Nothing of the values reaches a log line.
    assert!(Server::logs().iter().all(|(_, m)| !m.contains("xxx")), "{:#?}", Server::logs());
    // The other users are untouched.
    assert_eq!(checkpass(&s, slapd::JOHNDOE.uid, slapd::JOHNDOE.pw()).0, SASL_OK);
}

#[test]
fn canonical_names_from_the_directory_are_trimmed_and_checked_like_typed_ones() {
    let s = start_on(with_odd_values(), &[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "uid")]);
    let p = slapd::PADDED;
    let (rc, user, detail) = checkpass(&s, p.mail, p.pw());
    assert_eq!((rc, user.as_deref()), (SASL_OK, Some(p.uid)), "{detail}");
    for mech in MECHS {
        let r = sasl::exchange(&s.server, mech, p.mail, None, p.pw());
        assert_eq!((r.code, r.username.as_deref()), (SASL_OK, Some(p.uid)), "{mech}: {}", r.errdetail);
    }
    for (u, why) in [(slapd::NUL_UID, "contains a NUL byte"), (slapd::CTL_UID, "contains control characters")] {
        never_authenticates(&s, u.mail.as_bytes(), u.pw(), SASL_LOG_FAIL, why);
        let lines = lines_at(SASL_LOG_FAIL, why);
        assert!(
            lines.iter().any(|l| l.contains(u.dn) && l.contains("sasl_ldapdb_canon_attr")),
            "{u:?}: {:#?}",
            Server::logs()
        );
    }
}

/// An ambiguous name under a server-side size limit of 1: one entry and sizeLimitExceeded.
fn a_size_limit_never_picks_the_first_entry(s: &Setup) {
    let (a, b) = (slapd::TWIN_A, slapd::TWIN_B);
    for twin in [a, b] {
        let (rc, _, detail) = checkpass(s, slapd::SHARED_MAIL, twin.pw());
        // The service account's limit is the admin's to fix: SASL_FAIL, never a wrong password's code.
        assert_eq!(rc, sasl::SASL_FAIL, "{} as {}: {detail}", twin.pw(), slapd::SHARED_MAIL);
    }
    // The admin's to fix: ERR the first time this process meets it, FAIL on later logins.
    let lines = lines_at(SASL_LOG_ERR, "size limit");
    assert!(
        lines.iter().any(|l| l.contains("4 sizeLimitExceeded")
            && l.contains(slapd::SHARED_MAIL)
            && l.contains(&format!("limits dn.exact=\"{}\" size=unlimited", slapd::SERVICE_DN))),
        "{:#?}",
        Server::logs()
    );
    never_authenticates(s, slapd::SHARED_MAIL.as_bytes(), a.pw(), SASL_LOG_FAIL, "size limit");
    // A unique name is still one entry and result 0 under that limit.
    let john = slapd::JOHNDOE;
    assert_eq!(checkpass(s, john.mail, john.pw()).0, SASL_OK);
    assert_eq!(sasl::exchange(&s.server, "SCRAM-SHA-256", john.mail, None, john.pw()).code, SASL_OK);
}

#[test]
fn a_service_account_size_limit_never_makes_an_ambiguous_name_a_login() {
    let slapd =
        Slapd::start_with(SlapdOptions { size_limit: Some(SizeLimit::ServiceAccount(1)), ..Default::default() });
    a_size_limit_never_picks_the_first_entry(&start_on(slapd, &[]));
}

#[test]
fn a_server_size_limit_never_makes_an_ambiguous_name_a_login_through_ldapbinds_canon() {
    let slapd = Slapd::start_with(SlapdOptions { size_limit: Some(SizeLimit::Database(1)), ..Default::default() });
    let s = start_on(slapd, &[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", "mail")]);
    a_size_limit_never_picks_the_first_entry(&s);
}

#[test]
fn a_chrooted_host_that_cannot_resolve_the_server_is_told_why() {
    // Postfix's smtpd: libsasl2 and ldapbind initialise, then the process chroots (Debian:
    // /var/spool/postfix), and the first login resolves the URL's host name in there, where
    // etc/hosts and etc/resolv.conf may be missing.
    use std::os::fd::AsRawFd;
    // The name fails before any connect, so no server is needed at that port.
    let uri = format!("ldap://localhost:1/{}", slapd::BASE_DN);
    let s = start(&[("ldapdb_uri", &uri)]);
    let jail = tempfile::tempdir().unwrap();
    let real_root = std::fs::File::open("/").unwrap();
    let jail_path = std::ffi::CString::new(jail.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: chroot/chdir with valid C strings; this test process is its own (nextest).
    assert_eq!(unsafe { libc::chroot(jail_path.as_ptr()) }, 0, "chroot (needs root)");
    // SAFETY: as above.
    unsafe { libc::chdir(c"/".as_ptr()) };
    let conn = s.server.new_conn("smtp");
    let rc = conn.checkpass(slapd::JOHNDOE.mail.as_bytes(), slapd::JOHNDOE.pw().as_bytes());
    drop(conn);
    // Back to the real root (root may leave a chroot through a directory fd opened before it),
    // so that the fixtures clean up.
    // SAFETY: fchdir on an open directory fd, then chroot to it.
    let back = unsafe { libc::fchdir(real_root.as_raw_fd()) == 0 && libc::chroot(c".".as_ptr()) == 0 };
    assert!(back, "could not leave the chroot");
    assert_ne!(rc, SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "ldapbind: cannot resolve localhost from sasl_ldapdb_uri");
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    assert!(
        lines[0].contains(
            "this process runs chrooted (its root is not the system's `/`; Postfix's smtpd runs in /var/spool/postfix), \
             which has no /etc/hosts and no /etc/resolv.conf: copy /etc/hosts, /etc/resolv.conf and \
             /etc/nsswitch.conf into the chroot's etc/"
        ) && lines[0].ends_with("or write the server's IP address in sasl_ldapdb_uri"),
        "{}",
        lines[0]
    );
}
