//! ldapbind-authd run by a test or by the demo: in the foreground (`-d`, its log in a file),
//! as user `nobody` with its default socket group `sasl` (Debian's, of which cyrus is a member),
//! listening on `run/mux` in a temp dir of its own (the daemon owns the `run` directory);
//! killed, its socket and temp dir removed when dropped, also on a panic (which shows its log).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::imapd::wait_bounded;

/// Bound on the daemon's start (its "listening on" line) and on [`Authd::wait_log`].
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Started as root, the daemon drops to this user after taking its socket.
pub const AS_USER: [&str; 2] = ["--user", "nobody"];

pub struct Authd {
    bin: PathBuf,
    /// The configuration arguments: `--sasl-conf FILE` or `-C imapd.conf --service imap`.
    config: Vec<OsString>,
    dir: tempfile::TempDir,
    /// The running daemon; `None` before [`Authd::start`] and after it was reaped.
    pub child: Option<Child>,
}

impl Authd {
    /// The daemon's temp dir, no daemon yet: its [`Authd::socket`] can go into a configuration
    /// (imapd's `sasl_saslauthd_path`) before the daemon reads that configuration.
    pub fn prepare(bin: impl Into<PathBuf>) -> Authd {
        let dir = tempfile::Builder::new().prefix("ldapbind-authd-").tempdir().expect("create the authd temp dir");
        // imapd runs as cyrus and must reach the socket.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod the authd temp dir");
        Authd { bin: bin.into(), config: Vec::new(), dir, child: None }
    }

    /// Starts `bin` with these configuration arguments and waits for its "listening on" line.
    pub fn start<S: Into<OsString> + Clone>(&mut self, config: &[S]) {
        self.config = config.iter().cloned().map(Into::into).collect();
        self.child = Some(self.spawn());
        self.wait_ready();
    }

    /// Another daemon with the same arguments, log appended to the same file.
    pub fn spawn(&self) -> Child {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the authd log");
        Command::new(&self.bin)
            .args(&self.config)
            .arg("--socket")
            .arg(self.socket())
            .args(AS_USER)
            .arg("-d")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the authd log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()))
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.log().contains(" listening on ") {
            if let Some(status) = self.child.as_mut().expect("a started daemon").try_wait().expect("try_wait") {
                panic!("ldapbind-authd exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "ldapbind-authd did not start:\n{}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/mux")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("authd.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("a started daemon").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own unreaped child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// SIGTERM and the exit status, within `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let status = wait_bounded(self.child.as_mut().expect("a started daemon"), within);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        self.wait_line(needle).is_some()
    }

    /// The first log line containing `needle`, waited for.
    pub fn wait_line(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Authd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Killed, it could not remove its socket (the temp dir goes with it anyway).
        let _ = fs::remove_file(self.socket());
        if thread::panicking() {
            eprintln!("--- ldapbind-authd log ---\n{}", self.log());
        }
    }
}
