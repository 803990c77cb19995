//! One password check: the name recombined as libsasl2 split it, the entry found with the
//! plugin's filter, a bind as that entry's DN with the typed password.

use std::sync::Arc;

use crate::config::Config;
use crate::core::checked_name;
use crate::error::Error;
use crate::ldap::{Directory, Found};

use super::protocol::Request;

/// Why a login was refused; decides the answer's words and the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed login (NUL, invalid UTF-8, too long), empty login or empty password.
    BadRequest(String),
    Unknown(String),
    Ambiguous(String),
    WrongPassword(String),
    /// The directory refused the bind for a reason of the account (AD locked, expired, ...).
    Account(String),
    /// Directory unreachable, refusing the service account, or too slow.
    Unavailable(String),
}

impl Refusal {
    /// The words after `NO` in the answer (the client sees them; libsasl2 ignores them).
    pub fn answer(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "NO bad request",
            Refusal::Unknown(_) | Refusal::Ambiguous(_) | Refusal::WrongPassword(_) | Refusal::Account(_) => {
                "NO authentication failed"
            }
            Refusal::Unavailable(_) => "NO directory unavailable",
        }
    }

    /// The reason, with the fix where an admin can act.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::BadRequest(s)
            | Refusal::Unknown(s)
            | Refusal::Ambiguous(s)
            | Refusal::WrongPassword(s)
            | Refusal::Account(s)
            | Refusal::Unavailable(s) => s,
        }
    }
}

/// The name the plugin would have been given: libsasl2 splits `user@realm` at the last `@`
/// (and sends an empty realm when the application set none), so a non-empty realm is put back.
pub fn user_name(login: &[u8], realm: &[u8]) -> Result<String, Error> {
    if realm.is_empty() {
        return checked_name(login);
    }
    let mut joined = Vec::with_capacity(login.len() + 1 + realm.len());
    joined.extend_from_slice(login);
    joined.push(b'@');
    joined.extend_from_slice(realm);
    checked_name(&joined)
}

/// Checks passwords against one configuration.
pub struct Verifier<D> {
    config: Arc<Config>,
    dir: D,
    /// What the search asks for: the account's state, as the plugin reads it (built once, not
    /// per login).
    attrs: Vec<String>,
}

impl<D: Directory> Verifier<D> {
    pub fn new(config: Arc<Config>, dir: D) -> Self {
        let attrs = crate::account::ATTRS.iter().map(|a| (*a).to_owned()).collect();
        Verifier { config, dir, attrs }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `Ok(dn)` when the password is right. The login's name as logged is [`shown_login`].
    pub fn verify(&self, req: &Request) -> Result<String, Refusal> {
        let name = user_name(&req.login, &req.realm).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let password = std::str::from_utf8(req.password.expose())
            .map_err(|_| Refusal::BadRequest("the password is not valid UTF-8".into()))?;
        // An empty password would be an unauthenticated bind, which many servers let "succeed".
        if password.is_empty() {
            return Err(Refusal::BadRequest("empty password (refused without a bind)".into()));
        }
        if password.contains('\0') {
            return Err(Refusal::BadRequest("the password contains a NUL byte".into()));
        }
        let filter = self.config.filter.render(&name, None);
        let base = &self.config.search_base;
        // The account's state comes with the search, as in the plugin: a directory that does not
        // enforce it at bind (posix shadowExpire on OpenLDAP, glauth's accountStatus) still says it.
        let entry = match self.dir.find(&filter, &self.attrs) {
            Err(e) => return Err(Refusal::Unavailable(e.to_string())),
            Ok(Found::None) => {
                return Err(Refusal::Unknown(format!(
                    "unknown user: no entry matches {filter} under {base}; check the name, or \
                     sasl_ldapdb_filter and sasl_ldapdb_search_base"
                )));
            }
            Ok(Found::Many(dns)) => {
                return Err(Refusal::Ambiguous(format!(
                    "ambiguous: {filter} under {base} matches more than one entry ({}); make the entries' \
                     uid/mail unique or narrow sasl_ldapdb_filter",
                    dns.join("; ")
                )));
            }
            Ok(Found::Unsure { server, dns }) => {
                return Err(Refusal::Ambiguous(
                    crate::core::unsure(&self.config, &name, filter, &server, &dns).to_string(),
                ));
            }
            Ok(Found::One(entry)) => entry,
        };
        let dn = entry.dn.clone();
        let state = crate::account::state(&entry, std::time::SystemTime::now());
        if let Some(f) = state.refusal(self.config.allow_expired_password) {
            return Err(Refusal::Account(format!(
                "the account {dn} {}: {}; {}",
                f.condition.says(),
                f.evidence(),
                f.condition.user_fix()
            )));
        }
        // The pool replaces a kept connection that died (directory restarted) within the deadline.
        match self.dir.check_password(&dn, password) {
            Ok(true) => Ok(dn),
            Ok(false) => Err(Refusal::WrongPassword(format!("wrong password (the bind as {dn} returned 49)"))),
            // Locked, expired, must change: the directory's own words (ppolicy, 389-ds, AD data codes).
            Err(e @ Error::Account { .. }) => Err(Refusal::Account(e.to_string())),
            Err(e) => Err(Refusal::Unavailable(e.to_string())),
        }
    }
}

/// The login as logged: the name recombined, or the raw bytes shown safely when malformed.
pub fn shown_login(req: &Request) -> String {
    match user_name(&req.login, &req.realm) {
        Ok(name) => name,
        Err(_) => format!("{:?}", String::from_utf8_lossy(&req.login[..req.login.len().min(64)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretBytes;
    use crate::ldap::Entry;
    use std::sync::Mutex;

    /// A directory that records what it was asked.
    struct Scripted {
        found: Found,
        bind: Result<bool, String>,
        calls: Mutex<Vec<String>>,
    }

    impl Directory for Scripted {
        fn find(&self, filter: &str, _attrs: &[String]) -> Result<Found, Error> {
            self.calls.lock().unwrap().push(format!("find {filter}"));
            Ok(self.found.clone())
        }
        fn check_password(&self, dn: &str, _password: &str) -> Result<bool, Error> {
            self.calls.lock().unwrap().push(format!("bind {dn}"));
            self.bind.clone().map_err(Error::Internal)
        }
    }

    fn verifier(found: Found, bind: Result<bool, String>) -> Verifier<Scripted> {
        let options = |key: &str| match key {
            "ldapdb_uri" => Some("ldap://127.0.0.1:1/".to_owned()),
            "ldapdb_search_base" => Some("dc=example,dc=com".to_owned()),
            _ => None,
        };
        let config = Config::from_sources(&crate::config::SystemSources(options)).unwrap();
        Verifier::new(Arc::new(config), Scripted { found, bind, calls: Mutex::new(Vec::new()) })
    }

    fn one() -> Found {
        Found::One(Entry { dn: "uid=jdoe,dc=example,dc=com".into(), attrs: Vec::new() })
    }

    fn req(login: &[u8], pw: &[u8], realm: &[u8]) -> Request {
        Request {
            login: login.into(),
            password: SecretBytes::new(pw.into()),
            service: b"imap".to_vec(),
            realm: realm.into(),
        }
    }

    #[test]
    fn realm_is_put_back_as_the_plugin_saw_the_name() {
        let v = verifier(one(), Ok(true));
        assert_eq!(v.verify(&req(b"jdoe", b"pw", b"example.com")).unwrap(), "uid=jdoe,dc=example,dc=com");
        let calls = v.dir.calls.lock().unwrap().clone();
        assert_eq!(calls, ["find (|(uid=jdoe@example.com)(mail=jdoe@example.com))", "bind uid=jdoe,dc=example,dc=com"]);
        assert_eq!(user_name(b"jdoe", b"").unwrap(), "jdoe");
    }

    #[test]
    fn empty_and_malformed_requests_never_reach_the_directory() {
        let v = verifier(one(), Ok(true));
        for r in [
            req(b"jdoe", b"", b""),
            req(b"", b"pw", b""),
            req(b"jd\0oe", b"pw", b""),
            req(b"jd\xffoe", b"pw", b""),
            req(&[b'a'; 600], b"pw", b""),
            req(b"jdoe", b"p\0w", b""),
        ] {
            assert!(matches!(v.verify(&r), Err(Refusal::BadRequest(_))));
        }
        assert!(v.dir.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn refusals_say_why() {
        assert!(matches!(verifier(Found::None, Ok(true)).verify(&req(b"x", b"pw", b"")), Err(Refusal::Unknown(_))));
        let many = Found::Many(vec!["cn=a".into(), "cn=b".into()]);
        assert!(matches!(verifier(many, Ok(true)).verify(&req(b"x", b"pw", b"")), Err(Refusal::Ambiguous(_))));
        assert!(matches!(verifier(one(), Ok(false)).verify(&req(b"x", b"pw", b"")), Err(Refusal::WrongPassword(_))));
        let unsure = Found::Unsure { server: "127.0.0.1:389".into(), dns: vec!["cn=a".into()] };
        let r = verifier(unsure, Ok(true)).verify(&req(b"x", b"pw", b""));
        assert!(matches!(&r, Err(Refusal::Ambiguous(s)) if s.contains("size limit")), "{r:?}");
        let locked = Found::One(Entry {
            dn: "uid=jdoe,dc=example,dc=com".into(),
            attrs: vec![("nsAccountLock".into(), vec![b"true".to_vec()])],
        });
        let v = verifier(locked, Ok(true));
        let r = v.verify(&req(b"x", b"pw", b""));
        assert!(matches!(&r, Err(Refusal::Account(s)) if s.contains("nsAccountLock")), "{r:?}");
        assert!(!v.dir.calls.lock().unwrap().iter().any(|c| c.starts_with("bind")), "a locked account is never bound");
    }
}
