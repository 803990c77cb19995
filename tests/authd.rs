//! ldapbind-authd against a real slapd whose passwords nobody may read (glauth-true), asked by
//! Debian's testsaslauthd, by real libsasl2 and by raw sockets sending malformed requests.
mod common;

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::authd::{AS_USER, Authd};
use common::imapd::{Imapd, ImapdOptions, wait_bounded};
use common::sasl;
use common::slapd::{self, CRYPT_USER, JOHNDOE, SSHA_USER, Slapd, SlapdOptions, TWIN_A};

const BIN: &str = env!("CARGO_BIN_EXE_ldapbind-authd");
const TESTSASLAUTHD: &str = "/usr/sbin/testsaslauthd";
/// Started as root, the daemon becomes this user (the package's `ldapbind` is not on test machines).
/// sasl_ldapdb_timeout of the daemon under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The daemon's margin (server::MARGIN) and some scheduling slack for a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

fn glauth_like() -> Slapd {
    Slapd::start_with(SlapdOptions { hidden_passwords: true, ..SlapdOptions::default() })
}

/// The options the daemon reads, as a SASL application config.
fn conf_for(slapd: &Slapd) -> String {
    format!(
        "ldapdb_uri: {}/{}\nldapdb_id: {}\nldapdb_pw: {}\nldapdb_timeout: {}\n",
        slapd.url(),
        slapd::BASE_DN,
        slapd::SERVICE_DN,
        slapd::SERVICE_PW,
        TIMEOUT.as_secs()
    )
}

/// The daemon under test with `conf` as its `--sasl-conf` file (`app.conf` in its temp dir).
fn start_authd(conf: &str) -> Authd {
    let mut authd = Authd::prepare(BIN);
    rewrite_conf(&authd, conf);
    let conf_arg = authd.dir().join("app.conf").into_os_string();
    authd.start(&["--sasl-conf".into(), conf_arg]);
    authd
}

fn rewrite_conf(authd: &Authd, conf: &str) {
    fs::write(authd.dir().join("app.conf"), conf).unwrap();
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One request as libsasl2 writes it; the answer and how long it took.
fn ask(socket: &Path, login: &str, password: &str, service: &str, realm: &str) -> (String, Duration) {
    let t = Instant::now();
    let mut s = UnixStream::connect(socket).unwrap();
    // A connection refused at once for lack of workers may be answered and closed before the
    // request is written (EPIPE); its answer is still there to read.
    let _ = s.write_all(&ldapbind::authd::protocol::encode_request([
        login.as_bytes(),
        password.as_bytes(),
        service.as_bytes(),
        realm.as_bytes(),
    ]));
    let answer = ldapbind::authd::protocol::read_answer(&mut s, Duration::from_secs(10)).expect("an answer");
    (answer, t.elapsed())
}

/// Debian's testsaslauthd: its exit status and output.
fn testsaslauthd(socket: &Path, user: &str, password: &str) -> (bool, String) {
    let out = Command::new(TESTSASLAUTHD)
        .args(["-u", user, "-p", password, "-s", "imap", "-f"])
        .arg(socket)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn testsaslauthd_right_wrong_empty_unknown_on_a_directory_that_hides_passwords() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let sock = authd.socket();
    // The service account really cannot read a password here.
    assert!(!slapd.log_text().is_empty());
    for (user, pw) in [(JOHNDOE.uid, JOHNDOE.pw()), (JOHNDOE.mail, JOHNDOE.pw()), (SSHA_USER.uid, SSHA_USER.pw())] {
        let (ok, out) = testsaslauthd(&sock, user, pw);
        assert!(ok && out.contains("OK"), "{user}: {out}");
    }
    let (ok, out) = testsaslauthd(&sock, CRYPT_USER.mail, CRYPT_USER.pw());
    assert!(ok, "{out}");
    let (ok, out) = testsaslauthd(&sock, JOHNDOE.uid, "wrong");
    assert!(!ok && out.contains("NO"), "{out}");
    assert!(authd.wait_log(&format!("login {} (service imap) refused: wrong password", JOHNDOE.uid)));
    let (ok, _) = testsaslauthd(&sock, "nobody-here", "x");
    assert!(!ok);
    assert!(authd.wait_log("login nobody-here (service imap) refused: unknown user"));
    // Ambiguous: the shared mail matches two entries.
    let (ok, _) = testsaslauthd(&sock, slapd::SHARED_MAIL, TWIN_A.pw());
    assert!(!ok);
    assert!(authd.wait_log("refused: ambiguous"));
    // Empty password: NO, and no bind reaches the directory.
    let mark = slapd.mark();
    let (answer, _) = ask(&sock, JOHNDOE.uid, "", "imap", "");
    assert!(answer.starts_with("NO"), "{answer}");
    assert!(authd.wait_log("empty password"));
    assert_eq!(slapd.ops_since(&mark).binds, 0);
    assert!(!authd.log().contains(JOHNDOE.pw()), "a password was logged:\n{}", authd.log());
}

#[test]
fn a_login_split_at_the_at_sign_is_put_back_together() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    // What libsasl2 sends for jdoe@example.com: login and realm apart.
    let (local, domain) = JOHNDOE.mail.split_once('@').unwrap();
    let (answer, _) = ask(&authd.socket(), local, JOHNDOE.pw(), "imap", domain);
    assert_eq!(answer, "OK");
    let (answer, _) = ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "");
    assert_eq!(answer, "OK");
}

#[test]
fn malformed_requests_are_answered_or_dropped_in_time_and_the_daemon_goes_on() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let sock = authd.socket();
    let mark = slapd.mark();
    let raw = |bytes: &[u8], shut: bool| -> (Option<String>, Duration) {
        let t = Instant::now();
        let mut s = UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(bytes);
        if shut {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        let answer = ldapbind::authd::protocol::read_answer(&mut s, Duration::from_secs(10)).ok();
        (answer, t.elapsed())
    };
    let enc = ldapbind::authd::protocol::encode_request;
    let big = vec![b'a'; 65535];
    let cases: Vec<(&str, Vec<u8>, bool, Option<&str>)> = vec![
        ("length past the data", vec![0, 200, b'j', b'd'], true, None),
        ("zero-length fields", enc([b"", b"", b"", b""]), false, Some("NO")),
        ("64 KiB login", enc([&big, b"pw", b"imap", b""]), false, Some("NO")),
        ("64 KiB password", enc([b"johndoe", &big, b"imap", b""]), false, Some("NO")),
        ("NUL in login", enc([b"john\0doe", b"pw", b"imap", b""]), false, Some("NO")),
        ("invalid UTF-8", enc([b"john\xffdoe", b"pw", b"imap", b""]), false, Some("NO")),
        ("3 bytes then wait", vec![0, 7, b'j'], false, None),
        ("nothing", Vec::new(), false, None),
    ];
    for (what, bytes, shut, want) in cases {
        let (answer, took) = raw(&bytes, shut);
        match want {
            Some(prefix) => assert!(answer.as_deref().is_some_and(|a| a.starts_with(prefix)), "{what}: {answer:?}"),
            None => assert_eq!(answer, None, "{what}"),
        }
        assert!(took < TIMEOUT + SLACK + Duration::from_secs(1), "{what}: took {took:?}");
    }
    assert_eq!(slapd.ops_since(&mark).binds, 0, "no bad request reaches the directory");
    assert_eq!(slapd.ops_since(&mark).searches, 0, "no bad request reaches the directory");
    // A service name cannot forge a log line.
    let (answer, _) = ask(&sock, "nobody-here", "x", "imap\nldapbind-authd: forged", "");
    assert!(answer.starts_with("NO"));
    assert!(authd.wait_log("(service imap?ldapbind-authd: forged)"), "{}", authd.log());
    assert!(!authd.log().lines().any(|l| l.starts_with("ldapbind-authd: forged")), "{}", authd.log());
    let (answer, _) = ask(&sock, JOHNDOE.uid, JOHNDOE.pw(), "imap", "");
    assert_eq!(answer, "OK", "the daemon is unharmed");
}

#[test]
fn sixty_four_concurrent_clients_all_get_their_answer() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let sock = authd.socket();
    let answers: Vec<(bool, String)> = thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let sock = &sock;
                s.spawn(move || {
                    let right = i % 2 == 0;
                    let pw = if right { JOHNDOE.pw() } else { "wrong" };
                    (right, ask(sock, JOHNDOE.uid, pw, "imap", "").0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (right, answer) in answers {
        assert_eq!(answer.starts_with("OK"), right, "{answer}");
    }
}

/// glibc's malloc heaps beyond the main one (the arenas other threads allocate in): an
/// `rw-p` mapping starting on a 64 MiB boundary followed by its `---p` reserve, 64 MiB in all.
fn malloc_heaps(pid: i32) -> usize {
    const HEAP: u64 = 64 << 20;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let regions: Vec<(u64, u64, String)> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let (a, b) = range.split_once('-')?;
            let anon = f.nth(3).is_none();
            anon.then(|| Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?, perms.to_owned())))?
        })
        .collect();
    regions
        .windows(2)
        .filter(|w| {
            let ((a, b, p), (c, d, q)) = (&w[0], &w[1]);
            a % HEAP == 0 && p == "rw-p" && q == "---p" && b == c && d - a == HEAP
        })
        .count()
}

#[test]
fn the_workers_share_two_malloc_arenas_so_the_memory_stays_flat() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let sock = authd.socket();
    thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| assert!(ask(&sock, JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0.starts_with("OK")));
        }
    });
    // One arena per worker kept what each freed, and the RSS crept up as requests spread over
    // them (benches/authd.rs, phase 3); with two, there is one heap besides the main one.
    let heaps = malloc_heaps(authd.pid());
    assert!(heaps <= 1, "{heaps} malloc heaps besides the main arena");
}

#[test]
fn a_verified_login_costs_one_search_one_bind_and_no_new_connection() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    // Warm both pools.
    for _ in 0..2 {
        assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    }
    let mark = slapd.mark();
    for _ in 0..5 {
        assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    }
    thread::sleep(Duration::from_millis(200));
    let ops = slapd.ops_since(&mark);
    assert_eq!((ops.searches, ops.binds, ops.connections), (5, 5, 0), "{ops:?}");
    // For the record (cargo nextest run --test authd --no-capture -E 'test(one_search_one_bind)').
    let n = 500;
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    }
    let took = t.elapsed();
    eprintln!("{n} sequential verified logins in {took:?}: {:.0}/s", f64::from(n) / took.as_secs_f64());
}

#[test]
fn a_frozen_directory_costs_each_request_the_timeout_and_no_more() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    slapd.freeze();
    let round = || -> Vec<(String, Duration)> {
        thread::scope(|s| {
            let hs: Vec<_> =
                (0..16).map(|_| s.spawn(|| ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", ""))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    // Two rounds touch every worker (and its allocator arena) once.
    let mut results = round();
    results.extend(round());
    let warm = rss_kib(authd.pid());
    for _ in 0..4 {
        results.extend(round());
    }
    let after = rss_kib(authd.pid());
    slapd.thaw();
    for (answer, took) in &results {
        assert!(answer.starts_with("NO"), "{answer}");
        assert!(*took <= TIMEOUT + SLACK, "answered after {took:?}");
    }
    eprintln!("RSS with a frozen directory: {warm} KiB after 32 requests, {after} KiB after 96");
    let slowest = results.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!("slowest answer with a frozen directory and sasl_ldapdb_timeout 1: {slowest:?}");
    assert!(after <= warm + 1024, "the daemon's RSS grew from {warm} KiB to {after} KiB");
    assert!(authd.wait_log("refused: "));
    // After the thaw the daemon works again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0 != "OK" {
        assert!(Instant::now() < deadline, "no OK after the directory came back:\n{}", authd.log());
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn more_clients_than_workers_and_queue_are_told_no_at_once() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    slapd.freeze();
    let n = ldapbind::authd::server::WORKERS + ldapbind::authd::server::QUEUE + 10;
    let results: Vec<(String, Duration)> = thread::scope(|s| {
        let hs: Vec<_> =
            (0..n).map(|_| s.spawn(|| ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", ""))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    slapd.thaw();
    let busy: Vec<&(String, Duration)> = results.iter().filter(|(a, _)| a == "NO busy").collect();
    assert!(busy.len() >= 10, "{} busy answers", busy.len());
    assert!(results.iter().all(|(a, t)| a.starts_with("NO") && *t <= TIMEOUT + SLACK), "{results:?}");
    assert!(authd.wait_log("workers busy"));
}

#[test]
fn after_a_directory_restart_no_login_fails() {
    let mut slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    for _ in 0..3 {
        assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    }
    slapd.restart();
    for i in 0..5 {
        let (answer, _) = ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "");
        assert_eq!(answer, "OK", "login {i} after the restart:\n{}", authd.log());
    }
}

#[test]
fn sigterm_answers_what_is_in_flight_removes_the_socket_and_exits_0() {
    let slapd = glauth_like();
    let mut authd = start_authd(&conf_for(&slapd));
    let sock = authd.socket();
    slapd.freeze();
    let (answers, status) = thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| ask(&sock, JOHNDOE.uid, JOHNDOE.pw(), "imap", ""))).collect();
        thread::sleep(Duration::from_millis(200));
        let status = authd.terminate(TIMEOUT + SLACK + Duration::from_secs(2));
        (hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>(), status)
    });
    slapd.thaw();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status");
    for (answer, took) in answers {
        assert!(answer.starts_with("NO") && took <= TIMEOUT + SLACK, "{answer} after {took:?}");
    }
    assert!(!sock.exists(), "the socket is removed");
}

#[test]
fn sighup_reads_a_good_configuration_and_keeps_the_old_one_for_a_broken_one() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    // Broken: the old configuration stays.
    rewrite_conf(&authd, "ldapdb_uri: ldap://127.0.0.1:389/\nldapdb_timeout: soon\n");
    authd.signal(libc::SIGHUP);
    assert!(authd.wait_log("the old one stays in use"), "{}", authd.log());
    assert_eq!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    // Good: a filter that finds users by mail only.
    rewrite_conf(&authd, &format!("{}ldapdb_filter: (mail=%u)\n", conf_for(&slapd)));
    authd.signal(libc::SIGHUP);
    assert!(authd.wait_log("configuration read again"), "{}", authd.log());
    assert!(ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0.starts_with("NO"));
    assert_eq!(ask(&authd.socket(), JOHNDOE.mail, JOHNDOE.pw(), "imap", "").0, "OK");
}

#[test]
fn a_live_daemon_keeps_its_socket_and_a_stale_one_is_replaced() {
    let slapd = glauth_like();
    let mut first = start_authd(&conf_for(&slapd));
    let out = Command::new(BIN)
        .arg("--sasl-conf")
        .arg(first.dir().join("app.conf"))
        .arg("--socket")
        .arg(first.socket())
        .args(AS_USER)
        .arg("-d")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another daemon answers on"), "{out:?}");
    // Killed without cleanup: the socket file stays, and the next start replaces it.
    first.signal(libc::SIGKILL);
    wait_bounded(first.child.as_mut().unwrap(), Duration::from_secs(5)).unwrap();
    first.child = None;
    assert!(first.socket().exists());
    fs::remove_file(first.log_path()).unwrap();
    first.child = Some(first.spawn());
    first.wait_ready();
    assert!(first.log().contains("replaced the stale socket"));
    assert_eq!(ask(&first.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
}

/// Real libsasl2 with the built plugin as auxprop, `pwcheck_method` and the daemon's socket.
fn libsasl2(slapd: &Slapd, authd: &Authd, pwcheck: &str) -> (sasl::PluginDir, sasl::Server) {
    let uri = format!("{}/{}", slapd.url(), slapd::BASE_DN);
    let socket = authd.socket().to_str().unwrap().to_owned();
    let options: Vec<(&str, &str)> = vec![
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", pwcheck),
        ("saslauthd_path", &socket),
        ("auto_transition", "yes"),
        ("mech_list", "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"),
        ("log_level", "7"),
        ("ldapdb_uri", &uri),
        ("ldapdb_id", slapd::SERVICE_DN),
        ("ldapdb_pw", slapd::SERVICE_PW),
    ];
    let dir = sasl::PluginDir::with_ldapbind();
    let server = sasl::Server::init("ldapbind-authd-test", dir.path(), &options);
    (dir, server)
}

#[test]
fn libsasl2_with_saslauthd_and_auto_transition_logs_in_stores_nothing_and_logs_no_error() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let (_dir, server) = libsasl2(&slapd, &authd, "saslauthd");
    let mark = slapd.mark();
    for name in [JOHNDOE.uid, JOHNDOE.mail] {
        let conn = server.new_conn("imap");
        let rc = conn.checkpass(name.as_bytes(), JOHNDOE.pw().as_bytes());
        assert_eq!(rc, sasl::SASL_OK, "{name}: {} {:#?}", conn.errdetail(), sasl::Server::logs());
    }
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(JOHNDOE.uid.as_bytes(), b"wrong"), sasl::SASL_BADAUTH);
    // Nothing was written to the directory.
    assert_eq!(slapd.ops_since(&mark).other_ops, 0);
    let errors: Vec<(i32, String)> =
        sasl::Server::logs().into_iter().filter(|(l, _)| *l <= sasl::SASL_LOG_ERR).collect();
    assert!(errors.is_empty(), "{errors:#?}\nall: {:#?}", sasl::Server::logs());
    // libsasl2 enables auto_transition only when an auxprop plugin says it can store
    // (sasl_auxprop_store(NULL, NULL, NULL)); ldapbind says no, so no setpass runs at all.
    assert!(sasl::Server::any_log_containing("setpass").is_empty(), "{:#?}", sasl::Server::logs());
}

#[test]
fn auxprop_then_saslauthd_keeps_every_mechanism_for_cleartext_users_and_plain_for_hashed_ones() {
    // The cleartext-readable directory: johndoe's password is readable, the {SSHA} user's is not usable.
    let slapd = Slapd::start();
    let authd = start_authd(&conf_for(&slapd));
    let (_dir, server) = libsasl2(&slapd, &authd, "auxprop saslauthd");
    for mech in ["CRAM-MD5", "SCRAM-SHA-256"] {
        let r = sasl::exchange(&server, mech, JOHNDOE.uid, None, JOHNDOE.pw());
        assert!(r.ok(), "{mech}: {r:?}");
    }
    for user in [JOHNDOE, SSHA_USER, CRYPT_USER] {
        let conn = server.new_conn("imap");
        assert_eq!(conn.checkpass(user.uid.as_bytes(), user.pw().as_bytes()), sasl::SASL_OK, "{}", user.uid);
    }
    assert!(authd.wait_log(&format!("login {} (service imap) verified", SSHA_USER.uid)));
    let conn = server.new_conn("imap");
    assert_eq!(conn.checkpass(SSHA_USER.uid.as_bytes(), b"wrong"), sasl::SASL_BADAUTH);
}

#[test]
fn with_saslauthd_in_pwcheck_method_a_hidden_password_is_a_debug_note() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let (_dir, server) = libsasl2(&slapd, &authd, "auxprop saslauthd");
    for user in [JOHNDOE, SSHA_USER] {
        let conn = server.new_conn("imap");
        assert_eq!(conn.checkpass(user.uid.as_bytes(), user.pw().as_bytes()), sasl::SASL_OK, "{}", user.uid);
    }
    let loud: Vec<(i32, String)> =
        sasl::Server::logs().into_iter().filter(|(l, m)| *l <= sasl::SASL_LOG_WARN && m.contains("ldapbind")).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert!(
        sasl::Server::logs().iter().any(|(l, m)| *l == sasl::SASL_LOG_DEBUG && m.contains("left to saslauthd")),
        "{:#?}",
        sasl::Server::logs()
    );
}

#[test]
fn cyrus_imapd_logs_in_through_the_daemon_by_uid_and_by_mail() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let socket = authd.socket().to_str().unwrap().to_owned();
    let imapd = Imapd::start(
        ImapdOptions::for_slapd(&slapd)
            .set("sasl_pwcheck_method", "saslauthd")
            .set("sasl_saslauthd_path", &socket)
            .set("sasl_mech_list", "PLAIN LOGIN"),
    );
    for name in [JOHNDOE.uid, JOHNDOE.mail] {
        let plain = imapd.imtest(Some("PLAIN"), name, JOHNDOE.pw());
        assert!(plain.ok, "PLAIN {name}:\n{}\n{}", plain.transcript, authd.log());
        let login = imapd.authenticate_login(name, JOHNDOE.pw());
        assert!(login.ok, "AUTHENTICATE LOGIN {name}:\n{}", login.transcript);
        let command = imapd.login_command(name, JOHNDOE.pw());
        assert!(command.ok, "LOGIN {name}:\n{}", command.transcript);
    }
    let hashed = imapd.login_command(SSHA_USER.mail, SSHA_USER.pw());
    assert!(hashed.ok, "{}", hashed.transcript);
    let r = imapd.login_command(JOHNDOE.mail, "wrong");
    assert!(!r.ok, "{}", r.transcript);
    assert!(authd.wait_log("login jdoe@example.com (service imap) refused: wrong password"), "{}", authd.log());
    // An unknown name stops at ldapbind's canonicalisation (the seed selects it), before the daemon.
    let mark = imapd.mark();
    assert!(!imapd.login_command("nobody@example.com", "x").ok);
    assert!(imapd.wait_for_log(mark, "user nobody@example.com not found", Duration::from_secs(5)).is_some());
    assert!(!imapd.login_command(JOHNDOE.mail, "").ok);
    assert!(!authd.log().contains(JOHNDOE.pw()));
}

/// `ldapbind-check --authd SOCKET --password-stdin USER`: exit status and output.
fn check_authd(socket: &Path, user: &str, password: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ldapbind-check"))
        .arg("--authd")
        .arg(socket)
        .args(["--password-stdin", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ldapbind_check_asks_the_daemon_and_explains_the_answer() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let (code, out) = check_authd(&authd.socket(), JOHNDOE.mail, JOHNDOE.pw());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepts the password (login jdoe, realm example.com, service imap)"), "{out}");
    let (code, out) = check_authd(&authd.socket(), JOHNDOE.mail, "wrong");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refuses the password") && out.contains("log line"), "{out}");
    assert!(!out.contains("wrong\n") && !out.contains(JOHNDOE.pw()));
    let (code, out) = check_authd(&authd.dir().join("nothing-here"), JOHNDOE.mail, JOHNDOE.pw());
    assert_eq!(code, 1);
    assert!(out.contains("no socket at") && out.contains("start ldapbind-authd"), "{out}");
}

#[test]
fn cyrus_imapd_with_auxprop_then_saslauthd_keeps_cram_and_scram_for_cleartext_users() {
    // The cleartext-readable directory, with its {SSHA} and {CRYPT} users.
    let slapd = Slapd::start();
    let authd = start_authd(&conf_for(&slapd));
    let socket = authd.socket().to_str().unwrap().to_owned();
    // The seed's options (sasl_auto_transition: yes included) plus the daemon.
    let imapd = Imapd::start(
        ImapdOptions::for_slapd(&slapd)
            .set("sasl_pwcheck_method", "auxprop saslauthd")
            .set("sasl_saslauthd_path", &socket),
    );
    let mark = slapd.mark();
    for mech in ["CRAM-MD5", "SCRAM-SHA-256", "PLAIN"] {
        let r = imapd.imtest(Some(mech), JOHNDOE.mail, JOHNDOE.pw());
        assert!(r.ok, "{mech}:\n{}", r.transcript);
    }
    assert!(!authd.log().contains("login jdoe@example.com"), "cleartext users never need the daemon");
    for user in [SSHA_USER, CRYPT_USER] {
        let r = imapd.imtest(Some("PLAIN"), user.mail, user.pw());
        assert!(r.ok, "{}:\n{}\n{}", user.mail, r.transcript, authd.log());
        assert!(imapd.login_command(user.mail, user.pw()).ok);
        assert!(!imapd.imtest(Some("PLAIN"), user.mail, "wrong").ok);
    }
    assert!(authd.wait_log(&format!("login {} (service imap) refused: wrong password", SSHA_USER.mail)));
    // sasl_auto_transition wrote nothing.
    assert_eq!(slapd.ops_since(&mark).other_ops, 0);
}

#[test]
fn the_start_up_line_shows_the_configuration_and_no_secret_and_a_refused_service_bind_names_the_fix() {
    let slapd = glauth_like();
    let secret = "Zq9-not-the-service-password";
    let conf =
        conf_for(&slapd).replace(&format!("ldapdb_pw: {}\n", slapd::SERVICE_PW), &format!("ldapdb_pw: {secret}\n"));
    let authd = start_authd(&conf);
    let start = authd.log();
    assert!(
        start.contains(&format!("bind simple as {}", slapd::SERVICE_DN)) && start.contains("timeout 1s"),
        "{start}"
    );
    let (answer, _) = ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "");
    assert_eq!(answer, "NO directory unavailable");
    assert!(authd.wait_log("check sasl_ldapdb_id and sasl_ldapdb_pw"), "{}", authd.log());
    assert!(authd.log().contains("login johndoe (service imap) refused: "), "{}", authd.log());
    assert!(!authd.log().contains(secret) && !authd.log().contains(JOHNDOE.pw()), "{}", authd.log());
}

#[test]
fn a_dead_first_url_fails_over_to_the_next() {
    let slapd = glauth_like();
    // Nothing listens on port 9 of 127.0.0.1 (discard; refused at once).
    let conf = conf_for(&slapd).replace(
        &format!("ldapdb_uri: {}/{}", slapd.url(), slapd::BASE_DN),
        &format!("ldapdb_uri: ldap://127.0.0.1:9/{0} {1}/{0}", slapd::BASE_DN, slapd.url()),
    );
    let authd = start_authd(&conf);
    for _ in 0..3 {
        let (answer, took) = ask(&authd.socket(), JOHNDOE.uid, JOHNDOE.pw(), "imap", "");
        assert_eq!(answer, "OK", "{}", authd.log());
        assert!(took < TIMEOUT, "{took:?}");
    }
}

/// The pid of the ldapbind-authd whose command line names `socket` (unique per test).
fn daemon_pid(socket: &Path) -> i32 {
    let wanted = socket.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.first().is_some_and(|a| a.ends_with(b"ldapbind-authd")) && args.contains(&wanted.as_bytes()) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no ldapbind-authd with {wanted}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs a background daemon the test lost track of.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2); the pid is the daemon this test started (checked to be alive first).
        unsafe {
            if libc::kill(self.0, 0) == 0 {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn without_d_it_goes_to_the_background_after_saying_what_stops_it() {
    let slapd = glauth_like();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("app.conf");
    fs::write(&conf, "ldapdb_uri: ldap://127.0.0.1:389/\nldapdb_timeout: soon\n").unwrap();
    let socket = dir.path().join("run/mux");
    let start =
        || Command::new(BIN).arg("--sasl-conf").arg(&conf).arg("--socket").arg(&socket).args(AS_USER).output().unwrap();
    // A broken configuration: said on standard error, exit 1, no socket.
    let out = start();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`soon` is not a number of seconds"), "{out:?}");
    assert!(!socket.exists());
    // A good one: the command returns 0 at once and the daemon answers in the background.
    fs::write(&conf, conf_for(&slapd)).unwrap();
    let t = Instant::now();
    let out = start();
    assert!(out.status.success(), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    if !Path::new("/dev/log").exists() {
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach syslog"), "{out:?}");
    }
    let pid = daemon_pid(&socket);
    let _guard = KillOnDrop(pid);
    assert_eq!(ask(&socket, JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
    // SAFETY: kill(2) on the daemon found above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: kill(pid, 0) only asks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 || socket.exists() {
        assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_daemon_even_when_its_socket_file_was_removed() {
    let slapd = glauth_like();
    let mut authd = start_authd(&conf_for(&slapd));
    fs::remove_file(authd.socket()).unwrap();
    let status = authd.terminate(Duration::from_secs(3));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", authd.log());
}

#[test]
fn cyrus_imapd_without_ldapbind_canonicalising_sends_every_refusal_to_the_daemon() {
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let socket = authd.socket().to_str().unwrap().to_owned();
    let imapd = Imapd::start(
        ImapdOptions::for_slapd(&slapd)
            .unset("sasl_canon_user_plugin")
            .unset("sasl_ldapdb_canon_attr")
            .set("sasl_pwcheck_method", "saslauthd")
            .set("sasl_saslauthd_path", &socket)
            .set("sasl_mech_list", "PLAIN LOGIN"),
    );
    assert!(imapd.login_command(JOHNDOE.mail, JOHNDOE.pw()).ok);
    assert!(imapd.imtest(Some("PLAIN"), JOHNDOE.uid, JOHNDOE.pw()).ok);
    for (name, pw, line) in [
        (JOHNDOE.mail, "wrong", "login jdoe@example.com (service imap) refused: wrong password"),
        ("nobody@example.com", "x", "login nobody@example.com (service imap) refused: unknown user"),
        (slapd::SHARED_MAIL, TWIN_A.pw(), "login shared@example.com (service imap) refused: ambiguous"),
    ] {
        let r = imapd.login_command(name, pw);
        assert!(!r.ok, "{name}: {}", r.transcript);
        assert!(authd.wait_log(line), "{line}:\n{}", authd.log());
    }
    let r = imapd.imtest(Some("PLAIN"), JOHNDOE.mail, "");
    assert!(!r.ok, "{}", r.transcript);
}

/// The id of `name` in /etc/group.
fn group_id(name: &str) -> u32 {
    let groups = fs::read_to_string("/etc/group").unwrap();
    let line = groups.lines().find(|l| l.starts_with(&format!("{name}:"))).expect("the group exists (deps.sh)");
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// testsaslauthd as uid 4242 with `gid` as its only group.
fn testsaslauthd_as(gid: u32, socket: &Path) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new(TESTSASLAUTHD)
        .args(["-u", JOHNDOE.uid, "-p", JOHNDOE.pw(), "-f"])
        .arg(socket)
        .uid(4242)
        .gid(gid)
        .output()
        .unwrap()
}

#[test]
fn started_as_root_it_runs_as_its_user_and_only_its_group_may_connect() {
    use std::os::unix::fs::MetadataExt;
    let slapd = glauth_like();
    let authd = start_authd(&conf_for(&slapd));
    let status = fs::read_to_string(format!("/proc/{}/status", authd.pid())).unwrap();
    let field = |name: &str| -> Vec<String> {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    // real, effective, saved, filesystem: all nobody, and no supplementary group.
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert!(field("Groups:").is_empty(), "{status}");
    assert!(authd.log().contains("running as user nobody"), "{}", authd.log());
    let sasl = group_id("sasl");
    let sock = authd.socket();
    let dir = fs::metadata(sock.parent().unwrap()).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.uid(), dir.gid()), (0o750, 65534, sasl));
    let socket = fs::metadata(&sock).unwrap();
    assert_eq!((socket.mode() & 0o7777, socket.uid(), socket.gid()), (0o660, 65534, sasl));
    // Outside the group: refused at connect.
    let out = testsaslauthd_as(4242, &sock);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Permission denied"), "{text}");
    // In it: answered.
    let out = testsaslauthd_as(sasl, &sock);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0: OK \"Success.\"", "{out:?}");
    // SIGHUP reads as nobody: a configuration it may not read is refused and the old one kept.
    let conf = authd.dir().join("app.conf");
    fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    authd.signal(libc::SIGHUP);
    assert!(authd.wait_log("the old one stays in use"), "{}", authd.log());
    assert!(authd.log().contains("Permission denied"), "{}", authd.log());
    assert_eq!(ask(&sock, JOHNDOE.uid, JOHNDOE.pw(), "imap", "").0, "OK");
}
