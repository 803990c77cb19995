//! README "Configure Postfix", on Debian's postfix: a private instance (its own config and queue
//! directory in a temp dir, smtpd on a loopback port, chrooted as in Debian's master.cf) loads the
//! built ldapbind through libsasl2 with the README's smtpd.conf, and swaks logs in with AUTH
//! PLAIN and LOGIN. First with a bare start (the chroot's etc/ empty: the host name in
//! ldapdb_uri does not resolve in there, and ldapbind's line says why), then after Debian's
//! /usr/lib/postfix/configure-instance.sh, which Debian's postfix service runs before starting,
//! copied /etc/hosts and friends into the chroot. Needs root, postfix and swaks (scripts/deps.sh).
//!
//! Differences from a system install, all forced by running a private instance next to the
//! machine's: `cyrus_sasl_config_path` points at the temp dir's smtpd.conf instead of
//! /etc/postfix/sasl/, the plugin comes from `SASL_PATH` (`import_environment`), and smtpd logs
//! to `maillog_file` in the temp dir (Postfix's own logger, as the README suggests without a
//! syslog daemon).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::imapd::{PASSWORD, USER, wait_bounded};
use common::sasl::PluginDir;
use common::slapd::{self, JOHNDOE, Slapd, SlapdOptions};

const POSTFIX: &str = "/usr/sbin/postfix";
const SWAKS: &str = "/usr/bin/swaks";
const CONFIGURE_INSTANCE: &str = "/usr/lib/postfix/configure-instance.sh";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
    master: Option<Child>,
    _plugins: PluginDir,
}

impl Postfix {
    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// main.cf, master.cf and the README's smtpd.conf against `ldap_uri`; not started yet.
    fn new(ldap_uri: &str) -> Postfix {
        Postfix::with_pwcheck(ldap_uri, "pwcheck_method: auxprop\nauxprop_plugin: ldapbind\n")
    }

    /// As [`Postfix::new`], with `pwcheck` (the smtpd.conf lines that choose how passwords are
    /// checked) in place of the auxprop ones.
    fn with_pwcheck(ldap_uri: &str, pwcheck: &str) -> Postfix {
        for p in [POSTFIX, SWAKS, CONFIGURE_INSTANCE] {
            assert!(Path::new(p).exists(), "{p} is missing: run scripts/deps.sh (as root) first");
        }
        let dir = tempfile::Builder::new().prefix("ldapbind-postfix-").tempdir().expect("temp dir");
        let d = dir.path();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["etc", "etc/sasl", "spool", "data"] {
            fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let chown_postfix = |p: &Path| {
            let st = Command::new("chown").arg("postfix:").arg(p).status().expect("chown");
            assert!(st.success());
        };
        chown_postfix(&d.join("data"));
        let plugins = PluginDir::with_ldapbind();
        fs::set_permissions(plugins.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d_s = d.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d_s}/spool\n\
             data_directory = {d_s}/data\n\
             meta_directory = /etc/postfix\n\
             myhostname = localhost.test\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             maillog_file = {d_s}/postfix.log\n\
             maillog_file_prefixes = {d_s}\n\
             import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C SASL_PATH={plugins}\n\
             cyrus_sasl_config_path = {d_s}/etc/sasl\n\
             # README: Configure Postfix\n\
             smtpd_sasl_type = cyrus\n\
             smtpd_sasl_path = smtpd\n\
             smtpd_sasl_auth_enable = yes\n",
            plugins = plugins.path().display()
        );
        fs::write(d.join("etc/main.cf"), main_cf).expect("main.cf");
        // Debian's master.cf runs smtpd chrooted (5th column y).
        let master_cf = format!(
            "127.0.0.1:{port} inet n - y - - smtpd\n\
             postlog unix-dgram n - n - 1 postlogd\n\
             proxymap unix - - n - - proxymap\n\
             anvil unix - - n - 1 anvil\n"
        );
        fs::write(d.join("etc/master.cf"), master_cf).expect("master.cf");
        // The README's smtpd.conf and secret recipe (root 0600, read before the chroot).
        let secret = d.join("etc/sasl/ldapbind.secret");
        fs::write(&secret, format!("{}\n", slapd::SERVICE_PW)).expect("secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        let smtpd_conf = format!(
            "{}\
             mech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-256\n\
             ldapdb_uri: {ldap_uri}\n\
             ldapdb_id: {}\n\
             ldapdb_pw_file: {}\n",
            pwcheck,
            slapd::SERVICE_DN,
            secret.display()
        );
        fs::write(d.join("etc/sasl/smtpd.conf"), smtpd_conf).expect("smtpd.conf");
        Postfix { dir, port, master: None, _plugins: plugins }
    }

    /// `postfix start-fg` (master in the foreground, in a process group of its own); waits
    /// until smtpd's port listens.
    fn start(&mut self) {
        let mut cmd = Command::new(POSTFIX);
        cmd.arg("-c").arg(self.conf_dir()).arg("start-fg");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        // SAFETY: async-signal-safe prctl only, before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        self.master = Some(cmd.spawn().expect("postfix start-fg"));
        let deadline = Instant::now() + TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "postfix did not listen on {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let Some(mut master) = self.master.take() else { return };
        let _ = Command::new(POSTFIX).arg("-c").arg(self.conf_dir()).arg("stop").status();
        if wait_bounded(&mut master, Duration::from_secs(10)).is_none() {
            // SAFETY: kill(2) on the process group of our own (just killed) child.
            unsafe { libc::kill(-(master.id() as libc::pid_t), libc::SIGKILL) };
        }
    }

    /// `swaks --auth MECH ... --quit-after AUTH`: whether smtpd accepted the login, and its output.
    fn auth(&self, mech: &str, user: &str, password: &str) -> (bool, String) {
        let mut child = Command::new(SWAKS)
            .args(["--server", "127.0.0.1", "--port", &self.port.to_string(), "--auth", mech])
            .args(["--auth-user", user, "--auth-password", password, "--quit-after", "AUTH"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("swaks");
        let mut out = String::new();
        let status = wait_bounded(&mut child, TIMEOUT).expect("swaks finished");
        if let Some(mut o) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        (status.success() && out.contains("235 2.7.0 Authentication successful"), out)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- postfix.log ---\n{}", self.log());
        }
    }
}

#[test]
fn the_readmes_postfix_recipe_logs_in_chrooted_once_the_chroot_resolves_the_name() {
    let slapd = Slapd::start();
    // A host name, as in the README (ldap://glauth:3893/...): it resolves outside the chroot.
    let uri = format!("ldap://localhost:{}/{}", slapd.port(), slapd::BASE_DN);
    let mut pf = Postfix::new(&uri);

    // A bare start: the chroot (the queue directory) has no etc/hosts, etc/resolv.conf.
    pf.start();
    let (ok, out) = pf.auth("PLAIN", USER, PASSWORD);
    assert!(!ok, "logged in although the chroot cannot resolve localhost:\n{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = pf.log().lines().find(|l| l.contains("ldapbind: cannot resolve localhost")) {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "no ldapbind line in postfix.log:\n{}", pf.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    // smtpd's options have no sasl_ prefix, and the line names them that way.
    assert!(line.contains("postfix/smtpd["), "{line}");
    assert!(line.contains("cannot resolve localhost from ldapdb_uri ("), "{line}");
    assert!(line.contains("this process runs chrooted") && line.contains("which has no /etc/hosts"), "{line}");
    assert!(!line.contains("sasl_ldapdb"), "{line}");
    pf.stop();

    // What Debian's postfix service does before starting: copy the name service files in.
    let st = Command::new(CONFIGURE_INSTANCE)
        .arg("-")
        .env("MAIL_CONFIG", pf.conf_dir())
        .stdout(Stdio::null())
        .status()
        .expect("configure-instance.sh");
    assert!(st.success(), "configure-instance.sh: {st}");
    assert!(pf.dir.path().join("spool/etc/hosts").exists());
    pf.start();
    for mech in ["PLAIN", "LOGIN"] {
        let (ok, out) = pf.auth(mech, USER, PASSWORD);
        assert!(ok, "AUTH {mech} refused:\n{out}\n{}", pf.log());
        let (ok, out) = pf.auth(mech, USER, "wrong");
        assert!(!ok, "AUTH {mech} with a wrong password accepted:\n{out}");
    }
    // smtpd's own summary of each accepted login.
    assert_eq!(pf.log().matches(" auth=1 ").count(), 2, "{}", pf.log());
    assert!(!pf.log().contains(PASSWORD), "a password in the log");
}

/// README "Postfix through ldapbind-authd": the daemon, started as root with the same
/// smtpd.conf, listens inside smtpd's chroot (the queue directory) and runs as `nobody`; only
/// the group postfix (smtpd's group) may connect. Killed on drop.
struct Authd {
    child: Child,
    log: PathBuf,
}

impl Authd {
    fn start(pf: &Postfix) -> Authd {
        let log = pf.dir.path().join("authd.log");
        let out = fs::File::create(&log).expect("authd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_ldapbind-authd"))
            .arg("--sasl-conf")
            .arg(pf.conf_dir().join("sasl/smtpd.conf"))
            .arg("--socket")
            .arg(pf.dir.path().join("spool").join(AUTHD_SOCKET_IN_CHROOT.trim_start_matches('/')))
            .args(["--user", "nobody", "--group", "postfix", "-d"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn ldapbind-authd");
        let mut a = Authd { child, log };
        let deadline = Instant::now() + TIMEOUT;
        while !a.log().contains(" listening on ") {
            if let Some(status) = a.child.try_wait().expect("try_wait") {
                panic!("ldapbind-authd exited ({status}):\n{}", a.log());
            }
            assert!(Instant::now() < deadline, "ldapbind-authd did not start:\n{}", a.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        a
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Authd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- ldapbind-authd log ---\n{}", self.log());
        }
    }
}

/// `saslauthd_path` as smtpd sees it, chrooted in the queue directory.
const AUTHD_SOCKET_IN_CHROOT: &str = "/var/run/ldapbind-authd/mux";

#[test]
fn chrooted_smtpd_logs_in_through_ldapbind_authd_against_a_directory_that_hides_passwords() {
    let slapd = Slapd::start_with(SlapdOptions { hidden_passwords: true, ..SlapdOptions::default() });
    // An address: nothing to resolve inside the chroot (the daemon resolves outside anyway).
    let uri = format!("ldap://127.0.0.1:{}/{}", slapd.port(), slapd::BASE_DN);
    // README: smtpd.conf for ldapbind-authd.
    let mut pf =
        Postfix::with_pwcheck(&uri, &format!("pwcheck_method: saslauthd\nsaslauthd_path: {AUTHD_SOCKET_IN_CHROOT}\n"));
    let authd = Authd::start(&pf);
    pf.start();
    for mech in ["PLAIN", "LOGIN"] {
        let (ok, out) = pf.auth(mech, JOHNDOE.uid, JOHNDOE.pw());
        assert!(ok, "AUTH {mech} refused:\n{out}\n{}\n{}", pf.log(), authd.log());
        let (ok, out) = pf.auth(mech, JOHNDOE.uid, "wrong");
        assert!(!ok, "AUTH {mech} with a wrong password accepted:\n{out}");
    }
    // Each answer came from the daemon: two verified, two refused with the reason.
    let log = authd.log();
    assert_eq!(log.matches(&format!("login {} (service smtp) verified as ", JOHNDOE.uid)).count(), 2, "{log}");
    assert_eq!(
        log.matches(&format!("login {} (service smtp) refused: wrong password", JOHNDOE.uid)).count(),
        2,
        "{log}"
    );
    assert_eq!(pf.log().matches(" auth=1 ").count(), 2, "{}", pf.log());
    assert!(!pf.log().contains(JOHNDOE.pw()) && !log.contains(JOHNDOE.pw()), "a password in a log");
}
