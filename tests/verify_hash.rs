//! The libsasl2 2.1.27 `auxprop-hashed` path (lookup flag 0x10): ldapbind verifies the
//! candidate in `*userPassword` by a simple bind as the user's DN, on its own connection,
//! keeps it on success and erases it otherwise; an empty password is refused without a bind.
//! Driven by a small C host (tests/c/verify_host.c) using libsasl2's own prop_* functions, and
//! for real by libsasl2 2.1.27 itself (Debian 11's, unpacked by scripts/deps.sh): this test
//! binary re-run as a host process with `LD_LIBRARY_PATH` on that library, calling
//! `sasl_checkpass` with `pwcheck_method: auxprop-hashed`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::sasl::{SASL_BADAUTH, SASL_NOUSER, SASL_OK};
use common::sasl2127::{self, Host2127};
use common::slapd::{self, Slapd};

fn host() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("verify_host");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/verify_host.c");
    let inc = format!("-I{}", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include").display());
    let ok = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", &inc])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(["-lsasl2", "-ldl"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "cc verify_host.c failed (libsasl2-dev installed?)");
    (dir, exe)
}

/// (rc, kept, log lines)
fn verify(slapd: &Slapd, user: &str, password: &str) -> (i32, bool, String) {
    let (_dir, exe) = host();
    let uri = format!("ldapdb_uri={}/{}", slapd.url(), slapd::BASE_DN);
    let out = Command::new(exe)
        .arg(common::sasl::built_plugin())
        .args([user, password, "auxprop_plugin=ldapbind", "log_level=5", &uri])
        .arg(format!("ldapdb_id={}", slapd::SERVICE_DN))
        .arg(format!("ldapdb_pw={}", slapd::SERVICE_PW))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = text.lines().find(|l| l.starts_with("rc=")).unwrap_or_else(|| panic!("no result: {text}"));
    let rc: i32 = last.trim_start_matches("rc=").split(' ').next().unwrap().parse().unwrap();
    (rc, last.ends_with("kept=1"), text)
}

#[test]
fn right_password_of_a_hashed_user_is_kept() {
    let slapd = Slapd::start();
    for u in [slapd::SSHA_USER, slapd::CRYPT_USER] {
        let mark = slapd.mark();
        let (rc, kept, log) = verify(&slapd, u.uid, u.pw());
        assert_eq!((rc, kept), (0, true), "{}: {log}", u.uid);
        let ops = slapd.ops_since(&mark);
        // One service bind + one user bind, each on its own connection, and one search.
        assert_eq!((ops.binds, ops.searches, ops.connections), (2, 1, 2), "{ops:?}");
    }
}

#[test]
fn wrong_and_empty_passwords_are_erased_and_refused_as_wrong() {
    let slapd = Slapd::start();
    let u = slapd::SSHA_USER;
    let (rc, kept, log) = verify(&slapd, u.uid, "wrong");
    assert_eq!((rc, kept), (SASL_BADAUTH, false), "{log}");
    assert!(log.contains("refused") && log.contains("49"), "{log}");
    // Typing the stored hash itself is just a wrong password to a bind.
    let (rc, kept, _) = verify(&slapd, u.uid, u.stored.unwrap());
    assert_eq!((rc, kept), (SASL_BADAUTH, false));

    let mark = slapd.mark();
    let (rc, kept, log) = verify(&slapd, u.uid, "");
    assert_eq!((rc, kept), (SASL_BADAUTH, false), "{log}");
    assert!(log.contains("empty password"), "{log}");
    assert_eq!(slapd.ops_since(&mark).failed_binds + slapd.ops_since(&mark).binds, 1, "only the service bind");

    let (rc, kept, _) = verify(&slapd, "nobody", "x");
    assert_eq!((rc, kept), (SASL_NOUSER, false));
}

// ---- the real libsasl2 2.1.27 --------------------------------------------------------------------

#[test]
#[ignore = "the libsasl2 2.1.27 host process, run by the tests below"]
fn libsasl2_2127_host() {
    sasl2127::host_main();
}

fn host_2127_for(slapd: &Slapd) -> Host2127 {
    host_2127_checking(slapd, "auxprop-hashed")
}

fn host_2127_checking(slapd: &Slapd, pwcheck_method: &str) -> Host2127 {
    let uri = format!("{}/{}", slapd.url(), slapd::BASE_DN);
    Host2127::start(&[
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", pwcheck_method),
        ("log_level", "5"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", slapd::SERVICE_DN),
        ("ldapdb_pw", slapd::SERVICE_PW),
    ])
}

/// The user binds `slapd` logged after `mark`: `BIND dn="..."` request lines other than the
/// service account's.
fn user_binds(slapd: &Slapd, mark: &slapd::LogMark) -> usize {
    let service = format!("BIND dn=\"{}\" method=128", slapd::SERVICE_DN);
    slapd
        .log_since(mark)
        .lines()
        .filter(|l| l.ends_with("method=128") && l.contains(" BIND dn=") && !l.ends_with(&service))
        .count()
}

#[test]
fn auxprop_hashed_on_the_real_libsasl2_2127() {
    let mut slapd = Slapd::start();
    let mut host = host_2127_for(&slapd);
    for u in [slapd::SSHA_USER, slapd::CRYPT_USER, slapd::JOHNDOE] {
        let mark = slapd.mark();
        let r = host.checkpass(u.uid, u.pw());
        assert_eq!(r.rc, SASL_OK, "{}: {r:?}", u.uid);
        assert_eq!(user_binds(&slapd, &mark), 1, "one bind as {}", u.dn);
    }
    let u = slapd::SSHA_USER;
    // A wrong password is a wrong password (SASL_BADAUTH), not "user not found".
    let r = host.checkpass(u.uid, "wrong");
    assert_eq!(r.rc, SASL_BADAUTH, "{r:?}");
    assert!(!r.errdetail.contains("user not found"), "{r:?}");
    assert!(r.logs.iter().any(|l| l.contains("refused") && l.contains("49 invalidCredentials")), "{r:?}");
    // Typing the stored hash is a wrong password too.
    assert_eq!(host.checkpass(u.uid, u.stored.unwrap()).rc, SASL_BADAUTH);
    // An empty one is refused without a bind.
    let mark = slapd.mark();
    let r = host.checkpass(u.uid, "");
    assert_eq!(r.rc, SASL_BADAUTH, "{r:?}");
    assert!(r.logs.iter().any(|l| l.contains("empty password")), "{r:?}");
    assert_eq!(user_binds(&slapd, &mark), 0);
    // An unknown user is one.
    assert_eq!(host.checkpass("nobody", "x").rc, SASL_NOUSER);

    // The directory restarts between logins: the next logins reconnect and say the same.
    slapd.restart();
    let r = host.checkpass(u.uid, u.pw());
    assert_eq!(r.rc, SASL_OK, "{r:?}");
    assert_eq!(host.checkpass(u.uid, "wrong").rc, SASL_BADAUTH);
    slapd.restart();
    let r = host.checkpass(u.uid, "wrong");
    assert_eq!(r.rc, SASL_BADAUTH, "{r:?}");
    assert_eq!(host.checkpass(u.uid, u.pw()).rc, SASL_OK);
}

/// With plain `auxprop`, a hashed password cannot be checked: on 2.1.27 the advice names
/// `auxprop-hashed`, which that library has (the system's 2.1.28 does not: tests/sasl_ldap.rs).
#[test]
fn on_2127_the_hashed_password_advice_names_auxprop_hashed() {
    let slapd = Slapd::start();
    let mut host = host_2127_checking(&slapd, "auxprop");
    let u = slapd::SSHA_USER;
    let r = host.checkpass(u.uid, u.pw());
    assert_ne!(r.rc, SASL_OK, "{r:?}");
    let advice = "with this libsasl2 (2.1.27), sasl_pwcheck_method: auxprop-hashed";
    assert!(r.logs.iter().any(|l| l.contains("is stored as {SSHA}") && l.contains(advice)), "{r:?}");
}
