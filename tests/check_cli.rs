//! `ldapbind-check`, the built binary, against the glauth-like test slapd: one fixture per
//! failure the seed's author found in gdb (tests/data/check/), each asserting the exact problem
//! line and the fix on the line after it, plus a working configuration.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::slapd::{self, Slapd};

const BIN: &str = env!("CARGO_BIN_EXE_ldapbind-check");
const MECHS: &str = "PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256";
const NOT_FOUND_FIX: &str = "check the user name; the entry must be under the search base, match \
     sasl_ldapdb_filter and be visible to the service account (set sasl_ldapdb_filter, e.g. \
     (mail=%u), or sasl_ldapdb_search_base if users are found by another attribute or live elsewhere)";

/// One run of the binary.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    /// Asserts that `problem  <problem>` is a line of the report, followed by `fix: <fix>`.
    #[track_caller]
    fn problem(&self, problem: &str, fix: &str) {
        let lines: Vec<&str> = self.out.lines().collect();
        let want = format!("  problem  {problem}");
        let Some(i) = lines.iter().position(|l| *l == want) else {
            panic!("no line\n{want}\nin\n{}{}", self.out, self.err);
        };
        assert_eq!(
            lines.get(i + 1).copied(),
            Some(format!("           fix: {fix}").as_str()),
            "fix of {problem}\n{}",
            self.out
        );
    }

    #[track_caller]
    fn line(&self, line: &str) {
        assert!(self.out.lines().any(|l| l == line), "no line\n{line}\nin\n{}{}", self.out, self.err);
    }

    fn problems(&self) -> usize {
        self.out.lines().filter(|l| l.starts_with("  problem  ")).count()
    }

    #[track_caller]
    fn never_shows(&self, secret: &str) {
        assert!(
            !self.out.contains(secret) && !self.err.contains(secret),
            "{secret} was printed:\n{}{}",
            self.out,
            self.err
        );
    }
}

/// `tests/data/check/<name>` with `@URL@` replaced by the slapd's URL, written into `dir`.
fn fixture(dir: &Path, name: &str, slapd: Option<&Slapd>) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check").join(name);
    let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let text = match slapd {
        Some(s) => text.replace("@URL@", &s.url()),
        None => text,
    };
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {BIN}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8(out.stdout).unwrap(),
        err: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `ldapbind-check -C <fixture> [extra...] USER`, with the password on stdin when given.
fn check(slapd: Option<&Slapd>, name: &str, user: &str, password: Option<&str>, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let conf = fixture(dir.path(), name, slapd);
    let mut args = vec!["-C", conf.to_str().unwrap()];
    args.extend_from_slice(extra);
    if password.is_some() {
        args.push("--password-stdin");
    }
    args.push(user);
    run(&args, password.map(|p| format!("{p}\n")).as_deref())
}

/// The advice for a password libsasl2 cannot check through auxprop: the daemon, never "give the
/// service account read access".
const AUTHD_FIX: &str = "run ldapbind-authd with these options (`ldapbind-authd -C /etc/imapd.conf`; it checks \
     PLAIN/LOGIN passwords by binding as the user) and set `sasl_pwcheck_method: auxprop saslauthd` and \
     `sasl_saslauthd_path: /run/ldapbind-authd/mux`; or store a cleartext userPassword or an authPassword \
     (RFC 5803 SCRAM) readable by the service account";

// ---- a working configuration ------------------------------------------------------------------

#[test]
fn good_config_reports_the_dn_the_canonical_name_and_every_mechanism() {
    let s = Slapd::start();
    let john = slapd::JOHNDOE;
    let r = check(Some(&s), "good.conf", john.mail, Some(john.pw()), &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(r.problems(), 0, "{}", r.out);
    r.line(&format!("  ok       service bind: bound as {}", slapd::SERVICE_DN));
    r.line(&format!("  ok       filter as sent: (|(uid={0})(mail={0}))", john.mail));
    r.line(&format!("  ok       1 entry: {}", john.dn));
    r.line(&format!("  ok       {} (the uid of {}; sasl_canon_user_plugin: ldapbind)", john.uid, john.dn));
    r.line("  ok       userPassword: cleartext");
    r.line("  PLAIN          works     cleartext userPassword, compared by pwcheck_method auxprop");
    r.line("  SCRAM-SHA-256  works     cleartext userPassword");
    r.line("  ok       the password matches the cleartext userPassword");
    r.line(&format!("result: {} can log in with {MECHS}", john.mail));
    // Where each option came from, and the service password masked.
    assert!(r.out.contains("  ok       ldapdb_pw = ********  ["), "{}", r.out);
    assert!(r.out.contains("good.conf:10 sasl_ldapdb_pw]"), "{}", r.out);
    r.never_shows(john.pw());
}

/// One real run as `--json` and as text: every field of the JSON object says what the text
/// report says, line for line.
#[test]
fn good_config_as_json_parses_and_says_the_same() {
    let s = Slapd::start();
    let john = slapd::JOHNDOE;
    let dir = tempfile::tempdir().unwrap();
    let conf = fixture(dir.path(), "good.conf", Some(&s));
    let conf = conf.to_str().unwrap();
    let r = run(&["-C", conf, "--json", "--password-stdin", john.mail], Some(john.pw()));
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let v = json::parse(&r.out);
    assert_eq!(v.exit_code, 0);
    assert_eq!(v.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(v.user, john.mail);
    assert_eq!(v.dn.as_deref(), Some(john.dn));
    assert_eq!(v.canonical_name.as_deref(), Some(john.uid));
    assert_eq!(v.password_ok, Some(true));
    assert_eq!(v.account.as_deref(), Some("usable"));
    assert_eq!(v.working.join(", "), MECHS);
    assert_eq!(v.problems, 0);
    let search = v.search.as_ref().unwrap();
    assert_eq!((search.entries, search.dns.as_slice()), (1, &[john.dn.to_owned()][..]));
    assert_eq!(search.filter, "(|(uid=jdoe@example.com)(mail=jdoe@example.com))");
    assert_eq!((search.base.as_str(), search.scope.as_str()), ("dc=users,dc=local", "sub"));
    let p = &v.properties[0];
    assert_eq!((p.property.as_str(), p.attribute.as_str()), ("userPassword", "userPassword"));
    assert_eq!((p.formats.as_slice(), p.handed_to_libsasl2), (&["cleartext".to_owned()][..], 1));

    // The same run as text: each field of the JSON is a line of it.
    let text = run(&["-C", conf, "--password-stdin", john.mail], Some(john.pw()));
    assert_eq!(text.code, v.exit_code, "{}", text.out);
    text.line(&format!("ldapbind-check {}: {}, options from {}", v.version, v.user, v.source));
    for o in &v.options {
        text.line(&format!("  ok       {} = {}  [{}]", o.key, o.value, o.from));
    }
    for section in &v.sections {
        text.line(&section.title);
        for step in &section.steps {
            // (The connect takes its own time in each run.)
            if !step.text.starts_with("connect: connected") {
                text.line(&format!("  {:<8} {}", step.status, step.text));
            }
            if let Some(fix) = &step.fix {
                text.line(&format!("           fix: {fix}"));
            }
        }
    }
    for m in &v.mechanisms {
        text.line(&format!("  {:<14} {:<9} {}", m.name, m.status, m.why));
    }
    let works: Vec<&str> = v.mechanisms.iter().filter(|m| m.status == "works").map(|m| m.name.as_str()).collect();
    assert_eq!(works, v.working);
    text.line(&format!("result: {}", v.result));
    assert_eq!(text.problems(), v.problems);
    r.never_shows(john.pw());
}

/// Text that JSON must escape (quotes, backslash, control characters) or carry as it is
/// (non-ASCII, U+2028) comes back from `--json` unchanged.
#[test]
fn json_carries_any_text_unchanged() {
    let user = "jd\"oe\\x\u{1}\t\u{7f} Jürgen \u{2028}日本";
    let r = run(&["--json", "-o", "ldapdb_uri=ldap://127.0.0.1:9/dc=x", "-o", "ldapdb_filter=(cn=\"%u\")", user], None);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let v = json::parse(&r.out);
    assert_eq!(v.user, user);
    assert!(v.result.starts_with(&format!("{user} cannot log in")), "{}", v.result);
    assert_eq!(v.exit_code, 1);
    let filter = v.options.iter().find(|o| o.key == "ldapdb_filter").unwrap();
    assert_eq!(filter.value, "(cn=\"%u\")");
    assert!(!r.out.contains('\u{1}') && !r.out.contains('\t'), "control characters are escaped: {}", r.out);
}

#[test]
fn a_sasl_application_config_is_read_without_prefixes_and_o_overrides_it() {
    let s = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = fixture(dir.path(), "smtpd.conf", Some(&s));
    let alice = slapd::ALICE;
    let r = run(&["--sasl-conf", conf.to_str().unwrap(), "-o", "mech_list=CRAM-MD5 PLAIN", alice.mail], None);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("smtpd.conf:5 ldapdb_uri]"), "{}", r.out);
    r.line("  ok       mech_list = CRAM-MD5 PLAIN  [-o]");
    r.line("  PLAIN          works     cleartext userPassword, compared by pwcheck_method auxprop");
    r.line("  LOGIN          no        not in mech_list");
    r.line(&format!("result: {} can log in with PLAIN, CRAM-MD5", alice.mail));
    // Messages name the options as this file spells them.
    assert!(!r.out.contains("sasl_ldapdb_"), "{}", r.out);
}

#[test]
fn imapd_options_follow_mysasl_configs_order_for_the_service() {
    let s = Slapd::start();
    // pop3: pop3_sasl_ldapdb_uri beats sasl_ldapdb_uri, sasl_ldapbind_ldapdb_id beats sasl_ldapdb_id.
    let r = check(Some(&s), "services.conf", slapd::JOHNDOE.uid, None, &["--service", "pop3"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("services.conf:6 pop3_sasl_ldapdb_uri]"), "{}", r.out);
    assert!(r.out.contains("services.conf:8 sasl_ldapbind_ldapdb_id]"), "{}", r.out);
    assert!(r.out.contains("`sasl_ldapdb_uri` at "), "{}", r.out);
    // imap: the generic URL, port 1, where nothing listens.
    let r = check(Some(&s), "services.conf", slapd::JOHNDOE.uid, None, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.problem(
        "cannot connect to LDAP server 127.0.0.1:1: connection refused",
        "check host and port in sasl_ldapdb_uri (glauth listens on 3893, slapd on 389)",
    );
    assert!(r.out.contains("`pop3_sasl_ldapdb_uri` ("), "{}", r.out);
}

// ---- the seed's failures ----------------------------------------------------------------------

#[test]
fn no_ldapdb_uri() {
    let r = check(None, "no-uri.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "sasl_ldapdb_uri is not set",
        "add `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` to the service's config (e.g. \
         ldap://glauth:3893/dc=users,dc=local), or remove ldapbind from sasl_auxprop_plugin",
    );
    r.line("  skipped  not contacted: ldapbind rejects this configuration and fails every login with it; fix the problems above first");
    r.line("  PLAIN          no        pwcheck_method auxprop needs a cleartext userPassword; ldapbind rejects its configuration (see options), so it answers no lookup");
    r.line("result: jdoe cannot log in through ldapbind (1 problem above)");
}

#[test]
fn percent_44_in_the_base_dn() {
    let s = Slapd::start();
    let r = check(Some(&s), "percent44.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let url = s.url();
    r.problem(
        &format!("sasl_ldapdb_uri: `%44` in the base DN of `{url}/dc=users%44dc=local` decodes to `D`, not a comma"),
        &format!("write a comma as `%2C` or just `,` ({url}/dc=users%2Cdc=local), or write `D` itself if you meant it"),
    );
    // The server then says what the typo does: the base does not exist.
    r.problem(
        &format!(
            "LDAP server 127.0.0.1:{}: search base dc=usersDdc=local (from the DN in sasl_ldapdb_uri) does not exist or {} may not see it (32 noSuchObject)",
            s.port(),
            slapd::SERVICE_DN
        ),
        // ... and repeats what the escape became, as imapd's log line does.
        &format!(
            "fix the DN in sasl_ldapdb_uri or the server's ACLs; note: `%44` decodes to `D`, not a comma; write a \
             comma as `%2C` or just `,` ({url}/dc=users%2Cdc=local)"
        ),
    );
}

#[test]
fn a_referral_is_named_a_referral() {
    // A search base that is a referral object: slapd answers the search with result 10.
    let extra = format!(
        "dn: ou=elsewhere,{0}\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\n\
         ref: ldap://ldap.elsewhere.example/ou=elsewhere,{0}\n",
        slapd::BASE_DN
    );
    let s = Slapd::start_with(slapd::SlapdOptions { extra_ldif: Some(extra), ..Default::default() });
    let base = format!("ldapdb_search_base=ou=elsewhere,{}", slapd::BASE_DN);
    let r = check(Some(&s), "good.conf", "jdoe", None, &["-o", &base]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let line = format!("LDAP server 127.0.0.1:{} answered the user search with 10 referral", s.port());
    assert!(r.out.lines().any(|l| l.starts_with(&format!("  problem  {line}"))), "{}", r.out);
    assert!(r.out.contains("ldapbind does not follow referrals"), "{}", r.out);
    assert!(!r.out.contains("error)"), "{}", r.out);
}

#[test]
fn an_ldapi_socket_without_a_server_is_not_called_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ldapi");
    // The socket file stays after its listener is gone: connect() is refused.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let encoded = sock.to_str().unwrap().replace('/', "%2F");
    let r = run(&["-o", &format!("ldapdb_uri=ldapi://{encoded}/dc=users,dc=local"), "jdoe"], None);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "cannot connect to LDAP server socket {}: connection refused (the socket file exists but no server \
             listens on it)",
            sock.display()
        ),
        "start the LDAP server, or check the socket path in sasl_ldapdb_uri against the ldapi:// URL the server \
         listens on (slapd -h)",
    );
    assert!(!r.out.contains("default port") && !r.out.contains("3893"), "{}", r.out);
}

#[test]
fn the_default_port_when_the_server_listens_elsewhere() {
    let s = Slapd::start();
    assert!(
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, 389).into(), Duration::from_millis(500)).is_err(),
        "this test needs port 389 on 127.0.0.1 closed"
    );
    let r = check(Some(&s), "default-port.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.line("  ok       parse: ldap:// host 127.0.0.1, port 389 (the default, no port in sasl_ldapdb_uri), base DN dc=users,dc=local");
    r.problem(
        "cannot connect to LDAP server 127.0.0.1:389 (the default port: sasl_ldapdb_uri names none): connection refused",
        "check host and port in sasl_ldapdb_uri (glauth listens on 3893, slapd on 389)",
    );
    r.line("  skipped  service bind: not tried");
    // The fix, given with -o, works.
    let uri = format!("ldapdb_uri={}/dc=users,dc=local", s.url());
    let r = check(Some(&s), "default-port.conf", "jdoe@example.com", None, &["-o", &uri]);
    assert_eq!(r.code, 0, "{}", r.out);
}

#[test]
fn a_relative_ldapdb_id_is_refused_with_49() {
    let s = Slapd::start();
    let r = check(Some(&s), "relative-id.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!("LDAP server 127.0.0.1:{} refused the service bind as cn=cyrus,ou=machines (49 invalidCredentials)", s.port()),
        "check sasl_ldapdb_id and sasl_ldapdb_pw; sasl_ldapdb_id must be the full DN, e.g. cn=cyrus,ou=machines,dc=users,dc=local",
    );
    r.problem(
        "sasl_ldapdb_id `cn=cyrus,ou=machines` does not end in the directory suffix `dc=local` of the search base `dc=users,dc=local`",
        "ldapbind binds with it exactly as written (nothing is appended); if the account is under the base, write the full DN, e.g. `cn=cyrus,ou=machines,dc=users,dc=local`",
    );
    r.line("  skipped  not run: no server in sasl_ldapdb_uri got past the service bind");
}

#[test]
fn ldapdb_mech_digest_md5() {
    let s = Slapd::start();
    let r = check(Some(&s), "digest-mech.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "sasl_ldapdb_mech: DIGEST-MD5 is not supported: ldapbind does a simple bind as a DN (or SASL EXTERNAL)",
        "remove sasl_ldapdb_mech and set sasl_ldapdb_id to the service account's full DN and sasl_ldapdb_pw to its password",
    );
    // Like the plugin, the check does not contact a server with a rejected configuration.
    assert_eq!(s.count_ops().connections, 0);
}

#[test]
fn anonymous_search_refused() {
    let s = Slapd::start();
    let r = check(Some(&s), "anonymous.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.line("  note     binding anonymously because sasl_ldapdb_id is not set; set sasl_ldapdb_id and sasl_ldapdb_pw if the server refuses anonymous searches");
    r.line("  note     service bind: none: sasl_ldapdb_id is not set, so searches run as anonymous");
    r.problem(
        &format!("LDAP server 127.0.0.1:{}: anonymous (no sasl_ldapdb_id) may not search dc=users,dc=local (50 insufficientAccessRights)", s.port()),
        "grant the service account search and read access, or set sasl_ldapdb_id to an account that has it",
    );
}

#[test]
fn wrong_service_password() {
    let s = Slapd::start();
    let r = check(Some(&s), "wrong-service-pw.conf", "jdoe", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "LDAP server 127.0.0.1:{} refused the service bind as {} (49 invalidCredentials)",
            s.port(),
            slapd::SERVICE_DN
        ),
        "check sasl_ldapdb_id and sasl_ldapdb_pw",
    );
    r.never_shows("not-cyrus");
    let r = check(Some(&s), "wrong-service-pw.conf", "jdoe", None, &["--json"]);
    r.never_shows("not-cyrus");
}

#[test]
fn unknown_user() {
    let s = Slapd::start();
    let r = check(Some(&s), "good.conf", "nosuch@example.com", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "0 entries: user nosuch@example.com not found: no entry matches (|(uid=nosuch@example.com)(mail=nosuch@example.com)) under dc=users,dc=local",
        NOT_FOUND_FIX,
    );
    r.line("  skipped  none: the search did not find exactly one entry");
}

/// A base the service account sees nothing below: the base or the access rules are wrong, not
/// the user name.
#[test]
fn a_base_with_nothing_visible_below_it_is_not_blamed_on_the_user_name() {
    let s = Slapd::start();
    let base = format!("ldapdb_search_base={}", slapd::SERVICE_DN);
    let r = check(Some(&s), "good.conf", "jdoe", None, &["-o", &base]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let who = format!("the service account {}", slapd::SERVICE_DN);
    r.problem(
        &format!(
            "0 entries: user jdoe not found: no entry matches (|(uid=jdoe)(mail=jdoe)) under {base}; {who} sees no \
             entry below {base} (a one-level search for (objectClass=*) there found nothing), so the user name may \
             well be right",
            base = slapd::SERVICE_DN
        ),
        &format!(
            "check that the users live under {base} (sasl_ldapdb_search_base, or the DN in sasl_ldapdb_uri), and \
             give {who} read and search access to them in the server's access rules (OpenLDAP olcAccess, 389-ds aci)",
            base = slapd::SERVICE_DN
        ),
    );
}

#[test]
fn ambiguous_user() {
    let s = Slapd::start();
    let r = check(Some(&s), "good.conf", slapd::SHARED_MAIL, None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "2 entries: user {0} is ambiguous: (|(uid={0})(mail={0})) under dc=users,dc=local matches more than one entry ({1}; {2})",
            slapd::SHARED_MAIL,
            slapd::TWIN_A.dn,
            slapd::TWIN_B.dn
        ),
        "make the entries' uid/mail unique or narrow sasl_ldapdb_filter",
    );
}

#[test]
fn hashed_password_with_the_right_and_the_wrong_password() {
    let s = Slapd::start();
    let u = slapd::SSHA_USER;
    let hash_fix = AUTHD_FIX;
    let r = check(Some(&s), "good.conf", u.mail, None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "userPassword: {SSHA}: a hash, which ldapbind never hands to libsasl2 (pwcheck_method auxprop compares cleartext)",
        hash_fix,
    );
    r.line("  PLAIN          no        pwcheck_method auxprop needs a cleartext userPassword; userPassword is {SSHA}, a hash ldapbind never hands to libsasl2");

    let r = check(Some(&s), "good.conf", u.mail, Some(u.pw()), &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.problem(
        &format!(
            "right password, but libsasl2 cannot check this hash ({{SSHA}}) through auxprop (a bind as {} accepted it)",
            u.dn
        ),
        AUTHD_FIX,
    );
    r.never_shows(u.pw());

    let r = check(Some(&s), "good.conf", u.mail, Some("open-sesame-not"), &["--json"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains(&format!(
        "\"text\":\"wrong password: the directory refused a bind as {} with it (49 invalidCredentials)\",\"fix\":\"check the password (the directory itself says it is wrong)\"",
        u.dn
    )), "{}", r.out);
    r.never_shows("open-sesame-not");
    r.never_shows(u.stored.unwrap());
}

/// An empty password is never sent in a bind: servers take a DN with an empty password as an
/// unauthenticated bind (RFC 4513 5.1.2), which "succeeds" where it is allowed.
#[test]
fn an_empty_password_is_refused_without_a_bind_as_the_user() {
    let s = Slapd::start();
    let u = slapd::SSHA_USER;
    let mark = s.mark();
    let r = check(Some(&s), "good.conf", u.mail, Some(""), &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "the password is empty",
        "type the password; ldapbind never binds with an empty one (servers take it as an unauthenticated bind)",
    );
    // The service account's binds only: none as the user (nor an unauthenticated one).
    let ops = s.ops_since(&mark);
    let log = s.log_since(&mark);
    let binds: Vec<&str> = log.lines().filter(|l| l.contains(" BIND dn=") && l.ends_with("method=128")).collect();
    assert_eq!(binds.len(), ops.binds, "{log}");
    let service = format!(" BIND dn=\"{}\" method=128", slapd::SERVICE_DN);
    assert!(binds.iter().all(|l| l.ends_with(&service)), "a bind other than the service account's:\n{log}");
}

#[test]
fn an_authpassword_user_gets_exactly_its_scram_variant() {
    let extra = format!(
        "dn: cn=scram,{}\nobjectClass: inetOrgPerson\nobjectClass: ldapbindSecrets\n\
         cn: scram\nsn: Scram\nuid: scram\nmail: scram@example.com\n\
         userPassword: {{SSHA}}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn\n\
         authPassword: SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\n\
         cmusaslsecretCRAM-MD5: opaque\n",
        slapd::USERS_DN
    );
    let s = Slapd::start_with(slapd::SlapdOptions { extra_ldif: Some(extra), ..Default::default() });
    let r = check(Some(&s), "good.conf", "scram@example.com", None, &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.line("  ok       authPassword: authPassword SCRAM-SHA-256");
    r.line("  ok       cmusaslsecretCRAM-MD5: present (6 bytes)");
    r.line("  SCRAM-SHA-256  works     authPassword SCRAM-SHA-256");
    r.line("  CRAM-MD5       works     cmusaslsecretCRAM-MD5 (valid only if made for this realm and name)");
    r.line(
        "  SCRAM-SHA-1    no        needs a cleartext userPassword or an authPassword SCRAM-SHA-1$...; authPassword \
         holds SCRAM-SHA-256 only; userPassword is {SSHA}, a hash ldapbind never hands to libsasl2",
    );
    r.line("result: scram@example.com can log in with CRAM-MD5, SCRAM-SHA-256 (1 problem above)");
    r.never_shows("c3RvcmVk");
    r.never_shows("opaque");
}

#[test]
fn a_wrong_cleartext_password_fails_the_check() {
    let s = Slapd::start();
    let r = check(Some(&s), "good.conf", "alice", Some("looking-glass"), &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "wrong password: it does not match the cleartext userPassword",
        "check the password; every mechanism compares against that userPassword value",
    );
    r.line("result: alice cannot log in with this password (1 problem above)");
    r.never_shows("looking-glass");
    r.never_shows(slapd::ALICE.pw());
}

/// The plugin's warnings about the canonical name (state.rs, logged at init) are the doctor's
/// lines, word for word: one source.
#[test]
fn the_plugins_canon_warnings_are_the_doctors_lines() {
    use ldapbind::state::SelectionWarning;
    let base = ["-o", "ldapdb_uri=ldap://127.0.0.1:9/dc=x", "-o", "canon_user_plugin=ldapbind"];
    let r = run(&[&base[..], &["-o", "ldapdb_canon_attr=mail", "-o", "ldapdb_filter=(uid=%u)", "jdoe"]].concat(), None);
    r.problem(
        "sasl_ldapdb_canon_attr is mail but sasl_ldapdb_filter (uid=%u) does not search it: the canonical name may \
         not find the user again",
        "add (mail=%u) to the filter",
    );
    let w = SelectionWarning::CanonAttrNotSearched { attr: "mail".into(), filter: "(uid=%u)".into() };
    r.problem(&w.problem(), &w.fix());

    let r = run(&[&base[..], &["jdoe"]].concat(), None);
    let w = SelectionWarning::NamesOnlyTrimmed;
    let lines: Vec<&str> = r.out.lines().collect();
    let at = lines.iter().position(|l| *l == format!("  note     {}", w.problem()));
    assert_eq!(
        at.and_then(|i| lines.get(i + 1)).copied(),
        Some(format!("           fix: {}", w.fix()).as_str()),
        "{}",
        r.out
    );
}

#[test]
fn the_seeds_config_gets_every_fix_at_once() {
    let r = check(None, "seed.conf", "jdoe@example.com", None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "sasl_ldapdb_mech: PLAIN is not supported: ldapbind does a simple bind as a DN (or SASL EXTERNAL)",
        "remove sasl_ldapdb_mech and set sasl_ldapdb_id to the service account's full DN and sasl_ldapdb_pw to its password",
    );
    r.problem(
        "sasl_ldapdb_uri: `%44` in the base DN of `ldap://glauth/dc=users%44dc=local` decodes to `D`, not a comma",
        "write a comma as `%2C` or just `,` (ldap://glauth/dc=users%2Cdc=local), or write `D` itself if you meant it",
    );
    r.problem(
        "sasl_auxprop_plugin is `ldapdb`: libsasl2 asks only the plugins it names, and ldapbind is not one of them \
         (ldapdb is libsasl2's own LDAP plugin, which binds with SASL only)",
        "set `sasl_auxprop_plugin: ldapbind` (libsasl2 matches the plugin's name, not its file name)",
    );
    r.problem(
        "sasl_ldapdb_canon_attr is mail but sasl_canon_user_plugin is not set (INTERNAL): libsasl2 canonicalizes with that \
         plugin and never asks ldapbind for the canonical name",
        "set `sasl_canon_user_plugin: ldapbind`, or remove sasl_ldapdb_canon_attr",
    );
    r.never_shows("pw = cyrus");
}

#[test]
fn a_filter_nested_50000_deep_is_a_problem_line_not_a_crash() {
    // 50,000 levels (150 KB): ldapbind-check -C died of SIGABRT (stack overflow) on this.
    let huge = format!("{}(uid=%u){}", "(&".repeat(50_000), ")".repeat(50_000));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("imapd.conf");
    std::fs::write(
        &conf,
        format!("sasl_ldapdb_uri: ldap://127.0.0.1:9/dc=users,dc=local\nsasl_ldapdb_filter: {huge}\n"),
    )
    .unwrap();
    for json in [false, true] {
        let mut args = vec!["-C", conf.to_str().unwrap(), "jdoe"];
        if json {
            args.insert(0, "--json");
        }
        let r = run(&args, None);
        assert_eq!(r.code, 1, "{}", r.err);
        assert!(
            r.out.contains(&format!(
                "sasl_ldapdb_filter is {} bytes long, more than the 4096 ldapbind accepts",
                huge.len()
            )),
            "{}",
            r.out
        );
        assert!(r.out.len() < 10_000, "the 150 KB value is not printed whole: {} bytes", r.out.len());
    }
    let r = run(&["-C", conf.to_str().unwrap(), "jdoe"], None);
    r.problem(
        &format!("sasl_ldapdb_filter is {} bytes long, more than the 4096 ldapbind accepts", huge.len()),
        "a user filter is short, e.g. `(|(uid=%u)(mail=%u))`",
    );
}

// ---- the command line -----------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    for (args, msg) in [
        (&[][..], "USER is missing"),
        (&["-C", "/nonexistent/imapd.conf", "u"][..], "cannot read /nonexistent/imapd.conf"),
        (&["-o", "ldap_uri=x", "u"][..], "-o ldap_uri=...: unknown option"),
        (&["--bogus", "u"][..], "unknown option --bogus"),
    ] {
        let r = run(args, None);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.out, r.err);
        assert!(r.err.contains(msg) && r.err.contains("Usage: ldapbind-check"), "{args:?}: {}", r.err);
        assert!(r.out.is_empty());
    }
}

/// The service password written on a malformed line, in a file or on the command line, is
/// printed nowhere: not in the text report, not in `--json`, not on stderr.
#[test]
fn a_malformed_password_line_or_argument_never_shows_the_password() {
    const SECRET: &str = "Secret-9f3e";
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        format!("sasl_ldapdb_pw {SECRET}"),
        format!("sasl_ldapdb_pw={SECRET}"),
        format!("sasl_ldapdb_pw = {SECRET}"),
        format!("sasl_ldapdb_pw\t{SECRET}"),
        format!("ldapdb_password {SECRET}"),
        format!("sasl_ldapbind_secret={SECRET}"),
        // The value alone on the next line.
        format!("  {SECRET}"),
    ];
    let mut runs = 0;
    for line in &lines {
        for (flag, name, prefix) in [("-C", "imapd.conf", "sasl_"), ("--sasl-conf", "app.conf", "")] {
            let line = if prefix.is_empty() { line.replacen("sasl_", "", 1) } else { line.clone() };
            let conf = dir.path().join(name);
            std::fs::write(&conf, format!("{prefix}pwcheck_method: auxprop\n{line}\n")).unwrap();
            for json in [false, true] {
                let mut args = vec![flag, conf.to_str().unwrap()];
                if json {
                    args.push("--json");
                }
                args.push("jdoe");
                let r = run(&args, None);
                runs += 1;
                r.never_shows(SECRET);
                // The line is still reported, by number.
                assert!(r.out.contains(&format!("{name}:2: `")), "{line:?} {args:?}:\n{}", r.out);
                assert!(r.out.contains("is not a `key: value` line"), "{line:?} {args:?}:\n{}", r.out);
            }
        }
    }
    assert_eq!(runs, lines.len() * 4);
    // The command line: usage errors name the option, never its value.
    for args in [
        vec!["-o".to_owned(), format!("ldapdb_pw:{SECRET}"), "jdoe".into()],
        vec!["-o".to_owned(), format!("sasl_ldapdb_pw {SECRET}"), "jdoe".into()],
        vec![format!("--option=ldapdb_pw:{SECRET}"), "jdoe".into()],
        vec!["-o".to_owned(), format!("ldapdb_pw:{SECRET}=x"), "jdoe".into()],
        vec![format!("--ldapdb_pw={SECRET}"), "jdoe".into()],
        vec![format!("-p{SECRET}"), "jdoe".into()],
        vec!["jdoe".to_owned(), "-o".into(), "ldapdb_pw=".into(), SECRET.into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args, None);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.out, r.err);
        r.never_shows(SECRET);
        assert!(r.err.contains("Usage: ldapbind-check"), "{args:?}: {}", r.err);
    }
    let r = run(&["-o", &format!("ldapdb_pw:{SECRET}"), "jdoe"], None);
    assert!(
        r.err.contains(
            "-o ldapdb_pw …: write KEY=VALUE, e.g. -o ldapdb_uri=ldap://localhost:389/dc=example,dc=com \
                        (the rest is not shown: it may hold a password)"
        ),
        "{}",
        r.err
    );
}

#[test]
fn help_is_complete() {
    let r = run(&["--help"], None);
    assert_eq!(r.code, 0);
    for word in [
        "-C FILE",
        "--sasl-conf FILE",
        "--service NAME",
        "-o KEY=VALUE",
        "--password-stdin",
        "--json",
        "<service>_sasl_ldapbind_ldapdb_X, sasl_ldapbind_ldapdb_X",
        "Exit status",
        "ldapdb_canon_attr",
        "mech_list",
    ] {
        assert!(r.out.contains(word), "--help lacks {word}:\n{}", r.out);
    }
}

/// A configuration warning's fix is its own field, made with the warning: a `; ` in the
/// admin's own value (here a directory of the password file) does not cut the line there.
#[test]
fn a_config_warnings_fix_is_its_fix_field_whatever_its_value_holds() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a; b");
    std::fs::create_dir(&sub).unwrap();
    let pw = sub.join("pw");
    std::fs::write(&pw, "one\ntwo\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pw_file = format!("ldapdb_pw_file={}", pw.display());
    let base = ["-o", "ldapdb_uri=ldap://127.0.0.1:9/dc=x", "-o", "ldapdb_id=cn=cyrus,dc=x", "-o", &pw_file];
    let r = run(&[&["--json"][..], &base, &["jdoe"]].concat(), None);
    let v = json::parse(&r.out);
    let step = v.sections.iter().flat_map(|s| &s.steps).find(|s| s.text.contains("more than one line"));
    let step = step.unwrap_or_else(|| panic!("no warning about the password file:\n{}", r.out));
    assert_eq!(
        (step.status.as_str(), step.text.as_str(), step.fix.as_deref()),
        (
            "problem",
            format!("sasl_ldapdb_pw_file: {} has more than one line", pw.display()).as_str(),
            Some("ldapbind uses all of it except one trailing newline as the password; remove extra lines"),
        ),
        "{}",
        r.out
    );
    // The text report shows the same two parts.
    run(&[&base[..], &["jdoe"]].concat(), None).problem(
        &format!("sasl_ldapdb_pw_file: {} has more than one line", pw.display()),
        "ldapbind uses all of it except one trailing newline as the password; remove extra lines",
    );
}

/// The `--json` report as scripts read it: every field, with its type; a field it does not
/// know is an error, so a change of shape fails here.
mod json {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Report {
        pub version: String,
        pub user: String,
        pub source: String,
        pub options: Vec<OptionRow>,
        pub sections: Vec<Section>,
        pub search: Option<Search>,
        pub dn: Option<String>,
        pub canonical_name: Option<String>,
        pub properties: Vec<Property>,
        pub mechanisms: Vec<Mechanism>,
        pub password_ok: Option<bool>,
        pub account: Option<String>,
        pub working: Vec<String>,
        pub problems: usize,
        pub result: String,
        pub exit_code: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OptionRow {
        pub key: String,
        pub value: String,
        pub from: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Section {
        pub title: String,
        pub steps: Vec<Step>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Step {
        pub status: String,
        pub text: String,
        pub fix: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Search {
        pub base: String,
        pub scope: String,
        pub filter: String,
        pub entries: usize,
        pub dns: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Property {
        pub property: String,
        pub attribute: String,
        pub formats: Vec<String>,
        pub handed_to_libsasl2: usize,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Mechanism {
        pub name: String,
        pub status: String,
        pub why: String,
    }

    /// The report, and that every key is there (a missing one would read as `None`), in the
    /// order ldapbind-check has always written them.
    #[track_caller]
    pub fn parse(text: &str) -> Report {
        let keys: Vec<String> = match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("not a JSON object ({other:?}):\n{text}"),
        };
        let want = [
            "version",
            "user",
            "source",
            "options",
            "sections",
            "search",
            "dn",
            "canonical_name",
            "properties",
            "mechanisms",
            "password_ok",
            "account",
            "working",
            "problems",
            "result",
            "exit_code",
        ];
        let at: Vec<Option<usize>> = want.iter().map(|k| text.find(&format!("\"{k}\":"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "keys out of order:\n{text}");
        let mut sorted = want;
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "{text}");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }
}

// ---- TLS ------------------------------------------------------------------------------------

/// The names in the test server certificate.
const TLS_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

#[test]
fn ldaps_with_the_right_ca_then_an_untrusted_one() {
    let ca = slapd::TestCa::new("ldapbind-check CA");
    let s = Slapd::start_with(slapd::SlapdOptions { tls: Some(ca.server(&TLS_NAMES)), ..Default::default() });
    let uri = format!("ldapdb_uri={}/dc=users,dc=local", s.ldaps_url());
    let cacert = format!("ldapdb_tls_cacert={}", ca.cert_path().display());
    let r = check(Some(&s), "good.conf", "jdoe@example.com", None, &["-o", &uri, "-o", &cacert]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.line("  ok       TLS: established (ldaps://, TLS from the first byte)");
    r.line(&format!("  ok       service bind: bound as {}", slapd::SERVICE_DN));

    let other = slapd::TestCa::new("some other CA");
    let cacert = format!("ldapdb_tls_cacert={}", other.cert_path().display());
    let r = check(Some(&s), "good.conf", "jdoe@example.com", None, &["-o", &uri, "-o", &cacert]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "certificate of LDAP server 127.0.0.1:{} is not signed by a trusted CA (trusted: the CA file {})",
            s.ldaps_port(),
            other.cert_path().display()
        ),
        "set sasl_ldapdb_tls_cacert to the CA file",
    );
    r.line("  skipped  service bind: not tried");
}

#[test]
fn starttls_against_a_server_without_tls() {
    let s = Slapd::start();
    // `try` goes on in cleartext: a problem, but logins work.
    let r = check(Some(&s), "good.conf", "jdoe@example.com", None, &["-o", "ldapdb_starttls=try"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "LDAP server 127.0.0.1:{} refused StartTLS, so sasl_ldapdb_starttls: try goes on in cleartext and the \
             bind password crosses the network unencrypted",
            s.port()
        ),
        "enable TLS on the server, or use ldaps://",
    );
    r.line(&format!("  ok       service bind: bound as {}", slapd::SERVICE_DN));
    // `demand` stops there.
    let r = check(Some(&s), "good.conf", "jdoe@example.com", None, &["-o", "ldapdb_starttls=demand"]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "LDAP server 127.0.0.1:{} refused StartTLS (2 protocolError: unsupported extended operation) and \
             sasl_ldapdb_starttls is demand, so ldapbind does not continue without TLS",
            s.port()
        ),
        "enable TLS on the server (slapd: olcTLSCertificateFile and olcTLSCertificateKeyFile) or use its ldaps:// URL",
    );
}

// ---- values no login may use, and a server that cuts the search short ----------------------

#[test]
fn empty_and_nul_stored_passwords_are_problems_never_cleartext_nor_working() {
    let s = Slapd::start_with(slapd::SlapdOptions {
        extra_ldif: Some(slapd::ODD_VALUES_LDIF.into()),
        ..Default::default()
    });
    let empty = "is empty, which ldapbind never hands to libsasl2 (an empty password must never log in)";
    let e = slapd::EMPTY_PW;
    for password in [None, Some("")] {
        let r = check(Some(&s), "good.conf", e.mail, password, &[]);
        assert_eq!(r.code, 1, "{}{}", r.out, r.err);
        r.problem(
            &format!("userPassword: a value {empty}"),
            "store the user's password in userPassword, or delete that value",
        );
        for attr in ["authPassword", "cmusaslsecretPLAIN"] {
            r.problem(
                &format!("{attr}: a value {empty}"),
                &format!("replace it with the {attr} made from the user's password, or delete that value"),
            );
        }
        r.line(&format!(
            "  PLAIN          no        pwcheck_method auxprop needs a cleartext userPassword; userPassword {empty}"
        ));
        r.line(&format!("  SCRAM-SHA-256  no        needs a cleartext userPassword or an authPassword SCRAM-SHA-256$...; userPassword {empty}"));
        assert!(!r.out.contains("  works  ") && !r.out.contains(": cleartext"), "{}", r.out);
        if password.is_some() {
            r.problem(
                "the password is empty",
                "type the password; ldapbind never binds with an empty one (servers take it as an unauthenticated bind)",
            );
        }
        r.line(&format!(
            "result: {} cannot log in through ldapbind ({} problems above)",
            e.mail,
            3 + usize::from(password.is_some())
        ));
    }
    let r = check(Some(&s), "good.conf", e.mail, None, &["--json"]);
    let v = json::parse(&r.out);
    assert_eq!(v.properties[0].formats[0], "empty", "{}", r.out);
    assert!(v.working.is_empty(), "{}", r.out);

    // `dogood\0xxx` stored: the value is named as such, and `dogood` is no password.
    let n = slapd::NUL_PW;
    let r = check(Some(&s), "good.conf", n.uid, Some(n.pw()), &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        "userPassword: a value holds a NUL byte, which ldapbind never hands to libsasl2 (it compares C strings, so the \
         part before the NUL would log in)",
        "store the user's password in userPassword, or delete that value",
    );
    assert!(!r.out.contains("  works  ") && !r.out.contains(": cleartext"), "{}", r.out);
    r.line(&format!("result: {} cannot log in through ldapbind (2 problems above)", n.uid));
    r.never_shows("xxx");

    // Canonical names from the directory are trimmed, or refused with the value escaped.
    let p = slapd::PADDED;
    let r = check(Some(&s), "good.conf", p.mail, Some(p.pw()), &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    r.line(&format!("  ok       {} (the uid of {}; sasl_canon_user_plugin: ldapbind)", p.uid, p.dn));
    let u = slapd::NUL_UID;
    let r = check(Some(&s), "good.conf", u.mail, None, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "entry {} has a uid (sasl_ldapdb_canon_attr) value that cannot be a user name: \"nul\\0admin\" (contains a NUL byte)",
            u.dn
        ),
        "correct that value in the directory, or set sasl_ldapdb_canon_attr to an attribute that holds plain names",
    );
}

#[test]
fn a_server_size_limit_is_named_instead_of_taking_the_first_entry() {
    let limit = Some(slapd::SizeLimit::Database(1));
    let s = Slapd::start_with(slapd::SlapdOptions { size_limit: limit, ..Default::default() });
    let a = slapd::TWIN_A;
    let r = check(Some(&s), "good.conf", slapd::SHARED_MAIL, Some(a.pw()), &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    r.problem(
        &format!(
            "cannot tell whether user {0} is unique: LDAP server 127.0.0.1:{1} ended the search (|(uid={0})(mail={0})) \
             under dc=users,dc=local at its own size limit after 1 entry ({2}) (4 sizeLimitExceeded), so more entries \
             may match and ldapbind refuses",
            slapd::SHARED_MAIL,
            s.port(),
            a.dn
        ),
        &format!(
            "raise the size limit of the service account {0} to at least 2 (slapd: `limits dn.exact=\"{0}\" \
             size=unlimited`, olcLimits in cn=config, or sizelimit/olcSizeLimit)",
            slapd::SERVICE_DN
        ),
    );
    assert!(!r.out.contains("  works  ") && !r.out.contains(&format!("1 entry: {}", a.dn)), "{}", r.out);
    r.line(&format!(
        "  PLAIN          no        pwcheck_method auxprop needs a cleartext userPassword; the server's size limit cut \
         the search for {} short",
        slapd::SHARED_MAIL
    ));
    // A unique name is one entry and result 0 under the same limit.
    let john = slapd::JOHNDOE;
    let r = check(Some(&s), "good.conf", john.mail, Some(john.pw()), &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

#[test]
fn more_matches_than_ldapbinds_own_limit_stay_ambiguous() {
    // Every user matches: slapd sends ldapbind's limit of 2 entries and sizeLimitExceeded, which
    // is "more than one", not "cannot tell".
    let s = Slapd::start();
    let r =
        check(Some(&s), "good.conf", "johndoe", None, &["-o", "ldapdb_filter=(|(uid=%u)(objectClass=inetOrgPerson))"]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let problem = r
        .out
        .lines()
        .find(|l| l.starts_with("  problem  2 entries: user johndoe is ambiguous: "))
        .unwrap_or_else(|| panic!("{}", r.out));
    assert!(!problem.contains("size limit"), "{problem}");
}

#[test]
fn a_directory_that_hides_passwords_gets_the_daemon_as_advice_and_saslauthd_makes_it_work() {
    let s = Slapd::start_with(slapd::SlapdOptions { hidden_passwords: true, ..slapd::SlapdOptions::default() });
    let john = slapd::JOHNDOE;
    let r = check(Some(&s), "good.conf", john.mail, Some(john.pw()), &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.problem(
        "no password: the entry has none of userPassword, authPassword, cmusaslsecretPLAIN, cmusaslsecretCRAM-MD5, \
         cmusaslsecretDIGEST-MD5, or the service account may not read them",
        AUTHD_FIX,
    );
    r.problem(
        &format!(
            "right password (a bind as {} accepted it), but the service account can read no password, so libsasl2 \
             cannot check it through auxprop",
            john.dn
        ),
        AUTHD_FIX,
    );
    assert!(!r.out.contains("read access to"), "{}", r.out);

    // With saslauthd in pwcheck_method the same entry is fine, and a bind decides the password.
    let saslauthd = ["-o", "pwcheck_method=auxprop saslauthd"];
    let r = check(Some(&s), "good.conf", john.mail, Some(john.pw()), &saslauthd);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(r.problems(), 0, "{}", r.out);
    r.line(&format!(
        "  ok       a bind as {} accepted the password, as ldapbind-authd will for pwcheck_method saslauthd",
        john.dn
    ));
    r.line("  PLAIN          works     pwcheck_method saslauthd: ldapbind-authd binds as the user, and a bind accepted this password");
    let r = check(Some(&s), "good.conf", john.mail, Some("wrong"), &saslauthd);
    assert_eq!(r.code, 1, "{}", r.out);
    // Without a password to try, the daemon is the one to ask.
    let r = check(Some(&s), "good.conf", slapd::SSHA_USER.mail, None, &saslauthd);
    r.line("  PLAIN          unchecked pwcheck_method saslauthd checks the password, not ldapbind; ask the daemon with `ldapbind-check --authd SOCKET --password-stdin USER`");
}

// ---- as the daemon sees it ---------------------------------------------------------------------

#[test]
fn the_password_file_is_checked_as_the_user_imapd_runs_as() {
    use std::os::unix::fs::PermissionsExt;
    let s = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("ldapbind.secret");
    std::fs::write(&secret, "cyrus\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = fixture(dir.path(), "good.conf", Some(&s));
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("sasl_ldapdb_pw: cyrus", &format!("sasl_ldapdb_pw_file: {}", secret.display()));
    std::fs::write(&good, text).unwrap();
    let conf = good.to_str().unwrap();
    let shown = secret.display();

    // root 0600: root (running the check) reads it, imapd (cyrus) does not.
    let r = run(&["-C", conf, slapd::JOHNDOE.mail], None);
    r.problem(
        &format!(
            "sasl_ldapdb_pw_file {shown} is not readable by cyrus, the user imapd reads it as: every login would \
             fail with `cannot read {shown}: Permission denied`"
        ),
        &format!("let cyrus read it and nobody else: `chown cyrus {shown}` and `chmod 600 {shown}`"),
    );
    // --user names the daemon's user; root reads it.
    let r = run(&["-C", conf, "--user", "root", slapd::JOHNDOE.mail], None);
    assert_eq!(r.problems(), 0, "{}", r.out);
    // Owned by cyrus, as the README says.
    let cyrus = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("cyrus:")?.split(':').nth(1)?.parse::<u32>().ok())
        .expect("user cyrus (cyrus-common)");
    std::os::unix::fs::chown(&secret, Some(cyrus), None).unwrap();
    let r = run(&["-C", conf, slapd::JOHNDOE.mail], None);
    r.line(&format!("  ok       sasl_ldapdb_pw_file {shown} is readable by cyrus (imapd)"));
    assert_eq!(r.problems(), 0, "{}", r.out);
}

#[test]
fn a_postfix_smtpd_conf_given_with_c_is_pointed_at_sasl_conf() {
    let dir = tempfile::tempdir().unwrap();
    let conf = fixture(dir.path(), "smtpd.conf", None);
    let shown = conf.display();
    let r = run(&["-C", conf.to_str().unwrap(), "jdoe@example.com"], None);
    r.problem(
        &format!(
            "{shown} looks like a libsasl2 application config, not an imapd.conf: `auxprop_plugin` ({shown}:3) has \
             no `sasl_` prefix, as in Postfix's /etc/postfix/sasl/smtpd.conf"
        ),
        &format!("check it with `ldapbind-check --sasl-conf {shown} ...` instead of -C"),
    );
    assert!(!r.out.contains("write it as `sasl_"), "{}", r.out);
}
