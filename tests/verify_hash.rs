//! The libsasl2 2.1.27 `auxprop-hashed` path (lookup flag 0x10): ldapbind verifies the
//! candidate in `*userPassword` by a simple bind as the user's DN, on its own connection,
//! keeps it on success and erases it otherwise; an empty password is refused without a bind.
//! Driven by a small C host (tests/c/verify_host.c) using libsasl2's own prop_* functions.

mod common;

use std::path::PathBuf;
use std::process::Command;

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
fn wrong_and_empty_passwords_are_erased() {
    let slapd = Slapd::start();
    let u = slapd::SSHA_USER;
    let (rc, kept, log) = verify(&slapd, u.uid, "wrong");
    assert_eq!((rc, kept), (0, false), "{log}");
    assert!(log.contains("refused") && log.contains("49"), "{log}");
    // Typing the stored hash itself is just a wrong password to a bind.
    let (_, kept, _) = verify(&slapd, u.uid, u.stored.unwrap());
    assert!(!kept);

    let mark = slapd.mark();
    let (rc, kept, log) = verify(&slapd, u.uid, "");
    assert_eq!((rc, kept), (0, false), "{log}");
    assert!(log.contains("empty password"), "{log}");
    assert_eq!(slapd.ops_since(&mark).failed_binds + slapd.ops_since(&mark).binds, 1, "only the service bind");

    let (rc, kept, _) = verify(&slapd, "nobody", "x");
    assert_eq!((rc, kept), (-20, false));
}
