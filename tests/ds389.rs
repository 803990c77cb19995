//! Account state against a real 389 Directory Server (tests/common/ds389.rs), the directory the
//! issue was found on: cleartext passwords (`passwordStorageScheme: CLEAR`, the only setup in
//! which the auxprop path works there), a global password policy with expiry, lockout and
//! must-change, and users that are locked (`nsAccountLock`), expired, must change, and locked out
//! after failed binds; service accounts in the same four states. Through real libsasl2 (one per
//! process: cargo nextest) and `ldapbind-check`; and 389-ds as created (hashed passwords, no ACI
//! for the service account) through `ldapbind-check`. Each test creates its own instance (~12 s).

mod common;

use std::collections::HashSet;

use common::ds389::{self, Ds389, SUFFIX};
use common::sasl::{self, PluginDir, SASL_LOG_FAIL, SASL_OK, Server};
use common::sasl2127::Host2127;
use ldap3::{LdapConn, LdapConnSettings, Mod};

const MECHS: [&str; 6] = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];
const SASL_EXPIRED: i32 = -18;
const SASL_DISABLED: i32 = -19;
const SERVICE: &str = "cn=cyrus,dc=example,dc=com";
const SERVICE_LOCKED: &str = "cn=cyrus-locked,dc=example,dc=com";
const SERVICE_RESET: &str = "cn=cyrus-reset,dc=example,dc=com";
const SERVICE_EXPIRED: &str = "cn=cyrus-expired,dc=example,dc=com";
const SERVICE_LOCKOUT: &str = "cn=cyrus-lockout,dc=example,dc=com";
const SERVICE_PW: &str = "cyrus";
/// Users under ou=people; each one's password is `<uid>-pw`.
const FINE: &str = "alice";
const LOCKED: &str = "locked";
const EXPIRED: &str = "expired";
const RESET: &str = "reset";
const LOCKOUT: &str = "lockout";

fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

fn set(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn replace(dm: &mut LdapConn, dn: &str, attr: &str, value: &str) {
    dm.modify(dn, vec![Mod::Replace(attr.to_owned(), set(&[value]))])
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("modify {dn} {attr}: {e}"));
}

fn add(dm: &mut LdapConn, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
    let attrs: Vec<(String, HashSet<String>)> = attrs.into_iter().map(|(a, v)| (a.to_owned(), set(&v))).collect();
    dm.add(dn, attrs).and_then(|r| r.success()).unwrap_or_else(|e| panic!("add {dn}: {e}"));
}

fn state_of(dm: &mut LdapConn, dn: &str, attr: &str) -> Vec<String> {
    let (entries, _) = dm
        .search(dn, ldap3::Scope::Base, "(objectClass=*)", vec![attr])
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("read {dn}: {e}"));
    let entry = ldap3::SearchEntry::construct(entries.into_iter().next().expect("the entry"));
    entry.attrs.get(attr).cloned().unwrap_or_default()
}

/// The default ACIs are absent (no sample entries): an ACI lets the service account read the
/// users, their passwords and the operational state attributes.
fn grant_service_account(dm: &mut LdapConn) {
    let aci = |targets: &str, name: &str| {
        format!(
            "(targetattr=\"{targets}\")(version 3.0; acl \"{name}\"; allow (read, search, compare) \
             userdn=\"ldap:///{SERVICE}\";)"
        )
    };
    let all = aci("*", "ldapbind service account");
    let state = aci("nsAccountLock || passwordExpirationTime || accountUnlockTime", "ldapbind account state");
    replace(dm, SUFFIX, "aci", &all);
    dm.modify(SUFFIX, vec![Mod::Add("aci".to_owned(), set(&[&state]))]).unwrap().success().unwrap();
}

/// The instance, with the policy, the users and the service accounts in their states.
fn start() -> Ds389 {
    start_storing("CLEAR")
}

/// [`start`] with `passwordStorageScheme: <scheme>`.
fn start_storing(scheme: &str) -> Ds389 {
    let ds = Ds389::start();
    let mut dm = ds.dm_conn();
    for (attr, value) in [
        ("passwordStorageScheme", scheme),
        ("passwordExp", "on"),
        ("passwordMaxAge", "8640000"),
        ("passwordLockout", "on"),
        ("passwordMaxFailure", "3"),
        ("passwordGraceLimit", "0"),
    ] {
        replace(&mut dm, "cn=config", attr, value);
    }
    grant_service_account(&mut dm);
    add(
        &mut dm,
        &format!("ou=people,{SUFFIX}"),
        vec![("objectClass", vec!["organizationalUnit"]), ("ou", vec!["people"])],
    );
    for dn in [SERVICE, SERVICE_LOCKED, SERVICE_RESET, SERVICE_EXPIRED, SERVICE_LOCKOUT] {
        let cn = dn.trim_start_matches("cn=").split(',').next().unwrap();
        add(
            &mut dm,
            dn,
            vec![
                ("objectClass", vec!["person"]),
                ("cn", vec![cn]),
                ("sn", vec![cn]),
                ("userPassword", vec![SERVICE_PW]),
            ],
        );
    }
    for uid in [FINE, LOCKED, EXPIRED, RESET, LOCKOUT] {
        let mail = format!("{uid}@example.com");
        let pw = format!("{uid}-pw");
        add(
            &mut dm,
            &user_dn(uid),
            vec![
                ("objectClass", vec!["inetOrgPerson"]),
                ("uid", vec![uid]),
                ("cn", vec![uid]),
                ("sn", vec![uid]),
                ("mail", vec![&mail]),
                ("userPassword", vec![&pw]),
            ],
        );
    }
    replace(&mut dm, &user_dn(LOCKED), "nsAccountLock", "true");
    replace(&mut dm, SERVICE_LOCKED, "nsAccountLock", "true");
    for dn in [user_dn(EXPIRED).as_str(), SERVICE_EXPIRED] {
        replace(&mut dm, dn, "passwordExpirationTime", "20200101000000Z");
    }
    // An administrator's reset under passwordMustChange: 389-ds marks the password with the
    // epoch as its expiration time.
    // The server may apply the policy change a moment later (seen once in a few runs): reset
    // again until the epoch is there.
    replace(&mut dm, "cn=config", "passwordMustChange", "on");
    for (dn, pw) in [(user_dn(RESET), "reset-pw"), (SERVICE_RESET.to_owned(), SERVICE_PW)] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            replace(&mut dm, &dn, "userPassword", pw);
            if state_of(&mut dm, &dn, "passwordExpirationTime") == ["19700101000000Z"] {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "389-ds never marked {dn} as reset");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    // Locked out by failed binds.
    for dn in [user_dn(LOCKOUT).as_str(), SERVICE_LOCKOUT] {
        for _ in 0..3 {
            let mut c = LdapConn::with_settings(LdapConnSettings::new().set_conn_timeout(ds389::OP_TIMEOUT), &ds.url())
                .unwrap();
            assert_ne!(c.simple_bind(dn, "wrong").unwrap().rc, 0);
        }
        assert_eq!(state_of(&mut dm, dn, "accountUnlockTime").len(), 1, "389-ds locked {dn} out");
    }
    ds
}

/// Each refused user, the SASL result of its login and what its FAIL line says after
/// `user <uid> (<dn>) `.
const STATES: [(&str, i32, &str); 4] = [
    (LOCKED, SASL_DISABLED, "is locked: nsAccountLock is true (389-ds: locked by an administrator)"),
    (EXPIRED, SASL_EXPIRED, "has an expired password: passwordExpirationTime is 20200101000000Z"),
    // 389-ds 2.x marks a reset in both words: pwdReset (named first) and the epoch.
    (RESET, SASL_EXPIRED, "must change its password (it was reset): pwdReset is TRUE (password policy"),
    (LOCKOUT, SASL_DISABLED, "is locked out after failed password attempts: accountUnlockTime is "),
];

fn fail_lines(needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == SASL_LOG_FAIL && m.contains(needle)).map(|(_, m)| m).collect()
}

#[test]
fn ds389_account_states_never_log_in_through_libsasl2() {
    let ds = start();
    let uri = format!("{}/{SUFFIX}", ds.url());
    let mech_list = MECHS.join(" ");
    let options: Vec<(&str, &str)> = vec![
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop"),
        ("mech_list", &mech_list),
        ("log_level", "5"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", SERVICE),
        ("ldapdb_pw", SERVICE_PW),
    ];
    let dir = PluginDir::with_ldapbind();
    let server = Server::init("ldapbind-test", dir.path(), &options);
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(b"alice@example.com", b"alice-pw"), SASL_OK, "{}", conn.errdetail());
    for mech in MECHS {
        let r = sasl::exchange(&server, mech, "alice", None, "alice-pw");
        assert_eq!(r.code, SASL_OK, "{mech}: {} / {:#?}", r.errdetail, Server::logs());
    }
    for (uid, code, says) in STATES {
        Server::clear_logs();
        let pw = format!("{uid}-pw");
        let conn = server.new_conn("imap");
        assert_eq!(conn.checkpass(uid.as_bytes(), pw.as_bytes()), code, "{uid}: {}", conn.errdetail());
        for mech in MECHS {
            assert_ne!(sasl::exchange(&server, mech, uid, None, &pw).code, SASL_OK, "{mech} logged {uid} in");
        }
        let want = format!("user {uid} ({}) {says}", user_dn(uid));
        assert!(!fail_lines(&want).is_empty(), "no FAIL line with {want:?}: {:#?}", Server::logs());
    }
}

// ---- libsasl2 2.1.27's auxprop-hashed ----------------------------------------------------------

#[test]
#[ignore = "the libsasl2 2.1.27 host process, run by the tests"]
fn libsasl2_2127_host() {
    common::sasl2127::host_main();
}

/// 389-ds's own hashes ({PBKDF2-SHA512}) checked by a bind as the user through 2.1.27's
/// `auxprop-hashed`: the right password logs in, and each refused account is refused with its
/// state line, whatever its password.
#[test]
fn ds389_hashed_account_states_never_log_in_through_auxprop_hashed_on_2127() {
    let ds = start_storing("PBKDF2-SHA512");
    let stored = state_of(&mut ds.dm_conn(), &user_dn(FINE), "userPassword");
    assert!(stored.iter().all(|v| v.starts_with("{PBKDF2-SHA512}")), "{stored:?}");
    let uri = format!("{}/{SUFFIX}", ds.url());
    let mut host = Host2127::start(&[
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop-hashed"),
        ("log_level", "5"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", SERVICE),
        ("ldapdb_pw", SERVICE_PW),
    ]);
    let r = host.checkpass(FINE, "alice-pw");
    assert_eq!(r.rc, SASL_OK, "{r:?}");
    assert_ne!(host.checkpass(FINE, "wrong").rc, SASL_OK);
    for (uid, code, says) in STATES {
        let r = host.checkpass(uid, &format!("{uid}-pw"));
        assert_eq!(r.rc, code, "{uid}: {r:?}");
        let want = format!("{SASL_LOG_FAIL} ldapbind: user {uid} ({}) {says}", user_dn(uid));
        assert!(r.logs.iter().any(|l| l.starts_with(&want)), "no FAIL line {want:?}: {r:?}");
    }
}

// ---- ldapbind-check ---------------------------------------------------------------------------

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn doctor(ds: &Ds389, id: &str, user: &str, password: Option<&str>) -> Run {
    doctor_with(ds, "auxprop", id, user, password)
}

/// [`doctor`] with `sasl_pwcheck_method: <pwcheck>`.
fn doctor_with(ds: &Ds389, pwcheck: &str, id: &str, user: &str, password: Option<&str>) -> Run {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("imapd.conf");
    std::fs::write(
        &conf,
        format!(
            "sasl_pwcheck_method: {pwcheck}\nsasl_auxprop_plugin: ldapbind\n\
             sasl_mech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256\n\
             sasl_ldapdb_uri: {}/{SUFFIX}\nsasl_ldapdb_id: {id}\nsasl_ldapdb_pw: {SERVICE_PW}\n",
            ds.url()
        ),
    )
    .unwrap();
    let mut args = vec!["-C", conf.to_str().unwrap()];
    if password.is_some() {
        args.push("--password-stdin");
    }
    args.push(user);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ldapbind-check"))
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

impl Run {
    /// The `fix:` line under the first `problem` line that starts with `problem`.
    #[track_caller]
    fn fix_of(&self, problem: &str) -> &str {
        let lines: Vec<&str> = self.out.lines().collect();
        let want = format!("  problem  {problem}");
        let Some(i) = lines.iter().position(|l| l.starts_with(&want)) else {
            panic!("no line starting\n{want}\nin\n{}", self.out);
        };
        let fix = lines.get(i + 1).and_then(|l| l.strip_prefix("           fix: "));
        fix.unwrap_or_else(|| panic!("no fix under {:?} in\n{}", lines[i], self.out))
    }
}

/// The doctor's line that recognises the instance from its root DSE.
const RECOGNISED: &str = " is 389 Directory Server (root DSE: vendorVersion 389-Directory/";

#[test]
fn ds389_doctor_names_the_missing_aci_and_the_daemon_for_hashed_passwords() {
    // 389-ds as created: no ACI for the service account, passwords stored as {PBKDF2-SHA512}.
    let ds = Ds389::start();
    let mut dm = ds.dm_conn();
    add(
        &mut dm,
        SERVICE,
        vec![
            ("objectClass", vec!["person"]),
            ("cn", vec!["cyrus"]),
            ("sn", vec!["cyrus"]),
            ("userPassword", vec![SERVICE_PW]),
        ],
    );
    add(
        &mut dm,
        &format!("ou=people,{SUFFIX}"),
        vec![("objectClass", vec!["organizationalUnit"]), ("ou", vec!["people"])],
    );
    add(
        &mut dm,
        &user_dn(FINE),
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec![FINE]),
            ("cn", vec![FINE]),
            ("sn", vec![FINE]),
            ("mail", vec!["alice@example.com"]),
            ("userPassword", vec!["alice-pw"]),
        ],
    );
    let stored = state_of(&mut dm, &user_dn(FINE), "userPassword");
    assert!(stored.iter().all(|v| v.starts_with("{PBKDF2-SHA512}")), "389-ds's default scheme: {stored:?}");

    // The service account binds but sees nothing: the ACI is named, not the user name.
    let r = doctor(&ds, SERVICE, FINE, None);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.out.lines().any(|l| l.starts_with("  ok       ldap://") && l.contains(RECOGNISED)), "{}", r.out);
    assert!(r.out.contains("389-ds has no authPassword in its schema"), "{}", r.out);
    let fix = r.fix_of(&format!(
        "0 entries: user alice not found: no entry matches (|(uid=alice)(mail=alice)) under {SUFFIX}; the service account {SERVICE} sees no entry below \
         {SUFFIX} (a one-level search for (objectClass=*) there found nothing), so the user name may well be right"
    ));
    let aci = format!(
        "(targetattr=\"uid || mail || userPassword || nsAccountLock || passwordExpirationTime || accountUnlockTime \
         || pwdReset\")(version 3.0; acl \"ldapbind service account\"; allow (read, search, compare) \
         userdn=\"ldap:///{SERVICE}\";)"
    );
    assert_eq!(
        fix,
        format!(
            "an ACI is missing: 389-ds's default ACIs grant the service account {SERVICE} nothing; add one to \
             {SUFFIX} (ldapmodify as cn=Directory Manager), e.g. `aci: {aci}`"
        ),
        "{}",
        r.out
    );
    assert!(!r.out.contains("check the user name"), "{}", r.out);

    // The ACI the doctor showed, as shown: now the user is found, and the hash needs the daemon.
    replace(&mut dm, SUFFIX, "aci", &aci);
    let daemon = "run ldapbind-authd with these options (`ldapbind-authd -C /etc/imapd.conf`; it checks \
                  PLAIN/LOGIN passwords by binding as the user) and set `sasl_pwcheck_method: auxprop saslauthd` \
                  and `sasl_saslauthd_path: /run/ldapbind-authd/mux`; 389-ds checks its own hash and the account's \
                  state at that bind (CRAM-MD5, DIGEST-MD5 and SCRAM would need every password set again under \
                  `passwordStorageScheme: CLEAR`)";
    let r = doctor(&ds, SERVICE, FINE, Some("alice-pw"));
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.out.contains(&format!("  ok       1 entry: {}", user_dn(FINE))), "{}", r.out);
    assert!(r.out.contains("  ok       usable: none of "), "the ACI covers the state attributes: {}", r.out);
    assert_eq!(
        r.fix_of(
            "userPassword is {PBKDF2-SHA512}, a 389-ds hash pwcheck_method auxprop cannot check, and 389-ds has no \
             authPassword; cleartext needs a password policy with `passwordStorageScheme: CLEAR` and every password \
             set again"
        ),
        daemon
    );
    // Every step that advised the daemon says 389-ds's version: no authPassword to store.
    assert_eq!(r.fix_of("userPassword: {PBKDF2-SHA512}: a hash"), daemon);
    assert_eq!(r.fix_of("right password, but libsasl2 cannot check this hash ({PBKDF2-SHA512})"), daemon);
    assert!(!r.out.contains("or an authPassword (RFC 5803 SCRAM)"), "{}", r.out);

    // With the daemon configured, the hash is fine for PLAIN and LOGIN.
    let r = doctor_with(&ds, "auxprop saslauthd", SERVICE, FINE, Some("alice-pw"));
    assert!(
        r.out.contains(
            "  ok       userPassword is {PBKDF2-SHA512}: PLAIN and LOGIN go to saslauthd (sasl_pwcheck_method), \
             which should be ldapbind-authd"
        ),
        "{}",
        r.out
    );
    assert!(!r.out.contains("a 389-ds hash pwcheck_method auxprop cannot check"), "{}", r.out);

    // No anonymous access, the root DSE included: the user's hash still says 389-ds. (A root
    // DSE search that returned no entry once made ldapbind-check panic inside ldap3.)
    replace(&mut dm, "cn=config", "nsslapd-allow-anonymous-access", "off");
    let r = doctor(&ds, SERVICE, FINE, None);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(!r.out.contains(RECOGNISED), "{}", r.out);
    assert!(
        r.out.contains(
            "  ok       the directory is probably 389 Directory Server: the user's userPassword is {PBKDF2-SHA512}, \
             its default scheme (its root DSE could not be read anonymously)"
        ),
        "{}",
        r.out
    );
    assert_eq!(r.fix_of("userPassword is {PBKDF2-SHA512}, a 389-ds hash pwcheck_method auxprop cannot check"), daemon);
}

#[test]
fn ds389_doctor_shows_the_states_and_the_service_accounts_fix() {
    let ds = start();
    let r = doctor(&ds, SERVICE, FINE, Some("alice-pw"));
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.lines().any(|l| l.contains(RECOGNISED)), "{}", r.out);
    assert!(!r.out.contains("a 389-ds hash"), "cleartext (CLEAR) is no hash: {}", r.out);
    assert!(r.out.contains("  ok       usable: none of "), "{}", r.out);
    for (uid, problem) in [
        (LOCKED, "  problem  locked: nsAccountLock is true (389-ds: locked by an administrator)"),
        (EXPIRED, "  problem  password expired: passwordExpirationTime is 20200101000000Z (389-ds: in the past)"),
        (RESET, "  problem  must change password: pwdReset is TRUE (password policy (OpenLDAP ppolicy, 389-ds)"),
        (RESET, "  problem  must change password: passwordExpirationTime is 19700101000000Z (389-ds: reset"),
        (LOCKOUT, "  problem  locked out: accountUnlockTime is "),
    ] {
        let r = doctor(&ds, SERVICE, uid, Some(&format!("{uid}-pw")));
        assert_eq!(r.code, 1, "{uid}: {}{}", r.out, r.err);
        assert!(r.out.lines().any(|l| l.starts_with(problem)), "{uid}: no line {problem:?} in\n{}", r.out);
        assert!(!r.err.contains("binding as"), "{uid}: no bind for a refused account: {}", r.err);
    }
    // The service account: 389-ds's own words kept, the policy's fix given.
    for (id, says, words, fix) in [
        (
            SERVICE_LOCKED,
            "is locked",
            "result 53: Account inactivated. Contact system administrator.",
            "exempt it from the password policy",
        ),
        (SERVICE_RESET, "must change its password", "result 0, password policy control", "set a new password for it"),
        (SERVICE_EXPIRED, "has an expired password", "result 49: password expired!", "set a new password for it"),
        (
            SERVICE_LOCKOUT,
            "is locked out after failed password attempts",
            "result 19: Exceed password retry limit.",
            "exempt it from the password policy",
        ),
    ] {
        let r = doctor(&ds, id, FINE, None);
        assert_eq!(r.code, 1, "{id}: {}{}", r.out, r.err);
        let line = r
            .out
            .lines()
            .find(|l| l.contains(&format!("the service account {id} (sasl_ldapdb_id) {says}")))
            .unwrap_or_else(|| panic!("{id}: no service-account line in\n{}", r.out));
        assert!(line.contains(words), "{line}");
        assert!(r.out.contains(fix) && !r.out.contains("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{}", r.out);
    }
}
