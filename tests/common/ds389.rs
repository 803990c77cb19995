//! A throwaway 389 Directory Server (Debian 12's 389-ds-base 2.3), for the account states it
//! enforces in its own words (issue 16).
//!
//! `scripts/ds389.sh` (run by `scripts/deps.sh`) unpacks the Debian packages under
//! `target/ds389/root` without installing them. [`Ds389::start`] makes an instance in a temp dir:
//! lib389's `dscreate from-file` with `PREFIX` pointing at a `defaults.inf` whose writable paths
//! (config, database, logs, run, lock) are in the temp dir, no systemd, running as root; then
//! `ns-slapd -d 0` in the foreground. Both run in a private mount namespace (`unshare -m`) in
//! which the unpacked `/usr` overlays the system's, since the server looks for its schema and
//! plugins at compiled-in `/usr` paths; nothing outside the temp dir is written. The server
//! listens on `127.0.0.1:<ephemeral port>` only (`nsslapd-listenhost` in the unpacked template),
//! from the first start on. Creating takes about 12 s.
//!
//! No process is left behind: `Drop` sends SIGTERM, waits (bounded) and then SIGKILLs; if the
//! test process dies without unwinding, the kernel kills the server through `PR_SET_PDEATHSIG`
//! (it is the spawned process itself: `unshare` and `sh` exec into it).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings};

/// Suffix of the instance's one backend.
pub const SUFFIX: &str = "dc=example,dc=com";
pub const DM_DN: &str = "cn=Directory Manager";
pub const DM_PW: &str = "DirectoryManager1";
/// How long `dscreate` may take, and the server to accept connections after it.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(120);
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
const INSTANCE: &str = "ldapbind";

/// The unpacked packages (`scripts/ds389.sh`).
pub fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ds389/root");
    assert!(
        root.join("usr/sbin/ns-slapd").is_file(),
        "{} holds no 389-ds-base: run scripts/deps.sh (or scripts/ds389.sh) as root",
        root.display()
    );
    root
}

pub struct Ds389 {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Ds389 {
    /// Creates and starts an instance with an empty `dc=example,dc=com`.
    pub fn start() -> Ds389 {
        let root = root();
        let dir = tempfile::Builder::new().prefix("ldapbind-ds389-").tempdir().expect("create a temp dir");
        let p = dir.path();
        for sub in ["share/dirsrv/inf", "tmp", "shm", "etc"] {
            fs::create_dir_all(p.join(sub)).expect("create a temp subdir");
        }
        let status = Command::new("cp").arg("-r").arg(root.join("etc/dirsrv")).arg(p.join("etc")).status();
        assert!(status.is_ok_and(|s| s.success()), "copy the packaged etc/dirsrv");
        let defaults = fs::read_to_string(root.join("usr/share/dirsrv/inf/defaults.inf")).expect("read defaults.inf");
        fs::write(p.join("share/dirsrv/inf/defaults.inf"), private_defaults(&defaults, p)).expect("write defaults.inf");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind").port();
        let inf = format!(
            "[general]\nfull_machine_name = localhost\nstart = False\nstrict_host_checking = False\n\
             selinux = False\nsystemd = False\n[slapd]\ninstance_name = {INSTANCE}\nport = {port}\n\
             secure_port = 0\nself_sign_cert = False\nroot_dn = {DM_DN}\nroot_password = {DM_PW}\nuser = root\n\
             group = root\n[backend-userroot]\nsample_entries = no\nsuffix = {SUFFIX}\ncreate_suffix_entry = True\n"
        );
        fs::write(p.join("instance.inf"), inf).expect("write instance.inf");
        let mut ds = Ds389 { dir, port, child: None };
        ds.create();
        ds.child = Some(ds.spawn());
        ds.wait_until_up();
        ds
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// A connection bound as the Directory Manager.
    pub fn dm_conn(&self) -> LdapConn {
        let mut conn = LdapConn::with_settings(LdapConnSettings::new().set_conn_timeout(OP_TIMEOUT), &self.url())
            .expect("connect to 389-ds");
        conn.with_timeout(OP_TIMEOUT).simple_bind(DM_DN, DM_PW).expect("bind as DM").success().expect("DM bind");
        conn
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join(format!("etc/dirsrv/slapd-{INSTANCE}"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("ns-slapd.log")
    }

    /// `sh -c SCRIPT` with the unpacked `/usr` over the system's, in a mount namespace of its own.
    fn in_namespace(&self, script: &str) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.arg("-m")
            .arg("sh")
            .arg("-c")
            .arg(format!("mount -t overlay overlay -o lowerdir={}/usr:/usr /usr && {script}", root().display()))
            .env("PREFIX", self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn create(&self) {
        let log = self.dir.path().join("dscreate.log");
        let out = fs::File::create(&log).expect("create dscreate.log");
        let mut child = self
            .in_namespace(&format!(
                "exec /usr/bin/python3 /usr/sbin/dscreate from-file {}",
                self.dir.path().join("instance.inf").display()
            ))
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn unshare: {e}"));
        let deadline = Instant::now() + CREATE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for dscreate") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dscreate took longer than {CREATE_TIMEOUT:?}: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "dscreate failed ({status}):\n{}", fs::read_to_string(&log).unwrap_or_default());
    }

    fn spawn(&self) -> Child {
        let log = fs::File::create(self.log_path()).expect("create the server log");
        let script = format!(
            "exec /usr/sbin/ns-slapd -D {} -i {} -d 0",
            self.config_dir().display(),
            self.dir.path().join("run/ns-slapd.pid").display()
        );
        let mut cmd = self.in_namespace(&script);
        cmd.stdout(log.try_clone().expect("dup the log fd")).stderr(log);
        super::process::die_with_parent(&mut cmd, libc::SIGKILL);
        cmd.spawn().unwrap_or_else(|e| panic!("spawn unshare: {e}"))
    }

    fn wait_until_up(&mut self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("ns-slapd exited ({status}):\n{}", fs::read_to_string(self.log_path()).unwrap_or_default());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                self.stop();
                panic!("ns-slapd did not listen on {addr} within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- ns-slapd's log ---\n{}", fs::read_to_string(self.log_path()).unwrap_or_default());
        }
        self.stop();
    }
}

/// The packaged `defaults.inf` with every path the server writes moved into `dir`, no systemd,
/// and root as the server's user.
fn private_defaults(packaged: &str, dir: &Path) -> String {
    let d = dir.display();
    packaged
        .lines()
        .map(|line| {
            let line = line
                .replace("= /etc", &format!("= {d}/etc"))
                .replace("= /var", &format!("= {d}/var"))
                .replace("= /run", &format!("= {d}/run"))
                .replace("= /dev/shm", &format!("= {d}/shm"));
            match line.as_str() {
                "tmp_dir = /tmp" => format!("tmp_dir = {d}/tmp"),
                "with_systemd = 1" => "with_systemd = 0".to_owned(),
                "user = dirsrv" => "user = root".to_owned(),
                "group = dirsrv" => "group = root".to_owned(),
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
