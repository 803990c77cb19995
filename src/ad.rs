//! What ldapbind knows about Active Directory (and Samba's AD DC): how its root DSE identifies
//! it, the bind-name forms it accepts besides a DN, and the settings that work with it. Pure
//! functions; the account-state codes (`data 52e`, `775`, ...) live with the account states.

/// `supportedCapabilities` value LDAP_CAP_ACTIVE_DIRECTORY_OID: an AD domain controller
/// (Samba's included).
pub const CAP_ACTIVE_DIRECTORY: &str = "1.2.840.113556.1.4.800";
/// `supportedCapabilities` value LDAP_CAP_ACTIVE_DIRECTORY_ADAM_OID: AD LDS.
pub const CAP_ACTIVE_DIRECTORY_LDS: &str = "1.2.840.113556.1.4.1851";

/// The user filter that finds an AD account by its logon name (`jdoe`) or its UPN
/// (`jdoe@example.com`).
pub const FILTER: &str = "(|(sAMAccountName=%U)(userPrincipalName=%u))";
/// The attribute holding the account name, for `sasl_ldapdb_canon_attr`.
pub const CANON_ATTR: &str = "sAMAccountName";

/// Whether a root DSE with these attributes (name, values; names in any case) is Active
/// Directory's: the AD capability OIDs in `supportedCapabilities`, or the AD-only
/// `forestFunctionality` / `isGlobalCatalogReady`.
pub fn is_active_directory<'a>(root_dse: impl IntoIterator<Item = (&'a str, &'a [String])>) -> bool {
    root_dse.into_iter().any(|(name, values)| {
        (name.eq_ignore_ascii_case("supportedCapabilities")
            && values.iter().any(|v| v == CAP_ACTIVE_DIRECTORY || v == CAP_ACTIVE_DIRECTORY_LDS))
            || ((name.eq_ignore_ascii_case("forestFunctionality") || name.eq_ignore_ascii_case("isGlobalCatalogReady"))
                && !values.is_empty())
    })
}

/// The bind-name forms AD accepts for a simple bind besides a DN: a user principal name
/// `user@domain` or a down-level logon name `DOMAIN\user` (one `@` or one `\`, text on both
/// sides, no `=`, no white space or control characters). A bare name is none of them.
pub fn is_bind_name(id: &str) -> bool {
    if id.contains('=') || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let two_parts = |sep: char| {
        let mut parts = id.split(sep);
        matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
    };
    match (id.contains('@'), id.contains('\\')) {
        (true, false) => two_parts('@'),
        (false, true) => two_parts('\\'),
        _ => false,
    }
}

/// `DC=example,DC=com` -> `example.com`: the DNS domain of a naming context, for examples of
/// `user@domain`; `None` when the DN is not all `DC=` components.
pub fn dns_domain(naming_context: &str) -> Option<String> {
    let labels: Option<Vec<&str>> = naming_context
        .split(',')
        .map(|rdn| {
            let (k, v) = rdn.trim().split_once('=')?;
            (k.trim().eq_ignore_ascii_case("dc") && !v.trim().is_empty()).then(|| v.trim())
        })
        .collect();
    labels.filter(|l| !l.is_empty()).map(|l| l.join(".").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_names() {
        for ok in ["svc-cyrus@example.test", "EXAMPLE\\svc-cyrus", "a@b", "x\\y"] {
            assert!(is_bind_name(ok), "{ok}");
        }
        for bad in [
            "cyrus",
            "",
            "@example.test",
            "cyrus@",
            "\\cyrus",
            "EXAMPLE\\",
            "a@b@c",
            "a\\b\\c",
            "a@b\\c",
            "cn=cyrus,dc=x",
            "cyrus @example.test",
            "cy\trus@x",
        ] {
            assert!(!is_bind_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn root_dse_detection() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let ad = v(&[CAP_ACTIVE_DIRECTORY, "1.2.840.113556.1.4.1670"]);
        assert!(is_active_directory([("supportedCapabilities", ad.as_slice())]));
        assert!(is_active_directory([("SUPPORTEDCAPABILITIES", v(&[CAP_ACTIVE_DIRECTORY_LDS]).as_slice())]));
        assert!(is_active_directory([("forestFunctionality", v(&["4"]).as_slice())]));
        assert!(is_active_directory([("isGlobalCatalogReady", v(&["TRUE"]).as_slice())]));
        // slapd's root DSE.
        let slapd = [
            ("supportedControl", v(&["1.3.6.1.4.1.4203.1.9.1.1"])),
            ("namingContexts", v(&["dc=users,dc=local"])),
            ("supportedCapabilities", v(&[])),
        ];
        assert!(!is_active_directory(slapd.iter().map(|(k, v)| (*k, v.as_slice()))));
        assert!(!is_active_directory([("forestFunctionality", v(&[]).as_slice())]));
    }

    #[test]
    fn dns_domains() {
        assert_eq!(dns_domain("DC=example,DC=test").as_deref(), Some("example.test"));
        assert_eq!(dns_domain("dc=Corp, dc=Example,dc=com").as_deref(), Some("corp.example.com"));
        assert_eq!(dns_domain("OU=x,DC=example,DC=test"), None);
        assert_eq!(dns_domain(""), None);
    }
}
