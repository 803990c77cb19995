//! ldapbind inside a long-lived host: bounded waits, failover with back-off, reconnect after a
//! directory restart, fork, threads. Real slapd, real libsasl2; one host per process (nextest).

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::sasl::{PluginDir, SASL_LOG_ERR, SASL_LOG_FAIL, SASL_OK, Server};
use common::slapd::{self, Slapd};

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

/// glibc waits 2 x 5 s for a DNS server that never answers; ldapbind must not wait with it.
#[test]
fn a_hung_resolver_costs_one_login_at_most_the_timeout() {
    // A DNS server on a loopback address of its own that reads queries and never answers.
    let dns = std::net::UdpSocket::bind("127.0.0.2:53").expect("bind a silent DNS server on 127.0.0.2:53 (root)");
    let tmp = tempfile::tempdir().unwrap();
    let resolv = tmp.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.2\noptions timeout:5 attempts:2\n").unwrap();
    let script = format!(
        "mount --bind '{}' /etc/resolv.conf && exec \"$0\" --ignored --exact dns_child_login --nocapture --test-threads=1",
        resolv.display()
    );
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(std::env::current_exe().unwrap())
        .env(DNS_CHILD_ENV, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed after {:?}:\n{stdout}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(dns);
}
