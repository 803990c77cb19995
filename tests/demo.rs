//! The README's main command, `scripts/demo.sh`, minus installing and building: the demo binary
//! (examples/demo.rs, built by the cargo that built this test, in this test's profile) runs as
//! it does for the admin, and its exit status and key lines are checked. Needs root, like the
//! demo (scripts/test.sh).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::imapd::wait_bounded;

/// The whole demo takes a few seconds; this bounds a hung one.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);

/// `target/<profile>/examples/demo`, brought up to date by `cargo build --example demo`, with
/// the `ldapbind-authd` it starts (`target/<profile>/ldapbind-authd`) and the plugin it loads
/// (`--lib`: uplifted to `target/<profile>/libldapbind.so`, as scripts/demo.sh builds it; a
/// fresh clone has only nextest's copy in deps/).
fn demo_binary() -> PathBuf {
    // This test runs as target/<profile>/deps/demo-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--quiet",
        "--lib",
        "--example",
        "demo",
        "--bin",
        "ldapbind-authd",
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
fn the_readmes_demo_exits_0_and_shows_the_login_through_ldapbind_authd_and_the_missing_port() {
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
        "     sasl_pwcheck_method: auxprop saslauthd\n",
        "     sasl_saslauthd_path: ",
        "/ldapbind-authd -C ",
        " --service imap --socket ",
        " listening on ",
        "== 4. cyrus imtest -m PLAIN -a jdoe@example.com -w dogood 127.0.0.1 ==",
        "   Result: Authenticated.",
        "SASL ldapbind: jdoe@example.com is cn=johndoe,ou=superheros,dc=users,dc=local (mail jdoe@example.com)",
        "shows the service account no userPassword; PLAIN/LOGIN are left to saslauthd",
        "login: localhost [127.0.0.1] jdoe@example.com PLAIN User logged in",
        "     ldapbind-authd: login jdoe@example.com (service imap) verified as cn=johndoe,ou=superheros,dc=users,dc=local\n",
        "   imtest: Authentication failed.",
        "     ldapbind: cannot connect to LDAP server 127.0.0.1:389 (the default port: sasl_ldapdb_uri names none)",
        "Done: slapd, ldapbind-authd and Cyrus IMAP are stopped, their temp dirs removed.",
    ] {
        assert!(output.contains(key), "{key:?} missing in the demo's output:\n{output}");
    }
    assert!(!output.contains("FAILED"), "{output}");
    // The daemon the demo started is gone, and its socket with it.
    let socket = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("sasl_saslauthd_path: "))
        .unwrap_or_else(|| panic!("no sasl_saslauthd_path line:\n{output}"));
    assert!(!Path::new(socket).exists(), "{socket} is left behind");
    let daemons: Vec<String> = fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(socket))
        .collect();
    assert!(daemons.is_empty(), "left running: {daemons:?}");
}
