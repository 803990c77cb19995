//! Tests of the slapd fixture itself (tests/common/slapd.rs): that the directory behaves like
//! the seed's glauth, that the stats counts are right, and that no slapd outlives its test.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::slapd::*;
use ldap3::{LdapConn, LdapError, Scope, SearchEntry};

fn search(conn: &mut LdapConn, filter: &str, attrs: &[&str]) -> Result<Vec<SearchEntry>, LdapError> {
    let (entries, _) = conn.with_timeout(OP_TIMEOUT).search(BASE_DN, Scope::Subtree, filter, attrs)?.success()?;
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

fn rc(result: Result<impl std::fmt::Debug, LdapError>) -> u32 {
    match result {
        Err(LdapError::LdapResult { result }) => result.rc,
        other => panic!("expected an LDAP error result, got {other:?}"),
    }
}

fn password_of(entry: &SearchEntry) -> Option<&str> {
    entry.attrs.get("userPassword").map(|v| {
        assert_eq!(v.len(), 1, "one userPassword value in {}", entry.dn);
        v[0].as_str()
    })
}

fn process_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn service_bind_and_search_by_mail_reads_the_cleartext_password() {
    let slapd = Slapd::start();
    let mut conn = slapd.service_conn();
    let found = search(&mut conn, &format!("(mail={})", JOHNDOE.mail), &["uid", "userPassword"]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].dn, JOHNDOE.dn);
    assert_eq!(found[0].attrs["uid"], [JOHNDOE.uid]);
    assert_eq!(password_of(&found[0]), Some("dogood"));
}

#[test]
fn every_test_user_matches_its_const() {
    let slapd = Slapd::start();
    let mut conn = slapd.service_conn();
    let all = search(&mut conn, "(objectClass=inetOrgPerson)", &["uid", "mail", "userPassword"]).unwrap();
    let by_dn: HashMap<&str, &SearchEntry> = all.iter().map(|e| (e.dn.as_str(), e)).collect();
    assert_eq!(by_dn.len(), ALL_USERS.len(), "{:?}", by_dn.keys());
    for user in ALL_USERS {
        let entry = by_dn.get(user.dn).unwrap_or_else(|| panic!("{} missing", user.dn));
        assert_eq!(entry.attrs["uid"], [user.uid]);
        assert_eq!(entry.attrs["mail"], [user.mail]);
        assert_eq!(password_of(entry), user.stored, "{}", user.dn);
        // Each typed password really is the user's password, hashed or not.
        if let Some(pw) = user.password {
            let mut as_user = slapd.connect();
            as_user.with_timeout(OP_TIMEOUT).simple_bind(user.dn, pw).unwrap().success().unwrap();
        }
    }
    assert!(SSHA_USER.stored.unwrap().starts_with("{SSHA}"));
    assert!(CRYPT_USER.stored.unwrap().starts_with("{CRYPT}$6$"));
}

#[test]
fn ambiguous_mail_and_special_characters() {
    let slapd = Slapd::start();
    let mut conn = slapd.service_conn();
    let twins = search(&mut conn, &format!("(mail={SHARED_MAIL})"), &["uid"]).unwrap();
    let mut dns: Vec<&str> = twins.iter().map(|e| e.dn.as_str()).collect();
    dns.sort();
    assert_eq!(dns, [TWIN_A.dn, TWIN_B.dn]);

    let filter = format!("(mail={})", ldap3::ldap_escape(OBRIEN.mail));
    let found = search(&mut conn, &filter, &["uid"]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].dn, OBRIEN.dn);
}

#[test]
fn anonymous_may_bind_but_not_search() {
    let slapd = Slapd::start();
    let mut conn = slapd.connect();
    conn.with_timeout(OP_TIMEOUT).simple_bind("", "").unwrap().success().unwrap();
    // insufficientAccess, like glauth's "Anonymous BindDN not allowed".
    assert_eq!(rc(search(&mut conn, &format!("(mail={})", JOHNDOE.mail), &["*"])), 50);
    assert_eq!(rc(search(&mut conn, "(objectClass=*)", &["userPassword"])), 50);

    // Without any bind at all it is the same.
    let mut unbound = slapd.connect();
    assert_eq!(rc(search(&mut unbound, "(uid=*)", &["uid"])), 50);

    // A user bound as itself is no service account either.
    let mut user = slapd.connect();
    user.with_timeout(OP_TIMEOUT).simple_bind(ALICE.dn, ALICE.pw()).unwrap().success().unwrap();
    assert_eq!(rc(search(&mut user, "(uid=*)", &["uid"])), 50);
}

#[test]
fn root_dse_is_public_and_offers_no_sasl_mechanism() {
    let slapd = Slapd::start();
    let mut conn = slapd.connect();
    let (entries, _) = conn
        .with_timeout(OP_TIMEOUT)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedSASLMechanisms", "namingContexts"])
        .unwrap()
        .success()
        .unwrap();
    let dse = SearchEntry::construct(entries.into_iter().next().expect("a root DSE"));
    assert_eq!(dse.attrs.get("namingContexts").map(Vec::as_slice), Some(&[BASE_DN.to_owned()][..]));
    assert_eq!(dse.attrs.get("supportedSASLMechanisms"), None, "{dse:?}");
}

#[test]
fn sasl_binds_are_refused() {
    let slapd = Slapd::start();
    let mut conn = slapd.connect();
    let result = conn.with_timeout(OP_TIMEOUT).sasl_external_bind().unwrap();
    assert_ne!(result.rc, 0, "{result:?}");

    // libldap's own client, as the C ldapdb plugin would use it. It sends the bind even though
    // the root DSE lists nothing (-Y forces the mechanism), so slapd itself must refuse.
    let mut bound_by_sasl = Vec::new();
    for mech in ["DIGEST-MD5", "CRAM-MD5", "SCRAM-SHA-256", "PLAIN", "EXTERNAL"] {
        let out = Command::new("ldapwhoami")
            .args(["-H", &slapd.url(), "-Y", mech, "-U", JOHNDOE.uid, "-w", JOHNDOE.pw()])
            .args(["-o", "nettimeout=5"])
            .env("LDAPNOINIT", "1")
            .output()
            .expect("run ldapwhoami (ldap-utils; scripts/deps.sh installs it)");
        if out.status.success() {
            bound_by_sasl.push(mech);
        }
    }
    assert!(bound_by_sasl.is_empty(), "SASL binds succeeded: {bound_by_sasl:?}");
    let log = slapd.log_text();
    assert!(log.contains("method=163"), "a SASL bind reached slapd:\n{log}");
    assert!(log.contains("no mechanism available"), "{log}");
}

#[test]
fn wrong_service_password_is_invalid_credentials() {
    let slapd = Slapd::start();
    let mut conn = slapd.connect();
    let result = conn.with_timeout(OP_TIMEOUT).simple_bind(SERVICE_DN, "not-cyrus").unwrap();
    assert_eq!(result.rc, 49);
    let result = conn.with_timeout(OP_TIMEOUT).simple_bind(NOPASS.dn, "anything").unwrap();
    assert_eq!(result.rc, 49);
}

#[test]
fn stats_count_one_bind_and_one_search_per_connection() {
    let slapd = Slapd::start();
    assert_eq!(slapd.count_ops(), OpCounts::default(), "the readiness probe is not counted");

    let mark = slapd.mark();
    let mut conn = slapd.service_conn();
    search(&mut conn, &format!("(uid={})", JOHNDOE.uid), &["userPassword"]).unwrap();
    let expected = OpCounts { connections: 1, binds: 1, searches: 1, ..OpCounts::default() };
    assert_eq!(slapd.ops_since(&mark), expected);
    assert_eq!(slapd.count_ops(), expected);

    // A second search on the same connection: no new bind, no new connection.
    let mark = slapd.mark();
    search(&mut conn, &format!("(uid={})", ALICE.uid), &["userPassword"]).unwrap();
    assert_eq!(slapd.ops_since(&mark), OpCounts { searches: 1, ..OpCounts::default() });

    // A refused bind counts as a bind and as a failed one.
    let mark = slapd.mark();
    let mut other = slapd.connect();
    other.with_timeout(OP_TIMEOUT).simple_bind(SERVICE_DN, "wrong").unwrap();
    assert_eq!(slapd.ops_since(&mark), OpCounts { connections: 1, binds: 1, failed_binds: 1, ..OpCounts::default() });
    assert_eq!(slapd.count_ops(), OpCounts { connections: 2, binds: 2, failed_binds: 1, searches: 2, other_ops: 0 });
}

#[test]
fn parse_stats_reads_slapd_2_5_lines() {
    let log = "\
6b0adc5c.0aef0207 0x7ff5002e6200 slapd starting
6b0adc5d.0ce2f6aa 0x7ff4fd7fe6c0 conn=1006 fd=11 ACCEPT from IP=127.0.0.1:48360 (IP=127.0.0.1:38999)
6b0adc5d.0ce371da 0x7ff4fccfc6c0 conn=1006 op=0 BIND dn=\"\" method=163
6b0adc5d.0ce385b0 0x7ff4fccfc6c0 SASL [conn=1006] Failure: Couldn't find mech DIGEST-MD5
6b0adc5d.0ce3fdca 0x7ff4fccfc6c0 conn=1006 op=0 RESULT tag=97 err=7 qtime=0.000007 etime=0.000044 text=SASL(-4)
6b0adc5d.0b56aedb 0x7ff4fd7fe6c0 conn=1006 op=1 BIND dn=\"cn=cyrus,ou=machines,dc=users,dc=local\" method=128
6b0adc5d.0b5724ba 0x7ff4fd7fe6c0 conn=1006 op=1 BIND dn=\"cn=cyrus,ou=machines,dc=users,dc=local\" mech=SIMPLE bind_ssf=0 ssf=0
6b0adc5d.0b57a731 0x7ff4fd7fe6c0 conn=1006 op=1 RESULT tag=97 err=0 qtime=0.000021 etime=0.000106 text=
6b0adc5d.0af96e30 0x7ff4fd7fe6c0 conn=1006 op=2 SRCH base=\"dc=users,dc=local\" scope=2 deref=0 filter=\"(uid=*)\"
6b0adc5d.0af97e1c 0x7ff4fd7fe6c0 conn=1006 op=2 SRCH attr=dn
6b0adc5d.0afb5565 0x7ff4fd7fe6c0 conn=1006 op=2 SEARCH RESULT tag=101 err=50 qtime=0.000017 etime=0.000163 nentries=0 text=
6b0adc5d.0bb7dfd2 0x7ff4fccfc6c0 conn=1006 op=3 EXT oid=1.3.6.1.4.1.4203.1.11.3
6b0adc5d.0bb7e9ea 0x7ff4fccfc6c0 conn=1006 op=3 WHOAMI
6b0adc5d.0bb83b35 0x7ff4fccfc6c0 conn=1006 op=3 RESULT oid= err=0 qtime=0.000006 etime=0.000030 text=
6b0adc5d.0afcd599 0x7ff4fd7fe6c0 conn=1006 op=4 UNBIND
6b0adc5d.0afd9a37 0x7ff4fd7fe6c0 conn=1006 fd=11 closed
6b0adc5d.0afd9a37 0x7ff4fd7fe6c0 conn=1007 op=0 SRCH base=\"\" scope=0 deref=0 filter=\"(objectClass=*)\"";
    // The last line has no newline yet: a line slapd is still writing is not counted.
    assert_eq!(parse_stats(log), OpCounts { connections: 1, binds: 2, failed_binds: 1, searches: 1, other_ops: 1 });
}

#[test]
fn restart_keeps_port_and_data() {
    let mut slapd = Slapd::start();
    let (port, first_pid) = (slapd.port(), slapd.pid());
    slapd.restart();
    assert_eq!(slapd.port(), port);
    assert_ne!(slapd.pid(), first_pid);
    assert!(process_gone(first_pid, Duration::ZERO), "the first slapd was reaped");
    assert!(slapd.url().ends_with(&format!(":{port}")));
    let mut conn = slapd.service_conn();
    let found = search(&mut conn, &format!("(mail={})", ALICE.mail), &["userPassword"]).unwrap();
    assert_eq!(password_of(&found[0]), ALICE.stored);
    assert_eq!(
        slapd.count_ops(),
        OpCounts { connections: 1, binds: 1, searches: 1, ..OpCounts::default() },
        "counts start again at the restart"
    );
    assert_eq!(slapd.log_text().matches("slapd starting").count(), 2, "one log across restarts");
}

#[test]
fn freeze_stalls_answers_and_thaw_resumes() {
    let slapd = Slapd::start();
    let mut conn = slapd.service_conn();
    slapd.freeze();
    let started = Instant::now();
    let stalled = conn.with_timeout(Duration::from_millis(300)).simple_bind(SERVICE_DN, SERVICE_PW);
    assert!(matches!(stalled, Err(LdapError::Timeout { .. })), "{stalled:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    slapd.thaw();
    let mut fresh = slapd.service_conn();
    search(&mut fresh, &format!("(uid={})", JOHNDOE.uid), &["uid"]).unwrap();
}

#[test]
fn drop_leaves_no_process_even_when_frozen() {
    let slapd = Slapd::start();
    let pid = slapd.pid();
    slapd.freeze();
    let started = Instant::now();
    drop(slapd);
    assert!(process_gone(pid, Duration::ZERO), "slapd {pid} survived Drop");
    assert!(started.elapsed() < STOP_TIMEOUT, "SIGTERM, not the SIGKILL fallback, ended it");
}

#[test]
fn a_panicking_test_leaves_no_process() {
    let pid = AtomicU32::new(0);
    let result = std::panic::catch_unwind(|| {
        let slapd = Slapd::start();
        pid.store(slapd.pid(), Ordering::SeqCst);
        panic!("deliberate panic with slapd {} running", slapd.pid());
    });
    assert!(result.is_err());
    let pid = pid.load(Ordering::SeqCst);
    assert_ne!(pid, 0);
    assert!(process_gone(pid, Duration::ZERO), "slapd {pid} survived the panic");
}

#[test]
fn extra_ldif_adds_entries_with_the_test_schema() {
    let extra = format!(
        "dn: cn=scram,{USERS_DN}\nobjectClass: inetOrgPerson\nobjectClass: ldapbindSecrets\n\
         cn: scram\nsn: Scram\nuid: scram\nmail: scram@example.com\n\
         authPassword: SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\n\
         cmusaslsecretCRAM-MD5: opaque\n"
    );
    let slapd = Slapd::start_with(SlapdOptions { extra_ldif: Some(extra), ..SlapdOptions::default() });
    let mut conn = slapd.service_conn();
    let found = search(&mut conn, "(uid=scram)", &["authPassword", "cmusaslsecretCRAM-MD5"]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].attrs["authPassword"], ["SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"]);
    assert_eq!(found[0].attrs["cmusaslsecretCRAM-MD5"], ["opaque"]);
}

#[test]
fn without_stats_log_nothing_is_counted() {
    let slapd = Slapd::start_with(SlapdOptions { stats_log: false, ..SlapdOptions::default() });
    let mut conn = slapd.service_conn();
    search(&mut conn, &format!("(uid={})", JOHNDOE.uid), &["uid"]).unwrap();
    assert_eq!(slapd.count_ops(), OpCounts::default());
}

#[test]
fn odd_values_are_stored_as_written() {
    let slapd = Slapd::start_with(SlapdOptions { extra_ldif: Some(ODD_VALUES_LDIF.into()), ..SlapdOptions::default() });
    let mut conn = slapd.service_conn();
    let attrs = ["uid", "userPassword", "authPassword", "cmusaslsecretPLAIN"];
    let all = search(&mut conn, "(|(cn=emptypw)(cn=nulpw)(cn=padded)(cn=nuluid)(cn=ctluid))", &attrs).unwrap();
    let by_dn: HashMap<&str, &SearchEntry> = all.iter().map(|e| (e.dn.as_str(), e)).collect();
    let e = by_dn[EMPTY_PW.dn];
    for attr in ["userPassword", "authPassword", "cmusaslsecretPLAIN"] {
        assert_eq!(e.attrs[attr], [""], "{attr}");
    }
    assert_eq!(password_of(by_dn[NUL_PW.dn]), NUL_PW.stored);
    assert_eq!(by_dn[PADDED.dn].attrs["uid"], ["  padded  "]);
    assert_eq!(by_dn[NUL_UID.dn].attrs["uid"], [NUL_UID.uid]);
    assert_eq!(by_dn[CTL_UID.dn].attrs["uid"], [CTL_UID.uid]);
    // Each stored password binds as it is written, NUL byte and all.
    for user in [NUL_PW, PADDED, NUL_UID, CTL_UID] {
        let mut as_user = slapd.connect();
        as_user.with_timeout(OP_TIMEOUT).simple_bind(user.dn, user.stored.unwrap()).unwrap().success().unwrap();
    }
}

#[test]
fn a_size_limit_cuts_an_ambiguous_search_after_one_entry() {
    for limit in [SizeLimit::Database(1), SizeLimit::ServiceAccount(1)] {
        let slapd = Slapd::start_with(SlapdOptions { size_limit: Some(limit), ..SlapdOptions::default() });
        let mut conn = slapd.service_conn();
        let options = ldap3::SearchOptions::new().sizelimit(2);
        let filter = format!("(mail={SHARED_MAIL})");
        let ldap3::SearchResult(entries, result) = conn
            .with_timeout(OP_TIMEOUT)
            .with_search_options(options)
            .search(BASE_DN, Scope::Subtree, &filter, ["1.1"])
            .unwrap();
        assert_eq!((entries.len(), result.rc), (1, 4), "{limit:?}: one entry, then sizeLimitExceeded");
        let unique = search(&mut conn, &format!("(mail={})", JOHNDOE.mail), &["uid"]).unwrap();
        assert_eq!(unique.len(), 1, "{limit:?}");
    }
}

#[test]
fn ppolicy_enforces_the_stored_state_and_hides_it_for_the_hashed_users() {
    let slapd = Slapd::start_with(SlapdOptions { ppolicy: true, ..SlapdOptions::default() });
    let mut conn = slapd.service_conn();
    let attrs = ["pwdAccountLockedTime", "pwdReset"];
    let state = |conn: &mut LdapConn, uid: &str| {
        let found = search(conn, &format!("(uid={uid})"), &attrs).unwrap();
        assert_eq!(found.len(), 1, "{uid}");
        let mut a: Vec<(String, Vec<String>)> = found[0].attrs.clone().into_iter().collect();
        a.sort();
        a
    };
    let one = |k: &str, v: &str| vec![(k.to_owned(), vec![v.to_owned()])];
    assert_eq!(state(&mut conn, PP_LOCKED.uid), one("pwdAccountLockedTime", "000001010000Z"));
    assert_eq!(state(&mut conn, PP_RESET.uid), one("pwdReset", "TRUE"));
    assert_eq!(state(&mut conn, PP_LOCKED_HASHED.uid), vec![], "hidden from the service account");
    assert_eq!(state(&mut conn, PP_RESET_HASHED.uid), vec![]);
    // The overlay refuses the locked ones' binds (49 even with the right password), lets the
    // reset ones bind, and lets everyone else in.
    for (dn, pw, want) in [
        (PP_LOCKED.dn, PP_LOCKED.pw(), 49),
        (PP_LOCKED_HASHED.dn, PP_LOCKED_HASHED.pw(), 49),
        (SERVICE_LOCKED_DN, SERVICE_PW, 49),
        (PP_RESET_HASHED.dn, PP_RESET_HASHED.pw(), 0),
        (SERVICE_RESET_DN, SERVICE_PW, 0),
        (JOHNDOE.dn, JOHNDOE.pw(), 0),
    ] {
        let mut as_user = slapd.connect();
        assert_eq!(as_user.with_timeout(OP_TIMEOUT).simple_bind(dn, pw).unwrap().rc, want, "{dn}");
    }
    // After the reset account's bind, only a password change is allowed.
    let mut reset = slapd.connect();
    reset.with_timeout(OP_TIMEOUT).simple_bind(SERVICE_RESET_DN, SERVICE_PW).unwrap().success().unwrap();
    assert_eq!(rc(search(&mut reset, "(uid=johndoe)", &["uid"])), 50);
}

#[test]
fn account_state_entries_are_stored_as_written() {
    let slapd =
        Slapd::start_with(SlapdOptions { extra_ldif: Some(ACCOUNT_STATE_LDIF.into()), ..SlapdOptions::default() });
    let mut conn = slapd.service_conn();
    for (uid, attr) in ACCOUNT_STATE_USERS.iter().copied().chain([(STATE_FINE, "shadowExpire")]) {
        let found = search(&mut conn, &format!("(uid={uid})"), &[attr]).unwrap();
        assert_eq!(found.len(), 1, "{uid}");
        assert_eq!(found[0].attrs.get(attr).map(Vec::len), Some(1), "{uid}: {attr}");
    }
}
