//! Account state: whether the directory would refuse this account a login, read from the
//! attributes each directory keeps it in ([`state`], for the auxprop path, which never binds as
//! the user) or from what the server says to a bind as the user ([`bind_outcome`]). Pure: the
//! clock is passed in, nothing is read or logged here.

use std::time::{SystemTime, UNIX_EPOCH};

use ldap3::controls::RawControl;

use crate::ldap::entry::Entry;

/// Why a directory refuses an account, in the order they are reported (the first one found in
/// this order is the one a refusal names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Locked by an administrator (389-ds `nsAccountLock`, ppolicy's permanent lock).
    Locked,
    /// Disabled (Active Directory, glauth).
    Disabled,
    /// Locked out by the password policy after failed binds.
    LockedOut,
    /// The account itself expired (`accountExpires`, `shadowExpire`).
    Expired,
    /// The password expired.
    PasswordExpired,
    /// The password was reset and must be changed before anything else.
    MustChange,
}

impl Condition {
    /// What the account is, to follow "user NAME (DN)".
    pub fn says(self) -> &'static str {
        match self {
            Condition::Locked => "is locked",
            Condition::Disabled => "is disabled",
            Condition::LockedOut => "is locked out after failed password attempts",
            Condition::Expired => "has expired",
            Condition::PasswordExpired => "has an expired password",
            Condition::MustChange => "must change its password (it was reset)",
        }
    }

    /// One or two words for a report column.
    pub fn word(self) -> &'static str {
        match self {
            Condition::Locked => "locked",
            Condition::Disabled => "disabled",
            Condition::LockedOut => "locked out",
            Condition::Expired => "expired",
            Condition::PasswordExpired => "password expired",
            Condition::MustChange => "must change password",
        }
    }

    /// A state of the password rather than of the account: `ldapdb_allow_expired_password`
    /// lets such an account log in.
    pub fn is_password(self) -> bool {
        matches!(self, Condition::PasswordExpired | Condition::MustChange)
    }

    /// What an administrator does about it for a user's account.
    pub fn user_fix(self) -> &'static str {
        match self {
            Condition::Locked | Condition::Disabled => "enable the account in the directory if the user should log in",
            Condition::LockedOut => {
                "unlock the account in the directory (or wait for the policy's lockout to end and have the user \
                 bind once) if the user should log in"
            }
            Condition::Expired => "extend the account's expiry date in the directory if the user should log in",
            Condition::PasswordExpired | Condition::MustChange => {
                "the user must set a new password in the directory, or set sasl_ldapdb_allow_expired_password: yes \
                 to let such passwords log in"
            }
        }
    }

    /// What an administrator does about it for the service account (`ldapdb_id`).
    pub fn service_fix(self) -> &'static str {
        match self {
            Condition::Locked | Condition::Disabled | Condition::LockedOut | Condition::Expired => {
                "unlock or re-enable it in the directory and exempt it from the password policy (lockout and \
                 expiry), or set sasl_ldapdb_id to another account"
            }
            Condition::PasswordExpired | Condition::MustChange => {
                "set a new password for it in the directory (and in sasl_ldapdb_pw or sasl_ldapdb_pw_file), and \
                 exempt it from the password policy's expiry and must-change rules"
            }
        }
    }
}

/// One attribute that says the directory refuses the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub condition: Condition,
    /// The attribute as ldapbind asks for it (`nsAccountLock`).
    pub attr: &'static str,
    /// Its value as stored (state attributes are short printable strings).
    pub value: String,
    /// Which directory uses it and what the value means.
    pub meaning: &'static str,
}

impl Finding {
    /// `nsAccountLock is true (389-ds: locked by an administrator)`.
    pub fn evidence(&self) -> String {
        format!("{} is {} ({})", self.attr, self.value, self.meaning)
    }
}

/// Everything the entry says against a login, most serious first; empty when nothing does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    pub findings: Vec<Finding>,
}

impl AccountState {
    /// The finding that refuses a login, if any: with `allow_expired_password`, an expired or
    /// must-change password alone does not.
    pub fn refusal(&self, allow_expired_password: bool) -> Option<&Finding> {
        self.findings.iter().find(|f| !(allow_expired_password && f.condition.is_password()))
    }
}

/// ppolicy: locked until an administrator unlocks it.
const PPOLICY_PERMANENT: &str = "000001010000Z";
/// 389-ds: `passwordExpirationTime` of a password that must be changed, `accountUnlockTime` of a
/// lockout that never ends by itself.
const DS389_EPOCH: &str = "19700101000000Z";
/// AD's `accountExpires` for "never" (besides 0).
const AD_NEVER: i64 = i64::MAX;
/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_TO_UNIX: i64 = 11_644_473_600;
/// AD `userAccountControl` bits.
const UAC_ACCOUNTDISABLE: i64 = 0x2;
const UAC_LOCKOUT: i64 = 0x10;
const UAC_PASSWORD_EXPIRED: i64 = 0x80_0000;

/// The attributes [`state`] reads; asked for with every user search.
pub const ATTRS: &[&str] = &[
    "pwdAccountLockedTime",
    "pwdReset",
    "nsAccountLock",
    "passwordExpirationTime",
    "accountUnlockTime",
    "userAccountControl",
    "accountExpires",
    "lockoutTime",
    "pwdLastSet",
    "accountStatus",
    "shadowExpire",
];

/// What `entry` says about its account at `now`. Attributes that are absent, or whose values
/// ldapbind cannot read as their directory writes them, say nothing.
pub fn state(entry: &Entry, now: SystemTime) -> AccountState {
    let now = unix_seconds(now);
    let mut findings = Vec::new();
    for &attr in ATTRS {
        for raw in entry.values(attr) {
            let Ok(value) = std::str::from_utf8(raw) else { continue };
            let value = value.trim();
            if let Some((condition, meaning)) = judge(attr, value, now) {
                findings.push(Finding { condition, attr, value: value.to_owned(), meaning });
            }
        }
    }
    findings.sort_by_key(|f| f.condition);
    AccountState { findings }
}

/// What one value of one state attribute means at `now` (Unix seconds).
fn judge(attr: &str, value: &str, now: i64) -> Option<(Condition, &'static str)> {
    let yes = value.eq_ignore_ascii_case("true");
    match attr {
        "pwdAccountLockedTime" if value == PPOLICY_PERMANENT => {
            Some((Condition::Locked, "OpenLDAP ppolicy: locked by an administrator until unlocked"))
        }
        // The policy's pwdLockoutDuration is not in the entry: a lock time that may have ended
        // still counts until a bind or an administrator clears it.
        "pwdAccountLockedTime" => generalized_time(value)
            .map(|_| (Condition::LockedOut, "OpenLDAP ppolicy: locked at that time after failed binds")),
        "pwdReset" if yes => {
            Some((Condition::MustChange, "password policy (OpenLDAP ppolicy, 389-ds): reset by an administrator"))
        }
        "nsAccountLock" if yes => Some((Condition::Locked, "389-ds: locked by an administrator")),
        "passwordExpirationTime" if value == DS389_EPOCH => {
            Some((Condition::MustChange, "389-ds: reset by an administrator, must be changed"))
        }
        "passwordExpirationTime" => {
            generalized_time(value).filter(|&t| t <= now).map(|_| (Condition::PasswordExpired, "389-ds: in the past"))
        }
        "accountUnlockTime" if value == DS389_EPOCH => {
            Some((Condition::LockedOut, "389-ds: locked after failed binds until an administrator unlocks it"))
        }
        "accountUnlockTime" => generalized_time(value)
            .filter(|&t| t > now)
            .map(|_| (Condition::LockedOut, "389-ds: locked after failed binds until that time")),
        "userAccountControl" => {
            let uac: i64 = value.parse().ok()?;
            if uac & UAC_ACCOUNTDISABLE != 0 {
                Some((Condition::Disabled, "Active Directory: bit 0x2 ACCOUNTDISABLE"))
            } else if uac & UAC_LOCKOUT != 0 {
                Some((Condition::LockedOut, "Active Directory: bit 0x10 LOCKOUT"))
            } else if uac & UAC_PASSWORD_EXPIRED != 0 {
                Some((Condition::PasswordExpired, "Active Directory: bit 0x800000 PASSWORD_EXPIRED"))
            } else {
                None
            }
        }
        "accountExpires" => {
            let ft: i64 = value.parse().ok()?;
            (ft != 0 && ft != AD_NEVER && ft / 10_000_000 - FILETIME_TO_UNIX <= now)
                .then_some((Condition::Expired, "Active Directory: a time in the past"))
        }
        "lockoutTime" => {
            let t: i64 = value.parse().ok()?;
            (t != 0).then_some((Condition::LockedOut, "Active Directory: locked at that time after failed binds"))
        }
        "pwdLastSet" => {
            (value == "0").then_some((Condition::MustChange, "Active Directory: must change at next logon"))
        }
        "accountStatus" if value.eq_ignore_ascii_case("inactive") => {
            Some((Condition::Disabled, "glauth: the account is inactive"))
        }
        // shadow(5): days since 1970-01-01; -1 (or empty) never. Like pam_unix, the account is
        // expired from that day on.
        "shadowExpire" => {
            let days: i64 = value.parse().ok()?;
            (days >= 0 && now.div_euclid(86_400) >= days)
                .then_some((Condition::Expired, "posix shadowExpire: that day, in days since 1970, has come"))
        }
        _ => None,
    }
}

/// The password policy response control (draft-behera-ldap-password-policy; OpenLDAP
/// ppolicy, 389-ds): sent with every bind as the user, since servers answer only when asked.
pub const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";
/// Netscape's password-expired response control (389-ds, Oracle/Sun DS), sent unasked.
pub const NETSCAPE_EXPIRED_OID: &str = "2.16.840.1.113730.3.4.4";

/// What a bind as the user amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    Accepted,
    WrongPassword,
    /// The directory refuses the account; `said` is how it said so (result code, its
    /// diagnostic text, the control).
    Refused {
        condition: Condition,
        said: String,
    },
    /// Anything else (a server problem): the caller's own handling.
    Other,
}

/// The meaning of a bind result: its code, its diagnostic text and its response controls.
pub fn bind_outcome(rc: u32, text: &str, ctrls: &[RawControl]) -> BindOutcome {
    let diag = if text.is_empty() { String::new() } else { format!(": {text}") };
    let refused = |condition, said: String| BindOutcome::Refused { condition, said };
    let ctrl = |oid: &str| ctrls.iter().find(|c| c.ctype == oid);
    if let Some(error) = ctrl(PPOLICY_OID).and_then(|c| ppolicy_error(c.val.as_deref()?)) {
        let (condition, name) = match error {
            0 => (Condition::PasswordExpired, "passwordExpired"),
            // 389-ds says accountLocked both for nsAccountLock (53) and for a lockout after
            // failed binds (19 "Exceed password retry limit").
            1 if rc == 19 => (Condition::LockedOut, "accountLocked"),
            1 => (Condition::Locked, "accountLocked"),
            2 => (Condition::MustChange, "changeAfterReset"),
            // The others answer password changes, not binds.
            _ => return plain(rc),
        };
        return refused(condition, format!("result {rc}{diag}, password policy control {PPOLICY_OID} error {name}"));
    }
    if ctrl(NETSCAPE_EXPIRED_OID).is_some() && matches!(rc, 0 | 49) {
        // 389-ds: 0 + the control after an administrator's reset or on a grace login (every
        // later operation is refused with 53); 49 + the control once the password expired.
        let condition = if rc == 0 { Condition::MustChange } else { Condition::PasswordExpired };
        return refused(condition, format!("result {rc}{diag}, password-expired control {NETSCAPE_EXPIRED_OID}"));
    }
    let lower = text.to_ascii_lowercase();
    match rc {
        // Active Directory: "80090308: LdapErr: DSID-..., comment: AcceptSecurityContext error, data 775, v4563".
        49 => match ad_data(&lower).as_deref() {
            Some("532") => refused(Condition::PasswordExpired, format!("result 49{diag} (AD data 532)")),
            Some("533") => refused(Condition::Disabled, format!("result 49{diag} (AD data 533)")),
            Some("701") => refused(Condition::Expired, format!("result 49{diag} (AD data 701)")),
            Some("773") => refused(Condition::MustChange, format!("result 49{diag} (AD data 773)")),
            Some("775") => refused(Condition::LockedOut, format!("result 49{diag} (AD data 775)")),
            _ => BindOutcome::WrongPassword,
        },
        // 389-ds: "Account inactivated. Contact system administrator."
        53 if lower.contains("inactivated") => {
            refused(Condition::Locked, format!("result 53 unwillingToPerform{diag}"))
        }
        // 389-ds: "Exceed password retry limit. Please try later."
        19 if lower.contains("retry limit") => {
            refused(Condition::LockedOut, format!("result 19 constraintViolation{diag}"))
        }
        _ => plain(rc),
    }
}

/// The request control that makes a server say why it refuses a bind (non-critical: servers
/// without a password policy ignore it).
pub fn ppolicy_request() -> RawControl {
    RawControl { ctype: PPOLICY_OID.to_owned(), crit: false, val: None }
}

fn plain(rc: u32) -> BindOutcome {
    match rc {
        0 => BindOutcome::Accepted,
        49 => BindOutcome::WrongPassword,
        _ => BindOutcome::Other,
    }
}

/// The `data XXX` code of an AD bind diagnostic (lower-cased text).
fn ad_data(lower: &str) -> Option<String> {
    let at = lower.find("data ")? + 5;
    let code: String = lower[at..].chars().take_while(char::is_ascii_hexdigit).collect();
    (!code.is_empty()).then_some(code)
}

/// The `error` field of a PasswordPolicyResponseValue (`SEQUENCE { warning [0] ... OPTIONAL,
/// error [1] ENUMERATED OPTIONAL }`).
fn ppolicy_error(ber: &[u8]) -> Option<u8> {
    let (tag, mut rest, _) = tlv(ber)?;
    if tag != 0x30 {
        return None;
    }
    while !rest.is_empty() {
        let (tag, content, next) = tlv(rest)?;
        if tag == 0x81 {
            return match content {
                [v] => Some(*v),
                _ => None,
            };
        }
        rest = next;
    }
    None
}

/// One BER element: (tag, contents, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b.get(2..2 + n)?.iter().fold(0usize, |l, &d| l << 8 | usize::from(d));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, b.get(end..)?))
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// An LDAP GeneralizedTime (`YYYYMMDDHH[MM[SS]][.frac](Z|±HHMM)`) as Unix seconds.
pub fn generalized_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day, hour) = (num(0, 4)?, num(4, 2)?, num(6, 2)?, num(8, 2)?);
    let mut i = 10;
    let mut fields = [0i64; 2];
    for f in &mut fields {
        match num(i, 2) {
            Some(v) => {
                *f = v;
                i += 2;
            }
            None => break,
        }
    }
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 5 => {
            let o = num(i + 1, 2)? * 3600 + num(i + 3, 2)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let [minute, second] = fields;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
