//! Memcheck over hosts that load ldapbind through real libsasl2 and end with `sasl_done`: one
//! that only initialises, one that runs a few hundred logins. No invalid read, write or free and
//! no use of uninitialised memory anywhere in the process (memcheck's exit code), and no definite
//! leak, of any size, allocated in an ldapbind frame (memcheck's XML report). The parent test
//! starts slapd and runs this same test binary under valgrind in "child" mode (an ignored test,
//! run by name).

mod common;

use std::process::Command;

use common::sasl::{PluginDir, SASL_OK, Server};
use common::slapd::{self, Slapd};

const CHILD_ENV: &str = "LDAPBIND_VALGRIND_URI";
const LOGINS_ENV: &str = "LDAPBIND_VALGRIND_LOGINS";
/// memcheck's exit code when it found an error other than a leak.
const MEMCHECK_ERROR: i32 = 97;

#[test]
#[ignore = "run by the memcheck tests under valgrind"]
fn valgrind_child_logins() {
    let uri = std::env::var(CHILD_ENV).expect("started by a memcheck test");
    let logins: usize = std::env::var(LOGINS_ENV).expect("started by a memcheck test").parse().unwrap();
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
    for i in 0..logins {
        let conn = server.new_conn("imap");
        let pw = if i % 10 == 9 { "wrong" } else { john.pw() };
        let rc = conn.checkpass(john.mail.as_bytes(), pw.as_bytes());
        assert_eq!(rc == SASL_OK, i % 10 != 9, "login {i}: {}", conn.errdetail());
    }
    server.done();
}

/// One error of memcheck's XML report: its kind (`InvalidRead`, `Leak_DefinitelyLost`, ...),
/// its text, and its stack as `function (object)` lines.
#[derive(Debug)]
struct MemError {
    kind: String,
    text: String,
    frames: Vec<String>,
}

impl MemError {
    /// True when a frame of the stack runs in the plugin (`.../libldapbind.so`).
    fn in_ldapbind(&self) -> bool {
        self.frames.iter().any(|f| f.ends_with("/libldapbind.so)"))
    }
}

impl std::fmt::Display for MemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {}", self.kind, self.text)?;
        for frame in &self.frames {
            writeln!(f, "    {frame}")?;
        }
        Ok(())
    }
}

/// The text between `<tag>` and `</tag>` in `s`, each occurrence.
fn elements<'a>(s: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    s.split(open.as_str()).skip(1).filter_map(|rest| rest.split_once(close.as_str()).map(|(inner, _)| inner)).collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The `<error>` records of a memcheck XML report (the first stack of each: where the access
/// happened, or where a lost block was allocated).
fn parse_report(xml: &str) -> Vec<MemError> {
    elements(xml, "error")
        .into_iter()
        .map(|e| {
            let one = |tag: &str| elements(e, tag).first().map(|t| unescape(t)).unwrap_or_default();
            let stack = elements(e, "stack").first().copied().unwrap_or_default();
            let frames = elements(stack, "frame")
                .into_iter()
                .map(|fr| {
                    let get =
                        |tag: &str| elements(fr, tag).first().map(|t| unescape(t)).unwrap_or_else(|| "???".into());
                    format!("{} ({})", get("fn"), get("obj"))
                })
                .collect();
            let text = match one("what") {
                what if what.is_empty() => one("text"),
                what => what,
            };
            MemError { kind: one("kind"), text, frames }
        })
        .collect()
}

/// Runs the child under memcheck with `logins` logins; asserts it passed and that memcheck
/// found nothing of ldapbind's.
fn memcheck(slapd: &Slapd, logins: usize) {
    let exe = std::env::current_exe().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let xml_path = tmp.path().join("memcheck.xml");
    let out = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            // Leaks are judged below by where they were allocated (libsasl2 and the test's own
            // harness are not ldapbind's); every other error fails the run through the exit code.
            "--errors-for-leak-kinds=none",
            &format!("--error-exitcode={MEMCHECK_ERROR}"),
            "--keep-debuginfo=yes",
            "--num-callers=40",
            "--xml=yes",
        ])
        .arg(format!("--xml-file={}", xml_path.display()))
        .arg(&exe)
        .args(["--ignored", "--exact", "valgrind_child_logins", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}/{}", slapd.url(), slapd::BASE_DN))
        .env(LOGINS_ENV, logins.to_string())
        .output()
        .expect("valgrind runs (apt-get install valgrind)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let xml = std::fs::read_to_string(&xml_path).unwrap_or_default();
    assert!(xml.contains("</valgrindoutput>"), "no complete memcheck report in {}:\n{stderr}", xml_path.display());
    let errors = parse_report(&xml);
    let list = |errs: &[&MemError]| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("----\n");
    let accesses: Vec<&MemError> = errors.iter().filter(|e| !e.kind.starts_with("Leak_")).collect();
    assert!(
        accesses.is_empty() && out.status.code() != Some(MEMCHECK_ERROR),
        "{logins} logins: memcheck errors (exit {:?}):\n{}",
        out.status.code(),
        list(&accesses)
    );
    assert!(out.status.success() && stdout.contains("1 passed"), "child failed:\n{stdout}\n{stderr}");
    let leaks: Vec<&MemError> = errors.iter().filter(|e| e.kind == "Leak_DefinitelyLost" && e.in_ldapbind()).collect();
    assert!(leaks.is_empty(), "{logins} logins: definite leaks allocated by ldapbind:\n{}", list(&leaks));
}

#[test]
fn no_memory_errors_nor_definite_leaks_from_ldapbind() {
    let slapd = Slapd::start_with(slapd::SlapdOptions { stats_log: false, ..Default::default() });
    // Init and done only: the plugin is loaded, configured and unloaded.
    memcheck(&slapd, 0);
    memcheck(&slapd, 300);
}

#[test]
fn the_report_parser_sees_ldapbind_frames() {
    let xml = "<valgrindoutput><error><kind>Leak_DefinitelyLost</kind><xwhat><text>16 bytes lost</text></xwhat>\
        <stack><frame><fn>malloc</fn><obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so</obj></frame>\
        <frame><fn>ldapbind::ffi::boundary::install_hook</fn><obj>/tmp/sasl-plugins-x/libldapbind.so</obj></frame>\
        </stack></error><error><kind>InvalidRead</kind><what>Invalid read of size 1</what>\
        <stack><frame><fn>strlen&lt;u8&gt;</fn></frame></stack></error></valgrindoutput>";
    let errors = parse_report(xml);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].in_ldapbind() && errors[0].text == "16 bytes lost", "{}", errors[0]);
    assert!(!errors[1].in_ldapbind());
    assert_eq!(
        (errors[1].text.as_str(), errors[1].frames.as_slice()),
        ("Invalid read of size 1", &["strlen<u8> (???)".to_owned()][..])
    );
}
