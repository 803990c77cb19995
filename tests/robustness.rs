//! ldapbind inside a long-lived host: bounded waits, failover with back-off, reconnect after a
//! directory restart, fork, threads. Real slapd, real libsasl2; one host per process (nextest).

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fakeldap::{self, FakeLdap, Op, Reply};
use common::sasl::{
    PluginDir, SASL_BADAUTH, SASL_FAIL, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_LOG_WARN, SASL_OK, SASL_UNAVAIL, Server,
};
use common::slapd::{self, Slapd};
use ldapbind::config::{Config, FileData, Sources};
use ldapbind::error::{Cause, Error};
use ldapbind::ldap::client::LdapDirectory;
use ldapbind::ldap::{Directory, Found};

const APP: &str = "ldapbind-robust";

fn options(uri: &str, timeout: &str) -> Vec<(String, String)> {
    [
        ("auxprop_plugin", "ldapbind"),
        ("pwcheck_method", "auxprop"),
        ("log_level", "3"),
        ("ldapdb_uri", uri),
        ("ldapdb_id", slapd::SERVICE_DN),
        ("ldapdb_pw", slapd::SERVICE_PW),
        ("ldapdb_timeout", timeout),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn init(dir: &PluginDir, opts: &[(String, String)]) -> Server {
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::init(APP, dir.path(), &opts)
}

fn login(server: &Server) -> i32 {
    let john = slapd::JOHNDOE;
    server.new_conn("imap").checkpass(john.uid.as_bytes(), john.pw().as_bytes())
}

fn err_lines(needle: &str) -> Vec<String> {
    Server::logs().into_iter().filter(|(l, m)| *l == SASL_LOG_ERR && m.contains(needle)).map(|(_, m)| m).collect()
}

/// A TCP listener that accepts and then never answers; counts the connections it accepted.
struct Silent {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                // Read and discard in the background so the client's writes never block.
                let mut reader = stream.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                });
                held.push(stream);
            }
        });
        Silent { port, accepted }
    }
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[test]
fn a_frozen_server_costs_one_login_at_most_the_timeout() {
    let slapd = Slapd::start();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "1"));
    assert_eq!(login(&server), SASL_OK);
    slapd.freeze();
    let started = Instant::now();
    assert_ne!(login(&server), SASL_OK);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "login took {took:?} with ldapdb_timeout 1");
    let lines = err_lines("did not answer the search within 1s");
    assert!(lines.iter().any(|l| l.contains(&format!("127.0.0.1:{}", slapd.port()))), "{:#?}", Server::logs());
    slapd.thaw();
    // The host is not blocked afterwards: the next login works on a fresh connection.
    assert_eq!(login(&server), SASL_OK, "{:#?}", Server::logs());
}

#[test]
fn a_listener_that_never_answers_times_out_on_the_bind() {
    let silent = Silent::start();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("ldap://127.0.0.1:{}/dc=users,dc=local", silent.port), "1"));
    for _ in 0..2 {
        let started = Instant::now();
        assert_ne!(login(&server), SASL_OK);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    assert!(!err_lines("did not answer the bind within 1s").is_empty(), "{:#?}", Server::logs());
}

#[test]
fn failover_skips_a_dead_server_during_its_back_off() {
    let mut slapd = Slapd::start();
    let silent = Silent::start();
    // A refused port (bound then closed), a frozen one, then the real server.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri = format!(
        "ldap://127.0.0.1:{refused}/{base} ldap://127.0.0.1:{}/{base} {}/{base}",
        silent.port,
        slapd.url(),
        base = slapd::BASE_DN
    );
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&uri, "1"));
    assert_eq!(login(&server), SASL_OK, "{:#?}", Server::logs());
    assert_eq!(silent.accepted(), 1);
    for _ in 0..20 {
        assert_eq!(login(&server), SASL_OK);
    }
    // Force new connections: restart the live server; the kept connection dies and the
    // replacement must skip both dead servers, which are still backing off.
    for _ in 0..3 {
        slapd.restart();
        assert_eq!(login(&server), SASL_OK, "{:#?}", Server::logs());
    }
    assert_eq!(silent.accepted(), 1, "the frozen server was retried during its back-off");
}

#[test]
fn a_directory_restart_between_logins_fails_no_login() {
    let mut slapd = Slapd::start();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "2"));
    for round in 0..5 {
        assert_eq!(login(&server), SASL_OK, "round {round}: {:#?}", Server::logs());
        assert_eq!(login(&server), SASL_OK);
        slapd.restart();
    }
    assert_eq!(login(&server), SASL_OK);
}

#[test]
fn threads_log_in_concurrently() {
    let slapd = Slapd::start_with(slapd::SlapdOptions { stats_log: false, ..Default::default() });
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "5"));
    let failures = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let server = &server;
            let failures = &failures;
            scope.spawn(move || {
                let users = [slapd::JOHNDOE, slapd::ALICE, slapd::OBRIEN];
                for i in 0..500 {
                    let u = users[(i + t) % users.len()];
                    let conn = server.new_conn("imap");
                    if conn.checkpass(u.mail.as_bytes(), u.pw().as_bytes()) != SASL_OK
                        || conn.username().as_deref() != Some(u.mail)
                    {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(failures.load(Ordering::SeqCst), 0, "{:#?}", Server::logs());
}

#[test]
fn after_fork_parent_and_child_each_use_their_own_connection() {
    let slapd = Slapd::start();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "5"));
    assert_eq!(login(&server), SASL_OK);
    let before = slapd.count_ops().connections;
    // SAFETY (test): the child only runs this thread's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    let failures = (0..200).filter(|_| login(&server) != SASL_OK).count();
    if pid == 0 {
        unsafe { libc::_exit(if failures == 0 { 0 } else { 1 }) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child logins failed (status {status})");
    assert_eq!(failures, 0, "parent logins failed");
    let after = slapd.count_ops().connections;
    assert_eq!(after - before, 1, "the child opened exactly one connection of its own, the parent kept its own");
}

#[test]
fn sasl_done_closes_the_kept_connection() {
    let slapd = Slapd::start();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "5"));
    assert_eq!(login(&server), SASL_OK);
    let mark = slapd.mark();
    server.done();
    assert!(
        slapd.wait_for_log(&mark, "UNBIND", Duration::from_secs(3)),
        "no unbind after sasl_done: {}",
        slapd.log_since(&mark)
    );
}

/// A server that answers every request with bytes that are not LDAP (here: an HTTP reply).
fn garbage_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::Write;
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x30\x84\xff\xff\xff\xff");
                }
            });
        }
    });
    port
}

#[test]
fn a_server_answering_garbage_fails_the_login_cleanly() {
    let port = garbage_server();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("ldap://127.0.0.1:{port}/dc=users,dc=local"), "1"));
    for _ in 0..3 {
        let started = Instant::now();
        assert_ne!(login(&server), SASL_OK);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    // ldap3 waits for a decodable message, so garbage ends as a timeout that names the server
    // and says to check host and port (the usual cause: sasl_ldapdb_uri points at another service).
    let needle = format!("LDAP server 127.0.0.1:{port} did not answer the bind within 1s");
    let lines = err_lines(&needle);
    assert!(lines.iter().all(|l| l.contains("host and port in sasl_ldapdb_uri")), "{lines:#?}");
    // The admin's problem: ERR once per process, FAIL on the later logins.
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
    let later = Server::logs().into_iter().filter(|(l, m)| *l == SASL_LOG_FAIL && m.contains(&needle)).count();
    assert_eq!(later, 2, "{:#?}", Server::logs());
    assert!(
        !Server::logs().iter().any(|(_, m)| m.contains("internal error")),
        "a malformed answer is a server problem, not a panic: {:#?}",
        Server::logs()
    );
}

const DNS_CHILD_ENV: &str = "LDAPBIND_DNS_CHILD";
const HUNG_NAME: &str = "ldap.hang.test";

#[test]
#[ignore = "run by a_hung_resolver_costs_one_login_at_most_the_timeout, in a mount namespace"]
fn dns_child_login() {
    std::env::var(DNS_CHILD_ENV).expect("started by a_hung_resolver_costs_one_login_at_most_the_timeout");
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("ldap://{HUNG_NAME}/dc=users,dc=local"), "1"));
    for _ in 0..2 {
        let started = Instant::now();
        assert_ne!(login(&server), SASL_OK);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "login took {took:?} with a resolver that never answers");
    }
    let lines = err_lines(&format!("resolving {HUNG_NAME} from sasl_ldapdb_uri took longer than 1s"));
    assert!(!lines.is_empty(), "{:#?}", Server::logs());
}

/// Run `program args` with /etc/resolv.conf naming only a DNS server on `ns` (a loopback
/// address of its own per test, as tests run in parallel) that reads queries and never answers,
/// in a mount namespace of its own. Needs root (as the rest of the suite).
fn with_silent_dns(ns: &str, program: &std::path::Path, args: &[&str]) -> (std::process::Output, Duration) {
    let dns = std::net::UdpSocket::bind((ns, 53))
        .unwrap_or_else(|e| panic!("bind a silent DNS server on {ns}:53 (root): {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {ns}\noptions timeout:5 attempts:2\n")).unwrap();
    let script = format!("mount --bind '{}' /etc/resolv.conf && exec \"$0\" \"$@\"", resolv.display());
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(program)
        .args(args)
        .env(DNS_CHILD_ENV, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let took = started.elapsed();
    drop(dns);
    (out, took)
}

/// Run the ignored test `name` of this binary under [`with_silent_dns`]; it must pass.
fn child_with_silent_dns(ns: &str, name: &str) {
    let exe = std::env::current_exe().unwrap();
    let (out, took) = with_silent_dns(ns, &exe, &["--ignored", "--exact", name, "--nocapture", "--test-threads=1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed after {took:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// glibc waits 2 x 5 s for a DNS server that never answers; ldapbind must not wait with it.
#[test]
fn a_hung_resolver_costs_one_login_at_most_the_timeout() {
    child_with_silent_dns("127.0.0.2", "dns_child_login");
}

#[test]
#[ignore = "run by a_hung_resolver_starts_one_lookup_thread_per_name, in a mount namespace"]
fn dns_child_concurrent_logins() {
    std::env::var(DNS_CHILD_ENV).expect("started by a_hung_resolver_starts_one_lookup_thread_per_name");
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("ldap://{HUNG_NAME}/dc=users,dc=local"), "0.5"));
    let lookups = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "ldapbind-dns"))
            .count()
    };
    let most = AtomicUsize::new(0);
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    let until = Instant::now() + Duration::from_secs(3);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                while Instant::now() < until {
                    let started = Instant::now();
                    assert_ne!(login(&server), SASL_OK);
                    let took = started.elapsed();
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
            });
        }
        while Instant::now() < until {
            most.fetch_max(lookups(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert_eq!(most, 1, "{most} lookup threads for one host name during a resolver hang");
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < Duration::from_millis(900), "a login took {slowest:?} with ldapdb_timeout 0.5");
}

/// 16 threads logging in during a resolver hang share one lookup instead of starting one each.
#[test]
fn a_hung_resolver_starts_one_lookup_thread_per_name() {
    child_with_silent_dns("127.0.0.3", "dns_child_concurrent_logins");
}

/// ldapbind-check resolves the way the plugin does: bounded by ldapdb_timeout.
#[test]
fn ldapbind_check_waits_no_longer_than_the_timeout_on_a_hung_resolver() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ldapbind-check"));
    let uri = format!("ldapdb_uri=ldap://{HUNG_NAME}/dc=users,dc=local");
    let id = format!("ldapdb_id={}", slapd::SERVICE_DN);
    let pw = format!("ldapdb_pw={}", slapd::SERVICE_PW);
    let args = ["-o", &uri, "-o", &id, "-o", &pw, "-o", "ldapdb_timeout=1", "johndoe"];
    let (out, took) = with_silent_dns("127.0.0.4", bin, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(took < Duration::from_millis(1800), "ldapbind-check took {took:?} with ldapdb_timeout 1:\n{stdout}");
    assert!(
        stdout.contains(&format!("resolving {HUNG_NAME} from sasl_ldapdb_uri took longer than 1s")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- The directory through the library, against scripted servers -----------------------------

struct Opts(Vec<(String, String)>);

impl Sources for Opts {
    fn option(&self, key: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
    fn read_file(&self, path: &std::path::Path) -> std::io::Result<FileData> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.display().to_string()))
    }
}

fn directory(uri: &str, timeout: &str) -> LdapDirectory {
    let config = Config::from_sources(&Opts(options(uri, timeout))).unwrap_or_else(|e| panic!("{e:?}"));
    LdapDirectory::new(Arc::new(config), None)
}

const FAKE_BASE: &str = "dc=users,dc=local";
const FAKE_DN: &str = "cn=johndoe,dc=users,dc=local";
const FAKE_PW: &str = "secret";

/// A directory that holds johndoe with the password [`FAKE_PW`].
fn fake_directory() -> FakeLdap {
    FakeLdap::directory(FAKE_DN, &[("uid", "johndoe"), ("userPassword", FAKE_PW)])
}

fn find(dir: &LdapDirectory) -> Result<Found, Error> {
    dir.find("(uid=johndoe)", &["userPassword".to_owned()])
}

fn fake_login(server: &Server) -> i32 {
    server.new_conn("imap").checkpass(b"johndoe", FAKE_PW.as_bytes())
}

/// A server that answers the step `at` (a bind, or a search) with result `rc`, and everything
/// else as [`fake_directory`] does.
fn answering(at: fn(&Op) -> bool, rc: u8) -> FakeLdap {
    let attrs = vec![("uid".to_owned(), "johndoe".to_owned()), ("userPassword".to_owned(), FAKE_PW.to_owned())];
    FakeLdap::start(move |r| match &r.op {
        op if at(op) && matches!(op, Op::Bind(..)) => {
            Reply::Send(vec![fakeldap::bind_response(r.msgid, rc, "scripted")])
        }
        op if at(op) => Reply::Send(vec![fakeldap::search_done(r.msgid, rc, "scripted")]),
        _ => fakeldap::answer(r, FAKE_DN, &attrs),
    })
}

fn service_bind(op: &Op) -> bool {
    matches!(op, Op::Bind(dn, _) if dn == slapd::SERVICE_DN)
}
fn user_bind(op: &Op) -> bool {
    matches!(op, Op::Bind(dn, _) if dn == FAKE_DN)
}
fn search(op: &Op) -> bool {
    *op == Op::Search
}

/// busy, unavailable, time limit, referral, other: the next server is asked, and when none is
/// left the error is "unavailable", never the code of a wrong password.
#[test]
fn passing_results_fail_over_and_are_never_a_wrong_password() {
    for (step, at) in [("service bind", service_bind as fn(&Op) -> bool), ("user search", search)] {
        for (rc, name) in [(3, "timeLimitExceeded"), (10, "referral"), (51, "busy"), (52, "unavailable"), (80, "other")]
        {
            let bad = answering(at, rc);
            let good = fake_directory();
            let dir = directory(&format!("{} {}", bad.url(FAKE_BASE), good.url(FAKE_BASE)), "2");
            assert!(matches!(find(&dir), Ok(Found::One(_))), "{step} {rc}: the second server was not asked");

            let dir = directory(&bad.url(FAKE_BASE), "2");
            let e = find(&dir).unwrap_err();
            let m = e.to_string();
            assert_eq!(e.sasl_code(), SASL_UNAVAIL, "{step} {rc}: {m}");
            assert!(m.contains(&format!("{rc} {name}: scripted")) && m.contains(step), "{m}");
            assert!(!m.contains("sasl_ldapdb_pw"), "a busy server is no reason to check the password: {m}");
        }
    }
    // The password check binds as the user on its own connection: the same rules.
    let bad = answering(user_bind, 51);
    let good = fake_directory();
    let dir = directory(&format!("{} {}", bad.url(FAKE_BASE), good.url(FAKE_BASE)), "2");
    assert!(matches!(dir.check_password(FAKE_DN, FAKE_PW), Ok(true)));
    let dir = directory(&bad.url(FAKE_BASE), "2");
    let e = dir.check_password(FAKE_DN, FAKE_PW).unwrap_err();
    assert_eq!(e.sasl_code(), SASL_UNAVAIL, "{e}");
}

/// The doctor's look below the search base (`first_below_base`) follows the same rules: a busy
/// server is asked no more, the next one answers; alone, it is unavailable, not a refusal.
#[test]
fn a_busy_server_fails_the_look_below_the_base_over_too() {
    let bad = answering(search, 51);
    let good = fake_directory();
    let dir = directory(&format!("{} {}", bad.url(FAKE_BASE), good.url(FAKE_BASE)), "2");
    let below = dir.first_below_base();
    assert!(matches!(&below, Ok(Some(dn)) if dn == FAKE_DN), "the second server was not asked: {below:?}");
    let e = directory(&bad.url(FAKE_BASE), "2").first_below_base().unwrap_err();
    assert_eq!(e.sasl_code(), SASL_UNAVAIL, "{e}");
    assert!(e.to_string().contains("with 51 busy: scripted (a directory problem, not a wrong password)"), "{e}");
}

/// A refused service account or search is the admin's to fix: not SASL_BADAUTH either.
#[test]
fn configuration_refusals_are_not_wrong_passwords() {
    for (at, rc, fix) in [
        (service_bind as fn(&Op) -> bool, 49, "check sasl_ldapdb_id and sasl_ldapdb_pw"),
        (service_bind, 50, "check sasl_ldapdb_id and sasl_ldapdb_pw"),
        (service_bind, 32, "check sasl_ldapdb_id and sasl_ldapdb_pw"),
        (search, 32, "fix the DN in sasl_ldapdb_uri or the server's ACLs"),
        (search, 50, "grant the service account search and read access"),
    ] {
        let bad = answering(at, rc);
        let e = find(&directory(&bad.url(FAKE_BASE), "2")).unwrap_err();
        assert_eq!(e.sasl_code(), SASL_FAIL, "{rc}: {e}");
        assert!(e.to_string().contains(fix), "{rc}: {e}");
    }
}

/// Through libsasl2: a busy directory fails the login with SASL_UNAVAIL (never SASL(-13), on
/// which fail2ban bans) and one error line naming the result.
#[test]
fn a_busy_directory_fails_a_login_as_unavailable() {
    let busy = answering(service_bind, 51);
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&busy.url(FAKE_BASE), "2"));
    let rc = fake_login(&server);
    assert_eq!(rc, SASL_UNAVAIL, "{:#?}", Server::logs());
    assert_ne!(rc, SASL_BADAUTH);
    let lines = err_lines("answered the service bind with 51 busy");
    assert_eq!(lines.len(), 1, "{:#?}", Server::logs());
}

/// Through libsasl2: with a second server, a busy first one costs nothing but a warning.
#[test]
fn a_busy_server_fails_over_to_the_next_one() {
    let busy = answering(search, 51);
    let good = fake_directory();
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&format!("{} {}", busy.url(FAKE_BASE), good.url(FAKE_BASE)), "2"));
    assert_eq!(fake_login(&server), SASL_OK, "{:#?}", Server::logs());
    let warned = Server::logs()
        .into_iter()
        .filter(|(l, m)| *l == SASL_LOG_WARN && m.contains("answered the user search with 51 busy"))
        .count();
    assert_eq!(warned, 1, "{:#?}", Server::logs());
    // Skipped during its back-off while the other answers.
    let before = busy.requests().len();
    for _ in 0..3 {
        assert_eq!(fake_login(&server), SASL_OK);
    }
    assert_eq!(busy.requests().len(), before, "the busy server was asked again during its back-off");
}

/// Two servers, a warm pool, the first one frozen: no login fails, none waits a full timeout.
#[test]
fn a_frozen_server_with_a_warm_pool_is_skipped() {
    let first = Slapd::start_with(slapd::SlapdOptions { stats_log: false, ..Default::default() });
    let second = Slapd::start_with(slapd::SlapdOptions { stats_log: false, ..Default::default() });
    let uri = format!("{}/{base} {}/{base}", first.url(), second.url(), base = slapd::BASE_DN);
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&uri, "1"));
    // Warm: several idle connections to the first server.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| (0..20).for_each(|_| assert_eq!(login(&server), SASL_OK)));
        }
    });
    first.freeze();
    let started = Instant::now();
    for n in 0..4 {
        let t = Instant::now();
        assert_eq!(login(&server), SASL_OK, "login {n} after the freeze: {:#?}", Server::logs());
        assert!(t.elapsed() < Duration::from_millis(1200), "login {n} took {:?}", t.elapsed());
    }
    assert!(started.elapsed() < Duration::from_millis(1500), "4 logins took {:?}", started.elapsed());
    first.thaw();
}

/// A connection a firewall forgot while it was idle (no FIN, no RST) is replaced within the
/// same timeout, for searches and for password checks alike.
#[test]
fn a_connection_dropped_silently_while_idle_is_replaced() {
    let attrs = vec![("uid".to_owned(), "johndoe".to_owned()), ("userPassword".to_owned(), FAKE_PW.to_owned())];
    // The first connection answers two requests (bind and search, or two password checks), then
    // goes silent; every later connection answers.
    let fake =
        FakeLdap::start(
            move |r| {
                if r.conn == 0 && r.nth >= 2 { Reply::Silent } else { fakeldap::answer(r, FAKE_DN, &attrs) }
            },
        );
    let dir = directory(&fake.url(FAKE_BASE), "1");
    assert!(matches!(find(&dir), Ok(Found::One(_))));
    let started = Instant::now();
    let second = find(&dir);
    assert!(matches!(second, Ok(Found::One(_))), "{second:?}");
    assert!(started.elapsed() < Duration::from_millis(1200), "took {:?}", started.elapsed());
    assert_eq!(fake.accepted(), 2);

    let attrs = vec![("userPassword".to_owned(), FAKE_PW.to_owned())];
    let verify =
        FakeLdap::start(
            move |r| {
                if r.conn == 0 && r.nth >= 2 { Reply::Silent } else { fakeldap::answer(r, FAKE_DN, &attrs) }
            },
        );
    let dir = directory(&verify.url(FAKE_BASE), "1");
    for _ in 0..2 {
        assert!(matches!(dir.check_password(FAKE_DN, FAKE_PW), Ok(true)));
    }
    let started = Instant::now();
    let third = dir.check_password(FAKE_DN, FAKE_PW);
    assert!(matches!(third, Ok(true)), "{third:?}");
    assert!(started.elapsed() < Duration::from_millis(1200), "took {:?}", started.elapsed());
}

/// The password-check pool is replaced after a directory restart like the service pool.
#[test]
fn a_password_check_after_a_directory_restart_succeeds() {
    let mut slapd = Slapd::start();
    let dir = directory(&format!("{}/{}", slapd.url(), slapd::BASE_DN), "2");
    let john = slapd::JOHNDOE;
    for round in 0..3 {
        let ok = dir.check_password(john.dn, john.pw());
        assert!(matches!(ok, Ok(true)), "round {round}: {ok:?}");
        assert!(matches!(dir.check_password(john.dn, "wrong"), Ok(false)));
        slapd.restart();
    }
}

/// However many servers do not answer, a login waits `ldapdb_timeout` at most in all.
#[test]
fn silent_servers_share_one_timeout() {
    let slapd = Slapd::start();
    let silent: Vec<Silent> = (0..5).map(|_| Silent::start()).collect();
    let mut uri: Vec<String> =
        silent.iter().map(|s| format!("ldap://127.0.0.1:{}/{}", s.port, slapd::BASE_DN)).collect();
    uri.push(format!("{}/{}", slapd.url(), slapd::BASE_DN));
    let dir = PluginDir::with_ldapbind();
    let server = init(&dir, &options(&uri.join(" "), "3"));
    let started = Instant::now();
    let rc = login(&server);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3300), "login took {took:?} with ldapdb_timeout 3");
    assert_eq!(rc, SASL_OK, "{:#?}", Server::logs());
    assert!(silent.iter().all(|s| s.accepted() == 1));
}

/// A server that drips its answer cannot stretch an operation past the timeout.
#[test]
fn a_dripping_server_cannot_stretch_an_operation() {
    let attrs = [("userPassword", FAKE_PW)];
    let fake = FakeLdap::start(move |r| match r.op {
        Op::Bind(..) => Reply::Drip(vec![fakeldap::bind_response(r.msgid, 0, "")], Duration::from_millis(400)),
        Op::Search => Reply::Drip(
            vec![fakeldap::search_entry(r.msgid, FAKE_DN, &attrs), fakeldap::search_done(r.msgid, 0, "")],
            Duration::from_millis(400),
        ),
        _ => Reply::Nothing,
    });
    let dir = directory(&fake.url(FAKE_BASE), "1");
    let started = Instant::now();
    let e = find(&dir).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1150), "took {took:?} with ldapdb_timeout 1");
    assert!(matches!(&e, Error::Ldap(a) if matches!(a.cause, Cause::TimedOut { .. })), "{e}");
    assert!(e.to_string().contains("did not answer the search"), "{e}");
}

/// The peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// A value of 300 MB is refused as it arrives: the host's memory does not grow with it.
#[test]
fn a_huge_message_is_refused_as_it_arrives() {
    let fake = FakeLdap::start(|r| match r.op {
        Op::Bind(..) => Reply::Send(vec![fakeldap::bind_response(r.msgid, 0, "")]),
        Op::Search => {
            Reply::Huge { msgid: r.msgid, dn: FAKE_DN.to_owned(), attr: "userPassword".to_owned(), len: 300 << 20 }
        }
        _ => Reply::Nothing,
    });
    let dir = directory(&fake.url(FAKE_BASE), "5");
    let before = peak_rss();
    let started = Instant::now();
    let result = find(&dir);
    let (took, grew) = (started.elapsed(), peak_rss().saturating_sub(before));
    assert!(grew < 32 << 20, "the peak RSS grew by {} MiB in {took:?}", grew >> 20);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let e = result.unwrap_err();
    assert!(e.to_string().contains("over ldapbind's limit of 1048576 bytes"), "{e}");
    assert_eq!(e.sasl_code(), SASL_UNAVAIL, "{e}");
}

/// ldapi:// goes through the same connection code: a socket path, no lookup, the same limits.
#[test]
fn an_ldapi_socket_is_served_like_tcp() {
    use std::os::unix::net::UnixListener;
    let fake = fake_directory();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ldapi");
    let listener = UnixListener::bind(&path).unwrap();
    let port = fake.port();
    // Pass each ldapi connection on to the scripted server.
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut client, mut server) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c2, &mut s2));
            std::thread::spawn(move || std::io::copy(&mut server, &mut client));
        }
    });
    let encoded = path.to_str().unwrap().replace('/', "%2F");
    let dir = directory(&format!("ldapi://{encoded}/{FAKE_BASE}"), "2");
    assert!(matches!(find(&dir), Ok(Found::One(_))));
    assert!(matches!(dir.check_password(FAKE_DN, FAKE_PW), Ok(true)));
    let missing = tmp.path().join("missing").to_str().unwrap().replace('/', "%2F");
    let e = find(&directory(&format!("ldapi://{missing}/{FAKE_BASE}"), "2")).unwrap_err();
    assert_eq!(e.sasl_code(), SASL_UNAVAIL, "{e}");
}
