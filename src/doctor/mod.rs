//! `ldapbind-check`: will this user's login work through ldapbind, and if not, why?
//!
//! [`run`] reads the options the way libsasl2 hands them to the plugin: a Cyrus `imapd.conf`
//! with imapd's `sasl_` / `sasl_ldapbind_` / `<service>_sasl_` names, or a SASL application
//! config (`/etc/postfix/sasl/smtpd.conf`) with bare names, then `-o` overrides. It then takes
//! the steps of a login with the plugin's own code: [`Config::from_sources`], a probe of every
//! URL ([`crate::ldap::probe`]), and [`Service::canonicalize`] / [`Service::lookup`] over a
//! recording [`Host`] and [`Directory`] wrapped around the real [`LdapDirectory`]. What the
//! directory holds and what the plugin handed to libsasl2 then decide, per SASL mechanism,
//! whether a login can work (SASL-ABI §7). The answer is a [`Report`], rendered as text or JSON.
//!
//! Nothing here prints. No password (service or user) is ever put in a report: options are
//! masked, password values are shown only as their format (`cleartext`, `{SSHA}`,
//! `authPassword SCRAM-SHA-256`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::account::AccountState;
use crate::config::{Config, FileData, Secret, Sources, SystemSources, keys};
use crate::core::{LookupFlags, PREFETCH, Service, Unusable};
use crate::error::Error;
use crate::host::{Host, Level, Requested};
use crate::ldap::client::LdapDirectory;
use crate::ldap::probe::{self, Outcome, ProbeStep};
use crate::ldap::{Directory, Found};
use crate::password::hash_scheme;
use crate::state::{PLUGIN_NAME, Selection};

/// libsasl2's own options that decide whether and how ldapbind is used (asked for with plugin
/// name NULL, so imapd maps them to `<service>_sasl_X`, then `sasl_X`).
pub const LIBRARY_KEYS: &[&str] = &["pwcheck_method", "auxprop_plugin", "canon_user_plugin", "mech_list"];
/// The imapd service name used with `-C` when `--service` is not given.
pub const DEFAULT_SERVICE: &str = "imap";
/// The mechanisms the report judges, in the order shown.
pub const MECHANISMS: [&str; 6] = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];
/// Shown instead of a password.
const MASK: &str = "********";
/// Title of the section with the `--password-stdin` check.
const PASSWORD: &str = "password";
/// Longest option value shown whole in the options section (a pasted 150 KB filter is cut).
const MAX_SHOWN_VALUE: usize = 200;
/// Deepest `@include` chain followed in an imapd.conf.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The option an `-o KEY=VALUE` names: `KEY` as libsasl2 asks for it (`ldapdb_uri`,
/// `pwcheck_method`); a leading `sasl_` or `sasl_ldapbind_` is accepted (copied from imapd.conf).
pub fn option_key(key: &str) -> Option<&'static str> {
    let k = key.trim().to_ascii_lowercase();
    let k = k.strip_prefix("sasl_").unwrap_or(&k);
    let k = k.strip_prefix("ldapbind_").unwrap_or(k);
    keys::ALL.iter().chain(LIBRARY_KEYS).copied().find(|x| *x == k)
}

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

// ---- the report ---------------------------------------------------------------------------

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problem,
    /// Information; neither good nor bad.
    Note,
    /// Not taken because an earlier step failed or the configuration does not need it.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Problem => "problem",
            Status::Note => "note",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the report; a problem carries its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub status: Status,
    pub text: String,
    pub fix: Option<String>,
}

impl Step {
    fn ok(text: impl Into<String>) -> Step {
        Step { status: Status::Ok, text: text.into(), fix: None }
    }
    fn note(text: impl Into<String>) -> Step {
        Step { status: Status::Note, text: text.into(), fix: None }
    }
    fn skipped(text: impl Into<String>) -> Step {
        Step { status: Status::Skipped, text: text.into(), fix: None }
    }
    fn problem(text: impl Into<String>, fix: impl Into<String>) -> Step {
        Step { status: Status::Problem, text: text.into(), fix: Some(fix.into()) }
    }
    /// A problem from one of the plugin's one-line messages ("cause; fix").
    fn from_message(msg: &str, fallback_fix: &str) -> Step {
        let (text, fix) = split_fix(msg);
        Step::problem(text, fix.unwrap_or_else(|| fallback_fix.to_owned()))
    }
}

/// A titled group of steps: "options", "server ldap://…", "user search", ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub steps: Vec<Step>,
}

/// Where an effective option came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: String, line: usize, key: String },
    Override,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, key } => write!(f, "{path}:{line} {key}"),
            Origin::Override => f.write_str("-o"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One effective option (passwords masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRow {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// The user search as the plugin sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchInfo {
    pub base: String,
    pub scope: String,
    pub filter: String,
    /// Entries read (the plugin stops reading after a few: more than one is ambiguous).
    pub entries: usize,
    pub dns: Vec<String>,
}

/// One password-like property of the user's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyRow {
    /// The SASL property (`userPassword`).
    pub property: String,
    /// The LDAP attribute it is read from (`sasl_ldapdb_attr_map`).
    pub attribute: String,
    /// One per value: `cleartext`, `{SSHA}`, `SCRAM-SHA-256`, `present`.
    pub formats: Vec<String>,
    /// Values the plugin handed to libsasl2.
    pub handed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechStatus {
    Works,
    No,
    /// Depends on something ldapbind-check does not test (saslauthd).
    Unchecked,
}

impl MechStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MechStatus::Works => "works",
            MechStatus::No => "no",
            MechStatus::Unchecked => "unchecked",
        }
    }
}

/// One row of the mechanism table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechRow {
    pub name: &'static str,
    pub status: MechStatus,
    pub why: String,
}

/// Everything `ldapbind-check` found out, in report order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub user: String,
    /// `imapd.conf (service imap)`, `SASL application config`, or `-o only`.
    pub source: String,
    pub options: Vec<OptionRow>,
    /// options, servers, user search, canonical name, properties, password.
    pub sections: Vec<Section>,
    pub search: Option<SearchInfo>,
    pub dn: Option<String>,
    pub canonical: Option<String>,
    pub properties: Vec<PropertyRow>,
    pub mechanisms: Vec<MechRow>,
    /// With `--password-stdin`: whether the password is right for a login.
    pub password_ok: Option<bool>,
    /// The account's state as its entry says (`usable`, `locked`, `must change password`, ...);
    /// `None` without an entry.
    pub account: Option<String>,
}

impl Report {
    /// Mechanisms that work for this user.
    pub fn working(&self) -> Vec<&'static str> {
        self.mechanisms.iter().filter(|m| m.status == MechStatus::Works).map(|m| m.name).collect()
    }

    /// Problems found, over all sections.
    pub fn problems(&self) -> usize {
        self.sections.iter().flat_map(|s| &s.steps).filter(|s| s.status == Status::Problem).count()
    }

    /// 0: the user can log in with at least one mechanism (and, with `--password-stdin`, with
    /// that password); 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        let works = !self.working().is_empty() && self.password_ok != Some(false);
        if works { 0 } else { 1 }
    }

    /// The last line of the text report.
    pub fn verdict(&self) -> String {
        let working = self.working();
        let problems = match self.problems() {
            0 => String::new(),
            1 => " (1 problem above)".to_owned(),
            n => format!(" ({n} problems above)"),
        };
        if working.is_empty() {
            format!("{} cannot log in through ldapbind{problems}", self.user)
        } else if self.password_ok == Some(false) {
            format!("{} cannot log in with this password{problems}", self.user)
        } else {
            format!("{} can log in with {}{problems}", self.user, working.join(", "))
        }
    }

    /// The report for people: one line per step, `problem` lines followed by their `fix:`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ =
            writeln!(out, "ldapbind-check {}: {}, options from {}", env!("CARGO_PKG_VERSION"), self.user, self.source);
        let mut table = Some(self.mechanism_table());
        for section in &self.sections {
            // The table comes after what it is judged from, before the password check.
            if section.title == PASSWORD {
                out.push_str(&table.take().unwrap_or_default());
            }
            let _ = writeln!(out, "\n{}", section.title);
            for step in &section.steps {
                let _ = writeln!(out, "  {:<8} {}", step.status.as_str(), step.text);
                if let Some(fix) = &step.fix {
                    let _ = writeln!(out, "  {:<8} fix: {fix}", "");
                }
            }
        }
        out.push_str(&table.take().unwrap_or_default());
        let _ = writeln!(out, "\nresult: {}", self.verdict());
        out
    }

    fn mechanism_table(&self) -> String {
        let mut out = String::from("\nmechanisms\n");
        for m in &self.mechanisms {
            let _ = writeln!(out, "  {:<14} {:<9} {}", m.name, m.status.as_str(), m.why);
        }
        out
    }

    /// The same report as one JSON object.
    pub fn to_json(&self) -> String {
        let s = |v: &str| Json::Str(v.to_owned());
        let opt = |v: &Option<String>| v.as_deref().map_or(Json::Null, s);
        let steps = |steps: &[Step]| {
            Json::Arr(
                steps
                    .iter()
                    .map(|st| {
                        Json::Obj(vec![("status", s(st.status.as_str())), ("text", s(&st.text)), ("fix", opt(&st.fix))])
                    })
                    .collect(),
            )
        };
        let json = Json::Obj(vec![
            ("version", s(env!("CARGO_PKG_VERSION"))),
            ("user", s(&self.user)),
            ("source", s(&self.source)),
            (
                "options",
                Json::Arr(
                    self.options
                        .iter()
                        .map(|o| {
                            Json::Obj(vec![
                                ("key", s(&o.key)),
                                ("value", s(&o.value)),
                                ("from", s(&o.origin.to_string())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "sections",
                Json::Arr(
                    self.sections
                        .iter()
                        .map(|sec| Json::Obj(vec![("title", s(&sec.title)), ("steps", steps(&sec.steps))]))
                        .collect(),
                ),
            ),
            (
                "search",
                self.search.as_ref().map_or(Json::Null, |q| {
                    Json::Obj(vec![
                        ("base", s(&q.base)),
                        ("scope", s(&q.scope)),
                        ("filter", s(&q.filter)),
                        ("entries", Json::Num(q.entries as i64)),
                        ("dns", Json::Arr(q.dns.iter().map(|d| s(d)).collect())),
                    ])
                }),
            ),
            ("dn", opt(&self.dn)),
            ("canonical_name", opt(&self.canonical)),
            (
                "properties",
                Json::Arr(
                    self.properties
                        .iter()
                        .map(|p| {
                            Json::Obj(vec![
                                ("property", s(&p.property)),
                                ("attribute", s(&p.attribute)),
                                ("formats", Json::Arr(p.formats.iter().map(|f| s(f)).collect())),
                                ("handed_to_libsasl2", Json::Num(p.handed as i64)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "mechanisms",
                Json::Arr(
                    self.mechanisms
                        .iter()
                        .map(|m| {
                            Json::Obj(vec![("name", s(m.name)), ("status", s(m.status.as_str())), ("why", s(&m.why))])
                        })
                        .collect(),
                ),
            ),
            ("password_ok", self.password_ok.map_or(Json::Null, Json::Bool)),
            ("account", opt(&self.account)),
            ("working", Json::Arr(self.working().into_iter().map(s).collect())),
            ("problems", Json::Num(self.problems() as i64)),
            ("result", s(&self.verdict())),
            ("exit_code", Json::Num(i64::from(self.exit_code()))),
        ]);
        let mut out = String::new();
        json.write(&mut out);
        out.push('\n');
        out
    }
}

/// Just enough JSON to write the report.
enum Json {
    Null,
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => write_json_str(out, s),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Split one of the plugin's messages, "cause; fix", at the first `; ` outside parentheses and
/// backquotes (a server's diagnostic text sits in parentheses and may hold `;`).
pub fn split_fix(msg: &str) -> (String, Option<String>) {
    let mut depth = 0usize;
    let mut quoted = false;
    let bytes = msg.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'`' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b';' if !quoted && depth == 0 && bytes.get(i + 1) == Some(&b' ') => {
                return (msg[..i].to_owned(), Some(msg[i + 2..].to_owned()));
            }
            _ => {}
        }
    }
    (msg.to_owned(), None)
}

// ---- reading the options ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Imapd,
    SaslApp,
    OverridesOnly,
}

/// One `key: value` line of a config file.
#[derive(Debug, Clone)]
struct Line {
    key: String,
    value: String,
    path: String,
    line: usize,
}

impl Line {
    fn at(&self) -> String {
        format!("{}:{}", self.path, self.line)
    }
}

/// Read `path` as imapd (`@include`, `\` continuations, empty values refused) or libsasl2
/// (lib/config.c) would: `key: value`, `#` comments, keys of `[A-Za-z0-9_-]` lower-cased,
/// values trimmed.
fn read_conf(
    path: &Path,
    kind: Kind,
    depth: usize,
    lines: &mut Vec<Line>,
    steps: &mut Vec<Step>,
) -> Result<(), InputError> {
    let text = std::fs::read(path).map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&text);
    let shown = path.display().to_string();
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        if pending.is_empty() {
            start = line_no;
        }
        // imapd joins a line ending in `\` with the next one.
        if kind == Kind::Imapd && raw.ends_with('\\') {
            pending.push_str(&raw[..raw.len() - 1]);
            continue;
        }
        pending.push_str(raw);
        let full = std::mem::take(&mut pending);
        let t = full.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let at = format!("{shown}:{start}");
        let directive = kind == Kind::Imapd && t.starts_with('@');
        let body = if directive { &t[1..] } else { t };
        let key_len = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(body.len());
        let key = body[..key_len].to_ascii_lowercase();
        let rest = &body[key_len..];
        let Some(value) = rest.strip_prefix(':') else {
            let who = if kind == Kind::Imapd {
                "Cyrus imapd refuses to start (invalid option name)"
            } else {
                "libsasl2 refuses the file"
            };
            let (shown, hidden) = shown_malformed(t);
            steps.push(Step::problem(
                format!("{at}: `{shown}` is not a `key: value` line{hidden}"),
                format!("{who}; write `option: value` (letters, digits, `_` and `-` before the colon) or comment it out with `#`"),
            ));
            continue;
        };
        let value = value.trim().to_owned();
        if directive {
            if key != "include" {
                steps.push(Step::problem(
                    format!("{at}: unknown directive `@{key}`"),
                    "Cyrus imapd refuses to start (invalid directive); only `@include: FILE` exists",
                ));
            } else if depth >= MAX_INCLUDE_DEPTH {
                steps.push(Step::problem(format!("{at}: @include nested too deeply"), "remove the @include loop"));
            } else {
                steps.push(Step::note(format!("{at}: reading @include {value}")));
                read_conf(Path::new(&value), kind, depth + 1, lines, steps)?;
            }
            continue;
        }
        if value.is_empty() && kind == Kind::Imapd {
            steps.push(Step::problem(
                format!("{at}: `{key}` has an empty value"),
                "Cyrus imapd refuses to start (empty option value); give it a value or remove the line",
            ));
            continue;
        }
        lines.push(Line { key, value, path: shown.clone(), line: start });
    }
    Ok(())
}

/// The names under which `key` is looked up in a file, first match wins.
fn names_for(kind: Kind, service: &str, key: &str) -> Vec<String> {
    let plugin_option = keys::ALL.contains(&key);
    match kind {
        Kind::OverridesOnly => Vec::new(),
        Kind::SaslApp => vec![key.to_owned()],
        // mysasl_config: sasl_<plugin>_<option>, then sasl_<option>; each through
        // config_getoverflowstring, which tries <service>_<name> first.
        Kind::Imapd if plugin_option => vec![
            format!("{service}_sasl_{PLUGIN_NAME}_{key}"),
            format!("sasl_{PLUGIN_NAME}_{key}"),
            format!("{service}_sasl_{key}"),
            format!("sasl_{key}"),
        ],
        Kind::Imapd => vec![format!("{service}_sasl_{key}"), format!("sasl_{key}")],
    }
}

/// The options as the plugin and libsasl2 would see them.
struct Options {
    kind: Kind,
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Options {
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    /// How an admin writes option `key` in this kind of file.
    fn spelled(&self, key: &str) -> String {
        match self.kind {
            Kind::SaslApp => key.to_owned(),
            Kind::Imapd | Kind::OverridesOnly => format!("sasl_{key}"),
        }
    }
}

/// The config parse reads options from the effective table and files from the file system,
/// exactly as the plugin's [`SystemSources`] does.
struct CheckSources<'a>(&'a Options);

impl Sources for CheckSources<'_> {
    fn option(&self, key: &str) -> Option<String> {
        self.0.values.get(key).map(|(v, _)| v.clone())
    }

    fn read_file(&self, path: &Path) -> io::Result<FileData> {
        SystemSources(|_: &str| None).read_file(path)
    }
}

fn read_options(input: &Input, steps: &mut Vec<Step>) -> Result<Options, InputError> {
    let service = input.service.trim().to_ascii_lowercase();
    let (kind, lines) = match &input.conf {
        None => (Kind::OverridesOnly, Vec::new()),
        Some(ConfFile::Imapd(p)) | Some(ConfFile::SaslApp(p)) => {
            let kind = if matches!(input.conf, Some(ConfFile::Imapd(_))) { Kind::Imapd } else { Kind::SaslApp };
            let mut lines = Vec::new();
            read_conf(p, kind, 0, &mut lines, steps)?;
            (kind, lines)
        }
    };

    // Keys set twice.
    let mut first: BTreeMap<&str, &Line> = BTreeMap::new();
    for l in &lines {
        match first.get(l.key.as_str()) {
            None => {
                first.insert(&l.key, l);
            }
            Some(f) if kind == Kind::Imapd => steps.push(Step::problem(
                format!("`{}` is set twice ({} and line {})", l.key, f.at(), l.line),
                "Cyrus imapd refuses to start with an option set twice; remove one of them",
            )),
            Some(f) => steps.push(Step::note(format!(
                "`{}` at {} is ignored: libsasl2 uses the first one, at {}",
                l.key,
                l.at(),
                f.at()
            ))),
        }
    }

    let mut values = BTreeMap::new();
    let mut used: Vec<&str> = Vec::new();
    for &key in keys::ALL.iter().chain(LIBRARY_KEYS) {
        let names = names_for(kind, &service, key);
        let found: Vec<&Line> = names.iter().filter_map(|n| first.get(n.as_str()).copied()).collect();
        used.extend(found.iter().map(|l| l.key.as_str()));
        let over = input.overrides.iter().rev().find(|(k, _)| option_key(k) == Some(key));
        let winner = match over {
            Some((_, v)) => Some((v.clone(), Origin::Override)),
            None => found
                .first()
                .map(|l| (l.value.clone(), Origin::File { path: l.path.clone(), line: l.line, key: l.key.clone() })),
        };
        let skip = usize::from(over.is_none());
        for shadowed in found.iter().skip(skip) {
            let by = match (&winner, over) {
                (_, Some(_)) => "-o".to_owned(),
                (Some((_, origin)), None) => origin.to_string(),
                (None, None) => String::new(),
            };
            steps.push(Step::note(format!("`{}` at {} is not used: {by} comes first", shadowed.key, shadowed.at())));
        }
        if let Some(w) = winner {
            values.insert(key, w);
        }
    }

    // An application config (Postfix's smtpd.conf) given with -C: one problem that names
    // --sasl-conf, rather than "add sasl_" to each of its lines.
    let known = |k: &str| keys::ALL.contains(&k) || LIBRARY_KEYS.contains(&k);
    let app_config = kind == Kind::Imapd && !first.keys().any(|k| k.contains("sasl_"));
    if let (true, Some(l), Some(ConfFile::Imapd(path))) =
        (app_config, first.values().find(|l| known(&l.key)), &input.conf)
    {
        steps.push(Step::problem(
            format!(
                "{} looks like a libsasl2 application config, not an imapd.conf: `{}` ({}) has no `sasl_` \
                 prefix, as in Postfix's /etc/postfix/sasl/smtpd.conf",
                path.display(),
                l.key,
                l.at()
            ),
            format!("check it with `ldapbind-check --sasl-conf {} ...` instead of -C", path.display()),
        ));
    } else {
        // Lines that look meant for ldapbind but never reach it.
        for l in first.values() {
            if used.contains(&l.key.as_str()) {
                continue;
            }
            stray_key(kind, &service, l, steps);
        }
    }
    Ok(Options { kind, values })
}

fn stray_key(kind: Kind, service: &str, l: &Line, steps: &mut Vec<Step>) {
    let known = |k: &str| keys::ALL.contains(&k) || LIBRARY_KEYS.contains(&k);
    let listing = keys::ALL.join(", ");
    match kind {
        Kind::OverridesOnly => {}
        Kind::SaslApp => {
            if let Some(bare) = l.key.strip_prefix("sasl_").and_then(option_key) {
                steps.push(Step::problem(
                    format!(
                        "`{}` ({}) is never read: a SASL application config names options without `sasl_`",
                        l.key,
                        l.at()
                    ),
                    format!("write `{bare}: ...` (the `sasl_` prefix is for imapd.conf)"),
                ));
            } else if l.key.starts_with("ldapdb_") {
                steps.push(Step::problem(
                    format!("unknown option `{}` ({})", l.key, l.at()),
                    format!("check the spelling; ldapbind reads {listing}"),
                ));
            }
        }
        Kind::Imapd => {
            if l.key.starts_with("ldapdb_") || l.key.starts_with("ldapbind_") {
                steps.push(Step::problem(
                    format!(
                        "`{}` ({}) never reaches ldapbind: imapd hands only `sasl_` options to libsasl2",
                        l.key,
                        l.at()
                    ),
                    format!("write it as `sasl_{}`", l.key),
                ));
                return;
            }
            let Some(pos) = l.key.find("sasl_") else { return };
            let prefix = &l.key[..pos];
            let rest = &l.key[pos + 5..];
            let bare = rest.strip_prefix("ldapbind_").unwrap_or(rest);
            if !prefix.is_empty() && !prefix.ends_with('_') {
                return;
            }
            if let Some(other) = prefix.strip_suffix('_').filter(|p| *p != service) {
                if known(bare) {
                    steps.push(Step::note(format!(
                        "`{}` ({}) applies to service `{other}` only; this check is for service `{service}` (--service)",
                        l.key,
                        l.at()
                    )));
                    return;
                }
            }
            if bare.starts_with("ldapdb_") && !known(bare) {
                steps.push(Step::problem(
                    format!("unknown option `{}` ({})", l.key, l.at()),
                    format!("check the spelling; ldapbind reads {listing} (as sasl_ldapdb_uri and so on)"),
                ));
            }
        }
    }
}

/// Words that make a malformed line or argument possibly hold a password (`ldapdb_pw`,
/// `*_pw`, `pwd`, `*pass*`, `secret`, ...): generous on purpose.
const SECRET_WORDS: [&str; 6] = ["pw", "pass", "secret", "token", "cred", "key"];

/// A malformed `key: value` line or `-o` argument as a message may quote it, and a note for
/// the end of the sentence when some of it is hidden. Shown whole (at most 60
/// characters, URLs without userinfo) unless it could hold a password: with a
/// `SECRET_WORDS` word in it, only the option name before the first space, `=` or `:`; of a
/// single word that is not an option name, nothing (it may be the password on a line of its own).
pub fn shown_malformed(text: &str) -> (String, &'static str) {
    let text = text.trim();
    if option_key(text).is_some() {
        return (text.to_owned(), "");
    }
    let name_len = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(text.len());
    let (name, rest) = text.split_at(name_len);
    if !rest.starts_with(|c: char| c.is_whitespace() || c == '=' || c == ':') {
        return ("…".to_owned(), " (not shown: it may be a password)");
    }
    let lower = text.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
        return (format!("{name} …"), " (the rest is not shown: it may hold a password)");
    }
    (redact_urls(text).chars().take(60).collect(), "")
}

/// `ldap://user:pw@host` must never be printed as written.
fn redact_urls(value: &str) -> String {
    value
        .split(' ')
        .map(|word| {
            let Some(scheme_end) = word.find("://") else { return word.to_owned() };
            let after = &word[scheme_end + 3..];
            let authority_end = after.find('/').unwrap_or(after.len());
            match after[..authority_end].rfind('@') {
                Some(at) => format!("{}<redacted>{}", &word[..scheme_end + 3], &after[at..]),
                None => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn option_rows(opts: &Options) -> Vec<OptionRow> {
    let mut rows = Vec::new();
    for &key in keys::ALL.iter().chain(LIBRARY_KEYS) {
        let (value, origin) = match opts.values.get(key) {
            Some((v, origin)) => {
                let shown = match key {
                    keys::PW => MASK.to_owned(),
                    _ if v.len() > MAX_SHOWN_VALUE => {
                        let head: String = redact_urls(v).chars().take(MAX_SHOWN_VALUE).collect();
                        format!("{head}… ({} bytes)", v.len())
                    }
                    _ => redact_urls(v),
                };
                (shown, origin.clone())
            }
            None => {
                let default = match key {
                    "pwcheck_method" => "auxprop (libsasl2's default)",
                    "auxprop_plugin" => "unset: libsasl2 asks every auxprop plugin",
                    "canon_user_plugin" => "INTERNAL (libsasl2's default)",
                    "mech_list" => "unset: every installed mechanism",
                    _ => continue,
                };
                (default.to_owned(), Origin::Default)
            }
        };
        rows.push(OptionRow { key: key.to_owned(), value, origin });
    }
    rows
}

// ---- the host and directory the plugin's core runs against --------------------------------

/// The properties libsasl2 requests for the six mechanisms (authid properties, `*` names).
fn requested_names() -> Vec<String> {
    PREFETCH.iter().map(|p| format!("*{p}")).collect()
}

/// A `Host` like libsasl2's server connection: it records what the plugin sets and logs.
struct CliHost {
    requested: Vec<String>,
    values: RefCell<BTreeMap<String, Vec<Vec<u8>>>>,
    logs: RefCell<Vec<(Level, String)>>,
    in_login: Cell<bool>,
}

impl CliHost {
    fn new(requested: Vec<String>) -> CliHost {
        CliHost {
            requested,
            values: RefCell::new(BTreeMap::new()),
            logs: RefCell::new(Vec::new()),
            in_login: Cell::new(false),
        }
    }

    fn count(&self, name: &str) -> usize {
        self.values.borrow().get(name).map_or(0, Vec::len)
    }

    /// Runs `f` on the values set for `name` (never copied out, never printed).
    fn with_values<T>(&self, name: &str, f: impl FnOnce(&[Vec<u8>]) -> T) -> T {
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
    fn log(&self, level: Level, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_owned()));
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
enum SearchOutcome {
    None,
    One {
        dn: String,
        formats: BTreeMap<String, Vec<String>>,
        state: AccountState,
    },
    Many(Vec<String>),
    /// Cut short by the server's size limit before two entries (DNs of those that came).
    Unsure(Vec<String>),
    Failed(String),
}

#[derive(Debug, Clone)]
struct SearchRecord {
    filter: String,
    outcome: SearchOutcome,
}

/// The plugin's directory, with every search recorded as the plugin sent it.
struct Recorder {
    inner: LdapDirectory,
    config: Arc<Config>,
    searches: Mutex<Vec<SearchRecord>>,
}

impl Recorder {
    fn searches(&self) -> Vec<SearchRecord> {
        self.searches.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Per lower-cased password attribute, one format per value.
    fn formats(&self, entry: &crate::ldap::Entry) -> BTreeMap<String, Vec<String>> {
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

/// The [`Unusable`] a format of [`value_format`] stands for.
fn unusable_format(format: &str) -> Option<Unusable> {
    Unusable::ALL.into_iter().find(|u| u.format() == format)
}

/// How a password-like value is stored, never the value itself.
fn value_format(prop: &str, value: &[u8]) -> String {
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
            Err(e) => SearchOutcome::Failed(e.to_string()),
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

// ---- the check ----------------------------------------------------------------------------

/// What the user's entry and the plugin's lookup amount to, for the mechanism table.
#[derive(Default)]
struct Secrets {
    /// Why nothing is known about the user (the config, the connection or the search failed).
    blocked: Option<String>,
    clear: bool,
    /// Formats of the userPassword values in the entry.
    user_password: Vec<String>,
    scram: Vec<String>,
    plain_secret: bool,
    cram_secret: bool,
    digest_secret: bool,
    /// What refuses the account, to follow "the account" (`is locked: nsAccountLock is true ...`).
    refused: Option<String>,
    /// No cleartext password, but a bind as the user accepted the typed one (what
    /// ldapbind-authd does for `pwcheck_method: saslauthd`).
    bind_ok: bool,
}

impl Secrets {
    /// Why a mechanism that needs a cleartext userPassword cannot have one.
    fn why_no_clear(&self) -> String {
        if let Some(b) = &self.blocked {
            return b.clone();
        }
        match self.user_password.first() {
            Some(format) => match unusable_format(format) {
                Some(why) => format!("userPassword {}", why.says()),
                None => format!("userPassword is {format}, a hash ldapbind never hands to libsasl2"),
            },
            None => "the entry has no userPassword the service account can read".to_owned(),
        }
    }
}

/// The options of `input` (file, then `-o`), as libsasl2 would hand them to the plugin: the one
/// reader behind ldapbind-check and ldapbind-authd. The steps are what reading found.
fn load(input: &Input) -> Result<(Options, Vec<Step>), InputError> {
    for (k, _) in &input.overrides {
        if option_key(k).is_none() {
            return Err(InputError(format!(
                "-o {k}=...: unknown option; use one of {}, {}",
                keys::ALL.join(", "),
                LIBRARY_KEYS.join(", ")
            )));
        }
    }
    let mut steps = Vec::new();
    let opts = read_options(input, &mut steps)?;
    Ok((opts, steps))
}

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
    let service = input.service.trim().to_ascii_lowercase();
    let source = match (&input.conf, input.overrides.is_empty()) {
        (Some(ConfFile::Imapd(p)), _) => format!("{} (imapd.conf, service {service})", p.display()),
        (Some(ConfFile::SaslApp(p)), _) => format!("{} (SASL application config)", p.display()),
        (None, false) => "-o only".to_owned(),
        (None, true) => "nowhere (no -C, --sasl-conf or -o)".to_owned(),
    };
    let mut report = Report {
        user: input.user.clone(),
        source,
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
    let config = match Config::from_sources(&CheckSources(&opts)) {
        // The plugin builds its TLS configuration at init too, and refuses to work without it.
        Ok(config) => match crate::tls::client_config(&config) {
            Ok(tls) => {
                steps.push(Step::ok(format!("ldapbind accepts this configuration: {}", config.summary())));
                let tls_warnings = tls.as_ref().map(|t| t.warnings.clone()).unwrap_or_default();
                for w in config.alerts.iter().chain(&config.warnings).chain(&tls_warnings) {
                    steps.push(Step::from_message(w, "see sasl2.conf.example"));
                }
                for n in &config.notes {
                    steps.push(Step::note(n.clone()));
                }
                Some((config, tls.map(|t| t.config)))
            }
            Err(errors) => {
                for w in config.alerts.iter().chain(&config.warnings) {
                    steps.push(Step::from_message(w, "see sasl2.conf.example"));
                }
                for e in &errors {
                    steps.push(Step::from_message(&e.to_string(), "see sasl2.conf.example"));
                }
                None
            }
        },
        Err(errors) => {
            for e in &errors.0 {
                let found =
                    matches!(e, crate::config::ConfigError::NoSearchBase { .. }).then(|| base_from_root_dse(&opts));
                match found.flatten() {
                    Some(step) => steps.push(step),
                    None => steps.push(Step::from_message(&e.to_string(), "see sasl2.conf.example")),
                }
            }
            // The rejected parse keeps its warnings to itself; the URL's are worth fixing now too.
            if let Some(Ok(list)) = opts.get(keys::URI).map(crate::uri::parse_uri_list) {
                for w in &list.warnings {
                    steps.push(Step::from_message(&w.to_string(), "see sasl2.conf.example"));
                }
            }
            None
        }
    };
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
            let config = Arc::new(config);
            let mut usable = None;
            for url in &config.urls {
                let (section, ok) = url_section(&config, url, tls.as_ref());
                usable = usable.or(ok.then_some(url));
                report.sections.push(section);
            }
            if let Some(url) = usable {
                let dse = read_root_dse(&config, url, tls.as_ref());
                let ad = dse.as_ref().is_some_and(RootDse::is_active_directory);
                match &dse {
                    Some(dse) if ad => report.sections.push(active_directory_section(&config, &opts, dse)),
                    Some(dse) if dse.is_389_ds() => report.sections.push(ds389_section(dse.ds389_evidence())),
                    _ => {}
                }
                lookup(input, &opts, &selection, &config, tls.as_ref(), &mut report, &mut secrets);
                if ad {
                    after_lookup_on_ad(input, &opts, &config, tls.as_ref(), &mut report, &mut secrets);
                } else {
                    after_lookup_on_389(&opts, &config, dse.is_none(), &mut report);
                }
            } else {
                secrets.blocked = Some("no LDAP server accepted the connection and service bind (see above)".into());
                report.sections.push(Section {
                    title: "user search".into(),
                    steps: vec![Step::skipped("not run: no server in sasl_ldapdb_uri got past the service bind")],
                });
            }
        }
    }

    report.mechanisms = mechanisms(&opts, &selection, &secrets);
    if opts.kind == Kind::SaslApp {
        respell_for_sasl_app(&mut report);
    }
    Ok(report)
}

/// The user the daemon reads its files as, and who that daemon is.
fn daemon_user(input: &Input) -> Option<(String, &'static str)> {
    let smtpd = |p: &Path| p.file_name().is_some_and(|n| n == "smtpd.conf");
    match (&input.daemon_user, &input.conf) {
        (Some(user), _) => Some((user.clone(), "the daemon (--user)")),
        (None, Some(ConfFile::Imapd(_))) => Some(("cyrus".into(), "imapd")),
        (None, Some(ConfFile::SaslApp(p))) if smtpd(p) => {
            Some(("root".into(), "Postfix's smtpd, before it drops privileges,"))
        }
        (None, _) => None,
    }
}

/// The effective user of this process, by name (from /proc and /etc/passwd).
fn current_user() -> Option<(u32, String)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let euid: u32 = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let name = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(euid)).then(|| f[0].to_owned())
    });
    Some((euid, name.unwrap_or_else(|| euid.to_string())))
}

/// The files ldapbind reads at init, checked as the daemon's user: ldapbind-check itself
/// usually runs as root, which reads anything.
fn readable_by_daemon(input: &Input, opts: &Options, steps: &mut Vec<Step>) {
    let Some((user, daemon)) = daemon_user(input) else { return };
    let me = current_user();
    if me.as_ref().is_some_and(|(_, name)| *name == user) {
        return; // the configuration was just read as that user
    }
    for key in [keys::PW_FILE, keys::RC, keys::TLS_CACERT, keys::TLS_CERT, keys::TLS_KEY] {
        let Some(path) = opts.get(key) else { continue };
        let option = opts.spelled(key);
        if me.as_ref().is_none_or(|(uid, _)| *uid != 0) {
            steps.push(Step::note(format!(
                "{option} {path}: not checked as {user}, the user {daemon} reads it as (that needs root); \
                 run ldapbind-check as root or as {user}"
            )));
            continue;
        }
        // The kernel's answer (modes, ACLs, every directory on the way), as that user.
        let status = std::process::Command::new("runuser")
            .args(["-u", &user, "--", "test", "-r", path])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => steps.push(Step::ok(format!("{option} {path} is readable by {user} ({daemon})"))),
            Ok(s) if s.code() == Some(1) => steps.push(Step::problem(
                format!(
                    "{option} {path} is not readable by {user}, the user {daemon} reads it as: every login \
                     would fail with `cannot read {path}: Permission denied`"
                ),
                format!("let {user} read it and nobody else: `chown {user} {path}` and `chmod 600 {path}`"),
            )),
            _ => steps.push(Step::note(format!(
                "{option} {path}: could not check it as {user} (runuser -u {user} failed: no such user?)"
            ))),
        }
    }
}

/// The libsasl2 options that decide whether ldapbind is asked at all.
fn library_checks(opts: &Options, selection: &Selection, config: Option<&Config>, steps: &mut Vec<Step>) {
    let aux = opts.spelled("auxprop_plugin");
    let canon = opts.spelled("canon_user_plugin");
    let pwcheck = opts.spelled("pwcheck_method");
    if let Some(list) = opts.get("auxprop_plugin") {
        if !selection.auxprop_named {
            let hint = if list.split_ascii_whitespace().any(|n| n.eq_ignore_ascii_case("ldapdb")) {
                " (ldapdb is libsasl2's own LDAP plugin, which binds with SASL only)"
            } else {
                ""
            };
            steps.push(Step::problem(
                format!(
                    "{aux} is `{list}`: libsasl2 asks only the plugins it names, and ldapbind is not one of them{hint}"
                ),
                format!("set `{aux}: {PLUGIN_NAME}` (libsasl2 matches the plugin's name, not its file name)"),
            ));
        }
    } else {
        steps.push(Step::note(format!(
            "{aux} is not set: libsasl2 asks every installed auxprop plugin (sasldb too); `{aux}: {PLUGIN_NAME}` asks only ldapbind"
        )));
    }
    let canon_attr = config.and_then(|c| c.canon_attr.as_deref()).or_else(|| opts.get(keys::CANON_ATTR));
    match (opts.get("canon_user_plugin"), canon_attr) {
        (Some(p), None) if p.trim() == PLUGIN_NAME => steps.push(Step::note(format!(
            "{canon} is ldapbind but {} is not set: names are only trimmed",
            opts.spelled(keys::CANON_ATTR)
        ))),
        (Some(p), _) if p.trim() == PLUGIN_NAME => {}
        (other, Some(attr)) => steps.push(Step::problem(
            format!(
                "{} is {attr} but {canon} is {}: libsasl2 canonicalizes with that plugin and never asks ldapbind for the canonical name",
                opts.spelled(keys::CANON_ATTR),
                other.map_or("not set (INTERNAL)".to_owned(), |o| format!("`{o}`"))
            ),
            format!("set `{canon}: {PLUGIN_NAME}`, or remove {}", opts.spelled(keys::CANON_ATTR)),
        )),
        (Some(p), None) if p.trim() != "INTERNAL" => steps.push(Step::note(format!(
            "{canon} is `{p}`: ldapbind-check cannot run that plugin and uses the name as typed"
        ))),
        _ => {}
    }
    for token in opts.get("pwcheck_method").unwrap_or("auxprop").split_ascii_whitespace() {
        match token.to_ascii_lowercase().as_str() {
            "auxprop" | "saslauthd" | "authdaemond" | "alwaystrue" => {}
            "auxprop-hashed" => steps.push(Step::problem(
                format!(
                    "{pwcheck}: `auxprop-hashed` is compiled out of libsasl2 2.1.28 (\"unknown password verifier\")"
                ),
                format!("use `{pwcheck}: auxprop` with cleartext passwords, or `{pwcheck}: saslauthd` for hashed ones"),
            )),
            other => steps.push(Step::problem(
                format!("{pwcheck}: `{other}` is not a password verifier libsasl2 knows"),
                format!("use auxprop (ldapbind's passwords) or saslauthd, e.g. `{pwcheck}: auxprop`"),
            )),
        }
    }
}

/// Resolve, connect, TLS and service bind for one URL.
fn url_section(config: &Config, url: &crate::uri::LdapUrl, tls: Option<&Arc<rustls::ClientConfig>>) -> (Section, bool) {
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
            Outcome::Failed(e) => Step::from_message(&e.to_string(), "check the server and sasl_ldapdb_uri"),
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
fn internal_canon(user: &str) -> Result<String, Error> {
    let t = user.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return Err(Error::BadName { shown: format!("{user:?}"), why: "all-whitespace username" });
    }
    Ok(t.to_owned())
}

const NOT_FOUND_FIX: &str = "check the user name; the entry must be under the search base, match \
     sasl_ldapdb_filter and be visible to the service account (set sasl_ldapdb_filter, e.g. \
     (mail=%u), or sasl_ldapdb_search_base if users are found by another attribute or live elsewhere)";

/// What a user search that found nothing says when the service account sees no entry at all.
const SEES_NOTHING: &str = "sees no entry below";

/// Who searches: `the service account DN`, or how it binds when it has no DN.
fn service_account(config: &Config) -> String {
    match &config.bind {
        crate::config::Bind::Simple { dn, .. } => format!("the service account {dn}"),
        crate::config::Bind::External => "the service account (its SASL EXTERNAL identity)".to_owned(),
        crate::config::Bind::Anonymous => "an anonymous search (no sasl_ldapdb_id)".to_owned(),
    }
}

/// Canonicalize and look up the user through the plugin's core, like one login does.
fn lookup(
    input: &Input,
    opts: &Options,
    selection: &Selection,
    config: &Arc<Config>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    report: &mut Report,
    secrets: &mut Secrets,
) {
    let recorder = Recorder {
        inner: LdapDirectory::new(Arc::clone(config), tls.cloned()),
        config: Arc::clone(config),
        searches: Mutex::new(Vec::new()),
    };
    let service = Service::new(Arc::clone(config), recorder);
    let host = CliHost::new(requested_names());

    let by_ldapbind = selection.canon_named;
    let canonical =
        if by_ldapbind { service.canonicalize(&host, input.user.as_bytes()) } else { internal_canon(&input.user) };
    // libsasl2 has recorded the authid now: the lookups belong to this login.
    host.in_login.set(true);
    let looked_up: Option<Result<(), Error>> =
        canonical.as_ref().ok().map(|name| service.lookup(&host, LookupFlags::default(), name.as_bytes()));
    let searches = service.directory().searches();
    let failure = canonical.as_ref().err().or_else(|| looked_up.as_ref().and_then(|r| r.as_ref().err()));

    // The search.
    let mut steps = Vec::new();
    let scope = config.scope.as_str();
    steps.push(Step::ok(format!("base {} ({}), scope {scope}", config.search_base, config.base_source)));
    let mut dn = None;
    let mut account = None;
    for rec in &searches {
        steps.push(Step::ok(format!("filter as sent: {}", rec.filter)));
        let (entries, dns) = match &rec.outcome {
            SearchOutcome::None => {
                let msg = failure.map_or_else(|| format!("no entry matches {}", rec.filter), ToString::to_string);
                // Whether the service account sees anything at all: if not, the name is not the
                // problem.
                let step = match service.directory().inner.first_below_base() {
                    Ok(None) => {
                        let who = service_account(config);
                        Step::problem(
                            format!(
                                "0 entries: {msg}; {who} {SEES_NOTHING} {} (a one-level search for (objectClass=*) \
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
                    }
                    _ => Step::problem(format!("0 entries: {msg}"), NOT_FOUND_FIX),
                };
                steps.push(step);
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
                let msg = failure.map_or_else(|| "more than one entry matches".to_owned(), ToString::to_string);
                let mut step =
                    Step::from_message(&msg, "make the entries' uid/mail unique or narrow sasl_ldapdb_filter");
                step.text = format!("{} entries: {}", dns.len(), step.text);
                steps.push(step);
                secrets.blocked = Some(format!("the search for {} is ambiguous", input.user));
                (dns.len(), dns.clone())
            }
            SearchOutcome::Unsure(dns) => {
                let msg =
                    failure.map_or_else(|| "the server's size limit ended the search".to_owned(), ToString::to_string);
                steps.push(Step::from_message(
                    &msg,
                    "raise the service account's size limit on the server to at least 2",
                ));
                secrets.blocked = Some(format!("the server's size limit cut the search for {} short", input.user));
                (dns.len(), dns.clone())
            }
            SearchOutcome::Failed(msg) => {
                steps.push(Step::from_message(msg, "check the server and the service account's rights"));
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
    report.dn = dn.as_ref().map(|(d, _)| d.clone());
    if let Some(state) = &account {
        account_section(config, state, report, secrets);
    }

    // The canonical name.
    let canon_plugin = opts.spelled("canon_user_plugin");
    let step = match (&canonical, by_ldapbind, &config.canon_attr) {
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
            Step::from_message(&e.to_string(), "set sasl_ldapdb_canon_attr to an attribute every user has once")
        }
        (Err(Error::NoSuchUser { .. } | Error::Ambiguous { .. }), _, _) => {
            Step::skipped("none: the search did not find exactly one entry")
        }
        (Err(_), _, _) => Step::skipped("none: the user search failed (see above)"),
    };
    report.sections.push(Section { title: "canonical name".into(), steps: vec![step] });

    // The properties.
    let mut steps = Vec::new();
    if let (Some((_, formats)), Some(Ok(()))) = (&dn, &looked_up) {
        let mut any = false;
        for prop in PREFETCH {
            let attr = config.attribute_for(prop);
            let label =
                if attr.eq_ignore_ascii_case(prop) { (*prop).to_owned() } else { format!("{prop} (attribute {attr})") };
            let found = formats.get(&attr.to_ascii_lowercase()).cloned().unwrap_or_default();
            let handed = host.count(&format!("*{prop}"));
            if found.is_empty() {
                continue;
            }
            any = true;
            if *prop == "userPassword" {
                secrets.user_password = found.clone();
            }
            report.properties.push(PropertyRow {
                property: (*prop).to_owned(),
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
                continue;
            }
            let shown = if *prop == "authPassword" {
                usable.iter().map(|f| format!("authPassword {f}")).collect::<Vec<_>>().join(", ")
            } else {
                usable.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            };
            match *prop {
                "userPassword" => {
                    if handed > 0 {
                        secrets.clear = true;
                        steps.push(Step::ok(format!("{label}: {shown}")));
                    } else if uses_saslauthd(opts) {
                        steps.push(Step::note(format!(
                            "{label}: {shown}: a hash; PLAIN/LOGIN go to saslauthd (pwcheck_method), other mechanisms need a cleartext userPassword or an authPassword"
                        )));
                    } else {
                        steps.push(Step::problem(
                            format!("{label}: {shown}: a hash, which ldapbind never hands to libsasl2 (pwcheck_method auxprop compares cleartext)"),
                            authd_fix(opts),
                        ));
                    }
                }
                "authPassword" => {
                    host.with_values("*authPassword", |vals| {
                        secrets.scram = vals.iter().map(|v| value_format("authPassword", v)).collect();
                    });
                    steps.push(Step::ok(format!("{label}: {shown}")));
                }
                _ => {
                    match *prop {
                        "cmusaslsecretPLAIN" => secrets.plain_secret = handed > 0,
                        "cmusaslsecretCRAM-MD5" => secrets.cram_secret = handed > 0,
                        "cmusaslsecretDIGEST-MD5" => secrets.digest_secret = handed > 0,
                        _ => {}
                    }
                    steps.push(Step::ok(format!("{label}: {shown}")));
                }
            }
        }
        if !any {
            let what = format!(
                "no password: the entry has none of {}, or the service account may not read them",
                PREFETCH.join(", ")
            );
            if uses_saslauthd(opts) {
                steps.push(Step::note(format!("{what}; PLAIN/LOGIN go to saslauthd (pwcheck_method)")));
            } else {
                steps.push(Step::problem(what, authd_fix(opts)));
            }
            secrets.blocked.get_or_insert_with(|| "the entry has no password the service account can read".into());
        }
    } else if let (Some(_), Some(Err(Error::Account { .. }))) = (&dn, &looked_up) {
        steps.push(Step::skipped("none handed to libsasl2: ldapbind refuses the account (see account)"));
    } else if let (Some(_), Some(Err(e))) = (&dn, &looked_up) {
        steps.push(Step::from_message(&e.to_string(), "see the plugin's message above"));
        secrets.blocked.get_or_insert_with(|| "the property lookup failed".into());
    } else if let (Some(_), Err(Error::Canon { .. })) = (&dn, &canonical) {
        steps.push(Step::skipped("not looked up: no canonical name"));
        secrets.blocked.get_or_insert_with(|| "ldapbind refused the canonical name (see above)".into());
    } else {
        steps.push(Step::skipped("not looked up: no entry"));
        secrets.blocked.get_or_insert_with(|| "the user was not found".into());
    }
    report.sections.push(Section { title: "properties".into(), steps });

    // The password.
    if let Some(password) = &input.password {
        let step = check_password(&service, &host, report.dn.as_deref(), secrets, password, opts);
        report.password_ok = Some(step.status == Status::Ok);
        secrets.bind_ok = !secrets.clear && step.status == Status::Ok;
        report.sections.push(Section { title: PASSWORD.into(), steps: vec![step] });
    }
    service.directory().inner.close_all();
}

/// The stderr line `ldapbind-check` writes before it binds as the user.
pub fn bind_warning(dn: &str) -> String {
    format!(
        "ldapbind-check: binding as {dn} to check the password: a wrong password counts as a failed login \
         towards the directory's lockout (ppolicy pwdMaxFailure, 389-ds passwordMaxFailure, AD lockoutThreshold)"
    )
}

/// What the entry says about the account, as the plugin judges it.
fn account_section(config: &Config, state: &AccountState, report: &mut Report, secrets: &mut Secrets) {
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

fn check_password(
    service: &Service<Recorder>,
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
            Some(scheme) => Step::problem(
                format!(
                    "right password, but libsasl2 cannot check this hash ({scheme}) through auxprop (a bind as {dn} accepted it)"
                ),
                authd_fix(opts),
            ),
            None => Step::problem(
                format!(
                    "right password (a bind as {dn} accepted it), but the service account can read no password, so libsasl2 cannot check it through auxprop"
                ),
                authd_fix(opts),
            ),
        },
        Ok(false) => Step::problem(
            format!("wrong password: the directory refused a bind as {dn} with it (49 invalidCredentials)"),
            "check the password (the directory itself says it is wrong)",
        ),
        Err(e @ Error::Account { condition, .. }) => {
            let mut step = Step::from_message(&e.to_string(), condition.user_fix());
            step.text = format!("{}: {}", condition.word(), step.text);
            step
        }
        Err(e) => Step::from_message(&e.to_string(), "check the server"),
    }
}

/// `pwcheck_method` lists saslauthd: PLAIN/LOGIN passwords go to a daemon (ldapbind-authd).
fn uses_saslauthd(opts: &Options) -> bool {
    opts.get("pwcheck_method").is_some_and(|m| m.split_ascii_whitespace().any(|v| v.eq_ignore_ascii_case("saslauthd")))
}

/// What to do when libsasl2 cannot check a password through auxprop: the daemon that binds as
/// the user, never "give the service account read access".
fn authd_fix(opts: &Options) -> String {
    format!(
        "{}; or store a cleartext userPassword or an authPassword (RFC 5803 SCRAM) readable by the service account",
        authd_lines(opts)
    )
}

/// How to check PLAIN/LOGIN passwords through ldapbind-authd, with the options as they are written.
fn authd_lines(opts: &Options) -> String {
    let command = match opts.kind {
        Kind::SaslApp => "ldapbind-authd --sasl-conf FILE",
        Kind::Imapd | Kind::OverridesOnly => "ldapbind-authd -C /etc/imapd.conf",
    };
    format!(
        "run ldapbind-authd with these options (`{command}`; it checks PLAIN/LOGIN \
         passwords by binding as the user) and set `{}: auxprop saslauthd` and `{}: /run/ldapbind-authd/mux`",
        opts.spelled("pwcheck_method"),
        opts.spelled("saslauthd_path")
    )
}

/// Which of the six mechanisms can log this user in, and why not.
fn mechanisms(opts: &Options, selection: &Selection, s: &Secrets) -> Vec<MechRow> {
    let mech_list =
        opts.get("mech_list").map(|l| l.split_ascii_whitespace().map(str::to_ascii_uppercase).collect::<Vec<_>>());
    let pwcheck: Vec<String> =
        opts.get("pwcheck_method").unwrap_or("auxprop").split_ascii_whitespace().map(str::to_ascii_lowercase).collect();
    let asked = opts.get("auxprop_plugin").is_none() || selection.auxprop_named;
    let aux = opts.spelled("auxprop_plugin");
    MECHANISMS
        .iter()
        .map(|&name| {
            let row = |status, why: String| MechRow { name, status, why };
            if let Some(list) = &mech_list {
                if !list.iter().any(|m| m == name) {
                    return row(MechStatus::No, format!("not in {}", opts.spelled("mech_list")));
                }
            }
            if let Some(why) = &s.refused {
                return row(MechStatus::No, format!("ldapbind refuses the account: it {why}"));
            }
            let not_asked = || format!("{aux} does not name ldapbind, so libsasl2 never asks it");
            match name {
                "PLAIN" | "LOGIN" => {
                    let mut why_not = Vec::new();
                    for method in &pwcheck {
                        match method.as_str() {
                            "auxprop" if !asked => why_not.push(not_asked()),
                            "auxprop" if s.clear => {
                                return row(MechStatus::Works, "cleartext userPassword, compared by pwcheck_method auxprop".into());
                            }
                            "auxprop" if s.plain_secret => {
                                return row(MechStatus::Works, "cmusaslsecretPLAIN, checked by pwcheck_method auxprop".into());
                            }
                            "auxprop" => why_not.push(format!("pwcheck_method auxprop needs a cleartext userPassword; {}", s.why_no_clear())),
                            "saslauthd" if s.bind_ok => {
                                return row(
                                    MechStatus::Works,
                                    "pwcheck_method saslauthd: ldapbind-authd binds as the user, and a bind accepted this password".into(),
                                );
                            }
                            "saslauthd" => {
                                return row(
                                    MechStatus::Unchecked,
                                    "pwcheck_method saslauthd checks the password, not ldapbind; ask the daemon with \
                                     `ldapbind-check --authd SOCKET --password-stdin USER`"
                                        .into(),
                                );
                            }
                            other => why_not.push(format!("pwcheck_method {other} is not checked here")),
                        }
                    }
                    row(MechStatus::No, why_not.join("; "))
                }
                _ if !asked => row(MechStatus::No, not_asked()),
                "CRAM-MD5" | "DIGEST-MD5" => {
                    let (secret, ok) = if name == "CRAM-MD5" {
                        ("cmusaslsecretCRAM-MD5", s.cram_secret)
                    } else {
                        ("cmusaslsecretDIGEST-MD5", s.digest_secret)
                    };
                    if s.clear {
                        row(MechStatus::Works, "cleartext userPassword".into())
                    } else if ok {
                        row(MechStatus::Works, format!("{secret} (valid only if made for this realm and name)"))
                    } else {
                        row(MechStatus::No, format!("needs a cleartext userPassword (or {secret}); {}", s.why_no_clear()))
                    }
                }
                _ => {
                    if s.clear {
                        row(MechStatus::Works, "cleartext userPassword".into())
                    } else if s.scram.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                        row(MechStatus::Works, format!("authPassword {name}"))
                    } else {
                        let why = match &s.blocked {
                            Some(b) => b.clone(),
                            None if s.scram.is_empty() => s.why_no_clear(),
                            None => format!("authPassword holds {} only; {}", s.scram.join(", "), s.why_no_clear()),
                        };
                        row(MechStatus::No, format!("needs a cleartext userPassword or an authPassword {name}$...; {why}"))
                    }
                }
            }
        })
        .collect()
}

/// In a SASL application config the options have no `sasl_` prefix; say them that way.
fn respell_for_sasl_app(report: &mut Report) {
    let fix = |t: &mut String| *t = crate::host::Spelling::Bare.apply(t).into_owned();
    for step in report.sections.iter_mut().flat_map(|s| s.steps.iter_mut()) {
        fix(&mut step.text);
        if let Some(f) = step.fix.as_mut() {
            fix(f);
        }
    }
    for m in &mut report.mechanisms {
        fix(&mut m.why);
    }
}

// ---- Active Directory ---------------------------------------------------------------------

/// The root DSE attributes ldapbind-check reads (anonymously; AD and 389-ds allow it).
const ROOT_DSE_ATTRS: [&str; 7] = [
    "defaultNamingContext",
    "namingContexts",
    "supportedCapabilities",
    "forestFunctionality",
    "isGlobalCatalogReady",
    "vendorName",
    "vendorVersion",
];

/// A server's root DSE, as far as ldapbind-check reads it.
struct RootDse {
    url: String,
    attrs: std::collections::HashMap<String, Vec<String>>,
}

impl RootDse {
    fn is_active_directory(&self) -> bool {
        crate::ad::is_active_directory(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    fn is_389_ds(&self) -> bool {
        crate::ds389::is_389_ds(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// `URL is 389 Directory Server (root DSE: vendorVersion ...)`.
    fn ds389_evidence(&self) -> String {
        let said = ["vendorVersion", "vendorName"]
            .iter()
            .find_map(|a| self.values(a).first().map(|v| format!("{a} {v}")))
            .unwrap_or_default();
        format!("{} is {DS389} (root DSE: {said})", self.url)
    }

    fn values(&self, name: &str) -> &[String] {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or(&[], |(_, v)| v.as_slice())
    }

    /// AD's `defaultNamingContext`, else the only `namingContexts` value.
    fn base(&self) -> Option<&str> {
        match (self.values("defaultNamingContext"), self.values("namingContexts")) {
            ([dnc, ..], _) | ([], [dnc]) => Some(dnc.as_str()),
            _ => None,
        }
    }
}

/// The root DSE of `url`, read without binding; `None` when it cannot be read.
fn read_root_dse(
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
fn base_from_root_dse(opts: &Options) -> Option<Step> {
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
fn active_directory_section(config: &Config, opts: &Options, dse: &RootDse) -> Section {
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
fn after_lookup_on_ad(
    input: &Input,
    opts: &Options,
    config: &Arc<Config>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    report: &mut Report,
    secrets: &mut Secrets,
) {
    // "Give the entry a userPassword" is wrong on AD (see below): AD returns no password at all.
    let saslauthd = uses_saslauthd(opts);
    if let Some(properties) = report.sections.iter_mut().find(|s| s.title == "properties") {
        // A problem with pwcheck_method auxprop, a note with saslauthd: both say AD's words here.
        let no_password =
            |s: &&mut Step| matches!(s.status, Status::Problem | Status::Note) && s.text.starts_with("no password:");
        for step in properties.steps.iter_mut().filter(no_password) {
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
    let step = match LdapDirectory::new(Arc::clone(config), tls.cloned()).check_password(&dn, password.expose()) {
        Ok(true) => Step::ok(format!(
            "Active Directory accepted the password in a bind as {dn} (PLAIN/LOGIN through ldapbind-authd)"
        )),
        Ok(false) => Step::problem(
            format!("Active Directory refused a bind as {dn} with this password (49 invalidCredentials)"),
            "check the password, and that the account is enabled, not locked out and not expired",
        ),
        Err(e) => Step::from_message(&e.to_string(), "check the server"),
    };
    report.password_ok = Some(step.status == Status::Ok);
    match report.sections.iter_mut().find(|s| s.title == PASSWORD) {
        Some(s) => s.steps = vec![step],
        None => report.sections.push(Section { title: PASSWORD.into(), steps: vec![step] }),
    }
}

// ---- 389 Directory Server -----------------------------------------------------------------

const DS389: &str = "389 Directory Server";

/// What 389-ds means for ldapbind, after the line that recognises it.
fn ds389_section(evidence: String) -> Section {
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
fn after_lookup_on_389(opts: &Options, config: &Config, no_root_dse: bool, report: &mut Report) {
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
    let generic = authd_fix(opts);
    let aci = ds389_aci_fix(config);
    for step in report.sections.iter_mut().flat_map(|s| s.steps.iter_mut()) {
        if step.fix.as_deref() == Some(generic.as_str()) {
            step.fix = Some(daemon.clone());
        }
        if step.status == Status::Problem && step.text.contains(SEES_NOTHING) {
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
fn ds389_aci_fix(config: &Config) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_fix_skips_parentheses_and_quotes() {
        assert_eq!(split_fix("a; b; c"), ("a".to_owned(), Some("b; c".to_owned())));
        assert_eq!(split_fix("a (x; y) b; fix"), ("a (x; y) b".to_owned(), Some("fix".to_owned())));
        assert_eq!(split_fix("`a; b` c; fix"), ("`a; b` c".to_owned(), Some("fix".to_owned())));
        assert_eq!(split_fix("no fix here"), ("no fix here".to_owned(), None));
    }

    #[test]
    fn option_keys_accept_imapd_spellings() {
        assert_eq!(option_key("ldapdb_uri"), Some("ldapdb_uri"));
        assert_eq!(option_key("SASL_LDAPDB_URI"), Some("ldapdb_uri"));
        assert_eq!(option_key("sasl_ldapbind_ldapdb_id"), Some("ldapdb_id"));
        assert_eq!(option_key("pwcheck_method"), Some("pwcheck_method"));
        assert_eq!(option_key("ldap_uri"), None);
    }

    #[test]
    fn imapd_lookup_order_is_mysasl_configs() {
        assert_eq!(
            names_for(Kind::Imapd, "imap", "ldapdb_uri"),
            ["imap_sasl_ldapbind_ldapdb_uri", "sasl_ldapbind_ldapdb_uri", "imap_sasl_ldapdb_uri", "sasl_ldapdb_uri"]
        );
        assert_eq!(names_for(Kind::Imapd, "pop3", "mech_list"), ["pop3_sasl_mech_list", "sasl_mech_list"]);
        assert_eq!(names_for(Kind::SaslApp, "imap", "ldapdb_uri"), ["ldapdb_uri"]);
    }

    #[test]
    fn urls_lose_their_userinfo() {
        assert_eq!(redact_urls("ldap://cn=x:pw@h:389/dc=x ldap://h2/"), "ldap://<redacted>@h:389/dc=x ldap://h2/");
        assert_eq!(redact_urls("ldap://h/cn=a@b"), "ldap://h/cn=a@b");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn value_formats_never_show_values() {
        assert_eq!(value_format("userPassword", b"secret"), "cleartext");
        assert_eq!(value_format("userPassword", b"{SSHA}abc"), "{SSHA}");
        assert_eq!(value_format("authPassword", b"SCRAM-SHA-256$4096:c2FsdA==$a:b"), "SCRAM-SHA-256");
        assert_eq!(value_format("authPassword", b"secret"), "unrecognised (not RFC 5803 `SCHEME$...`)");
        assert_eq!(value_format("cmusaslsecretPLAIN", b"0123"), "present (4 bytes)");
    }

    fn conf(text: &str, kind: Kind) -> (Vec<Line>, Vec<Step>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.conf");
        std::fs::write(&p, text).unwrap();
        let (mut lines, mut steps) = (Vec::new(), Vec::new());
        read_conf(&p, kind, 0, &mut lines, &mut steps).unwrap();
        (lines, steps)
    }

    #[test]
    fn conf_lines_are_parsed_like_imapd() {
        let (lines, steps) =
            conf("# c\n  SASL_LDAPDB_URI:  ldap://h/dc=x  \nsasl_a: b\\\n c\nbad line\nsasl_empty:\n", Kind::Imapd);
        let kv: Vec<(&str, &str, usize)> = lines.iter().map(|l| (l.key.as_str(), l.value.as_str(), l.line)).collect();
        assert_eq!(kv, [("sasl_ldapdb_uri", "ldap://h/dc=x", 2), ("sasl_a", "b c", 3)]);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps[0].text.ends_with(":5: `bad line` is not a `key: value` line"), "{steps:?}");
        assert!(steps[1].text.ends_with(":6: `sasl_empty` has an empty value"), "{steps:?}");
    }

    #[test]
    fn malformed_lines_that_may_hold_a_password_are_not_shown() {
        for (text, shown) in [
            (
                "sasl_ldapdb_pw Secret",
                "`sasl_ldapdb_pw …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "sasl_ldapdb_pw=Secret",
                "`sasl_ldapdb_pw …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "sasl_ldapdb_pw = Secret",
                "`sasl_ldapdb_pw …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "imap_sasl_ldapdb_pw\tSecret",
                "`imap_sasl_ldapdb_pw …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "ldap_PASSWORD Secret",
                "`ldap_PASSWORD …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "x_secret=Secret",
                "`x_secret …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            (
                "sasl_foo Secret:pw",
                "`sasl_foo …` is not a `key: value` line (the rest is not shown: it may hold a password)",
            ),
            ("  Secret", "`…` is not a `key: value` line (not shown: it may be a password)"),
            ("Secret!", "`…` is not a `key: value` line (not shown: it may be a password)"),
            ("sasl_ldapdb_uri", "`sasl_ldapdb_uri` is not a `key: value` line"),
            ("sasl_mech_list PLAIN LOGIN", "`sasl_mech_list PLAIN LOGIN` is not a `key: value` line"),
            (
                "sasl_ldapdb_uri ldap://cn=x:hunter2@h/",
                "`sasl_ldapdb_uri ldap://<redacted>@h/` is not a `key: value` line",
            ),
        ] {
            let (_, steps) = conf(&format!("sasl_a: b\n{text}\n"), Kind::Imapd);
            assert_eq!(steps.len(), 1, "{text}: {steps:?}");
            assert!(steps[0].text.ends_with(&format!(":2: {shown}")), "{text}: {steps:?}");
            assert!(!steps[0].text.contains("Secret") && !steps[0].text.contains("hunter2"), "{steps:?}");
        }
    }
}
