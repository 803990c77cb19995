//! What kind of server the directory is (its root DSE), and the advice that follows for
//! Active Directory and 389 Directory Server.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::Check;
use super::conf::{CheckSources, Options};
use super::mechanisms::Secrets;
use super::options::{authd_lines, service_account, uses_saslauthd};
use super::report::{Mark, PASSWORD, Report, Section, Status, Step};
use crate::config::{Config, FileData, Sources, keys};
use crate::ldap::Directory;
use crate::ldap::client::LdapDirectory;

// ---- Active Directory ---------------------------------------------------------------------

/// The root DSE attributes ldapbind-check reads (anonymously; AD and 389-ds allow it).
pub(super) const ROOT_DSE_ATTRS: [&str; 7] = [
    "defaultNamingContext",
    "namingContexts",
    "supportedCapabilities",
    "forestFunctionality",
    "isGlobalCatalogReady",
    "vendorName",
    "vendorVersion",
];

/// A server's root DSE, as far as ldapbind-check reads it.
pub(super) struct RootDse {
    pub(super) url: String,
    pub(super) attrs: std::collections::HashMap<String, Vec<String>>,
}

impl RootDse {
    pub(super) fn is_active_directory(&self) -> bool {
        crate::ad::is_active_directory(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    pub(super) fn is_389_ds(&self) -> bool {
        crate::ds389::is_389_ds(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// `URL is 389 Directory Server (root DSE: vendorVersion ...)`.
    pub(super) fn ds389_evidence(&self) -> String {
        let said = ["vendorVersion", "vendorName"]
            .iter()
            .find_map(|a| self.values(a).first().map(|v| format!("{a} {v}")))
            .unwrap_or_default();
        format!("{} is {DS389} (root DSE: {said})", self.url)
    }

    pub(super) fn values(&self, name: &str) -> &[String] {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or(&[], |(_, v)| v.as_slice())
    }

    /// AD's `defaultNamingContext`, else the only `namingContexts` value.
    pub(super) fn base(&self) -> Option<&str> {
        match (self.values("defaultNamingContext"), self.values("namingContexts")) {
            ([dnc, ..], _) | ([], [dnc]) => Some(dnc.as_str()),
            _ => None,
        }
    }
}

/// The root DSE of `url`, read without binding; `None` when it cannot be read.
pub(super) fn read_root_dse(
    config: &Config,
    url: &crate::uri::LdapUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Option<RootDse> {
    let deadline = crate::ldap::net::Deadline::after(config.timeout);
    let mut conn = crate::tls::connect(config, url, tls, deadline).ok()?;
    let attrs = ROOT_DSE_ATTRS.iter().map(|a| (*a).to_owned()).collect();
    let first = {
        let mut search = conn
            .search("", ldap3::Scope::Base, "(objectClass=*)", attrs, ldap3::SearchOptions::new(), deadline)
            .ok()?;
        let first = search.next_entry().ok()?;
        // The root DSE is one entry: read to the end so the connection closes cleanly.
        while let Ok(Some(_)) = search.next_entry() {}
        first
    };
    conn.unbind(std::time::Duration::from_millis(200));
    let entry = ldap3::SearchEntry::construct(first?);
    Some(RootDse { url: url.original.clone(), attrs: entry.attrs })
}

/// With no search base configured: the server's own, from its root DSE, as the fix.
pub(super) fn base_from_root_dse(opts: &Options) -> Option<Step> {
    // The configuration with a stand-in base, only to connect as the plugin would.
    struct WithBase<'a>(CheckSources<'a>);
    impl Sources for WithBase<'_> {
        fn option(&self, key: &str) -> Option<String> {
            if key == keys::SEARCH_BASE { Some("dc=invalid".to_owned()) } else { self.0.option(key) }
        }
        fn read_file(&self, path: &Path) -> io::Result<FileData> {
            self.0.read_file(path)
        }
    }
    let config = Config::from_sources(&WithBase(CheckSources(opts))).ok()?;
    let tls = crate::tls::client_config(&config).ok()?.map(|t| t.config);
    config.urls.iter().find_map(|url| {
        let dse = read_root_dse(&config, url, tls.as_ref())?;
        let base = dse.base()?;
        let (whose, attr) = if dse.is_active_directory() {
            ("Active Directory", "defaultNamingContext")
        } else {
            ("the server", "namingContexts")
        };
        Some(Step::problem(
            format!(
                "no search base: neither sasl_ldapdb_uri nor sasl_ldapdb_search_base names one; {} is {whose}, \
                 and its root DSE names its naming context {base} ({attr})",
                dse.url
            ),
            format!(
                "set `sasl_ldapdb_search_base: {base}`, or add it to the URL ({}/{base})",
                url.original.trim_end_matches('/')
            ),
        ))
    })
}

/// The settings that work with Active Directory, checked against the configuration.
pub(super) fn active_directory_section(config: &Config, opts: &Options, dse: &RootDse) -> Section {
    let mut steps = Vec::new();
    let caps: Vec<&str> = dse
        .values("supportedCapabilities")
        .iter()
        .map(String::as_str)
        .filter(|c| *c == crate::ad::CAP_ACTIVE_DIRECTORY || *c == crate::ad::CAP_ACTIVE_DIRECTORY_LDS)
        .collect();
    let evidence = if caps.is_empty() {
        "forestFunctionality/isGlobalCatalogReady".to_owned()
    } else {
        format!("supportedCapabilities {}", caps.join(", "))
    };
    let domain = dse.values("defaultNamingContext").first().cloned();
    steps.push(Step::ok(format!(
        "{} is Active Directory (root DSE: {evidence}{})",
        dse.url,
        domain.as_deref().map_or(String::new(), |d| format!("; domain {d}"))
    )));
    let (filter, canon, pwcheck) =
        (opts.spelled(keys::FILTER), opts.spelled(keys::CANON_ATTR), opts.spelled("pwcheck_method"));
    if let Some(d) = &domain {
        let base = config.search_base.to_ascii_lowercase();
        if !base.ends_with(&d.to_ascii_lowercase()) {
            steps.push(Step::problem(
                format!("the search base {} is not in the domain {d}", config.search_base),
                format!("set `{}: {d}` (the root DSE's defaultNamingContext)", opts.spelled(keys::SEARCH_BASE)),
            ));
        }
    }
    let template = config.filter.as_str().to_ascii_lowercase();
    if !template.contains("samaccountname") && !template.contains("userprincipalname") {
        steps.push(Step::problem(
            format!(
                "{filter} is `{}`, which looks for none of AD's logon names (AD accounts have no uid)",
                config.filter.as_str()
            ),
            format!("set `{filter}: {}` (add (mail=%u) to log in by mail too)", crate::ad::FILTER),
        ));
    }
    if !config.canon_attr.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(crate::ad::CANON_ATTR)) {
        steps.push(Step::note(format!(
            "with `{canon}: {}` (and canon_user_plugin ldapbind) a login by UPN or mail becomes the account name",
            crate::ad::CANON_ATTR
        )));
    }
    let saslauthd = uses_saslauthd(opts);
    let never = "Active Directory never returns an account's password (unicodePwd cannot be read), so \
                 pwcheck_method auxprop checks no AD password and CRAM-MD5, DIGEST-MD5 and SCRAM cannot work";
    steps.push(if saslauthd {
        Step::ok(format!("{never}; PLAIN and LOGIN go to saslauthd ({pwcheck}), which should be ldapbind-authd"))
    } else {
        Step::problem(
            never,
            format!(
                "for PLAIN and LOGIN run ldapbind-authd (it binds as the user) and set `{pwcheck}: saslauthd` and \
                 `{}: /run/ldapbind-authd/mux`",
                opts.spelled("saslauthd_path")
            ),
        )
    });
    Section { title: "Active Directory".into(), steps }
}

/// On AD a `userPassword` value is no password: say so, keep it out of the mechanism table, and
/// check a typed password by a bind as the user instead of against that value.
pub(super) fn after_lookup_on_ad(check: &Check, report: &mut Report, secrets: &mut Secrets) {
    let Check { input, opts, config, tls, .. } = check;
    // "Give the entry a userPassword" is wrong on AD (see below): AD returns no password at all.
    let saslauthd = uses_saslauthd(opts);
    if let Some(properties) = report.sections.iter_mut().find(|s| s.title == "properties") {
        // A problem with pwcheck_method auxprop, a note with saslauthd: both say AD's words here.
        for step in properties.steps.iter_mut().filter(|s| s.is(Mark::NoPassword)) {
            *step = if saslauthd {
                Step::note("no password: Active Directory returns none; PLAIN and LOGIN go to saslauthd")
            } else {
                Step::problem(
                    "no password: Active Directory returns none, so pwcheck_method auxprop logs nobody in",
                    "check PLAIN/LOGIN passwords through ldapbind-authd (see Active Directory)",
                )
            };
        }
    }
    let Some(section) = report.sections.iter_mut().find(|s| s.title == "Active Directory") else {
        return;
    };
    if let Some(search) = report.search.as_ref().filter(|s| s.entries == 0) {
        section.steps.push(Step::problem(
            format!("no entry matches {} under {}", search.filter, search.base),
            format!(
                "AD finds accounts by sAMAccountName or userPrincipalName: `sasl_ldapdb_filter: {}` under the \
                 domain's base",
                crate::ad::FILTER
            ),
        ));
    }
    if report.properties.iter().any(|p| p.property == "userPassword") {
        section.steps.push(Step::problem(
            "the entry has a userPassword value: on Active Directory (Samba's too) that is an ordinary attribute, \
             readable by other accounts and unrelated to the account's password (it does not change when the \
             password does), so checking logins against it lets the wrong password in",
            "delete that userPassword value from the entry, and check PLAIN/LOGIN passwords through ldapbind-authd",
        ));
        secrets.clear = false;
        secrets.plain_secret = false;
        secrets.blocked = Some("on Active Directory a userPassword value is not the account's password".into());
    }
    let (Some(password), Some(dn)) = (&input.password, report.dn.clone()) else {
        return;
    };
    let step = match LdapDirectory::new(Arc::clone(config), tls.clone()).check_password(&dn, password.expose()) {
        Ok(true) => Step::ok(format!(
            "Active Directory accepted the password in a bind as {dn} (PLAIN/LOGIN through ldapbind-authd)"
        )),
        Ok(false) => Step::problem(
            format!("Active Directory refused a bind as {dn} with this password (49 invalidCredentials)"),
            "check the password, and that the account is enabled, not locked out and not expired",
        ),
        Err(e) => Step::from_error(&e, "check the server"),
    };
    report.password_ok = Some(step.status == Status::Ok);
    match report.sections.iter_mut().find(|s| s.title == PASSWORD) {
        Some(s) => s.steps = vec![step],
        None => report.sections.push(Section { title: PASSWORD.into(), steps: vec![step] }),
    }
}

// ---- 389 Directory Server -----------------------------------------------------------------

pub(super) const DS389: &str = "389 Directory Server";

/// What 389-ds means for ldapbind, after the line that recognises it.
pub(super) fn ds389_section(evidence: String) -> Section {
    Section {
        title: DS389.into(),
        steps: vec![
            Step::ok(evidence),
            Step::note(
                "389-ds has no authPassword in its schema, and stores userPassword hashed ({PBKDF2-SHA512}) unless \
                 a password policy says `passwordStorageScheme: CLEAR`, which applies to passwords set after it only",
            ),
        ],
    }
}

/// On 389-ds: the daemon for hashed passwords (no authPassword to fall back on), an ACI when
/// the service account sees nothing, and 389-ds recognised from the user's hash if its root DSE
/// could not be read (`nsslapd-allow-anonymous-access: off`); a root DSE that names no vendor
/// is not 389-ds's (OpenLDAP's pw-pbkdf2 writes `{PBKDF2-SHA512}` too).
pub(super) fn after_lookup_on_389(opts: &Options, config: &Config, no_root_dse: bool, report: &mut Report) {
    let hashed = report
        .properties
        .iter()
        .filter(|p| p.property == "userPassword")
        .flat_map(|p| p.formats.iter())
        .find(|f| f.starts_with('{') || f.starts_with('$'))
        .cloned();
    if !report.sections.iter().any(|s| s.title == DS389) {
        let Some(scheme) = hashed.as_ref().filter(|s| no_root_dse && crate::ds389::is_default_scheme(s)) else {
            return;
        };
        report.sections.push(ds389_section(format!(
            "the directory is probably {DS389}: the user's userPassword is {scheme}, its default scheme (its root \
             DSE could not be read anonymously)"
        )));
    }
    let daemon = format!(
        "{}; 389-ds checks its own hash and the account's state at that bind (CRAM-MD5, DIGEST-MD5 and SCRAM \
         would need every password set again under `passwordStorageScheme: CLEAR`)",
        authd_lines(opts)
    );
    let aci = ds389_aci_fix(config);
    for step in report.sections.iter_mut().flat_map(|s| s.steps.iter_mut()) {
        if step.is(Mark::AuthdFix) {
            step.fix = Some(daemon.clone());
        }
        if step.is(Mark::SeesNothing) {
            step.fix = Some(aci.clone());
        }
    }
    let Some(scheme) = hashed else { return };
    let step = if uses_saslauthd(opts) {
        Step::ok(format!(
            "userPassword is {scheme}: PLAIN and LOGIN go to saslauthd ({}), which should be ldapbind-authd",
            opts.spelled("pwcheck_method")
        ))
    } else {
        Step::problem(
            format!(
                "userPassword is {scheme}, a 389-ds hash pwcheck_method auxprop cannot check, and 389-ds has no \
                 authPassword; cleartext needs a password policy with `passwordStorageScheme: CLEAR` and every \
                 password set again"
            ),
            daemon,
        )
    };
    if let Some(section) = report.sections.iter_mut().find(|s| s.title == DS389) {
        section.steps.push(step);
    }
}

/// The ACI 389-ds's defaults lack: read, search and compare for the service account on what
/// the plugin searches and reads.
pub(super) fn ds389_aci_fix(config: &Config) -> String {
    let mut attrs = crate::ds389::filter_attributes(config.filter.as_str());
    let more = config.canon_attr.iter().map(String::as_str).chain([config.attribute_for("userPassword")]);
    for a in more.chain(crate::ds389::STATE_ATTRS) {
        if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            attrs.push(a.to_owned());
        }
    }
    let who = match &config.bind {
        crate::config::Bind::Simple { dn, .. } => format!("ldap:///{dn}"),
        crate::config::Bind::Anonymous => "ldap:///anyone".to_owned(),
        crate::config::Bind::External => "ldap:///<the DN the EXTERNAL identity maps to>".to_owned(),
    };
    format!(
        "an ACI is missing: 389-ds's default ACIs grant {} nothing; add one to {} (ldapmodify as \
         cn=Directory Manager), e.g. `aci: {}`",
        service_account(config),
        config.search_base,
        crate::ds389::read_aci(&attrs, &who)
    )
}
