//! The plugin's logic, generic over the host and the directory: canonicalise a name, serve the
//! requested properties, verify a password by binding. Everything between the C trampolines
//! and ldap3 lives here and is tested with a scripted host and directory.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::host::{FirstSeen, Host, Level, Requested};
use crate::ldap::{Directory, Entry, Found};
use crate::password::hash_scheme;

/// Longest user name sent to the directory, in bytes; longer ones are refused before any
/// LDAP traffic (e-mail addresses are at most 254).
pub const MAX_NAME_LEN: usize = 512;
/// A search result serves the rest of its login for at most this long.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Logins whose search results are kept at once (one slot per SASL connection).
pub const CACHE_SLOTS: usize = 64;

/// Properties fetched with every search besides the requested ones, so that the checks that
/// follow a canonicalisation in the same login (checkpw asks for `*userPassword` and
/// `*cmusaslsecretPLAIN`; CRAM/DIGEST/SCRAM for the password or their secrets) need no second
/// search. Unknown attribute names are ignored by LDAP servers.
pub const PREFETCH: &[&str] =
    &["userPassword", "authPassword", "cmusaslsecretPLAIN", "cmusaslsecretCRAM-MD5", "cmusaslsecretDIGEST-MD5"];

/// The `SASL_AUXPROP_*` flags a lookup receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct LookupFlags {
    pub override_values: bool,
    pub authzid: bool,
    pub verify_against_hash: bool,
}

/// What one search found, kept for the rest of the login on one SASL connection.
struct Slot {
    conn: usize,
    /// Rendered filters this result answers (the typed name's and the canonical name's).
    filters: Vec<String>,
    /// Lower-cased attributes that were asked for (absent from the entry = the entry has none).
    attrs: BTreeSet<String>,
    result: Arc<Searched>,
    at: Instant,
    /// Made by ldapbind's canonicalisation at the start of a login; only then may the authid
    /// lookups of the same login use it (see [`Service::search`]).
    by_canon: bool,
}

/// One search's answer, shared by the calls of one login.
struct Searched {
    found: Found,
    /// The password problem of this entry (hashed, missing) was logged already.
    password_reported: AtomicBool,
}

/// Who is asking for a search; decides whether a kept result may answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asker {
    Canon,
    AuthidLookup,
    AuthzidLookup,
}

/// A configured plugin: its configuration, its directory and the per-login result cache.
pub struct Service<D> {
    config: Arc<Config>,
    dir: D,
    cache: Mutex<Vec<Slot>>,
    /// Lower-cased attributes every search asks for: the prefetch set and the canonical-name
    /// attribute, computed once.
    base_attrs: BTreeSet<String>,
    /// The admin's problems this process has logged at `Err` already.
    seen: FirstSeen,
}

/// A name as it may be sent to the directory.
fn checked_name(input: &[u8]) -> Result<String, Error> {
    let shown = || format!("{:?}", String::from_utf8_lossy(&input[..input.len().min(64)]));
    let text = std::str::from_utf8(input).map_err(|_| Error::BadName { shown: shown(), why: "not valid UTF-8" })?;
    if text.contains('\0') {
        return Err(Error::BadName { shown: shown(), why: "contains a NUL byte" });
    }
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(Error::BadName { shown: shown(), why: "all-whitespace username" });
    }
    if trimmed.len() > MAX_NAME_LEN {
        return Err(Error::BadName { shown: shown(), why: "longer than 512 bytes" });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::BadName { shown: shown(), why: "contains control characters" });
    }
    Ok(trimmed.to_owned())
}

impl<D: Directory> Service<D> {
    pub fn new(config: Arc<Config>, dir: D) -> Self {
        let mut base_attrs: BTreeSet<String> =
            PREFETCH.iter().map(|p| config.attribute_for(p).to_ascii_lowercase()).collect();
        if let Some(canon) = &config.canon_attr {
            base_attrs.insert(canon.to_ascii_lowercase());
        }
        Service { config, dir, cache: Mutex::new(Vec::new()), base_attrs, seen: FirstSeen::default() }
    }

    /// The level for a problem only the admin can fix: `Err` the first time this process
    /// meets `cause`, `Fail` afterwards.
    pub fn admin_level(&self, cause: &str) -> Level {
        self.seen.level(cause)
    }

    /// The causes this process has logged at `Err` (shared with the errors the plugin reports).
    pub fn seen(&self) -> &FirstSeen {
        &self.seen
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn directory(&self) -> &D {
        &self.dir
    }

    /// Lower-cased LDAP attributes to fetch: the prefetch set, every requested property's
    /// attribute, and the canonical-name attribute.
    fn wanted_attrs(&self, requested: &[Requested]) -> BTreeSet<String> {
        let mut attrs = self.base_attrs.clone();
        for r in requested {
            let prop = r.name.strip_prefix('*').unwrap_or(&r.name);
            let attr = self.config.attribute_for(prop);
            if !attrs.contains(attr) {
                attrs.insert(attr.to_ascii_lowercase());
            }
        }
        attrs
    }

    /// Find the entry for `name`, from this login's kept result when allowed, else by one search.
    /// Returns the result (shared with the cache) and the rendered filter.
    fn search<H: Host>(
        &self,
        host: &H,
        name: &str,
        asker: Asker,
        attrs: &BTreeSet<String>,
    ) -> Result<(Arc<Searched>, String), Error> {
        let filter = self.config.filter.render(name, host.realm().as_deref());
        let conn = host.conn_id();
        // A kept result may answer only later calls of the same login. A login starts with
        // the canonicalisation (libsasl2 has no authid for the connection yet) or, when
        // another plugin canonicalises, with the authid lookup; those always search, so a
        // SASL connection reusing a freed one's address never sees the old result.
        let may_use = match asker {
            Asker::Canon => host.login_in_progress(),
            Asker::AuthidLookup | Asker::AuthzidLookup => true,
        };
        if may_use {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = cache.iter().find(|s| {
                s.conn == conn
                    && s.filters.contains(&filter)
                    && s.at.elapsed() < CACHE_TTL
                    && attrs.is_subset(&s.attrs)
                    && (asker != Asker::AuthidLookup || s.by_canon)
            }) {
                return Ok((Arc::clone(&slot.result), filter));
            }
        }
        let attr_list: Vec<String> = attrs.iter().cloned().collect();
        let result = Arc::new(Searched {
            found: self.dir.find(&filter, &attr_list)?,
            password_reported: AtomicBool::new(false),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|s| s.conn != conn && s.at.elapsed() < CACHE_TTL);
        if cache.len() >= CACHE_SLOTS {
            cache.remove(0);
        }
        cache.push(Slot {
            conn,
            filters: vec![filter.clone()],
            attrs: attrs.clone(),
            result: Arc::clone(&result),
            at: Instant::now(),
            by_canon: asker == Asker::Canon,
        });
        Ok((result, filter))
    }

    /// Let the kept result of this login also answer searches for `canonical`.
    fn alias<H: Host>(&self, host: &H, filter: &str, canonical: &str) {
        let canon_filter = self.config.filter.render(canonical, host.realm().as_deref());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = cache.iter_mut().find(|s| s.conn == host.conn_id() && s.filters.iter().any(|f| f == filter))
        {
            if !slot.filters.contains(&canon_filter) {
                slot.filters.push(canon_filter);
            }
        }
    }

    fn no_such_user(&self, user: &str, filter: String) -> Error {
        let base = match &self.config.base_hint {
            Some(hint) => format!("{} (note: {hint})", self.config.search_base),
            None => self.config.search_base.clone(),
        };
        Error::NoSuchUser { user: user.to_owned(), filter, base }
    }

    fn ambiguous(&self, user: &str, filter: String, dns: &[String]) -> Error {
        Error::Ambiguous { user: user.to_owned(), filter, base: self.config.search_base.clone(), dns: dns.join("; ") }
    }

    /// `canon_user_server`: the canonical name for `input`.
    pub fn canonicalize<H: Host>(&self, host: &H, input: &[u8]) -> Result<String, Error> {
        let name = checked_name(input)?;
        let Some(canon_attr) = self.config.canon_attr.clone() else {
            return Ok(name);
        };
        let attrs = self.wanted_attrs(&host.requested());
        let (result, filter) = self.search(host, &name, Asker::Canon, &attrs)?;
        let entry = match &result.found {
            Found::None => return Err(self.no_such_user(&name, filter)),
            Found::Many(dns) => return Err(self.ambiguous(&name, filter, dns)),
            Found::One(entry) => entry,
        };
        let canonical = pick_canonical(entry, &canon_attr, &name)?;
        if canonical != name {
            self.alias(host, &filter, &canonical);
        }
        host.log(Level::Debug, &format!("ldapbind: {name} is {} ({canon_attr} {canonical})", entry.dn));
        Ok(canonical)
    }

    /// `auxprop_lookup`: set the requested properties of `user` in the connection's context.
    pub fn lookup<H: Host>(&self, host: &H, flags: LookupFlags, user: &[u8]) -> Result<(), Error> {
        let requested = host.requested();
        // Authid pass: the `*` names; authzid pass: the plain names (the `*` ones carry the
        // authid's values then and must be left alone).
        let mut wanted: Vec<&Requested> = requested
            .iter()
            .filter(|r| r.name.starts_with('*') != flags.authzid)
            .filter(|r| r.name.len() > usize::from(r.name.starts_with('*')))
            .collect();
        let candidate = if flags.verify_against_hash && !flags.authzid {
            requested.iter().find(|r| r.name == "*userPassword").and_then(|r| r.first_value.clone())
        } else {
            None
        };
        wanted.retain(|r| !r.has_values || flags.override_values || (candidate.is_some() && r.name == "*userPassword"));
        if wanted.is_empty() {
            return Ok(());
        }
        let name = checked_name(user)?;
        let asker = if flags.authzid { Asker::AuthzidLookup } else { Asker::AuthidLookup };
        let attrs = self.wanted_attrs(&requested);
        let (result, filter) = self.search(host, &name, asker, &attrs)?;
        let entry = match &result.found {
            // An authorization id need not be in the directory (sasldb answers OK too): the
            // proxy policy decides, and a NOUSER here would fail logins that never use it.
            Found::None if flags.authzid => return Ok(()),
            Found::None => {
                if candidate.is_some() {
                    host.prop_erase("*userPassword");
                }
                return Err(self.no_such_user(&name, filter));
            }
            Found::Many(dns) => {
                if candidate.is_some() {
                    host.prop_erase("*userPassword");
                }
                return Err(self.ambiguous(&name, filter, dns));
            }
            Found::One(entry) => entry,
        };
        for req in wanted {
            let prop = req.name.strip_prefix('*').unwrap_or(&req.name);
            if let (Some(cand), true) = (&candidate, req.name == "*userPassword") {
                self.verify_by_bind(host, &name, entry, cand)?;
                continue;
            }
            let attr = self.config.attribute_for(prop).to_owned();
            let mut values: Vec<&Vec<u8>> = entry.values(&attr).iter().collect();
            if prop.eq_ignore_ascii_case("userPassword") {
                let (hashed, clear): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) =
                    values.into_iter().partition(|v| hash_scheme(v).is_some());
                // Said once per search result, however many lookups of the login read it.
                if clear.is_empty() && !result.password_reported.swap(true, Ordering::Relaxed) {
                    let saslauthd = host
                        .library_option("pwcheck_method")
                        .is_some_and(|m| m.split_ascii_whitespace().any(|v| v.eq_ignore_ascii_case("saslauthd")));
                    let (level, msg) = match hashed.first().and_then(|v| hash_scheme(v)) {
                        Some(scheme) if saslauthd => (
                            Level::Debug,
                            format!(
                                "ldapbind: {attr} of {name} ({}) is stored as {scheme}; PLAIN/LOGIN are left to saslauthd \
                                 (sasl_pwcheck_method), other mechanisms need a cleartext userPassword or an authPassword",
                                entry.dn
                            ),
                        ),
                        // The admin's to fix (the directory's storage or its ACL), whoever logs
                        // in: one cause per scheme, not per user.
                        Some(scheme) => (
                            self.admin_level(&format!("{attr} stored as {scheme}")),
                            hashed_password_message(&name, &entry.dn, &attr, &scheme),
                        ),
                        None => {
                            // With an authPassword the user still has a secret for SCRAM.
                            let has_scram = !entry.values(self.config.attribute_for("authPassword")).is_empty();
                            let level =
                                if has_scram { Level::Fail } else { self.admin_level(&format!("no readable {attr}")) };
                            let msg = format!(
                                "ldapbind: entry {} of {name} has no {attr}, or the service account may not read it; \
                                 give the service account (sasl_ldapdb_id) read access to {attr}",
                                entry.dn
                            );
                            (level, msg)
                        }
                    };
                    host.log(level, &msg);
                }
                values = clear;
            }
            if values.is_empty() {
                continue;
            }
            if req.has_values {
                host.prop_erase(&req.name);
            }
            for v in values {
                host.prop_set(&req.name, v)?;
            }
        }
        Ok(())
    }

    /// libsasl2 2.1.27's `auxprop-hashed` check: keep the candidate in `*userPassword` only
    /// when a bind as the user's DN accepts it.
    fn verify_by_bind<H: Host>(&self, host: &H, name: &str, entry: &Entry, candidate: &[u8]) -> Result<(), Error> {
        let refuse = |why: &str| {
            host.prop_erase("*userPassword");
            host.log(Level::Fail, &format!("ldapbind: password for {name} ({}) refused: {why}", entry.dn));
        };
        // An empty password would make the bind "unauthenticated" and succeed on many servers.
        let Ok(password) = std::str::from_utf8(candidate) else {
            refuse("the password is not valid UTF-8");
            return Ok(());
        };
        if password.is_empty() {
            refuse("empty password (checked without a bind)");
            return Ok(());
        }
        match self.dir.check_password(&entry.dn, password) {
            Ok(true) => Ok(()),
            Ok(false) => {
                refuse("the directory rejected the bind (49 invalidCredentials)");
                Ok(())
            }
            Err(e) => {
                host.prop_erase("*userPassword");
                Err(e)
            }
        }
    }
}

fn hashed_password_message(user: &str, dn: &str, attr: &str, scheme: &str) -> String {
    format!(
        "ldapbind: {attr} of {user} ({dn}) is stored as {scheme}, which libsasl2's pwcheck_method auxprop \
         cannot check (it compares cleartext), so it is not returned; store a cleartext userPassword or an \
         authPassword (RFC 5803 SCRAM) readable by the service account, or use sasl_pwcheck_method: saslauthd \
         for PLAIN/LOGIN against hashed passwords"
    )
}

/// The value of `attr` that names this entry: the only one, or the one equal to what was typed.
fn pick_canonical(entry: &Entry, attr: &str, typed: &str) -> Result<String, Error> {
    let values: Vec<&str> = entry.values(attr).iter().filter_map(|v| std::str::from_utf8(v).ok()).collect();
    match values.as_slice() {
        [] => Err(Error::Canon {
            what: format!(
                "entry {} has no {attr} (sasl_ldapdb_canon_attr), or the service account may not read it; \
                 give the entry a {attr} or set sasl_ldapdb_canon_attr to an attribute every user has",
                entry.dn
            ),
        }),
        [only] => Ok((*only).to_owned()),
        many => {
            many.iter().find(|v| v.eq_ignore_ascii_case(typed)).map(|v| (*v).to_owned()).ok_or_else(|| Error::Canon {
                what: format!(
                    "entry {} has {} values of {attr} (sasl_ldapdb_canon_attr) and none equals {typed}; \
                     refusing to pick one: use a single-valued attribute",
                    entry.dn,
                    many.len()
                ),
            })
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
