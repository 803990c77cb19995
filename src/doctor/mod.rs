//! `ldapbind-check`: will this user's login work through ldapbind, and if not, why?
//!
//! [`run`] reads the options the way libsasl2 hands them to the plugin (conf.rs): a Cyrus
//! `imapd.conf` with imapd's `sasl_` / `sasl_ldapbind_` / `<service>_sasl_` names, or a SASL
//! application config (`/etc/postfix/sasl/smtpd.conf`) with bare names, then `-o` overrides.
//! It then takes the steps of a login with the plugin's own code (simulate.rs):
//! [`Config::from_sources`](crate::config::Config::from_sources), a probe of every URL
//! ([`crate::ldap::probe`]), and [`Users::canonicalize`](crate::core::Users::canonicalize) /
//! [`Users::lookup`](crate::core::Users::lookup) over a recording [`Host`](crate::host::Host)
//! and [`Directory`](crate::ldap::Directory) wrapped around the real
//! [`LdapDirectory`](crate::ldap::client::LdapDirectory). What the directory holds and what the
//! plugin handed to libsasl2 then decide, per SASL mechanism, whether a login can work
//! (mechanisms.rs, SASL-ABI §7); directory.rs adds what Active Directory and 389-ds need. The
//! answer is a [`Report`] (report.rs), rendered as text or JSON.
//!
//! Nothing here prints. No password (service or user) is ever put in a report: options are
//! masked, password values are shown only as their format (`cleartext`, `{SSHA}`,
//! `authPassword SCRAM-SHA-256`).

mod conf;
mod directory;
mod json;
mod mechanisms;
mod options;
mod report;
mod simulate;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, Secret, keys};
use crate::state::Selection;

pub use conf::{DEFAULT_SERVICE, LIBRARY_KEYS, option_key, shown_malformed};
pub use report::{MechRow, MechStatus, OptionRow, Origin, PropertyRow, Report, SearchInfo, Section, Status, Step};

use conf::{CheckSources, Kind, Options, load, option_rows};
use directory::{
    RootDse, active_directory_section, after_lookup_on_389, after_lookup_on_ad, base_from_root_dse, ds389_section,
    read_root_dse,
};
use mechanisms::{Secrets, mechanisms};
use options::{library_checks, readable_by_daemon};
use report::respell_for_sasl_app;
use simulate::{lookup, url_section};

/// Where the options come from besides `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfFile {
    /// A Cyrus imapd.conf (`-C`).
    Imapd(PathBuf),
    /// A libsasl2 application config, `<appname>.conf` (`--sasl-conf`).
    SaslApp(PathBuf),
}

/// What to check.
#[derive(Debug)]
pub struct Input {
    pub conf: Option<ConfFile>,
    /// imapd's service name (cyrus.conf SERVICES entry), for `<service>_sasl_` options.
    pub service: String,
    /// `-o` options in command-line order; the last one for a key wins.
    pub overrides: Vec<(String, String)>,
    pub user: String,
    /// From `--password-stdin`.
    pub password: Option<Secret>,
    /// `--user`: the user the daemon reads its files as; by default `cyrus` for an imapd.conf,
    /// `root` for Postfix's smtpd.conf (smtpd reads them before dropping privileges).
    pub daemon_user: Option<String>,
}

/// A mistake in the invocation itself (exit status 2): unreadable file, unknown `-o` key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// What ldapbind-authd reads: the plugin's configuration from the same options ldapbind-check
/// reads ([`load`]), with the problems reading found (one line each, cause and fix).
pub struct Loaded {
    /// The plugin's parse, or its error lines.
    pub config: Result<Config, Vec<String>>,
    /// Problems in the files (keys set twice, stray names), as "cause; fix" lines.
    pub problems: Vec<String>,
}

/// Read `input`'s options and parse them with the plugin's parser.
pub fn read_config(input: &Input) -> Result<Loaded, InputError> {
    let (opts, steps) = load(input)?;
    let problems = steps
        .into_iter()
        .filter(|s| s.status == Status::Problem)
        .map(|s| match s.fix {
            Some(fix) => format!("{}; {fix}", s.text),
            None => s.text,
        })
        .collect();
    let config = Config::from_sources(&CheckSources(&opts)).map_err(|e| e.0.iter().map(ToString::to_string).collect());
    Ok(Loaded { config, problems })
}

/// Run every step for `input`.
pub fn run(input: &Input) -> Result<Report, InputError> {
    let (opts, mut option_steps) = load(input)?;
    let mut report = Report {
        user: input.user.clone(),
        source: source(input),
        options: option_rows(&opts),
        sections: Vec::new(),
        search: None,
        dn: None,
        canonical: None,
        properties: Vec::new(),
        mechanisms: Vec::new(),
        password_ok: None,
        account: None,
    };

    // Options: each effective one, then the plugin's verdict on them.
    let mut steps: Vec<Step> =
        report.options.iter().map(|o| Step::ok(format!("{} = {}  [{}]", o.key, o.value, o.origin))).collect();
    steps.append(&mut option_steps);
    let library = |k: &str| opts.get(k).map(str::to_owned);
    let selection = Selection::read(&library);
    let config = config_verdict(&opts, &mut steps);
    library_checks(&opts, &selection, config.as_ref().map(|(c, _)| c), &mut steps);
    readable_by_daemon(input, &opts, &mut steps);
    report.sections.push(Section { title: "options".into(), steps });

    let mut secrets = Secrets::default();
    match config {
        None => {
            secrets.blocked = Some("ldapbind rejects its configuration (see options), so it answers no lookup".into());
            report.sections.push(Section {
                title: "servers".into(),
                steps: vec![Step::skipped(
                    "not contacted: ldapbind rejects this configuration and fails every login with it; fix the problems above first",
                )],
            });
        }
        Some((config, tls)) => {
            let check = Check { input, opts: &opts, selection: &selection, config: Arc::new(config), tls };
            directory_sections(&check, &mut report, &mut secrets);
        }
    }

    report.mechanisms = mechanisms(&opts, &selection, &secrets);
    if opts.kind == Kind::SaslApp {
        respell_for_sasl_app(&mut report);
    }
    Ok(report)
}

/// What the steps after the options read: the input, its options, the plugin's selection, and
/// the configuration and TLS setup the plugin accepted.
struct Check<'a> {
    input: &'a Input,
    opts: &'a Options,
    selection: &'a Selection,
    config: Arc<Config>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Where the options came from, for the report's first line.
fn source(input: &Input) -> String {
    let service = input.service.trim().to_ascii_lowercase();
    match (&input.conf, input.overrides.is_empty()) {
        (Some(ConfFile::Imapd(p)), _) => format!("{} (imapd.conf, service {service})", p.display()),
        (Some(ConfFile::SaslApp(p)), _) => format!("{} (SASL application config)", p.display()),
        (None, false) => "-o only".to_owned(),
        (None, true) => "nowhere (no -C, --sasl-conf or -o)".to_owned(),
    }
}

/// Each server's connection steps; on the first that gets past the service bind, what its kind
/// of directory needs and the login.
fn directory_sections(check: &Check, report: &mut Report, secrets: &mut Secrets) {
    let (config, tls) = (&check.config, check.tls.as_ref());
    let mut usable = None;
    for url in &config.urls {
        let (section, ok) = url_section(config, url, tls);
        usable = usable.or(ok.then_some(url));
        report.sections.push(section);
    }
    if let Some(url) = usable {
        let dse = read_root_dse(config, url, tls);
        let ad = dse.as_ref().is_some_and(RootDse::is_active_directory);
        match &dse {
            Some(dse) if ad => report.sections.push(active_directory_section(config, check.opts, dse)),
            Some(dse) if dse.is_389_ds() => report.sections.push(ds389_section(dse.ds389_evidence())),
            _ => {}
        }
        lookup(check, report, secrets);
        if ad {
            after_lookup_on_ad(check, report, secrets);
        } else {
            after_lookup_on_389(check.opts, config, dse.is_none(), report);
        }
    } else {
        secrets.blocked = Some("no LDAP server accepted the connection and service bind (see above)".into());
        report.sections.push(Section {
            title: "user search".into(),
            steps: vec![Step::skipped("not run: no server in sasl_ldapdb_uri got past the service bind")],
        });
    }
}

/// The plugin's own verdict on the options: its parse and its TLS setup, as at init, with their
/// warnings; the configuration when the plugin would accept it.
fn config_verdict(opts: &Options, steps: &mut Vec<Step>) -> Option<(Config, Option<Arc<rustls::ClientConfig>>)> {
    match Config::from_sources(&CheckSources(opts)) {
        // The plugin builds its TLS configuration at init too, and refuses to work without it.
        Ok(config) => match crate::tls::client_config(&config) {
            Ok(tls) => {
                steps.push(Step::ok(format!("ldapbind accepts this configuration: {}", config.summary())));
                let tls_warnings = tls.as_ref().map(|t| t.warnings.as_slice()).unwrap_or_default();
                for w in config.alerts.iter().chain(&config.warnings).chain(tls_warnings) {
                    steps.push(Step::from_config(w));
                }
                for n in &config.notes {
                    steps.push(Step::note(n.to_string()));
                }
                Some((config, tls.map(|t| t.config)))
            }
            Err(errors) => {
                for w in config.alerts.iter().chain(&config.warnings) {
                    steps.push(Step::from_config(w));
                }
                for e in &errors {
                    steps.push(Step::from_config(&e.message()));
                }
                None
            }
        },
        Err(errors) => {
            for e in &errors.0 {
                let found =
                    matches!(e, crate::config::ConfigError::NoSearchBase { .. }).then(|| base_from_root_dse(opts));
                match found.flatten() {
                    Some(step) => steps.push(step),
                    None => steps.push(Step::from_config(&e.message())),
                }
            }
            // The rejected parse keeps its warnings to itself; the URL's are worth fixing now too.
            if let Some(Ok(list)) = opts.get(keys::URI).map(crate::uri::parse_uri_list) {
                for w in &list.warnings {
                    steps.push(Step::from_config(&w.message()));
                }
            }
            None
        }
    }
}
