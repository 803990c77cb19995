//! End to end, the seed admin's way: Debian's Cyrus IMAP (a private master, tests/common/imapd.rs)
//! loads the built ldapbind through libsasl2 with the seed's imapd.conf settings and
//! authenticates against the glauth-like slapd; `imtest` (cyrus-clients) and a raw IMAP client
//! log in; what imapd sends to syslog is captured and checked. Needs root (scripts/test.sh).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::imapd::{self, Imapd, ImapdOptions, LogLine, Login, PASSWORD, Plugins, USER};
use common::slapd::{self, Slapd};

fn assert_ok(what: &str, login: &Login) {
    assert!(login.ok, "{what} was refused:\n{}", login.transcript);
}

fn assert_refused(what: &str, login: &Login) {
    assert!(!login.ok, "{what} was accepted:\n{}", login.transcript);
}

fn texts(lines: &[LogLine]) -> String {
    lines.iter().map(|l| format!("  {l}\n")).collect()
}

#[test]
fn every_mechanism_and_the_login_command_log_in_as_the_seeds_user() {
    let slapd = Slapd::start();
    let imapd = Imapd::for_slapd(&slapd);
    // imtest AUTHENTICATE for each SASL mechanism except LOGIN (imtest's "-m login" is the
    // LOGIN command), then AUTHENTICATE LOGIN and LOGIN by hand, then imtest's LOGIN command.
    for mech in ["PLAIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256"] {
        let mark = imapd.mark();
        let login = imapd.imtest(Some(mech), USER, PASSWORD);
        assert_ok(mech, &login);
        assert!(login.transcript.contains(&format!("AUTHENTICATE {mech}")), "{}", login.transcript);
        imapd.expect_log(mark, &format!("login: localhost [127.0.0.1] {USER} {mech} User logged in"));
    }
    let mark = imapd.mark();
    assert_ok("AUTHENTICATE LOGIN", &imapd.authenticate_login(USER, PASSWORD));
    imapd.expect_log(mark, &format!("login: localhost [127.0.0.1] {USER} LOGIN User logged in"));

    let mark = imapd.mark();
    let login = imapd.imtest(Some("login"), USER, PASSWORD);
    assert_ok("imtest -m login", &login);
    assert!(login.transcript.contains(&format!("L01 LOGIN {USER}")), "{}", login.transcript);
    imapd.expect_log(mark, &format!("login: localhost [127.0.0.1] {USER} plaintext User logged in"));
    let mark = imapd.mark();
    assert_ok("LOGIN", &imapd.login_command(USER, PASSWORD));
    imapd.expect_log(mark, &format!("login: localhost [127.0.0.1] {USER} plaintext User logged in"));

    // imtest's own choice (the seed's command, plus -a: without it imtest authenticates as the
    // Unix user running it).
    assert_ok("imtest without -m", &imapd.imtest(None, USER, PASSWORD));

    // uid works as well as mail; ldapbind loaded and said how it is configured.
    assert_ok("login by uid", &imapd.login_command(slapd::JOHNDOE.uid, PASSWORD));
    let all = imapd.syslog();
    let configured = all.iter().find(|l| l.text.contains("ldapbind: ") && l.text.contains(" configured: "));
    let configured = configured.unwrap_or_else(|| panic!("no ldapbind start-up line:\n{}", texts(&all)));
    assert!(
        configured.text.contains(&format!("servers 127.0.0.1:{}, search base dc=users,dc=local", slapd.port())),
        "{configured}"
    );
    // No error or warning from ldapbind, and never a password, even at sasl_log_level 7.
    let ldapbind: Vec<LogLine> = all.iter().filter(|l| l.is_ldapbind()).cloned().collect();
    assert!(ldapbind.iter().all(|l| l.severity() > 4), "ldapbind errors or warnings:\n{}", texts(&ldapbind));
    assert!(ldapbind.iter().all(|l| !l.text.contains(PASSWORD)), "a password in:\n{}", texts(&ldapbind));
    // master never loads the plugin; the imapd that served these logins did.
    let maps = |pid: u32| fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let master = imapd.master_pid().expect("master.pid");
    assert!(!maps(master).contains("libldapbind.so"), "master mapped the plugin");
    let imapds: Vec<u32> = imapd
        .group_members()
        .into_iter()
        .filter(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "imapd"))
        .collect();
    assert!(!imapds.is_empty() && imapds.iter().all(|p| maps(*p).contains("libldapbind.so")), "{imapds:?}");
    // One kept LDAP connection for all these logins: one bind as the service account.
    let ops = slapd.count_ops();
    assert_eq!((ops.connections, ops.binds, ops.failed_binds), (imapds.len(), imapds.len(), 0), "{ops:?}");
}

#[test]
fn a_wrong_password_an_unknown_user_and_a_hashed_password_are_refused() {
    let slapd = Slapd::start();
    let imapd = Imapd::for_slapd(&slapd);

    // Wrong password: ldapbind found the user and handed libsasl2 the cleartext userPassword;
    // libsasl2's comparison (or the mechanism's proof) fails and imapd logs a badlogin.
    for mech in ["PLAIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256", "login"] {
        let mark = imapd.mark();
        assert_refused(mech, &imapd.imtest(Some(mech), USER, "wrong"));
        let shown = if mech == "login" { "plaintext" } else { mech };
        let bad = imapd.expect_log(mark, &format!("badlogin: localhost [127.0.0.1] {shown} ({USER})"));
        assert!(bad.text.contains("SASL(-13): authentication failure"), "{bad}");
        // Apart from its start-up line in a fresh imapd and its debug lines, ldapbind has
        // nothing to say: the user exists and the directory answered.
        const LOG_DEBUG: u8 = 7;
        let ldapbind: Vec<LogLine> = imapd
            .ldapbind_lines_since(mark)
            .into_iter()
            .filter(|l| l.priority & 7 != LOG_DEBUG && !l.text.contains(" configured: "))
            .collect();
        assert!(ldapbind.is_empty(), "unexpected ldapbind lines:\n{}", texts(&ldapbind));
    }
    let mark = imapd.mark();
    assert_refused("AUTHENTICATE LOGIN", &imapd.authenticate_login(USER, "wrong"));
    imapd.expect_log(
        mark,
        &format!("badlogin: localhost [127.0.0.1] LOGIN ({USER}) [SASL(-13): authentication failure"),
    );

    // Unknown user: ldapbind says so, with the filter and the base it searched.
    for mech in ["PLAIN", "SCRAM-SHA-256", "login"] {
        let mark = imapd.mark();
        assert_refused(mech, &imapd.imtest(Some(mech), "nobody@example.com", "x"));
        let line = imapd.expect_log(mark, "ldapbind: user nobody@example.com not found");
        assert!(
            line.text.contains(
                "SASL ldapbind: user nobody@example.com not found: no entry matches \
                 (|(uid=nobody@example.com)(mail=nobody@example.com)) under dc=users,dc=local"
            ),
            "{line}"
        );
        assert!(line.tag.starts_with("cyrus/imap["), "{line}");
        imapd.expect_log(mark, "badlogin: localhost [127.0.0.1]");
    }

    // A hashed userPassword is never handed out; ldapbind explains what works instead.
    let mark = imapd.mark();
    let ssha = slapd::SSHA_USER;
    assert_refused("{SSHA} user", &imapd.login_command(ssha.mail, ssha.pw()));
    let line =
        imapd.expect_log(mark, &format!("ldapbind: userPassword of {} ({}) is stored as {{SSHA}}", ssha.mail, ssha.dn));
    assert!(line.text.contains("run ldapbind-authd and set sasl_pwcheck_method: auxprop saslauthd"), "{line}");
}

fn refused_with(imapd: &Imapd, needles: &[&str]) -> Vec<LogLine> {
    let mark = imapd.mark();
    assert_refused("a login with a broken configuration", &imapd.imtest(Some("PLAIN"), USER, PASSWORD));
    for needle in needles {
        imapd.expect_log(mark, needle);
    }
    let lines: Vec<LogLine> = imapd.syslog().into_iter().filter(LogLine::is_ldapbind).collect();
    eprintln!("ldapbind's lines:\n{}", texts(&lines));
    lines
}

/// 127.0.0.1:`port` bound and never listened on, so connections to it are refused while it is
/// held, and no server can take the port meanwhile. SO_REUSEADDR lets concurrent tests hold it
/// too; binding fails (and the test with it) when a server listens there.
struct RefusedPort {
    _fd: std::os::fd::OwnedFd,
}

impl RefusedPort {
    fn hold(port: u16) -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor this function owns; `addr` outlives bind.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let held = RefusedPort { _fd: std::os::fd::OwnedFd::from_raw_fd(fd) };
            let one: libc::c_int = 1;
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            assert_eq!(libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), len), 0);
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, (&raw const addr).cast(), len);
            assert_eq!(
                rc,
                0,
                "cannot hold 127.0.0.1:{port} ({}): something listens there (or this is not root); \
                 the refused default port cannot be shown until it stops",
                std::io::Error::last_os_error()
            );
            held
        }
    }
}

#[test]
fn the_url_without_its_port_is_explained_in_imapds_syslog() {
    // The seed's Step 5: libldap tried port 389, glauth listened on 3893.
    let uri = format!("ldap://127.0.0.1/{}", slapd::BASE_DN);
    let _port = RefusedPort::hold(389);
    let imapd = Imapd::start(ImapdOptions::seed(&uri));
    let lines = refused_with(
        &imapd,
        &["ldapbind: cannot connect to LDAP server 127.0.0.1:389", "badlogin: localhost [127.0.0.1] PLAIN"],
    );
    let line = lines.iter().find(|l| l.text.contains("cannot connect")).expect("found above");
    for part in [
        "(the default port: sasl_ldapdb_uri names none)",
        "connection refused",
        "check host and port in sasl_ldapdb_uri",
    ] {
        assert!(line.text.contains(part), "{part:?} missing in {line}");
    }
}

#[test]
fn the_seeds_configuration_mistakes_are_explained_in_imapds_syslog() {
    let slapd = Slapd::start();
    // Step 4's lines: a user name as ldapdb_id, ldapdb_mech PLAIN.
    let opts = ImapdOptions::for_slapd(&slapd).set("sasl_ldapdb_id", "cyrus").set("sasl_ldapdb_mech", "PLAIN");
    let imapd = Imapd::start(opts);
    refused_with(
        &imapd,
        &[
            "ldapbind: sasl_ldapdb_id: `cyrus` is not a DN; ldapbind does a simple bind with a full DN",
            "ldapbind: sasl_ldapdb_mech: PLAIN is not supported: ldapbind does a simple bind as a DN",
            "badlogin: localhost [127.0.0.1] PLAIN",
        ],
    );
    drop(imapd);

    // The %44 "escape" for the comma (libldap had split the URL at it).
    let imapd = Imapd::start(ImapdOptions::seed(&format!("{}/dc=users%44dc=local", slapd.url())));
    let lines = refused_with(&imapd, &["ldapbind: sasl_ldapdb_uri: `%44`"]);
    assert!(lines.iter().any(|l| l.text.contains("`%2C`")), "the fix is named:\n{}", texts(&lines));
    drop(imapd);

    // Step 3: no ldapdb_uri at all. ldapdb failed to load without a word; ldapbind says it.
    let imapd = Imapd::start(ImapdOptions::for_slapd(&slapd).unset("sasl_ldapdb_uri"));
    refused_with(&imapd, &["ldapbind: sasl_ldapdb_uri is not set"]);
}

#[test]
fn nothing_is_left_running_after_drop_panic_or_the_helpers_death() {
    let slapd = Slapd::start();
    let group_of = |imapd: &Imapd| {
        assert_ok("login", &imapd.login_command(USER, PASSWORD));
        let members = imapd.group_members();
        assert!(members.len() >= 3, "helper, master and an imapd: {members:?}");
        members
    };
    let gone = |pids: &BTreeSet<u32>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let alive: Vec<u32> = pids.iter().copied().filter(|p| is_live(*p)).collect();
            if alive.is_empty() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "still running: {alive:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Drop.
    let imapd = Imapd::for_slapd(&slapd);
    let pids = group_of(&imapd);
    let dir = imapd.dir().to_owned();
    drop(imapd);
    gone(&pids);
    assert!(!dir.exists(), "temp dir removed");

    // A panicking test.
    let mut pids = BTreeSet::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let imapd = Imapd::for_slapd(&slapd);
        pids = group_of(&imapd);
        panic!("a failing test");
    }));
    assert!(result.is_err());
    gone(&pids);

    // The test process dying without unwinding: its thread's death sends the helper SIGTERM
    // (PR_SET_PDEATHSIG), which stops master and its children. Simulate that signal.
    let mut imapd = Imapd::for_slapd(&slapd);
    let pids = group_of(&imapd);
    let helper = imapd.helper_pid().expect("running");
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(helper as libc::pid_t, libc::SIGTERM) }, 0);
    gone(&pids.iter().copied().filter(|p| *p != helper).collect());
    imapd.stop();
}

fn is_live(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

#[test]
fn syslog_datagrams_and_base64_are_decoded() {
    let l = LogLine::parse(b"<19>Nov 28 14:11:51 cyrus/imap[20173]: SASL ldapbind: user root not found\n");
    assert_eq!((l.priority, l.severity(), l.tag.as_str()), (19, 3, "cyrus/imap[20173]"));
    assert_eq!(l.text, "SASL ldapbind: user root not found");
    assert!(l.is_ldapbind());
    let l = LogLine::parse(b"<23>Nov  8 04:01:02 master[1]: ready for work");
    assert_eq!((l.tag.as_str(), l.text.as_str()), ("master[1]", "ready for work"));
    for (i, o) in
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
    {
        assert_eq!(imapd::base64(i.as_bytes()), o);
    }
}

/// saslauthd (sasl2-bin) with `-a ldap`, in the foreground, in its own process group; killed
/// (with its workers) on drop.
struct Saslauthd {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Saslauthd {
    fn start(slapd: &Slapd) -> Saslauthd {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new().prefix("ldapbind-saslauthd-").tempdir().expect("temp dir");
        // imapd (user cyrus) must reach the socket.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        // Cyrus with virtdomains hands saslauthd "jdoe" and the realm "example.com" apart.
        let conf = format!(
            "ldap_servers: {}/\nldap_search_base: {}\nldap_bind_dn: {}\nldap_bind_pw: {}\n\
             ldap_filter: (|(uid=%u)(mail=%u@%r))\nldap_auth_method: bind\n",
            slapd.url(),
            slapd::BASE_DN,
            slapd::SERVICE_DN,
            slapd::SERVICE_PW
        );
        fs::write(dir.path().join("saslauthd.conf"), conf).expect("write saslauthd.conf");
        let log = fs::File::create(dir.path().join("saslauthd.log")).expect("log");
        let mut cmd = std::process::Command::new("/usr/sbin/saslauthd");
        cmd.args(["-a", "ldap", "-d", "-n", "0", "-O"])
            .arg(dir.path().join("saslauthd.conf"))
            .arg("-m")
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .process_group(0);
        // SAFETY: async-signal-safe prctl only, before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn saslauthd (install sasl2-bin)");
        let s = Saslauthd { child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !s.mux().exists() {
            assert!(std::time::Instant::now() < deadline, "saslauthd did not create {}", s.mux().display());
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn mux(&self) -> std::path::PathBuf {
        self.dir.path().join("mux")
    }
}

impl Drop for Saslauthd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own unreaped child.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[test]
fn hashed_passwords_log_in_with_plain_and_login_through_saslauthd_next_to_ldapbind() {
    // README "Hashed passwords": `sasl_pwcheck_method: auxprop saslauthd`. ldapbind answers for
    // cleartext passwords (every mechanism); a {SSHA}/{CRYPT} userPassword is never handed out,
    // so PLAIN and LOGIN fall through to saslauthd, which binds as the user.
    let slapd = Slapd::start();
    let saslauthd = Saslauthd::start(&slapd);
    let opts = ImapdOptions::for_slapd(&slapd)
        .set("sasl_pwcheck_method", "auxprop saslauthd")
        .set("sasl_saslauthd_path", &saslauthd.mux().display().to_string());
    let imapd = Imapd::start(opts);
    for user in [slapd::SSHA_USER, slapd::CRYPT_USER] {
        for mech in ["PLAIN", "login"] {
            assert_ok(&format!("{mech} as {}", user.mail), &imapd.imtest(Some(mech), user.mail, user.pw()));
        }
        assert_ok("AUTHENTICATE LOGIN", &imapd.authenticate_login(user.mail, user.pw()));
        assert_refused("a wrong password", &imapd.imtest(Some("PLAIN"), user.mail, "wrong"));
        // No shared secret exists for them: SCRAM and CRAM cannot work.
        assert_refused("SCRAM for a hashed password", &imapd.imtest(Some("SCRAM-SHA-256"), user.mail, user.pw()));
    }
    for mech in ["PLAIN", "login", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256"] {
        assert_ok(mech, &imapd.imtest(Some(mech), USER, PASSWORD));
    }
    imapd.expect_log(imapd::LogMark::default(), "login: localhost [127.0.0.1] ssha@example.com PLAIN User logged in");
}

/// libsasl2 2.1.27's `auxprop-hashed` for real: Debian 12's imapd on Debian 11's libsasl2
/// (scripts/deps.sh unpacks it), the LOGIN command checked by a bind as the user. A wrong
/// password is an authentication failure in imapd's badlogin line, not "user not found".
#[test]
fn auxprop_hashed_on_libsasl2_2127_through_the_login_command() {
    let mut slapd = Slapd::start();
    let opts = ImapdOptions { plugins: Plugins::BuiltOnLibsasl2127, ..ImapdOptions::for_slapd(&slapd) }
        .set("sasl_pwcheck_method", "auxprop-hashed")
        .set("sasl_mech_list", "PLAIN LOGIN");
    let imapd = Imapd::start(opts);
    let u = slapd::SSHA_USER;
    let logged_in = format!("login: localhost [127.0.0.1] {} plaintext User logged in", u.mail);
    let right = |imapd: &Imapd| {
        let mark = imapd.mark();
        assert_ok("the right password", &imapd.login_command(u.mail, u.pw()));
        imapd.expect_log(mark, &logged_in);
    };
    let wrong = |imapd: &Imapd, password: &str| {
        let mark = imapd.mark();
        assert_refused(password, &imapd.login_command(u.mail, password));
        let line = imapd.expect_log(mark, "badlogin: localhost [127.0.0.1] plaintext");
        assert!(
            line.text.contains("authentication failure") && !line.text.contains("user not found"),
            "{password:?}: {line}"
        );
    };
    right(&imapd);
    // The imapd that served it runs on 2.1.27.
    let on_2127 = imapd.group_members().into_iter().any(|p| {
        fs::read_to_string(format!("/proc/{p}/maps"))
            .is_ok_and(|m| m.contains("libsasl2-2.1.27/") && m.contains("libldapbind.so"))
    });
    assert!(on_2127, "no imapd mapped libsasl2 2.1.27 and ldapbind");
    wrong(&imapd, "wrong");
    wrong(&imapd, u.stored.unwrap());
    let mark = imapd.mark();
    assert_refused("an empty password", &imapd.login_command(u.mail, ""));
    imapd.expect_log(mark, "badlogin: localhost [127.0.0.1] plaintext");
    // The directory restarts between logins.
    slapd.restart();
    right(&imapd);
    wrong(&imapd, "wrong");
    slapd.restart();
    wrong(&imapd, "wrong");
    right(&imapd);
}

/// ldapbind's own lines containing `needle` since `mark` (not imapd's `badlogin:` lines, which
/// quote ldapbind's error detail), after the logins that produce them.
fn lines_with(imapd: &Imapd, mark: imapd::LogMark, needle: &str) -> Vec<LogLine> {
    std::thread::sleep(Duration::from_millis(200));
    let own = |l: &LogLine| !l.text.starts_with("badlogin: ") && l.text.contains(needle);
    imapd.ldapbind_lines_since(mark).into_iter().filter(own).collect()
}

/// Each imapd process says `needle` once at LOG_ERR, however often its logins meet the cause
/// (Cyrus reuses a process for up to 30 connections, `-U 30`).
fn said_once_per_process(lines: &[LogLine], needle: &str, all: &[LogLine]) {
    assert!(!lines.is_empty(), "no line with {needle:?} at the default sasl_log_level:\n{}", texts(all));
    const LOG_ERR: u8 = 3;
    assert!(lines.iter().all(|l| l.severity() == LOG_ERR), "not at LOG_ERR:\n{}", texts(lines));
    let pids: BTreeSet<&str> = lines.iter().map(|l| l.tag.as_str()).collect();
    assert_eq!(pids.len(), lines.len(), "repeated within a process:\n{}", texts(lines));
}

#[test]
fn the_admins_problems_are_logged_at_the_default_level_once_per_process_and_the_users_are_not() {
    let slapd = Slapd::start();
    let imapd = Imapd::start(ImapdOptions::for_slapd(&slapd).unset("sasl_log_level"));

    // No password the service account can read, and a hashed one: libsasl2 then says "user not
    // found"; ldapbind's line says what is wrong.
    for (user, needle) in [
        (slapd::NOPASS, format!("ldapbind: entry {} of {} has no userPassword", slapd::NOPASS.dn, slapd::NOPASS.mail)),
        (slapd::SSHA_USER, "is stored as {SSHA}, which libsasl2's pwcheck_method auxprop cannot check".to_owned()),
    ] {
        let mark = imapd.mark();
        for _ in 0..3 {
            assert_refused(user.mail, &imapd.login_command(user.mail, "whatever"));
        }
        let lines = lines_with(&imapd, mark, &needle);
        said_once_per_process(&lines, &needle, &imapd.syslog_since(mark));
    }

    // The user's own mistakes stay below the default level.
    let mark = imapd.mark();
    assert_refused("a wrong password", &imapd.login_command(USER, "wrong"));
    assert_refused("an unknown user", &imapd.login_command("nobody@example.com", "x"));
    imapd.expect_log(mark, "badlogin: localhost [127.0.0.1] plaintext (nobody@example.com)");
    let ldapbind = lines_with(&imapd, mark, "");
    assert!(ldapbind.is_empty(), "ldapbind lines for the user's mistakes:\n{}", texts(&ldapbind));
    drop(imapd);

    // The directory's side: unreachable, the service account refused, the search base missing.
    let closed = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    for (opts, needle) in [
        (
            ImapdOptions::seed(&format!("ldap://127.0.0.1:{closed}/{}", slapd::BASE_DN)),
            format!("ldapbind: cannot connect to LDAP server 127.0.0.1:{closed}"),
        ),
        (ImapdOptions::for_slapd(&slapd).set("sasl_ldapdb_pw", "not-the-password"), "49".to_owned()),
        (ImapdOptions::seed(&format!("{}/dc=nowhere,dc=local", slapd.url())), "dc=nowhere,dc=local".to_owned()),
        // The seed's `%44`: the run-time line itself says what the escape became.
        (
            ImapdOptions::seed(&format!("{}/dc=users%44dc=local", slapd.url())),
            format!(
                "search base dc=usersDdc=local (from the DN in sasl_ldapdb_uri) does not exist or {} may not see it \
                 (32 noSuchObject); fix the DN in sasl_ldapdb_uri or the server's ACLs; note: `%44` decodes to `D`, \
                 not a comma; write a comma as `%2C` or just `,` ({}/dc=users%2Cdc=local)",
                slapd::SERVICE_DN,
                slapd.url()
            ),
        ),
    ] {
        let imapd = Imapd::start(opts.unset("sasl_log_level"));
        let mark = imapd.mark();
        for _ in 0..3 {
            assert_refused("a login", &imapd.login_command(USER, PASSWORD));
        }
        let lines = lines_with(&imapd, mark, &needle);
        said_once_per_process(&lines, &needle, &imapd.syslog_since(mark));
    }
}

#[test]
fn an_unreachable_directory_is_remote_authentication_server_unavailable_for_every_mechanism() {
    // ldapbind returns SASL_UNAVAIL; libsasl2 passes it through every mechanism and imapd tells
    // the client. imapd's badlogin line after AUTHENTICATE is its own doing: for any result but
    // SASL_NOUSER it asks libsasl2 for the user name first (sasl_getprop SASL_USERNAME), which
    // fails with SASL_NOTDONE when the name was never canonicalised and replaces the error
    // detail with "SASL(-6): can't request information until later in exchange". ldapbind's
    // own line, just before it, names the cause.
    let closed = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let uri = format!("ldap://127.0.0.1:{closed}/{}", slapd::BASE_DN);
    let imapd = Imapd::start(ImapdOptions::seed(&uri).unset("sasl_log_level"));
    let cause = format!("ldapbind: cannot connect to LDAP server 127.0.0.1:{closed}: connection refused");
    let first = imapd.mark();
    for mech in ["PLAIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256"] {
        let mark = imapd.mark();
        let login = imapd.imtest(Some(mech), USER, PASSWORD);
        assert_refused(mech, &login);
        assert!(login.transcript.contains("A01 NO remote authentication server unavailable"), "{}", login.transcript);
        let bad = imapd.expect_log(mark, &format!("badlogin: localhost [127.0.0.1] {mech} (-notset-)"));
        assert!(bad.text.contains("[SASL(-6): can't request information until later in exchange"), "{bad}");
    }
    let login = imapd.authenticate_login(USER, PASSWORD);
    assert!(login.transcript.contains("A01 NO remote authentication server unavailable"), "{}", login.transcript);
    // The LOGIN command (sasl_checkpass) keeps the code and ldapbind's text.
    let mark = imapd.mark();
    let login = imapd.imtest(Some("login"), USER, PASSWORD);
    assert!(
        login.transcript.contains("NO Login failed: remote authentication server unavailable"),
        "{}",
        login.transcript
    );
    let bad = imapd.expect_log(mark, &format!("badlogin: localhost [127.0.0.1] plaintext ({USER})"));
    assert!(bad.text.contains(&format!("[SASL(-24): remote authentication server unavailable: {cause}")), "{bad}");
    // At the default log level: ldapbind's own line, once per imapd process.
    let lines = lines_with(&imapd, first, &cause);
    said_once_per_process(&lines, &cause, &imapd.syslog_since(first));
}

#[test]
fn a_password_file_others_may_read_is_said_at_the_default_level() {
    use std::os::unix::fs::PermissionsExt;
    let slapd = Slapd::start();
    let dir = tempfile::Builder::new().prefix("ldapbind-pwfile-").tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let pw_file = dir.path().join("ldapbind.secret");
    fs::write(&pw_file, format!("{}\n", slapd::SERVICE_PW)).expect("write");
    // root:mail 0640: imapd (cyrus, group mail) reads it, and so does every other member of mail.
    let mail_gid = fs::read_to_string("/etc/group")
        .expect("/etc/group")
        .lines()
        .find_map(|l| l.strip_prefix("mail:")?.split(':').nth(1)?.parse::<u32>().ok())
        .expect("group mail");
    std::os::unix::fs::chown(&pw_file, Some(0), Some(mail_gid)).expect("chown");
    fs::set_permissions(&pw_file, fs::Permissions::from_mode(0o640)).expect("chmod");
    let opts = ImapdOptions::for_slapd(&slapd)
        .unset("sasl_log_level")
        .unset("sasl_ldapdb_pw")
        .set("sasl_ldapdb_pw_file", &pw_file.display().to_string());
    let imapd = Imapd::start(opts);
    let mark = imapd.mark();
    assert_ok("a login with the password file", &imapd.login_command(USER, PASSWORD));
    let needle = format!("ldapbind: sasl_ldapdb_pw_file: {} is readable by its group (mode 0640)", pw_file.display());
    let lines = lines_with(&imapd, mark, &needle);
    said_once_per_process(&lines, &needle, &imapd.syslog_since(mark));
}

/// README "Configure Cyrus IMAP" shows only the lines that differ from Debian's stock
/// /etc/imapd.conf: none of its options is in the stock file, so adding them never repeats an
/// option (which Cyrus refuses: `option 'allowplaintext' was specified twice`, exit 78).
#[test]
fn the_readmes_imapd_conf_lines_can_be_added_to_debians_stock_file() {
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_ascii_lowercase()))
            .collect()
    };
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let section = readme.split("## Configure Cyrus IMAP").nth(1).expect("the section").split("\n## ").next().unwrap();
    let block = section.split("```\n").nth(1).expect("the imapd.conf block");
    let readme_keys = keys(block);
    assert!(readme_keys.contains(&"sasl_ldapdb_uri".to_owned()), "{readme_keys:?}");
    let stock = fs::read_to_string("/etc/imapd.conf").expect("Debian's /etc/imapd.conf (cyrus-common)");
    let stock_keys = keys(&stock);
    // What the README says the stock file already has, and ldapbind needs.
    for (key, value) in [("allowplaintext", "yes"), ("sasl_pwcheck_method", "auxprop")] {
        assert!(stock.lines().any(|l| l.trim() == format!("{key}: {value}")), "stock file lacks {key}: {value}");
    }
    let repeated: Vec<&String> = readme_keys.iter().filter(|k| stock_keys.contains(k)).collect();
    assert!(repeated.is_empty(), "README lines Debian's imapd.conf already has: {repeated:?}");
}
