//! A throwaway slapd shaped like glauth, for tests that need a real directory.
//!
//! [`Slapd::start`] builds a cn=config and an mdb database in a temp dir with `slapadd`, starts
//! Debian's `/usr/sbin/slapd` in the foreground on `ldap://127.0.0.1:<ephemeral port>/` and waits
//! until it accepts connections. The directory (`tests/data/users.ldif`) behaves like the seed's
//! glauth:
//!
//! - **Simple binds only.** slapd gets `SASL_PATH` pointing at an empty directory, so libsasl2
//!   inside slapd loads no mechanism plugin: the root DSE lists no `supportedSASLMechanisms` and a
//!   SASL bind gets `authMethodNotSupported` (7). EXTERNAL is built into libsasl2 but slapd only
//!   offers it on ldapi:// or with a TLS client certificate, and this slapd listens on neither.
//! - **Anonymous may bind but not search.** Entries are `by * disclose` except for the service
//!   account, so an anonymous (or any other non-service) search of the tree is answered with
//!   insufficientAccess (50), as glauth does; passwords are `by anonymous auth` so any user can
//!   simple-bind. The root DSE and the subschema entry are readable by anyone.
//! - **One service account**, [`SERVICE_DN`] / [`SERVICE_PW`], reads every attribute, including
//!   `userPassword`, `authPassword` and `cmusaslsecret*` (the last two come from a tiny test
//!   schema, `tests/data/ldapbind-test-schema.ldif`; entries using them add
//!   `objectClass: ldapbindSecrets`).
//!
//! slapd runs with `-d stats`; its stderr goes to a log file in the temp dir, which
//! [`Slapd::log_text`] returns and [`Slapd::ops_since`] counts (binds, searches, connections).
//!
//! No process is left behind: `Drop` sends SIGCONT + SIGTERM, waits (bounded) and then SIGKILLs,
//! also while a test unwinds from a panic. If the test process dies without unwinding (SIGKILL,
//! abort), the kernel kills slapd through `PR_SET_PDEATHSIG`. That signal follows the *thread*
//! that started slapd: start and drop a `Slapd` on the test's own thread, never keep one in a
//! `static` or start it from a helper thread that exits first.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings};

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const SLAPADD: &str = "/usr/sbin/slapadd";

/// Suffix of the mdb database (the seed's glauth base DN).
pub const BASE_DN: &str = "dc=users,dc=local";
/// Where every test user lives.
pub const USERS_DN: &str = "ou=superheros,dc=users,dc=local";
/// The service account the plugin binds as (`sasl_ldapdb_id`).
pub const SERVICE_DN: &str = "cn=cyrus,ou=machines,dc=users,dc=local";
/// The service account's password (`sasl_ldapdb_pw`).
pub const SERVICE_PW: &str = "cyrus";
/// With [`SlapdOptions::ldapdb_compat`]: the SASL (DIGEST-MD5) authcid that maps to
/// [`SERVICE_DN`], i.e. ldapdb's `ldapdb_id`; its password is [`SERVICE_PW`].
pub const LDAPDB_SASL_ID: &str = "cyrus";
/// The mail carried by both [`TWIN_A`] and [`TWIN_B`]: a lookup by mail is ambiguous.
pub const SHARED_MAIL: &str = "shared@example.com";

/// How long [`Slapd::start`] waits for slapd to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `Drop`/[`Slapd::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect and per-operation timeout of the connections made by [`Slapd::connect`].
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Slapd::ops_since`] waits for slapd to finish logging the operations it counts.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Directory data, slapadd-ed into `dc=users,dc=local`; the consts below mirror it.
pub const USERS_LDIF: &str = include_str!("../data/users.ldif");
const CONFIG_LDIF: &str = include_str!("../data/slapd-config.ldif");
const TEST_SCHEMA_LDIF: &str = include_str!("../data/ldapbind-test-schema.ldif");

/// One entry of `tests/data/users.ldif`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    pub uid: &'static str,
    pub mail: &'static str,
    pub dn: &'static str,
    /// The password the user types (a simple bind as `dn` with it succeeds); `None`: no password.
    pub password: Option<&'static str>,
    /// The `userPassword` value as stored: equal to `password` for cleartext users, the hash
    /// for hashed ones.
    pub stored: Option<&'static str>,
}

impl TestUser {
    /// The typed password; panics for [`NOPASS`].
    pub fn pw(&self) -> &'static str {
        self.password.unwrap_or_else(|| panic!("test user {} has no password", self.uid))
    }
}

/// Cleartext `userPassword`: the seed's user.
pub const JOHNDOE: TestUser = TestUser {
    uid: "johndoe",
    mail: "jdoe@example.com",
    dn: "cn=johndoe,ou=superheros,dc=users,dc=local",
    password: Some("dogood"),
    stored: Some("dogood"),
};
/// Cleartext `userPassword`, meant to be found by mail.
pub const ALICE: TestUser = TestUser {
    uid: "alice",
    mail: "alice@example.com",
    dn: "cn=alice,ou=superheros,dc=users,dc=local",
    password: Some("wonderland"),
    stored: Some("wonderland"),
};
/// Cleartext `userPassword`; the mail holds `'` and `+`.
pub const OBRIEN: TestUser = TestUser {
    uid: "obrien",
    mail: "o'brien+tag@example.com",
    dn: "cn=obrien,ou=superheros,dc=users,dc=local",
    password: Some("shamrock"),
    stored: Some("shamrock"),
};
/// `{SSHA}` hash of "sesame" (`slappasswd -h {SSHA} -s sesame`).
pub const SSHA_USER: TestUser = TestUser {
    uid: "hashedssha",
    mail: "ssha@example.com",
    dn: "cn=hashed-ssha,ou=superheros,dc=users,dc=local",
    password: Some("sesame"),
    stored: Some("{SSHA}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn"),
};
/// `{CRYPT}` sha512-crypt hash of "crypted" (`openssl passwd -6 -salt ldapbindtest crypted`).
pub const CRYPT_USER: TestUser = TestUser {
    uid: "hashedcrypt",
    mail: "crypt@example.com",
    dn: "cn=hashed-crypt,ou=superheros,dc=users,dc=local",
    password: Some("crypted"),
    stored: Some(
        "{CRYPT}$6$ldapbindtest$UX8F/StRGGlNWRCB8ecTWzlQfifo6YMqekkZE10SJYdUfCNtseSoVcPdMWJkKzcJEz0SpuRYcI/ffKpOEPLAv0",
    ),
};
/// Shares [`SHARED_MAIL`] with [`TWIN_B`]; its uid is unique.
pub const TWIN_A: TestUser = TestUser {
    uid: "twina",
    mail: SHARED_MAIL,
    dn: "cn=twin-a,ou=superheros,dc=users,dc=local",
    password: Some("twin-a-pw"),
    stored: Some("twin-a-pw"),
};
/// Shares [`SHARED_MAIL`] with [`TWIN_A`]; its uid is unique.
pub const TWIN_B: TestUser = TestUser {
    uid: "twinb",
    mail: SHARED_MAIL,
    dn: "cn=twin-b,ou=superheros,dc=users,dc=local",
    password: Some("twin-b-pw"),
    stored: Some("twin-b-pw"),
};
/// No `userPassword` at all.
pub const NOPASS: TestUser = TestUser {
    uid: "nopass",
    mail: "nopass@example.com",
    dn: "cn=nopass,ou=superheros,dc=users,dc=local",
    password: None,
    stored: None,
};
pub const ALL_USERS: [TestUser; 8] = [JOHNDOE, ALICE, OBRIEN, SSHA_USER, CRYPT_USER, TWIN_A, TWIN_B, NOPASS];

/// The default password policy of [`SlapdOptions::ppolicy`].
pub const PPOLICY_DEFAULT_DN: &str = "cn=default,ou=policies,dc=users,dc=local";
/// Locked by an administrator (`pwdAccountLockedTime: 000001010000Z`); cleartext password.
pub const PP_LOCKED: TestUser = TestUser {
    uid: "pplocked",
    mail: "pplocked@example.com",
    dn: "cn=pplocked,ou=superheros,dc=users,dc=local",
    password: Some("locked-pw"),
    stored: Some("locked-pw"),
};
/// Reset by an administrator, must change (`pwdReset: TRUE`); cleartext password.
pub const PP_RESET: TestUser = TestUser {
    uid: "ppreset",
    mail: "ppreset@example.com",
    dn: "cn=ppreset,ou=superheros,dc=users,dc=local",
    password: Some("reset-pw"),
    stored: Some("reset-pw"),
};
/// [`PP_LOCKED`] with the `{SSHA}` password of [`SSHA_USER`] ("sesame"): only a bind checks it.
pub const PP_LOCKED_HASHED: TestUser = TestUser {
    uid: "pplockedhashed",
    mail: "pplockedhashed@example.com",
    dn: "cn=pplockedhashed,ou=superheros,dc=users,dc=local",
    password: Some("sesame"),
    stored: Some("{SSHA}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn"),
};
/// [`PP_RESET`] with the `{SSHA}` password of [`SSHA_USER`] ("sesame").
pub const PP_RESET_HASHED: TestUser = TestUser {
    uid: "ppresethashed",
    mail: "ppresethashed@example.com",
    dn: "cn=ppresethashed,ou=superheros,dc=users,dc=local",
    password: Some("sesame"),
    stored: Some("{SSHA}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn"),
};
/// Service accounts of [`SlapdOptions::ppolicy`] (password [`SERVICE_PW`]) that the policy
/// refuses: locked by an administrator, and reset (a bind succeeds, then every search is
/// refused until the password is changed).
pub const SERVICE_LOCKED_DN: &str = "cn=cyrus-locked,ou=machines,dc=users,dc=local";
pub const SERVICE_RESET_DN: &str = "cn=cyrus-reset,ou=machines,dc=users,dc=local";
/// The policy entry, users and service accounts of [`SlapdOptions::ppolicy`]; `pwdAccountLockedTime` and
/// `pwdReset` are the overlay's operational attributes, which slapadd stores as written.
pub const PPOLICY_LDIF: &str = "\
dn: ou=policies,dc=users,dc=local
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,dc=users,dc=local
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 3
pwdMustChange: TRUE

dn: cn=cyrus-locked,ou=machines,dc=users,dc=local
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: cyrus-locked
userPassword: cyrus
pwdAccountLockedTime: 000001010000Z

dn: cn=cyrus-reset,ou=machines,dc=users,dc=local
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: cyrus-reset
userPassword: cyrus
pwdReset: TRUE

dn: cn=pplocked,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: pplocked
sn: Locked
uid: pplocked
mail: pplocked@example.com
userPassword: locked-pw
pwdAccountLockedTime: 000001010000Z

dn: cn=ppreset,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: ppreset
sn: Reset
uid: ppreset
mail: ppreset@example.com
userPassword: reset-pw
pwdReset: TRUE

dn: cn=pplockedhashed,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: pplockedhashed
sn: Locked
uid: pplockedhashed
mail: pplockedhashed@example.com
userPassword: {SSHA}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn
pwdAccountLockedTime: 000001010000Z

dn: cn=ppresethashed,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: ppresethashed
sn: Reset
uid: ppresethashed
mail: ppresethashed@example.com
userPassword: {SSHA}J7T6T1SDhrQKVYIM81oPpitKmTG3kgTn
pwdReset: TRUE
";

/// Account state in the words of 389-ds, Active Directory, glauth and posix, for
/// [`SlapdOptions::extra_ldif`] (attributes from the test schema's `ldapbindAccountState`, and
/// `shadowAccount`). Each user's cleartext password is `<uid>-pw`; every one but
/// [`STATE_FINE`] is refused by ldapbind: (uid, attribute that says so).
pub const ACCOUNT_STATE_USERS: [(&str, &str); 7] = [
    ("dslocked", "nsAccountLock"),
    ("dsexpired", "passwordExpirationTime"),
    ("addisabled", "userAccountControl"),
    ("adexpired", "accountExpires"),
    ("adlockedout", "lockoutTime"),
    ("glauthinactive", "accountStatus"),
    ("shadowexpired", "shadowExpire"),
];
/// Carries every state attribute with a value that means "fine": logs in with `statefine-pw`.
pub const STATE_FINE: &str = "statefine";
pub const ACCOUNT_STATE_LDIF: &str = "\
dn: cn=dslocked,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: dslocked
sn: Locked
uid: dslocked
userPassword: dslocked-pw
nsAccountLock: true

dn: cn=dsexpired,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: dsexpired
sn: Expired
uid: dsexpired
userPassword: dsexpired-pw
passwordExpirationTime: 20200101000000Z

dn: cn=addisabled,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: addisabled
sn: Disabled
uid: addisabled
userPassword: addisabled-pw
userAccountControl: 514

dn: cn=adexpired,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: adexpired
sn: Expired
uid: adexpired
userPassword: adexpired-pw
accountExpires: 132223104000000000

dn: cn=adlockedout,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: adlockedout
sn: LockedOut
uid: adlockedout
userPassword: adlockedout-pw
lockoutTime: 133000000000000000

dn: cn=glauthinactive,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
cn: glauthinactive
sn: Inactive
uid: glauthinactive
userPassword: glauthinactive-pw
accountStatus: inactive

dn: cn=shadowexpired,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: shadowAccount
cn: shadowexpired
sn: Expired
uid: shadowexpired
userPassword: shadowexpired-pw
shadowExpire: 1

dn: cn=statefine,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindAccountState
objectClass: shadowAccount
cn: statefine
sn: Fine
uid: statefine
userPassword: statefine-pw
nsAccountLock: false
passwordExpirationTime: 29990101000000Z
userAccountControl: 66048
accountExpires: 9223372036854775807
lockoutTime: 0
pwdLastSet: 133000000000000000
accountStatus: active
shadowExpire: -1
";

/// Entries whose stored values no login may use as they are, for [`SlapdOptions::extra_ldif`]
/// (they are not in `users.ldif`, so [`ALL_USERS`] and the other tests never meet them). slapd
/// stores each value as written (base64 LDIF for the NUL bytes, control and padding):
///
/// - [`EMPTY_PW`]: `userPassword`, `authPassword` and `cmusaslsecretPLAIN` are empty values;
/// - [`NUL_PW`]: `userPassword` is `dogood\0xxx` (a C string compare stops at the NUL);
/// - [`PADDED`]: `uid` is `"  padded  "`; [`NUL_UID`]: `uid` is `"nul\0admin"`; [`CTL_UID`]: `uid`
///   is `"ctl\x01admin"` (canonical names taken from `uid` by `ldapdb_canon_attr: uid`).
pub const ODD_VALUES_LDIF: &str = "\
dn: cn=emptypw,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
objectClass: ldapbindSecrets
cn: emptypw
sn: Empty
uid: emptypw
mail: emptypw@example.com
userPassword:
authPassword:
cmusaslsecretPLAIN:

dn: cn=nulpw,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: nulpw
sn: Nul
uid: nulpw
mail: nulpw@example.com
userPassword:: ZG9nb29kAHh4eA==

dn: cn=padded,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: padded
sn: Padded
uid:: ICBwYWRkZWQgIA==
mail: padded@example.com
userPassword: padded-pw

dn: cn=nuluid,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: nuluid
sn: Nul
uid:: bnVsAGFkbWlu
mail: nuluid@example.com
userPassword: nuluid-pw

dn: cn=ctluid,ou=superheros,dc=users,dc=local
objectClass: inetOrgPerson
cn: ctluid
sn: Control
uid:: Y3RsAWFkbWlu
mail: ctluid@example.com
userPassword: ctluid-pw
";
/// Of [`ODD_VALUES_LDIF`]: empty `userPassword` (and `authPassword`, `cmusaslsecretPLAIN`).
pub const EMPTY_PW: TestUser = TestUser {
    uid: "emptypw",
    mail: "emptypw@example.com",
    dn: "cn=emptypw,ou=superheros,dc=users,dc=local",
    password: None,
    stored: Some(""),
};
/// Of [`ODD_VALUES_LDIF`]: `userPassword` `dogood\0xxx`; `password` is what libsasl2 would take.
pub const NUL_PW: TestUser = TestUser {
    uid: "nulpw",
    mail: "nulpw@example.com",
    dn: "cn=nulpw,ou=superheros,dc=users,dc=local",
    password: Some("dogood"),
    stored: Some("dogood\0xxx"),
};
/// Of [`ODD_VALUES_LDIF`]: `uid` `"  padded  "` (`uid` here is the trimmed name).
pub const PADDED: TestUser = TestUser {
    uid: "padded",
    mail: "padded@example.com",
    dn: "cn=padded,ou=superheros,dc=users,dc=local",
    password: Some("padded-pw"),
    stored: Some("padded-pw"),
};
/// Of [`ODD_VALUES_LDIF`]: `uid` `"nul\0admin"`.
pub const NUL_UID: TestUser = TestUser {
    uid: "nul\0admin",
    mail: "nuluid@example.com",
    dn: "cn=nuluid,ou=superheros,dc=users,dc=local",
    password: Some("nuluid-pw"),
    stored: Some("nuluid-pw"),
};
/// Of [`ODD_VALUES_LDIF`]: `uid` `"ctl\x01admin"`.
pub const CTL_UID: TestUser = TestUser {
    uid: "ctl\x01admin",
    mail: "ctluid@example.com",
    dn: "cn=ctluid,ou=superheros,dc=users,dc=local",
    password: Some("ctluid-pw"),
    stored: Some("ctluid-pw"),
};

/// Certificate files for a TLS-enabled slapd (see [`SlapdOptions::tls`]); [`TestCa::server`]
/// makes them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server certificate (PEM): `olcTLSCertificateFile`.
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8): `olcTLSCertificateKeyFile`.
    pub key: PathBuf,
    /// CA for client certificates: `olcTLSCACertificateFile` with `olcTLSVerifyClient: allow`, so
    /// a client may authenticate with a certificate (SASL EXTERNAL) but need not.
    pub ca: Option<PathBuf>,
}

/// A throwaway certificate authority made with the `openssl` command in its own temp dir: an
/// EC P-256 CA certificate, and leaf certificates it signs for servers and clients.
pub struct TestCa {
    dir: tempfile::TempDir,
    issued: Cell<u32>,
}

/// Validity of the certificates [`TestCa`] issues unless asked otherwise.
pub const CERT_DAYS: u32 = 30;

impl TestCa {
    /// A new CA whose certificate's subject is `CN=<name>`. Give two CAs of one test different
    /// names: a verifier that finds a trusted CA with the issuer's name reports a bad signature,
    /// not an unknown CA.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new().prefix("ldapbind-ca-").tempdir().expect("create the CA temp dir");
        let d = dir.path();
        openssl(
            d,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
             -out ca.pem -days 3650",
            &[
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        // `openssl ca` (not `x509 -req`) because only it sets arbitrary validity dates.
        fs::write(d.join("index.txt"), "").expect("write index.txt");
        fs::write(d.join("serial"), "1000\n").expect("write serial");
        let conf = format!(
            "[ca]\ndefault_ca = test_ca\n\
             [test_ca]\ndir = {dir}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\n\
             certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nserial = $dir/serial\n\
             default_md = sha256\npolicy = any\npreserve = yes\nunique_subject = no\n\
             email_in_dn = no\ncopy_extensions = none\n\
             [any]\ndomainComponent = optional\norganizationName = optional\n\
             organizationalUnitName = optional\ncommonName = supplied\n",
            dir = d.display()
        );
        fs::write(d.join("ca.cnf"), conf).expect("write ca.cnf");
        TestCa { dir, issued: Cell::new(0) }
    }

    /// The CA certificate (PEM): what `sasl_ldapdb_tls_cacert` names.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate valid now for `names` (IP addresses become IP subjectAltNames,
    /// anything else DNS names), e.g. `&["127.0.0.1", "localhost"]`, with this CA as the
    /// client-certificate CA. For a wrong host name, name another host.
    pub fn server(&self, names: &[&str]) -> TlsFiles {
        self.server_valid(names, None)
    }

    /// A server certificate for `names` that expired long ago (valid 2020-01-01 to 2020-01-02).
    pub fn expired_server(&self, names: &[&str]) -> TlsFiles {
        self.server_valid(names, Some(("20200101000000Z", "20200102000000Z")))
    }

    fn server_valid(&self, names: &[&str], dates: Option<(&str, &str)>) -> TlsFiles {
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        let ext = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName={}\n",
            san.join(",")
        );
        let subject = format!("/CN={}", names.first().copied().unwrap_or("server"));
        let (cert, key) = self.issue(&subject, &ext, dates);
        TlsFiles { cert, key, ca: Some(self.cert_path()) }
    }

    /// A server certificate whose only name is its subject's CN `cn`: no subjectAltName, like
    /// Samba's self-made one and many older Active Directory certificates.
    pub fn server_without_san(&self, cn: &str) -> TlsFiles {
        let ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                   extendedKeyUsage=serverAuth\n";
        let (cert, key) = self.issue(&format!("/CN={cn}"), ext, None);
        TlsFiles { cert, key, ca: Some(self.cert_path()) }
    }

    /// A client certificate (cert, key) whose subject is `subject` in openssl's
    /// `/DC=local/DC=users/OU=machines/CN=cyrus` form (the LDAP DN read backwards).
    pub fn client(&self, subject: &str) -> (PathBuf, PathBuf) {
        let ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                   extendedKeyUsage=clientAuth\n";
        self.issue(subject, ext, None)
    }

    /// A new key and a certificate for it signed by this CA: (certificate, key) paths.
    fn issue(&self, subject: &str, ext: &str, dates: Option<(&str, &str)>) -> (PathBuf, PathBuf) {
        let n = self.issued.get() + 1;
        self.issued.set(n);
        let d = self.dir.path();
        let (key, csr, cert, extfile) =
            (format!("leaf{n}.key"), format!("leaf{n}.csr"), format!("leaf{n}.pem"), format!("leaf{n}.ext"));
        fs::write(d.join(&extfile), ext).expect("write the extensions file");
        openssl(
            d,
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes",
            &["-keyout", &key, "-out", &csr, "-subj", subject],
        );
        let days = CERT_DAYS.to_string();
        let mut args = vec!["-in", &csr, "-out", &cert, "-extfile", &extfile];
        match dates {
            Some((start, end)) => args.extend(["-startdate", start, "-enddate", end]),
            None => args.extend(["-days", &days]),
        }
        openssl(d, "ca -batch -notext -config ca.cnf", &args);
        (d.join(cert), d.join(key))
    }
}

/// Runs `openssl <command split at white space> <more>` in `dir`; panics with its output when
/// it fails.
pub fn openssl(dir: &Path, command: &str, more: &[&str]) {
    let out = Command::new("openssl")
        .args(command.split_whitespace())
        .args(more)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {command} {} failed ({}):\n{}{}",
        more.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug, Clone)]
pub struct SlapdOptions {
    /// Run with `-d stats` (the default) so the log has conn=/op= lines; `false` runs `-d 0`,
    /// which logs nothing at all and makes [`Slapd::ops_since`] count nothing.
    pub stats_log: bool,
    /// TLS: slapd also listens on `ldaps://127.0.0.1:<second port>/` ([`Slapd::ldaps_url`]) and
    /// offers StartTLS on its `ldap://` port. `None`: no TLS at all, so StartTLS is refused.
    pub tls: Option<TlsFiles>,
    /// More entries, slapadd-ed after `tests/data/users.ldif` (so parents such as [`USERS_DN`]
    /// exist). Use `objectClass: ldapbindSecrets` for `authPassword`/`cmusaslsecret*`.
    pub extra_ldif: Option<String>,
    /// Also serve what Debian's C ldapdb plugin needs (SASL-ABI.md §6), for comparisons and
    /// benchmarks against it (`benches/logins.rs`); `false` (the default) keeps the glauth-like
    /// simple-bind-only directory. When `true`:
    ///
    /// - slapd's libsasl2 loads DIGEST-MD5 (a plugin dir holding only `libdigestmd5.so`), and
    ///   [`LDAPDB_SASL_ID`] with [`SERVICE_PW`] (the service entry's cleartext `userPassword`)
    ///   binds with it (`olcSaslHost: 127.0.0.1`, the host name ldapdb's libldap uses);
    /// - slapd also listens on `ldapi://` (a socket in the temp dir, [`Slapd::ldapi_url`]), where
    ///   SASL EXTERNAL with this process's uid/gid maps to the service account;
    /// - `olcAuthzRegexp` maps those two identities to [`SERVICE_DN`], and `uid=<user>,...,cn=auth`
    ///   (what `u:<user>` in a proxy-authz control becomes) to `cn=<user>,`[`USERS_DN`];
    /// - `olcAuthzPolicy: to`, and the service entry has `authzTo: dn.children:`[`USERS_DN`], so
    ///   it may proxy as any user (RFC 4370 control; WhoAmI honours it);
    /// - the ACLs add `by self read` (a proxied user reads its own entry and `userPassword`) and
    ///   `by anonymous auth` on entries (slapd's own auxprop reads the service secret for
    ///   DIGEST-MD5). The service account's simple bind and searches are unchanged.
    pub ldapdb_compat: bool,
    /// A server-side limit on the entries one search returns (see [`SizeLimit`]); `None`: slapd's
    /// default (500), which never cuts a user search short.
    pub size_limit: Option<SizeLimit>,
    /// OpenLDAP's password policy: the `ppolicy` overlay on the users' database (its schema is
    /// built into the 2.5 module) with [`PPOLICY_DEFAULT_DN`] as the default policy (lockout
    /// after 3 failures, written as `pwdAccountLockedTime`; must change after a reset; the lock
    /// reported in the response control),
    /// and the users and service accounts of [`PPOLICY_LDIF`]. The state attributes of the
    /// `*hashed` users are hidden from the service account by an ACL, so that only a bind as
    /// them learns it (the bind path). `false`: no password policy.
    pub ppolicy: bool,
    /// A directory true to glauth (and to OpenLDAP's default ACL): every `userPassword` is
    /// stored hashed only (the cleartext ones of `users.ldif` as `{SSHA}`, besides the
    /// `{SSHA}` and `{CRYPT}` users) and nobody may read it (`by anonymous auth by * none`),
    /// while the service account still searches. `false` (the default) keeps the
    /// cleartext-readable directory. Not with `ldapdb_compat`.
    pub hidden_passwords: bool,
}

/// Where [`SlapdOptions::size_limit`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// `olcSizeLimit: N` on the users' database: every non-root search (`sizelimit N` in slapd.conf).
    Database(u32),
    /// `olcLimits: dn.exact="<SERVICE_DN>" size=N`: the service account's searches only
    /// (`limits dn.exact=... size=N` in slapd.conf), a plausible hardening of that account.
    ServiceAccount(u32),
}

impl Default for SlapdOptions {
    fn default() -> Self {
        SlapdOptions {
            stats_log: true,
            tls: None,
            extra_ldif: None,
            ldapdb_compat: false,
            size_limit: None,
            ppolicy: false,
            hidden_passwords: false,
        }
    }
}

/// A position in slapd's log; see [`Slapd::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogMark(u64);

/// Operations counted in a stretch of slapd's stats log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Accepted TCP connections (`ACCEPT`).
    pub connections: usize,
    /// Bind requests, simple or SASL, whatever their outcome.
    pub binds: usize,
    /// Bind results other than success (and other than saslBindInProgress).
    pub failed_binds: usize,
    /// Search requests (`SRCH base=`).
    pub searches: usize,
    /// Every other request except UNBIND: extended, compare, modify, add, delete, modrdn, abandon.
    pub other_ops: usize,
}

/// Counts the operations in stats-log text (complete lines only).
pub fn parse_stats(text: &str) -> OpCounts {
    StatsLog::parse(text).counts
}

/// What a stretch of stats log says, including what slapd has not finished logging: it writes
/// request lines before answering, but RESULT lines after sending the answer, and a
/// connection's ACCEPT line (listener thread) may come after its first requests (worker thread).
#[derive(Default)]
struct StatsLog {
    counts: OpCounts,
    accepted: BTreeSet<u64>,
    /// Connections that made requests in this stretch.
    active: BTreeSet<u64>,
    /// (conn, op) of requests, and of results.
    requests: BTreeSet<(u64, u64)>,
    answered: BTreeSet<(u64, u64)>,
}

impl StatsLog {
    fn parse(text: &str) -> StatsLog {
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut log = StatsLog::default();
        for line in complete.lines() {
            // "<time> <thread> conn=1000 op=0 BIND dn=\"...\" method=128"; " conn=" skips
            // libsasl2's "SASL [conn=1006] ..." lines.
            let Some(at) = line.find(" conn=") else {
                continue;
            };
            let mut words = line[at + 1..].split(' ');
            let conn = words.next().and_then(|w| w.strip_prefix("conn=")?.parse::<u64>().ok());
            let (Some(conn), Some(second), Some(verb)) = (conn, words.next(), words.next()) else {
                continue;
            };
            let arg = words.next().unwrap_or("");
            if second.starts_with("fd=") {
                if verb == "ACCEPT" {
                    log.counts.connections += 1;
                    log.accepted.insert(conn);
                }
                continue;
            }
            let Some(op) = second.strip_prefix("op=").and_then(|o| o.parse::<u64>().ok()) else {
                continue;
            };
            let request = match verb {
                "BIND" if line.contains(" method=") => {
                    log.counts.binds += 1;
                    true
                }
                "SRCH" if arg.starts_with("base=") => {
                    log.counts.searches += 1;
                    true
                }
                "EXT" if arg.starts_with("oid=") => {
                    log.counts.other_ops += 1;
                    true
                }
                "CMP" | "MOD" | "ADD" | "DEL" | "MODRDN" if arg.starts_with("dn=") => {
                    log.counts.other_ops += 1;
                    true
                }
                // No response to wait for.
                "ABANDON" => {
                    log.counts.other_ops += 1;
                    false
                }
                "RESULT" | "SEARCH" => {
                    if arg == "tag=97" {
                        let err = words.next().unwrap_or("");
                        // 14: saslBindInProgress, a step of a bind that goes on.
                        if err != "err=0" && err != "err=14" {
                            log.counts.failed_binds += 1;
                        }
                    }
                    log.answered.insert((conn, op));
                    false
                }
                _ => false,
            };
            if request {
                log.requests.insert((conn, op));
                log.active.insert(conn);
            }
        }
        log
    }
}

pub struct Slapd {
    dir: tempfile::TempDir,
    opts: SlapdOptions,
    port: u16,
    /// The ldaps:// port; 0 without TLS.
    ldaps_port: u16,
    child: Option<Child>,
    frozen: Cell<bool>,
    /// Log position just before the latest (re)start, and once its readiness probe was done.
    spawned: LogMark,
    started: LogMark,
}

impl Slapd {
    /// The glauth-like directory of `tests/data/users.ldif`, stats log on.
    pub fn start() -> Slapd {
        Slapd::start_with(SlapdOptions::default())
    }

    pub fn start_with(opts: SlapdOptions) -> Slapd {
        assert!(
            Path::new(SLAPD).exists() && Path::new(SLAPADD).exists(),
            "{SLAPD} or {SLAPADD} is missing: run scripts/deps.sh (as root) first"
        );
        let dir = tempfile::Builder::new().prefix("ldapbind-slapd-").tempdir().expect("create the slapd temp dir");
        let mut slapd = Slapd {
            dir,
            opts,
            port: 0,
            ldaps_port: 0,
            child: None,
            frozen: Cell::new(false),
            spawned: LogMark(0),
            started: LogMark(0),
        };
        slapd.load_database();

        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            slapd.port = free_port();
            if slapd.opts.tls.is_some() {
                slapd.ldaps_port = loop {
                    let p = free_port();
                    if p != slapd.port {
                        break p;
                    }
                };
            }
            match slapd.spawn_and_wait() {
                Ok(()) => return slapd,
                // Most likely someone took the port between our probe and slapd's bind().
                Err(status) if attempt < ATTEMPTS => {
                    eprintln!("slapd exited ({status}) on port {}/{}; retrying", slapd.port, slapd.ldaps_port)
                }
                Err(status) => {
                    panic!("slapd exited ({status}) {ATTEMPTS} times while starting; last log:\n{}", slapd.log_text())
                }
            }
        }
        unreachable!()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ldap://127.0.0.1:PORT`, without a base DN.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldapi://<percent-encoded socket path>` with [`SlapdOptions::ldapdb_compat`], else `None`.
    pub fn ldapi_url(&self) -> Option<String> {
        self.opts.ldapdb_compat.then(|| format!("ldapi://{}", percent_encode_path(&self.ldapi_path())))
    }

    fn ldapi_path(&self) -> PathBuf {
        self.dir.path().join("ldapi")
    }

    /// Log with `-d stats` (`true`) or not at all from the next [`Slapd::restart`] on: e.g. a
    /// short run that counts operations, then a throughput run on the same data and port.
    pub fn set_stats_log(&mut self, on: bool) {
        self.opts.stats_log = on;
    }

    /// The ldaps:// port; panics when slapd runs without TLS.
    pub fn ldaps_port(&self) -> u16 {
        assert!(self.opts.tls.is_some(), "this slapd has no TLS (SlapdOptions::tls)");
        self.ldaps_port
    }

    /// `ldaps://127.0.0.1:PORT`, without a base DN; panics when slapd runs without TLS.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port())
    }

    /// Pid of the running slapd; panics when it is stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("slapd is stopped").id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The temp dir: `slapd.d/`, `data/`, `config.ldif`, `users.ldif`, `slapd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("slapd.log")
    }

    /// SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL; reaps the process. Idempotent, never
    /// panics (it runs from `Drop`, possibly while unwinding).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child, which we have not reaped yet, so the pid
        // cannot belong to another process. SIGCONT first: a frozen slapd would not act on
        // SIGTERM.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
            libc::kill(pid, libc::SIGTERM);
        }
        self.frozen.set(false);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops slapd and starts it again on the same port with the same data and log file.
    pub fn restart(&mut self) {
        self.stop();
        // slapd sets SO_REUSEADDR, so TIME_WAIT is no obstacle; a failure here means another
        // process took the port, which a few tries may outlast.
        let mut last = None;
        for _ in 0..3 {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(status) => last = Some(status),
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "slapd did not restart on port {} ({}); log:\n{}",
            self.port,
            last.map_or_else(String::new, |s| s.to_string()),
            self.log_text()
        );
    }

    /// SIGSTOP: the port keeps accepting TCP connections (kernel backlog) but nothing answers.
    /// Returns once every slapd thread is stopped (kill(2) only queues the signal; a thread busy
    /// on another CPU would otherwise still answer a request sent right after).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        self.frozen.set(true);
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid()));
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !all_threads_stopped(&tasks) {
            assert!(Instant::now() < deadline, "slapd did not stop after SIGSTOP");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGCONT after [`Slapd::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
        self.frozen.set(false);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.get()
    }

    /// Everything slapd logged so far, across restarts.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// The current end of the log; pass it to [`Slapd::ops_since`] after the operations to count.
    pub fn mark(&self) -> LogMark {
        LogMark(fs::metadata(self.log_path()).map_or(0, |m| m.len()))
    }

    /// Operations since the latest (re)start, not counting the fixture's own readiness probe.
    pub fn count_ops(&self) -> OpCounts {
        self.ops_since(&self.started)
    }

    /// Operations logged after `mark`. Request lines (BIND, SRCH, ...) and ACCEPT are written
    /// before slapd answers, so they are complete once the client has its response.
    ///
    /// Waits (up to [`SETTLE_TIMEOUT`], not while frozen) until slapd has logged the result of
    /// every request after `mark` and the ACCEPT of every connection that made one, so a test
    /// can count right after its client returns. Abandoned requests never get a result and cost
    /// the full wait.
    pub fn ops_since(&self, mark: &LogMark) -> OpCounts {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let window = StatsLog::parse(&self.log_since(mark));
            let unanswered = window.requests.difference(&window.answered).count();
            // Connection ids restart at 1000 with each slapd; look only at the current run.
            let accepted = StatsLog::parse(&self.log_since(mark.min(&self.spawned))).accepted;
            let settled = unanswered == 0 && window.active.is_subset(&accepted);
            if settled || self.is_frozen() || Instant::now() >= deadline {
                return window.counts;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Log text after `mark`.
    pub fn log_since(&self, mark: &LogMark) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let from = usize::try_from(mark.0).map_or(bytes.len(), |m| m.min(bytes.len()));
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// Waits until the log after `mark` contains `needle` (e.g. `"fd=12 closed"`, which slapd
    /// writes only after it notices the client went away).
    pub fn wait_for_log(&self, mark: &LogMark, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_since(mark).contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// An unbound connection with [`OP_TIMEOUT`] as connect timeout; use
    /// `conn.with_timeout(OP_TIMEOUT)` on each operation (ldap3's timeouts are per call).
    pub fn connect(&self) -> LdapConn {
        let settings = LdapConnSettings::new().set_conn_timeout(OP_TIMEOUT);
        LdapConn::with_settings(settings, &self.url()).unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// A connection bound as the service account.
    pub fn service_conn(&self) -> LdapConn {
        let mut conn = self.connect();
        conn.with_timeout(OP_TIMEOUT)
            .simple_bind(SERVICE_DN, SERVICE_PW)
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("service bind as {SERVICE_DN}: {e}"));
        conn
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own unreaped child.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
    }

    /// Writes config and data into the temp dir and slapadds them.
    fn load_database(&self) {
        let dir = self.dir.path();
        let dir_str = dir.to_str().expect("temp dir path is UTF-8");
        for sub in ["slapd.d", "data", "sasl2-empty"] {
            fs::create_dir(dir.join(sub)).expect("create a temp subdir");
        }
        let mut users = USERS_LDIF.to_owned();
        if self.opts.ppolicy {
            users.push('\n');
            users.push_str(PPOLICY_LDIF);
        }
        if let Some(extra) = &self.opts.extra_ldif {
            users.push('\n');
            users.push_str(extra);
        }
        let files = [
            ("config.ldif", self.config_ldif(dir_str)),
            ("ldapbind-test-schema.ldif", TEST_SCHEMA_LDIF.to_owned()),
            ("users.ldif", users),
        ];
        for (name, text) in &files {
            fs::write(dir.join(name), text).expect("write an LDIF into the temp dir");
        }
        assert!(!(self.opts.ldapdb_compat && self.opts.hidden_passwords), "ldapdb_compat reads passwords");
        if self.opts.ldapdb_compat {
            ldapdb_compat(dir);
        }
        if self.opts.hidden_passwords {
            hidden_passwords(dir);
        }
        for (db, ldif) in [("0", "config.ldif"), ("1", "users.ldif")] {
            let out = Command::new(SLAPADD)
                .args(["-q", "-n", db, "-F"])
                .arg(dir.join("slapd.d"))
                .arg("-l")
                .arg(dir.join(ldif))
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run {SLAPADD}: {e}"));
            assert!(
                out.status.success(),
                "slapadd -n{db} -l {ldif} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// cn=config with the TLS attributes of [`SlapdOptions::tls`] added to the `cn=config` entry
    /// and the limit of [`SlapdOptions::size_limit`] to the users' database.
    fn config_ldif(&self, dir: &str) -> String {
        let mut ldif = CONFIG_LDIF.replace("@DIR@", dir);
        if self.opts.ppolicy {
            let anchor = "olcModuleLoad: back_mdb\n";
            assert!(ldif.contains(anchor), "slapd-config.ldif lost its `{anchor}` line");
            ldif = ldif.replacen(anchor, &format!("{anchor}olcModuleLoad: ppolicy\n"), 1);
            // The overlay writes lockouts as the database's root DN (without one, the write is
            // refused with 50 and no lockout happens); it has no password, so nobody binds as it.
            let suffix = "olcSuffix: dc=users,dc=local\n";
            assert!(ldif.contains(suffix), "slapd-config.ldif lost its `{suffix}` line");
            ldif = ldif.replacen(suffix, &format!("{suffix}olcRootDN: cn=ppolicy,{BASE_DN}\n"), 1);
            // Hide the hashed users' state from everyone (the overlay itself reads it anyway).
            let (secrets, rest) = ("olcAccess: {0}to attrs=userPassword", "olcAccess: {1}to *");
            assert!(ldif.contains(secrets) && ldif.contains(rest), "slapd-config.ldif lost its olcAccess lines");
            ldif = ldif.replacen(rest, "olcAccess: {2}to *", 1).replacen(
                secrets,
                &format!(
                    "olcAccess: {{0}}to dn.regex=\"^cn=pp[a-z]+hashed,{USERS_DN}$\" \
                     attrs=pwdAccountLockedTime,pwdReset by * none\nolcAccess: {{1}}to attrs=userPassword"
                ),
                1,
            );
            ldif.push_str(&format!(
                "\ndn: olcOverlay={{0}}ppolicy,olcDatabase={{1}}mdb,cn=config\nobjectClass: olcOverlayConfig\n\
                 objectClass: olcPPolicyConfig\nolcOverlay: {{0}}ppolicy\nolcPPolicyDefault: {PPOLICY_DEFAULT_DN}\n\
                 olcPPolicyUseLockout: TRUE\n"
            ));
        }
        if let Some(limit) = self.opts.size_limit {
            let attr = match limit {
                SizeLimit::Database(n) => format!("olcSizeLimit: {n}\n"),
                SizeLimit::ServiceAccount(n) => format!("olcLimits: dn.exact=\"{SERVICE_DN}\" size={n}\n"),
            };
            let anchor = "olcDbMaxSize: 16777216\n";
            assert!(ldif.contains(anchor), "slapd-config.ldif lost its `{anchor}` line");
            ldif = ldif.replacen(anchor, &format!("{anchor}{attr}"), 1);
        }
        let Some(tls) = &self.opts.tls else {
            return ldif;
        };
        let path = |p: &Path| p.to_str().expect("TLS file path is UTF-8").to_owned();
        let mut attrs =
            format!("olcTLSCertificateFile: {}\nolcTLSCertificateKeyFile: {}\n", path(&tls.cert), path(&tls.key));
        if let Some(ca) = &tls.ca {
            attrs.push_str(&format!("olcTLSCACertificateFile: {}\nolcTLSVerifyClient: allow\n", path(ca)));
        }
        let anchor = "olcLogLevel: 0\n";
        assert!(ldif.contains(anchor), "slapd-config.ldif lost its `{anchor}` line");
        ldif.replacen(anchor, &format!("{anchor}{attrs}"), 1)
    }

    /// `-h`: the ldap:// listener, and the ldaps:// one with TLS.
    fn listen_urls(&self) -> String {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if self.opts.tls.is_some() {
            urls.push_str(&format!(" ldaps://127.0.0.1:{}/", self.ldaps_port));
        }
        urls
    }

    /// Starts slapd on `self.port` and waits until it answers; `Err` if it exited meanwhile.
    /// Panics (after killing it) if it neither answers nor exits within [`START_TIMEOUT`].
    fn spawn_and_wait(&mut self) -> Result<(), ExitStatus> {
        self.spawned = self.mark();
        self.child = Some(self.spawn());
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut probed = false;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(status);
            }
            if !probed {
                probed = accepts_connections(addr);
            }
            // The probe is slapd's first connection; once its ACCEPT and "closed" lines are in
            // (in either order), nothing of ours is left to pollute the counts after `started`.
            let probe_logged = || {
                let log = self.log_since(&self.spawned);
                log.contains(" ACCEPT from ") && log.contains(" closed")
            };
            if probed && (!self.opts.stats_log || probe_logged()) {
                self.started = self.mark();
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.log_text();
                self.stop();
                panic!("slapd did not accept connections on {addr} within {START_TIMEOUT:?}; log:\n{log}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `-h` listeners plus the ldapi:// one of [`SlapdOptions::ldapdb_compat`].
    fn with_ldapi(&self, mut urls: String) -> String {
        if let Some(ldapi) = self.ldapi_url() {
            // A socket left by a previous run of this slapd would make it refuse to start.
            let _ = fs::remove_file(self.ldapi_path());
            urls.push(' ');
            urls.push_str(&ldapi);
        }
        urls
    }

    /// slapd's libsasl2 plugin dir: empty (simple binds only, like glauth), or DIGEST-MD5 only
    /// with [`SlapdOptions::ldapdb_compat`] (EXTERNAL is built into libsasl2).
    fn sasl_path(&self) -> PathBuf {
        let dir = self.dir.path();
        if self.opts.ldapdb_compat { dir.join(LDAPDB_SASL_DIR) } else { dir.join("sasl2-empty") }
    }

    fn spawn(&self) -> Child {
        let dir = self.dir.path();
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the slapd log");
        let mut cmd = Command::new(SLAPD);
        cmd.arg("-d")
            .arg(if self.opts.stats_log { "stats" } else { "0" })
            .arg("-F")
            .arg(dir.join("slapd.d"))
            .arg("-h")
            .arg(self.with_ldapi(self.listen_urls()))
            // No SASL mechanism plugins inside slapd: simple binds only, like glauth.
            .env("SASL_PATH", self.sasl_path())
            .env("SASL_CONF_PATH", dir.join("sasl2-empty"))
            .env("LDAPNOINIT", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log);
        super::process::die_with_parent(&mut cmd, libc::SIGKILL);
        cmd.spawn().unwrap_or_else(|e| panic!("spawn {SLAPD}: {e}"))
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of slapd's log ({}) ---", self.log_path().display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.stop();
    }
}

/// slapd's SASL plugin dir with [`SlapdOptions::ldapdb_compat`] (inside the temp dir).
const LDAPDB_SASL_DIR: &str = "sasl2-ldapdb";
/// Debian's DIGEST-MD5 plugin, the only mechanism plugin slapd loads with ldapdb_compat.
const DIGEST_MD5_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/sasl2/libdigestmd5.so";

/// Rewrites `config.ldif` and `users.ldif` in the temp dir `dir` (before slapadd) for
/// [`SlapdOptions::ldapdb_compat`], and makes slapd's SASL plugin dir holding only DIGEST-MD5.
/// Replace each `old` (which must occur exactly once) in `file`.
fn edit(file: &Path, edits: &[(&str, String)]) {
    let mut text = fs::read_to_string(file).expect("read an LDIF from the temp dir");
    for (old, new) in edits {
        assert_eq!(
            text.matches(old).count(),
            1,
            "{} no longer has exactly one {old:?}; update tests/common/slapd.rs",
            file.display()
        );
        text = text.replacen(old, new, 1);
    }
    fs::write(file, text).expect("write an LDIF into the temp dir");
}

/// `slappasswd -h {SSHA} -s password`.
fn ssha(password: &str) -> String {
    let out = Command::new("/usr/sbin/slappasswd")
        .args(["-h", "{SSHA}", "-s", password])
        .output()
        .unwrap_or_else(|e| panic!("run slappasswd: {e}"));
    assert!(out.status.success(), "slappasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("slappasswd prints ASCII").trim().to_owned()
}

/// Rewrites `config.ldif` and `users.ldif` for [`SlapdOptions::hidden_passwords`].
fn hidden_passwords(dir: &Path) {
    edit(
        &dir.join("config.ldif"),
        &[(
            "  by dn.exact=\"cn=cyrus,ou=machines,dc=users,dc=local\" read\n  by anonymous auth\n",
            "  by anonymous auth\n".into(),
        )],
    );
    let mut hashes: Vec<(String, String)> = vec![(
        format!("cn: cyrus\nuserPassword: {SERVICE_PW}\n"),
        format!("cn: cyrus\nuserPassword: {}\n", ssha(SERVICE_PW)),
    )];
    for user in ALL_USERS {
        if let (Some(pw), Some(stored)) = (user.password, user.stored) {
            if pw == stored {
                hashes.push((
                    format!("mail: {}\nuserPassword: {pw}\n", user.mail),
                    format!("mail: {}\nuserPassword: {}\n", user.mail, ssha(pw)),
                ));
            }
        }
    }
    let edits: Vec<(&str, String)> = hashes.iter().map(|(o, n)| (o.as_str(), n.clone())).collect();
    edit(&dir.join("users.ldif"), &edits);
}

fn ldapdb_compat(dir: &Path) {
    assert!(Path::new(DIGEST_MD5_PLUGIN).exists(), "{DIGEST_MD5_PLUGIN} is missing (apt-get install libsasl2-modules)");
    let sasl_dir = dir.join(LDAPDB_SASL_DIR);
    fs::create_dir(&sasl_dir).expect("create slapd's SASL plugin dir");
    std::os::unix::fs::symlink(DIGEST_MD5_PLUGIN, sasl_dir.join("libdigestmd5.so")).expect("symlink libdigestmd5.so");
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let global = format!(
        "olcLogLevel: 0\n\
         olcAuthzPolicy: to\n\
         olcSaslHost: 127.0.0.1\n\
         olcAuthzRegexp: {{0}}\"^uid={LDAPDB_SASL_ID}(,cn=[^,]+)?,cn=digest-md5,cn=auth$\" \"{SERVICE_DN}\"\n\
         olcAuthzRegexp: {{1}}\"^gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth$\" \"{SERVICE_DN}\"\n\
         olcAuthzRegexp: {{2}}\"^uid=([^,]+)(,cn=[^,]+)?,cn=[^,]+,cn=auth$\" \"cn=$1,{USERS_DN}\"\n"
    );
    edit(
        &dir.join("config.ldif"),
        &[
            ("olcLogLevel: 0\n", global),
            ("  by anonymous auth\n", "  by self read\n  by anonymous auth\n".into()),
            ("  by * disclose", "  by self read\n  by anonymous auth\n  by * disclose".into()),
        ],
    );
    edit(
        &dir.join("users.ldif"),
        &[(
            "cn: cyrus\nuserPassword: cyrus\n",
            format!("cn: cyrus\nuserPassword: cyrus\nauthzTo: dn.children:{USERS_DN}\n"),
        )],
    );
}

/// `/a b/c` -> `%2Fa%20b%2Fc`, for the host part of an ldapi:// URL.
fn percent_encode_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether every thread under `/proc/<pid>/task` is in state T (stopped).
fn all_threads_stopped(tasks: &Path) -> bool {
    let Ok(entries) = fs::read_dir(tasks) else {
        return false;
    };
    entries.flatten().all(|task| {
        // "<tid> (<comm>) <state> ...": comm may hold spaces, the state follows the last ')'.
        fs::read_to_string(task.path().join("stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T')))
    })
}

/// Whether something listens on `addr`. A connect to a port nobody has bound yet can pick that
/// same port as its own and connect to itself (TCP simultaneous open); that is no answer.
fn accepts_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .is_ok_and(|probe| probe.local_addr().ok() != Some(addr))
}

/// A port nobody listens on right now (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}
