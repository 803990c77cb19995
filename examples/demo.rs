//! The README's demo (`scripts/demo.sh` runs it as root after building the plugin and
//! ldapbind-authd): the seed admin's setup, working against a directory true to the seed's
//! glauth, which never reveals a password. A throwaway slapd with the seed's directory, every
//! password stored hashed and readable by nobody but its user; ldapbind-authd (the release
//! binary beside this one) reading the same imapd.conf; a private Cyrus IMAP (Debian's
//! cyrus-imapd, its own imapd.conf/cyrus.conf, libldapbind.so in `SASL_PATH`) with the seed's
//! SASL options, `sasl_auxprop_plugin: ldapbind` and the two lines that select the daemon;
//! `imtest` logs in as jdoe@example.com; then the seed's missing-port mistake and the line that
//! explains it. Everything runs on 127.0.0.1 and is stopped at the end, also on a failure (the
//! fixtures are the tests' own: tests/common/).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use common::authd::Authd;
use common::imapd::{Imapd, ImapdOptions, LogLine, LogMark, Login, PASSWORD, USER};
use common::slapd::{self, Slapd, SlapdOptions};

/// How Cyrus logs in through the daemon: a mechanism that carries the password, the only kind
/// a directory that never reveals one can check.
const MECH: &str = "PLAIN";

fn main() -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "demo: run as root (scripts/demo.sh): Cyrus master needs its cyrus user and a private mount namespace"
        );
        return ExitCode::FAILURE;
    }
    // A fixture that cannot start panics; its servers are stopped while unwinding.
    let ok = std::panic::catch_unwind(run).unwrap_or(false);
    println!();
    if ok {
        println!("Done: slapd, ldapbind-authd and Cyrus IMAP are stopped, their temp dirs removed.");
        ExitCode::SUCCESS
    } else {
        println!("Something did not go as described above (slapd, ldapbind-authd and Cyrus IMAP are stopped).");
        ExitCode::FAILURE
    }
}

/// `ldapbind-authd` beside this binary's directory: target/release/examples/demo ->
/// target/release/ldapbind-authd.
fn authd_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("ldapbind-authd"))
}

fn run() -> bool {
    let Some(bin) = authd_binary().filter(|b| b.exists()) else {
        println!("demo: ldapbind-authd is not built beside the demo: cargo build --release --bin ldapbind-authd");
        println!("      (scripts/demo.sh builds it)");
        return false;
    };
    let slapd = Slapd::start_with(SlapdOptions { hidden_passwords: true, ..SlapdOptions::default() });
    let uri = format!("{}/{}", slapd.url(), slapd::BASE_DN);
    let john = slapd::JOHNDOE;
    println!("== 1. The directory: a throwaway slapd shaped like the seed's glauth ==");
    println!("   {}  (simple binds only; anonymous may not search)", slapd.url());
    println!("   user     {}  mail {}  password {}", john.dn, john.mail, john.pw());
    println!("   service  {}  password {}", slapd::SERVICE_DN, slapd::SERVICE_PW);
    println!("   Every userPassword is stored hashed ({{SSHA}}) and readable by nobody but its user:");
    println!("   the service account may search, and only a bind as the user checks a password.");

    let mut authd = Authd::prepare(&bin);
    let socket = authd.socket().display().to_string();
    let imapd = Imapd::start(
        ImapdOptions::for_slapd(&slapd)
            .set("sasl_pwcheck_method", "auxprop saslauthd")
            .set("sasl_saslauthd_path", &socket),
    );
    println!();
    println!("== 2. Cyrus IMAP: Debian's master and imapd, on 127.0.0.1:{} ==", imapd.port());
    println!("   libldapbind.so is in the plugin directory (SASL_PATH); imapd.conf says:");
    for line in imapd.conf_lines() {
        println!("     {line}");
    }
    println!("   The seed's options, with two lines that hand the password check to ldapbind-authd:");
    println!("   sasl_pwcheck_method `auxprop saslauthd` (ldapbind first, then the daemon) and sasl_saslauthd_path.");

    let conf = imapd.conf_path();
    println!();
    println!("== 3. {} -C {} --service imap --socket {socket} -d ==", bin.display(), conf.display());
    authd.start(&["-C".into(), conf.into_os_string(), "--service".into(), "imap".into()]);
    println!("   It reads ldapbind's sasl_ldapdb_* lines from the same imapd.conf; its start-up line:");
    for line in authd.log().lines() {
        println!("     {line}");
    }

    println!();
    println!("== 4. cyrus imtest -m {MECH} -a {USER} -w {PASSWORD} 127.0.0.1 ==");
    println!("   ({MECH}: the password travels to the server, the only way a hidden one can be checked)");
    let mark = imapd.mark();
    let good = imapd.imtest(Some(MECH), USER, PASSWORD);
    show_transcript(&good);
    println!("   Result: {}", if good.ok { "Authenticated." } else { "Authentication FAILED." });
    // imapd's own verdict: `login: HOST [IP] USER MECH User logged in` (ldapbind's lines about
    // the same user come before it).
    let logged_in = imapd.wait_for_line(mark, common::imapd::LOG_TIMEOUT, |l| {
        l.text.starts_with("login: ") && l.text.contains(&format!("] {USER} ")) && l.text.contains("User logged in")
    });
    show_syslog(&imapd, mark, "imapd's syslog for this login (ldapbind's own lines and the login):");
    let verified = authd.wait_line(&format!(" verified as {}", john.dn));
    println!("   ldapbind-authd's log for this login:");
    println!("     {}", verified.as_deref().unwrap_or("(nothing)"));
    drop(imapd);

    println!();
    println!("== 5. The seed's mistake: the URL without the port ==");
    let wrong_uri = format!("ldap://127.0.0.1/{}", slapd::BASE_DN);
    println!("   sasl_ldapdb_uri: {wrong_uri}");
    println!("   (glauth listens on 3893, not on the default 389; libldap's debug output was the admin's only clue)");
    let imapd = Imapd::start(ImapdOptions::seed(&wrong_uri));
    let mark = imapd.mark();
    let bad = imapd.imtest(None, USER, PASSWORD);
    println!("   imtest: {}", if bad.ok { "Authenticated (unexpected!)" } else { "Authentication failed." });
    let why =
        imapd.wait_for_log(mark, "ldapbind: cannot connect to LDAP server 127.0.0.1:389", common::imapd::LOG_TIMEOUT);
    show_syslog(&imapd, mark, "imapd's syslog:");
    match &why {
        Some(line) => {
            println!();
            println!("   The line that explains it:");
            println!("     {}", line.text.trim_start_matches("SASL "));
        }
        None => println!("   (no ldapbind line about the connection: is something listening on 127.0.0.1:389?)"),
    }
    println!("   Fix: sasl_ldapdb_uri: {uri}");
    drop(imapd);
    drop(authd);
    drop(slapd);
    // Each expectation, and what it means when it fails.
    let checks = [
        (good.ok, "imtest did not authenticate jdoe@example.com (step 4)"),
        (logged_in.is_some(), "imapd logged no `login: ... jdoe@example.com ... User logged in` line (step 4)"),
        (verified.is_some(), "ldapbind-authd logged no `... verified as cn=johndoe,...` line (step 4)"),
        (!bad.ok, "imtest authenticated although the URL names the wrong port (step 5)"),
        (why.is_some(), "ldapbind logged no `cannot connect to LDAP server 127.0.0.1:389` line (step 5)"),
    ];
    let failed: Vec<&str> = checks.iter().filter(|(ok, _)| !ok).map(|(_, what)| *what).collect();
    if !failed.is_empty() {
        println!();
        for what in &failed {
            println!("   FAILED: {what}");
        }
    }
    failed.is_empty()
}

fn show_transcript(login: &Login) {
    for line in login.transcript.lines() {
        let line = line.trim_end();
        if !(line.starts_with("C: ") || line.starts_with("S: ")) {
            continue;
        }
        // The capability lists are long; the point is the exchange.
        let shown: String = line.chars().take(110).collect();
        let more = if shown.len() < line.len() { " ..." } else { "" };
        println!("     {shown}{more}");
    }
}

fn show_syslog(imapd: &Imapd, mark: LogMark, title: &str) {
    println!("   {title}");
    // Let the last lines of the login arrive.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let relevant = |l: &LogLine| l.is_ldapbind() || l.text.starts_with("login: ") || l.text.starts_with("badlogin: ");
    let mut any = false;
    for line in imapd.syslog_since(mark).iter().filter(|l| relevant(l)) {
        println!("     {line}");
        any = true;
    }
    if !any {
        println!("     (nothing)");
    }
}
