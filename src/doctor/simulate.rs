//! A login as the plugin takes it: a recording host (libsasl2's side) and directory (the LDAP
//! side) around the plugin's own [`Users`], the probe of each URL, the user search, the
//! canonical name, the properties, the account and the password.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::conf::Options;
use super::mechanisms::{Secrets, unusable_format};
use super::options::{authd_problem, service_account, uses_saslauthd};
use super::report::{Mark, PASSWORD, PropertyRow, Report, SearchInfo, Section, Status, Step, problem_and_fix};
use super::{Check, Input};
use crate::account::AccountState;
use crate::config::{Config, Secret, keys};
use crate::core::{LookupFlags, PREFETCH, Unusable, Users};
use crate::error::Error;
use crate::host::{Host, Level, Requested};
use crate::ldap::client::LdapDirectory;
use crate::ldap::probe::{self, Outcome, ProbeStep};
use crate::ldap::{Directory, Found};
use crate::password::hash_scheme;
use crate::state::Selection;

/// The properties libsasl2 requests for the six mechanisms (authid properties, `*` names).
pub(super) fn requested_names() -> Vec<String> {
    PREFETCH.iter().map(|p| format!("*{p}")).collect()
}

/// A `Host` like libsasl2's server connection: it records what the plugin sets and logs.
pub(super) struct CliHost {
    pub(super) requested: Vec<String>,
    pub(super) values: RefCell<BTreeMap<String, Vec<Vec<u8>>>>,
    pub(super) logs: RefCell<Vec<(Level, String)>>,
    pub(super) in_login: Cell<bool>,
}

impl CliHost {
    pub(super) fn new(requested: Vec<String>) -> CliHost {
        CliHost {
            requested,
            values: RefCell::new(BTreeMap::new()),
            logs: RefCell::new(Vec::new()),
            in_login: Cell::new(false),
        }
    }

    pub(super) fn count(&self, name: &str) -> usize {
        self.values.borrow().get(name).map_or(0, Vec::len)
    }

    /// Runs `f` on the values set for `name` (never copied out, never printed).
    pub(super) fn with_values<T>(&self, name: &str, f: impl FnOnce(&[Vec<u8>]) -> T) -> T {
        let values = self.values.borrow();
        f(values.get(name).map_or(&[][..], Vec::as_slice))
    }
}

impl Drop for CliHost {
    fn drop(&mut self) {
        // Cleartext passwords were handed to us; zero them before the memory is reused.
        for v in self.values.get_mut().values_mut().flatten() {
            v.fill(0);
            std::hint::black_box(&v);
        }
    }
}

impl Host for CliHost {
    fn log(&self, level: Level, msg: std::fmt::Arguments<'_>) {
        self.logs.borrow_mut().push((level, crate::host::line(msg)));
    }

    fn set_error(&self, _msg: &str) {}

    fn realm(&self) -> Option<String> {
        None
    }

    fn conn_id(&self) -> usize {
        1
    }

    fn login_in_progress(&self) -> bool {
        self.in_login.get()
    }

    fn requested(&self) -> Vec<Requested> {
        let values = self.values.borrow();
        self.requested
            .iter()
            .map(|name| {
                let v = values.get(name);
                Requested {
                    name: name.clone(),
                    has_values: v.is_some_and(|v| !v.is_empty()),
                    first_value: v.and_then(|v| v.first().cloned()),
                }
            })
            .collect()
    }

    fn library_option(&self, _key: &str) -> Option<String> {
        // The report weighs pwcheck_method itself (the mechanisms table); the core's log
        // lines are not shown by the check.
        None
    }

    fn prop_erase(&self, name: &str) {
        if let Some(v) = self.values.borrow_mut().get_mut(name) {
            v.iter_mut().for_each(|x| x.fill(0));
            v.clear();
        }
    }

    fn prop_set(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        // libsasl2's prop_set refuses names that were not requested (auxprop.c:540-548).
        if !self.requested.iter().any(|r| r == name) {
            return Err(Error::Host { call: "prop_set", code: crate::ffi::sasl::SASL_BADPARAM });
        }
        self.values.borrow_mut().entry(name.to_owned()).or_default().push(value.to_vec());
        Ok(())
    }
}

/// What one user search returned, without any value of a secret attribute.
#[derive(Debug, Clone)]
pub(super) enum SearchOutcome {
    None,
    One {
        dn: String,
        formats: BTreeMap<String, Vec<String>>,
        state: AccountState,
    },
    Many(Vec<String>),
    /// Cut short by the server's size limit before two entries (DNs of those that came).
    Unsure(Vec<String>),
    /// The plugin's error, as its problem and fix.
    Failed((String, Option<String>)),
}

#[derive(Debug, Clone)]
pub(super) struct SearchRecord {
    pub(super) filter: String,
    pub(super) outcome: SearchOutcome,
}

/// The plugin's directory, with every search recorded as the plugin sent it.
pub(super) struct Recorder {
    pub(super) inner: LdapDirectory,
    pub(super) config: Arc<Config>,
    pub(super) searches: Mutex<Vec<SearchRecord>>,
}

impl Recorder {
    pub(super) fn searches(&self) -> Vec<SearchRecord> {
        self.searches.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Per lower-cased password attribute, one format per value.
    pub(super) fn formats(&self, entry: &crate::ldap::Entry) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for prop in PREFETCH {
            let attr = self.config.attribute_for(prop);
            let values = entry.values(attr);
            if values.is_empty() {
                continue;
            }
            let formats = values.iter().map(|v| value_format(prop, v)).collect();
            out.insert(attr.to_ascii_lowercase(), formats);
        }
        out
    }
}

/// How a password-like value is stored, never the value itself.
pub(super) fn value_format(prop: &str, value: &[u8]) -> String {
    if let Some(why) = Unusable::of(value) {
        return why.format().to_owned();
    }
    if prop.eq_ignore_ascii_case("userPassword") {
        return hash_scheme(value).unwrap_or_else(|| "cleartext".to_owned());
    }
    if prop.eq_ignore_ascii_case("authPassword") {
        // RFC 5803: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
        let scheme = value.iter().position(|&b| b == b'$').map(|end| &value[..end]);
        return match scheme {
            Some(s) if !s.is_empty() && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') => {
                String::from_utf8_lossy(s).into_owned()
            }
            _ => "unrecognised (not RFC 5803 `SCHEME$...`)".to_owned(),
        };
    }
    format!("present ({} bytes)", value.len())
}

impl Directory for Recorder {
    fn find(&self, filter: &str, attrs: &[String]) -> Result<Found, Error> {
        let result = self.inner.find(filter, attrs);
        let outcome = match &result {
            Ok(Found::None) => SearchOutcome::None,
            Ok(Found::One(e)) => SearchOutcome::One {
                dn: e.dn.clone(),
                formats: self.formats(e),
                state: crate::account::state(e, std::time::SystemTime::now()),
            },
            Ok(Found::Many(dns)) => SearchOutcome::Many(dns.clone()),
            Ok(Found::Unsure { dns, .. }) => SearchOutcome::Unsure(dns.clone()),
            Err(e) => SearchOutcome::Failed(problem_and_fix(e)),
        };
        self.searches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SearchRecord { filter: filter.to_owned(), outcome });
        result
    }

    fn check_password(&self, dn: &str, password: &str) -> Result<bool, Error> {
        self.inner.check_password(dn, password)
    }
}

/// Resolve, connect, TLS and service bind for one URL.
pub(super) fn url_section(
    config: &Config,
    url: &crate::uri::LdapUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> (Section, bool) {
    let mut steps = Vec::new();
    let base = url.base_dn.as_deref().map_or("no base DN".to_owned(), |d| format!("base DN {d}"));
    let place = match url.scheme {
        crate::uri::Scheme::Ldapi => url.port_text(),
        _ => format!("host {}, {}", url.host, url.port_text()),
    };
    steps.push(Step::ok(format!("parse: {}:// {place}, {base}", url.scheme)));
    let probe = probe::probe(config, url, tls);
    for (step, outcome) in &probe.steps {
        let name = step.as_str();
        steps.push(match outcome {
            Outcome::Ok(what) => Step::ok(format!("{name}: {what}")),
            Outcome::NotNeeded(why) => Step::note(format!("{name}: {why}")),
            Outcome::Failed(e) => Step::from_error(e, "check the server and sasl_ldapdb_uri"),
        });
    }
    if let Some((last, _)) = probe.steps.last() {
        let remaining = [ProbeStep::Resolve, ProbeStep::Connect, ProbeStep::Tls, ProbeStep::ServiceBind];
        let from = remaining.iter().position(|s| s == last).map_or(remaining.len(), |i| i + 1);
        for s in &remaining[from..] {
            steps.push(Step::skipped(format!("{}: not tried", s.as_str())));
        }
    }
    (Section { title: format!("server {}", url.original), steps }, probe.usable())
}

/// libsasl2's INTERNAL canonicalization without a realm: trim white space.
pub(super) fn internal_canon(user: &str) -> Result<String, Error> {
    let t = user.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return Err(Error::BadName { shown: format!("{user:?}"), why: "all-whitespace username" });
    }
    Ok(t.to_owned())
}

pub(super) const NOT_FOUND_FIX: &str = "check the user name; the entry must be under the search base, match \
     sasl_ldapdb_filter and be visible to the service account (set sasl_ldapdb_filter, e.g. \
     (mail=%u), or sasl_ldapdb_search_base if users are found by another attribute or live elsewhere)";

/// The step for what the plugin's lookup failed with, or `problem` when it did not fail.
fn failure_step(failure: Option<&Error>, problem: &str, fix: &str) -> Step {
    match failure {
        Some(e) => Step::from_error(e, fix),
        None => Step::problem(problem, fix),
    }
}

/// One login through the plugin's core: what canonicalize and lookup did.
struct Login {
    service: Users<Recorder>,
    host: CliHost,
    /// libsasl2 asks ldapbind for the canonical name (`canon_user_plugin: ldapbind`).
    by_ldapbind: bool,
    canonical: Result<String, Error>,
    /// The property lookup, once there is a canonical name.
    looked_up: Option<Result<(), Error>>,
}

impl Login {
    /// Canonicalize and look up `user` as libsasl2 does with this selection.
    fn run(user: &str, selection: &Selection, config: &Arc<Config>, tls: Option<&Arc<rustls::ClientConfig>>) -> Login {
        let recorder = Recorder {
            inner: LdapDirectory::new(Arc::clone(config), tls.cloned()),
            config: Arc::clone(config),
            searches: Mutex::new(Vec::new()),
        };
        let service = Users::new(Arc::clone(config), recorder);
        let host = CliHost::new(requested_names());
        let by_ldapbind = selection.canon_named;
        let canonical = if by_ldapbind { service.canonicalize(&host, user.as_bytes()) } else { internal_canon(user) };
        // libsasl2 has recorded the authid now: the lookups belong to this login.
        host.in_login.set(true);
        let looked_up =
            canonical.as_ref().ok().map(|name| service.lookup(&host, LookupFlags::default(), name.as_bytes()));
        Login { service, host, by_ldapbind, canonical, looked_up }
    }

    /// What the login failed with.
    fn failure(&self) -> Option<&Error> {
        self.canonical.as_ref().err().or_else(|| self.looked_up.as_ref().and_then(|r| r.as_ref().err()))
    }
}

/// The entry the search found: its DN and, per password attribute, its values' formats.
type FoundEntry = (String, BTreeMap<String, Vec<String>>);

/// Canonicalize and look up the user through the plugin's core, like one login does, and
/// report each step.
pub(super) fn lookup(check: &Check, report: &mut Report, secrets: &mut Secrets) {
    let Check { input, opts, selection, config, tls } = check;
    let login = Login::run(&input.user, selection, config, tls.as_ref());
    let (entry, account) = search_section(input, config, &login, report, secrets);
    report.dn = entry.as_ref().map(|(d, _)| d.clone());
    if let Some(state) = &account {
        account_section(config, state, report, secrets);
    }
    let step = canonical_step(opts, config, &login, report);
    report.sections.push(Section { title: "canonical name".into(), steps: vec![step] });
    let steps = properties_steps(opts, config, &login, entry.as_ref(), report, secrets);
    report.sections.push(Section { title: "properties".into(), steps });
    if let Some(password) = &input.password {
        let step = check_password(&login.service, &login.host, report.dn.as_deref(), secrets, password, opts);
        report.password_ok = Some(step.status == Status::Ok);
        secrets.bind_ok = !secrets.clear && step.status == Status::Ok;
        report.sections.push(Section { title: PASSWORD.into(), steps: vec![step] });
    }
    login.service.directory().inner.close_all();
}

/// The user search as the plugin sent it and what it found; the entry and its account state.
fn search_section(
    input: &Input,
    config: &Config,
    login: &Login,
    report: &mut Report,
    secrets: &mut Secrets,
) -> (Option<FoundEntry>, Option<AccountState>) {
    let service = &login.service;
    let failure = login.failure();
    let searches = service.directory().searches();
    let mut steps = Vec::new();
    let scope = config.scope.as_str();
    steps.push(Step::ok(format!("base {} ({}), scope {scope}", config.search_base, config.base_source)));
    let mut dn = None;
    let mut account = None;
    for rec in &searches {
        steps.push(Step::ok(format!("filter as sent: {}", rec.filter)));
        let (entries, dns) = match &rec.outcome {
            SearchOutcome::None => {
                steps.push(not_found_step(config, login, &rec.filter));
                secrets.blocked = Some(format!("the search found no entry for {}", input.user));
                (0, Vec::new())
            }
            SearchOutcome::One { dn: d, formats, state } => {
                steps.push(Step::ok(format!("1 entry: {d}")));
                dn = Some((d.clone(), formats.clone()));
                account = Some(state.clone());
                (1, vec![d.clone()])
            }
            SearchOutcome::Many(dns) => {
                let mut step = failure_step(
                    failure,
                    "more than one entry matches",
                    "make the entries' uid/mail unique or narrow sasl_ldapdb_filter",
                );
                step.text = format!("{} entries: {}", dns.len(), step.text);
                steps.push(step);
                secrets.blocked = Some(format!("the search for {} is ambiguous", input.user));
                (dns.len(), dns.clone())
            }
            SearchOutcome::Unsure(dns) => {
                steps.push(failure_step(
                    failure,
                    "the server's size limit ended the search",
                    "raise the service account's size limit on the server to at least 2",
                ));
                secrets.blocked = Some(format!("the server's size limit cut the search for {} short", input.user));
                (dns.len(), dns.clone())
            }
            SearchOutcome::Failed(failed) => {
                steps.push(Step::from_parts(failed.clone(), "check the server and the service account's rights"));
                secrets.blocked = Some("the user search failed (see above)".into());
                (0, Vec::new())
            }
        };
        report.search = Some(SearchInfo {
            base: config.search_base.clone(),
            scope: scope.to_owned(),
            filter: rec.filter.clone(),
            entries,
            dns,
        });
    }
    if searches.is_empty() {
        match failure {
            // Refused before any search (a name that must not reach LDAP).
            Some(e) => {
                steps
                    .push(Step::problem(e.to_string(), "type the name without control characters or surrounding junk"));
                secrets.blocked = Some("the name was refused before any search".into());
            }
            None => steps.push(Step::skipped("no search was needed")),
        }
    }
    report.sections.push(Section { title: "user search".into(), steps });
    (dn, account)
}

/// A search that found nothing: the plugin's message, and whether the service account sees any
/// entry below the base at all (if not, the user name is not the problem).
fn not_found_step(config: &Config, login: &Login, filter: &str) -> Step {
    let msg = login.failure().map_or_else(|| format!("no entry matches {filter}"), ToString::to_string);
    match login.service.directory().inner.first_below_base() {
        Ok(None) => {
            let who = service_account(config);
            Step::problem(
                format!(
                    "0 entries: {msg}; {who} sees no entry below {} (a one-level search for (objectClass=*) \
                     there found nothing), so the user name may well be right",
                    config.search_base
                ),
                format!(
                    "check that the users live under {base} (sasl_ldapdb_search_base, or the DN in \
                     sasl_ldapdb_uri), and give {who} read and search access to them in the server's \
                     access rules (OpenLDAP olcAccess, 389-ds aci)",
                    base = config.search_base
                ),
            )
            .marked(Mark::SeesNothing)
        }
        _ => Step::problem(format!("0 entries: {msg}"), NOT_FOUND_FIX),
    }
}

/// The canonical name libsasl2 gets, and from where.
fn canonical_step(opts: &Options, config: &Config, login: &Login, report: &mut Report) -> Step {
    let canon_plugin = opts.spelled("canon_user_plugin");
    match (&login.canonical, login.by_ldapbind, &config.canon_attr) {
        (Ok(name), true, Some(attr)) => {
            report.canonical = Some(name.clone());
            let of = report.dn.as_deref().map_or(String::new(), |d| format!(" of {d}"));
            Step::ok(format!("{name} (the {attr}{of}; {canon_plugin}: ldapbind)"))
        }
        (Ok(name), true, None) => {
            report.canonical = Some(name.clone());
            Step::ok(format!("{name} (trimmed only: {} is not set)", opts.spelled(keys::CANON_ATTR)))
        }
        (Ok(name), false, _) => {
            report.canonical = Some(name.clone());
            Step::note(format!(
                "{name}: the name as typed, trimmed ({canon_plugin} is not ldapbind; libsasl2's INTERNAL does it)"
            ))
        }
        (Err(e @ Error::Canon { .. }), _, _) => {
            Step::from_error(e, "set sasl_ldapdb_canon_attr to an attribute every user has once")
        }
        (Err(Error::NoSuchUser { .. } | Error::Ambiguous { .. }), _, _) => {
            Step::skipped("none: the search did not find exactly one entry")
        }
        (Err(_), _, _) => Step::skipped("none: the user search failed (see above)"),
    }
}

/// The password properties of the entry, and what the plugin handed to libsasl2.
fn properties_steps(
    opts: &Options,
    config: &Config,
    login: &Login,
    entry: Option<&FoundEntry>,
    report: &mut Report,
    secrets: &mut Secrets,
) -> Vec<Step> {
    let mut steps = Vec::new();
    match (entry, &login.looked_up) {
        (Some((_, formats)), Some(Ok(()))) => {
            let mut any = false;
            for prop in PREFETCH {
                if let Some(mut more) = property_steps(opts, config, login, prop, formats, report, secrets) {
                    any = true;
                    steps.append(&mut more);
                }
            }
            if !any {
                let what = format!(
                    "no password: the entry has none of {}, or the service account may not read them",
                    PREFETCH.join(", ")
                );
                let step = if uses_saslauthd(opts) {
                    Step::note(format!("{what}; PLAIN/LOGIN go to saslauthd (pwcheck_method)"))
                } else {
                    authd_problem(what, opts)
                };
                steps.push(step.marked(Mark::NoPassword));
                secrets.blocked.get_or_insert_with(|| "the entry has no password the service account can read".into());
            }
        }
        (Some(_), Some(Err(Error::Account { .. }))) => {
            steps.push(Step::skipped("none handed to libsasl2: ldapbind refuses the account (see account)"));
        }
        (Some(_), Some(Err(e))) => {
            steps.push(Step::from_error(e, "see the plugin's message above"));
            secrets.blocked.get_or_insert_with(|| "the property lookup failed".into());
        }
        (Some(_), None) if matches!(login.canonical, Err(Error::Canon { .. })) => {
            steps.push(Step::skipped("not looked up: no canonical name"));
            secrets.blocked.get_or_insert_with(|| "ldapbind refused the canonical name (see above)".into());
        }
        _ => {
            steps.push(Step::skipped("not looked up: no entry"));
            secrets.blocked.get_or_insert_with(|| "the user was not found".into());
        }
    }
    steps
}

/// The steps for one property `prop` of the entry; `None` when the entry has no value of it.
fn property_steps(
    opts: &Options,
    config: &Config,
    login: &Login,
    prop: &str,
    formats: &BTreeMap<String, Vec<String>>,
    report: &mut Report,
    secrets: &mut Secrets,
) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let attr = config.attribute_for(prop);
    let label = if attr.eq_ignore_ascii_case(prop) { prop.to_owned() } else { format!("{prop} (attribute {attr})") };
    let found = formats.get(&attr.to_ascii_lowercase()).cloned().unwrap_or_default();
    let handed = login.host.count(&format!("*{prop}"));
    if found.is_empty() {
        return None;
    }
    if prop == "userPassword" {
        secrets.user_password = found.clone();
    }
    report.properties.push(PropertyRow {
        property: prop.to_owned(),
        attribute: attr.to_owned(),
        formats: found.clone(),
        handed,
    });
    // Empty values and values with a NUL byte are never handed to libsasl2: say so, and
    // weigh only the others.
    for why in Unusable::ALL.into_iter().filter(|u| found.iter().any(|f| f == u.format())) {
        steps.push(Step::problem(
            format!("{label}: a value {}", why.says()),
            crate::core::unusable_secret_fix(config, attr),
        ));
    }
    let usable: Vec<&String> = found.iter().filter(|f| unusable_format(f).is_none()).collect();
    if usable.is_empty() {
        return Some(steps);
    }
    let shown = if prop == "authPassword" {
        usable.iter().map(|f| format!("authPassword {f}")).collect::<Vec<_>>().join(", ")
    } else {
        usable.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
    };
    match prop {
        "userPassword" => {
            if handed > 0 {
                secrets.clear = true;
                steps.push(Step::ok(format!("{label}: {shown}")));
            } else if uses_saslauthd(opts) {
                steps.push(Step::note(format!(
                    "{label}: {shown}: a hash; PLAIN/LOGIN go to saslauthd (pwcheck_method), other mechanisms need a cleartext userPassword or an authPassword"
                )));
            } else {
                steps.push(authd_problem(
                    format!("{label}: {shown}: a hash, which ldapbind never hands to libsasl2 (pwcheck_method auxprop compares cleartext)"),
                    opts,
                ));
            }
        }
        "authPassword" => {
            login.host.with_values("*authPassword", |vals| {
                secrets.scram = vals.iter().map(|v| value_format("authPassword", v)).collect();
            });
            steps.push(Step::ok(format!("{label}: {shown}")));
        }
        _ => {
            match prop {
                "cmusaslsecretPLAIN" => secrets.plain_secret = handed > 0,
                "cmusaslsecretCRAM-MD5" => secrets.cram_secret = handed > 0,
                "cmusaslsecretDIGEST-MD5" => secrets.digest_secret = handed > 0,
                _ => {}
            }
            steps.push(Step::ok(format!("{label}: {shown}")));
        }
    }
    Some(steps)
}

/// The stderr line `ldapbind-check` writes before it binds as the user.
fn bind_warning(dn: &str) -> String {
    format!(
        "ldapbind-check: binding as {dn} to check the password: a wrong password counts as a failed login \
         towards the directory's lockout (ppolicy pwdMaxFailure, 389-ds passwordMaxFailure, AD lockoutThreshold)"
    )
}

/// What the entry says about the account, as the plugin judges it.
pub(super) fn account_section(config: &Config, state: &AccountState, report: &mut Report, secrets: &mut Secrets) {
    let mut steps = Vec::new();
    let refusal = state.refusal(config.allow_expired_password);
    for f in &state.findings {
        let text = format!("{}: {}", f.condition.word(), f.evidence());
        if refusal.is_some() || !f.condition.is_password() {
            steps.push(Step::problem(text, f.condition.user_fix()));
        } else {
            steps.push(Step::note(format!("{text}; let in by sasl_ldapdb_allow_expired_password")));
        }
    }
    if let Some(f) = refusal {
        let why = format!("{}: {}", f.condition.says(), f.evidence());
        secrets.blocked = Some(format!("the account {why}"));
        secrets.refused = Some(why);
    }
    if steps.is_empty() {
        steps.push(Step::ok(format!(
            "usable: none of {} says the directory refuses it (attributes the service account cannot read say \
             nothing)",
            crate::account::ATTRS.join(", ")
        )));
    }
    report.account = Some(refusal.map_or("usable", |f| f.condition.word()).to_owned());
    report.sections.push(Section { title: "account".into(), steps });
}

pub(super) fn check_password(
    service: &Users<Recorder>,
    host: &CliHost,
    dn: Option<&str>,
    secrets: &Secrets,
    password: &Secret,
    opts: &Options,
) -> Step {
    let pw = password.expose();
    let Some(dn) = dn else {
        return Step::skipped("not checked: no entry for the user");
    };
    if pw.is_empty() {
        return Step::problem(
            "the password is empty",
            "type the password; ldapbind never binds with an empty one (servers take it as an unauthenticated bind)",
        );
    }
    if secrets.clear {
        // pwcheck_method auxprop compares the first value only (checkpw.c).
        let (first, other) = host.with_values("*userPassword", |vals| {
            (
                vals.first().is_some_and(|v| v.as_slice() == pw.as_bytes()),
                vals.iter().skip(1).any(|v| v.as_slice() == pw.as_bytes()),
            )
        });
        return if first {
            Step::ok("the password matches the cleartext userPassword")
        } else if other {
            Step::problem(
                "the password matches a later userPassword value, but libsasl2 compares the first one only",
                "keep one userPassword value per entry",
            )
        } else {
            Step::problem(
                "wrong password: it does not match the cleartext userPassword",
                "check the password; every mechanism compares against that userPassword value",
            )
        };
    }
    if let Some(why) = &secrets.refused {
        return Step::skipped(format!(
            "not checked: the account {why}; no password logs in, and a bind would only count one more failed login"
        ));
    }
    let scheme = secrets.user_password.first().cloned();
    // The bind is a login attempt to the directory: a wrong password counts towards its lockout.
    eprintln!("{}", bind_warning(dn));
    match service.directory().check_password(dn, pw) {
        Ok(true) if uses_saslauthd(opts) => Step::ok(format!(
            "a bind as {dn} accepted the password, as ldapbind-authd will for pwcheck_method saslauthd"
        )),
        Ok(true) => match scheme {
            Some(scheme) => authd_problem(
                format!(
                    "right password, but libsasl2 cannot check this hash ({scheme}) through auxprop (a bind as {dn} accepted it)"
                ),
                opts,
            ),
            None => authd_problem(
                format!(
                    "right password (a bind as {dn} accepted it), but the service account can read no password, so libsasl2 cannot check it through auxprop"
                ),
                opts,
            ),
        },
        Ok(false) => Step::problem(
            format!("wrong password: the directory refused a bind as {dn} with it (49 invalidCredentials)"),
            "check the password (the directory itself says it is wrong)",
        ),
        Err(e @ Error::Account { condition, .. }) => {
            let mut step = Step::from_error(&e, condition.user_fix());
            step.text = format!("{}: {}", condition.word(), step.text);
            step
        }
        Err(e) => Step::from_error(&e, "check the server"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_formats_never_show_values() {
        assert_eq!(value_format("userPassword", b"secret"), "cleartext");
        assert_eq!(value_format("userPassword", b"{SSHA}abc"), "{SSHA}");
        assert_eq!(value_format("authPassword", b"SCRAM-SHA-256$4096:c2FsdA==$a:b"), "SCRAM-SHA-256");
        assert_eq!(value_format("authPassword", b"secret"), "unrecognised (not RFC 5803 `SCHEME$...`)");
        assert_eq!(value_format("cmusaslsecretPLAIN", b"0123"), "present (4 bytes)");
    }
}
