//! Logins against Active Directory (Samba's AD DC, tests/common/samba.rs) through ldapbind-authd
//! with README.md's Active Directory lines, by real libsasl2 and by Cyrus imapd (the LOGIN
//! command, AUTHENTICATE PLAIN and LOGIN), by sAMAccountName, UPN and mail; each account AD
//! refuses (disabled, must change its password, expired, locked out) gets NO with AD's reason in
//! the daemon's log line.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::imapd::{Imapd, ImapdOptions};
use common::samba::{self, AdUser, Samba};
use common::sasl::{PluginDir, SASL_OK, Server};

const APP: &str = "ldapbind-ad-authd";

/// The daemon built with these tests.
fn authd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ldapbind-authd"))
}

/// `ldapbind-authd -C imapd.conf --service imap --socket mux -d`, killed on drop.
struct Authd {
    child: Child,
    log: PathBuf,
}

impl Authd {
    fn start(dir: &Path) -> Authd {
        let log = dir.join("authd.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(authd_bin())
            .arg("-C")
            .arg(dir.join("imapd.conf"))
            .args(["--service", "imap", "--socket"])
            .arg(dir.join("run/mux"))
            .args(["--user", "nobody", "-d"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut a = Authd { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.log().contains(" listening on ") {
            if let Some(status) = a.child.try_wait().unwrap() {
                panic!("ldapbind-authd exited ({status}):\n{}", a.log());
            }
            assert!(Instant::now() < deadline, "ldapbind-authd did not start:\n{}", a.log());
            thread::sleep(Duration::from_millis(20));
        }
        a
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for a line holding every one of `needles`.
    fn wait_line(&self, needles: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log().lines().any(|l| needles.iter().all(|n| l.contains(n))) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Authd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DC, README.md's lines for it in `dir/imapd.conf` (dir readable by imapd's user), and the
/// daemon reading them.
fn setup() -> (Samba, tempfile::TempDir, Authd) {
    let dc = Samba::start();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.path().join("imapd.conf"), samba::readme_config(&dc, dir.path())).unwrap();
    let authd = Authd::start(dir.path());
    (dc, dir, authd)
}

fn names(u: &AdUser) -> Vec<&'static str> {
    [Some(u.sam), Some(u.upn), u.mail].into_iter().flatten().collect()
}

const REFUSED: [AdUser; 4] = [samba::BOB, samba::CAROL, samba::DAVE, samba::ERIN];

/// The daemon refused `user` and said why, from the account's attributes read with the search:
/// before any bind, so a refused login never counts towards AD's lockout. (AD's `data NNN` in a
/// bind's answer says the same; `account::bind_outcome`'s unit tests cover it.)
fn refused_with_its_reason(authd: &Authd, user: AdUser) {
    let code = user.refused.unwrap();
    let state = match code {
        "533" => "is disabled: userAccountControl",
        "773" => "must change its password (it was reset): pwdLastSet",
        "701" => "has expired: accountExpires",
        "775" => "is locked out after failed password attempts: lockoutTime",
        other => panic!("no state for AD data {other}"),
    };
    let said = authd.wait_line(&[user.sam, "refused", state]);
    assert!(said, "{} (AD data {code}): no line naming {state:?}:\n{}", user.sam, authd.log());
}

#[test]
fn libsasl2_logs_in_through_the_daemon_by_account_name_upn_and_mail() {
    let (_dc, dir, authd) = setup();
    let text = fs::read_to_string(dir.path().join("imapd.conf")).unwrap();
    let options = samba::readme_options(&text);
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let plugins = PluginDir::with_ldapbind();
    let server = Server::init(APP, plugins.path(), &options);
    let alice = samba::ALICE;
    for name in names(&alice) {
        let conn = server.new_conn("imap");
        let rc = conn.checkpass(name.as_bytes(), alice.password.as_bytes());
        assert_eq!(rc, SASL_OK, "{name}: {}\n{}", conn.errdetail(), authd.log());
        assert_eq!(conn.username().as_deref(), Some(alice.sam), "{name}");
    }
    let conn = server.new_conn("imap");
    assert_ne!(conn.checkpass(alice.upn.as_bytes(), b"wrong"), SASL_OK);
    assert!(authd.wait_line(&[alice.sam, "refused: wrong password"]), "{}", authd.log());
    for user in REFUSED {
        let conn = server.new_conn("imap");
        assert_ne!(conn.checkpass(user.upn.as_bytes(), user.password.as_bytes()), SASL_OK, "{}", user.sam);
        refused_with_its_reason(&authd, user);
    }
    assert!(!authd.log().contains(alice.password), "a password in the daemon's log");
}

#[test]
fn cyrus_imapd_logs_in_through_the_daemon_and_refuses_each_account_ad_refuses() {
    let (_dc, dir, authd) = setup();
    // imapd runs as cyrus and reads the service password file.
    let cyrus = Command::new("id").args(["-u", "cyrus"]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&cyrus.stdout).trim().parse().expect("a user cyrus");
    std::os::unix::fs::chown(dir.path().join("svc-cyrus.pw"), Some(uid), None).unwrap();
    // Cyrus's own settings as the other tests have them, ldapbind's lines replaced by README.md's.
    let text = fs::read_to_string(dir.path().join("imapd.conf")).unwrap();
    let mut opts = ImapdOptions::seed("ldap://unused");
    opts.conf.retain(|(k, _)| !k.starts_with("sasl_ldapdb_"));
    for (k, v) in samba::readme_options(&text) {
        opts = opts.set(&format!("sasl_{k}"), &v);
    }
    let imapd = Imapd::start(opts);
    let alice = samba::ALICE;
    for name in names(&alice) {
        let plain = imapd.imtest(Some("PLAIN"), name, alice.password);
        assert!(plain.ok, "PLAIN {name}:\n{}\n{}", plain.transcript, authd.log());
        let login = imapd.authenticate_login(name, alice.password);
        assert!(login.ok, "AUTHENTICATE LOGIN {name}:\n{}", login.transcript);
        let command = imapd.login_command(name, alice.password);
        assert!(command.ok, "LOGIN {name}:\n{}", command.transcript);
    }
    assert!(!imapd.login_command(alice.upn, "wrong").ok);
    for user in REFUSED {
        let r = imapd.login_command(user.upn, user.password);
        assert!(!r.ok, "{}: {}", user.sam, r.transcript);
        refused_with_its_reason(&authd, user);
    }
}
