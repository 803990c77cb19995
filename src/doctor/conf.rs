//! Reading the options as libsasl2 hands them to the plugin: a Cyrus imapd.conf (`@include`,
//! `<service>_sasl_` names), a SASL application config (bare names), then `-o` overrides.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::report::{OptionRow, Origin, Step};
use super::{ConfFile, Input, InputError};
use crate::config::{FileData, Sources, SystemSources, keys};
use crate::state::PLUGIN_NAME;

pub use crate::config::keys::LIBRARY as LIBRARY_KEYS;
/// The imapd service name used with `-C` when `--service` is not given.
pub const DEFAULT_SERVICE: &str = "imap";
/// Shown instead of a password.
pub(super) const MASK: &str = "********";
/// Longest option value shown whole in the options section (a pasted 150 KB filter is cut).
pub(super) const MAX_SHOWN_VALUE: usize = 200;
/// Deepest `@include` chain followed in an imapd.conf.
pub(super) const MAX_INCLUDE_DEPTH: usize = 8;

/// The option an `-o KEY=VALUE` names: `KEY` as libsasl2 asks for it (`ldapdb_uri`,
/// `pwcheck_method`); a leading `sasl_` or `sasl_ldapbind_` is accepted (copied from imapd.conf).
pub fn option_key(key: &str) -> Option<&'static str> {
    let k = key.trim().to_ascii_lowercase();
    let k = k.strip_prefix("sasl_").unwrap_or(&k);
    let k = k.strip_prefix("ldapbind_").unwrap_or(k);
    keys::ALL.iter().chain(LIBRARY_KEYS).copied().find(|x| *x == k)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Imapd,
    SaslApp,
    OverridesOnly,
}

/// One `key: value` line of a config file.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) path: String,
    pub(super) line: usize,
}

impl Line {
    pub(super) fn at(&self) -> String {
        format!("{}:{}", self.path, self.line)
    }
}

/// Read `path` as imapd (`@include`, `\` continuations, empty values refused) or libsasl2
/// (lib/config.c) would: `key: value`, `#` comments, keys of `[A-Za-z0-9_-]` lower-cased,
/// values trimmed.
pub(super) fn read_conf(
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
pub(super) fn names_for(kind: Kind, service: &str, key: &str) -> Vec<String> {
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
pub(super) struct Options {
    pub(super) kind: Kind,
    pub(super) values: BTreeMap<&'static str, (String, Origin)>,
}

impl Options {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    /// How an admin writes option `key` in this kind of file.
    pub(super) fn spelled(&self, key: &str) -> String {
        match self.kind {
            Kind::SaslApp => key.to_owned(),
            Kind::Imapd | Kind::OverridesOnly => format!("sasl_{key}"),
        }
    }
}

/// The config parse reads options from the effective table and files from the file system,
/// exactly as the plugin's [`SystemSources`] does.
pub(super) struct CheckSources<'a>(pub(super) &'a Options);

impl Sources for CheckSources<'_> {
    fn option(&self, key: &str) -> Option<String> {
        self.0.values.get(key).map(|(v, _)| v.clone())
    }

    fn read_file(&self, path: &Path) -> io::Result<FileData> {
        SystemSources(|_: &str| None).read_file(path)
    }
}

pub(super) fn read_options(input: &Input, steps: &mut Vec<Step>) -> Result<Options, InputError> {
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

pub(super) fn stray_key(kind: Kind, service: &str, l: &Line, steps: &mut Vec<Step>) {
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
pub(super) const SECRET_WORDS: [&str; 6] = ["pw", "pass", "secret", "token", "cred", "key"];

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
pub(super) fn redact_urls(value: &str) -> String {
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

pub(super) fn option_rows(opts: &Options) -> Vec<OptionRow> {
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

/// reader behind ldapbind-check and ldapbind-authd. The steps are what reading found.
pub(super) fn load(input: &Input) -> Result<(Options, Vec<Step>), InputError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
