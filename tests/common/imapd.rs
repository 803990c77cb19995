//! A private Cyrus IMAP server (Debian's `cyrus-imapd`) that loads ldapbind, for end-to-end
//! tests and the demo.
//!
//! [`Imapd::start`] writes its own `imapd.conf` and `cyrus.conf` into a temp dir (config
//! directory, partition and pid file in there too, `-C <imapd.conf>` on every service as in the
//! seed, `imap` on an ephemeral `127.0.0.1` port and nothing else) and starts Cyrus's `master`
//! in the foreground (`-D`) with `SASL_PATH` pointing at a plugin directory holding the built
//! `libldapbind.so` and the system's mechanism plugins ([`PluginDir::with_ldapbind`]).
//!
//! **Syslog.** imapd (and libsasl2 inside it) log only through syslog(3), i.e. datagrams to
//! `/dev/log`, and there may be no syslog daemon at all. master therefore runs in a private
//! mount namespace (`unshare -m`, propagation private, so nothing leaks to the host): a small
//! `sh` script mounts a tmpfs over `/dev` whose entries are symlinks to the real ones (the real
//! `/dev` is rbind-mounted under the temp dir first), plus `/dev/log` pointing at a unix datagram
//! socket the test owns. A reader thread collects every datagram ([`Imapd::syslog`]).
//!
//! **Users.** master starts as root (the namespace needs it) and drops to `cyrus:mail` itself;
//! the config directory and partition belong to `cyrus`, the config files are `root:mail 0640`.
//!
//! **Cleanup.** The `sh` that sets up the namespace (the "helper") is the leader of a new
//! process group; master and every imapd stay in it. `Drop` sends SIGTERM to the whole group
//! (master shuts its children down cleanly), waits (bounded) until no live process is left in
//! the group, then SIGKILLs whatever remains. If the test process dies without unwinding, the
//! helper gets SIGTERM through `PR_SET_PDEATHSIG` and stops master (master itself cannot keep a
//! parent-death signal: the kernel clears it when master switches to the cyrus user). As with
//! [`crate::common::slapd::Slapd`], start and drop an `Imapd` on the test's own thread.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::sasl::{self, PluginDir};
use super::slapd::{self, Slapd};

/// Debian's Cyrus master (`/usr/sbin/cyrmaster` links to `/usr/lib/cyrus/bin/master`).
pub const MASTER: &str = "/usr/lib/cyrus/bin/master";
/// Debian's imtest (cyrus-clients); `cyrus imtest` runs the same program.
pub const IMTEST: &str = "/usr/lib/cyrus/bin/imtest";
/// `unshare` from util-linux.
pub const UNSHARE: &str = "/usr/bin/unshare";
/// The seed's login.
pub const USER: &str = "jdoe@example.com";
pub const PASSWORD: &str = "dogood";
/// Every mechanism the tests use, as in the seed's `sasl_mech_list` advice.
pub const MECH_LIST: &str = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-256";

/// How long [`Imapd::start`] waits for master to be ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `Drop`/[`Imapd::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on each imtest run and each raw IMAP exchange.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default wait for a line to reach the syslog reader.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace helper: `sh -c SCRIPT ldapbind-imapd DIR SOCKET SETUP master args...`.
const NAMESPACE_SCRIPT: &str = r#"set -eu
dir=$1 sock=$2 setup=$3
shift 3
trap 'exit 143' TERM INT HUP
# A /dev of our own: the host's entries as symlinks, and /dev/log going to the test's socket.
mount --rbind /dev "$dir/realdev"
mount -t tmpfs -o mode=755,size=1m ldapbind-imapd-dev /dev
ln -s "$dir"/realdev/* /dev/
rm -f /dev/log
ln -s "$sock" /dev/log
if [ -n "$setup" ]; then eval "$setup"; fi
"$@" &
master=$!
trap 'kill -TERM "$master" 2>/dev/null || true' TERM INT HUP
status=0
wait "$master" || status=$?
# A trapped signal interrupts wait; wait for master's own exit (it stops its children first).
while kill -0 "$master" 2>/dev/null; do wait "$master" || status=$?; done
exit "$status"
"#;

/// Where the SASL plugins come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugins {
    /// `SASL_PATH` = a temp dir with the built `libldapbind.so` and the system's mechanisms.
    Built,
    /// No `SASL_PATH`: libsasl2's compiled-in directory (for an installed package).
    System,
    /// imapd on Debian 11's libsasl2 2.1.27 ([`sasl::libsasl2_2127`], by `LD_LIBRARY_PATH`),
    /// with `SASL_PATH` = a temp dir with its mechanisms and the built `libldapbind.so`.
    BuiltOnLibsasl2127,
}

#[derive(Debug, Clone)]
pub struct ImapdOptions {
    /// imapd.conf lines after the fixture's own (directories, pid file), in order.
    pub conf: Vec<(String, String)>,
    pub plugins: Plugins,
    /// Shell commands run as root inside master's mount namespace just before master starts
    /// (e.g. mounts that only master should see).
    pub namespace_setup: Option<String>,
}

impl ImapdOptions {
    /// The seed's imapd.conf settings with ldapbind, against `ldap_uri`
    /// (`ldap://127.0.0.1:PORT/dc=users,dc=local`).
    pub fn seed(ldap_uri: &str) -> ImapdOptions {
        let conf = [
            // Not SASL: Cyrus's own. With a mail address as login name Cyrus wants the domain
            // part to be a virtual domain (or listed in loginrealms), else "cross-realm login
            // jdoe@example.com denied" after a successful SASL exchange.
            ("virtdomains", "userid"),
            ("debug", "1"),
            // No 3 s pause after each failed login (tests try many).
            ("failedloginpause", "0"),
            // The seed's settings, ldapdb -> ldapbind and its mistakes fixed.
            ("allowplaintext", "yes"),
            ("sasl_pwcheck_method", "auxprop"),
            ("sasl_auto_transition", "yes"),
            ("sasl_auxprop_plugin", "ldapbind"),
            ("sasl_mech_list", MECH_LIST),
            ("sasl_log_level", "7"),
            ("sasl_ldapdb_uri", ldap_uri),
            ("sasl_ldapdb_id", slapd::SERVICE_DN),
            ("sasl_ldapdb_pw", slapd::SERVICE_PW),
            ("sasl_ldapdb_canon_attr", "mail"),
            // What the seed's canon_attr was for: the directory's name for the user. ldapbind
            // warns at start-up when canon_attr is set without this.
            ("sasl_canon_user_plugin", "ldapbind"),
        ];
        ImapdOptions {
            conf: conf.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            plugins: Plugins::Built,
            namespace_setup: None,
        }
    }

    /// [`ImapdOptions::seed`] for this slapd.
    pub fn for_slapd(slapd: &Slapd) -> ImapdOptions {
        ImapdOptions::seed(&format!("{}/{}", slapd.url(), slapd::BASE_DN))
    }

    /// Replaces (or appends) `key`.
    pub fn set(mut self, key: &str, value: &str) -> ImapdOptions {
        match self.conf.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.conf.push((key.to_owned(), value.to_owned())),
        }
        self
    }

    /// Removes `key`.
    pub fn unset(mut self, key: &str) -> ImapdOptions {
        self.conf.retain(|(k, _)| k != key);
        self
    }
}

/// One syslog(3) message: `<PRI>Mmm dd hh:mm:ss TAG: TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub priority: u8,
    /// `cyrus/imap[1234]`, `master[1233]`, ...
    pub tag: String,
    /// The message, e.g. `SASL ldapbind: user nobody@example.com not found: ...`.
    pub text: String,
}

impl LogLine {
    pub fn parse(datagram: &[u8]) -> LogLine {
        let s = String::from_utf8_lossy(datagram);
        let s = s.trim_end_matches(['\n', '\0']);
        let (priority, rest) = match s.strip_prefix('<').and_then(|r| r.split_once('>')) {
            Some((p, rest)) => (p.parse().unwrap_or(0), rest),
            None => (0, s),
        };
        // RFC 3164 timestamp "Nov 28 14:12:10 " (glibc), 16 bytes.
        let rest = match rest.get(..16) {
            Some(ts) if ts.as_bytes()[3] == b' ' && ts.as_bytes()[9] == b':' && ts.ends_with(' ') => &rest[16..],
            _ => rest,
        };
        let (tag, text) = rest.split_once(": ").unwrap_or(("", rest));
        LogLine { priority, tag: tag.to_owned(), text: text.to_owned() }
    }

    /// syslog severity (0 emerg .. 7 debug).
    pub fn severity(&self) -> u8 {
        self.priority & 7
    }

    /// A line ldapbind wrote itself (through libsasl2, or its own syslog fallback).
    pub fn is_ldapbind(&self) -> bool {
        self.text.contains("ldapbind: ")
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.tag, self.text)
    }
}

/// A position in the captured syslog; see [`Imapd::mark`]. The default is the beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogMark(usize);

/// The outcome of one client run.
#[derive(Debug, Clone)]
pub struct Login {
    /// The server accepted the credentials.
    pub ok: bool,
    /// What the client printed (imtest) or the exchange (raw client).
    pub transcript: String,
}

struct SyslogReader {
    lines: Arc<Mutex<Vec<LogLine>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogReader {
    fn start(socket: &Path, copy: &Path) -> SyslogReader {
        let sock = UnixDatagram::bind(socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        // imapd runs as cyrus: everyone may send, as with a real /dev/log.
        fs::set_permissions(socket, fs::Permissions::from_mode(0o666)).expect("chmod the syslog socket");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("socket read timeout");
        let mut copy = OpenOptions::new().create(true).append(true).open(copy).expect("open syslog copy");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (Arc::clone(&lines), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("imapd-syslog".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let line = LogLine::parse(&buf[..n]);
                            let _ = writeln!(copy, "{line}");
                            lock(&l).push(line);
                        }
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                            if s.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = writeln!(copy, "syslog reader: {e}");
                            return;
                        }
                    }
                }
            })
            .expect("spawn the syslog reader");
        SyslogReader { lines, stop, thread: Some(thread) }
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Imapd {
    port: u16,
    child: Option<Child>,
    syslog: SyslogReader,
    opts: ImapdOptions,
    plugins: Option<PluginDir>,
    dir: tempfile::TempDir,
}

impl Imapd {
    /// The seed's configuration (with ldapbind) against `slapd`.
    pub fn for_slapd(slapd: &Slapd) -> Imapd {
        Imapd::start(ImapdOptions::for_slapd(slapd))
    }

    pub fn start(opts: ImapdOptions) -> Imapd {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the Cyrus IMAP fixture needs root (mount namespace, cyrus user)");
        for p in [MASTER, IMTEST, UNSHARE] {
            assert!(Path::new(p).exists(), "{p} is missing: run scripts/deps.sh (as root) first");
        }
        let (uid, gid) = cyrus_ids();
        let dir = tempfile::Builder::new().prefix("ldapbind-imapd-").tempdir().expect("create the imapd temp dir");
        let d = dir.path();
        // cyrus must reach the config dir, the socket and the /dev symlink targets below.
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod the temp dir");
        for sub in ["conf", "spool", "realdev", "sasl2-conf"] {
            fs::create_dir(d.join(sub)).expect("create a temp subdir");
        }
        // What Debian's `cyrus makedirs` creates in the config directory.
        for sub in ["db", "socket", "proc", "lock", "log", "msg", "quota", "user", "sieve"] {
            fs::create_dir(d.join("conf").join(sub)).expect("create a config subdir");
        }
        for sub in ["conf", "spool"] {
            chown_tree(&d.join(sub), uid, gid);
        }
        let plugins = match opts.plugins {
            Plugins::Built | Plugins::BuiltOnLibsasl2127 => {
                let p = match opts.plugins {
                    Plugins::BuiltOnLibsasl2127 => PluginDir::with_ldapbind_on(&sasl::libsasl2_2127().join("sasl2")),
                    _ => PluginDir::with_ldapbind(),
                };
                fs::set_permissions(p.path(), fs::Permissions::from_mode(0o755)).expect("chmod the plugin dir");
                Some(p)
            }
            Plugins::System => None,
        };
        let syslog = SyslogReader::start(&d.join("syslog.sock"), &d.join("syslog.txt"));
        let mut imapd = Imapd { port: 0, child: None, syslog, opts, plugins, dir };

        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            imapd.port = free_port();
            imapd.write_config(gid);
            match imapd.spawn_and_wait() {
                Ok(()) => return imapd,
                // Someone took the port between our probe and master's bind().
                Err(why) if attempt < ATTEMPTS => eprintln!("imapd: {why} on port {}; retrying", imapd.port),
                Err(why) => panic!("Cyrus master did not start ({why}); syslog:\n{}", imapd.syslog_text()),
            }
        }
        unreachable!()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir: `imapd.conf`, `cyrus.conf`, `conf/`, `spool/`, `syslog.txt`, `master.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir().join("imapd.conf")
    }

    /// The options this server was started with.
    pub fn options(&self) -> &ImapdOptions {
        &self.opts
    }

    /// The imapd.conf lines from [`ImapdOptions::conf`] (the seed's part), as written.
    pub fn conf_lines(&self) -> Vec<String> {
        self.opts.conf.iter().map(|(k, v)| format!("{k}: {v}")).collect()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Pid of the namespace helper (`unshare` → `sh`), the leader of master's process group.
    pub fn helper_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// master's pid, from its pid file.
    pub fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir().join("conf").join("master.pid")).ok()?.trim().parse().ok()
    }

    /// Live processes in master's process group: the helper, master, imapd, ...
    pub fn group_members(&self) -> BTreeSet<u32> {
        self.helper_pid().map(|p| live_members(p as libc::pid_t).into_iter().collect()).unwrap_or_default()
    }

    // --- syslog -----------------------------------------------------------------------------

    /// Everything logged so far.
    pub fn syslog(&self) -> Vec<LogLine> {
        lock(&self.syslog.lines).clone()
    }

    pub fn syslog_text(&self) -> String {
        self.syslog().iter().map(|l| format!("{l}\n")).collect()
    }

    /// The current end of the captured syslog.
    pub fn mark(&self) -> LogMark {
        LogMark(lock(&self.syslog.lines).len())
    }

    pub fn syslog_since(&self, mark: LogMark) -> Vec<LogLine> {
        lock(&self.syslog.lines).get(mark.0..).map(<[LogLine]>::to_vec).unwrap_or_default()
    }

    /// ldapbind's own lines since `mark`.
    pub fn ldapbind_lines_since(&self, mark: LogMark) -> Vec<LogLine> {
        self.syslog_since(mark).into_iter().filter(LogLine::is_ldapbind).collect()
    }

    /// Waits until a line after `mark` contains `needle`.
    pub fn wait_for_log(&self, mark: LogMark, needle: &str, timeout: Duration) -> Option<LogLine> {
        self.wait_for_line(mark, timeout, |l| l.text.contains(needle))
    }

    /// Waits until a line after `mark` satisfies `wanted`.
    pub fn wait_for_line(
        &self,
        mark: LogMark,
        timeout: Duration,
        wanted: impl Fn(&LogLine) -> bool,
    ) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.syslog_since(mark).into_iter().find(|l| wanted(l)) {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Like [`Imapd::wait_for_log`], panicking with the captured syslog when nothing comes.
    pub fn expect_log(&self, mark: LogMark, needle: &str) -> LogLine {
        self.wait_for_log(mark, needle, LOG_TIMEOUT).unwrap_or_else(|| {
            let since: String = self.syslog_since(mark).iter().map(|l| format!("  {l}\n")).collect();
            panic!("no syslog line containing {needle:?} within {LOG_TIMEOUT:?}; lines since the mark:\n{since}")
        })
    }

    // --- clients ----------------------------------------------------------------------------

    /// `imtest -m MECH -a USER -w PASSWORD` against this server, then LOGOUT. `mech` "login"
    /// (any case) is the IMAP LOGIN command, not AUTHENTICATE LOGIN (see
    /// [`Imapd::authenticate_login`]); `None` lets imtest pick the best mechanism offered.
    pub fn imtest(&self, mech: Option<&str>, user: &str, password: &str) -> Login {
        let script = self.dir().join("logout.imap");
        fs::write(&script, "A01 LOGOUT\r\n").expect("write the imtest script");
        let out_path = self.dir().join(format!("imtest-{}.out", std::process::id()));
        let out = fs::File::create(&out_path).expect("create the imtest output file");
        let mut cmd = Command::new(IMTEST);
        cmd.arg("-p").arg(self.port.to_string());
        if let Some(m) = mech {
            cmd.args(["-m", m]);
        }
        cmd.args(["-a", user, "-w", password, "-f"])
            .arg(&script)
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        // imtest is a client: the system's mechanism plugins, never ldapbind.
        cmd.env_remove("SASL_PATH").env("SASL_CONF_PATH", self.dir().join("sasl2-conf"));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {IMTEST}: {e}"));
        let status = wait_bounded(&mut child, CLIENT_TIMEOUT);
        let transcript = fs::read_to_string(&out_path).unwrap_or_default();
        let _ = fs::remove_file(&out_path);
        let Some(status) = status else {
            panic!("imtest {mech:?} did not finish within {CLIENT_TIMEOUT:?}; output:\n{transcript}");
        };
        let ok = transcript.lines().any(|l| l.trim() == "Authenticated.");
        if ok {
            assert!(status.success(), "imtest authenticated but exited with {status}:\n{transcript}");
        }
        Login { ok, transcript }
    }

    /// IMAP `AUTHENTICATE LOGIN` over a plain TCP connection (imtest's `-m login` is the LOGIN
    /// command instead).
    pub fn authenticate_login(&self, user: &str, password: &str) -> Login {
        self.raw_session(|s| {
            s.send("A01 AUTHENTICATE LOGIN")?;
            for answer in [user, password] {
                let line = s.read_line()?;
                if !line.starts_with("+ ") {
                    return Ok(line);
                }
                s.send(&base64(answer.as_bytes()))?;
            }
            s.tagged("A01")
        })
    }

    /// The IMAP `LOGIN` command over a plain TCP connection.
    pub fn login_command(&self, user: &str, password: &str) -> Login {
        self.raw_session(|s| {
            s.send(&format!("A01 LOGIN {} {}", quote(user), quote(password)))?;
            s.tagged("A01")
        })
    }

    fn raw_session(&self, run: impl FnOnce(&mut RawImap) -> io::Result<String>) -> Login {
        let mut s = RawImap::connect(self.port).unwrap_or_else(|e| panic!("connect to imapd on {}: {e}", self.port));
        let result = s.read_line().and_then(|greeting| {
            assert!(greeting.starts_with("* OK"), "imapd greeting: {greeting}");
            run(&mut s)
        });
        let status = result.unwrap_or_else(|e| panic!("IMAP exchange failed: {e}; so far:\n{}", s.transcript));
        let ok = status.starts_with("A01 OK");
        let _ = s.send("Z99 LOGOUT").and_then(|()| s.tagged("Z99"));
        Login { ok, transcript: s.transcript }
    }

    // --- processes --------------------------------------------------------------------------

    fn write_config(&self, mail_gid: u32) {
        let d = self.dir();
        let conf = self.conf_path();
        let mut text = format!(
            "# Written by tests/common/imapd.rs: a private Cyrus IMAP.\n\
             configdirectory: {cd}\n\
             defaultpartition: default\n\
             partition-default: {spool}\n\
             sievedir: {cd}/sieve\n",
            cd = d.join("conf").display(),
            spool = d.join("spool").display(),
        );
        for (k, v) in &self.opts.conf {
            text.push_str(&format!("{k}: {v}\n"));
        }
        write_private(&conf, &text, mail_gid);
        let c = conf.display();
        let cyrus_conf = format!(
            "# Written by tests/common/imapd.rs: only imap, on a loopback port.\n\
             START {{\n\
             \trecover\t\tcmd=\"/usr/sbin/cyrus ctl_cyrusdb -C {c} -r\"\n\
             }}\n\
             SERVICES {{\n\
             \timap\t\tcmd=\"imapd -C {c} -U 30\" listen=\"127.0.0.1:{port}\" prefork=0 maxchild=10\n\
             }}\n\
             EVENTS {{\n\
             \tcheckpoint\tcmd=\"/usr/sbin/cyrus ctl_cyrusdb -C {c} -c\" period=30\n\
             }}\n",
            port = self.port
        );
        write_private(&d.join("cyrus.conf"), &cyrus_conf, mail_gid);
    }

    /// Starts master on `self.port` and waits until it is ready; `Err` if it exited or could
    /// not listen. Panics (after stopping it) if neither happens within [`START_TIMEOUT`].
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let mark = self.mark();
        self.child = Some(self.spawn());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                let log = fs::read_to_string(self.dir().join("master.log")).unwrap_or_default();
                return Err(format!("master exited ({status}); its output:\n{log}"));
            }
            let lines = self.syslog_since(mark);
            if lines.iter().any(|l| l.text.contains("unable to create imap listener socket")) {
                self.stop();
                return Err("master could not listen".to_owned());
            }
            if lines.iter().any(|l| l.tag.starts_with("master[") && l.text == "ready for work") && listening(self.port)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!("Cyrus master was not ready within {START_TIMEOUT:?}; syslog:\n{}", self.syslog_text());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&self) -> Child {
        let d = self.dir();
        let log = OpenOptions::new().create(true).append(true).open(d.join("master.log")).expect("open master.log");
        let mut cmd = Command::new(UNSHARE);
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", NAMESPACE_SCRIPT, "ldapbind-imapd"])
            .arg(d)
            .arg(d.join("syslog.sock"))
            .arg(self.opts.namespace_setup.as_deref().unwrap_or(""))
            .arg(MASTER)
            .arg("-D")
            .arg("-C")
            .arg(self.conf_path())
            .arg("-M")
            .arg(d.join("cyrus.conf"))
            .arg("-p")
            .arg(d.join("conf").join("master.pid"))
            .env("SASL_CONF_PATH", d.join("sasl2-conf"))
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log)
            // Its own process group: master and every imapd inherit it; Drop signals the group.
            .process_group(0);
        match &self.plugins {
            Some(p) => cmd.env("SASL_PATH", p.path()),
            None => cmd.env_remove("SASL_PATH"),
        };
        if self.opts.plugins == Plugins::BuiltOnLibsasl2127 {
            cmd.env("LD_LIBRARY_PATH", sasl::libsasl2_2127());
        }
        super::process::die_with_parent(&mut cmd, libc::SIGTERM);
        cmd.spawn().unwrap_or_else(|e| panic!("spawn {UNSHARE}: {e}"))
    }

    /// Stops master and everything in its process group (bounded; SIGKILL as a last resort).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: kill(2); the group id is our unreaped child's pid, so it cannot name another
        // process group while we have not waited for it (and the kernel does not reuse a pid
        // still in use as a group id).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut reaped = false;
        while Instant::now() < deadline {
            reaped = reaped || matches!(child.try_wait(), Ok(Some(_)) | Err(_));
            if reaped && live_members(pgid).is_empty() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("imapd: group {pgid} still has {:?} after SIGTERM; sending SIGKILL", live_members(pgid));
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !live_members(pgid).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Imapd {
    fn drop(&mut self) {
        self.stop();
        self.syslog.finish();
        if thread::panicking() {
            let lines = self.syslog();
            eprintln!("--- last lines of imapd's syslog ({}) ---", self.dir().join("syslog.txt").display());
            for l in lines.iter().skip(lines.len().saturating_sub(60)) {
                eprintln!("{l}");
            }
            let master = fs::read_to_string(self.dir().join("master.log")).unwrap_or_default();
            if !master.trim().is_empty() {
                eprintln!("--- master's output ---\n{master}");
            }
        }
    }
}

// --- helpers --------------------------------------------------------------------------------

/// uid of `cyrus` and gid of `mail` (created by cyrus-common).
fn cyrus_ids() -> (u32, u32) {
    let field = |file: &str, name: &str, idx: usize| -> Option<u32> {
        fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(idx)?.parse().ok()).flatten()
        })
    };
    let uid = field("/etc/passwd", "cyrus", 2).expect("no user cyrus: run scripts/deps.sh (installs cyrus-common)");
    let gid = field("/etc/group", "mail", 2).expect("no group mail");
    (uid, gid)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for e in fs::read_dir(path).expect("read_dir") {
            chown_tree(&e.expect("entry").path(), uid, gid);
        }
    }
}

/// root:mail 0640: imapd (cyrus, group mail) reads it; it holds the service password.
fn write_private(path: &Path, text: &str, gid: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::os::unix::fs::chown(path, Some(0), Some(gid)).expect("chown a config file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o640)).expect("chmod a config file");
}

/// Pids in process group `pgid` that are not zombies (an orphaned zombie waits for init).
fn live_members(pgid: libc::pid_t) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // "<pid> (<comm>) <state> <ppid> <pgrp> ..."
                let mut f = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("").split(' ');
                let state = f.next().unwrap_or("Z");
                let pgrp = f.nth(1).and_then(|p| p.parse::<libc::pid_t>().ok());
                state != "Z" && pgrp == Some(pgid)
            })
        })
        .collect()
}

/// Whether something listens on 127.0.0.1:port (without connecting to it).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        })
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Waits for `child` at most `timeout`; kills it and returns `None` when it takes longer.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A minimal line-based IMAP client with timeouts, recording a transcript.
struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    transcript: String,
}

impl RawImap {
    fn connect(port: u16) -> io::Result<RawImap> {
        let s = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), CLIENT_TIMEOUT)?;
        s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        Ok(RawImap { reader: BufReader::new(s.try_clone()?), writer: s, transcript: String::new() })
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.transcript.push_str(&format!("C: {line}\n"));
        self.writer.write_all(format!("{line}\r\n").as_bytes())
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        (&mut self.reader).take(64 * 1024).read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        self.transcript.push_str(&format!("S: {line}\n"));
        Ok(line)
    }

    /// Reads until the tagged response for `tag`; returns it.
    fn tagged(&mut self, tag: &str) -> io::Result<String> {
        let prefix = format!("{tag} ");
        loop {
            let line = self.read_line()?;
            if line.starts_with(&prefix) {
                return Ok(line);
            }
        }
    }
}
