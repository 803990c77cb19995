//! The options' verdict beyond the plugin's own parse: libsasl2's options that decide whether
//! ldapbind is asked, the files the daemon must read, and the advice for passwords libsasl2
//! cannot check through auxprop.

use std::path::Path;

use super::conf::{Kind, Options};
use super::report::{Mark, Status, Step};
use super::{ConfFile, Input};
use crate::config::{Config, keys};
use crate::state::{PLUGIN_NAME, Selection, SelectionWarning};

pub(super) fn daemon_user(input: &Input) -> Option<(String, &'static str)> {
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
pub(super) fn current_user() -> Option<(u32, String)> {
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
pub(super) fn readable_by_daemon(input: &Input, opts: &Options, steps: &mut Vec<Step>) {
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
pub(super) fn library_checks(opts: &Options, selection: &Selection, config: Option<&Config>, steps: &mut Vec<Step>) {
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
    // The plugin's own warnings about the canonical name (state.rs), in its words.
    for w in selection.warnings(canon_attr, config.map(|c| c.filter.as_str())) {
        let mut step = Step::problem(w.problem(), w.fix());
        // Names only trimmed is a choice that works: a note, with how to get the directory's.
        if w == SelectionWarning::NamesOnlyTrimmed {
            step.status = Status::Note;
        }
        steps.push(step);
    }
    if let (None, false, Some(p)) = (canon_attr, selection.canon_named, &selection.canon_plugin) {
        if p.trim() != "INTERNAL" {
            steps.push(Step::note(format!(
                "{canon} is `{p}`: ldapbind-check cannot run that plugin and uses the name as typed"
            )));
        }
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

pub(super) fn uses_saslauthd(opts: &Options) -> bool {
    opts.get("pwcheck_method").is_some_and(|m| m.split_ascii_whitespace().any(|v| v.eq_ignore_ascii_case("saslauthd")))
}

/// What to do when libsasl2 cannot check a password through auxprop: the daemon that binds as
/// the user, never "give the service account read access".
pub(super) fn authd_fix(opts: &Options) -> String {
    format!(
        "{}; or store a cleartext userPassword or an authPassword (RFC 5803 SCRAM) readable by the service account",
        authd_lines(opts)
    )
}

/// A problem whose fix is ldapbind-authd ([`authd_fix`]), marked so.
pub(super) fn authd_problem(text: impl Into<String>, opts: &Options) -> Step {
    Step::problem(text, authd_fix(opts)).marked(Mark::AuthdFix)
}

/// How to check PLAIN/LOGIN passwords through ldapbind-authd, with the options as they are written.
pub(super) fn authd_lines(opts: &Options) -> String {
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

/// Who searches: `the service account DN`, or how it binds when it has no DN.
pub(super) fn service_account(config: &Config) -> String {
    match &config.bind {
        crate::config::Bind::Simple { dn, .. } => format!("the service account {dn}"),
        crate::config::Bind::External => "the service account (its SASL EXTERNAL identity)".to_owned(),
        crate::config::Bind::Anonymous => "an anonymous search (no sasl_ldapdb_id)".to_owned(),
    }
}
