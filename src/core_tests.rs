//! The core against a scripted host and directory: every expected call must happen (checked
//! on drop), and nothing else may.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::{FileData, Sources};
use crate::host::{Host, Level, Requested};
use crate::ldap::{Directory, Entry, Found};

struct Opts(BTreeMap<&'static str, &'static str>);

impl Sources for Opts {
    fn option(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|v| (*v).to_owned())
    }
    fn read_file(&self, path: &Path) -> std::io::Result<FileData> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.display().to_string()))
    }
}

fn config(extra: &[(&'static str, &'static str)]) -> Arc<Config> {
    let mut map = BTreeMap::from([
        ("ldapdb_uri", "ldap://127.0.0.1:3893/dc=users,dc=local"),
        ("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local"),
        ("ldapdb_pw", "cyrus"),
    ]);
    map.extend(extra.iter().copied());
    Arc::new(Config::from_sources(&Opts(map)).unwrap_or_else(|e| panic!("{e:?}")))
}

#[derive(Default)]
struct FakeDir {
    /// filter -> result, consumed in order per filter.
    finds: RefCell<Vec<(String, Found)>>,
    binds: RefCell<Vec<(String, String, bool)>>,
    find_calls: Cell<usize>,
}

impl FakeDir {
    fn expect_find(self, filter: &str, found: Found) -> Self {
        self.finds.borrow_mut().push((filter.to_owned(), found));
        self
    }
    fn expect_bind(self, dn: &str, pw: &str, ok: bool) -> Self {
        self.binds.borrow_mut().push((dn.to_owned(), pw.to_owned(), ok));
        self
    }
}

impl Drop for FakeDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(self.finds.borrow().is_empty(), "expected searches never made: {:?}", self.finds.borrow());
            assert!(self.binds.borrow().is_empty(), "expected binds never made: {:?}", self.binds.borrow());
        }
    }
}

impl Directory for FakeDir {
    fn find(&self, filter: &str, attrs: &[String]) -> Result<Found, Error> {
        self.find_calls.set(self.find_calls.get() + 1);
        assert!(attrs.iter().any(|a| a == "userpassword"), "password always prefetched: {attrs:?}");
        for state in crate::account::ATTRS {
            assert!(attrs.iter().any(|a| a.eq_ignore_ascii_case(state)), "account state in the same search: {attrs:?}");
        }
        let mut finds = self.finds.borrow_mut();
        let i = finds.iter().position(|(f, _)| f == filter).unwrap_or_else(|| panic!("unexpected search {filter}"));
        Ok(finds.remove(i).1)
    }
    fn check_password(&self, dn: &str, password: &str) -> Result<bool, Error> {
        let mut binds = self.binds.borrow_mut();
        let i = binds
            .iter()
            .position(|(d, p, _)| d == dn && p == password)
            .unwrap_or_else(|| panic!("unexpected bind {dn}"));
        Ok(binds.remove(i).2)
    }
}

#[derive(Default)]
struct FakeHost {
    requested: RefCell<Vec<Requested>>,
    set: RefCell<Vec<(String, Vec<u8>)>>,
    erased: RefCell<Vec<String>>,
    logs: RefCell<Vec<(Level, String)>>,
    in_login: Cell<bool>,
    conn: usize,
    pwcheck: Option<String>,
    libsasl2: Option<(u8, u8, u16)>,
    /// `now()`: the real clock plus this much.
    ahead: Cell<Duration>,
}

impl FakeHost {
    fn requesting(names: &[&str]) -> Self {
        let h = FakeHost { conn: 1, ..Default::default() };
        *h.requested.borrow_mut() =
            names.iter().map(|n| Requested { name: (*n).to_owned(), has_values: false, first_value: None }).collect();
        h
    }
    fn values(&self, name: &str) -> Vec<String> {
        self.set
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs.borrow().iter().any(|(l, m)| *l == level && m.contains(needle))
    }
}

impl Host for FakeHost {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now() + self.ahead.get()
    }
    fn log(&self, level: Level, msg: std::fmt::Arguments<'_>) {
        self.logs.borrow_mut().push((level, crate::host::line(msg)));
    }
    fn libsasl2_version(&self) -> Option<(u8, u8, u16)> {
        self.libsasl2
    }
    fn set_error(&self, _msg: &str) {}
    fn realm(&self) -> Option<String> {
        None
    }
    fn conn_id(&self) -> usize {
        self.conn
    }
    fn login_in_progress(&self) -> bool {
        self.in_login.get()
    }
    fn requested(&self) -> Vec<Requested> {
        self.requested.borrow().clone()
    }
    fn library_option(&self, key: &str) -> Option<String> {
        (key == "pwcheck_method").then(|| self.pwcheck.clone()).flatten()
    }
    fn prop_erase(&self, name: &str) {
        self.erased.borrow_mut().push(name.to_owned());
        self.set.borrow_mut().retain(|(n, _)| n != name);
    }
    fn prop_set(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.set.borrow_mut().push((name.to_owned(), value.to_vec()));
        Ok(())
    }
}

const JOHN_FILTER: &str = "(|(uid=jdoe@example.com)(mail=jdoe@example.com))";

fn john(password: &str) -> Found {
    Found::One(Entry {
        dn: "cn=johndoe,ou=superheros,dc=users,dc=local".into(),
        attrs: vec![
            ("uid".into(), vec![b"johndoe".to_vec()]),
            ("mail".into(), vec![b"jdoe@example.com".to_vec(), b"John.Doe@example.com".to_vec()]),
            ("userPassword".into(), vec![password.as_bytes().to_vec()]),
        ],
    })
}

const AUTHID: LookupFlags = LookupFlags { override_values: false, authzid: false, verify_against_hash: false };
const AUTHZID: LookupFlags = LookupFlags { override_values: false, authzid: true, verify_against_hash: false };

#[test]
fn authid_pass_serves_star_names_under_their_exact_name() {
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john("dogood")));
    let host = FakeHost::requesting(&["*userPassword", "*cmusaslsecretPLAIN", "uidNumber"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert_eq!(host.values("*userPassword"), ["dogood"]);
    assert!(host.values("uidNumber").is_empty(), "plain names belong to the authzid pass");
}

#[test]
fn one_search_serves_the_whole_login() {
    let dir = FakeDir::default().expect_find(JOHN_FILTER, john("dogood"));
    let svc = Users::new(config(&[]), dir);
    // uidNumber: the authzid pass has a plain name to look up, so it would search if it could.
    let host = FakeHost::requesting(&["*userPassword", "uidNumber"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    host.in_login.set(true);
    svc.lookup(&host, AUTHZID, b"jdoe@example.com").unwrap();
    assert_eq!(svc.directory().find_calls.get(), 1);
}

#[test]
fn a_kept_result_serves_its_login_for_the_cache_ttl_only() {
    let dir = FakeDir::default().expect_find(JOHN_FILTER, john("dogood")).expect_find(JOHN_FILTER, john("dogood"));
    let svc = Users::new(config(&[]), dir);
    // The authzid pass asks for the plain names, so it has something to look up.
    let host = FakeHost::requesting(&["*userPassword", "uidNumber"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    host.in_login.set(true);
    host.ahead.set(CACHE_TTL - Duration::from_millis(10));
    svc.lookup(&host, AUTHZID, b"jdoe@example.com").unwrap();
    assert_eq!(svc.directory().find_calls.get(), 1, "within the TTL the kept result answers");
    host.ahead.set(CACHE_TTL + Duration::from_millis(10));
    svc.lookup(&host, AUTHZID, b"jdoe@example.com").unwrap();
    assert_eq!(svc.directory().find_calls.get(), 2, "past the TTL the directory is asked again");
}

#[test]
fn canon_then_lookups_use_one_search_and_canon_is_idempotent() {
    let dir = FakeDir::default().expect_find("(|(uid=johndoe)(mail=johndoe))", john("dogood"));
    let svc = Users::new(config(&[("ldapdb_canon_attr", "mail")]), dir);
    let host = FakeHost::requesting(&["*userPassword"]);
    // Two mail values: the typed name matches neither, so canon must refuse to pick...
    let err = svc.canonicalize(&host, b" johndoe ").unwrap_err();
    assert!(err.to_string().contains("refusing to pick"), "{err}");
    // ...while typing one of them picks the stored value, whatever the typed case.
    let typed = "(|(uid=JOHN.DOE@example.com)(mail=JOHN.DOE@example.com))";
    let dir = FakeDir::default().expect_find(typed, john("dogood"));
    let svc = Users::new(config(&[("ldapdb_canon_attr", "mail")]), dir);
    assert_eq!(svc.canonicalize(&host, b"JOHN.DOE@example.com ").unwrap(), "John.Doe@example.com");
    // Fed back in, the canonical name is its own canonical name (libsasl2 re-canonicalises).
    host.in_login.set(true);
    let dir =
        FakeDir::default().expect_find("(|(uid=John.Doe@example.com)(mail=John.Doe@example.com))", john("dogood"));
    let svc = Users::new(config(&[("ldapdb_canon_attr", "mail")]), dir);
    assert_eq!(svc.canonicalize(&host, b"John.Doe@example.com").unwrap(), "John.Doe@example.com");
}

#[test]
fn canonical_name_comes_from_the_entry() {
    let one = Found::One(Entry {
        dn: "cn=johndoe,ou=superheros,dc=users,dc=local".into(),
        attrs: vec![("uid".into(), vec![b"johndoe".to_vec()]), ("userPassword".into(), vec![b"dogood".to_vec()])],
    });
    let dir = FakeDir::default().expect_find(JOHN_FILTER, one);
    let svc = Users::new(config(&[("ldapdb_canon_attr", "uid")]), dir);
    let host = FakeHost::requesting(&["*userPassword"]);
    assert_eq!(svc.canonicalize(&host, b"  jdoe@example.com\t").unwrap(), "johndoe");
    // The re-canonicalisation and the lookups of the same login reuse the search.
    host.in_login.set(true);
    assert_eq!(svc.canonicalize(&host, b"johndoe").unwrap(), "johndoe");
    svc.lookup(&host, AUTHID, b"johndoe").unwrap();
    assert_eq!(host.values("*userPassword"), ["dogood"]);
    assert_eq!(svc.directory().find_calls.get(), 1);
}

#[test]
fn a_new_login_on_a_reused_connection_searches_again() {
    let dir = FakeDir::default().expect_find(JOHN_FILTER, john("a")).expect_find(JOHN_FILTER, john("b"));
    let svc = Users::new(config(&[]), dir);
    let host = FakeHost::requesting(&["*userPassword"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    let host = FakeHost::requesting(&["*userPassword"]);
    host.in_login.set(true);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert_eq!(host.values("*userPassword"), ["b"]);
}

#[test]
fn hashed_passwords_are_never_returned() {
    for hash in ["{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{CRYPT}$6$x$y", "$6$salt$hash"] {
        let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john(hash)));
        let host = FakeHost::requesting(&["*userPassword"]);
        svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
        assert!(host.values("*userPassword").is_empty(), "{hash} returned");
        // The admin's to fix: visible at the default sasl_log_level (1) the first time.
        assert!(host.logged(Level::Err, "saslauthd"), "{:?}", host.logs.borrow());
    }
    // With saslauthd checking PLAIN/LOGIN the hash is expected: a debug note, not a failure.
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john("{SSHA}x")));
    let host = FakeHost { pwcheck: Some("auxprop saslauthd".into()), ..FakeHost::requesting(&["*userPassword"]) };
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert!(host.logged(Level::Debug, "left to saslauthd"), "{:?}", host.logs.borrow());
    assert!(!host.logs.borrow().iter().any(|(l, _)| *l == Level::Fail));
}

#[test]
fn unknown_users_and_ambiguity() {
    let svc = Users::new(config(&[]), FakeDir::default().expect_find("(|(uid=nobody)(mail=nobody))", Found::None));
    let host = FakeHost::requesting(&["*userPassword"]);
    assert_eq!(svc.lookup(&host, AUTHID, b"nobody").unwrap_err().sasl_code(), crate::ffi::sasl::SASL_NOUSER);

    // An authorization id need not exist.
    let svc = Users::new(config(&[]), FakeDir::default().expect_find("(|(uid=bob)(mail=bob))", Found::None));
    let host = FakeHost::requesting(&["uidNumber"]);
    svc.lookup(&host, AUTHZID, b"bob").unwrap();

    let many = Found::Many(vec!["cn=a,dc=users,dc=local".into(), "cn=b,dc=users,dc=local".into()]);
    let svc = Users::new(
        config(&[]),
        FakeDir::default().expect_find("(|(uid=shared@example.com)(mail=shared@example.com))", many),
    );
    let host = FakeHost::requesting(&["*userPassword"]);
    let err = svc.lookup(&host, AUTHID, b"shared@example.com").unwrap_err();
    assert!(err.to_string().contains("cn=a,dc=users,dc=local; cn=b,dc=users,dc=local"), "{err}");
}

#[test]
fn hostile_names_never_reach_the_directory() {
    let svc = Users::new(config(&[]), FakeDir::default());
    let host = FakeHost::requesting(&["*userPassword"]);
    for name in [&b"a\0b"[..], b"\xff\xfe", b"   ", &[b'a'; 600][..], b"a\nb"] {
        assert!(svc.lookup(&host, AUTHID, name).is_err(), "{name:?}");
        assert!(svc.canonicalize(&host, name).is_err());
    }
    // Filter metacharacters are escaped, never interpreted.
    let svc = Users::new(
        config(&[]),
        FakeDir::default().expect_find("(|(uid=x\\29\\28uid=\\2a)(mail=x\\29\\28uid=\\2a))", Found::None),
    );
    assert!(svc.lookup(&host, AUTHID, b"x)(uid=*").is_err());
}

#[test]
fn nothing_requested_means_no_search() {
    let svc = Users::new(config(&[]), FakeDir::default());
    let host = FakeHost::requesting(&[]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    // Already-set values are left alone unless overriding.
    let host = FakeHost::requesting(&["*userPassword"]);
    host.requested.borrow_mut()[0].has_values = true;
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
}

#[test]
fn the_password_advice_names_auxprop_hashed_where_libsasl2_has_it() {
    let advice = |libsasl2, found| {
        let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, found));
        let host = FakeHost { libsasl2, ..FakeHost::requesting(&["*userPassword"]) };
        svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs[0].1.clone()
    };
    let unreadable = || Found::One(Entry { dn: "cn=johndoe,ou=superheros,dc=users,dc=local".into(), attrs: vec![] });
    for found in [john("{SSHA}x"), unreadable()] {
        let line = advice(Some((2, 1, 27)), found.clone());
        assert!(line.contains("with this libsasl2 (2.1.27), sasl_pwcheck_method: auxprop-hashed"), "{line}");
        for libsasl2 in [Some((2, 1, 28)), None] {
            let line = advice(libsasl2, found.clone());
            assert!(!line.contains("auxprop-hashed"), "{libsasl2:?}: {line}");
        }
    }
}

#[test]
fn verify_against_hash_binds_as_the_user() {
    let verify = LookupFlags { verify_against_hash: true, ..AUTHID };
    let dn = "cn=johndoe,ou=superheros,dc=users,dc=local";
    for (candidate, bind, kept) in [("secret", Some(true), true), ("wrong", Some(false), false), ("", None, false)] {
        let mut dir = FakeDir::default().expect_find(JOHN_FILTER, john("{SSHA}xyz"));
        if let Some(ok) = bind {
            dir = dir.expect_bind(dn, candidate, ok);
        }
        let svc = Users::new(config(&[]), dir);
        let host = FakeHost::requesting(&["*userPassword"]);
        host.requested.borrow_mut()[0] = Requested {
            name: "*userPassword".into(),
            has_values: true,
            first_value: Some(candidate.as_bytes().to_vec()),
        };
        let result = svc.lookup(&host, verify, b"jdoe@example.com");
        assert_eq!(host.erased.borrow().is_empty(), kept, "{candidate:?}");
        // A refused candidate fails the lookup as a wrong password, not as an unknown user.
        match result {
            Ok(()) => assert!(kept, "{candidate:?}"),
            Err(e) => assert!(!kept && e.sasl_code() == crate::ffi::sasl::SASL_BADAUTH, "{candidate:?}: {e:?}"),
        }
    }
}

fn entry_with(attrs: &[(&str, &[&[u8]])]) -> Found {
    Found::One(Entry {
        dn: "cn=johndoe,ou=superheros,dc=users,dc=local".into(),
        attrs: attrs.iter().map(|(n, vs)| ((*n).to_owned(), vs.iter().map(|v| v.to_vec()).collect())).collect(),
    })
}

#[test]
fn empty_and_nul_secrets_are_never_set_and_said_once_per_attribute() {
    let found = entry_with(&[
        ("uid", &[b"johndoe"]),
        ("userPassword", &[b"", b"dogood\0xxx"]),
        ("authPassword", &[b""]),
        ("cmusaslsecretPLAIN", &[b"x\0y"]),
        ("cmusaslsecretCRAM-MD5", &[b"ok"]),
        ("description", &[b""]),
    ]);
    let svc = Users::new(config(&[("ldapdb_canon_attr", "uid")]), FakeDir::default().expect_find(JOHN_FILTER, found));
    let names = ["*userPassword", "*authPassword", "*cmusaslsecretPLAIN", "*cmusaslsecretCRAM-MD5", "*description"];
    let host = FakeHost::requesting(&names);
    assert_eq!(svc.canonicalize(&host, b"jdoe@example.com").unwrap(), "johndoe");
    // The lookups of the login read the canonicalisation's result; the second says nothing again.
    host.in_login.set(true);
    svc.lookup(&host, AUTHID, b"johndoe").unwrap();
    svc.lookup(&host, LookupFlags { override_values: true, ..AUTHID }, b"johndoe").unwrap();
    for name in &names[..3] {
        assert!(host.values(name).is_empty(), "{name} was set");
    }
    assert_eq!(host.values("*cmusaslsecretCRAM-MD5"), ["ok", "ok"], "usable secrets still are");
    assert_eq!(host.values("*description"), ["", ""], "only secrets are judged");
    let fails: Vec<String> =
        host.logs.borrow().iter().filter(|(l, _)| *l == Level::Fail).map(|(_, m)| m.clone()).collect();
    let dn = "(cn=johndoe,ou=superheros,dc=users,dc=local)";
    assert_eq!(
        fails,
        [
            format!(
                "ldapbind: userPassword of johndoe {dn} {}; store the user's password in userPassword, or delete that value",
                Unusable::Empty.says()
            ),
            format!(
                "ldapbind: userPassword of johndoe {dn} {}; store the user's password in userPassword, or delete that value",
                Unusable::Nul.says()
            ),
            format!(
                "ldapbind: authPassword of johndoe {dn} {}; replace it with the authPassword made from the user's password, or delete that value",
                Unusable::Empty.says()
            ),
            format!(
                "ldapbind: cmusaslsecretPLAIN of johndoe {dn} {}; replace it with the cmusaslsecretPLAIN made from the user's password, or delete that value",
                Unusable::Nul.says()
            ),
        ],
        "one line per attribute and cause, and no \"has no userPassword\" besides"
    );
    assert!(host.logs.borrow().iter().all(|(_, m)| !m.contains("xxx") && !m.contains("dogood")));

    // A usable value next to an empty one is still served; a hash next to one still reported.
    let found = entry_with(&[("userPassword", &[b"", b"dogood"])]);
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, found));
    let host = FakeHost::requesting(&["*userPassword"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert_eq!(host.values("*userPassword"), ["dogood"]);
    let found = entry_with(&[("userPassword", &[b"", b"{SSHA}xyz"])]);
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, found));
    let host = FakeHost::requesting(&["*userPassword"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert!(host.values("*userPassword").is_empty());
    assert!(
        // A hash is the admin's to fix: ERR the first time the process meets it.
        host.logged(Level::Fail, "is empty") && host.logged(Level::Err, "stored as {SSHA}"),
        "{:?}",
        host.logs.borrow()
    );
}

#[test]
fn a_search_cut_by_the_servers_size_limit_is_never_a_match() {
    let unsure = || Found::Unsure {
        server: "127.0.0.1:389".into(),
        dns: vec!["cn=twin-a,ou=superheros,dc=users,dc=local".into()],
    };
    let shared = "(|(uid=shared@example.com)(mail=shared@example.com))";
    let check = |err: Error| {
        // An admin's problem (the service account's limit), never the code of a wrong password.
        assert_eq!(err.sasl_code(), crate::ffi::sasl::SASL_FAIL, "{err}");
        let m = err.to_string();
        assert!(
            m.contains("127.0.0.1:389")
                && m.contains("after 1 entry (cn=twin-a,ou=superheros,dc=users,dc=local) (4 sizeLimitExceeded)")
                && m.contains(
                    "; raise the size limit of the service account cn=cyrus,ou=machines,dc=users,dc=local to at least 2"
                )
                && m.contains("`limits dn.exact=\"cn=cyrus,ou=machines,dc=users,dc=local\" size=unlimited`"),
            "{m}"
        );
    };
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(shared, unsure()));
    let host = FakeHost::requesting(&["*userPassword"]);
    check(svc.lookup(&host, AUTHID, b"shared@example.com").unwrap_err());
    assert!(host.set.borrow().is_empty());

    let svc = Users::new(config(&[("ldapdb_canon_attr", "uid")]), FakeDir::default().expect_find(shared, unsure()));
    check(svc.canonicalize(&host, b"shared@example.com").unwrap_err());

    // An authorization id is no exception, and a candidate to verify is erased.
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(shared, unsure()));
    let host = FakeHost::requesting(&["uidNumber"]);
    check(svc.lookup(&host, AUTHZID, b"shared@example.com").unwrap_err());
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(shared, unsure()));
    let host = FakeHost::requesting(&["*userPassword"]);
    host.requested.borrow_mut()[0] =
        Requested { name: "*userPassword".into(), has_values: true, first_value: Some(b"twin-a-pw".to_vec()) };
    let verify = LookupFlags { verify_against_hash: true, ..AUTHID };
    check(svc.lookup(&host, verify, b"shared@example.com").unwrap_err());
    assert_eq!(*host.erased.borrow(), ["*userPassword"]);
}

#[test]
fn canonical_values_are_trimmed_and_checked_like_typed_names() {
    let canon = |uids: &[&[u8]], typed: &str| {
        let filter = format!("(|(uid={typed})(mail={typed}))");
        let found = entry_with(&[("uid", uids), ("userPassword", &[b"dogood"])]);
        let svc = Users::new(config(&[("ldapdb_canon_attr", "uid")]), FakeDir::default().expect_find(&filter, found));
        svc.canonicalize(&FakeHost::requesting(&["*userPassword"]), typed.as_bytes())
    };
    assert_eq!(canon(&[b"  admin \t"], "x").unwrap(), "admin");
    assert_eq!(canon(&[b" other ", b"  Admin  "], "admin").unwrap(), "Admin");
    for (bad, why) in [
        (&b"nul\0admin"[..], "\"nul\\0admin\" (contains a NUL byte)"),
        (b"ctl\x01admin", "\"ctl\\u{1}admin\" (contains control characters)"),
        (b"\xffadmin", "(not valid UTF-8)"),
        (b"   ", "(all-whitespace username)"),
        (&[b'a'; 600], "(longer than 512 bytes)"),
    ] {
        // Refused alone, and also next to a good value: the entry's names are broken.
        for uids in [&[bad][..], &[b"x", bad][..]] {
            let err = canon(uids, "x").unwrap_err();
            assert_eq!(err.sasl_code(), crate::ffi::sasl::SASL_BADAUTH, "{err}");
            let m = err.to_string();
            assert!(
                m.contains("has a uid (sasl_ldapdb_canon_attr) value that cannot be a user name")
                    && m.contains(why)
                    && m.contains("; correct that value in the directory"),
                "{m}"
            );
        }
    }
}

proptest::proptest! {
    /// Arbitrary bytes as a user name never panic: a name is refused or is trimmed UTF-8 of at
    /// most MAX_NAME_LEN bytes without NUL or control characters.
    #[test]
    fn checked_names_are_safe(input in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
        if let Ok(name) = checked_name(&input) {
            proptest::prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
            proptest::prop_assert!(!name.chars().any(char::is_control));
            proptest::prop_assert_eq!(name.trim_ascii(), name.as_str());
        }
    }
}

fn john_with(attr: &str, value: &str) -> Found {
    let Found::One(mut e) = john("dogood") else { unreachable!() };
    e.attrs.push((attr.to_owned(), vec![value.as_bytes().to_vec()]));
    Found::One(e)
}

#[test]
fn a_locked_account_gets_no_password_and_names_the_attribute() {
    for (attr, value, code, says) in [
        ("nsAccountLock", "true", -19, "is locked: nsAccountLock is true (389-ds"),
        ("pwdAccountLockedTime", "000001010000Z", -19, "is locked: pwdAccountLockedTime is 000001010000Z"),
        ("userAccountControl", "514", -19, "is disabled: userAccountControl is 514"),
        ("accountStatus", "inactive", -19, "is disabled: accountStatus is inactive (glauth"),
        ("shadowExpire", "1", -19, "has expired: shadowExpire is 1"),
        ("pwdReset", "TRUE", -18, "must change its password (it was reset): pwdReset is TRUE"),
    ] {
        let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john_with(attr, value)));
        let host = FakeHost::requesting(&["*userPassword", "*cmusaslsecretPLAIN"]);
        let err = svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap_err();
        assert!(matches!(err, Error::Account { .. }), "{err:?}");
        assert_eq!((err.sasl_code(), err.level()), (code, Level::Fail), "{attr}");
        let msg = err.to_string();
        assert!(msg.contains("user jdoe@example.com (cn=johndoe,ou=superheros,dc=users,dc=local)"), "{msg}");
        assert!(msg.contains(says), "{msg}");
        assert!(host.set.borrow().is_empty(), "{attr}: no value handed to libsasl2");
    }
}

#[test]
fn an_expired_password_logs_in_only_when_allowed() {
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john_with("pwdReset", "TRUE")));
    let host = FakeHost::requesting(&["*userPassword"]);
    let err = svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap_err();
    assert!(err.to_string().contains("sasl_ldapdb_allow_expired_password: yes"), "{err}");
    let allow = config(&[("ldapdb_allow_expired_password", "yes")]);
    let svc =
        Users::new(Arc::clone(&allow), FakeDir::default().expect_find(JOHN_FILTER, john_with("pwdReset", "TRUE")));
    let host = FakeHost::requesting(&["*userPassword"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert_eq!(host.values("*userPassword"), ["dogood"]);
    // The allowance covers passwords, never a locked account.
    let svc = Users::new(allow, FakeDir::default().expect_find(JOHN_FILTER, john_with("nsAccountLock", "TRUE")));
    let host = FakeHost::requesting(&["*userPassword"]);
    assert_eq!(svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap_err().sasl_code(), -19);
}

#[test]
fn a_locked_account_is_refused_before_any_bind_and_the_candidate_erased() {
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john_with("nsAccountLock", "true")));
    let host = FakeHost::requesting(&["*userPassword"]);
    host.requested.borrow_mut()[0] =
        Requested { name: "*userPassword".into(), has_values: true, first_value: Some(b"dogood".to_vec()) };
    let verify = LookupFlags { verify_against_hash: true, ..AUTHID };
    assert_eq!(svc.lookup(&host, verify, b"jdoe@example.com").unwrap_err().sasl_code(), -19);
    assert_eq!(*host.erased.borrow(), ["*userPassword"]);
}

#[test]
fn an_authzid_account_state_is_left_to_the_proxy_policy() {
    let svc = Users::new(config(&[]), FakeDir::default().expect_find(JOHN_FILTER, john_with("nsAccountLock", "true")));
    let host = FakeHost::requesting(&["uidNumber"]);
    svc.lookup(&host, AUTHZID, b"jdoe@example.com").unwrap();
}

/// The entry without a userPassword (or one the service account may not read), with `extra`.
fn john_without_password(extra: &[(&str, &str)]) -> Found {
    let mut attrs = vec![("mail".to_owned(), vec![b"jdoe@example.com".to_vec()])];
    attrs.extend(extra.iter().map(|(a, v)| ((*a).to_owned(), vec![v.as_bytes().to_vec()])));
    Found::One(Entry { dn: "cn=johndoe,ou=superheros,dc=users,dc=local".into(), attrs })
}

#[test]
fn the_admins_password_problems_are_err_once_per_process_and_cause_then_fail() {
    let dir = FakeDir::default()
        .expect_find(JOHN_FILTER, john_without_password(&[]))
        .expect_find(JOHN_FILTER, john_without_password(&[]))
        .expect_find(JOHN_FILTER, john("{SSHA}x"))
        .expect_find(JOHN_FILTER, john("{SSHA}y"))
        .expect_find(JOHN_FILTER, john("{CRYPT}$6$x$y"));
    let svc = Users::new(config(&[]), dir);
    let login = || {
        let host = FakeHost::requesting(&["*userPassword"]);
        svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
        let logs = host.logs.borrow().clone();
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs[0].clone()
    };
    let (level, line) = login();
    assert_eq!(level, Level::Err, "{line}");
    assert!(line.contains("has no userPassword, or the service account may not read it"), "{line}");
    assert_eq!(login().0, Level::Fail, "said at ERR once per process");
    assert_eq!(login().0, Level::Err, "a hashed password is another cause");
    assert_eq!(login().0, Level::Fail);
    assert_eq!(login().0, Level::Err, "another scheme");
}

#[test]
fn a_user_with_only_an_authpassword_is_no_admin_problem() {
    let scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    let dir = FakeDir::default().expect_find(JOHN_FILTER, john_without_password(&[("authPassword", scram)]));
    let svc = Users::new(config(&[]), dir);
    let host = FakeHost::requesting(&["*userPassword"]);
    svc.lookup(&host, AUTHID, b"jdoe@example.com").unwrap();
    assert!(host.logged(Level::Fail, "has no userPassword"), "{:?}", host.logs.borrow());
}
