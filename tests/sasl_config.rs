//! ldapbind loaded by real libsasl2 (plugin dir with the built .so and the system mechanisms):
//! the one-line diagnostics for the seed's configuration mistakes, and silence when ldapbind is
//! installed but not used. One libsasl2 per process: run with cargo nextest.

mod common;

use common::sasl::{
    PluginDir, SASL_CONFIGERR, SASL_LOG_DEBUG, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_LOG_NOTE, SASL_LOG_WARN, SASL_NOUSER,
    SASL_OK, Server,
};

const APP: &str = "ldapbind-config";

/// Every line libsasl2 passed on, from the callback and (for init-time lines, which libsasl2
/// logs without a connection) from syslog.
fn all_lines() -> Vec<(i32, String)> {
    let mut lines = Server::logs();
    // syslog lines carry the syslog priority libsasl2 mapped the SASL level to.
    lines.extend(Server::syslog_logs().into_iter().map(|(prio, m)| {
        let level = match prio {
            0..=3 => SASL_LOG_ERR,
            4 => SASL_LOG_WARN,
            5 | 6 => SASL_LOG_NOTE,
            _ => SASL_LOG_DEBUG,
        };
        (level, m)
    }));
    lines
}

fn ldapbind_lines() -> Vec<(i32, String)> {
    all_lines().into_iter().filter(|(_, m)| m.contains("ldapbind")).collect()
}

fn init(options: &[(&str, &str)]) -> (PluginDir, Server) {
    let dir = PluginDir::with_ldapbind();
    let server = Server::init(APP, dir.path(), options);
    (dir, server)
}

#[test]
fn missing_uri_while_selected_is_one_err_line_and_every_call_fails_with_it() {
    let (_dir, server) = init(&[("auxprop_plugin", "ldapbind"), ("pwcheck_method", "auxprop"), ("log_level", "7")]);
    let errs: Vec<_> = ldapbind_lines().into_iter().filter(|(l, _)| *l == SASL_LOG_ERR).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].1.contains("sasl_ldapdb_uri is not set"), "{errs:#?}");
    assert!(errs[0].1.contains("ldap://"), "the fix is shown: {errs:#?}");

    Server::clear_logs();
    let conn = server.new_conn("imap");
    let rc = conn.checkpass(b"jdoe@example.com", b"dogood");
    assert_ne!(rc, SASL_OK);
    // A mechanism's failure carries the same text to sasl_errdetail (checkpass replaces it
    // with its own "checkpass failed").
    let r = common::sasl::exchange(&server, "CRAM-MD5", "jdoe@example.com", None, "dogood");
    assert_ne!(r.code, SASL_OK);
    assert!(r.errdetail.contains("ldapbind: sasl_ldapdb_uri is not set"), "{}", r.errdetail);
    // Said at ERR by init; each refused login repeats it at FAIL.
    let lines = ldapbind_lines();
    assert!(lines.iter().any(|(l, m)| *l == SASL_LOG_FAIL && m.contains("sasl_ldapdb_uri is not set")), "{lines:#?}");
    assert!(!lines.iter().any(|(l, _)| *l == SASL_LOG_ERR), "{lines:#?}");
    assert!(!lines.iter().any(|(_, m)| m.contains("generic failure")));
}

#[test]
fn the_seeds_percent_44_gets_the_comma_hint() {
    let (_dir, _server) = init(&[
        ("auxprop_plugin", "ldapbind"),
        ("log_level", "7"),
        ("ldapdb_uri", "ldap://glauth:3893/dc=users%44dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
    ]);
    let lines = ldapbind_lines();
    let hint: Vec<_> = lines.iter().filter(|(_, m)| m.contains("%44") && m.contains("%2C")).collect();
    assert_eq!(hint.len(), 1, "{lines:#?}");
    assert!(hint[0].0 <= SASL_LOG_WARN);
    assert!(hint[0].1.contains("sasl_ldapdb_uri"), "{hint:#?}");
}

#[test]
fn a_malformed_uri_is_refused_with_the_reason() {
    let (_dir, server) = init(&[
        ("auxprop_plugin", "ldapbind"),
        ("ldapdb_uri", "ldap://glauth:38x93/dc=users,dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
    ]);
    let errs: Vec<_> = ldapbind_lines().into_iter().filter(|(l, _)| *l == SASL_LOG_ERR).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].1.contains("sasl_ldapdb_uri") && errs[0].1.contains("port"), "{errs:#?}");
    // A login fails with SASL_CONFIGERR, and sasl_errdetail carries the logged text after a
    // mechanism's lookup (sasl_checkpass replaces it with its own "checkpass failed").
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(b"jdoe", b"dogood"), SASL_CONFIGERR, "{}", conn.errdetail());
    for mech in ["PLAIN", "CRAM-MD5"] {
        let r = common::sasl::exchange(&server, mech, "jdoe", None, "dogood");
        assert_eq!(r.code, SASL_CONFIGERR, "{mech}: {}", r.errdetail);
        assert!(r.errdetail.contains(&errs[0].1), "{mech}: errdetail {:?}\nlogged {:?}", r.errdetail, errs[0].1);
    }
}

#[test]
fn ldapdbs_digest_md5_service_bind_is_explained() {
    let (_dir, _server) = init(&[
        ("auxprop_plugin", "ldapbind"),
        ("ldapdb_uri", "ldap://glauth:3893/dc=users,dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
        ("ldapdb_mech", "DIGEST-MD5"),
    ]);
    let errs: Vec<_> = ldapbind_lines().into_iter().filter(|(l, _)| *l == SASL_LOG_ERR).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let m = &errs[0].1;
    assert!(m.contains("sasl_ldapdb_mech") && m.contains("DIGEST-MD5") && m.contains("sasl_ldapdb_id"), "{m}");
}

#[test]
fn unselected_and_unconfigured_is_silent() {
    let (_dir, server) = init(&[("log_level", "7"), ("auxprop_plugin", "sasldb"), ("pwcheck_method", "auxprop")]);
    assert_eq!(ldapbind_lines(), Vec::<(i32, String)>::new());
    let conn = server.new_conn("imap");
    // sasldb has no such user; ldapbind must not chime in.
    assert_eq!(conn.checkpass(b"nobody", b"x"), SASL_NOUSER);
    assert_eq!(ldapbind_lines(), Vec::<(i32, String)>::new());
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn options_are_asked_for_with_the_plugin_name() {
    let threads_before = threads();
    let (_dir, _server) = init(&[("auxprop_plugin", "ldapbind"), ("ldapdb_uri", "ldap://127.0.0.1:9/dc=x")]);
    assert_eq!(threads(), threads_before, "init must not start a thread");
    let asked = Server::getopt_queries();
    assert!(asked.iter().any(|(p, o)| p.as_deref() == Some("ldapbind") && o == "ldapdb_uri"), "{asked:?}");
    assert!(asked.iter().any(|(p, o)| p.is_none() && o == "auxprop_plugin"), "{asked:?}");
    // Loading opened nothing: no socket in this process.
    let sockets = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count();
    assert_eq!(sockets, 0, "init must not connect");
}

#[test]
fn a_canon_attr_without_the_canon_plugin_is_pointed_out() {
    let (_dir, _server) = init(&[
        ("auxprop_plugin", "ldapbind"),
        ("log_level", "3"),
        ("ldapdb_uri", "ldap://127.0.0.1:3893/dc=users,dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
        ("ldapdb_canon_attr", "mail"),
    ]);
    let lines: Vec<_> = ldapbind_lines().into_iter().filter(|(_, m)| m.contains("sasl_ldapdb_canon_attr")).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0].0, SASL_LOG_WARN);
    assert!(lines[0].1.contains("sasl_canon_user_plugin: ldapbind"), "{lines:#?}");
    // The value ldapbind-check renders too (tests/check_cli.rs), in the same words.
    let said = ldapbind::state::SelectionWarning::CanonByOtherPlugin { attr: "mail".into(), plugin: None };
    assert_eq!(lines[0].1, format!("ldapbind: {said}"));
}

/// The ERR lines ldapbind logged at init, after an init with `options` and the minimal others.
fn init_errors(options: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec![
        ("auxprop_plugin", "ldapbind"),
        ("ldapdb_uri", "ldap://127.0.0.1:3893/dc=users,dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
    ];
    all.extend_from_slice(options);
    let (_dir, server) = init(&all);
    let errs: Vec<String> = ldapbind_lines().into_iter().filter(|(l, _)| *l == SASL_LOG_ERR).map(|(_, m)| m).collect();
    // Every later call fails with the same line.
    let conn = server.new_conn("imap");
    assert_ne!(conn.checkpass(b"jdoe", b"dogood"), SASL_OK);
    errs
}

#[test]
fn a_filter_nested_50000_deep_is_refused_at_init_without_a_crash() {
    // 50,000 levels (150 KB): this overflowed the stack in the filter parser (SIGSEGV inside
    // sasl_server_init). Now init returns and logs why.
    let huge = format!("{}(uid=%u){}", "(&".repeat(50_000), ")".repeat(50_000));
    let errs = init_errors(&[("ldapdb_filter", &huge)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0]
            .contains(&format!("sasl_ldapdb_filter is {} bytes long, more than the 4096 ldapbind accepts", huge.len())),
        "{errs:#?}"
    );
    assert!(errs[0].len() < 1000, "the template is not quoted: {} bytes", errs[0].len());
}

#[test]
fn a_filter_nested_too_deep_within_the_size_bound_is_refused_at_init() {
    let deep = format!("{}(uid=%u){}", "(&".repeat(1300), ")".repeat(1300));
    let errs = init_errors(&[("ldapdb_filter", &deep)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("sasl_ldapdb_filter: parentheses are nested 1301 deep, more than the 32"), "{errs:#?}");
}

fn refused_canon_attr(attr: &str, map: &str, via: &str) {
    let errs = init_errors(&[("canon_user_plugin", "ldapbind"), ("ldapdb_canon_attr", attr), ("ldapdb_attr_map", map)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(&format!(
            "sasl_ldapdb_canon_attr: `{attr}` holds passwords{via}, so a user's password would become the user name"
        )),
        "{errs:#?}"
    );
}

#[test]
fn user_password_as_canon_attr_is_refused_at_init() {
    refused_canon_attr("userPassword", "", "");
}

#[test]
fn the_attribute_attr_map_reads_passwords_from_is_refused_as_canon_attr_at_init() {
    refused_canon_attr("x-hash", "userPassword=x-hash", " (sasl_ldapdb_attr_map reads userPassword from it)");
}

#[test]
fn numeric_oids_are_refused_at_init_with_the_name_to_write() {
    let errs = init_errors(&[
        ("canon_user_plugin", "ldapbind"),
        ("ldapdb_canon_attr", "2.5.4.3"),
        ("ldapdb_attr_map", "authPassword=1.3.6.1.4.1.4203.1.3.4"),
    ]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[1].contains(
            "sasl_ldapdb_canon_attr: `2.5.4.3` is the numeric OID of an attribute, but LDAP servers return \
             attributes by name, so ldapbind would never find its values; write `sasl_ldapdb_canon_attr: cn`"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[0].contains("sasl_ldapdb_attr_map: `authPassword=1.3.6.1.4.1.4203.1.3.4` is the numeric OID"),
        "{errs:#?}"
    );
    assert!(errs[0].contains("remove the entry (ldapbind reads authPassword as authPassword without it)"), "{errs:#?}");
}
