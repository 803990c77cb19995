//! LDAP URL correctness for the `ldapdb_uri` option (written `sasl_ldapdb_uri` in imapd.conf).
//!
//! The seed's failures all started here: libldap split `ldap://glauth/dc=users,dc=local` on its
//! comma into two URLs, then silently accepted `dc=users%44dc=local` (`%44` is `D`, not a
//! comma) and connected to port 389 because no port was written. This module parses the list
//! itself, splitting on white space only, decodes and validates the base DN, and returns every
//! doubt as a [`UriWarning`] value and every mistake as a [`UriError`] whose `Display` is one
//! log line naming `sasl_ldapdb_uri`, the cause and the fix.
//!
//! Pure: no I/O, no DNS.

use crate::config::Message;
use std::fmt;
use std::net::Ipv6Addr;

/// How admins spell the option in imapd.conf; every message uses this name.
pub const OPTION: &str = "sasl_ldapdb_uri";
/// Port used by `ldap://` URLs without an explicit port.
pub const DEFAULT_LDAP_PORT: u16 = 389;
/// Port used by `ldaps://` URLs without an explicit port.
pub const DEFAULT_LDAPS_PORT: u16 = 636;
/// Socket used by `ldapi:///` (no path). This is where Debian's slapd listens
/// (`SLAPD_SERVICES="ldapi:///"`), so an ldapdb config written for Debian keeps working.
pub const DEFAULT_LDAPI_PATH: &str = "/var/run/slapd/ldapi";

/// URL scheme: plain TCP, TLS from the first byte, or a Unix domain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ldap,
    Ldaps,
    Ldapi,
}

impl Scheme {
    /// The lower-case scheme name as it appears in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ldap => "ldap",
            Scheme::Ldaps => "ldaps",
            Scheme::Ldapi => "ldapi",
        }
    }

    /// 389, 636, or 0 for ldapi (a socket has no port).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ldap => DEFAULT_LDAP_PORT,
            Scheme::Ldaps => DEFAULT_LDAPS_PORT,
            Scheme::Ldapi => 0,
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        if s.eq_ignore_ascii_case("ldap") {
            Some(Scheme::Ldap)
        } else if s.eq_ignore_ascii_case("ldaps") {
            Some(Scheme::Ldaps)
        } else if s.eq_ignore_ascii_case("ldapi") {
            Some(Scheme::Ldapi)
        } else {
            None
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated LDAP URL from `sasl_ldapdb_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets). For ldapi: the decoded, absolute socket
    /// path; `ldapi:///` yields [`DEFAULT_LDAPI_PATH`], so this is never empty.
    pub host: String,
    /// 389 / 636 when not written; 0 for ldapi.
    pub port: u16,
    /// True when an ldap:// or ldaps:// URL had no explicit port, so 389 or 636 is used; false
    /// for ldapi (a socket has no port, and messages must not speak of "the default port").
    pub port_is_default: bool,
    /// Decoded, validated DN from the URL path; `None` when absent or empty.
    pub base_dn: Option<String>,
    /// The URL as written by the admin.
    pub original: String,
}

impl LdapUrl {
    /// The URL to hand to ldap3: always with an explicit port, IPv6 in brackets, the ldapi
    /// socket path percent-encoded, no DN (ldap3 ignores it; the search base is in `Config`).
    pub fn connect_url(&self) -> String {
        match self.scheme {
            Scheme::Ldapi => format!("ldapi://{}", percent_encode_all(&self.host)),
            Scheme::Ldap | Scheme::Ldaps => {
                format!("{}://{}", self.scheme, self.endpoint())
            }
        }
    }

    /// For log lines: `host:port`, `[::1]:389`, or the socket path.
    pub fn endpoint(&self) -> String {
        match self.scheme {
            Scheme::Ldapi => self.host.clone(),
            Scheme::Ldap | Scheme::Ldaps => {
                if self.host.contains(':') {
                    format!("[{}]:{}", self.host, self.port)
                } else {
                    format!("{}:{}", self.host, self.port)
                }
            }
        }
    }

    /// For log lines about connection failures: "port 389 (the default, no port in
    /// sasl_ldapdb_uri)" or "port 3893"; for ldapi "socket /path".
    pub fn port_text(&self) -> String {
        match self.scheme {
            Scheme::Ldapi => format!("socket {}", self.host),
            Scheme::Ldap | Scheme::Ldaps if self.port_is_default => {
                format!("port {} (the default, no port in {OPTION})", self.port)
            }
            Scheme::Ldap | Scheme::Ldaps => format!("port {}", self.port),
        }
    }
}

/// A non-fatal doubt about `sasl_ldapdb_uri`; `Display` is one complete log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriWarning {
    /// A `%XX` in the DN decoded to a letter or digit: the seed's `%44`, meant as a comma.
    AlnumEscape { url: String, escape: String, decoded: char, suggestion: String },
    /// `ldap://host/dc=x/`: the trailing `/` was dropped rather than kept inside the last value.
    TrailingSlash { url: String, dn: String },
}

impl UriWarning {
    /// What is doubtful and the fix.
    pub fn message(&self) -> Message {
        match self {
            UriWarning::AlnumEscape { url, escape, decoded, suggestion } => Message::new(
                format!("{OPTION}: `{escape}` in the base DN of `{url}` decodes to `{decoded}`, not a comma"),
                format!(
                    "write a comma as `%2C` or just `,` ({suggestion}), or write `{decoded}` itself if you meant it"
                ),
            ),
            UriWarning::TrailingSlash { url, dn } => Message::new(
                format!("{OPTION}: ignoring the `/` after the base DN in `{url}` (using base DN `{dn}`)"),
                "remove the trailing `/`",
            ),
        }
    }

    /// For an escape that decoded to a letter or digit (the seed's `%44`): what it became and
    /// how to write the comma, to be repeated wherever the resulting base DN shows up at run
    /// time (the warning itself is said at init only).
    pub fn base_hint(&self) -> Option<String> {
        match self {
            UriWarning::AlnumEscape { escape, decoded, suggestion, .. } => {
                Some(escape_hint(escape, *decoded, suggestion))
            }
            UriWarning::TrailingSlash { .. } => None,
        }
    }
}

/// "`%44` decodes to `D`, not a comma; write a comma as `%2C` or just `,` (URL)".
fn escape_hint(escape: &str, decoded: char, suggestion: &str) -> String {
    format!("`{escape}` decodes to `{decoded}`, not a comma; write a comma as `%2C` or just `,` ({suggestion})")
}

impl fmt::Display for UriWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

/// The URL parts after the DN, each of which another option replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPart {
    Attributes,
    Scope,
    Filter,
    Extensions,
}

impl QueryPart {
    fn from_index(i: usize) -> QueryPart {
        match i {
            0 => QueryPart::Attributes,
            1 => QueryPart::Scope,
            2 => QueryPart::Filter,
            _ => QueryPart::Extensions,
        }
    }

    fn what(self) -> &'static str {
        match self {
            QueryPart::Attributes => "an attribute list",
            QueryPart::Scope => "a scope",
            QueryPart::Filter => "a filter",
            QueryPart::Extensions => "an extensions",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            QueryPart::Attributes => {
                "remove it: ldapbind requests the attributes the SASL mechanisms need \
                 (map them with sasl_ldapdb_attr_map)"
            }
            QueryPart::Scope => "remove it and set sasl_ldapdb_scope (base, one or sub)",
            QueryPart::Filter => "remove it and set sasl_ldapdb_filter, e.g. (|(uid=%u)(mail=%u))",
            QueryPart::Extensions => "remove them: URL extensions are not supported",
        }
    }
}

/// What is wrong with a DN; `Display` says what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnErrorKind {
    /// `dc=users,,dc=local`, a leading or a trailing comma.
    EmptyRdn,
    /// `dc=x+` or `dc=x++cn=y`.
    EmptyAva,
    /// `=x`.
    MissingAttributeType,
    /// `d_c=x`, `1dc=x`, `2.5=x`.
    BadAttributeType(String),
    /// `dc` or `dc,dc=x`: an attribute type without `=value`.
    MissingEquals(String),
    /// `dc=` (RFC 4514 allows it; no base entry is named that way, it is a typo).
    EmptyValue(String),
    /// A `\` not followed by a special character or two hex digits.
    BadEscape,
    /// `"`, `;`, `<`, `>` or NUL unescaped in a value.
    UnescapedSpecial(char),
    /// A space at the start or end of a value, or around `,` `+` `=`.
    Space,
    /// `#` starts a value but not a valid `#hexstring`.
    BadHexString,
    /// `\XX` escapes that do not form UTF-8.
    NotUtf8,
    /// Any other character where an attribute type or `=` was expected.
    Unexpected(char),
}

impl DnErrorKind {
    /// What is wrong and, for most kinds, the fix.
    pub fn message(&self) -> Message {
        match self {
            DnErrorKind::EmptyRdn => Message::new(
                "empty RDN (two commas in a row, or a comma at the start or end)",
                "remove the extra comma",
            ),
            DnErrorKind::EmptyAva => Message::new(
                "empty attribute after `+` (a `+` joins two `type=value` pairs)",
                "remove the extra `+` or escape it as `\\+`",
            ),
            DnErrorKind::MissingAttributeType => {
                Message::new("`=` without an attribute type before it", "write `type=value`, e.g. `dc=local`")
            }
            DnErrorKind::BadAttributeType(t) => Message::bare(format!(
                "`{t}` is not an attribute type (a letter followed by letters, digits or `-`, or a \
                 numeric OID like 2.5.4.3)"
            )),
            DnErrorKind::MissingEquals(t) => {
                Message::new(format!("`{t}` has no `=value`"), format!("every RDN is `type=value`, e.g. `{t}=local`"))
            }
            DnErrorKind::EmptyValue(t) => {
                Message::new(format!("`{t}=` has an empty value"), "write the value after `=`")
            }
            DnErrorKind::BadEscape => {
                Message::bare("`\\` must be followed by one of `\\ , + \" ; < > # =` or a space, or by two hex digits")
            }
            DnErrorKind::UnescapedSpecial('\0') => Message::new("NUL character", "remove it"),
            DnErrorKind::UnescapedSpecial(';') => {
                Message::new("unescaped `;` (RFC 4514 separates RDNs with `,` only)", "use `,` or write `\\;`")
            }
            DnErrorKind::UnescapedSpecial(c) => {
                Message::new(format!("unescaped `{c}`"), format!("write it as `\\{c}`"))
            }
            DnErrorKind::Space => Message::new(
                "space at the start or end of a value or around `,` `=` `+`",
                "remove it (`dc=users,dc=local`), or escape a meant space as `\\ `",
            ),
            DnErrorKind::BadHexString => {
                Message::new("a value starting with `#` must be hex digit pairs (BER)", "escape a literal `#` as `\\#`")
            }
            DnErrorKind::NotUtf8 => Message::bare("`\\XX` escapes that do not form UTF-8 text"),
            DnErrorKind::Unexpected(c) => {
                Message::new(format!("unexpected `{c}`"), "an RDN is `type=value` (e.g. `dc=local`)")
            }
        }
    }

    /// `PREFIX: what is wrong; fix (at character N)`, the position after the fix when there is
    /// one, so that the line reads as it always has.
    fn message_at(&self, prefix: String, position: usize) -> Message {
        let Message { problem, fix } = self.message();
        let at = format!(" (at character {position})");
        match fix {
            Some(fix) => Message::new(format!("{prefix}: {problem}"), fix + &at),
            None => Message::bare(format!("{prefix}: {problem}{at}")),
        }
    }
}

impl fmt::Display for DnErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

/// A DN that is not RFC 4514 syntax. `position` counts characters from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError {
    pub dn: String,
    pub position: usize,
    pub kind: DnErrorKind,
}

impl DnError {
    /// What is wrong and the fix.
    pub fn message(&self) -> Message {
        self.kind.message_at(format!("`{}` is not a valid DN", self.dn), self.position)
    }
}

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for DnError {}

/// Why `sasl_ldapdb_uri` was rejected; `Display` is one line with the cause and the fix.
/// URLs are quoted with any `user@` part redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    Empty,
    SpaceInDn {
        url: String,
    },
    SpaceInHost {
        url: String,
    },
    NotAUrl {
        url: String,
        fix: &'static str,
    },
    BadScheme {
        url: String,
        scheme: String,
    },
    Userinfo {
        url: String,
    },
    Fragment {
        url: String,
    },
    MissingHost {
        url: String,
        scheme: Scheme,
        port: u16,
        rest: String,
    },
    BadHost {
        url: String,
        host: String,
    },
    BadIpv6 {
        url: String,
        host: String,
    },
    UnbracketedIpv6 {
        url: String,
    },
    BadPort {
        url: String,
        port: String,
    },
    LdapiPort {
        url: String,
    },
    LdapiRelative {
        url: String,
        path: String,
    },
    BadPercent {
        url: String,
        escape: String,
    },
    NotUtf8 {
        url: String,
    },
    BadDn {
        url: String,
        dn: String,
        position: usize,
        kind: DnErrorKind,
        /// "note: `%44` decodes to `D` ..." when an escape decoded to a letter or digit.
        hint: Option<String>,
    },
    QueryPart {
        url: String,
        part: QueryPart,
        value: String,
    },
    TooManyQueryParts {
        url: String,
    },
}

impl UriError {
    /// What is wrong and the fix.
    pub fn message(&self) -> Message {
        match self {
            UriError::Empty => Message::new(
                format!("{OPTION} is empty"),
                format!(
                    "set it to one or more LDAP URLs separated by spaces, e.g. `{OPTION}: \
                     ldap://HOST:PORT/BASE-DN` (ldap://glauth:3893/dc=users,dc=local)"
                ),
            ),
            UriError::SpaceInDn { url } => Message::new(
                format!("{OPTION}: `{url}` has white space inside its DN, but white space separates URLs"),
                "write the DN without spaces (`dc=users,dc=local`; a space inside a value is %20)",
            ),
            UriError::SpaceInHost { url } => Message::new(
                format!(
                    "{OPTION}: `{url}` has white space in its host name or before the `/` of the DN, but \
                     white space separates URLs"
                ),
                "write ldap://HOST:PORT/BASE-DN without spaces",
            ),
            UriError::NotAUrl { url, fix } => Message::new(format!("{OPTION}: `{url}` is not an LDAP URL"), *fix),
            UriError::BadScheme { url, scheme } => Message::new(
                format!("{OPTION}: `{url}` has scheme `{scheme}`"),
                "use ldap://, ldaps:// or ldapi:// (e.g. ldap://glauth:3893/dc=users,dc=local)",
            ),
            UriError::Userinfo { url } => Message::new(
                format!("{OPTION}: `{url}` has a user name or password before `@`"),
                "remove it and put the bind DN in sasl_ldapdb_id and its password in sasl_ldapdb_pw",
            ),
            UriError::Fragment { url } => Message::new(
                format!("{OPTION}: `{url}` has a `#` fragment"),
                "remove it (write a `#` in the DN as %23)",
            ),
            UriError::MissingHost { url, scheme, port, rest } => Message::new(
                format!("{OPTION}: `{url}` names no host"),
                format!("write the LDAP server's host name, e.g. {scheme}://localhost:{port}/{rest}"),
            ),
            UriError::BadHost { url, host } => Message::new(
                format!("{OPTION}: `{host}` in `{url}` is not a host name"),
                "use letters, digits, `-` and `.`, or an IP address (IPv6 in brackets: ldap://[::1]:389)",
            ),
            UriError::BadIpv6 { url, host } => Message::new(
                format!("{OPTION}: `{host}` in `{url}` is not an IPv6 address"),
                "write it like ldap://[2001:db8::1]:389",
            ),
            UriError::UnbracketedIpv6 { url } => Message::new(
                format!("{OPTION}: `{url}` has an unbracketed IPv6 address or more than one `:`"),
                "write IPv6 addresses in brackets, e.g. ldap://[::1]:389",
            ),
            UriError::BadPort { url, port } => Message::new(
                format!("{OPTION}: port `{port}` in `{url}` is not a number from 1 to 65535"),
                "write e.g. ldap://HOST:389 (glauth listens on 3893) or leave the port out for the default",
            ),
            UriError::LdapiPort { url } => Message::new(
                format!("{OPTION}: `{url}`: ldapi:// takes a percent-encoded socket path, not host:port"),
                "write e.g. ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi",
            ),
            UriError::LdapiRelative { url, path } => Message::new(
                format!("{OPTION}: `{url}`: the ldapi socket path `{path}` is not absolute"),
                "write it with a leading `/` as %2F, e.g. ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi",
            ),
            UriError::BadPercent { url, escape } => Message::new(
                format!("{OPTION}: `{escape}` in `{url}` is not a valid percent escape (`%` and two hex digits)"),
                "write a comma as `%2C` or `,`, and a literal `%` as `%25`",
            ),
            UriError::NotUtf8 { url } => Message::new(
                format!("{OPTION}: `{url}` decodes to bytes that are not UTF-8 text (or to a NUL)"),
                "check its `%XX` escapes",
            ),
            UriError::BadDn { url, dn, position, kind, hint } => {
                let problem = format!("{OPTION}: the base DN `{dn}` in `{url}` is not a valid DN");
                let mut message = kind.message_at(problem, *position);
                if let Some(hint) = hint {
                    message.fix = Some(match message.fix {
                        Some(fix) => format!("{fix}; {hint}"),
                        None => hint.clone(),
                    });
                }
                message
            }
            UriError::QueryPart { url, part, value } => {
                Message::new(format!("{OPTION}: `{url}` has {} part `{value}` after `?`", part.what()), part.fix())
            }
            UriError::TooManyQueryParts { url } => Message::new(
                format!("{OPTION}: `{url}` has more than four `?`-separated parts"),
                "write only ldap://HOST:PORT/BASE-DN",
            ),
        }
    }
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for UriError {}

/// All URLs from `sasl_ldapdb_uri` in the admin's order, plus warnings to log at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriList {
    pub urls: Vec<LdapUrl>,
    pub warnings: Vec<UriWarning>,
}

/// Parse `sasl_ldapdb_uri`: URLs separated by ASCII white space (never by commas, which belong
/// to DNs). Stops at the first bad URL.
pub fn parse_uri_list(s: &str) -> Result<UriList, UriError> {
    let mut list = UriList { urls: Vec::new(), warnings: Vec::new() };
    let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
    for (i, token) in tokens.iter().enumerate() {
        if let Some(next) = tokens.get(i + 1)
            && let Some((_, rest)) = token.split_once("://")
            && !next.contains("://")
        {
            let url = redact(&format!("{token} {next}"));
            // `ldap://exa mple.com/dc=x`: the space is before the `/` that starts the DN.
            if !rest.contains(['/', '?']) && (next.contains('/') || next.starts_with(':')) {
                return Err(UriError::SpaceInHost { url });
            }
            // `ldap://h/dc=users, dc=local`: the admin's DN, cut in two by the list splitter.
            if next.contains('=') {
                return Err(UriError::SpaceInDn { url });
            }
        }
        let url = parse_one(token, &mut list.warnings)?;
        list.urls.push(url);
    }
    if list.urls.is_empty() {
        return Err(UriError::Empty);
    }
    Ok(list)
}

/// Replace `user:password@` in a URL-ish string by `…@` so no password reaches a log line.
fn redact(token: &str) -> String {
    let (prefix, rest) = match token.find("://") {
        Some(i) => token.split_at(i + 3),
        None => ("", token),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    match authority.rfind('@') {
        Some(at) => format!("{prefix}…{}{tail}", &authority[at..]),
        None => token.to_string(),
    }
}

fn parse_one(token: &str, warnings: &mut Vec<UriWarning>) -> Result<LdapUrl, UriError> {
    let url = redact(token);
    let Some(sep) = token.find("://") else {
        let fix = if token.contains('=') {
            "it looks like part of a DN: white space separates URLs in sasl_ldapdb_uri, so write \
             the DN without spaces (`dc=users,dc=local`; a space inside a value is %20)"
        } else {
            "write it as ldap://HOST:PORT/BASE-DN, e.g. ldap://glauth:3893/dc=users,dc=local"
        };
        return Err(UriError::NotAUrl { url, fix });
    };
    let scheme_text = &token[..sep];
    let Some(scheme) = Scheme::parse(scheme_text) else {
        return Err(UriError::BadScheme { url, scheme: scheme_text.to_string() });
    };
    let rest = &token[sep + 3..];

    // Authority ends at the first '/' (start of the DN) or '?' (query without a DN).
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(auth_end);
    if authority.contains('@') {
        return Err(UriError::Userinfo { url });
    }
    if token.contains('#') {
        return Err(UriError::Fragment { url });
    }

    // Split "/DN?attrs?scope?filter?exts".
    let after_slash = path_and_query.strip_prefix('/').unwrap_or(path_and_query);
    let (raw_dn, query) = match after_slash.find('?') {
        Some(q) => (&after_slash[..q], Some(&after_slash[q + 1..])),
        None => (after_slash, None),
    };
    if let Some(query) = query {
        let parts: Vec<&str> = query.split('?').collect();
        if parts.len() > 4 {
            return Err(UriError::TooManyQueryParts { url });
        }
        // An empty trailing `?` (or `???`) asks for nothing and is tolerated.
        if let Some((i, value)) = parts.iter().enumerate().find(|(_, p)| !p.is_empty()) {
            return Err(UriError::QueryPart { url, part: QueryPart::from_index(i), value: (*value).to_string() });
        }
    }

    let (host, port, port_is_default) = match scheme {
        Scheme::Ldapi => (parse_ldapi_path(authority, &url)?, 0, false),
        Scheme::Ldap | Scheme::Ldaps => {
            let (host, port) = parse_host_port(authority, &url)?;
            if host.is_empty() {
                return Err(UriError::MissingHost {
                    url,
                    scheme,
                    port: port.unwrap_or(scheme.default_port()),
                    rest: raw_dn.to_string(),
                });
            }
            match port {
                Some(p) => (host, p, false),
                None => (host, scheme.default_port(), true),
            }
        }
    };

    let base_dn = parse_dn_part(raw_dn, token, &url, warnings)?;
    Ok(LdapUrl { scheme, host, port, port_is_default, base_dn, original: token.to_string() })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. Returns the host without brackets.
fn parse_host_port(authority: &str, url: &str) -> Result<(String, Option<u16>), UriError> {
    let (host, port_text) = if let Some(inner) = authority.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err(UriError::BadIpv6 { url: url.to_string(), host: authority.to_string() });
        };
        let addr = &inner[..close];
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(UriError::BadIpv6 { url: url.to_string(), host: addr.to_string() });
        }
        let after = &inner[close + 1..];
        let port_text = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(UriError::BadHost { url: url.to_string(), host: authority.to_string() });
            }
        };
        (addr.to_string(), port_text)
    } else {
        match authority.matches(':').count() {
            0 => (authority.to_string(), None),
            1 => match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            },
            _ => {
                return Err(UriError::UnbracketedIpv6 { url: url.to_string() });
            }
        }
    };
    if !host.contains(':') && !is_host_name(&host) {
        return Err(UriError::BadHost { url: url.to_string(), host });
    }
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| UriError::BadPort { url: url.to_string(), port: p.to_string() })?),
    };
    Ok((host, port))
}

/// Empty (reported by the caller as a missing host), or DNS-ish labels / IPv4 dotted quads.
fn is_host_name(h: &str) -> bool {
    h.is_empty()
        || (h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            && !h.starts_with(['-', '.'])
            && !h.contains(".."))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n != 0)
}

fn parse_ldapi_path(authority: &str, url: &str) -> Result<String, UriError> {
    if authority.contains(':') {
        return Err(UriError::LdapiPort { url: url.to_string() });
    }
    if authority.is_empty() {
        return Ok(DEFAULT_LDAPI_PATH.to_string());
    }
    let decoded = percent_decode(authority, url)?;
    if !decoded.text.starts_with('/') {
        return Err(UriError::LdapiRelative { url: url.to_string(), path: decoded.text });
    }
    Ok(decoded.text)
}

/// The DN part: strip one trailing `/` (warning), percent-decode, validate.
fn parse_dn_part(
    raw_dn: &str,
    token: &str,
    url: &str,
    warnings: &mut Vec<UriWarning>,
) -> Result<Option<String>, UriError> {
    let mut raw = raw_dn;
    let mut trailing_slash = false;
    if let Some(stripped) = raw.strip_suffix('/') {
        // `dc=local/` is a valid DN whose last value is "local/": never what was meant.
        raw = stripped;
        trailing_slash = true;
    }
    let decoded = percent_decode(raw, url)?;
    let mut alnum_warnings: Vec<UriWarning> = Vec::new();
    for (escape, ch) in &decoded.alnum_escapes {
        let w = UriWarning::AlnumEscape {
            url: url.to_string(),
            escape: escape.clone(),
            decoded: *ch,
            suggestion: redact(&token.replace(escape.as_str(), "%2C")),
        };
        if !alnum_warnings.contains(&w) {
            alnum_warnings.push(w);
        }
    }
    if let Err(e) = validate_dn(&decoded.text) {
        let hint = decoded.alnum_escapes.first().map(|(escape, ch)| {
            format!("note: {}", escape_hint(escape, *ch, &redact(&token.replace(escape.as_str(), "%2C"))))
        });
        return Err(UriError::BadDn { url: url.to_string(), dn: e.dn, position: e.position, kind: e.kind, hint });
    }
    warnings.extend(alnum_warnings);
    if trailing_slash {
        warnings.push(UriWarning::TrailingSlash { url: url.to_string(), dn: decoded.text.clone() });
    }
    if decoded.text.is_empty() {
        return Ok(None);
    }
    Ok(Some(decoded.text))
}

struct Decoded {
    text: String,
    /// `("%44", 'D')` for each escape that decoded to an ASCII letter or digit.
    alnum_escapes: Vec<(String, char)>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 percent-decoding; every `%` must start a valid escape. NUL is refused.
fn percent_decode(s: &str, url: &str) -> Result<Decoded, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut alnum_escapes = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let pair = (b.get(i + 1).copied().and_then(hex_val), b.get(i + 2).copied().and_then(hex_val));
            let (Some(hi), Some(lo)) = pair else {
                let end = (i + 3).min(b.len());
                let escape = String::from_utf8_lossy(&b[i..end]).into_owned();
                return Err(UriError::BadPercent { url: url.to_string(), escape });
            };
            let v = hi * 16 + lo;
            if v.is_ascii_alphanumeric() {
                alnum_escapes.push((String::from_utf8_lossy(&b[i..i + 3]).into_owned(), v as char));
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(UriError::NotUtf8 { url: url.to_string() });
    }
    let text = String::from_utf8(out).map_err(|_| UriError::NotUtf8 { url: url.to_string() })?;
    Ok(Decoded { text, alnum_escapes })
}

/// Percent-encode everything except RFC 3986 unreserved characters.
pub(crate) fn percent_encode_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 4514 string DN syntax. The empty DN is valid (it names the root DSE; a URL with an empty
/// DN means "no base"). Stricter than the RFC in one way: an empty attribute value (`dc=`) is
/// rejected, because no base or bind entry is named that way and it is always a typo.
/// Not accepted (RFC 2253 leftovers): `;` as a separator, spaces around separators, `OID.` prefixes.
pub fn validate_dn(s: &str) -> Result<(), DnError> {
    if s.is_empty() {
        return Ok(());
    }
    DnParser { s, b: s.as_bytes(), i: 0 }.parse()
}

struct DnParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl DnParser<'_> {
    fn err(&self, pos: usize, kind: DnErrorKind) -> DnError {
        let position = self.s.get(..pos).map_or(pos, |p| p.chars().count()) + 1;
        DnError { dn: self.s.to_string(), position, kind }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn parse(mut self) -> Result<(), DnError> {
        loop {
            // One RDN: AVA *( '+' AVA )
            let mut first_ava = true;
            loop {
                self.ava(first_ava)?;
                first_ava = false;
                match self.peek() {
                    Some(b'+') => self.i += 1,
                    _ => break,
                }
            }
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.i += 1;
                    if self.i == self.b.len() {
                        return Err(self.err(self.i - 1, DnErrorKind::EmptyRdn));
                    }
                }
                // ava() stops only at end, ',' or '+'.
                Some(c) => return Err(self.err(self.i, DnErrorKind::Unexpected(c as char))),
            }
        }
    }

    fn ava(&mut self, first_in_rdn: bool) -> Result<(), DnError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') {
            self.i += 1;
        }
        let attr = &self.s[start..self.i];
        if attr.is_empty() {
            return Err(match self.peek() {
                None | Some(b',') | Some(b'+') if first_in_rdn => self.err(self.i, DnErrorKind::EmptyRdn),
                None | Some(b',') | Some(b'+') => self.err(self.i, DnErrorKind::EmptyAva),
                Some(b'=') => self.err(self.i, DnErrorKind::MissingAttributeType),
                Some(b' ') => self.err(self.i, DnErrorKind::Space),
                Some(_) => self.err(self.i, DnErrorKind::Unexpected(self.next_char())),
            });
        }
        if !is_attribute_type(attr) {
            return Err(self.err(start, DnErrorKind::BadAttributeType(attr.to_string())));
        }
        match self.peek() {
            Some(b'=') => self.i += 1,
            None | Some(b',') | Some(b'+') => {
                return Err(self.err(self.i, DnErrorKind::MissingEquals(attr.to_string())));
            }
            Some(b' ') => return Err(self.err(self.i, DnErrorKind::Space)),
            Some(_) => {
                // e.g. `d_c=x`: report the whole would-be type.
                let end = self.s[self.i..].find(['=', ',', '+']).map_or(self.b.len(), |k| self.i + k);
                return Err(self.err(start, DnErrorKind::BadAttributeType(self.s[start..end].to_string())));
            }
        }
        self.value(attr)
    }

    fn next_char(&self) -> char {
        self.s[self.i..].chars().next().unwrap_or('\0')
    }

    fn value(&mut self, attr: &str) -> Result<(), DnError> {
        let value_start = self.i;
        if self.peek() == Some(b'#') {
            self.i += 1;
            let hex_start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.i += 1;
            }
            let n = self.i - hex_start;
            if n == 0 || n % 2 != 0 || !matches!(self.peek(), None | Some(b',') | Some(b'+')) {
                return Err(self.err(value_start, DnErrorKind::BadHexString));
            }
            return Ok(());
        }
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    let esc = self.i;
                    self.i += 1;
                    match self.peek() {
                        Some(e @ (b'\\' | b',' | b'+' | b'"' | b';' | b'<' | b'>' | b' ' | b'#' | b'=')) => {
                            bytes.push(e);
                            self.i += 1;
                        }
                        Some(h) if h.is_ascii_hexdigit() => {
                            let lo = self.b.get(self.i + 1).copied().and_then(hex_val);
                            match (hex_val(h), lo) {
                                (Some(h), Some(l)) => {
                                    bytes.push(h * 16 + l);
                                    self.i += 2;
                                }
                                _ => return Err(self.err(esc, DnErrorKind::BadEscape)),
                            }
                        }
                        _ => return Err(self.err(esc, DnErrorKind::BadEscape)),
                    }
                }
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return Err(self.err(self.i, DnErrorKind::UnescapedSpecial(c as char)));
                }
                b' ' => {
                    let at_start = self.i == value_start;
                    let at_end = matches!(self.b.get(self.i + 1), None | Some(b',') | Some(b'+'));
                    if at_start || at_end {
                        return Err(self.err(self.i, DnErrorKind::Space));
                    }
                    bytes.push(c);
                    self.i += 1;
                }
                _ => {
                    bytes.push(c);
                    self.i += 1;
                }
            }
        }
        if self.i == value_start {
            return Err(self.err(value_start, DnErrorKind::EmptyValue(attr.to_string())));
        }
        if std::str::from_utf8(&bytes).is_err() {
            return Err(self.err(value_start, DnErrorKind::NotUtf8));
        }
        Ok(())
    }
}

/// `descr` (ALPHA *(ALPHA / DIGIT / "-")) or `numericoid` (number 1*("." number)).
pub fn is_attribute_type(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() => b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-'),
        Some(c) if c.is_ascii_digit() => {
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() >= 2
                && parts.iter().all(|p| {
                    !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(s: &str) -> LdapUrl {
        let list = parse_uri_list(s).unwrap();
        assert_eq!(list.urls.len(), 1, "{s}");
        list.urls.into_iter().next().unwrap()
    }

    fn err(s: &str) -> UriError {
        parse_uri_list(s).unwrap_err()
    }

    // ---- schemes, hosts, ports -------------------------------------------------------------

    #[test]
    fn ldap_default_port() {
        let u = one("ldap://glauth/dc=users,dc=local");
        assert_eq!(u.scheme, Scheme::Ldap);
        assert_eq!(u.host, "glauth");
        assert_eq!(u.port, 389);
        assert!(u.port_is_default);
        assert_eq!(u.base_dn.as_deref(), Some("dc=users,dc=local"));
        assert_eq!(u.original, "ldap://glauth/dc=users,dc=local");
        assert_eq!(u.connect_url(), "ldap://glauth:389");
        assert_eq!(u.endpoint(), "glauth:389");
        assert_eq!(u.port_text(), "port 389 (the default, no port in sasl_ldapdb_uri)");
    }

    #[test]
    fn ldap_explicit_port() {
        let u = one("ldap://glauth:3893/dc=users,dc=local");
        assert_eq!(u.port, 3893);
        assert!(!u.port_is_default);
        assert_eq!(u.connect_url(), "ldap://glauth:3893");
        assert_eq!(u.port_text(), "port 3893");
    }

    #[test]
    fn ldaps_default_and_explicit_port() {
        let u = one("ldaps://ldap.example.org/dc=example,dc=org");
        assert_eq!((u.scheme, u.port, u.port_is_default), (Scheme::Ldaps, 636, true));
        assert_eq!(u.connect_url(), "ldaps://ldap.example.org:636");
        let u = one("ldaps://ldap.example.org:1636");
        assert_eq!((u.port, u.port_is_default), (1636, false));
        assert_eq!(u.base_dn, None);
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(one("LDAP://h").scheme, Scheme::Ldap);
        assert_eq!(one("LdApS://h").scheme, Scheme::Ldaps);
        assert_eq!(one("LDAPI://").scheme, Scheme::Ldapi);
    }

    #[test]
    fn ipv6_hosts() {
        let u = one("ldaps://[::1]/dc=x");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 636);
        assert_eq!(u.connect_url(), "ldaps://[::1]:636");
        assert_eq!(u.endpoint(), "[::1]:636");
        let u = one("ldap://[2001:db8::1]:3893");
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 3893));
        assert_eq!(u.endpoint(), "[2001:db8::1]:3893");
        assert!(matches!(err("ldap://[::g]/"), UriError::BadIpv6 { .. }));
        assert!(matches!(err("ldap://[::1/"), UriError::BadIpv6 { .. }));
        assert!(matches!(err("ldap://[::1]x/"), UriError::BadHost { .. }));
        assert!(matches!(err("ldap://::1/"), UriError::UnbracketedIpv6 { .. }));
    }

    #[test]
    fn ipv4_host() {
        let u = one("ldap://127.0.0.1:10389/dc=example,dc=com");
        assert_eq!(u.endpoint(), "127.0.0.1:10389");
    }

    #[test]
    fn ldapi_paths() {
        let u = one("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi/dc=example,dc=com");
        assert_eq!(u.scheme, Scheme::Ldapi);
        assert_eq!(u.host, "/var/run/slapd/ldapi");
        assert_eq!((u.port, u.port_is_default), (0, false));
        assert_eq!(u.base_dn.as_deref(), Some("dc=example,dc=com"));
        assert_eq!(u.connect_url(), "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi");
        assert_eq!(u.endpoint(), "/var/run/slapd/ldapi");
        assert_eq!(u.port_text(), "socket /var/run/slapd/ldapi");
        // lower-case escapes, and the default path
        assert_eq!(one("ldapi://%2ftmp%2fs").host, "/tmp/s");
        let u = one("ldapi:///dc=x");
        assert_eq!(u.host, DEFAULT_LDAPI_PATH);
        assert_eq!(u.base_dn.as_deref(), Some("dc=x"));
        assert_eq!(one("ldapi://").host, DEFAULT_LDAPI_PATH);
        // path with characters that must be re-encoded for ldap3
        let u = one("ldapi://%2Frun%2Fmy%20dir%2Fs%3Ak");
        assert_eq!(u.host, "/run/my dir/s:k");
        assert_eq!(u.connect_url(), "ldapi://%2Frun%2Fmy%20dir%2Fs%3Ak");
    }

    #[test]
    fn ldapi_errors() {
        assert!(matches!(err("ldapi://host:389/"), UriError::LdapiPort { .. }));
        assert!(matches!(err("ldapi://relative%2Fs"), UriError::LdapiRelative { .. }));
        assert!(matches!(err("ldapi://%2Fa%00b"), UriError::NotUtf8 { .. }));
    }

    #[test]
    fn ports() {
        assert_eq!(one("ldap://h:1").port, 1);
        assert_eq!(one("ldap://h:65535").port, 65535);
        for bad in
            ["ldap://h:0", "ldap://h:65536", "ldap://h:", "ldap://h:x", "ldap://h:-1", "ldap://h:999999", "ldap://h:+1"]
        {
            let e = err(bad);
            assert!(matches!(e, UriError::BadPort { .. }), "{bad}: {e:?}");
        }
        assert_eq!(
            err("ldap://glauth:70000/dc=x").to_string(),
            "sasl_ldapdb_uri: port `70000` in `ldap://glauth:70000/dc=x` is not a number from 1 \
             to 65535; write e.g. ldap://HOST:389 (glauth listens on 3893) or leave the port out \
             for the default"
        );
    }

    #[test]
    fn missing_host_is_an_error() {
        let e = err("ldap:///dc=x");
        assert_eq!(
            e.to_string(),
            "sasl_ldapdb_uri: `ldap:///dc=x` names no host; write the LDAP server's host name, \
             e.g. ldap://localhost:389/dc=x"
        );
        assert!(matches!(err("ldaps://:1636"), UriError::MissingHost { port: 1636, .. }));
    }

    #[test]
    fn bad_host() {
        assert!(matches!(err("ldap://ho%73t/"), UriError::BadHost { .. }));
        assert!(matches!(err("ldap://-h/"), UriError::BadHost { .. }));
        assert!(matches!(err("ldap://a..b/"), UriError::BadHost { .. }));
    }

    #[test]
    fn bad_scheme() {
        let e = err("http://glauth/dc=x");
        assert_eq!(
            e.to_string(),
            "sasl_ldapdb_uri: `http://glauth/dc=x` has scheme `http`; use ldap://, ldaps:// or \
             ldapi:// (e.g. ldap://glauth:3893/dc=users,dc=local)"
        );
        assert!(matches!(err("ldapx://h"), UriError::BadScheme { .. }));
        assert!(matches!(err("glauth:3893"), UriError::NotAUrl { .. }));
    }

    #[test]
    fn empty() {
        for s in ["", " ", "\t\n "] {
            let e = err(s);
            assert_eq!(e, UriError::Empty);
            assert!(e.to_string().starts_with("sasl_ldapdb_uri is empty; "));
        }
    }

    // ---- DNs in URLs -----------------------------------------------------------------------

    #[test]
    fn raw_commas_and_percent_2c() {
        let expect = Some("dc=users,dc=local");
        assert_eq!(one("ldap://glauth:3893/dc=users,dc=local").base_dn.as_deref(), expect);
        assert_eq!(one("ldap://glauth:3893/dc=users%2Cdc=local").base_dn.as_deref(), expect);
        assert_eq!(one("ldap://glauth:3893/dc=users%2cdc=local").base_dn.as_deref(), expect);
        assert!(parse_uri_list("ldap://glauth:3893/dc=users%2Cdc=local").unwrap().warnings.is_empty());
    }

    #[test]
    fn other_escapes_decode() {
        let u = one("ldap://h/cn=J%C3%B6rg%20Doe,dc=x");
        assert_eq!(u.base_dn.as_deref(), Some("cn=Jörg Doe,dc=x"));
        let u = one("ldap://h/cn=a%5C,b,dc=x");
        assert_eq!(u.base_dn.as_deref(), Some("cn=a\\,b,dc=x"));
    }

    #[test]
    fn seed_percent_44_is_a_warning_with_the_fix() {
        // RFC 4514 accepts `dc=usersDdc=local` (one RDN whose value contains '='), so this is
        // only a warning; the DN is kept as decoded.
        let list = parse_uri_list("ldap://glauth:3893/dc=users%44dc=local").unwrap();
        assert_eq!(list.urls[0].base_dn.as_deref(), Some("dc=usersDdc=local"));
        assert_eq!(list.warnings.len(), 1);
        assert_eq!(
            list.warnings[0].to_string(),
            "sasl_ldapdb_uri: `%44` in the base DN of `ldap://glauth:3893/dc=users%44dc=local` \
             decodes to `D`, not a comma; write a comma as `%2C` or just `,` \
             (ldap://glauth:3893/dc=users%2Cdc=local), or write `D` itself if you meant it"
        );
    }

    #[test]
    fn percent_44_making_the_dn_invalid_is_an_error_with_the_hint() {
        let e = err("ldap://glauth:3893/dc=users%44%3Bdc=local");
        let e2 = err("ldap://glauth/dc=users%44dc=local,");
        for e in [e, e2] {
            let text = e.to_string();
            assert!(matches!(e, UriError::BadDn { .. }), "{e:?}");
            assert!(
                text.contains("note: `%44` decodes to `D`, not a comma; write a comma as `%2C` or just `,`"),
                "{text}"
            );
        }
        let e = err("ldap://glauth/dc=users%44dc=local,");
        assert_eq!(
            e.to_string(),
            "sasl_ldapdb_uri: the base DN `dc=usersDdc=local,` in `ldap://glauth/dc=users%44dc=local,` \
             is not a valid DN: empty RDN (two commas in a row, or a comma at the start or end); \
             remove the extra comma (at character 18); note: `%44` decodes to `D`, not a comma; \
             write a comma as `%2C` or just `,` (ldap://glauth/dc=users%2Cdc=local,)"
        );
    }

    #[test]
    fn other_alnum_escapes_warn() {
        let list = parse_uri_list("ldap://h/%64c=x").unwrap();
        assert_eq!(list.urls[0].base_dn.as_deref(), Some("dc=x"));
        assert!(matches!(&list.warnings[0], UriWarning::AlnumEscape { decoded: 'd', .. }));
    }

    #[test]
    fn bad_dns_in_url() {
        for (s, kind) in [
            ("ldap://h/dc=users,,dc=local", DnErrorKind::EmptyRdn),
            ("ldap://h/=x", DnErrorKind::MissingAttributeType),
            ("ldap://h/dc", DnErrorKind::MissingEquals("dc".into())),
            ("ldap://h/dc=users,%20dc=local", DnErrorKind::Space),
        ] {
            match err(s) {
                UriError::BadDn { kind: k, hint, .. } => {
                    assert_eq!(k, kind, "{s}");
                    assert_eq!(hint, None);
                }
                e => panic!("{s}: {e:?}"),
            }
        }
        assert_eq!(
            err("ldap://h/dc=users,,dc=local").to_string(),
            "sasl_ldapdb_uri: the base DN `dc=users,,dc=local` in `ldap://h/dc=users,,dc=local` is \
             not a valid DN: empty RDN (two commas in a row, or a comma at the start or end); remove \
             the extra comma (at character 10)"
        );
    }

    #[test]
    fn bad_percent_escapes() {
        for (s, esc) in [
            ("ldap://h/dc=a%2", "%2"),
            ("ldap://h/dc=a%zz", "%zz"),
            ("ldap://h/dc=a%", "%"),
            ("ldap://h/dc=%4g,dc=b", "%4g"),
        ] {
            match err(s) {
                UriError::BadPercent { escape, .. } => assert_eq!(escape, esc, "{s}"),
                e => panic!("{s}: {e:?}"),
            }
        }
        assert!(matches!(err("ldap://h/cn=%FF"), UriError::NotUtf8 { .. }));
        assert!(matches!(err("ldap://h/cn=a%00"), UriError::NotUtf8 { .. }));
    }

    #[test]
    fn trailing_slash_is_stripped_with_a_warning() {
        // The seed's first URI.
        let list = parse_uri_list("ldap://glauth/dc=users,dc=local/").unwrap();
        assert_eq!(list.urls[0].base_dn.as_deref(), Some("dc=users,dc=local"));
        assert_eq!(
            list.warnings,
            vec![UriWarning::TrailingSlash {
                url: "ldap://glauth/dc=users,dc=local/".into(),
                dn: "dc=users,dc=local".into()
            }]
        );
        assert!(list.warnings[0].to_string().contains("remove the trailing `/`"));
        // An empty DN after the authority's '/' is simply "no base", no warning.
        let list = parse_uri_list("ldap://glauth/").unwrap();
        assert_eq!(list.urls[0].base_dn, None);
        assert!(list.warnings.is_empty());
        let list = parse_uri_list("ldap://glauth//").unwrap();
        assert_eq!(list.urls[0].base_dn, None);
        assert_eq!(list.warnings.len(), 1);
        // An encoded slash is data, kept.
        assert_eq!(one("ldap://h/cn=a%2F,dc=x").base_dn.as_deref(), Some("cn=a/,dc=x"));
    }

    #[test]
    fn query_parts_name_the_option_to_use() {
        let cases = [
            ("ldap://h/dc=x?uid", QueryPart::Attributes, "sasl_ldapdb_attr_map"),
            ("ldap://h/dc=x??sub", QueryPart::Scope, "sasl_ldapdb_scope"),
            ("ldap://h/dc=x???(uid=*)", QueryPart::Filter, "sasl_ldapdb_filter"),
            ("ldap://h/dc=x????!x-ext", QueryPart::Extensions, "not supported"),
            ("ldap://h?uid", QueryPart::Attributes, "sasl_ldapdb_attr_map"),
        ];
        for (s, part, needle) in cases {
            let e = err(s);
            assert!(matches!(&e, UriError::QueryPart { part: p, .. } if *p == part), "{s}: {e:?}");
            assert!(e.to_string().contains(needle), "{e}");
        }
        assert_eq!(
            err("ldap://h/dc=x??one").to_string(),
            "sasl_ldapdb_uri: `ldap://h/dc=x??one` has a scope part `one` after `?`; remove it and \
             set sasl_ldapdb_scope (base, one or sub)"
        );
        assert_eq!(
            err("ldap://h/dc=x?uid").to_string(),
            "sasl_ldapdb_uri: `ldap://h/dc=x?uid` has an attribute list part `uid` after `?`; remove it: \
             ldapbind requests the attributes the SASL mechanisms need (map them with sasl_ldapdb_attr_map)"
        );
        assert!(err("ldap://h/dc=x???(uid=*)").to_string().contains("has a filter part `(uid=*)`"));
        assert!(matches!(err("ldap://h/dc=x?????"), UriError::TooManyQueryParts { .. }));
        // Empty trailing parts are tolerated.
        assert_eq!(one("ldap://h/dc=x?").base_dn.as_deref(), Some("dc=x"));
        assert_eq!(one("ldap://h/dc=x????").base_dn.as_deref(), Some("dc=x"));
    }

    #[test]
    fn userinfo_and_fragment_rejected_and_redacted() {
        let e = err("ldap://cn=admin:s3cret@glauth/dc=x");
        assert!(matches!(e, UriError::Userinfo { .. }));
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("ldap://…@glauth/dc=x"), "{text}");
        // Other errors quoting the URL redact too.
        let text = err("http://u:s3cret@h/").to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(matches!(err("ldap://h/dc=x#frag"), UriError::Fragment { .. }));
    }

    // ---- lists -----------------------------------------------------------------------------

    #[test]
    fn lists_split_on_white_space_never_on_commas() {
        let list =
            parse_uri_list(" ldap://a:3893/dc=users,dc=local\tldaps://[::1]\n\r ldapi:///dc=users,dc=local  ").unwrap();
        let got: Vec<(Scheme, &str, u16)> = list.urls.iter().map(|u| (u.scheme, u.host.as_str(), u.port)).collect();
        assert_eq!(
            got,
            vec![(Scheme::Ldap, "a", 3893), (Scheme::Ldaps, "::1", 636), (Scheme::Ldapi, DEFAULT_LDAPI_PATH, 0)]
        );
        assert_eq!(list.urls[0].base_dn.as_deref(), Some("dc=users,dc=local"));
    }

    #[test]
    fn space_inside_a_dn_gets_a_dn_hint() {
        let e = err("ldap://h/dc=users, dc=local");
        assert_eq!(
            e.to_string(),
            "sasl_ldapdb_uri: `ldap://h/dc=users, dc=local` has white space inside its DN, but \
             white space separates URLs; write the DN without spaces (`dc=users,dc=local`; a \
             space inside a value is %20)"
        );
        // A lone DN-looking token (no URL before it) still gets the DN hint.
        let e = err("dc=users,dc=local");
        assert!(matches!(e, UriError::NotAUrl { .. }));
        assert!(e.to_string().contains("white space separates URLs"), "{e}");
    }

    #[test]
    fn space_inside_a_host_name_is_not_called_a_dn_problem() {
        let want = |url: &str| {
            format!(
                "sasl_ldapdb_uri: `{url}` has white space in its host name or before the `/` of the DN, but \
                 white space separates URLs; write ldap://HOST:PORT/BASE-DN without spaces"
            )
        };
        for url in [
            "ldap://exa mple.com/dc=users,dc=local",
            "ldap://example.com :389/dc=users,dc=local",
            "ldap://example.com /dc=users,dc=local",
            "ldaps://exa mple.com:636/",
        ] {
            let e = parse_uri_list(url).unwrap_err();
            assert_eq!(e, UriError::SpaceInHost { url: url.to_owned() }, "{url}");
            assert_eq!(e.to_string(), want(url));
        }
        // Two URLs are still two URLs, and a space in the DN is still a DN problem.
        assert_eq!(parse_uri_list("ldap://a ldap://b.example:389").unwrap().urls.len(), 2);
        assert!(matches!(parse_uri_list("ldap://h/dc=users, dc=local"), Err(UriError::SpaceInDn { .. })));
        assert!(matches!(parse_uri_list("ldap://h dc=x"), Err(UriError::SpaceInDn { .. })));
        // A second host without its scheme is not a URL.
        assert!(matches!(parse_uri_list("ldap://h1 h2.example"), Err(UriError::NotAUrl { .. })));
    }

    #[test]
    fn first_bad_url_in_a_list_fails_the_list() {
        assert!(matches!(err("ldap://a ldap://b:0"), UriError::BadPort { .. }));
    }

    // ---- validate_dn -----------------------------------------------------------------------

    #[test]
    fn valid_dns() {
        for dn in [
            "",
            "dc=local",
            "dc=users,dc=local",
            "cn=John Doe,ou=people,dc=example,dc=com",
            "cn=a\\,b,dc=x",
            "cn=a\\2Cb,dc=x",
            "cn=a\\2cb",
            "cn=\\ lead\\ ",
            "cn=\\#hash",
            "cn=a#b",
            "cn=a=b",
            "uid=jdoe+cn=John,dc=x",
            "2.5.4.3=x,dc=y",
            "cn=#04024869",
            "CN=Jörg,DC=example",
            "cn=\\C3\\B6",
            "o=a\\;b\\<c\\>d\\\"e\\+f\\\\g",
            "x-attr=1",
        ] {
            assert_eq!(validate_dn(dn), Ok(()), "{dn}");
        }
    }

    #[test]
    fn invalid_dns() {
        let cases: &[(&str, DnErrorKind, usize)] = &[
            ("dc=users,,dc=local", DnErrorKind::EmptyRdn, 10),
            (",dc=x", DnErrorKind::EmptyRdn, 1),
            ("dc=x,", DnErrorKind::EmptyRdn, 5),
            ("=x", DnErrorKind::MissingAttributeType, 1),
            ("dc", DnErrorKind::MissingEquals("dc".into()), 3),
            ("dc,dc=x", DnErrorKind::MissingEquals("dc".into()), 3),
            ("dc=", DnErrorKind::EmptyValue("dc".into()), 4),
            ("dc=x,dc=", DnErrorKind::EmptyValue("dc".into()), 9),
            ("dc=x+", DnErrorKind::EmptyAva, 6),
            ("dc=x++cn=y", DnErrorKind::EmptyAva, 6),
            ("dc=users, dc=local", DnErrorKind::Space, 10),
            ("dc =x", DnErrorKind::Space, 3),
            ("dc= x", DnErrorKind::Space, 4),
            ("dc=x ,dc=y", DnErrorKind::Space, 5),
            ("dc=a;dc=b", DnErrorKind::UnescapedSpecial(';'), 5),
            ("cn=a\"b", DnErrorKind::UnescapedSpecial('"'), 5),
            ("cn=a<b", DnErrorKind::UnescapedSpecial('<'), 5),
            ("cn=a\0b", DnErrorKind::UnescapedSpecial('\0'), 5),
            ("cn=a\\", DnErrorKind::BadEscape, 5),
            ("cn=a\\x", DnErrorKind::BadEscape, 5),
            ("cn=a\\2", DnErrorKind::BadEscape, 5),
            ("cn=\\FF", DnErrorKind::NotUtf8, 4),
            ("cn=#0", DnErrorKind::BadHexString, 4),
            ("cn=#", DnErrorKind::BadHexString, 4),
            ("cn=#zz", DnErrorKind::BadHexString, 4),
            ("1cn=x", DnErrorKind::BadAttributeType("1cn".into()), 1),
            ("d_c=x", DnErrorKind::BadAttributeType("d_c".into()), 1),
            ("OID.2.5.4.3=x", DnErrorKind::BadAttributeType("OID.2.5.4.3".into()), 1),
            ("ö=x", DnErrorKind::Unexpected('ö'), 1),
        ];
        for (dn, kind, pos) in cases {
            let e = validate_dn(dn).unwrap_err();
            assert_eq!((&e.kind, e.position), (kind, *pos), "{dn:?}: {e}");
        }
        // "2.5" is a valid numericoid actually; make sure we are not too strict.
        assert_eq!(validate_dn("2.5=x"), Ok(()));
        assert_eq!(
            validate_dn("dc").unwrap_err().to_string(),
            "`dc` is not a valid DN: `dc` has no `=value`; every RDN is `type=value`, e.g. \
             `dc=local` (at character 3)"
        );
    }

    #[test]
    fn attribute_types() {
        for ok in ["cn", "userPassword", "x-y", "2.5.4.3", "0.1", "1.10.0"] {
            assert!(is_attribute_type(ok), "{ok}");
        }
        for bad in ["", "1", "1.", ".1", "01.2", "a.b", "a_b", "-a", "1.2.", "é"] {
            assert!(!is_attribute_type(bad), "{bad}");
        }
    }

    // ---- properties ------------------------------------------------------------------------

    /// An RFC 4514 attribute value generator: any text, escaped where the grammar requires.
    fn escape_dn_value(v: &str) -> String {
        let mut out = String::new();
        let n = v.chars().count();
        for (i, c) in v.chars().enumerate() {
            match c {
                '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '\0' => out.push_str("\\00"),
                ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
                '#' if i == 0 => out.push_str("\\#"),
                _ => out.push(c),
            }
        }
        out
    }

    fn dn_strategy() -> impl Strategy<Value = String> {
        let rdn = (
            prop_oneof![
                Just("dc".to_string()),
                Just("cn".to_string()),
                Just("2.5.4.3".to_string()),
                "[a-zA-Z][a-zA-Z0-9-]{0,8}"
            ],
            "\\PC{1,12}",
        )
            .prop_map(|(t, v)| format!("{t}={}", escape_dn_value(&v)));
        prop::collection::vec(rdn, 1..5).prop_map(|v| v.join(","))
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
            let _ = parse_uri_list(&s);
            let _ = validate_dn(&s);
        }

        #[test]
        fn url_shaped_strings_never_panic(
            scheme in prop_oneof![Just("ldap"), Just("ldaps"), Just("ldapi"), Just("LDAP")],
            rest in "[a-z0-9:@\\[\\]%/?#=,+ .\\\\-]{0,40}",
        ) {
            let _ = parse_uri_list(&format!("{scheme}://{rest}"));
        }

        #[test]
        fn generated_dns_validate(dn in dn_strategy()) {
            prop_assert_eq!(validate_dn(&dn), Ok(()));
        }

        #[test]
        fn percent_encoded_dn_round_trips(dn in dn_strategy()) {
            let url = format!("ldap://h:1/{}", percent_encode_all(&dn));
            let list = parse_uri_list(&url).unwrap();
            prop_assert_eq!(list.urls[0].base_dn.as_deref(), Some(dn.as_str()));
        }

        #[test]
        fn raw_comma_dn_round_trips(dn in "[a-z]{1,5}=[a-zA-Z0-9]{1,8}(,[a-z]{1,5}=[a-zA-Z0-9]{1,8}){0,4}") {
            let list = parse_uri_list(&format!("ldap://h:1/{dn}")).unwrap();
            prop_assert_eq!(list.urls[0].base_dn.as_deref(), Some(dn.as_str()));
            prop_assert!(list.warnings.is_empty());
        }
    }
}
