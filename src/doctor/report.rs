//! The report: what each step found, as the text people read (and, in json.rs, as JSON).

use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Message;
use crate::error::Error;

/// Title of the section with the `--password-stdin` check.
pub(super) const PASSWORD: &str = "password";

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub status: Status,
    pub text: String,
    pub fix: Option<String>,
    /// What later checks find this step by (never by its words); not shown.
    #[serde(skip)]
    pub(super) marks: Vec<Mark>,
}

/// What a step is, for the checks that rewrite it once the kind of directory is known
/// (directory.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    /// The entry has no password the service account can read.
    NoPassword,
    /// The fix is to check passwords through ldapbind-authd ([`super::options::authd_fix`]).
    AuthdFix,
    /// The service account sees no entry below the search base.
    SeesNothing,
}

impl Step {
    fn new(status: Status, text: impl Into<String>, fix: Option<String>) -> Step {
        Step { status, text: text.into(), fix, marks: Vec::new() }
    }
    pub(super) fn ok(text: impl Into<String>) -> Step {
        Step::new(Status::Ok, text, None)
    }
    pub(super) fn note(text: impl Into<String>) -> Step {
        Step::new(Status::Note, text, None)
    }
    pub(super) fn skipped(text: impl Into<String>) -> Step {
        Step::new(Status::Skipped, text, None)
    }
    pub(super) fn problem(text: impl Into<String>, fix: impl Into<String>) -> Step {
        Step::new(Status::Problem, text, Some(fix.into()))
    }
    pub(super) fn marked(mut self, mark: Mark) -> Step {
        self.marks.push(mark);
        self
    }
    pub(super) fn is(&self, mark: Mark) -> bool {
        self.marks.contains(&mark)
    }
    /// A problem from one of the plugin's runtime errors: what it says, and its own fix or else
    /// `fallback_fix`.
    pub(super) fn from_error(e: &Error, fallback_fix: &str) -> Step {
        Step::from_parts(problem_and_fix(e), fallback_fix)
    }
    /// A problem and its fix, or else `fallback_fix`.
    pub(super) fn from_parts((text, fix): (String, Option<String>), fallback_fix: &str) -> Step {
        Step::problem(text, fix.unwrap_or_else(|| fallback_fix.to_owned()))
    }
    /// A problem from one of the configuration's messages (config.rs, tls.rs, uri.rs, filter.rs):
    /// its problem, and its fix or else `see sasl2.conf.example`.
    pub(super) fn from_config(m: &Message) -> Step {
        Step::from_parts((m.problem.clone(), m.fix.clone()), "see sasl2.conf.example")
    }
}

/// The one place the doctor takes a plugin error apart into its problem and its fix: from the
/// error's values, never from its text.
pub(super) fn problem_and_fix(e: &Error) -> (String, Option<String>) {
    (e.problem(), e.fix())
}

/// A titled group of steps: "options", "server ldap://…", "user search", ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// In JSON as in the text report: `FILE:LINE KEY`, `-o` or `default`.
impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One effective option (passwords masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionRow {
    pub key: String,
    pub value: String,
    #[serde(rename = "from")]
    pub origin: Origin,
}

/// The user search as the plugin sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchInfo {
    pub base: String,
    pub scope: String,
    pub filter: String,
    /// Entries read (the plugin stops reading after a few: more than one is ambiguous).
    pub entries: usize,
    pub dns: Vec<String>,
}

/// One password-like property of the user's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyRow {
    /// The SASL property (`userPassword`).
    pub property: String,
    /// The LDAP attribute it is read from (`sasl_ldapdb_attr_map`).
    pub attribute: String,
    /// One per value: `cleartext`, `{SSHA}`, `SCRAM-SHA-256`, `present`.
    pub formats: Vec<String>,
    /// Values the plugin handed to libsasl2.
    #[serde(rename = "handed_to_libsasl2")]
    pub handed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MechRow {
    pub name: &'static str,
    pub status: MechStatus,
    pub why: String,
}

/// Everything `ldapbind-check` found out, in report order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub user: String,
    /// `imapd.conf (service imap)`, `SASL application config`, or `-o only`.
    pub source: String,
    pub options: Vec<OptionRow>,
    /// options, servers, user search, canonical name, properties, password.
    pub sections: Vec<Section>,
    pub search: Option<SearchInfo>,
    pub dn: Option<String>,
    #[serde(rename = "canonical_name")]
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

    pub(super) fn mechanism_table(&self) -> String {
        let mut out = String::from("\nmechanisms\n");
        for m in &self.mechanisms {
            let _ = writeln!(out, "  {:<14} {:<9} {}", m.name, m.status.as_str(), m.why);
        }
        out
    }
}

pub(super) fn respell_for_sasl_app(report: &mut Report) {
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
