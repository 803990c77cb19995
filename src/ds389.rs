//! What ldapbind knows about 389 Directory Server (Red Hat Directory Server, FreeIPA's
//! directory): how its root DSE and its password hashes identify it, and the ACI that lets the
//! service account read the users. Pure functions; its account states live with the others.

/// The operational attributes 389-ds keeps an account's state in (see [`crate::account`]):
/// an ACI with `targetattr="*"` does not cover them.
pub const STATE_ATTRS: [&str; 4] = ["nsAccountLock", "passwordExpirationTime", "accountUnlockTime", "pwdReset"];

/// Whether a root DSE with these attributes (name, values; names in any case) is 389-ds's:
/// `vendorName` "389 Project" or a `vendorVersion` "389-Directory/...".
pub fn is_389_ds<'a>(root_dse: impl IntoIterator<Item = (&'a str, &'a [String])>) -> bool {
    root_dse.into_iter().any(|(name, values)| {
        (name.eq_ignore_ascii_case("vendorName") && values.iter().any(|v| v.trim().starts_with("389 Project")))
            || (name.eq_ignore_ascii_case("vendorVersion")
                && values.iter().any(|v| v.trim().starts_with("389-Directory/")))
    })
}

/// Whether a userPassword scheme (as [`crate::password::hash_scheme`] spells it) is a default of
/// 389-ds: `{PBKDF2-SHA512}` (2.x) or `{PBKDF2_SHA256}` (1.4), the latter spelled by no other
/// server.
pub fn is_default_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("{PBKDF2-SHA512}") || scheme.eq_ignore_ascii_case("{PBKDF2_SHA256}")
}

/// The attribute names a filter template tests (`(|(uid=%u)(mail=%u))` -> uid, mail), in order,
/// each once.
pub fn filter_attributes(template: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in template.split('(').skip(1) {
        let name: String = item.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ';').collect();
        let rest = &item[name.len()..];
        let is_test = ["=", "~=", ">=", "<=", ":"].iter().any(|op| rest.starts_with(op));
        if !name.is_empty() && is_test && !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    out
}

/// An `aci:` value granting `who` (an LDAP URL such as `ldap:///cn=cyrus,dc=example,dc=com`)
/// read, search and compare on `attrs` under the entry it is added to.
pub fn read_aci(attrs: &[String], who: &str) -> String {
    format!(
        "(targetattr=\"{}\")(version 3.0; acl \"ldapbind service account\"; allow (read, search, compare) userdn=\"{who}\";)",
        attrs.join(" || ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_dse_detection() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(is_389_ds([("vendorVersion", v(&["389-Directory/2.3.1 B2023.032.1422"]).as_slice())]));
        assert!(is_389_ds([("VENDORNAME", v(&["389 Project"]).as_slice())]));
        // OpenLDAP's root DSE has neither; AD's neither.
        assert!(!is_389_ds([("vendorName", v(&["OpenLDAP"]).as_slice())]));
        assert!(!is_389_ds([("vendorVersion", v(&[]).as_slice())]));
        assert!(!is_389_ds([("supportedCapabilities", v(&["389-Directory/2"]).as_slice())]));
    }

    #[test]
    fn default_schemes() {
        assert!(is_default_scheme("{PBKDF2-SHA512}"));
        assert!(is_default_scheme("{pbkdf2_sha256}"));
        assert!(!is_default_scheme("{SSHA}"));
        assert!(!is_default_scheme("cleartext"));
    }

    #[test]
    fn filter_attribute_names() {
        assert_eq!(filter_attributes("(|(uid=%u)(mail=%u))"), ["uid", "mail"]);
        assert_eq!(
            filter_attributes("(&(objectClass=person)(|(UID=%U)(uid=%u)(cn~=%u)))"),
            ["objectClass", "UID", "cn"]
        );
        assert_eq!(filter_attributes("(mail:caseExactMatch:=%u)"), ["mail"]);
        assert!(filter_attributes("uid=%u").is_empty());
    }

    #[test]
    fn aci_text() {
        let attrs = vec!["uid".to_owned(), "userPassword".to_owned()];
        assert_eq!(
            read_aci(&attrs, "ldap:///cn=cyrus,dc=example,dc=com"),
            "(targetattr=\"uid || userPassword\")(version 3.0; acl \"ldapbind service account\"; allow (read, \
             search, compare) userdn=\"ldap:///cn=cyrus,dc=example,dc=com\";)"
        );
    }
}
