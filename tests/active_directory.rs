//! The plugin through real libsasl2 against a real Active Directory: Samba's AD DC
//! (tests/common/samba.rs), over ldaps:// and StartTLS, bound as a service account under each
//! bind-name form AD accepts, finding users by sAMAccountName, userPrincipalName and mail, and
//! canonicalising to sAMAccountName; AD never returns a password, so the plugin alone logs nobody
//! in and says so. AD's refusals (a simple bind over plain ldap://, a certificate without
//! subjectAltName) are named with their fix. One libsasl2 per process: cargo nextest.

mod common;

use std::path::Path;

use common::samba::{self, Samba, SambaOptions};
use common::sasl::{PluginDir, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_OK, Server};

const APP: &str = "ldapbind-ad";
/// Finds an account by logon name, UPN or mail; the README's Active Directory example.
const FILTER_WITH_MAIL: &str = "(|(sAMAccountName=%u)(userPrincipalName=%u)(mail=%u))";

struct Host {
    _dir: PluginDir,
    server: Server,
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// libsasl2 with ldapbind for `uri` (the domain's base appended) bound as the service account's
/// UPN, finding users with `FILTER_WITH_MAIL` and canonicalising to sAMAccountName, trusting
/// the fixture's CA; `extra` replaces options ("" removes one).
fn host(dc: &Samba, uri: &str, extra: &[(&str, &str)]) -> Host {
    let uri = format!("{uri}/{}", samba::BASE_DN);
    let ca = dc.ca_path();
    let mut options: Vec<(&str, &str)> = vec![
        ("auxprop_plugin", "ldapbind"),
        ("canon_user_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop"),
        ("mech_list", "PLAIN LOGIN"),
        ("log_level", "5"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", samba::SVC.upn),
        ("ldapdb_pw", samba::SVC.password),
        ("ldapdb_filter", FILTER_WITH_MAIL),
        ("ldapdb_canon_attr", "sAMAccountName"),
        ("ldapdb_tls_cacert", path(&ca)),
        ("ldapdb_timeout", "5"),
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

fn lines_at(level: i32, needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == level && m.contains(needle)).map(|(_, m)| m).collect()
}

/// `name` with the right password: found and canonicalised to `alice`, but never logged in, since
/// AD returns no password; the log names the entry and its missing userPassword.
fn found_but_not_logged_in(h: &Host, name: &str) {
    let alice = samba::ALICE;
    Server::clear_logs();
    let conn = h.server.new_conn("imap");
    let rc = conn.checkpass(name.as_bytes(), alice.password.as_bytes());
    assert_ne!(rc, SASL_OK, "{name} logged in without a readable password");
    assert_eq!(conn.username().as_deref(), Some(alice.sam), "{name}: {}", conn.errdetail());
    // The admin's to fix: ERR the first time this process meets it, FAIL afterwards.
    let missing: Vec<String> =
        [SASL_LOG_ERR, SASL_LOG_FAIL].iter().flat_map(|l| lines_at(*l, "has no userPassword")).collect();
    assert!(missing.iter().any(|l| l.contains(alice.dn)), "{name}: {:#?}", Server::logs());
}

fn finds_alice_by_every_name(h: &Host) {
    let alice = samba::ALICE;
    for name in [alice.sam, alice.upn, alice.mail.expect("alice has a mail")] {
        found_but_not_logged_in(h, name);
    }
}

#[test]
fn ldaps_finds_users_by_account_name_upn_and_mail_and_canonicalises_to_the_account_name() {
    let dc = Samba::start();
    let h = host(&dc, &dc.ldaps_url(), &[]);
    finds_alice_by_every_name(&h);
    // An unknown name is refused by canonicalisation, naming the AD filter as sent.
    Server::clear_logs();
    let conn = h.server.new_conn("imap");
    assert_ne!(conn.checkpass(b"nobody@example.test", b"x"), SASL_OK);
    let lines = lines_at(SASL_LOG_FAIL, "nobody@example.test not found");
    assert!(lines.iter().any(|l| l.contains("(sAMAccountName=nobody@example.test)")), "{:#?}", Server::logs());
}

#[test]
fn starttls_demand_finds_users_and_binds_as_the_down_level_name() {
    let dc = Samba::start();
    let id = samba::SVC.down_level();
    let h = host(&dc, &dc.ldap_url(), &[("ldapdb_starttls", "demand"), ("ldapdb_id", &id)]);
    finds_alice_by_every_name(&h);
}

#[test]
fn the_issue_filter_finds_by_account_name_and_upn_and_the_service_binds_by_dn() {
    let dc = Samba::start();
    let h = host(&dc, &dc.ldaps_url(), &[("ldapdb_filter", samba_filter()), ("ldapdb_id", samba::SVC.dn)]);
    let alice = samba::ALICE;
    for name in [alice.sam, alice.upn] {
        found_but_not_logged_in(&h, name);
    }
}

/// The filter ldapbind advises for AD.
fn samba_filter() -> &'static str {
    ldapbind::ad::FILTER
}

#[test]
fn a_simple_bind_over_plain_ldap_names_ldaps_or_starttls() {
    let dc = Samba::start();
    let h = host(&dc, &dc.ldap_url(), &[("ldapdb_tls_cacert", "")]);
    let conn = h.server.new_conn("imap");
    assert_ne!(conn.checkpass(samba::ALICE.upn.as_bytes(), samba::ALICE.password.as_bytes()), SASL_OK);
    let lines = Server::any_log_containing("8 strongerAuthRequired");
    assert!(
        lines.iter().any(|l| l.contains("use ldaps:// in sasl_ldapdb_uri or set sasl_ldapdb_starttls: demand")
            && !l.contains("check sasl_ldapdb_id")),
        "{:#?}",
        Server::logs()
    );
}

#[test]
fn a_wrong_service_password_is_invalid_credentials_without_dn_advice_for_a_upn() {
    let dc = Samba::start();
    let h = host(&dc, &dc.ldaps_url(), &[("ldapdb_pw", "not-the-password")]);
    let conn = h.server.new_conn("imap");
    assert_ne!(conn.checkpass(samba::ALICE.upn.as_bytes(), samba::ALICE.password.as_bytes()), SASL_OK);
    let lines = lines_at(SASL_LOG_ERR, "49 invalidCredentials");
    assert!(
        lines.iter().any(|l| l.contains("data 52e") && !l.contains("must be the full DN")),
        "{:#?}",
        Server::logs()
    );
}

#[test]
fn a_certificate_without_subject_alt_name_is_named() {
    let dc = Samba::start_with(SambaOptions { san: false });
    let h = host(&dc, &dc.ldaps_url(), &[]);
    let conn = h.server.new_conn("imap");
    assert_ne!(conn.checkpass(samba::ALICE.upn.as_bytes(), samba::ALICE.password.as_bytes()), SASL_OK);
    let logs = Server::logs();
    assert!(
        logs.iter().any(|(_, l)| l.contains("has no subjectAltName")
            && l.contains("issue one with a subjectAltName for ")
            && l.contains("TLS_REQCERT never")),
        "{logs:#?}"
    );
}

/// The message's second fix works: with `TLS_REQCERT never` in the rc file the SAN-less DC is
/// used (with ldapbind's warning about it at start-up).
#[test]
fn tls_reqcert_never_accepts_the_certificate_without_subject_alt_name() {
    let dc = Samba::start_with(SambaOptions { san: false });
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("ldaprc");
    std::fs::write(&rc, "TLS_REQCERT never\n").unwrap();
    let h = host(&dc, &dc.ldaps_url(), &[("ldapdb_rc", path(&rc)), ("ldapdb_tls_cacert", "")]);
    assert!(!Server::any_log_containing("TLS_REQCERT never/allow").is_empty(), "{:#?}", Server::syslog_logs());
    found_but_not_logged_in(&h, samba::ALICE.upn);
}

/// README.md's Active Directory lines, as written (only paths and the host replaced): the plugin
/// finds the user by account name, UPN and mail and canonicalises to the account name. The
/// password check goes to ldapbind-authd's socket, where no daemon listens in this test, so no
/// login succeeds here.
#[test]
fn the_readme_configuration_canonicalises_every_name_to_the_account_name() {
    let dc = Samba::start();
    let dir = tempfile::tempdir().unwrap();
    let options = samba::readme_options(&samba::readme_config(&dc, dir.path()));
    let mut options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    options.push(("log_level", "5"));
    let plugins = PluginDir::with_ldapbind();
    let server = Server::init(APP, plugins.path(), &options);
    let alice = samba::ALICE;
    for name in [alice.sam, alice.upn, alice.mail.expect("alice has a mail")] {
        let conn = server.new_conn("imap");
        assert_ne!(conn.checkpass(name.as_bytes(), alice.password.as_bytes()), SASL_OK, "no daemon, no login");
        assert_eq!(conn.username().as_deref(), Some(alice.sam), "{name}: {}", conn.errdetail());
    }
    assert!(lines_at(SASL_LOG_ERR, "ldapbind").is_empty(), "{:#?}", Server::logs());
}
