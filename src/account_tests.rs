use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// 2026-06-01T00:00:00Z, the clock of every test here.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(generalized_time("20260601000000Z").unwrap() as u64)
}

fn entry(attrs: &[(&str, &str)]) -> Entry {
    Entry {
        dn: "uid=u,dc=example,dc=com".into(),
        attrs: attrs.iter().map(|(n, v)| ((*n).to_owned(), vec![v.as_bytes().to_vec()])).collect(),
    }
}

/// The condition and attribute of the refusal `attrs` make, without the allowance.
fn refused(attrs: &[(&str, &str)]) -> Option<(Condition, &'static str)> {
    state(&entry(attrs), now()).refusal(false).map(|f| (f.condition, f.attr))
}

#[test]
fn generalized_times_read_like_ldap_writes_them() {
    assert_eq!(generalized_time("19700101000000Z"), Some(0));
    assert_eq!(generalized_time("19700102000000Z"), Some(86_400));
    assert_eq!(generalized_time("2026060100Z"), generalized_time("20260601000000Z"));
    assert_eq!(generalized_time("20260601000000.123456Z"), generalized_time("20260601000000Z"));
    assert_eq!(generalized_time("20260601020000+0200"), generalized_time("20260601000000Z"));
    assert_eq!(generalized_time("20000229000000Z"), Some(951_782_400));
    for bad in ["", "2026", "20261301000000Z", "20260601000000", "2026060100000xZ", "20260601000000Z junk"] {
        assert_eq!(generalized_time(bad), None, "{bad:?}");
    }
}

#[test]
fn openldap_ppolicy() {
    assert_eq!(
        refused(&[("pwdAccountLockedTime", "000001010000Z")]),
        Some((Condition::Locked, "pwdAccountLockedTime"))
    );
    // Any other lock time: locked out by failed binds (the lockout duration is not in the entry).
    assert_eq!(
        refused(&[("pwdAccountLockedTime", "20260531235900Z")]),
        Some((Condition::LockedOut, "pwdAccountLockedTime"))
    );
    assert_eq!(refused(&[("pwdReset", "TRUE")]), Some((Condition::MustChange, "pwdReset")));
    assert_eq!(refused(&[("pwdReset", "FALSE")]), None);
    assert_eq!(refused(&[("pwdAccountLockedTime", "yesterday")]), None, "an unreadable value changes nothing");
}

#[test]
fn ds389() {
    assert_eq!(refused(&[("nsAccountLock", "true")]), Some((Condition::Locked, "nsAccountLock")));
    assert_eq!(refused(&[("nsAccountLock", "TRUE")]), Some((Condition::Locked, "nsAccountLock")));
    assert_eq!(refused(&[("nsAccountLock", "false")]), None);
    assert_eq!(
        refused(&[("passwordExpirationTime", "20260531000000Z")]),
        Some((Condition::PasswordExpired, "passwordExpirationTime"))
    );
    assert_eq!(refused(&[("passwordExpirationTime", "20260602000000Z")]), None);
    assert_eq!(
        refused(&[("passwordExpirationTime", "19700101000000Z")]),
        Some((Condition::MustChange, "passwordExpirationTime"))
    );
    assert_eq!(refused(&[("accountUnlockTime", "20260601001000Z")]), Some((Condition::LockedOut, "accountUnlockTime")));
    assert_eq!(refused(&[("accountUnlockTime", "19700101000000Z")]), Some((Condition::LockedOut, "accountUnlockTime")));
    assert_eq!(refused(&[("accountUnlockTime", "20260531000000Z")]), None, "a lockout that ended");
}

#[test]
fn active_directory() {
    assert_eq!(refused(&[("userAccountControl", "514")]), Some((Condition::Disabled, "userAccountControl")));
    assert_eq!(refused(&[("userAccountControl", "528")]), Some((Condition::LockedOut, "userAccountControl")));
    assert_eq!(refused(&[("userAccountControl", "8389120")]), Some((Condition::PasswordExpired, "userAccountControl")));
    assert_eq!(refused(&[("userAccountControl", "512")]), None);
    assert_eq!(refused(&[("userAccountControl", "66048")]), None, "DONT_EXPIRE_PASSWORD + NORMAL_ACCOUNT");
    // FILETIME: 100 ns since 1601. 2026-05-31 is in the past, 2026-06-02 in the future.
    let filetime = |t: &str| ((generalized_time(t).unwrap() + 11_644_473_600) * 10_000_000).to_string();
    let past = filetime("20260531000000Z");
    assert_eq!(refused(&[("accountExpires", &past)]), Some((Condition::Expired, "accountExpires")));
    assert_eq!(refused(&[("accountExpires", &filetime("20260602000000Z"))]), None);
    assert_eq!(refused(&[("accountExpires", "0")]), None);
    assert_eq!(refused(&[("accountExpires", "9223372036854775807")]), None);
    assert_eq!(refused(&[("lockoutTime", "133000000000000000")]), Some((Condition::LockedOut, "lockoutTime")));
    assert_eq!(refused(&[("lockoutTime", "0")]), None);
    assert_eq!(refused(&[("pwdLastSet", "0")]), Some((Condition::MustChange, "pwdLastSet")));
    assert_eq!(refused(&[("pwdLastSet", "133000000000000000")]), None);
}

#[test]
fn glauth_and_posix() {
    assert_eq!(refused(&[("accountStatus", "inactive")]), Some((Condition::Disabled, "accountStatus")));
    assert_eq!(refused(&[("accountStatus", "active")]), None);
    let today = generalized_time("20260601000000Z").unwrap() / 86_400;
    assert_eq!(refused(&[("shadowExpire", &today.to_string())]), Some((Condition::Expired, "shadowExpire")));
    assert_eq!(refused(&[("shadowExpire", &(today + 1).to_string())]), None);
    assert_eq!(refused(&[("shadowExpire", "-1")]), None);
    assert_eq!(refused(&[("shadowExpire", "")]), None);
}

#[test]
fn the_most_serious_finding_is_named_and_the_allowance_covers_passwords_only() {
    let s = state(&entry(&[("pwdReset", "TRUE"), ("nsAccountLock", "true")]), now());
    assert_eq!(s.findings.len(), 2);
    assert_eq!(s.refusal(false).map(|f| f.condition), Some(Condition::Locked));
    assert_eq!(s.refusal(true).map(|f| f.condition), Some(Condition::Locked));
    let pw = state(&entry(&[("pwdReset", "TRUE"), ("passwordExpirationTime", "20200101000000Z")]), now());
    assert_eq!(pw.refusal(false).map(|f| f.condition), Some(Condition::PasswordExpired));
    assert_eq!(pw.refusal(true), None);
    assert_eq!(state(&entry(&[("uid", "u")]), now()), AccountState::default());
    let f = s.refusal(false).unwrap();
    assert_eq!(f.evidence(), "nsAccountLock is true (389-ds: locked by an administrator)");
}

#[test]
fn state_attribute_names_are_matched_case_insensitively() {
    assert_eq!(refused(&[("nsaccountlock", "true")]), Some((Condition::Locked, "nsAccountLock")));
}

fn ctrl(oid: &str, val: Option<&[u8]>) -> RawControl {
    RawControl { ctype: oid.into(), crit: false, val: val.map(<[u8]>::to_vec) }
}

fn condition(o: BindOutcome) -> Option<Condition> {
    match o {
        BindOutcome::Refused { condition, .. } => Some(condition),
        _ => None,
    }
}

#[test]
fn bind_results_of_389ds() {
    let locked = bind_outcome(53, "Account inactivated. Contact system administrator.", &[]);
    assert_eq!(
        locked,
        BindOutcome::Refused {
            condition: Condition::Locked,
            said: "result 53 unwillingToPerform: Account inactivated. Contact system administrator.".into()
        }
    );
    assert_eq!(
        condition(bind_outcome(19, "Exceed password retry limit. Please try later.", &[])),
        Some(Condition::LockedOut)
    );
    let expired = [ctrl(NETSCAPE_EXPIRED_OID, Some(b"0"))];
    assert_eq!(condition(bind_outcome(49, "password expired!", &expired)), Some(Condition::PasswordExpired));
    assert_eq!(condition(bind_outcome(0, "", &expired)), Some(Condition::MustChange), "0 + the control is no success");
    assert_eq!(bind_outcome(53, "something else", &[]), BindOutcome::Other);
}

/// What 389-ds 2.3.1 (Debian 12) answered, byte for byte, to binds that asked for the password
/// policy control: its BER uses 4-byte long-form lengths.
#[test]
fn bind_results_as_389ds_sends_them() {
    let pp = |n: u8| ctrl(PPOLICY_OID, Some(&[0x30, 0x84, 0x00, 0x00, 0x00, 0x03, 0x81, 0x01, n]));
    let ns = ctrl(NETSCAPE_EXPIRED_OID, Some(b"0"));
    let locked = bind_outcome(53, "Account inactivated. Contact system administrator.", &[pp(1)]);
    assert_eq!(condition(locked), Some(Condition::Locked));
    let lockout = bind_outcome(19, "Exceed password retry limit. Please try later.", &[pp(1)]);
    assert_eq!(condition(lockout), Some(Condition::LockedOut));
    let expired = bind_outcome(49, "password expired!", &[pp(0), ns.clone()]);
    assert_eq!(condition(expired), Some(Condition::PasswordExpired));
    assert_eq!(condition(bind_outcome(0, "", &[pp(2), ns.clone()])), Some(Condition::MustChange));
    assert_eq!(condition(bind_outcome(0, "", &[ns])), Some(Condition::MustChange), "without the request control");
    assert_eq!(bind_outcome(49, "", &[]), BindOutcome::WrongPassword);
}

#[test]
fn bind_results_with_the_ppolicy_control() {
    // SEQUENCE { error [1] ENUMERATED n }
    let error = |n: u8| [0x30, 0x03, 0x81, 0x01, n];
    assert_eq!(
        condition(bind_outcome(49, "", &[ctrl(PPOLICY_OID, Some(&error(0)))])),
        Some(Condition::PasswordExpired)
    );
    assert_eq!(condition(bind_outcome(49, "", &[ctrl(PPOLICY_OID, Some(&error(1)))])), Some(Condition::Locked));
    assert_eq!(condition(bind_outcome(0, "", &[ctrl(PPOLICY_OID, Some(&error(2)))])), Some(Condition::MustChange));
    // SEQUENCE { warning [0] { graceAuthNsRemaining [1] 2 } }: a grace login is a success.
    let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
    assert_eq!(bind_outcome(0, "", &[ctrl(PPOLICY_OID, Some(&grace))]), BindOutcome::Accepted);
    // The warning and the error, with a long-form length.
    let both = [0x30, 0x81, 0x08, 0xa0, 0x03, 0x80, 0x01, 0x05, 0x81, 0x01, 0x00];
    assert_eq!(condition(bind_outcome(49, "", &[ctrl(PPOLICY_OID, Some(&both))])), Some(Condition::PasswordExpired));
    // An empty control, garbage, or a truncated value are no answer.
    for bad in [&[][..], &[0x30][..], &[0x30, 0x05, 0x81][..], &[0x04, 0x03, 0x81, 0x01, 0x01][..]] {
        assert_eq!(bind_outcome(49, "", &[ctrl(PPOLICY_OID, Some(bad))]), BindOutcome::WrongPassword, "{bad:?}");
    }
    assert_eq!(bind_outcome(49, "", &[ctrl(PPOLICY_OID, None)]), BindOutcome::WrongPassword);
}

#[test]
fn bind_results_of_active_directory() {
    let ad = |data: &str| {
        format!("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {data}, v4563")
    };
    assert_eq!(bind_outcome(49, &ad("52e"), &[]), BindOutcome::WrongPassword);
    assert_eq!(bind_outcome(49, &ad("525"), &[]), BindOutcome::WrongPassword);
    assert_eq!(condition(bind_outcome(49, &ad("532"), &[])), Some(Condition::PasswordExpired));
    assert_eq!(condition(bind_outcome(49, &ad("533"), &[])), Some(Condition::Disabled));
    assert_eq!(condition(bind_outcome(49, &ad("701"), &[])), Some(Condition::Expired));
    assert_eq!(condition(bind_outcome(49, &ad("773"), &[])), Some(Condition::MustChange));
    let BindOutcome::Refused { said, .. } = bind_outcome(49, &ad("775"), &[]) else { panic!("775 is a lockout") };
    assert!(said.contains("AcceptSecurityContext error, data 775") && said.contains("AD data 775"), "{said}");
}

#[test]
fn plain_results() {
    assert_eq!(bind_outcome(0, "", &[]), BindOutcome::Accepted);
    assert_eq!(bind_outcome(49, "", &[]), BindOutcome::WrongPassword);
    assert_eq!(bind_outcome(51, "busy", &[]), BindOutcome::Other);
}

#[test]
fn a_refused_bind_offers_the_allowance_only_where_it_helps() {
    let refusal = |condition, bound| {
        crate::error::Error::bind_refusal("h:389", "uid=u", condition, "result x", bound).to_string()
    };
    let expired = refusal(Condition::PasswordExpired, false);
    assert!(expired.contains("it refuses binds with this one"), "{expired}");
    assert!(refusal(Condition::MustChange, true).contains("or set sasl_ldapdb_allow_expired_password: yes"));
    let locked = refusal(Condition::Locked, false);
    assert_eq!(
        locked,
        "the account uid=u is locked (LDAP server h:389 answered the bind as it with result x); enable the account \
         in the directory if the user should log in"
    );
}
