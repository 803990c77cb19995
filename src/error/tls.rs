//! The words for a TLS failure: what rustls reported, as the problem and the fix an admin reads.

use std::fmt;

use rustls::CertificateError;
use rustls::pki_types::UnixTime;

use super::{Server, Trust};

/// Where the trusted CAs come from, for messages.
fn trusted(trust: &Trust) -> String {
    match &trust.ca_file {
        Some(path) => format!("the CA file {}", path.display()),
        None => "the system certificate store".to_owned(),
    }
}

/// The problem and the fix for a rustls error while talking to `server`.
pub(crate) fn rustls_lines(server: &Server, trust: &Trust, err: &rustls::Error) -> (String, Option<String>) {
    let (host, port) = (&server.host, server.port);
    let server = &server.endpoint;
    let of = format!("certificate of LDAP server {server}");
    let (problem, fix) = match err {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer => (
                format!("{of} is not signed by a trusted CA (trusted: {})", trusted(trust)),
                "set sasl_ldapdb_tls_cacert to the CA file".to_owned(),
            ),
            // Names only in the subject's CN (Samba's own certificate, many older AD ones): no
            // name in sasl_ldapdb_uri can match, since TLS clients check subjectAltName only.
            CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => (
                format!(
                    "{of} has no subjectAltName, so it matches no name (TLS clients no longer read the \
                     subject's CN) and not {host}"
                ),
                format!(
                    "issue one with a subjectAltName for {host}, or (knowingly, insecure: anyone on the path \
                     can then pose as the server and read the passwords) put TLS_REQCERT never in the file \
                     sasl_ldapdb_rc names"
                ),
            ),
            CertificateError::NotValidForNameContext { presented, .. } => {
                let names: Vec<String> = presented.iter().map(|n| presented_name(n)).collect();
                (
                    format!("{of} is for {}, not {host}", names.join(", ")),
                    "use the name in the certificate in sasl_ldapdb_uri".to_owned(),
                )
            }
            CertificateError::NotValidForName => {
                (format!("{of} is not for {host}"), "use the name in the certificate in sasl_ldapdb_uri".to_owned())
            }
            CertificateError::ExpiredContext { time, not_after } => (
                format!("{of} expired on {} (it is now {})", utc(*not_after), utc(*time)),
                "renew the server's certificate".to_owned(),
            ),
            CertificateError::Expired => {
                (format!("{of} has expired or is not yet valid"), "renew the server's certificate".to_owned())
            }
            CertificateError::NotValidYetContext { time, not_before } => (
                format!("{of} is not valid before {} (it is now {})", utc(*not_before), utc(*time)),
                "check the clocks of this host and the server".to_owned(),
            ),
            CertificateError::NotValidYet => {
                (format!("{of} is not valid yet"), "check the clocks of this host and the server".to_owned())
            }
            CertificateError::Revoked => (format!("{of} is revoked"), "the server needs a new certificate".to_owned()),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                format!("{of} is not for TLS servers (its extendedKeyUsage lacks serverAuth)"),
                "issue the server a certificate with extendedKeyUsage serverAuth".to_owned(),
            ),
            // webpki found a trusted CA with the issuer's name, but that CA did not sign it:
            // two CAs with one name (e.g. a regenerated test CA).
            CertificateError::BadSignature => (
                format!(
                    "{of} is not signed by the trusted CA it names (the signature does not verify; trusted: {})",
                    trusted(trust)
                ),
                "set sasl_ldapdb_tls_cacert to the CA file that signed it".to_owned(),
            ),
            other => (
                format!("{of} was rejected ({other})"),
                format!("check the server's certificate and sasl_ldapdb_tls_cacert (trusted: {})", trusted(trust)),
            ),
        },
        rustls::Error::AlertReceived(alert) => {
            let hint = if trust.client_cert {
                "check that the server trusts the CA of the client certificate in \
                 sasl_ldapdb_tls_cert, and its TLS settings"
            } else {
                "check the server's TLS settings (it must accept TLS 1.2 or 1.3) and its log"
            };
            (format!("LDAP server {server} refused the TLS handshake (alert: {alert:?})"), hint.to_owned())
        }
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => (
            format!("LDAP server {server} did not answer in TLS ({err})"),
            format!(
                "check that port {port} serves ldaps:// (usually 636; 389 is ldap://, which takes \
                 sasl_ldapdb_starttls)"
            ),
        ),
        other => (
            format!("TLS handshake with LDAP server {server} failed: {other}"),
            "check the server's TLS settings and its log".to_owned(),
        ),
    };
    (problem, Some(fix))
}

/// `DnsName("ldap.example.org")` → `ldap.example.org`, `IpAddress(127.0.0.1)` → `127.0.0.1`
/// (webpki reports the certificate's names in their `Debug` form).
fn presented_name(name: &str) -> String {
    if let Some(dns) = name.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")")) {
        return dns.to_owned();
    }
    if let Some(ip) = name.strip_prefix("IpAddress(").and_then(|n| n.strip_suffix(')')) {
        return ip.to_owned();
    }
    name.to_owned()
}

/// `2020-01-02 00:00:00 UTC`.
struct Utc(u64);

fn utc(t: UnixTime) -> Utc {
    Utc(t.as_secs())
}

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, secs) = (self.0 / 86_400, self.0 % 86_400);
        // Howard Hinnant's days-to-civil, for days since 1970-01-01 (unsigned: no dates
        // before 1970 reach here).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(f, "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_shown_in_utc() {
        assert_eq!(Utc(4_102_444_799).to_string(), "2099-12-31 23:59:59 UTC");
        assert_eq!(utc(UnixTime::since_unix_epoch(std::time::Duration::ZERO)).to_string(), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn presented_names_are_shown_plainly() {
        assert_eq!(presented_name("DnsName(\"ldap.example.org\")"), "ldap.example.org");
        assert_eq!(presented_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(presented_name("IpAddress(::1)"), "::1");
        assert_eq!(presented_name("UniformResourceIdentifier(\"x\")"), "UniformResourceIdentifier(\"x\")");
    }
}
