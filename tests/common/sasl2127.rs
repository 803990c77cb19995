//! A process on Debian 11's libsasl2 2.1.27 (unpacked by scripts/deps.sh), for its
//! `pwcheck_method: auxprop-hashed`: the calling test binary re-run with `LD_LIBRARY_PATH` on
//! that library. A test binary using [`Host2127`] declares the host as
//!
//! ```ignore
//! #[test]
//! #[ignore = "the libsasl2 2.1.27 host process, run by the tests"]
//! fn libsasl2_2127_host() {
//!     common::sasl2127::host_main();
//! }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::sasl::{self, PluginDir, Server};

const OPTIONS_ENV: &str = "LDAPBIND_2127_OPTIONS";

/// The host: libsasl2 initialised with the options in `OPTIONS_ENV` (`key=value` lines) and
/// 2.1.27's mechanisms plus ldapbind; then one `sasl_checkpass` per stdin line `USER\tPASSWORD`,
/// answered with its log lines (`log LEVEL TEXT`) and `rc CODE ERRDETAIL`. The body of an
/// ignored test named `libsasl2_2127_host` in the test binary that uses [`Host2127`].
pub fn host_main() {
    let text = std::env::var(OPTIONS_ENV).expect("started by Host2127");
    let options: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let dir = PluginDir::with_ldapbind_on(&sasl::libsasl2_2127().join("sasl2"));
    let server = Server::init("ldapbind-2127", dir.path(), &options);
    // Which libsasl2 the loader took: the parent checks it is 2.1.27's.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let lib = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.contains("/libsasl2.so"));
    // On a line of its own: libtest has printed "test libsasl2_2127_host ... " without one.
    println!("\nlibsasl2 {}", lib.unwrap_or("none"));
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let (user, password) = line.split_once('\t').expect("USER\tPASSWORD");
        Server::clear_logs();
        let conn = server.new_conn("imap");
        let rc = conn.checkpass(user.as_bytes(), password.as_bytes());
        for (level, msg) in Server::logs() {
            println!("log {level} {msg}");
        }
        println!("rc {rc} {}", conn.errdetail());
    }
    server.done();
}

/// One `sasl_checkpass` in the 2.1.27 host.
#[derive(Debug)]
pub struct Checked {
    pub rc: i32,
    pub errdetail: String,
    pub logs: Vec<String>,
}

/// The 2.1.27 host process; killed on drop.
pub struct Host2127 {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Host2127 {
    pub fn start(options: &[(&str, &str)]) -> Host2127 {
        let text: String = options.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let lib = sasl::libsasl2_2127();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "libsasl2_2127_host", "--nocapture", "--test-threads=1"])
            .env("LD_LIBRARY_PATH", &lib)
            .env(OPTIONS_ENV, text)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut host = Host2127 { stdin: child.stdin.take(), child, lines };
        let loaded = host.next_line(|l| l.starts_with("libsasl2 "));
        let path = loaded.trim_start_matches("libsasl2 ");
        assert!(path.starts_with(lib.to_str().unwrap()), "the host loaded {path}, not {}", lib.display());
        host
    }

    /// Skips lines until one matches; panics when the host ends or takes 30 s.
    fn next_line(&mut self, mut wanted: impl FnMut(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("the 2.1.27 host stopped answering ({e}): {:?}", self.child.try_wait()),
            }
        }
    }

    pub fn checkpass(&mut self, user: &str, password: &str) -> Checked {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{user}\t{password}").unwrap();
        stdin.flush().unwrap();
        let mut logs = Vec::new();
        let last = self.next_line(|l| {
            l.starts_with("rc ") || {
                if let Some(log) = l.strip_prefix("log ") {
                    logs.push(log.to_owned());
                }
                false
            }
        });
        let (rc, errdetail) = last["rc ".len()..].split_once(' ').unwrap_or((&last["rc ".len()..], ""));
        Checked { rc: rc.parse().unwrap(), errdetail: errdetail.to_owned(), logs }
    }
}

impl Drop for Host2127 {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
