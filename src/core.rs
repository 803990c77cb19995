//! The plugin's logic, generic over the host and the directory: canonicalise a name, serve the
//! requested properties, verify a password by binding. Everything between the C trampolines
//! and ldap3 lives here and is tested with a scripted host and directory.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{CanonIssue, Error, Seen, ServiceAccount, Unsure};
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
/// search. Unknown attribute names are ignored by LDAP servers. The account state attributes
/// ([`crate::account::ATTRS`]) are asked for too.
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
    attrs: Attrs,
    result: Arc<Searched>,
    at: Instant,
    /// Made by ldapbind's canonicalisation at the start of a login; only then may the authid
    /// lookups of the same login use it (see [`Users::search`]).
    by_canon: bool,
}

/// One search's answer, shared by the calls of one login.
struct Searched {
    found: Found,
    /// The password problem of this entry (hashed, missing) was logged already.
    password_reported: AtomicBool,
    /// Attributes whose unusable secret values (see [`Unusable`]) were logged already.
    unusable_reported: Mutex<BTreeSet<String>>,
}

/// Who is asking for a search; decides whether a kept result may answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asker {
    Canon,
    AuthidLookup,
    AuthzidLookup,
}

/// The directory's users as a configured plugin sees them (not the SASL service, not the
/// service account): its configuration, its directory and the per-login result cache.
pub struct Users<D> {
    config: Arc<Config>,
    dir: D,
    cache: Mutex<Vec<Slot>>,
    /// Lower-cased attributes every search asks for: the prefetch set and the canonical-name
    /// attribute, computed once.
    base_attrs: Attrs,
    /// The admin's problems this process has logged at `Err` already.
    seen: FirstSeen,
}

/// A name as it may be sent to the directory.
pub(crate) fn checked_name(input: &[u8]) -> Result<String, Error> {
    trimmed_name(input).map_err(|why| Error::BadName { shown: shown_name(input), why })
}

/// `input` trimmed, or why it can be no user name: the rule for typed names and for the
/// values of `ldapdb_canon_attr` alike.
fn trimmed_name(input: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(input).map_err(|_| "not valid UTF-8")?;
    if text.contains('\0') {
        return Err("contains a NUL byte");
    }
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err("all-whitespace username");
    }
    if trimmed.len() > MAX_NAME_LEN {
        return Err("longer than 512 bytes");
    }
    if trimmed.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    Ok(trimmed.to_owned())
}

/// A refused name as a log line shows it: quoted and escaped, at most 64 bytes of it.
fn shown_name(input: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(&input[..input.len().min(64)]))
}

/// Why a value of a secret property (see [`is_secret`]) is never handed to libsasl2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Empty: every mechanism would accept the empty password (or derive its secrets from it).
    Empty,
    /// Holds a NUL byte: libsasl2 compares C strings, so the part before the NUL would pass.
    Nul,
}

impl Unusable {
    pub const ALL: [Unusable; 2] = [Unusable::Empty, Unusable::Nul];

    pub fn of(value: &[u8]) -> Option<Unusable> {
        if value.is_empty() {
            Some(Unusable::Empty)
        } else if value.contains(&0) {
            Some(Unusable::Nul)
        } else {
            None
        }
    }

    /// What the value is, as a format (`ldapbind-check` shows it instead of `cleartext`).
    pub fn format(self) -> &'static str {
        match self {
            Unusable::Empty => "empty",
            Unusable::Nul => "with a NUL byte",
        }
    }

    /// What such a value is and why ldapbind leaves it out, to follow an attribute's name.
    pub fn says(self) -> &'static str {
        match self {
            Unusable::Empty => "is empty, which ldapbind never hands to libsasl2 (an empty password must never log in)",
            Unusable::Nul => {
                "holds a NUL byte, which ldapbind never hands to libsasl2 (it compares C strings, so the part \
                 before the NUL would log in)"
            }
        }
    }
}

/// Lower-cased attribute names, sorted, each once; shared by the searches that ask for the same.
type Attrs = Arc<[String]>;

fn attrs_of<'a>(names: impl Iterator<Item = &'a str>) -> Attrs {
    let mut attrs: Vec<String> = names.map(str::to_ascii_lowercase).collect();
    attrs.sort();
    attrs.dedup();
    attrs.into()
}

/// Whether the SASL property `prop` holds a password or a secret made from one.
pub fn is_secret(prop: &str) -> bool {
    let p = prop.to_ascii_lowercase();
    p == "userpassword" || p == "authpassword" || p.starts_with("cmusaslsecret")
}

impl<D: Directory> Users<D> {
    pub fn new(config: Arc<Config>, dir: D) -> Self {
        let base_attrs = attrs_of(
            PREFETCH
                .iter()
                .map(|p| config.attribute_for(p))
                .chain(config.canon_attr.as_deref())
                // The account's state comes with the same search (see [`crate::account::state`]).
                .chain(crate::account::ATTRS.iter().copied()),
        );
        Users { config, dir, cache: Mutex::new(Vec::new()), base_attrs, seen: FirstSeen::default() }
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
    /// The base set itself (shared, not copied) when every requested property's attribute is in
    /// it, as for a password check.
    fn wanted_attrs(&self, requested: &[Requested]) -> Attrs {
        fn attr<'a>(config: &'a Config, r: &'a Requested) -> &'a str {
            config.attribute_for(r.name.strip_prefix('*').unwrap_or(&r.name))
        }
        let attr = |r| attr(&self.config, r);
        let known = |a: &str| self.base_attrs.iter().any(|b| b.eq_ignore_ascii_case(a));
        if requested.iter().all(|r| known(attr(r))) {
            return Arc::clone(&self.base_attrs);
        }
        attrs_of(self.base_attrs.iter().map(String::as_str).chain(requested.iter().map(attr)))
    }

    /// Find the entry for `name`, from this login's kept result when allowed, else by one search.
    /// Returns the result (shared with the cache) and the rendered filter.
    fn search<H: Host>(
        &self,
        host: &H,
        name: &str,
        asker: Asker,
        attrs: &Attrs,
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
        let now = host.now();
        let fresh = |s: &Slot| now.saturating_duration_since(s.at) < CACHE_TTL;
        if may_use {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = cache.iter().find(|s| {
                s.conn == conn
                    && s.filters.contains(&filter)
                    && fresh(s)
                    && (Arc::ptr_eq(attrs, &s.attrs) || attrs.iter().all(|a| s.attrs.binary_search(a).is_ok()))
                    && (asker != Asker::AuthidLookup || s.by_canon)
            }) {
                return Ok((Arc::clone(&slot.result), filter));
            }
        }
        let result = Arc::new(Searched {
            found: self.dir.find(&filter, attrs)?,
            password_reported: AtomicBool::new(false),
            unusable_reported: Mutex::new(BTreeSet::new()),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|s| s.conn != conn && fresh(s));
        if cache.len() >= CACHE_SLOTS {
            cache.remove(0);
        }
        cache.push(Slot {
            conn,
            filters: vec![filter.clone()],
            attrs: Arc::clone(attrs),
            result: Arc::clone(&result),
            at: now,
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

    /// The search was cut short by the server's own size limit: refuse, naming the limit.
    fn unsure(&self, user: &str, filter: String, server: &str, dns: &[String]) -> Error {
        unsure(&self.config, user, filter, server, dns)
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
            Found::Unsure { server, dns } => return Err(self.unsure(&name, filter, server, dns)),
            Found::One(entry) => entry,
        };
        let canonical = pick_canonical(entry, &canon_attr, &name)?;
        if canonical != name {
            self.alias(host, &filter, &canonical);
        }
        host.log(Level::Debug, format_args!("{name} is {} ({canon_attr} {canonical})", entry.dn));
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
            Found::Unsure { server, dns } => {
                if candidate.is_some() {
                    host.prop_erase("*userPassword");
                }
                return Err(self.unsure(&name, filter, server, dns));
            }
            Found::One(entry) => entry,
        };
        // The authid's account, as the directory would judge it at a bind; an authzid's
        // account is the proxy policy's business.
        if !flags.authzid {
            let state = crate::account::state(entry, std::time::SystemTime::now());
            if let Some(f) = state.refusal(self.config.allow_expired_password) {
                if candidate.is_some() {
                    host.prop_erase("*userPassword");
                }
                return Err(Error::Account {
                    condition: f.condition,
                    dn: entry.dn.clone(),
                    seen: Box::new(Seen::Entry { user: name.clone(), finding: f.clone() }),
                });
            }
        }
        for req in wanted {
            let prop = req.name.strip_prefix('*').unwrap_or(&req.name);
            if let (Some(cand), true) = (&candidate, req.name == "*userPassword") {
                self.verify_by_bind(host, &name, entry, cand)?;
                continue;
            }
            let attr = self.config.attribute_for(prop).to_owned();
            let mut values: Vec<&Vec<u8>> = entry.values(&attr).iter().collect();
            let mut dropped = false;
            if is_secret(prop) {
                let count = values.len();
                values.retain(|v| Unusable::of(v).is_none());
                dropped = values.len() < count;
                if dropped {
                    self.report_unusable(host, &result, &name, entry, &attr);
                }
            }
            if prop.eq_ignore_ascii_case("userPassword") {
                let (hashed, clear): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) =
                    values.into_iter().partition(|v| hash_scheme(v).is_some());
                // Said once per search result, however many lookups of the login read it.
                // Values left out as unusable were reported as such, not as a missing password.
                let missing = hashed.is_empty() && dropped;
                if clear.is_empty() && !missing && !result.password_reported.swap(true, Ordering::Relaxed) {
                    let saslauthd = host
                        .library_option("pwcheck_method")
                        .is_some_and(|m| m.split_ascii_whitespace().any(|v| v.eq_ignore_ascii_case("saslauthd")));
                    match hashed.first().and_then(|v| hash_scheme(v)) {
                        Some(scheme) if saslauthd => host.log(
                            Level::Debug,
                            format_args!(
                                "{attr} of {name} ({}) is stored as {scheme}; PLAIN/LOGIN are left to saslauthd \
                                 (sasl_pwcheck_method), other mechanisms need a cleartext userPassword or an authPassword",
                                entry.dn
                            ),
                        ),
                        // The admin's to fix (the directory's storage or its ACL), whoever logs
                        // in: one cause per scheme, not per user.
                        Some(scheme) => host.log(
                            self.admin_level(&format!("{attr} stored as {scheme}")),
                            format_args!("{}", hashed_password_message(&name, &entry.dn, &attr, &scheme, host)),
                        ),
                        None if saslauthd => host.log(
                            Level::Debug,
                            format_args!(
                                "entry {} of {name} shows the service account no {attr}; PLAIN/LOGIN are \
                                 left to saslauthd (sasl_pwcheck_method), other mechanisms need a readable one",
                                entry.dn
                            ),
                        ),
                        None => {
                            // With an authPassword the user still has a secret for SCRAM.
                            let has_scram = !entry.values(self.config.attribute_for("authPassword")).is_empty();
                            let level =
                                if has_scram { Level::Fail } else { self.admin_level(&format!("no readable {attr}")) };
                            host.log(
                                level,
                                format_args!(
                                "entry {} of {name} has no {attr}, or the service account may not read it; \
                                 give the service account (sasl_ldapdb_id) read access to {attr}, or, for a directory \
                                 that never reveals passwords (glauth, Active Directory), run ldapbind-authd and set \
                                 sasl_pwcheck_method: auxprop saslauthd and sasl_saslauthd_path: /run/ldapbind-authd/mux{}",
                                entry.dn,
                                auxprop_hashed_advice(host, "without reading it")
                            ),
                            );
                        }
                    }
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

    /// One FAIL line per attribute and search result for the values of `attr` that are left out.
    fn report_unusable<H: Host>(&self, host: &H, result: &Searched, name: &str, entry: &Entry, attr: &str) {
        let first =
            result.unusable_reported.lock().unwrap_or_else(|p| p.into_inner()).insert(attr.to_ascii_lowercase());
        if !first {
            return;
        }
        let fix = unusable_secret_fix(&self.config, attr);
        for why in Unusable::ALL {
            if entry.values(attr).iter().any(|v| Unusable::of(v) == Some(why)) {
                host.log(Level::Fail, format_args!("{attr} of {name} ({}) {}; {fix}", entry.dn, why.says()));
            }
        }
    }

    /// libsasl2 2.1.27's `auxprop-hashed` check: keep the candidate in `*userPassword` only
    /// when a bind as the user's DN accepts it.
    ///
    /// A refused candidate is erased and the lookup fails with SASL_BADAUTH: libsasl2 takes a
    /// lookup that answers OK with no value left for an unknown user (checkpw.c,
    /// auxprop_verify_password_hashed: SASL_NOUSER, "user not found"), while an error code of
    /// the lookup is what sasl_checkpass returns (auxprop.c, _sasl_account_status).
    fn verify_by_bind<H: Host>(&self, host: &H, name: &str, entry: &Entry, candidate: &[u8]) -> Result<(), Error> {
        let refuse = |why: &str| {
            host.prop_erase("*userPassword");
            Err(Error::WrongPassword { user: name.to_owned(), dn: entry.dn.clone(), why: why.to_owned() })
        };
        // An empty password would make the bind "unauthenticated" and succeed on many servers.
        let Ok(password) = std::str::from_utf8(candidate) else {
            return refuse("the password is not valid UTF-8");
        };
        if password.is_empty() {
            return refuse("empty password (checked without a bind)");
        }
        match self.dir.check_password(&entry.dn, password) {
            Ok(true) => Ok(()),
            Ok(false) => refuse("the directory rejected the bind (49 invalidCredentials)"),
            Err(e) => {
                host.prop_erase("*userPassword");
                Err(e)
            }
        }
    }
}

/// A search the server cut at its own size limit before a second entry could come: nobody can
/// tell whether `user` is unique, so it is refused (plugin and daemon alike).
pub(crate) fn unsure(config: &Config, user: &str, filter: String, server: &str, dns: &[String]) -> Error {
    Error::Unsure(Box::new(Unsure {
        user: user.to_owned(),
        filter,
        base: config.search_base.clone(),
        server: server.to_owned(),
        dns: dns.to_vec(),
        account: ServiceAccount::of(&config.bind),
    }))
}

/// What to do about an [`Unusable`] value of the secret attribute `attr`.
pub fn unusable_secret_fix(config: &Config, attr: &str) -> String {
    if attr.eq_ignore_ascii_case(config.attribute_for("userPassword")) {
        format!("store the user's password in {attr}, or delete that value")
    } else {
        format!("replace it with the {attr} made from the user's password, or delete that value")
    }
}

fn hashed_password_message(user: &str, dn: &str, attr: &str, scheme: &str, host: &impl Host) -> String {
    format!(
        "{attr} of {user} ({dn}) is stored as {scheme}, which libsasl2's pwcheck_method auxprop \
         cannot check (it compares cleartext), so it is not returned; store a cleartext userPassword or an \
         authPassword (RFC 5803 SCRAM) readable by the service account, or run ldapbind-authd and set \
         sasl_pwcheck_method: auxprop saslauthd and sasl_saslauthd_path: /run/ldapbind-authd/mux for PLAIN/LOGIN \
         against hashed passwords{}",
        auxprop_hashed_advice(host, "whatever its hash")
    )
}

/// libsasl2 up to 2.1.27 has `pwcheck_method: auxprop-hashed` (2.1.28 compiles it out,
/// checkpw.c): where the host's has it, the password advice names it too.
fn auxprop_hashed_advice(host: &impl Host, what: &str) -> String {
    match host.libsasl2_version() {
        Some((2, 1, step)) if step <= 27 => format!(
            "; or, with this libsasl2 (2.1.{step}), sasl_pwcheck_method: auxprop-hashed, which has ldapbind check \
             PLAIN/LOGIN passwords by a bind as the user, {what}"
        ),
        _ => String::new(),
    }
}

/// The value of `attr` that names this entry: the only one, or the one equal to what was typed;
/// trimmed and checked like a typed name, and refused when any value could be no name.
fn pick_canonical(entry: &Entry, attr: &str, typed: &str) -> Result<String, Error> {
    let canon = |issue| Error::Canon { dn: entry.dn.clone(), attr: attr.to_owned(), issue };
    let values = entry
        .values(attr)
        .iter()
        .map(|v| trimmed_name(v).map_err(|why| canon(CanonIssue::NotAName { shown: shown_name(v), why })))
        .collect::<Result<Vec<String>, Error>>()?;
    match values.as_slice() {
        [] => Err(canon(CanonIssue::Missing)),
        [only] => Ok((*only).to_owned()),
        many => many
            .iter()
            .find(|v| v.eq_ignore_ascii_case(typed))
            .map(|v| (*v).to_owned())
            .ok_or_else(|| canon(CanonIssue::NoneEquals { count: many.len(), typed: typed.to_owned() })),
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
