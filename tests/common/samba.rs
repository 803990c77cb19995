//! A throwaway Active Directory domain controller: Debian's Samba (`samba`, `samba-dsdb-modules`,
//! `samba-vfs-modules`, `samba-ad-provision`; scripts/deps.sh installs them), for tests that need
//! a real AD.
//!
//! The domain `EXAMPLE.TEST` (NetBIOS `EXAMPLE`, base `DC=example,DC=test`) is provisioned once
//! per target dir with `samba-tool domain provision` and its users made with `samba-tool user`
//! (see [`USERS`]) into a template under `CARGO_TARGET_TMPDIR` (about 30 s, under a file lock so
//! parallel tests wait for one provisioning; delete the directory after changing the users). Each
//! [`Samba::start`] copies that template into its own temp dir, writes its own `smb.conf` and
//! starts `/usr/sbin/samba -i` with only its LDAP server (`server services = ldap`):
//!
//! - **Its own loopback address**, `127.88.x.y`, added to `lo` for the life of the fixture
//!   (`ip addr add .../32 dev lo`, removed by `Drop`) because Samba listens only on addresses of
//!   an interface. Never 127.0.0.1: other tests rely on 127.0.0.1:389 refusing. LDAP on 389,
//!   LDAPS on 636 of that address (AD's fixed ports), StartTLS on 389.
//! - **Its own TLS certificate** from a [`TestCa`], with the address and `dc1.example.test` as
//!   subjectAltNames, or, with [`SambaOptions::san`] `false`, a certificate whose only name is
//!   the subject's CN (no subjectAltName), like Samba's self-made one.
//! - **AD's rules as shipped**: a simple bind over plain ldap:// is refused with
//!   strongerAuthRequired (8), `ldap server require strong auth` being Samba's default; a failed
//!   bind's diagnostic carries AD's `data <code>`; `unicodePwd` is never returned.
//! - **Account states**: [`ALICE`] can log in; [`BOB`] is disabled (533), [`CAROL`] must change her
//!   password (773), [`DAVE`]'s account expired (701), [`ERIN`] is locked out (775; the domain
//!   locks an account after 5 bad passwords, and each start gives her 5).
//!
//! No process nor address is left behind: `Drop` sends SIGTERM to samba's process group, waits
//! (bounded), SIGKILLs it, then removes the address. If the test process dies without unwinding,
//! `PR_SET_PDEATHSIG` kills samba and `--maximum-runtime` ends it at the latest after
//! [`MAX_RUNTIME`]; only the `lo` address would then stay (harmless: all of 127/8 is local).
//! Start and drop a `Samba` on the test's own thread (the death signal follows that thread).

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::slapd::{TestCa, TlsFiles};

pub const SAMBA: &str = "/usr/sbin/samba";
pub const SAMBA_TOOL: &str = "/usr/bin/samba-tool";

/// The Kerberos realm, also the DNS domain of the UPNs (lower case there).
pub const REALM: &str = "EXAMPLE.TEST";
/// The NetBIOS domain, for `EXAMPLE\user` bind names.
pub const DOMAIN: &str = "EXAMPLE";
/// The domain's naming context (`defaultNamingContext` of the root DSE).
pub const BASE_DN: &str = "DC=example,DC=test";
/// The DC's host name, in its certificate.
pub const DC_HOST: &str = "dc1.example.test";
/// The domain administrator's password.
pub const ADMIN_PW: &str = "Adm1n-Secret!";

/// How long [`Samba::start`] waits for samba to listen (the start itself takes a few seconds).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `Drop` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// samba's `--maximum-runtime`: it ends itself after this, whatever happens to the test.
pub const MAX_RUNTIME: Duration = Duration::from_secs(900);

/// Bumped whenever [`USERS`] or the provisioning change, so an old template is not reused.
const TEMPLATE_VERSION: u32 = 1;
/// Bad passwords after which the domain locks an account.
const LOCKOUT_THRESHOLD: u32 = 5;

/// One account of the domain, made by `samba-tool user create <sam> <password>
/// --use-username-as-cn`, which also sets `userPrincipalName` to `<sam>@example.test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdUser {
    /// `sAMAccountName` (also the CN).
    pub sam: &'static str,
    pub upn: &'static str,
    /// `mail`, deliberately not the UPN; `None`: no mail.
    pub mail: Option<&'static str>,
    pub dn: &'static str,
    pub password: &'static str,
    /// AD's `data` code in a failed bind with the right password; `None`: the bind succeeds.
    pub refused: Option<&'static str>,
}

impl AdUser {
    /// `EXAMPLE\<sam>`, the down-level logon name.
    pub fn down_level(&self) -> String {
        format!("{DOMAIN}\\{}", self.sam)
    }
}

/// The service account the plugin binds as.
pub const SVC: AdUser = AdUser {
    sam: "svc-cyrus",
    upn: "svc-cyrus@example.test",
    mail: None,
    dn: "CN=svc-cyrus,CN=Users,DC=example,DC=test",
    password: "Svc-Cyrus-Pw1!",
    refused: None,
};
/// An ordinary user with a mail address.
pub const ALICE: AdUser = AdUser {
    sam: "alice",
    upn: "alice@example.test",
    mail: Some("alice.smith@mail.example.test"),
    dn: "CN=alice,CN=Users,DC=example,DC=test",
    password: "Alice-Pw-2024!",
    refused: None,
};
/// Disabled (`samba-tool user disable`).
pub const BOB: AdUser = AdUser {
    sam: "bob",
    upn: "bob@example.test",
    mail: Some("bob@mail.example.test"),
    dn: "CN=bob,CN=Users,DC=example,DC=test",
    password: "Bob-Pw-2024!",
    refused: Some("533"),
};
/// Must change her password at next logon (`--must-change-at-next-login`).
pub const CAROL: AdUser = AdUser {
    sam: "carol",
    upn: "carol@example.test",
    mail: Some("carol@mail.example.test"),
    dn: "CN=carol,CN=Users,DC=example,DC=test",
    password: "Carol-Pw-2024!",
    refused: Some("773"),
};
/// The account expired (`samba-tool user setexpiry --days=0` when the template was made).
pub const DAVE: AdUser = AdUser {
    sam: "dave",
    upn: "dave@example.test",
    mail: Some("dave@mail.example.test"),
    dn: "CN=dave,CN=Users,DC=example,DC=test",
    password: "Dave-Pw-2024!",
    refused: Some("701"),
};
/// Locked out: each start makes [`LOCKOUT_THRESHOLD`] binds with a wrong password.
pub const ERIN: AdUser = AdUser {
    sam: "erin",
    upn: "erin@example.test",
    mail: Some("erin@mail.example.test"),
    dn: "CN=erin,CN=Users,DC=example,DC=test",
    password: "Erin-Pw-2024!",
    refused: Some("775"),
};
pub const USERS: [AdUser; 6] = [SVC, ALICE, BOB, CAROL, DAVE, ERIN];

#[derive(Debug, Clone)]
pub struct SambaOptions {
    /// `true` (the default): the certificate names the address and [`DC_HOST`] as
    /// subjectAltNames. `false`: its only name is the subject's CN, the address.
    pub san: bool,
}

impl Default for SambaOptions {
    fn default() -> Self {
        SambaOptions { san: true }
    }
}

pub struct Samba {
    dir: tempfile::TempDir,
    ca: TestCa,
    addr: Option<LoopbackAddr>,
    child: Option<Child>,
    /// Time from spawning samba until it listened on 636.
    pub start_time: Duration,
}

impl Samba {
    pub fn start() -> Samba {
        Samba::start_with(SambaOptions::default())
    }

    pub fn start_with(opts: SambaOptions) -> Samba {
        assert!(
            Path::new(SAMBA).exists() && Path::new(SAMBA_TOOL).exists(),
            "{SAMBA} or {SAMBA_TOOL} is missing: run scripts/deps.sh (as root) first"
        );
        let template = template();
        let dir = tempfile::Builder::new().prefix("ldapbind-samba-").tempdir().expect("create the samba temp dir");
        let d = dir.path();
        let cp = Command::new("cp").arg("-a").arg(template.join("t")).arg(d.join("t")).status().expect("run cp");
        assert!(cp.success(), "cp -a {} {} failed", template.display(), d.display());
        let addr = LoopbackAddr::add();
        let ip = addr.ip.to_string();
        let ca = TestCa::new("ldapbind Samba test CA");
        let files = if opts.san { ca.server(&[&ip, DC_HOST]) } else { ca.server_without_san(&ip) };
        fs::write(d.join("t/etc/smb.conf"), smb_conf(&d.join("t"), &ip, &files)).expect("write smb.conf");
        let mut samba = Samba { dir, ca, addr: Some(addr), child: None, start_time: Duration::ZERO };
        samba.spawn_and_wait();
        samba.lock_out(&ERIN);
        samba
    }

    /// The address samba listens on, `127.88.x.y`.
    pub fn ip(&self) -> Ipv4Addr {
        self.addr.as_ref().expect("the address lives as long as the fixture").ip
    }

    /// `ldap://127.88.x.y` (port 389).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.ip())
    }

    /// `ldaps://127.88.x.y` (port 636).
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.ip())
    }

    /// The CA certificate that signed samba's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.ca.cert_path()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("samba.log")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A simple bind as `name` with `password` over ldaps:// with `ldapwhoami` (OpenLDAP's
    /// libldap, trusting [`Samba::ca_path`] only): `Ok` or the error text (with AD's `data` code).
    pub fn bind(&self, name: &str, password: &str) -> Result<(), String> {
        let out = Command::new("ldapwhoami")
            .args(["-x", "-H", &self.ldaps_url(), "-D", name, "-w", password, "-o", "nettimeout=5"])
            // Not LDAPNOINIT, which would ignore LDAPTLS_CACERT too; the SAN-less certificate
            // names the address in its CN only, which libldap accepts.
            .env("LDAPTLS_CACERT", self.ca_path())
            .env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "ldapbind-no-ldaprc")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run ldapwhoami (apt-get install ldap-utils): {e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // Samba does not implement the Who am I? operation: a bind that worked ends in its
        // refusal of that operation.
        let whoami_refused = text.contains("Extended Operation(1.3.6.1.4.1.4203.1.11.3) not supported");
        if out.status.success() || whoami_refused { Ok(()) } else { Err(text) }
    }

    /// Applies `ldif` (ldapmodify's change format) as the domain's Administrator over ldaps://.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.ldaps_url(), "-D", &format!("Administrator@{}", REALM.to_ascii_lowercase())])
            .args(["-w", ADMIN_PW, "-o", "nettimeout=5"])
            .env("LDAPTLS_CACERT", self.ca_path())
            .env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "ldapbind-no-ldaprc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run ldapmodify (apt-get install ldap-utils): {e}"));
        use std::io::Write as _;
        child.stdin.take().expect("piped stdin").write_all(ldif.as_bytes()).expect("write the LDIF");
        let out = child.wait_with_output().expect("wait for ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify failed ({}):\n{ldif}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Binds as `user` with a wrong password until AD locks the account.
    fn lock_out(&self, user: &AdUser) {
        for _ in 0..LOCKOUT_THRESHOLD {
            let refused = self.bind(user.upn, "not-the-password").expect_err("a wrong password binds");
            assert!(refused.contains("data 52e"), "a wrong password for {}: {refused}", user.sam);
        }
        let locked = self.bind(user.upn, user.password).expect_err("the locked-out user binds");
        assert!(locked.contains("data 775"), "{} after {LOCKOUT_THRESHOLD} bad passwords: {locked}", user.sam);
    }

    fn spawn_and_wait(&mut self) {
        let d = self.dir.path();
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the samba log");
        let mut cmd = Command::new(SAMBA);
        cmd.arg("-i")
            .arg("-M")
            .arg("single")
            .arg("--no-process-group")
            .arg(format!("--maximum-runtime={}", MAX_RUNTIME.as_secs()))
            .arg("-s")
            .arg(d.join("t/etc/smb.conf"))
            .current_dir(d)
            // In interactive mode samba ends when its stdin closes: keep it open (piped).
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log)
            .process_group(0);
        super::process::die_with_parent(&mut cmd, libc::SIGKILL);
        let spawned = Instant::now();
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("spawn {SAMBA}: {e}")));
        let ldaps = SocketAddr::from((self.ip(), 636));
        let ldap = SocketAddr::from((self.ip(), 389));
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("samba exited ({status}) while starting; log:\n{}", self.log_text());
            }
            let listens = |a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok();
            if listens(ldaps) && listens(ldap) {
                self.start_time = spawned.elapsed();
                return;
            }
            if spawned.elapsed() >= START_TIMEOUT {
                let log = self.log_text();
                self.stop();
                panic!("samba did not listen on {ldaps} within {START_TIMEOUT:?}; log:\n{log}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to samba's process group, SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the group is samba's own (process_group(0)).
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // Whatever of the group is left (samba's helpers included).
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of samba's log ({}) ---", self.log_path().display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.stop();
        self.addr = None;
    }
}

/// The imapd.conf lines of README.md's "Active Directory" section, for this DC: its URL, the
/// service password in a file in `dir` (mode 0600), a copy of its CA there (0644), and the
/// saslauthd socket `dir/run/mux`. Panics when the README no longer holds a line this replaces (keep
/// the two in step).
pub fn readme_config(dc: &Samba, dir: &Path) -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("read README.md");
    let section = readme.split_once("\n## Active Directory\n").expect("README.md has an Active Directory section").1;
    let block = section.split_once("```\n").and_then(|(_, rest)| rest.split_once("```")).expect("a ``` block").0;
    let pw_file = dir.join("svc-cyrus.pw");
    fs::write(&pw_file, format!("{}\n", SVC.password)).expect("write the service password file");
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&pw_file, fs::Permissions::from_mode(0o600)).expect("chmod 600 the password file");
    let ca = dir.join("example-ad-ca.pem");
    fs::copy(dc.ca_path(), &ca).expect("copy the DC's CA");
    fs::set_permissions(&ca, fs::Permissions::from_mode(0o644)).expect("chmod 644 the CA copy");
    let mut text = block.to_owned();
    for (old, new) in [
        ("ldaps://dc1.example.test/", format!("{}/", dc.ldaps_url())),
        ("/etc/ldapbind/svc-cyrus.pw", pw_file.display().to_string()),
        ("/etc/ldapbind/example-ad-ca.pem", ca.display().to_string()),
        ("/run/ldapbind-authd/mux", dir.join("run/mux").display().to_string()),
    ] {
        assert_eq!(text.matches(old).count(), 1, "README.md's Active Directory lines lost {old:?}:\n{block}");
        text = text.replace(old, &new);
    }
    text
}

/// `readme_config`'s `sasl_` options as libsasl2 options (no prefix), comments left out.
pub fn readme_options(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("an imapd.conf line is key: value");
            (k.trim().strip_prefix("sasl_").expect("a sasl_ option").to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// The instance's smb.conf: the provisioned domain in `t`, LDAP only, on `ip` only.
fn smb_conf(t: &Path, ip: &str, tls: &TlsFiles) -> String {
    let t = t.display();
    let ca = tls.ca.as_ref().expect("a server certificate names its CA");
    format!(
        "[global]\n\
         \tnetbios name = DC1\n\
         \trealm = {REALM}\n\
         \tworkgroup = {DOMAIN}\n\
         \tserver role = active directory domain controller\n\
         \tserver services = ldap\n\
         \tinterfaces = {ip}\n\
         \tbind interfaces only = yes\n\
         \tprivate dir = {t}/private\n\
         \tstate directory = {t}/state\n\
         \tcache directory = {t}/cache\n\
         \tlock directory = {t}\n\
         \tbinddns dir = {t}/bind-dns\n\
         \tpid directory = {t}\n\
         \tntp signd socket directory = {t}/ntp_signd\n\
         \twinbindd socket directory = {t}/winbindd\n\
         \tlog level = 1\n\
         \ttls enabled = yes\n\
         \ttls keyfile = {}\n\
         \ttls certfile = {}\n\
         \ttls cafile = {}\n\
         \tidmap_ldb:use rfc2307 = yes\n",
        tls.key.display(),
        tls.cert.display(),
        ca.display()
    )
}

/// The provisioned domain with its users, made once per target dir (see the module doc).
fn template() -> PathBuf {
    // Integration tests have CARGO_TARGET_TMPDIR; examples and benches sharing this module do not.
    let root = option_env!("CARGO_TARGET_TMPDIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp"), PathBuf::from);
    fs::create_dir_all(&root).expect("create the target tmp dir");
    let ready = root.join(format!("ldapbind-samba-v{TEMPLATE_VERSION}"));
    let lock = File::create(root.join(format!("ldapbind-samba-v{TEMPLATE_VERSION}.lock"))).expect("create the lock");
    // SAFETY: flock on an fd we own; no memory effects. Released when `lock` closes.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0, "flock the samba template lock");
    if ready.join("t/private/sam.ldb").exists() {
        return ready;
    }
    let build = root.join(format!("ldapbind-samba-v{TEMPLATE_VERSION}.build"));
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build).expect("create the template build dir");
    let t = build.join("t");
    let t_str = t.to_str().expect("a UTF-8 target dir");
    tool(
        &build,
        &[
            "domain",
            "provision",
            "--use-rfc2307",
            "--realm",
            REALM,
            "--domain",
            DOMAIN,
            "--server-role",
            "dc",
            "--dns-backend",
            "NONE",
            "--host-name",
            "dc1",
            "--adminpass",
            ADMIN_PW,
            "--targetdir",
            t_str,
        ],
    );
    let conf = format!("{t_str}/etc/smb.conf");
    let with_conf = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-s", &conf]);
        tool(&build, &all)
    };
    with_conf(&[
        "domain",
        "passwordsettings",
        "set",
        &format!("--account-lockout-threshold={LOCKOUT_THRESHOLD}"),
        "--account-lockout-duration=0",
        "--reset-account-lockout-after=0",
    ]);
    for user in USERS {
        let mut args = vec!["user", "create", user.sam, user.password, "--use-username-as-cn"];
        let mail = user.mail.map(|m| format!("--mail-address={m}"));
        args.extend(mail.as_deref());
        if user.sam == CAROL.sam {
            args.push("--must-change-at-next-login");
        }
        with_conf(&args);
    }
    with_conf(&["user", "disable", BOB.sam]);
    with_conf(&["user", "setexpiry", DAVE.sam, "--days=0"]);
    let _ = fs::remove_dir_all(&ready);
    fs::rename(&build, &ready).expect("move the samba template into place");
    ready
}

/// Runs `samba-tool <args>` in `dir`; panics with its output when it fails.
fn tool(dir: &Path, args: &[&str]) {
    let out = Command::new(SAMBA_TOOL)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {SAMBA_TOOL}: {e}"));
    assert!(
        out.status.success(),
        "samba-tool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `127.88.x.y/32` address on `lo`, removed on drop.
struct LoopbackAddr {
    ip: Ipv4Addr,
}

impl LoopbackAddr {
    fn add() -> LoopbackAddr {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let seed = std::process::id() ^ nanos;
        let mut n = seed.wrapping_mul(2_654_435_761);
        for _ in 0..20 {
            n = n.wrapping_mul(2_654_435_761).wrapping_add(1);
            let ip = Ipv4Addr::new(127, 88, (n >> 8) as u8, (n >> 16) as u8 | 1);
            let out = Command::new("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run ip (apt-get install iproute2): {e}"));
            if out.status.success() {
                return LoopbackAddr { ip };
            }
            let err = String::from_utf8_lossy(&out.stderr);
            // Another fixture has it: try another one.
            assert!(err.contains("File exists"), "ip addr add {ip}/32 dev lo (needs CAP_NET_ADMIN): {err}");
        }
        panic!("no free 127.88.x.y address after 20 tries");
    }
}

impl Drop for LoopbackAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.ip), "dev", "lo"])
            .stdin(Stdio::null())
            .output();
    }
}
