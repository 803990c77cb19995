//! Which SASL mechanisms can log the user in, from what the lookup found (SASL-ABI §7).

use super::conf::Options;
use super::report::{MechRow, MechStatus};
use crate::core::Unusable;
use crate::state::Selection;

/// The mechanisms the report judges, in the order shown.
const MECHANISMS: [&str; 6] = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];

/// What the user's entry and the plugin's lookup amount to, for the mechanism table.
#[derive(Default)]
pub(super) struct Secrets {
    /// Why nothing is known about the user (the config, the connection or the search failed).
    pub(super) blocked: Option<String>,
    pub(super) clear: bool,
    /// Formats of the userPassword values in the entry.
    pub(super) user_password: Vec<String>,
    pub(super) scram: Vec<String>,
    pub(super) plain_secret: bool,
    pub(super) cram_secret: bool,
    pub(super) digest_secret: bool,
    /// What refuses the account, to follow "the account" (`is locked: nsAccountLock is true ...`).
    pub(super) refused: Option<String>,
    /// No cleartext password, but a bind as the user accepted the typed one (what
    /// ldapbind-authd does for `pwcheck_method: saslauthd`).
    pub(super) bind_ok: bool,
}

impl Secrets {
    /// Why a mechanism that needs a cleartext userPassword cannot have one.
    pub(super) fn why_no_clear(&self) -> String {
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

pub(super) fn mechanisms(opts: &Options, selection: &Selection, s: &Secrets) -> Vec<MechRow> {
    let mech_list =
        opts.get("mech_list").map(|l| l.split_ascii_whitespace().map(str::to_ascii_uppercase).collect::<Vec<_>>());
    let pwcheck: Vec<String> =
        opts.get("pwcheck_method").unwrap_or("auxprop").split_ascii_whitespace().map(str::to_ascii_lowercase).collect();
    // As the plugin reads it (state.rs): libsasl2 asks ldapbind when auxprop_plugin names it or is unset.
    let asked = selection.auxprop_unset || selection.auxprop_named;
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

/// The [`Unusable`] a format of [`super::simulate::value_format`] stands for.
pub(super) fn unusable_format(format: &str) -> Option<Unusable> {
    Unusable::ALL.into_iter().find(|u| u.format() == format)
}
