//! The process-wide plugin state: built by the init functions, shared by every call, dropped
//! when libsasl2 frees the last registration. libsasl2 calls each init more than once per
//! process (client init, server init, libldap's own client init), so init is idempotent and
//! an init that sees no configuration keeps the one it has.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Config, SystemSources};
use crate::core::Users;
use crate::host::Level;
use crate::ldap::client::LdapDirectory;

/// The plugin's name: in both plug tables, in option lookups, in `auxprop_plugin`.
pub const PLUGIN_NAME: &str = "ldapbind";

/// Whether the host's configuration names ldapbind (read with the library's own option names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `auxprop_plugin` lists ldapbind.
    pub auxprop_named: bool,
    /// `auxprop_plugin` is unset: libsasl2 calls every auxprop plugin.
    pub auxprop_unset: bool,
    /// `canon_user_plugin` is ldapbind.
    pub canon_named: bool,
    /// `canon_user_plugin` as set (`None`: libsasl2's INTERNAL).
    pub canon_plugin: Option<String>,
}

impl Selection {
    pub fn read(library: &dyn Fn(&str) -> Option<String>) -> Selection {
        let aux = library("auxprop_plugin");
        let canon_plugin = library("canon_user_plugin").filter(|p| !p.trim().is_empty());
        Selection {
            auxprop_named: aux
                .as_deref()
                .is_some_and(|list| list.split_ascii_whitespace().any(|n| n.eq_ignore_ascii_case(PLUGIN_NAME))),
            auxprop_unset: aux.as_deref().is_none_or(|s| s.trim().is_empty()),
            canon_named: canon_plugin.as_deref().map(str::trim) == Some(PLUGIN_NAME),
            canon_plugin,
        }
    }

    /// Combinations with ldapbind's `canon_attr` and `filter` (as configured) that work, but not
    /// the way the admin probably expects. The plugin logs each at init; ldapbind-check shows
    /// the same values.
    pub fn warnings(&self, canon_attr: Option<&str>, filter: Option<&str>) -> Vec<SelectionWarning> {
        let mut out = Vec::new();
        match (canon_attr, filter) {
            (None, _) if self.canon_named => out.push(SelectionWarning::NamesOnlyTrimmed),
            (Some(attr), Some(filter))
                if !filter.to_ascii_lowercase().contains(&format!("({}=", attr.to_ascii_lowercase())) =>
            {
                out.push(SelectionWarning::CanonAttrNotSearched { attr: attr.to_owned(), filter: filter.to_owned() })
            }
            _ => {}
        }
        if let Some(attr) = canon_attr.filter(|_| !self.canon_named) {
            out.push(SelectionWarning::CanonByOtherPlugin { attr: attr.to_owned(), plugin: self.canon_plugin.clone() });
        }
        out
    }
}

/// See [`Selection::warnings`]. `Display` is the log line: the problem, `; `, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionWarning {
    /// `canon_user_plugin` is ldapbind but `ldapdb_canon_attr` is not set.
    NamesOnlyTrimmed,
    /// `ldapdb_filter` does not search `ldapdb_canon_attr`.
    CanonAttrNotSearched { attr: String, filter: String },
    /// `ldapdb_canon_attr` is set but `canon_user_plugin` is not ldapbind.
    CanonByOtherPlugin { attr: String, plugin: Option<String> },
}

impl SelectionWarning {
    pub fn problem(&self) -> String {
        match self {
            SelectionWarning::NamesOnlyTrimmed => {
                "sasl_canon_user_plugin is ldapbind but sasl_ldapdb_canon_attr is not set: names are only trimmed"
                    .to_owned()
            }
            SelectionWarning::CanonAttrNotSearched { attr, filter } => format!(
                "sasl_ldapdb_canon_attr is {attr} but sasl_ldapdb_filter {filter} does not search it: the canonical \
                 name may not find the user again"
            ),
            SelectionWarning::CanonByOtherPlugin { attr, plugin } => format!(
                "sasl_ldapdb_canon_attr is {attr} but sasl_canon_user_plugin is {}: libsasl2 canonicalizes with that \
                 plugin and never asks ldapbind for the canonical name",
                plugin.as_ref().map_or("not set (INTERNAL)".to_owned(), |p| format!("`{p}`"))
            ),
        }
    }

    pub fn fix(&self) -> String {
        match self {
            SelectionWarning::NamesOnlyTrimmed => {
                "set sasl_ldapdb_canon_attr (e.g. uid or mail) to get the directory's canonical name".to_owned()
            }
            SelectionWarning::CanonAttrNotSearched { attr, .. } => format!("add ({attr}=%u) to the filter"),
            SelectionWarning::CanonByOtherPlugin { .. } => {
                "set `sasl_canon_user_plugin: ldapbind`, or remove sasl_ldapdb_canon_attr".to_owned()
            }
        }
    }
}

impl std::fmt::Display for SelectionWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.problem(), self.fix())
    }
}

/// What the configuration amounts to.
pub enum Setup {
    /// No `ldapdb_uri` and ldapbind not named: stay silent, answer nothing.
    Unconfigured,
    /// Rejected configuration; the text (one problem per line) was logged at init.
    Broken(String),
    Ready(Users<LdapDirectory>),
}

pub struct Plugin {
    pub selection: Selection,
    pub setup: Setup,
}

struct State {
    registrations: usize,
    plugin: Option<Arc<Plugin>>,
}

static STATE: Mutex<State> = Mutex::new(State { registrations: 0, plugin: None });

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The plugin as configured by the last init, if any.
pub fn current() -> Option<Arc<Plugin>> {
    state().plugin.clone()
}

/// Called by each successful init. `options` looks up ldapbind's options (plugin name
/// `ldapbind`), `library` the library's own (plugin name NULL).
pub fn register(
    options: &dyn Fn(&str) -> Option<String>,
    library: &dyn Fn(&str) -> Option<String>,
    log: &dyn Fn(Level, std::fmt::Arguments<'_>),
) {
    let mut st = state();
    st.registrations += 1;
    // libsasl2 runs our two inits in every sasl_server_init, and again in sasl_client_init
    // (also libldap's own). Once a configuration was read, the later inits of the same
    // registration cycle read nothing: no option lookups, no parse, no repeated diagnostics.
    if st.plugin.as_ref().is_some_and(|p| !matches!(p.setup, Setup::Unconfigured)) {
        return;
    }
    let sources = SystemSources(|key: &str| options(key));
    let configured = crate::config::is_configured(&sources);
    // An init that sees no URI (a client init without the server's options) keeps what is there.
    if st.plugin.is_some() && !configured {
        return;
    }
    let plugin = build(Selection::read(library), configured, &sources, log);
    st.plugin = Some(Arc::new(plugin));
}

fn build(
    selection: Selection,
    configured: bool,
    sources: &impl crate::config::Sources,
    log: &dyn Fn(Level, std::fmt::Arguments<'_>),
) -> Plugin {
    let named = selection.auxprop_named || selection.canon_named;
    if !configured && !named {
        return Plugin { selection, setup: Setup::Unconfigured };
    }
    // Loud when the admin chose ldapbind (by name, or by leaving auxprop_plugin unset and
    // configuring an URI); quiet when the options are meant for another plugin.
    let loud = named || selection.auxprop_unset;
    let say = |level: Level, msg: std::fmt::Arguments<'_>| log(if loud { level } else { Level::Debug }, msg);
    let setup = match Config::from_sources(sources) {
        Err(errors) => {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            for line in &lines {
                say(Level::Err, format_args!("{line}"));
            }
            Setup::Broken(lines.join(" / "))
        }
        Ok(config) => {
            // Said once per process (init), so the default log level shows them.
            for a in &config.alerts {
                say(Level::Err, format_args!("{a}"));
            }
            for w in &config.warnings {
                say(Level::Warn, format_args!("{w}"));
            }
            for n in &config.notes {
                say(Level::Note, format_args!("{n}"));
            }
            for w in selection_warnings(&selection, &config) {
                say(Level::Warn, format_args!("{w}"));
            }
            // Built now, with the CA, certificate and key files config.rs read: the host may
            // chroot or drop privileges after init.
            let tls = match crate::tls::client_config(&config) {
                Ok(tls) => tls,
                Err(errors) => {
                    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    for line in &lines {
                        say(Level::Err, format_args!("{line}"));
                    }
                    return Plugin { selection, setup: Setup::Broken(lines.join(" / ")) };
                }
            };
            let tls = tls.map(|setup| {
                for w in &setup.warnings {
                    say(Level::Warn, format_args!("{w}"));
                }
                setup.config
            });
            let endpoints: Vec<String> = config.urls.iter().map(|u| u.endpoint()).collect();
            say(
                Level::Note,
                format_args!(
                    "{} configured: servers {}, search base {}, filter {}",
                    env!("LDAPBIND_VERSION"),
                    endpoints.join(" "),
                    config.search_base,
                    config.filter.as_str()
                ),
            );
            let config = Arc::new(config);
            Setup::Ready(Users::new(Arc::clone(&config), LdapDirectory::new(config, tls)))
        }
    };
    Plugin { selection, setup }
}

/// Combinations that work but not the way the admin probably expects, as log lines.
fn selection_warnings(selection: &Selection, config: &Config) -> Vec<String> {
    let warnings = selection.warnings(config.canon_attr.as_deref(), Some(config.filter.as_str()));
    warnings.iter().map(ToString::to_string).collect()
}

/// Called by `auxprop_free` / `canon_user_free`: the last one closes the connections.
pub fn release() {
    let dropped = {
        let mut st = state();
        st.registrations = st.registrations.saturating_sub(1);
        if st.registrations == 0 { st.plugin.take() } else { None }
    };
    if let Some(plugin) = dropped {
        if let Setup::Ready(service) = &plugin.setup {
            service.directory().close_all();
        }
    }
}
