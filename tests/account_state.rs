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
    for (k, v) in extra {
        options.retain(|(key, _)| key != k);
        options.push((k, v));
    }
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

/// The service account `dn` under the policy is refused with a line that says `says` and `fix`,
/// never "check sasl_ldapdb_pw".
fn service_account_refused(dn: &str, says: &str, fix: &str) {
    let slapd = with_ppolicy();
    let john = slapd::JOHNDOE;
    let (_dir, server) = server(&slapd, &[("ldapdb_id", dn)]);
    let conn = server.new_conn("imap");
    assert_ne!(conn.checkpass(john.uid.as_bytes(), john.pw().as_bytes()), SASL_OK);
    let want = format!("the service account {dn} (sasl_ldapdb_id) {says}");
    let lines: Vec<String> = Server::logs()
        .into_iter()
        .filter(|(l, m)| *l == sasl::SASL_LOG_ERR && m.contains(&want))
        .map(|(_, m)| m)
        .collect();
    assert!(!lines.is_empty(), "no ERR line with {want:?}: {:#?}", Server::logs());
    assert!(lines[0].contains(fix) && !lines[0].contains("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{lines:?}");
}

#[test]
fn a_locked_service_account_gets_the_policy_fix() {
    service_account_refused(slapd::SERVICE_LOCKED_DN, "is locked", "exempt it from the password policy");
}

#[test]
fn a_reset_service_account_is_no_bind_and_gets_the_policy_fix() {
    service_account_refused(
        slapd::SERVICE_RESET_DN,
        "must change its password",
        "set a new password for it in the directory",
    );
}

// ---- ldapbind-check ---------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_ldapbind-check");

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    #[track_caller]
    fn line(&self, line: &str) {
        assert!(self.out.lines().any(|l| l == line), "no line\n{line}\nin\n{}{}", self.out, self.err);
    }
    #[track_caller]
    fn line_starting(&self, start: &str) -> String {
        let found = self.out.lines().find(|l| l.starts_with(start));
        found.unwrap_or_else(|| panic!("no line starting\n{start}\nin\n{}{}", self.out, self.err)).to_owned()
    }
}

/// `ldapbind-check -C good.conf [--password-stdin] USER` against `slapd`.
fn doctor(slapd: &Slapd, user: &str, password: Option<&str>) -> Run {
    doctor_with(slapd, user, password, &[])
}

/// [`doctor`] with more arguments (`-o key=value`).
fn doctor_with(slapd: &Slapd, user: &str, password: Option<&str>, extra: &[&str]) -> Run {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check/good.conf");
    let conf = dir.path().join("imapd.conf");
    std::fs::write(&conf, std::fs::read_to_string(src).unwrap().replace("@URL@", &slapd.url())).unwrap();
    let mut args = vec!["-C", conf.to_str().unwrap()];
    args.extend_from_slice(extra);
    if password.is_some() {
        args.push("--password-stdin");
    }
    args.push(user);
    let mut child = std::process::Command::new(BIN)
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(pw) = password {
        stdin.write_all(format!("{pw}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8(out.stdout).unwrap(),
        err: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn the_doctor_shows_the_account_state_and_never_calls_a_locked_account_loggable() {
    let slapd = with_ppolicy();
    let locked = slapd::PP_LOCKED;
    let r = doctor(&slapd, locked.uid, Some(locked.pw()));
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.line("  problem  locked: pwdAccountLockedTime is 000001010000Z (OpenLDAP ppolicy: locked by an administrator until unlocked)");
    r.line("           fix: enable the account in the directory if the user should log in");
    r.line_starting("  skipped  not checked: the account is locked: pwdAccountLockedTime is 000001010000Z");
    r.line_starting(&format!("result: {} cannot log in through ldapbind", locked.uid));
    for mech in MECHS {
        let row = r.line_starting(&format!("  {mech:<14} no        ldapbind refuses the account: it is locked"));
        assert!(row.contains("pwdAccountLockedTime"), "{row}");
    }
    assert!(!r.err.contains("binding as"), "no bind for a refused account: {}", r.err);

    let john = slapd::JOHNDOE;
    let r = doctor(&slapd, john.uid, Some(john.pw()));
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.line_starting("  ok       usable: none of pwdAccountLockedTime, pwdReset, nsAccountLock,");
}

#[test]
fn the_doctor_names_each_directorys_words() {
    let slapd =
        Slapd::start_with(SlapdOptions { extra_ldif: Some(slapd::ACCOUNT_STATE_LDIF.into()), ..Default::default() });
    for (uid, attr) in slapd::ACCOUNT_STATE_USERS {
        let r = doctor(&slapd, uid, None);
        assert_eq!(r.code, 1, "{uid}: {}{}", r.out, r.err);
        assert!(r.line_starting("  problem  ").contains(&format!(": {attr} is ")), "{uid}: {}", r.out);
    }
    let r = doctor(&slapd, slapd::STATE_FINE, None);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

/// Hashed passwords are checked by a bind, and the hashed users' state is hidden from the
/// service account: only the server's answer to the bind tells.
#[test]
fn the_doctor_hears_the_bind_refuse_a_locked_or_reset_account() {
    let slapd = with_ppolicy();
    let port = slapd.port();
    let locked = slapd::PP_LOCKED_HASHED;
    let r = doctor(&slapd, locked.uid, Some(locked.pw()));
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.line_starting("  ok       usable: ");
    r.line(&format!(
        "  problem  locked: the account {} is locked (LDAP server 127.0.0.1:{port} answered the bind as it with \
         result 49, password policy control 1.3.6.1.4.1.42.2.27.8.5.1 error accountLocked)",
        locked.dn
    ));
    r.line("           fix: enable the account in the directory if the user should log in");
    assert!(r.err.contains(&format!("binding as {}", locked.dn)) && r.err.contains("lockout"), "{}", r.err);

    let reset = slapd::PP_RESET_HASHED;
    let r = doctor(&slapd, reset.uid, Some(reset.pw()));
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let line = r.line_starting("  problem  must change password: the account ");
    assert!(line.contains("result 0, password policy control") && line.contains("changeAfterReset"), "{line}");
    // The bind succeeded, only for a password change: the allowance lets it count as right.
    let r = doctor_with(&slapd, reset.uid, Some(reset.pw()), &["-o", "ldapdb_allow_expired_password=yes"]);
    r.line_starting(&format!(
        "  problem  right password, but libsasl2 cannot check this hash ({{SSHA}}) through auxprop (a bind as {}",
        reset.dn
    ));

    // A wrong password is still a wrong password, and the warning came before the bind.
    let r = doctor(&slapd, slapd::SSHA_USER.uid, Some("wrong"));
    r.line_starting("  problem  wrong password: the directory refused a bind as");
    assert!(r.err.contains("counts as a failed login"), "{}", r.err);
}

/// Three wrong binds (the policy's pwdMaxFailure) lock the account out; from then on the right
/// password no longer logs in through ldapbind either, which never binds as the user.
#[test]
fn a_ppolicy_lockout_after_failed_binds_refuses_the_login() {
    let slapd = with_ppolicy();
    let (_dir, server) = server(&slapd, &[]);
    let alice = slapd::ALICE;
    logs_in(&server, alice.uid, alice.pw());
    for _ in 0..3 {
        let mut conn = slapd.connect();
        assert_eq!(conn.with_timeout(slapd::OP_TIMEOUT).simple_bind(alice.dn, "wrong").unwrap().rc, 49);
    }
    refused(
        &server,
        alice.uid,
        alice.pw(),
        SASL_DISABLED,
        "is locked out after failed password attempts: pwdAccountLockedTime is 20",
    );
}
