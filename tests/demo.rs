//! The README's main command, `scripts/demo.sh`, minus installing and building: the demo binary
//! (examples/demo.rs, built by the cargo that built this test, in this test's profile) runs as
//! it does for the admin, and its exit status and key lines are checked. Needs root, like the
//! demo (scripts/test.sh).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::imapd::wait_bounded;

/// The whole demo takes a few seconds; this bounds a hung one.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);

/// `target/<profile>/examples/demo`, brought up to date by `cargo build --example demo`.
fn demo_binary() -> PathBuf {
    // This test runs as target/<profile>/deps/demo-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--quiet",
        "--example",
        "demo",
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
    ]);
    cargo.arg("--target-dir").arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let mut child = cargo.stdin(Stdio::null()).spawn().expect("run cargo");
    let status = wait_bounded(&mut child, Duration::from_secs(600)).expect("cargo build --example demo finished");
    assert!(status.success(), "cargo build --example demo: {status}");
    profile_dir.join("examples").join("demo")
}

#[test]
fn the_readmes_demo_exits_0_and_shows_the_login_and_the_missing_port() {
    let demo = demo_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("demo.out");
    let out = fs::File::create(&out_path).expect("create the output file");
    let mut child = Command::new(&demo)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", demo.display()));
    let status = wait_bounded(&mut child, DEMO_TIMEOUT);
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the demo did not finish within {DEMO_TIMEOUT:?}:\n{output}"));
    assert!(status.success(), "the demo exited with {status}:\n{output}");
    for key in [
        "== 3. cyrus imtest -a jdoe@example.com -w dogood 127.0.0.1 ==",
        "   Result: Authenticated.",
        "SASL ldapbind: jdoe@example.com is cn=johndoe,ou=superheros,dc=users,dc=local (mail jdoe@example.com)",
        "login: localhost [127.0.0.1] jdoe@example.com ",
        "   imtest: Authentication failed.",
        "     ldapbind: cannot connect to LDAP server 127.0.0.1:389 (the default port: sasl_ldapdb_uri names none)",
        "Done: slapd and Cyrus IMAP are stopped, their temp dirs removed.",
    ] {
        assert!(output.contains(key), "{key:?} missing in the demo's output:\n{output}");
    }
    assert!(!output.contains("FAILED"), "{output}");
}
