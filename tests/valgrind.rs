//! Memcheck over a host that runs a few hundred logins through ldapbind and then `sasl_done`:
//! no definite leak with an ldapbind frame in its stack. The parent test starts slapd and runs
//! this same test binary under valgrind in "child" mode (an ignored test, run by name).

mod common;

use std::process::Command;

use common::sasl::{PluginDir, SASL_OK, Server};
use common::slapd::{self, Slapd};

const CHILD_ENV: &str = "LDAPBIND_VALGRIND_URI";
const LOGINS: usize = 300;

#[test]
#[ignore = "run by no_definite_leaks_from_ldapbind under valgrind"]
fn valgrind_child_logins() {
    let uri = std::env::var(CHILD_ENV).expect("started by no_definite_leaks_from_ldapbind");
    let dir = PluginDir::with_ldapbind();
    let server = Server::init(
        "ldapbind-valgrind",
        dir.path(),
        &[
            ("auxprop_plugin", "ldapbind"),
            ("canon_user_plugin", "ldapbind"),
            ("ldapdb_canon_attr", "uid"),
            ("pwcheck_method", "auxprop"),
            ("ldapdb_uri", &uri),
            ("ldapdb_id", slapd::SERVICE_DN),
            ("ldapdb_pw", slapd::SERVICE_PW),
        ],
    );
    let john = slapd::JOHNDOE;
    for i in 0..LOGINS {
        let conn = server.new_conn("imap");
        let pw = if i % 10 == 9 { "wrong" } else { john.pw() };
        let rc = conn.checkpass(john.mail.as_bytes(), pw.as_bytes());
        assert_eq!(rc == SASL_OK, i % 10 != 9, "login {i}: {}", conn.errdetail());
    }
    server.done();
}

#[test]
fn no_definite_leaks_from_ldapbind() {
    let slapd = Slapd::start_with(slapd::SlapdOptions { stats_log: false, ..Default::default() });
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--keep-debuginfo=yes",
            "--num-callers=40",
            "--error-exitcode=0",
        ])
        .arg(&exe)
        .args(["--ignored", "--exact", "valgrind_child_logins", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}/{}", slapd.url(), slapd::BASE_DN))
        .output()
        .expect("valgrind runs (apt-get install valgrind)");
    let report = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "child failed:\n{stdout}\n{report}");
    assert!(report.contains("LEAK SUMMARY") || report.contains("All heap blocks were freed"), "{report}");
    // Each loss record is a paragraph starting with "... are definitely lost in loss record".
    let ours: Vec<&str> = report
        .split("\n==")
        .filter(|block| block.contains("definitely lost in loss record"))
        .filter(|block| block.contains("ldapbind") && !block.contains("valgrind_child_logins"))
        .collect();
    let records: Vec<String> = report
        .split("definitely lost in loss record")
        .skip(1)
        .map(|rec| rec.lines().take(40).collect::<Vec<_>>().join("\n"))
        .filter(|rec| rec.contains("libldapbind") || rec.contains("ldapbind::"))
        .collect();
    assert!(ours.is_empty() && records.is_empty(), "definite leaks in ldapbind:\n{}", records.join("\n----\n"));
}
