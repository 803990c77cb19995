//! Account state (issue 16) against a real slapd, through real libsasl2 with the built plugin
//! (one libsasl2 per process: cargo nextest): OpenLDAP's ppolicy overlay with a locked and a
//! must-change user, and entries carrying 389-ds, Active Directory, glauth and posix state
//! attributes. A locked, disabled or expired account never logs in, with a FAIL line naming the
//! state and the attribute; the same users with nothing against them do.

mod common;

use common::sasl::{self, PluginDir, SASL_LOG_FAIL, SASL_OK, Server};
use common::slapd::{self, Slapd, SlapdOptions};

const APP: &str = "ldapbind-test";
const MECHS: [&str; 6] = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];
/// `SASL_EXPIRED` and `SASL_DISABLED` (sasl.h).
const SASL_EXPIRED: i32 = -18;
const SASL_DISABLED: i32 = -19;

fn server(slapd: &Slapd, extra: &[(&str, &str)]) -> (PluginDir, Server) {
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
    options.extend_from_slice(extra);
    let dir = PluginDir::with_ldapbind();
    let server = Server::init(APP, dir.path(), &options);
    (dir, server)
}

fn fail_lines(needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == SASL_LOG_FAIL && m.contains(needle)).map(|(_, m)| m).collect()
}

/// `user` with `pw` is refused with `code` by checkpass, and by every mechanism, with a FAIL
/// line holding `needle`.
#[track_caller]
fn refused(server: &Server, user: &str, pw: &str, code: i32, needle: &str) {
    Server::clear_logs();
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(user.as_bytes(), pw.as_bytes()), code, "checkpass {user}: {}", conn.errdetail());
    for mech in MECHS {
        let r = sasl::exchange(server, mech, user, None, pw);
        assert_ne!(r.code, SASL_OK, "{mech} logged {user} in");
    }
    let lines = fail_lines(needle);
    assert!(!lines.is_empty(), "no FAIL line with {needle:?}: {:#?}", Server::logs());
    assert!(lines.iter().all(|l| !l.contains(pw)), "the password is in a line: {lines:?}");
}

#[track_caller]
fn logs_in(server: &Server, user: &str, pw: &str) {
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(user.as_bytes(), pw.as_bytes()), SASL_OK, "checkpass {user}: {}", conn.errdetail());
    for mech in MECHS {
        let r = sasl::exchange(server, mech, user, None, pw);
        assert_eq!(r.code, SASL_OK, "{mech} as {user}: {} / {:#?}", r.errdetail, Server::logs());
    }
}

fn with_ppolicy() -> Slapd {
    Slapd::start_with(SlapdOptions { ppolicy: true, ..Default::default() })
}

#[test]
fn ppolicy_locked_and_must_change_users_never_log_in() {
    let slapd = with_ppolicy();
    let (_dir, server) = server(&slapd, &[]);
    let (locked, reset) = (slapd::PP_LOCKED, slapd::PP_RESET);
    refused(&server, locked.uid, locked.pw(), SASL_DISABLED, "is locked: pwdAccountLockedTime is 000001010000Z");
    refused(&server, reset.mail, reset.pw(), SASL_EXPIRED, "must change its password (it was reset): pwdReset is TRUE");
    refused(
        &server,
        locked.mail,
        locked.pw(),
        SASL_DISABLED,
        &format!("user {} ({}) is locked", locked.mail, locked.dn),
    );
    // The overlay's presence changes nothing for a user it has nothing against.
    logs_in(&server, slapd::JOHNDOE.uid, slapd::JOHNDOE.pw());
}

#[test]
fn an_expired_password_logs_in_when_allowed_and_a_locked_account_still_does_not() {
    let slapd = with_ppolicy();
    let (_dir, server) = server(&slapd, &[("ldapdb_allow_expired_password", "yes")]);
    logs_in(&server, slapd::PP_RESET.uid, slapd::PP_RESET.pw());
    let locked = slapd::PP_LOCKED;
    refused(&server, locked.uid, locked.pw(), SASL_DISABLED, "pwdAccountLockedTime");
}

#[test]
fn each_directorys_words_for_a_refused_account_are_heard() {
    let slapd =
        Slapd::start_with(SlapdOptions { extra_ldif: Some(slapd::ACCOUNT_STATE_LDIF.into()), ..Default::default() });
    let (_dir, server) = server(&slapd, &[]);
    for (uid, attr) in slapd::ACCOUNT_STATE_USERS {
        let code = if attr == "passwordExpirationTime" { SASL_EXPIRED } else { SASL_DISABLED };
        refused(&server, uid, &format!("{uid}-pw"), code, &format!("cn={uid},{}) ", slapd::USERS_DN));
        assert!(!fail_lines(&format!(": {attr} is ")).is_empty(), "{uid}: {:#?}", Server::logs());
    }
    logs_in(&server, slapd::STATE_FINE, &format!("{}-pw", slapd::STATE_FINE));
}
