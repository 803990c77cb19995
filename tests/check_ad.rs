//! `ldapbind-check`, the built binary, against a real Active Directory (Samba's AD DC,
//! tests/common/samba.rs): it recognises AD from the root DSE and says so, gives AD's filter, the
//! domain's base from `defaultNamingContext` when none is configured, ldapbind-authd for the
//! passwords AD never returns, and warns that a `userPassword` value on AD is not the account's
//! password (Samba keeps it as an ordinary attribute).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::samba::{self, Samba};

const BIN: &str = env!("CARGO_BIN_EXE_ldapbind-check");

struct Run {
    code: i32,
    out: String,
}

impl Run {
    /// Asserts that `problem  <problem>` is a line of the report, followed by `fix: <fix>`.
    #[track_caller]
    fn problem(&self, problem: &str, fix: &str) {
        let lines: Vec<&str> = self.out.lines().collect();
        let want = format!("  problem  {problem}");
        let Some(i) = lines.iter().position(|l| *l == want) else {
            panic!("no line\n{want}\nin\n{}", self.out);
        };
        assert_eq!(lines.get(i + 1).copied(), Some(format!("           fix: {fix}").as_str()), "{}", self.out);
    }

    #[track_caller]
    fn line(&self, line: &str) {
        assert!(self.out.lines().any(|l| l == line), "no line\n{line}\nin\n{}", self.out);
    }
}

/// `ldapbind-check -o ... USER` for the DC's ldaps:// URL (`uri_tail` appended), bound as the
/// service account, trusting the DC's CA, with `extra` options; the password on stdin if given.
fn check(dc: &Samba, uri_tail: &str, extra: &[(&str, &str)], user: &str, password: Option<&str>) -> Run {
    check_uri(dc, &format!("{}{uri_tail}", dc.ldaps_url()), extra, user, password)
}

/// [`check`] with the whole `sasl_ldapdb_uri`.
fn check_uri(dc: &Samba, uri: &str, extra: &[(&str, &str)], user: &str, password: Option<&str>) -> Run {
    let ca = dc.ca_path();
    let mut opts = vec![
        format!("ldapdb_uri={uri}"),
        format!("ldapdb_id={}", samba::SVC.upn),
        format!("ldapdb_pw={}", samba::SVC.password),
        format!("ldapdb_tls_cacert={}", ca.display()),
        "auxprop_plugin=ldapbind".to_owned(),
        "canon_user_plugin=ldapbind".to_owned(),
    ];
    opts.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    let mut args: Vec<String> = opts.into_iter().flat_map(|o| ["-o".to_owned(), o]).collect();
    if password.is_some() {
        args.push("--password-stdin".to_owned());
    }
    args.push(user.to_owned());
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {BIN}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(p) = password {
        input.write_all(format!("{p}\n").as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Run { code: out.status.code().unwrap_or(-1), out: text }
}

fn base() -> String {
    format!("/{}", samba::BASE_DN)
}

#[test]
fn the_doctor_recognises_ad_and_gives_its_filter_and_ldapbind_authd() {
    let dc = Samba::start();
    let alice = samba::ALICE;
    // The default filter, (|(uid=%u)(mail=%u)), finds nobody by account name on AD.
    let r = check(&dc, &base(), &[], alice.sam, None);
    assert_ne!(r.code, 0, "{}", r.out);
    r.line(&format!(
        "  ok       {}{} is Active Directory (root DSE: supportedCapabilities 1.2.840.113556.1.4.800; domain {})",
        dc.ldaps_url(),
        base(),
        samba::BASE_DN
    ));
    r.problem(
        "sasl_ldapdb_filter is `(|(uid=%u)(mail=%u))`, which looks for none of AD's logon names (AD accounts have no uid)",
        "set `sasl_ldapdb_filter: (|(sAMAccountName=%U)(userPrincipalName=%u))` (add (mail=%u) to log in by mail too)",
    );
    r.problem(
        &format!("no entry matches (|(uid={0})(mail={0})) under {1}", alice.sam, samba::BASE_DN),
        "AD finds accounts by sAMAccountName or userPrincipalName: `sasl_ldapdb_filter: \
         (|(sAMAccountName=%U)(userPrincipalName=%u))` under the domain's base",
    );
    r.problem(
        "Active Directory never returns an account's password (unicodePwd cannot be read), so pwcheck_method \
         auxprop checks no AD password and CRAM-MD5, DIGEST-MD5 and SCRAM cannot work",
        "for PLAIN and LOGIN run ldapbind-authd (it binds as the user) and set `sasl_pwcheck_method: saslauthd` \
         and `sasl_saslauthd_path: /run/ldapbind-authd/mux`",
    );
    r.line("  note     with `sasl_ldapdb_canon_attr: sAMAccountName` (and canon_user_plugin ldapbind) a login by UPN or mail becomes the account name");

    // AD's filter and canonical name: found by UPN, canonicalised to the account name, and the
    // typed password checked by a bind as the user.
    let good = [
        ("ldapdb_filter", ldapbind::ad::FILTER),
        ("ldapdb_canon_attr", "sAMAccountName"),
        ("pwcheck_method", "saslauthd"),
    ];
    let r = check(&dc, &base(), &good, alice.upn, Some(alice.password));
    r.line(&format!("  ok       1 entry: {}", alice.dn));
    r.line(&format!("  ok       {} (the sAMAccountName of {}; sasl_canon_user_plugin: ldapbind)", alice.sam, alice.dn));
    r.line(&format!(
        "  ok       Active Directory accepted the password in a bind as {} (PLAIN/LOGIN through ldapbind-authd)",
        alice.dn
    ));
    assert!(!r.out.contains("sasl_ldapdb_filter is `"), "{}", r.out);
    r.line("  note     no password: Active Directory returns none; PLAIN and LOGIN go to saslauthd");

    // Found, with pwcheck_method auxprop: never "give the entry a userPassword".
    let r = check(&dc, &base(), &good[..2], alice.upn, None);
    r.problem(
        "no password: Active Directory returns none, so pwcheck_method auxprop logs nobody in",
        "check PLAIN/LOGIN passwords through ldapbind-authd (see Active Directory)",
    );
    assert!(!r.out.contains("give the entry a userPassword"), "{}", r.out);
}

#[test]
fn a_userpassword_on_ad_is_not_the_accounts_password() {
    let dc = Samba::start();
    let alice = samba::ALICE;
    // What the old doctor advised: give the entry a cleartext userPassword. Samba stores it as an
    // ordinary attribute, unrelated to the account's password.
    dc.modify(&format!("dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: Stale-Pw-1!\n", alice.dn));
    let opts = [("ldapdb_filter", ldapbind::ad::FILTER), ("ldapdb_canon_attr", "sAMAccountName")];
    let r = check(&dc, &base(), &opts, alice.sam, Some("Stale-Pw-1!"));
    assert_ne!(r.code, 0, "{}", r.out);
    r.problem(
        "the entry has a userPassword value: on Active Directory (Samba's too) that is an ordinary attribute, \
         readable by other accounts and unrelated to the account's password (it does not change when the \
         password does), so checking logins against it lets the wrong password in",
        "delete that userPassword value from the entry, and check PLAIN/LOGIN passwords through ldapbind-authd",
    );
    // The stale value is no password: AD itself is asked.
    r.problem(
        &format!("Active Directory refused a bind as {} with this password (49 invalidCredentials)", alice.dn),
        "check the password, and that the account is enabled, not locked out and not expired",
    );
    assert!(!r.out.contains("the password matches the cleartext userPassword"), "{}", r.out);
    for mech in ["PLAIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        let row = r.out.lines().find(|l| l.starts_with(&format!("  {mech} "))).unwrap_or_else(|| panic!("{}", r.out));
        assert!(!row.contains(" works "), "{row}\n{}", r.out);
    }
    assert!(!r.out.contains("can log in with"), "{}", r.out);
    // The account's real password is accepted by AD.
    let r = check(&dc, &base(), &opts, alice.sam, Some(alice.password));
    r.line(&format!(
        "  ok       Active Directory accepted the password in a bind as {} (PLAIN/LOGIN through ldapbind-authd)",
        alice.dn
    ));
}

#[test]
fn with_no_base_dn_the_fix_is_the_domains_default_naming_context() {
    let dc = Samba::start();
    let r = check(&dc, "", &[], samba::ALICE.sam, None);
    assert_ne!(r.code, 0, "{}", r.out);
    r.problem(
        &format!(
            "no search base: neither sasl_ldapdb_uri nor sasl_ldapdb_search_base names one; {} is Active \
             Directory, and its root DSE names its naming context {} (defaultNamingContext)",
            dc.ldaps_url(),
            samba::BASE_DN
        ),
        &format!("set `sasl_ldapdb_search_base: {0}`, or add it to the URL ({1}/{0})", samba::BASE_DN, dc.ldaps_url()),
    );
    assert!(!r.out.contains("glauth"), "{}", r.out);
}

/// README.md's Active Directory lines, as an imapd.conf: no problem, AD recognised, the user found
/// by mail and canonicalised, the password accepted by AD in a bind as the user.
#[test]
fn the_readme_configuration_has_no_problem() {
    let dc = Samba::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("imapd.conf");
    std::fs::write(&conf, samba::readme_config(&dc, dir.path())).unwrap();
    // As the README says for imapd: the service password file belongs to cyrus.
    let cyrus = Command::new("id").args(["-u", "cyrus"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&cyrus.stdout).trim().parse().expect("a user cyrus");
    std::os::unix::fs::chown(dir.path().join("svc-cyrus.pw"), Some(uid), None).unwrap();
    let alice = samba::ALICE;
    let mut child = Command::new(BIN)
        .args(["-C", conf.to_str().unwrap(), "--password-stdin", alice.mail.unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{}\n", alice.password).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let r = Run { code: out.status.code().unwrap_or(-1), out: String::from_utf8_lossy(&out.stdout).into_owned() };
    assert!(!r.out.contains("  problem  "), "{}", r.out);
    r.line(&format!(
        "  ok       {}/{} is Active Directory (root DSE: supportedCapabilities 1.2.840.113556.1.4.800; domain {})",
        dc.ldaps_url(),
        samba::BASE_DN,
        samba::BASE_DN
    ));
    r.line(&format!("  ok       {} (the sAMAccountName of {}; sasl_canon_user_plugin: ldapbind)", alice.sam, alice.dn));
    r.line(&format!(
        "  ok       Active Directory accepted the password in a bind as {} (PLAIN/LOGIN through ldapbind-authd)",
        alice.dn
    ));
}

/// A simple bind over plain ldap:// is refused by AD with strongerAuthRequired: the doctor says
/// ldaps:// or StartTLS, never "check sasl_ldapdb_id and sasl_ldapdb_pw".
#[test]
fn plain_ldap_is_diagnosed_as_needing_tls() {
    let dc = Samba::start();
    let r = check_uri(&dc, &format!("{}/{}", dc.ldap_url(), samba::BASE_DN), &[], samba::ALICE.sam, None);
    assert_ne!(r.code, 0, "{}", r.out);
    r.problem(
        &format!(
            "LDAP server {}:389 refused the bind (8 strongerAuthRequired: BindSimple: Transport encryption required.)",
            dc.ip()
        ),
        "it accepts a password only over an encrypted connection: use ldaps:// in sasl_ldapdb_uri or set \
         sasl_ldapdb_starttls: demand",
    );
    assert!(!r.out.contains("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{}", r.out);
}
