//! Typed configuration, parsed once at plugin init from the `ldapdb_*` options.
//!
//! The parse is a pure function of a [`Sources`] value (option lookup + file reading), so tests
//! feed a `BTreeMap` and a fake file table. It collects every problem instead of stopping at the
//! first, so an admin sees all of them in one restart; each [`ConfigError`] displays as one log
//! line that names the option as written in imapd.conf (`sasl_ldapdb_...`) and the fix.
//! Passwords and private keys live in wipe-on-drop holders whose `Debug`/`Display` print
//! `<redacted>`; no message ever contains them.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::filter::{FilterError, FilterTemplate};
use crate::uri::{self, DnError, LdapUrl, Scheme, UriError};

/// Option keys as libsasl2's getopt sees them (imapd.conf adds the `sasl_` prefix).
pub mod keys {
    pub const URI: &str = "ldapdb_uri";
    pub const ID: &str = "ldapdb_id";
    pub const PW: &str = "ldapdb_pw";
    pub const PW_FILE: &str = "ldapdb_pw_file";
    pub const MECH: &str = "ldapdb_mech";
    pub const CANON_ATTR: &str = "ldapdb_canon_attr";
    pub const STARTTLS: &str = "ldapdb_starttls";
    pub const RC: &str = "ldapdb_rc";
    pub const SEARCH_BASE: &str = "ldapdb_search_base";
    pub const SCOPE: &str = "ldapdb_scope";
    pub const FILTER: &str = "ldapdb_filter";
    pub const ATTR_MAP: &str = "ldapdb_attr_map";
    pub const TIMEOUT: &str = "ldapdb_timeout";
    pub const TLS_CACERT: &str = "ldapdb_tls_cacert";
    pub const TLS_CERT: &str = "ldapdb_tls_cert";
    pub const TLS_KEY: &str = "ldapdb_tls_key";
    pub const ALLOW_EXPIRED_PASSWORD: &str = "ldapdb_allow_expired_password";
    /// Every option ldapbind reads.
    pub const ALL: &[&str] = &[
        URI,
        ID,
        PW,
        PW_FILE,
        MECH,
        CANON_ATTR,
        STARTTLS,
        RC,
        SEARCH_BASE,
        SCOPE,
        FILTER,
        ATTR_MAP,
        TIMEOUT,
        TLS_CACERT,
        TLS_CERT,
        TLS_KEY,
        ALLOW_EXPIRED_PASSWORD,
    ];
    /// libsasl2's own options that decide whether and how ldapbind is used (asked for with
    /// plugin name NULL, so imapd maps them to `<service>_sasl_X`, then `sasl_X`).
    pub const LIBRARY: &[&str] = &["pwcheck_method", "auxprop_plugin", "canon_user_plugin", "mech_list"];
}

pub use crate::filter::DEFAULT_FILTER;
/// Per-operation and connect timeout when neither `sasl_ldapdb_timeout` nor the rc file sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for any timeout: every LDAP wait blocks a mail daemon process.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_SCOPE: Scope = Scope::Sub;
pub const DEFAULT_STARTTLS: StartTls = StartTls::Off;
pub const DEFAULT_TLS_REQCERT: TlsReqCert = TlsReqCert::Demand;
/// Permission bits that make a password or key file readable by group or others.
pub const NOT_PRIVATE_MODE_BITS: u32 = 0o077;
/// Files read at init larger than this are refused (a CA bundle is a few hundred KiB).
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;
/// Used in examples when no base DN is known.
const EXAMPLE_BASE: &str = "dc=example,dc=com";

/// What the config parse may ask of the world.
pub trait Sources {
    /// Value of an option, key without prefix, e.g. `"ldapdb_uri"`.
    fn option(&self, key: &str) -> Option<String>;
    /// Contents and permission bits of a file.
    fn read_file(&self, path: &Path) -> io::Result<FileData>;
}

/// A file read at init. `contents` is zeroed on drop (it may hold a password or a key).
pub struct FileData {
    pub contents: Vec<u8>,
    /// `st_mode` permission bits (`& 0o7777`).
    pub mode: u32,
}

impl Drop for FileData {
    fn drop(&mut self) {
        wipe(&mut self.contents);
    }
}

impl fmt::Debug for FileData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileData {{ contents: <{} bytes>, mode: {:o} }}", self.contents.len(), self.mode)
    }
}

/// The real world: options from a lookup closure (libsasl2's getopt), files from the file system.
pub struct SystemSources<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Sources for SystemSources<F> {
    fn option(&self, key: &str) -> Option<String> {
        (self.0)(key)
    }

    fn read_file(&self, path: &Path) -> io::Result<FileData> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        // Metadata from the open handle, so mode and contents describe the same file.
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("larger than {MAX_FILE_SIZE} bytes")));
        }
        // Exact capacity: no reallocation leaves an unwiped copy of a secret behind.
        let cap = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
        let mut data = FileData { contents: Vec::with_capacity(cap), mode: meta.mode() & 0o7777 };
        file.take(MAX_FILE_SIZE + 1).read_to_end(&mut data.contents)?;
        Ok(data)
    }
}

/// Overwrite a buffer's whole allocation with zeros. Safe-code best effort: `black_box` keeps
/// the optimiser from dropping the writes as dead stores.
pub(crate) fn wipe(v: &mut Vec<u8>) {
    let cap = v.capacity();
    v.clear();
    v.resize(cap, 0);
    std::hint::black_box(&mut *v);
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    v.clear();
}

#[derive(Clone, Default)]
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// A password: `Debug`/`Display` print `<redacted>`, the bytes are zeroed on drop.
#[derive(Clone)]
pub struct Secret(Wiped);

impl Secret {
    /// Takes the string's buffer without copying it.
    pub fn new(s: String) -> Secret {
        Secret(Wiped(s.into_bytes()))
    }

    pub fn expose(&self) -> &str {
        // Built only from `String`s, so always UTF-8.
        std::str::from_utf8(&self.0.0).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secret bytes (a private key file): `<redacted>` when printed, zeroed on drop.
#[derive(Clone)]
pub struct SecretBytes(Wiped);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(Wiped(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How ldapbind binds before searching.
#[derive(Debug, Clone)]
pub enum Bind {
    Anonymous,
    Simple {
        dn: String,
        password: Secret,
    },
    /// SASL EXTERNAL: ldapi:// peer credentials or the TLS client certificate.
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    Off,
    /// Use StartTLS when the server offers it, continue in clear otherwise.
    Try,
    /// Fail when StartTLS cannot be established.
    Demand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    One,
    Sub,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "base",
            Scope::One => "one",
            Scope::Sub => "sub",
        }
    }
}

/// Server certificate checking. libldap's `try` fails on a bad certificate just like `demand`
/// (and a TLS server always sends one), so only `never` and `allow` map to `Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReqCert {
    Demand,
    Never,
}

/// Where the search base came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    SearchBaseOption,
    Url,
}

impl fmt::Display for BaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BaseSource::SearchBaseOption => "from sasl_ldapdb_search_base",
            BaseSource::Url => "from sasl_ldapdb_uri",
        })
    }
}

/// A client certificate (chain) read at init.
#[derive(Debug, Clone)]
pub struct CertFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// A client private key read at init; the contents are wiped on drop.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    pub pem: SecretBytes,
}

/// The whole configuration; built by [`Config::from_sources`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Tried in order.
    pub urls: Vec<LdapUrl>,
    /// Never empty.
    pub search_base: String,
    pub base_source: BaseSource,
    /// When the base DN came from a URL with an escape that decoded to a letter or digit (the
    /// seed's `%44`): the note that says so, for the run-time lines that name the base.
    pub base_hint: Option<String>,
    pub bind: Bind,
    pub canon_attr: Option<String>,
    pub starttls: StartTls,
    pub scope: Scope,
    pub filter: FilterTemplate,
    /// SASL property name (no leading `*`) → LDAP attribute; identity for names not present.
    pub attr_map: BTreeMap<String, String>,
    pub timeout: Duration,
    pub tls_cacert: Option<PathBuf>,
    pub tls_cacert_pem: Option<Vec<u8>>,
    pub tls_cert: Option<CertFile>,
    pub tls_key: Option<KeyFile>,
    pub tls_reqcert: TlsReqCert,
    /// `ldapdb_allow_expired_password`: an expired or must-change password still logs in.
    pub allow_expired_password: bool,
    /// NOTE-level lines for init.
    pub notes: Vec<Message>,
    /// WARN-level lines for init.
    pub warnings: Vec<Message>,
    /// Warnings an admin must see at the default `sasl_log_level` (1), logged at ERR by init: a
    /// secret file others may read.
    pub alerts: Vec<Message>,
}

/// One message for an admin about the configuration: what is wrong and, when there is
/// something to do, the fix. Made in parts where the message is made, so the doctor shows them
/// apart without reading the text; `Display` is the log line, `problem; fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub problem: String,
    pub fix: Option<String>,
}

impl Message {
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Message {
        Message { problem: problem.into(), fix: Some(fix.into()) }
    }

    /// A message with nothing to do about it.
    pub fn bare(problem: impl Into<String>) -> Message {
        Message { problem: problem.into(), fix: None }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// One configuration problem; `Display` is one log line with the option and the fix.
#[derive(Debug)]
pub enum ConfigError {
    MissingUri,
    Uri(UriError),
    /// `url` and `base` are examples built from the admin's own URL and `ldapdb_id`.
    NoSearchBase {
        url: String,
        base: String,
    },
    BaseDnConflict {
        first_url: String,
        first_dn: String,
        other_url: String,
        other_dn: String,
    },
    BadDn {
        option: &'static str,
        source: DnError,
    },
    IdNotADn {
        id: String,
        example: String,
    },
    IdWithoutPassword,
    PasswordWithoutId {
        option: &'static str,
        example: String,
    },
    PasswordAndPasswordFile,
    EmptyPassword {
        what: String,
    },
    PasswordNotUtf8 {
        path: PathBuf,
    },
    UnsupportedMech {
        mech: String,
    },
    ExternalWithoutIdentity {
        url: String,
    },
    BadAttributeName {
        option: &'static str,
        value: String,
    },
    NumericOid {
        option: &'static str,
        value: String,
        fix: String,
    },
    PasswordCanonAttr {
        attr: String,
        via: String,
    },
    BadStartTls {
        value: String,
    },
    BadAllowExpired {
        value: String,
    },
    BadScope {
        value: String,
    },
    Filter(FilterError),
    BadAttrMap {
        entry: String,
        reason: String,
    },
    BadTimeout {
        value: String,
    },
    NotAbsolute {
        what: String,
        path: String,
    },
    FileUnreadable {
        what: String,
        path: PathBuf,
        source: io::Error,
    },
    NotPem {
        what: String,
        path: PathBuf,
        marker: &'static str,
        tool: &'static str,
    },
    CertWithoutKey,
    KeyWithoutCert,
    BadRcValue {
        path: PathBuf,
        line: usize,
        keyword: String,
        value: String,
        expected: &'static str,
    },
}

impl ConfigError {
    /// What is wrong and the fix.
    pub fn message(&self) -> Message {
        match self {
            ConfigError::MissingUri => Message::new(
                "sasl_ldapdb_uri is not set",
                "add `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` to the service's config (e.g. \
                 ldap://glauth:3893/dc=users,dc=local), or remove ldapbind from sasl_auxprop_plugin",
            ),
            ConfigError::Uri(e) => e.message(),
            ConfigError::NoSearchBase { url, base } => Message::new(
                "no search base: neither sasl_ldapdb_uri nor sasl_ldapdb_search_base names one (ldapdb \
                 needs none, ldapbind searches for the user)",
                format!("add the base DN to the URL ({url}/{base}) or set `sasl_ldapdb_search_base: {base}`"),
            ),
            ConfigError::BaseDnConflict { first_url, first_dn, other_url, other_dn } => Message::new(
                format!(
                    "sasl_ldapdb_uri: `{first_url}` names base DN `{first_dn}` but `{other_url}` names `{other_dn}`"
                ),
                "ldapbind searches one base on whichever server answers, so make them the same or set \
                 sasl_ldapdb_search_base",
            ),
            ConfigError::BadDn { option, source } => {
                let Message { problem, fix } = source.message();
                Message { problem: format!("sasl_{option}: {problem}"), fix }
            }
            ConfigError::IdNotADn { id, example } => Message::new(
                format!("sasl_ldapdb_id: `{id}` is not a DN"),
                format!(
                    "ldapbind does a simple bind with a full DN (not ldapdb's SASL user name), e.g. \
                     `sasl_ldapdb_id: {example}` (Active Directory also takes `{id}@<its domain>` or \
                     `<DOMAIN>\\{id}`)"
                ),
            ),
            ConfigError::IdWithoutPassword => Message::new(
                "sasl_ldapdb_id is set but no password is",
                "set sasl_ldapdb_pw or sasl_ldapdb_pw_file (a file holding the password), or remove \
                 sasl_ldapdb_id to bind anonymously",
            ),
            ConfigError::PasswordWithoutId { option, example } => Message::new(
                format!("sasl_{option} is set but sasl_ldapdb_id is not"),
                format!("set sasl_ldapdb_id to the service account's full DN (e.g. `sasl_ldapdb_id: {example}`)"),
            ),
            ConfigError::PasswordAndPasswordFile => Message::new(
                "sasl_ldapdb_pw and sasl_ldapdb_pw_file are both set",
                "keep one (sasl_ldapdb_pw_file keeps the password out of imapd.conf)",
            ),
            ConfigError::EmptyPassword { what } => Message::new(
                format!("{what} is empty"),
                "an empty password makes an unauthenticated bind that servers accept without checking \
                 anything; put the service account's password there",
            ),
            ConfigError::PasswordNotUtf8 { path } => Message::new(
                format!("sasl_ldapdb_pw_file: {} is not UTF-8 text", path.display()),
                "write the password as UTF-8",
            ),
            ConfigError::UnsupportedMech { mech } => Message::new(
                format!(
                    "sasl_ldapdb_mech: {mech} is not supported: ldapbind does a simple bind as a DN (or \
                     SASL EXTERNAL)"
                ),
                "remove sasl_ldapdb_mech and set sasl_ldapdb_id to the service account's full DN and \
                 sasl_ldapdb_pw to its password",
            ),
            ConfigError::ExternalWithoutIdentity { url } => Message::new(
                format!("sasl_ldapdb_mech: EXTERNAL has no client identity for `{url}`"),
                "use an ldapi:// URL (peer credentials), or set sasl_ldapdb_tls_cert and \
                 sasl_ldapdb_tls_key and use ldaps:// or sasl_ldapdb_starttls",
            ),
            ConfigError::BadAttributeName { option, value } => Message::new(
                format!("sasl_{option}: `{value}` is not an LDAP attribute name"),
                "write a letter followed by letters, digits or `-` (e.g. mail)",
            ),
            ConfigError::NumericOid { option, value, fix } => Message::new(
                format!(
                    "sasl_{option}: `{value}` is the numeric OID of an attribute, but LDAP servers \
                     return attributes by name, so ldapbind would never find its values"
                ),
                fix.clone(),
            ),
            ConfigError::PasswordCanonAttr { attr, via } => Message::new(
                format!(
                    "sasl_ldapdb_canon_attr: `{attr}` holds passwords{via}, so a user's password would \
                     become the user name (logged, and handed to the mail server)"
                ),
                "set it to the attribute with the login name, e.g. uid or mail, or remove it to keep \
                 the name as typed",
            ),
            ConfigError::BadStartTls { value } => Message::new(
                format!("sasl_ldapdb_starttls: `{value}` is not `try` or `demand`"),
                "use demand (fail without TLS), try (TLS when the server offers it), or remove the line \
                 for no StartTLS",
            ),
            ConfigError::BadAllowExpired { value } => Message::new(
                format!("sasl_ldapdb_allow_expired_password: `{value}` is not yes or no"),
                "write yes to let expired and must-change passwords log in, or remove the line (no: the \
                 directory's verdict stands)",
            ),
            ConfigError::BadScope { value } => Message::new(
                format!("sasl_ldapdb_scope: `{value}` is not base, one or sub"),
                "use sub (the default: the whole subtree under the search base)",
            ),
            ConfigError::Filter(e) => e.message(),
            ConfigError::BadAttrMap { entry, reason } => Message::new(
                format!("sasl_ldapdb_attr_map: `{entry}` {reason}"),
                "write `property=attribute` pairs separated by spaces or commas, e.g. \
                 `userPassword=sambaNTPassword`",
            ),
            ConfigError::BadTimeout { value } => Message::new(
                format!(
                    "sasl_ldapdb_timeout: `{value}` is not a number of seconds from 0.001 to {}",
                    MAX_TIMEOUT.as_secs()
                ),
                "write e.g. 5 or 0.5",
            ),
            ConfigError::NotAbsolute { what, path } => Message::new(
                format!("{what}: `{path}` is not an absolute path"),
                "write the full path (the daemon's working directory is not predictable)",
            ),
            ConfigError::FileUnreadable { what, path, source } => Message::new(
                format!("{what}: cannot read {}: {source}", path.display()),
                "check the path and that the user the mail daemon runs as can read it",
            ),
            ConfigError::NotPem { what, path, marker, tool } => Message::new(
                format!("{what}: {} is not a PEM file with a `-----BEGIN {marker}` block", path.display()),
                format!("convert it to PEM (e.g. with `openssl {tool} -inform der -in FILE -out FILE.pem`)"),
            ),
            ConfigError::CertWithoutKey => Message::new(
                "sasl_ldapdb_tls_cert is set but sasl_ldapdb_tls_key is not",
                "set both (the client certificate and its private key) or neither",
            ),
            ConfigError::KeyWithoutCert => Message::new(
                "sasl_ldapdb_tls_key is set but sasl_ldapdb_tls_cert is not",
                "set both (the client certificate and its private key) or neither",
            ),
            ConfigError::BadRcValue { path, line, keyword, value, expected } => Message::new(
                format!("sasl_ldapdb_rc: `{keyword} {value}` in {} line {line} is not valid", path.display()),
                *expected,
            ),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Uri(e) => e.source(),
            ConfigError::Filter(e) => e.source(),
            ConfigError::BadDn { source, .. } => Some(source),
            ConfigError::FileUnreadable { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<UriError> for ConfigError {
    fn from(e: UriError) -> ConfigError {
        ConfigError::Uri(e)
    }
}

impl From<FilterError> for ConfigError {
    fn from(e: FilterError) -> ConfigError {
        ConfigError::Filter(e)
    }
}

/// Every problem found; `Display` is one line per problem.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// True when `ldapdb_uri` is set to something non-blank: ldapbind was meant to be used. When
/// false and ldapbind is not selected, init stays silent (libsasl2 loads every plugin).
pub fn is_configured(src: &impl Sources) -> bool {
    src.option(keys::URI).is_some_and(|s| !s.trim().is_empty())
}

impl Config {
    /// Parse every option; on failure return all problems found.
    pub fn from_sources(src: &impl Sources) -> Result<Config, ConfigErrors> {
        Parser {
            src,
            errors: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
            alerts: Vec::new(),
            suspect_base: false,
            base_hint: None,
        }
        .run()
    }

    /// The LDAP attribute for a SASL property name (a leading `*` is ignored, names compare
    /// ASCII case-insensitively): the `sasl_ldapdb_attr_map` entry, else the name itself.
    pub fn attribute_for<'a>(&'a self, property: &'a str) -> &'a str {
        let name = property.strip_prefix('*').unwrap_or(property);
        self.attr_map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or(name, |(_, v)| v.as_str())
    }

    /// One line describing the effective configuration, for a NOTE at init. Never contains a
    /// password.
    pub fn summary(&self) -> String {
        let servers: Vec<String> = self.urls.iter().map(LdapUrl::connect_url).collect();
        let bind = match &self.bind {
            Bind::Anonymous => "anonymous".to_string(),
            Bind::Simple { dn, .. } => format!("simple as {dn}"),
            Bind::External => "SASL EXTERNAL".to_string(),
        };
        format!(
            "servers {}; base `{}` ({}); scope {}; filter {}; bind {}; starttls {:?}; timeout {:?}",
            servers.join(" "),
            self.search_base,
            self.base_source,
            self.scope.as_str(),
            self.filter.as_str(),
            bind,
            self.starttls,
            self.timeout
        )
    }
}

/// Settings read from `sasl_ldapdb_rc`.
#[derive(Default)]
struct RcSettings {
    path: PathBuf,
    cacert: Option<String>,
    reqcert: Option<TlsReqCert>,
    network_timeout: Option<Duration>,
    timeout: Option<Duration>,
}

struct Parser<'s, S: Sources> {
    src: &'s S,
    errors: Vec<ConfigError>,
    notes: Vec<Message>,
    warnings: Vec<Message>,
    alerts: Vec<Message>,
    /// A URL's base DN had a `%XX` escape of a letter or digit (the seed's `%44`): the base is
    /// probably not what the admin meant, so no advice is built from it.
    suspect_base: bool,
    /// The first such escape's note ([`uri::UriWarning::base_hint`]).
    base_hint: Option<String>,
}

impl<S: Sources> Parser<'_, S> {
    /// Trimmed value; blank counts as unset.
    fn get(&self, key: &str) -> Option<String> {
        self.src.option(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn run(mut self) -> Result<Config, ConfigErrors> {
        let urls = self.urls();
        let urls_ok = urls.is_some();
        let urls = urls.unwrap_or_default();
        let rc = self.rc();
        let base = self.search_base(&urls, urls_ok);
        let starttls = self.starttls(&urls);
        let (tls_cacert, tls_cacert_pem) = self.cacert(rc.as_ref());
        let (tls_cert, tls_key) = self.client_cert();
        let bind = self.bind(&urls, base.as_ref().map(|b| b.0.as_str()), &tls_cert, starttls);
        let attr_map = self.attr_map();
        let canon_attr = self.canon_attr(&attr_map);
        let scope = self.scope();
        let filter = self.filter();
        let timeout = self.timeout(rc.as_ref());
        let tls_reqcert = rc.as_ref().and_then(|r| r.reqcert).unwrap_or(DEFAULT_TLS_REQCERT);
        let allow_expired_password = self.allow_expired_password();

        self.cross_checks(&urls, &bind, starttls, tls_reqcert, tls_cacert.is_some() || tls_cert.is_some());

        let (search_base, base_source) = base.unwrap_or((String::new(), BaseSource::Url));
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let base_hint = self.base_hint.take().filter(|_| base_source == BaseSource::Url);
        Ok(Config {
            urls,
            search_base,
            base_source,
            base_hint,
            bind,
            canon_attr,
            starttls,
            scope,
            filter,
            attr_map,
            timeout,
            tls_cacert,
            tls_cacert_pem,
            tls_cert,
            tls_key,
            tls_reqcert,
            allow_expired_password,
            notes: self.notes,
            warnings: self.warnings,
            alerts: self.alerts,
        })
    }

    fn urls(&mut self) -> Option<Vec<LdapUrl>> {
        let Some(raw) = self.src.option(keys::URI) else {
            self.errors.push(ConfigError::MissingUri);
            return None;
        };
        match uri::parse_uri_list(&raw) {
            Ok(list) => {
                self.suspect_base = list.warnings.iter().any(|w| matches!(w, uri::UriWarning::AlnumEscape { .. }));
                self.base_hint = list.warnings.iter().find_map(uri::UriWarning::base_hint);
                self.warnings.extend(list.warnings.iter().map(uri::UriWarning::message));
                Some(list.urls)
            }
            Err(e) => {
                self.errors.push(e.into());
                None
            }
        }
    }

    /// Read a file named by an option (or the rc file); errors are recorded, `None` returned.
    fn read(&mut self, what: &str, path: &str) -> Option<(PathBuf, FileData)> {
        let p = PathBuf::from(path);
        if !p.is_absolute() {
            self.errors.push(ConfigError::NotAbsolute { what: what.to_string(), path: path.to_string() });
            return None;
        }
        match self.src.read_file(&p) {
            Ok(data) => Some((p, data)),
            Err(source) => {
                self.errors.push(ConfigError::FileUnreadable { what: what.to_string(), path: p, source });
                None
            }
        }
    }

    fn warn_if_not_private(&mut self, what: &str, path: &Path, mode: u32) {
        if mode & NOT_PRIVATE_MODE_BITS != 0 {
            self.alerts.push(Message::new(
                format!(
                    "{what}: {} is readable by {} (mode {:04o})",
                    path.display(),
                    if mode & 0o007 != 0 { "everyone" } else { "its group" },
                    mode & 0o7777
                ),
                "`chmod 600` it and make it owned by the user the mail daemon runs as",
            ));
        }
    }

    fn rc(&mut self) -> Option<RcSettings> {
        let path = self.get(keys::RC)?;
        let (path, data) = self.read("sasl_ldapdb_rc", &path)?;
        let text = String::from_utf8_lossy(&data.contents).into_owned();
        let mut rc = RcSettings { path, ..RcSettings::default() };
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, value) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            let kw = keyword.to_ascii_uppercase();
            let bad = |expected: &'static str| ConfigError::BadRcValue {
                path: rc.path.clone(),
                line: line_no,
                keyword: keyword.to_string(),
                value: value.to_string(),
                expected,
            };
            match kw.as_str() {
                "TLS_CACERT" => rc.cacert = Some(value.to_string()),
                "TLS_REQCERT" => match value.to_ascii_lowercase().as_str() {
                    "never" | "allow" => rc.reqcert = Some(TlsReqCert::Never),
                    "try" | "demand" | "hard" => rc.reqcert = Some(TlsReqCert::Demand),
                    _ => self.errors.push(bad("use demand (the default), try, allow or never")),
                },
                "NETWORK_TIMEOUT" | "TIMEOUT" => match value.parse::<i64>() {
                    Ok(secs) if secs > 0 && secs.unsigned_abs() <= MAX_TIMEOUT.as_secs() => {
                        let d = Some(Duration::from_secs(secs.unsigned_abs()));
                        if kw == "TIMEOUT" {
                            rc.timeout = d;
                        } else {
                            rc.network_timeout = d;
                        }
                    }
                    Ok(_) => self.warnings.push(Message::new(
                        format!(
                            "sasl_ldapdb_rc: `{keyword} {value}` in {} line {line_no} is ignored: \
                             ldapbind always waits a bounded time (1 to {} seconds)",
                            rc.path.display(),
                            MAX_TIMEOUT.as_secs()
                        ),
                        "set sasl_ldapdb_timeout to choose it",
                    )),
                    Err(_) => self.errors.push(bad("write a whole number of seconds")),
                },
                _ => {
                    let replacement = match kw.as_str() {
                        "URI" | "HOST" | "PORT" => Some("sasl_ldapdb_uri"),
                        "BASE" => Some("sasl_ldapdb_search_base"),
                        "BINDDN" => Some("sasl_ldapdb_id"),
                        "TLS_CERT" => Some("sasl_ldapdb_tls_cert"),
                        "TLS_KEY" => Some("sasl_ldapdb_tls_key"),
                        "TLS_CACERTDIR" => Some("sasl_ldapdb_tls_cacert (a PEM bundle file)"),
                        "SASL_MECH" => Some("sasl_ldapdb_mech"),
                        _ => None,
                    };
                    if let Some(option) = replacement {
                        self.warnings.push(Message::new(
                            format!(
                                "sasl_ldapdb_rc: `{keyword}` in {} line {line_no} is not read by ldapbind",
                                rc.path.display()
                            ),
                            format!("set {option} instead"),
                        ));
                    }
                }
            }
        }
        Some(rc)
    }

    fn search_base(&mut self, urls: &[LdapUrl], urls_ok: bool) -> Option<(String, BaseSource)> {
        let url_dns: Vec<(&LdapUrl, &str)> = urls.iter().filter_map(|u| u.base_dn.as_deref().map(|d| (u, d))).collect();
        if let Some(base) = self.get(keys::SEARCH_BASE) {
            if let Err(source) = uri::validate_dn(&base) {
                self.errors.push(ConfigError::BadDn { option: keys::SEARCH_BASE, source });
                return None;
            }
            if let Some((u, dn)) = url_dns.iter().find(|(_, d)| !d.eq_ignore_ascii_case(&base)) {
                self.notes.push(Message::bare(format!(
                    "sasl_ldapdb_search_base `{base}` overrides the base DN `{dn}` in \
                     sasl_ldapdb_uri ({})",
                    u.original
                )));
            }
            return Some((base, BaseSource::SearchBaseOption));
        }
        let Some(&(first_url, first_dn)) = url_dns.first() else {
            if let (true, Some(url)) = (urls_ok, urls.first()) {
                // The example base: the dc= suffix of the service DN, the usual naming context.
                let id = self.get(keys::ID).unwrap_or_default();
                let rdns: Vec<&str> = id.split(',').map(str::trim).collect();
                let start = rdns.iter().position(|r| r.to_ascii_lowercase().starts_with("dc="));
                let base = start.map_or(EXAMPLE_BASE.to_owned(), |i| rdns[i..].join(","));
                self.errors.push(ConfigError::NoSearchBase { url: url.connect_url(), base });
            }
            return None;
        };
        if let Some((other_url, other_dn)) = url_dns.iter().find(|(_, d)| !d.eq_ignore_ascii_case(first_dn)) {
            self.errors.push(ConfigError::BaseDnConflict {
                first_url: first_url.original.clone(),
                first_dn: first_dn.to_string(),
                other_url: other_url.original.clone(),
                other_dn: other_dn.to_string(),
            });
            return None;
        }
        Some((first_dn.to_string(), BaseSource::Url))
    }

    fn starttls(&mut self, urls: &[LdapUrl]) -> StartTls {
        let Some(value) = self.get(keys::STARTTLS) else {
            return DEFAULT_STARTTLS;
        };
        let mode = if value.eq_ignore_ascii_case("try") {
            StartTls::Try
        } else if value.eq_ignore_ascii_case("demand") {
            StartTls::Demand
        } else {
            self.errors.push(ConfigError::BadStartTls { value });
            return DEFAULT_STARTTLS;
        };
        if !urls.is_empty() && urls.iter().all(|u| u.scheme != Scheme::Ldap) {
            self.warnings.push(Message::new(
                "sasl_ldapdb_starttls has no effect: StartTLS applies to ldap:// URLs only \
                 (ldaps:// is TLS already, ldapi:// is a local socket)",
                "remove the line",
            ));
        }
        mode
    }

    fn cacert(&mut self, rc: Option<&RcSettings>) -> (Option<PathBuf>, Option<Vec<u8>>) {
        let (what, path) = match (self.get(keys::TLS_CACERT), rc) {
            (Some(p), _) => ("sasl_ldapdb_tls_cacert".to_string(), p),
            (None, Some(RcSettings { cacert: Some(p), path, .. })) => {
                (format!("sasl_ldapdb_rc: TLS_CACERT in {}", path.display()), p.clone())
            }
            (None, _) => return (None, None),
        };
        let Some((path, mut data)) = self.read(&what, &path) else {
            return (None, None);
        };
        let pem = std::mem::take(&mut data.contents);
        if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
            self.errors.push(ConfigError::NotPem { what, path, marker: "CERTIFICATE-----", tool: "x509" });
            return (None, None);
        }
        (Some(path), Some(pem))
    }

    fn client_cert(&mut self) -> (Option<CertFile>, Option<KeyFile>) {
        let cert = self.get(keys::TLS_CERT);
        let key = self.get(keys::TLS_KEY);
        let (cert, key) = match (cert, key) {
            (None, None) => return (None, None),
            (Some(_), None) => {
                self.errors.push(ConfigError::CertWithoutKey);
                return (None, None);
            }
            (None, Some(_)) => {
                self.errors.push(ConfigError::KeyWithoutCert);
                return (None, None);
            }
            (Some(c), Some(k)) => (c, k),
        };
        let cert = self.read("sasl_ldapdb_tls_cert", &cert).and_then(|(path, mut data)| {
            let pem = std::mem::take(&mut data.contents);
            if contains(&pem, b"-----BEGIN CERTIFICATE-----") {
                Some(CertFile { path, pem })
            } else {
                self.errors.push(ConfigError::NotPem {
                    what: "sasl_ldapdb_tls_cert".into(),
                    path,
                    marker: "CERTIFICATE-----",
                    tool: "x509",
                });
                None
            }
        });
        let key = self.read("sasl_ldapdb_tls_key", &key).and_then(|(path, mut data)| {
            self.warn_if_not_private("sasl_ldapdb_tls_key", &path, data.mode);
            let pem = SecretBytes::new(std::mem::take(&mut data.contents));
            if contains(pem.expose(), b"-----BEGIN ") && contains(pem.expose(), b"PRIVATE KEY-----") {
                Some(KeyFile { path, pem })
            } else {
                self.errors.push(ConfigError::NotPem {
                    what: "sasl_ldapdb_tls_key".into(),
                    path,
                    marker: "PRIVATE KEY-----",
                    tool: "pkey",
                });
                None
            }
        });
        match (cert, key) {
            (Some(c), Some(k)) => (Some(c), Some(k)),
            _ => (None, None),
        }
    }

    fn bind(&mut self, urls: &[LdapUrl], base: Option<&str>, cert: &Option<CertFile>, starttls: StartTls) -> Bind {
        let mech = self.get(keys::MECH);
        let id = self.get(keys::ID);
        // Passwords are not trimmed: spaces may be part of them.
        let pw = self.src.option(keys::PW).filter(|p| !p.is_empty());
        let pw_file = self.get(keys::PW_FILE);
        let example_base = base.unwrap_or(EXAMPLE_BASE);

        match mech.as_deref() {
            None => {}
            Some(m) if m.eq_ignore_ascii_case("SIMPLE") => {}
            Some(m) if m.eq_ignore_ascii_case("EXTERNAL") => {
                for (set, option) in [
                    (id.is_some(), "sasl_ldapdb_id"),
                    (pw.is_some(), "sasl_ldapdb_pw"),
                    (pw_file.is_some(), "sasl_ldapdb_pw_file"),
                ] {
                    if set {
                        self.warnings.push(Message::new(
                            format!(
                                "{option} is ignored with sasl_ldapdb_mech: EXTERNAL (the identity \
                                 comes from the ldapi:// peer credentials or the TLS client \
                                 certificate)"
                            ),
                            "remove it",
                        ));
                    }
                }
                let has_identity = |u: &LdapUrl| match u.scheme {
                    Scheme::Ldapi => true,
                    Scheme::Ldaps => cert.is_some(),
                    Scheme::Ldap => cert.is_some() && starttls != StartTls::Off,
                };
                if let Some(u) = urls.iter().find(|u| !has_identity(u)) {
                    self.errors.push(ConfigError::ExternalWithoutIdentity { url: u.original.clone() });
                }
                return Bind::External;
            }
            Some(m) => {
                // Keep going: the fix is a simple bind, so its problems are worth reporting now.
                self.errors.push(ConfigError::UnsupportedMech { mech: m.to_string() });
            }
        }

        if pw.is_some() && pw_file.is_some() {
            self.errors.push(ConfigError::PasswordAndPasswordFile);
            return Bind::Anonymous;
        }
        let Some(id) = id else {
            if pw.is_some() || pw_file.is_some() {
                self.errors.push(ConfigError::PasswordWithoutId {
                    option: if pw.is_some() { keys::PW } else { keys::PW_FILE },
                    example: format!("cn=cyrus,ou=machines,{example_base}"),
                });
            } else {
                self.notes.push(Message::new(
                    "binding anonymously because sasl_ldapdb_id is not set",
                    "set sasl_ldapdb_id and sasl_ldapdb_pw if the server refuses anonymous searches",
                ));
            }
            return Bind::Anonymous;
        };
        let dn_ok = self.check_bind_dn(&id, base, example_base);
        let password = match (pw, pw_file) {
            (Some(pw), _) => Some(Secret::new(pw)),
            (None, Some(path)) => self.password_file(&path),
            (None, None) => {
                self.errors.push(ConfigError::IdWithoutPassword);
                None
            }
        };
        match password {
            Some(p) if p.is_empty() => {
                // Only reachable from a file: an empty option is treated as unset.
                self.errors.push(ConfigError::EmptyPassword { what: "sasl_ldapdb_pw_file".to_string() });
                Bind::Anonymous
            }
            Some(password) if dn_ok => Bind::Simple { dn: id, password },
            _ => Bind::Anonymous,
        }
    }

    fn check_bind_dn(&mut self, id: &str, base: Option<&str>, example_base: &str) -> bool {
        // Active Directory's `user@domain` and `DOMAIN\user`: names, not DNs, so no suffix check.
        if crate::ad::is_bind_name(id) {
            return true;
        }
        if !id.contains('=') {
            self.errors.push(ConfigError::IdNotADn {
                id: id.to_string(),
                example: format!("cn={},{example_base}", ldap3::dn_escape(id)),
            });
            return false;
        }
        if let Err(source) = uri::validate_dn(id) {
            self.errors.push(ConfigError::BadDn { option: keys::ID, source });
            return false;
        }
        // The seed's `cn=cyrus,ou=machines`: written as if the base DN were appended (it never is).
        if let Some(base) = base.filter(|_| !self.suspect_base)
            && let (Some(id_last), Some(base_last)) = (last_rdn(id), last_rdn(base))
            && !id_last.eq_ignore_ascii_case(base_last)
        {
            self.warnings.push(Message::new(
                format!(
                    "sasl_ldapdb_id `{id}` does not end in the directory suffix `{base_last}` of the \
                     search base `{base}`"
                ),
                format!(
                    "ldapbind binds with it exactly as written (nothing is appended); if the account \
                     is under the base, write the full DN, e.g. `{id},{base}`"
                ),
            ));
        }
        true
    }

    fn password_file(&mut self, path: &str) -> Option<Secret> {
        let (path, mut data) = self.read("sasl_ldapdb_pw_file", path)?;
        self.warn_if_not_private("sasl_ldapdb_pw_file", &path, data.mode);
        let mut bytes = std::mem::take(&mut data.contents);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.contains(&b'\n') {
            self.warnings.push(Message::new(
                format!("sasl_ldapdb_pw_file: {} has more than one line", path.display()),
                "ldapbind uses all of it except one trailing newline as the password; remove extra lines",
            ));
        }
        if bytes.contains(&0) {
            self.warnings.push(Message::new(
                format!(
                    "sasl_ldapdb_pw_file: {} contains a NUL byte, which ldapbind sends as part of the \
                     password (no LDAP tool can set such a password; a file saved as UTF-16 has one \
                     after every letter)",
                    path.display()
                ),
                "write the password as UTF-8 text",
            ));
        }
        match String::from_utf8(bytes) {
            Ok(s) => Some(Secret::new(s)),
            Err(e) => {
                let mut bytes = e.into_bytes();
                wipe(&mut bytes);
                self.errors.push(ConfigError::PasswordNotUtf8 { path });
                None
            }
        }
    }

    /// A libsasl2 boolean (yes/no, on/off, true/false, 1/0); absent is no.
    fn allow_expired_password(&mut self) -> bool {
        let Some(value) = self.get(keys::ALLOW_EXPIRED_PASSWORD) else {
            return false;
        };
        match value.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => true,
            "no" | "off" | "false" | "0" => false,
            _ => {
                self.errors.push(ConfigError::BadAllowExpired { value });
                false
            }
        }
    }

    /// Never a password attribute: its value would become the user name.
    fn canon_attr(&mut self, attr_map: &BTreeMap<String, String>) -> Option<String> {
        let value = self.get(keys::CANON_ATTR)?;
        if !uri::is_attribute_type(&value) {
            self.errors.push(ConfigError::BadAttributeName { option: keys::CANON_ATTR, value });
            return None;
        }
        let name = oid_name(&value).unwrap_or(&value);
        let mapped_from = attr_map.iter().find(|(prop, attr)| is_secret_name(prop) && attr.eq_ignore_ascii_case(name));
        if let Some((prop, _)) = mapped_from {
            let via = format!(" (sasl_ldapdb_attr_map reads {prop} from it)");
            self.errors.push(ConfigError::PasswordCanonAttr { attr: value, via });
            return None;
        }
        if is_secret_name(name) {
            let via = if name == value { String::new() } else { format!(" (it is {name})") };
            self.errors.push(ConfigError::PasswordCanonAttr { attr: value, via });
            return None;
        }
        if is_numeric_oid(&value) {
            let fix = match oid_name(&value) {
                Some(name) => format!("write `sasl_ldapdb_canon_attr: {name}`"),
                None => format!("write the attribute's name instead ({SCHEMA_HINT})"),
            };
            self.errors.push(ConfigError::NumericOid { option: keys::CANON_ATTR, value, fix });
            return None;
        }
        Some(value)
    }

    fn scope(&mut self) -> Scope {
        let Some(value) = self.get(keys::SCOPE) else {
            return DEFAULT_SCOPE;
        };
        match value.to_ascii_lowercase().as_str() {
            "base" => Scope::Base,
            "one" | "onelevel" => Scope::One,
            "sub" | "subtree" => Scope::Sub,
            _ => {
                self.errors.push(ConfigError::BadScope { value });
                DEFAULT_SCOPE
            }
        }
    }

    fn filter(&mut self) -> FilterTemplate {
        let Some(value) = self.get(keys::FILTER) else {
            return FilterTemplate::default();
        };
        FilterTemplate::parse(&value).unwrap_or_else(|e| {
            self.errors.push(e.into());
            FilterTemplate::default()
        })
    }

    fn attr_map(&mut self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let Some(value) = self.get(keys::ATTR_MAP) else {
            return map;
        };
        for entry in value.split(|c: char| c == ',' || c.is_ascii_whitespace()).filter(|e| !e.is_empty()) {
            let bad = |reason: &str| ConfigError::BadAttrMap { entry: entry.to_string(), reason: reason.to_string() };
            let Some((prop, attr)) = entry.split_once('=') else {
                self.errors.push(bad("has no `=`"));
                continue;
            };
            let prop = prop.strip_prefix('*').unwrap_or(prop);
            if prop.is_empty() || !prop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                self.errors.push(bad("does not start with a SASL property name (e.g. userPassword)"));
                continue;
            }
            if !uri::is_attribute_type(attr) {
                self.errors.push(bad("does not map to an LDAP attribute name (a letter followed by letters, digits \
                     or `-`)"));
                continue;
            }
            if is_numeric_oid(attr) {
                let fix = match oid_name(attr) {
                    Some(name) if name.eq_ignore_ascii_case(prop) => {
                        format!("remove the entry (ldapbind reads {prop} as {name} without it)")
                    }
                    Some(name) => format!("write `{prop}={name}`"),
                    None => format!("write `{prop}=` and the attribute's name ({SCHEMA_HINT})"),
                };
                self.errors.push(ConfigError::NumericOid { option: keys::ATTR_MAP, value: entry.to_string(), fix });
                continue;
            }
            if map.keys().any(|k: &String| k.eq_ignore_ascii_case(prop)) {
                self.errors.push(bad("maps a property that is already mapped"));
                continue;
            }
            map.insert(prop.to_string(), attr.to_string());
        }
        map
    }

    fn timeout(&mut self, rc: Option<&RcSettings>) -> Duration {
        if let Some(value) = self.get(keys::TIMEOUT) {
            match parse_seconds(&value) {
                Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => return d,
                _ => {
                    self.errors.push(ConfigError::BadTimeout { value });
                    return DEFAULT_TIMEOUT;
                }
            }
        }
        rc.and_then(|r| r.network_timeout.or(r.timeout)).unwrap_or(DEFAULT_TIMEOUT)
    }

    fn cross_checks(
        &mut self,
        urls: &[LdapUrl],
        bind: &Bind,
        starttls: StartTls,
        reqcert: TlsReqCert,
        tls_files: bool,
    ) {
        let uses_tls =
            urls.iter().any(|u| u.scheme == Scheme::Ldaps || (u.scheme == Scheme::Ldap && starttls != StartTls::Off));
        if reqcert == TlsReqCert::Never && uses_tls {
            self.warnings.push(Message::new(
                "sasl_ldapdb_rc: TLS_REQCERT never/allow: ldapbind will not verify the LDAP \
                 server's certificate, so anyone on the network path can read the bind password \
                 and user passwords",
                "set TLS_REQCERT demand and sasl_ldapdb_tls_cacert",
            ));
        }
        if tls_files && !urls.is_empty() && !uses_tls {
            self.warnings.push(Message::new(
                "sasl_ldapdb_tls_* files are set but no URL uses TLS (no ldaps:// and no \
                 sasl_ldapdb_starttls)",
                "they are not used",
            ));
        }
        if let Bind::Simple { .. } = bind
            && starttls == StartTls::Off
            && let Some(u) = urls.iter().find(|u| u.scheme == Scheme::Ldap && !is_loopback(&u.host))
        {
            self.warnings.push(Message::new(
                format!(
                    "sasl_ldapdb_uri: `{}` is plain ldap:// to another host, so the bind password \
                     crosses the network in clear",
                    u.original
                ),
                "use ldaps:// or set `sasl_ldapdb_starttls: demand`",
            ));
        }
    }
}

/// Where an admin finds an attribute's name for its OID.
const SCHEMA_HINT: &str = "the server's schema names it: \
     `ldapsearch -x -H URL -b cn=subschema -s base attributeTypes`";

/// Attribute OIDs admins meet, and the names servers return those attributes by.
const WELL_KNOWN_OIDS: &[(&str, &str)] = &[
    ("2.5.4.3", "cn"),
    ("2.5.4.4", "sn"),
    ("2.5.4.35", "userPassword"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "givenName"),
    ("0.9.2342.19200300.100.1.1", "uid"),
    ("0.9.2342.19200300.100.1.3", "mail"),
    ("1.2.840.113549.1.9.1", "email"),
    ("1.3.6.1.1.1.1.0", "uidNumber"),
    ("1.3.6.1.4.1.4203.1.3.4", "authPassword"),
    ("2.16.840.1.113730.3.1.3", "employeeNumber"),
    ("2.16.840.1.113730.3.1.241", "displayName"),
    ("1.2.840.113556.1.4.90", "unicodePwd"),
    ("1.2.840.113556.1.4.221", "sAMAccountName"),
    ("1.2.840.113556.1.4.656", "userPrincipalName"),
];

/// The name of a well-known attribute OID.
fn oid_name(oid: &str) -> Option<&'static str> {
    WELL_KNOWN_OIDS.iter().find(|(o, _)| *o == oid).map(|(_, name)| *name)
}

/// `2.5.4.3`, as opposed to an attribute name (which starts with a letter).
fn is_numeric_oid(attr: &str) -> bool {
    attr.starts_with(|c: char| c.is_ascii_digit())
}

/// A property or attribute that holds a password or a secret: `userPassword`, `authPassword`,
/// `cmusaslsecret*`, `unicodePwd`, `sambaNTPassword`, ... (generous on purpose).
fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["password", "pwd", "secret"].iter().any(|w| lower.contains(w))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_loopback(host: &str) -> bool {
    // `::ffff:127.0.0.1` is 127.0.0.1 written as IPv6: loopback too.
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The last RDN of a valid DN (text after the last unescaped `,`).
fn last_rdn(dn: &str) -> Option<&str> {
    let b = dn.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b',' => {
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    dn.get(start..).filter(|s| !s.is_empty())
}

/// `5`, `0.5`, `2.25`: decimal seconds, at most 9 fractional digits. No sign, exponent, inf/nan.
fn parse_seconds(s: &str) -> Option<Duration> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || int.len() > 9
        || frac.len() > 9
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log lines of a list of messages.
    fn lines(messages: &[Message]) -> Vec<String> {
        messages.iter().map(ToString::to_string).collect()
    }
    use proptest::prelude::*;
    use std::cell::RefCell;

    const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    /// Options from a map, files from a table; records which files were read.
    #[derive(Default)]
    struct Fake {
        options: BTreeMap<String, String>,
        files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
        reads: RefCell<Vec<PathBuf>>,
    }

    impl Fake {
        fn new(opts: &[(&str, &str)]) -> Fake {
            let mut f = Fake::default();
            for (k, v) in opts {
                f.options.insert(k.to_string(), v.to_string());
            }
            f
        }
        fn file(mut self, path: &str, contents: &str, mode: u32) -> Fake {
            self.files.insert(path.into(), (contents.as_bytes().to_vec(), mode));
            self
        }
        fn set(mut self, k: &str, v: &str) -> Fake {
            self.options.insert(k.into(), v.into());
            self
        }
    }

    impl Sources for Fake {
        fn option(&self, key: &str) -> Option<String> {
            assert!(keys::ALL.contains(&key), "unknown key {key}");
            self.options.get(key).cloned()
        }
        fn read_file(&self, path: &Path) -> io::Result<FileData> {
            self.reads.borrow_mut().push(path.to_path_buf());
            match self.files.get(path) {
                Some((c, m)) => Ok(FileData { contents: c.clone(), mode: *m }),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }

    const URI: &str = "ldap://glauth:3893/dc=users,dc=local";

    fn minimal() -> Fake {
        Fake::new(&[("ldapdb_uri", URI)])
    }

    fn ok(f: &Fake) -> Config {
        match Config::from_sources(f) {
            Ok(c) => c,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn errs(f: &Fake) -> Vec<String> {
        match Config::from_sources(f) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn one_err(f: &Fake) -> String {
        let e = errs(f);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }

    /// The one error `f` gives, as a value.
    fn the_error(f: &Fake) -> ConfigError {
        let mut e = Config::from_sources(f).expect_err("an error").0;
        assert_eq!(e.len(), 1, "{e:#?}");
        e.remove(0)
    }

    /// Asserts `m`'s problem and fix, and that `shown` (the log line) is the two joined by `; `.
    #[track_caller]
    fn parts(shown: &dyn fmt::Display, m: Message, problem: &str, fix: &str) {
        assert_eq!(
            (m.problem.as_str(), m.fix.as_deref(), shown.to_string()),
            (problem, Some(fix), format!("{problem}; {fix}"))
        );
    }

    #[test]
    fn every_message_family_gives_its_problem_and_fix_apart() {
        // ConfigError
        let e = the_error(&minimal().set("ldapdb_scope", "deep"));
        parts(
            &e,
            e.message(),
            "sasl_ldapdb_scope: `deep` is not base, one or sub",
            "use sub (the default: the \
             whole subtree under the search base)",
        );
        // UriError
        let e = uri::parse_uri_list("ldap://h#x/dc=x").unwrap_err();
        parts(
            &e,
            e.message(),
            "sasl_ldapdb_uri: `ldap://h#x/dc=x` has a `#` fragment",
            "remove it (write a `#` \
             in the DN as %23)",
        );
        // FilterError
        let e = FilterTemplate::parse("(uid=%x)").unwrap_err();
        parts(
            &e,
            e.message(),
            "sasl_ldapdb_filter: unknown placeholder `%x` in `(uid=%x)`",
            "use %u (name as given), %U (part before @), %d (domain or realm), %r (realm) or %% (a literal %)",
        );
        // DnError, with the position after its fix
        let e = uri::validate_dn("dc=a,,dc=b").unwrap_err();
        parts(
            &e,
            e.message(),
            "`dc=a,,dc=b` is not a valid DN: empty RDN (two commas in a row, or a comma at the start or end)",
            "remove the extra comma (at character 6)",
        );
        // UriWarning
        let w = &uri::parse_uri_list("ldap://h/dc=x/").unwrap().warnings[0];
        parts(
            w,
            w.message(),
            "sasl_ldapdb_uri: ignoring the `/` after the base DN in `ldap://h/dc=x/` (using base DN `dc=x`)",
            "remove the trailing `/`",
        );
        // Config warnings, notes and alerts
        let w = ok(&minimal().set("ldapdb_starttls", "demand").set("ldapdb_uri", "ldaps://h/dc=x")).warnings.remove(0);
        parts(
            &w,
            w.clone(),
            "sasl_ldapdb_starttls has no effect: StartTLS applies to ldap:// URLs only (ldaps:// is TLS already, \
             ldapi:// is a local socket)",
            "remove the line",
        );
    }

    // ---- defaults ----------------------------------------------------------------------------

    #[test]
    fn minimal_config_defaults() {
        let c = ok(&minimal());
        assert_eq!(c.urls.len(), 1);
        assert_eq!(c.urls[0].port, 3893);
        assert_eq!(c.search_base, "dc=users,dc=local");
        assert_eq!(c.base_source, BaseSource::Url);
        assert!(matches!(c.bind, Bind::Anonymous));
        assert_eq!(c.canon_attr, None);
        assert_eq!(c.starttls, StartTls::Off);
        assert_eq!(c.scope, Scope::Sub);
        assert_eq!(c.filter.as_str(), DEFAULT_FILTER);
        assert!(c.attr_map.is_empty());
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!((c.tls_cacert, c.tls_cacert_pem), (None, None));
        assert!(c.tls_cert.is_none() && c.tls_key.is_none());
        assert_eq!(c.tls_reqcert, TlsReqCert::Demand);
        assert_eq!(
            lines(&c.notes),
            vec![
                "binding anonymously because sasl_ldapdb_id is not set; set sasl_ldapdb_id and \
                 sasl_ldapdb_pw if the server refuses anonymous searches"
            ]
        );
        assert!(lines(&c.warnings).is_empty(), "{:?}", lines(&c.warnings));
    }

    #[test]
    fn blank_options_count_as_unset() {
        let f = minimal()
            .set("ldapdb_scope", "  ")
            .set("ldapdb_filter", "")
            .set("ldapdb_id", " ")
            .set("ldapdb_pw", "")
            .set("ldapdb_mech", "");
        let c = ok(&f);
        assert!(matches!(c.bind, Bind::Anonymous));
        assert_eq!(c.scope, Scope::Sub);
    }

    #[test]
    fn summary_has_no_password() {
        let f = minimal().set("ldapdb_id", "cn=cyrus,dc=users,dc=local").set("ldapdb_pw", "hunter2");
        let c = ok(&f);
        let s = c.summary();
        assert_eq!(
            s,
            "servers ldap://glauth:3893; base `dc=users,dc=local` (from sasl_ldapdb_uri); scope \
             sub; filter (|(uid=%u)(mail=%u)); bind simple as cn=cyrus,dc=users,dc=local; starttls \
             Off; timeout 5s"
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    // ---- uri / is_configured -----------------------------------------------------------------

    #[test]
    fn missing_uri() {
        let f = Fake::default();
        assert!(!is_configured(&f));
        assert_eq!(
            one_err(&f),
            "sasl_ldapdb_uri is not set; add `sasl_ldapdb_uri: ldap://HOST:PORT/BASE-DN` to the \
             service's config (e.g. ldap://glauth:3893/dc=users,dc=local), or remove ldapbind from \
             sasl_auxprop_plugin"
        );
    }

    #[test]
    fn is_configured_needs_a_non_blank_uri() {
        assert!(is_configured(&minimal()));
        assert!(!is_configured(&Fake::new(&[("ldapdb_uri", " \t")])));
        assert!(!is_configured(&Fake::new(&[("ldapdb_id", "cn=x")])));
    }

    #[test]
    fn blank_uri_and_bad_uri_are_uri_errors() {
        let e = one_err(&Fake::new(&[("ldapdb_uri", "  ")]));
        assert!(e.starts_with("sasl_ldapdb_uri is empty; "), "{e}");
        let e = one_err(&Fake::new(&[("ldapdb_uri", "ldap://glauth:0/dc=x")]));
        assert!(e.starts_with("sasl_ldapdb_uri: port `0`"), "{e}");
    }

    #[test]
    fn uri_warnings_become_config_warnings() {
        let c = ok(&Fake::new(&[("ldapdb_uri", "ldap://glauth:3893/dc=users%44dc=local")]));
        assert_eq!(lines(&c.warnings).len(), 1);
        assert!(lines(&c.warnings)[0].contains("`%44`"), "{:?}", lines(&c.warnings));
        let c = ok(&Fake::new(&[("ldapdb_uri", "ldap://glauth/dc=users,dc=local/")]));
        assert!(lines(&c.warnings)[0].contains("trailing `/`"));
    }

    // ---- search base -------------------------------------------------------------------------

    #[test]
    fn search_base_option_overrides_url() {
        let f = minimal().set("ldapdb_search_base", "ou=people,dc=users,dc=local");
        let c = ok(&f);
        assert_eq!(c.search_base, "ou=people,dc=users,dc=local");
        assert_eq!(c.base_source, BaseSource::SearchBaseOption);
        assert_eq!(c.base_source.to_string(), "from sasl_ldapdb_search_base");
        assert!(lines(&c.notes).iter().any(|n| n.contains("overrides the base DN")));
        // Without a DN in the URL, no override note.
        let f = Fake::new(&[("ldapdb_uri", "ldap://h"), ("ldapdb_search_base", "dc=x")]);
        let c = ok(&f);
        assert_eq!(c.search_base, "dc=x");
        assert!(!lines(&c.notes).iter().any(|n| n.contains("overrides")));
    }

    #[test]
    fn search_base_missing_everywhere() {
        let e = one_err(&Fake::new(&[("ldapdb_uri", "ldap://glauth:3893")]));
        assert!(e.starts_with("no search base: "), "{e}");
        assert!(
            e.ends_with("(ldap://glauth:3893/dc=example,dc=com) or set `sasl_ldapdb_search_base: dc=example,dc=com`")
        );
        // An ldapdb URL: the example is the admin's own server and the service DN's suffix.
        let f = Fake::new(&[
            ("ldapdb_uri", "ldap://ldap.corp.example:389/"),
            ("ldapdb_id", "cn=imap,ou=services,dc=corp,dc=example"),
            ("ldapdb_pw", "x"),
        ]);
        let e = errs(&f);
        assert!(
            e.iter().any(|l| l.ends_with(
                "add the base DN to the URL (ldap://ldap.corp.example:389/dc=corp,dc=example) or set \
                 `sasl_ldapdb_search_base: dc=corp,dc=example`"
            )),
            "{e:?}"
        );
    }

    #[test]
    fn bad_search_base() {
        let e = one_err(&minimal().set("ldapdb_search_base", "dc=users,,dc=local"));
        assert_eq!(
            e,
            "sasl_ldapdb_search_base: `dc=users,,dc=local` is not a valid DN: empty RDN (two commas \
             in a row, or a comma at the start or end); remove the extra comma (at character 10)"
        );
    }

    #[test]
    fn urls_with_different_base_dns_conflict() {
        let f = Fake::new(&[("ldapdb_uri", "ldap://a/dc=one ldap://b/dc=two")]);
        let e = one_err(&f);
        assert!(e.contains("`ldap://a/dc=one` names base DN `dc=one` but `ldap://b/dc=two`"), "{e}");
        // Same DN (case-insensitively) or only one URL with a DN is fine.
        let c = ok(&Fake::new(&[("ldapdb_uri", "ldap://a/dc=one ldap://b/DC=one ldapi://")]));
        assert_eq!(c.search_base, "dc=one");
        assert_eq!(c.urls.len(), 3);
        // The option settles a conflict.
        let f = f.set("ldapdb_search_base", "dc=three");
        assert_eq!(ok(&f).search_base, "dc=three");
    }

    // ---- bind --------------------------------------------------------------------------------

    #[test]
    fn simple_bind_with_password() {
        let f =
            minimal().set("ldapdb_id", "cn=cyrus,ou=machines,dc=users,dc=local").set("ldapdb_pw", " pw with spaces ");
        let c = ok(&f);
        match &c.bind {
            Bind::Simple { dn, password } => {
                assert_eq!(dn, "cn=cyrus,ou=machines,dc=users,dc=local");
                assert_eq!(password.expose(), " pw with spaces ");
                assert_eq!(format!("{password}"), "<redacted>");
                assert_eq!(format!("{password:?}"), "<redacted>");
            }
            b => panic!("{b:?}"),
        }
        assert!(lines(&c.notes).is_empty());
        // Plain ldap:// to another host: warn about the clear-text password.
        assert!(lines(&c.warnings).iter().any(|w| w.contains("crosses the network in clear")));
    }

    #[test]
    fn simple_mech_is_accepted_case_insensitively() {
        for mech in ["SIMPLE", "simple", "Simple"] {
            let f =
                minimal().set("ldapdb_mech", mech).set("ldapdb_id", "cn=cyrus,dc=users,dc=local").set("ldapdb_pw", "x");
            assert!(matches!(ok(&f).bind, Bind::Simple { .. }));
        }
    }

    #[test]
    fn no_cleartext_warning_on_loopback_tls_or_starttls() {
        for (uri, starttls) in [
            ("ldap://127.0.0.1/dc=x", None),
            ("ldap://[::1]/dc=x", None),
            ("ldap://[::ffff:127.0.0.1]:389/dc=x", None),
            ("ldap://127.1.2.3/dc=x", None),
            ("ldap://localhost/dc=x", None),
            ("ldaps://h/dc=x", None),
            ("ldap://h/dc=x", Some("demand")),
        ] {
            let mut f = Fake::new(&[("ldapdb_uri", uri), ("ldapdb_id", "cn=a,dc=x"), ("ldapdb_pw", "p")]);
            if let Some(s) = starttls {
                f = f.set("ldapdb_starttls", s);
            }
            let c = ok(&f);
            assert!(!lines(&c.warnings).iter().any(|w| w.contains("in clear")), "{uri}: {:?}", lines(&c.warnings));
        }
        // Another host, also as an IPv4-mapped address, is warned about.
        for uri in ["ldap://[::ffff:192.0.2.1]/dc=x", "ldap://192.0.2.1/dc=x"] {
            let c = ok(&Fake::new(&[("ldapdb_uri", uri), ("ldapdb_id", "cn=a,dc=x"), ("ldapdb_pw", "p")]));
            assert_eq!(
                lines(&c.warnings),
                [format!(
                    "sasl_ldapdb_uri: `{uri}` is plain ldap:// to another host, so the bind password crosses the \
                     network in clear; use ldaps:// or set `sasl_ldapdb_starttls: demand`"
                )],
                "{uri}"
            );
        }
    }

    #[test]
    fn id_must_be_a_dn() {
        // The seed's ldapdb-style authcid.
        let f = minimal().set("ldapdb_id", "cyrus").set("ldapdb_pw", "cyrus");
        assert_eq!(
            one_err(&f),
            "sasl_ldapdb_id: `cyrus` is not a DN; ldapbind does a simple bind with a full DN (not \
             ldapdb's SASL user name), e.g. `sasl_ldapdb_id: cn=cyrus,dc=users,dc=local` (Active \
             Directory also takes `cyrus@<its domain>` or `<DOMAIN>\\cyrus`)"
        );
        let f = minimal().set("ldapdb_id", "root").set("ldapdb_pw", "x");
        assert!(one_err(&f).contains("`sasl_ldapdb_id: cn=root,dc=users,dc=local`"));
        // No base known: a generic example.
        let f = Fake::new(&[("ldapdb_uri", "ldap://h"), ("ldapdb_id", "root"), ("ldapdb_pw", "x")]);
        let e = errs(&f);
        assert!(e.iter().any(|l| l.contains("cn=root,dc=example,dc=com")), "{e:?}");
        // Active Directory's bind names are taken as written, with no suffix advice.
        for id in ["svc-cyrus@example.test", "EXAMPLE\\svc-cyrus"] {
            let c = ok(&minimal().set("ldapdb_id", id).set("ldapdb_pw", "x"));
            assert!(matches!(&c.bind, Bind::Simple { dn, .. } if dn == id), "{id}: {:?}", c.bind);
            assert!(!lines(&c.warnings).iter().any(|w| w.contains("sasl_ldapdb_id")), "{id}: {:?}", lines(&c.warnings));
        }
        // Half of one is still no name.
        for id in ["svc-cyrus@", "EXAMPLE\\", "@example.test"] {
            let f = minimal().set("ldapdb_id", id).set("ldapdb_pw", "x");
            assert!(one_err(&f).contains("is not a DN"), "{id}");
        }
        // Contains '=' but invalid.
        let f = minimal().set("ldapdb_id", "cn=a,,dc=b").set("ldapdb_pw", "x");
        assert!(one_err(&f).starts_with("sasl_ldapdb_id: `cn=a,,dc=b` is not a valid DN: empty RDN"));
    }

    #[test]
    fn no_suffix_advice_from_a_suspect_base() {
        // The seed's `%44` base: the `,dc=usersDdc=local` suffix would point the wrong way.
        let f = Fake::new(&[
            ("ldapdb_uri", "ldap://glauth:3893/dc=users%44dc=local"),
            ("ldapdb_id", "cn=cyrus,ou=machines"),
            ("ldapdb_pw", "cyrus"),
        ]);
        let c = ok(&f);
        assert!(lines(&c.warnings).iter().any(|w| w.contains("`%44`")), "{:?}", lines(&c.warnings));
        assert!(!lines(&c.warnings).iter().any(|w| w.contains("suffix")), "{:?}", lines(&c.warnings));
    }

    #[test]
    fn a_percent_44_base_carries_its_hint_for_run_time_lines() {
        let f = minimal().set("ldapdb_uri", "ldap://glauth:3893/dc=users%44dc=local");
        let c = ok(&f);
        assert_eq!(c.search_base, "dc=usersDdc=local");
        assert_eq!(
            c.base_hint.as_deref(),
            Some(
                "`%44` decodes to `D`, not a comma; write a comma as `%2C` or just `,` \
                 (ldap://glauth:3893/dc=users%2Cdc=local)"
            )
        );
        // The base from sasl_ldapdb_search_base is what the admin wrote: no hint.
        let c = ok(&f.set("ldapdb_search_base", "dc=users,dc=local"));
        assert_eq!(c.base_hint, None);
        assert_eq!(ok(&minimal()).base_hint, None);
    }

    #[test]
    fn id_outside_the_suffix_warns() {
        // The seed's second try: `cn=cyrus,ou=machines`, expecting the base DN to be appended.
        let f = minimal().set("ldapdb_id", "cn=cyrus,ou=machines").set("ldapdb_pw", "cyrus");
        let c = ok(&f);
        assert!(
            lines(&c.warnings).iter().any(|w| w
                == "sasl_ldapdb_id `cn=cyrus,ou=machines` does not end in the directory suffix \
                    `dc=local` of the search base `dc=users,dc=local`; ldapbind binds with it \
                    exactly as written (nothing is appended); if the account is under the base, \
                    write the full DN, e.g. `cn=cyrus,ou=machines,dc=users,dc=local`"),
            "{:?}",
            lines(&c.warnings)
        );
        // An account elsewhere under the same suffix does not warn.
        let f = minimal().set("ldapdb_id", "cn=admin,dc=local").set("ldapdb_pw", "x");
        assert!(!lines(&ok(&f).warnings).iter().any(|w| w.contains("suffix")));
    }

    #[test]
    fn id_and_password_pairing() {
        let f = minimal().set("ldapdb_id", "cn=a,dc=local");
        assert!(one_err(&f).starts_with("sasl_ldapdb_id is set but no password is; "));
        let f = minimal().set("ldapdb_pw", "secret");
        assert_eq!(
            one_err(&f),
            "sasl_ldapdb_pw is set but sasl_ldapdb_id is not; set sasl_ldapdb_id to the service \
             account's full DN (e.g. `sasl_ldapdb_id: cn=cyrus,ou=machines,dc=users,dc=local`)"
        );
        let f = minimal().set("ldapdb_pw_file", "/etc/pw");
        assert!(one_err(&f).starts_with("sasl_ldapdb_pw_file is set but sasl_ldapdb_id is not"));
        let f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw", "x").set("ldapdb_pw_file", "/etc/pw");
        assert!(one_err(&f).starts_with("sasl_ldapdb_pw and sasl_ldapdb_pw_file are both set"));
    }

    #[test]
    fn password_file() {
        let f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/etc/ldapbind.pw").file(
            "/etc/ldapbind.pw",
            "s3cret\n",
            0o600,
        );
        let c = ok(&f);
        let Bind::Simple { password, .. } = &c.bind else { panic!() };
        assert_eq!(password.expose(), "s3cret");
        assert!(!lines(&c.alerts).iter().any(|w| w.contains("readable by")), "{:?}", lines(&c.alerts));
        // Only one newline is stripped; CRLF too; no newline is fine.
        for (contents, expect) in [("a\r\n", "a"), ("a", "a"), (" a b \n", " a b ")] {
            let f =
                minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/pw").file("/pw", contents, 0o400);
            let Bind::Simple { password, .. } = ok(&f).bind else { panic!() };
            assert_eq!(password.expose(), expect);
        }
        let f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/pw").file("/pw", "a\n\n", 0o600);
        let c = ok(&f);
        let Bind::Simple { password, .. } = &c.bind else { panic!() };
        assert_eq!(password.expose(), "a\n");
        assert!(lines(&c.warnings).iter().any(|w| w.contains("more than one line")));
        // A NUL byte: `s3cret` saved as UTF-16LE, and one in the middle.
        for contents in ["s\x003\x00c\x00r\x00e\x00t\x00\n\x00", "s3c\0ret\n"] {
            let f =
                minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/pw").file("/pw", contents, 0o600);
            let c = ok(&f);
            assert_eq!(
                lines(&c.warnings)
                    .iter()
                    .filter(|w| w.starts_with("sasl_ldapdb_pw_file: /pw contains a NUL byte"))
                    .collect::<Vec<_>>(),
                [
                    "sasl_ldapdb_pw_file: /pw contains a NUL byte, which ldapbind sends as part of the password (no LDAP \
                  tool can set such a password; a file saved as UTF-16 has one after every letter); write the \
                  password as UTF-8 text"
                ],
                "{contents:?}"
            );
            assert!(!lines(&c.warnings).iter().any(|w| w.contains("s3c")), "{:?}", lines(&c.warnings));
        }
    }

    #[test]
    fn password_file_permissions_warn() {
        for (mode, who) in [(0o640, "its group"), (0o644, "everyone"), (0o604, "everyone")] {
            let f =
                minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/etc/pw").file("/etc/pw", "x", mode);
            let c = ok(&f);
            let expect = format!(
                "sasl_ldapdb_pw_file: /etc/pw is readable by {who} (mode {mode:04o}); `chmod 600` \
                 it and make it owned by the user the mail daemon runs as"
            );
            assert!(lines(&c.alerts).contains(&expect), "{:?}", lines(&c.alerts));
            assert!(!lines(&c.alerts).iter().chain(&lines(&c.warnings)).any(|w| w.contains("x\n")));
        }
    }

    #[test]
    fn password_file_errors() {
        let base = minimal().set("ldapdb_id", "cn=a,dc=local");
        let f = base.set("ldapdb_pw_file", "/missing");
        let e = one_err(&f);
        assert!(e.starts_with("sasl_ldapdb_pw_file: cannot read /missing: entity not found"), "{e}");
        let f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "relative/pw");
        assert!(one_err(&f).starts_with("sasl_ldapdb_pw_file: `relative/pw` is not an absolute path"));
        let f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/pw").file("/pw", "\n", 0o600);
        assert!(
            one_err(&f).starts_with("sasl_ldapdb_pw_file is empty; an empty password makes an unauthenticated bind")
        );
        let mut f = minimal().set("ldapdb_id", "cn=a,dc=local").set("ldapdb_pw_file", "/pw");
        f.files.insert("/pw".into(), (vec![0xff, 0xfe], 0o600));
        assert_eq!(one_err(&f), "sasl_ldapdb_pw_file: /pw is not UTF-8 text; write the password as UTF-8");
    }

    #[test]
    fn unsupported_mechs() {
        let f = minimal().set("ldapdb_mech", "DIGEST-MD5");
        assert_eq!(
            one_err(&f),
            "sasl_ldapdb_mech: DIGEST-MD5 is not supported: ldapbind does a simple bind as a DN (or \
             SASL EXTERNAL); remove sasl_ldapdb_mech and set sasl_ldapdb_id to the service \
             account's full DN and sasl_ldapdb_pw to its password"
        );
        for m in ["PLAIN", "GSSAPI", "x"] {
            assert!(one_err(&minimal().set("ldapdb_mech", m)).contains(&format!("{m} is not supported")));
        }
    }

    #[test]
    fn external_bind() {
        let c = ok(&Fake::new(&[("ldapdb_uri", "ldapi:///dc=x"), ("ldapdb_mech", "external")]));
        assert!(matches!(c.bind, Bind::External));
        assert!(lines(&c.notes).is_empty());
        // With a client certificate over ldaps:// or StartTLS.
        let tls = |uri: &str| {
            Fake::new(&[
                ("ldapdb_uri", uri),
                ("ldapdb_mech", "EXTERNAL"),
                ("ldapdb_tls_cert", "/c.pem"),
                ("ldapdb_tls_key", "/k.pem"),
            ])
            .file("/c.pem", PEM_CERT, 0o644)
            .file("/k.pem", PEM_KEY, 0o600)
        };
        assert!(matches!(ok(&tls("ldaps://h/dc=x")).bind, Bind::External));
        assert!(matches!(ok(&tls("ldap://h/dc=x").set("ldapdb_starttls", "demand")).bind, Bind::External));
        // Plain ldap:// without StartTLS presents no certificate.
        let e = errs(&tls("ldap://h/dc=x"));
        assert!(e[0].starts_with("sasl_ldapdb_mech: EXTERNAL has no client identity for `ldap://h/dc=x`"), "{e:?}");
        // No identity at all.
        let e = one_err(&Fake::new(&[("ldapdb_uri", "ldaps://h/dc=x"), ("ldapdb_mech", "EXTERNAL")]));
        assert!(e.contains("EXTERNAL has no client identity"));
        // id/pw are ignored with a warning.
        let c = ok(&Fake::new(&[
            ("ldapdb_uri", "ldapi:///dc=x"),
            ("ldapdb_mech", "EXTERNAL"),
            ("ldapdb_id", "root"),
            ("ldapdb_pw", "x"),
        ]));
        assert_eq!(lines(&c.warnings).len(), 2, "{:?}", lines(&c.warnings));
        assert!(lines(&c.warnings)[0].starts_with("sasl_ldapdb_id is ignored with sasl_ldapdb_mech: EXTERNAL"));
    }

    // ---- simple options ----------------------------------------------------------------------

    #[test]
    fn allow_expired_password() {
        assert!(!ok(&minimal()).allow_expired_password);
        assert!(ok(&minimal().set("ldapdb_allow_expired_password", "yes")).allow_expired_password);
        assert!(ok(&minimal().set("ldapdb_allow_expired_password", " On ")).allow_expired_password);
        assert!(!ok(&minimal().set("ldapdb_allow_expired_password", "no")).allow_expired_password);
        assert!(
            one_err(&minimal().set("ldapdb_allow_expired_password", "sometimes"))
                .starts_with("sasl_ldapdb_allow_expired_password: `sometimes` is not yes or no")
        );
    }

    #[test]
    fn canon_attr() {
        assert_eq!(ok(&minimal().set("ldapdb_canon_attr", "mail")).canon_attr.as_deref(), Some("mail"));
        assert_eq!(ok(&minimal().set("ldapdb_canon_attr", "x-login")).canon_attr.as_deref(), Some("x-login"));
        assert_eq!(
            one_err(&minimal().set("ldapdb_canon_attr", "mail address")),
            "sasl_ldapdb_canon_attr: `mail address` is not an LDAP attribute name; write a letter \
             followed by letters, digits or `-` (e.g. mail)"
        );
    }

    #[test]
    fn a_password_attribute_is_never_the_canonical_name() {
        let fix = "so a user's password would become the user name (logged, and handed to the mail \
                   server); set it to the attribute with the login name, e.g. uid or mail, or remove it to \
                   keep the name as typed";
        for attr in [
            "userPassword",
            "USERPASSWORD",
            "authPassword",
            "cmusaslsecretPLAIN",
            "cmusaslsecretDIGEST-MD5",
            "unicodePwd",
            "sambaNTPassword",
            "x-secret",
        ] {
            assert_eq!(
                one_err(&minimal().set("ldapdb_canon_attr", attr)),
                format!("sasl_ldapdb_canon_attr: `{attr}` holds passwords, {fix}"),
                "{attr}"
            );
        }
        // By its OID.
        assert_eq!(
            one_err(&minimal().set("ldapdb_canon_attr", "2.5.4.35")),
            format!("sasl_ldapdb_canon_attr: `2.5.4.35` holds passwords (it is userPassword), {fix}")
        );
        // Whatever sasl_ldapdb_attr_map reads a password property from.
        let f = minimal().set("ldapdb_attr_map", "userPassword=x-hash mail=x-mail").set("ldapdb_canon_attr", "X-Hash");
        assert_eq!(
            one_err(&f),
            format!(
                "sasl_ldapdb_canon_attr: `X-Hash` holds passwords (sasl_ldapdb_attr_map reads userPassword from it), {fix}"
            )
        );
        let f = minimal().set("ldapdb_attr_map", "cmusaslsecretPLAIN=x-plain").set("ldapdb_canon_attr", "x-plain");
        assert!(one_err(&f).contains("(sasl_ldapdb_attr_map reads cmusaslsecretPLAIN from it)"));
        // A mapped name attribute is fine.
        let f = minimal().set("ldapdb_attr_map", "mail=x-mail").set("ldapdb_canon_attr", "x-mail");
        assert_eq!(ok(&f).canon_attr.as_deref(), Some("x-mail"));
    }

    #[test]
    fn numeric_oids_are_refused_with_the_name_to_write() {
        let why = "is the numeric OID of an attribute, but LDAP servers return attributes by name, so \
                   ldapbind would never find its values";
        for (oid, name) in [
            ("2.5.4.3", "cn"),
            ("0.9.2342.19200300.100.1.1", "uid"),
            ("0.9.2342.19200300.100.1.3", "mail"),
            ("1.2.840.113556.1.4.221", "sAMAccountName"),
        ] {
            assert_eq!(
                one_err(&minimal().set("ldapdb_canon_attr", oid)),
                format!("sasl_ldapdb_canon_attr: `{oid}` {why}; write `sasl_ldapdb_canon_attr: {name}`")
            );
        }
        assert_eq!(
            one_err(&minimal().set("ldapdb_canon_attr", "1.3.6.1.4.1.99999.1")),
            format!(
                "sasl_ldapdb_canon_attr: `1.3.6.1.4.1.99999.1` {why}; write the attribute's name instead (the \
                 server's schema names it: `ldapsearch -x -H URL -b cn=subschema -s base attributeTypes`)"
            )
        );
        assert_eq!(
            errs(&minimal().set(
                "ldapdb_attr_map",
                "userPassword=2.5.4.35 authPassword=2.5.4.35 cmusaslsecretPLAIN=1.3.6.1.4.1.4203.1.3.4, x=1.2.3"
            )),
            vec![
                format!(
                    "sasl_ldapdb_attr_map: `userPassword=2.5.4.35` {why}; remove the entry (ldapbind reads \
                     userPassword as userPassword without it)"
                ),
                format!("sasl_ldapdb_attr_map: `authPassword=2.5.4.35` {why}; write `authPassword=userPassword`"),
                format!(
                    "sasl_ldapdb_attr_map: `cmusaslsecretPLAIN=1.3.6.1.4.1.4203.1.3.4` {why}; write \
                     `cmusaslsecretPLAIN=authPassword`"
                ),
                format!(
                    "sasl_ldapdb_attr_map: `x=1.2.3` {why}; write `x=` and the attribute's name (the server's \
                     schema names it: `ldapsearch -x -H URL -b cn=subschema -s base attributeTypes`)"
                ),
            ]
        );
    }

    #[test]
    fn starttls() {
        assert_eq!(ok(&minimal().set("ldapdb_starttls", "try")).starttls, StartTls::Try);
        assert_eq!(ok(&minimal().set("ldapdb_starttls", "DEMAND")).starttls, StartTls::Demand);
        assert!(
            one_err(&minimal().set("ldapdb_starttls", "yes"))
                .starts_with("sasl_ldapdb_starttls: `yes` is not `try` or `demand`")
        );
        let c = ok(&Fake::new(&[("ldapdb_uri", "ldaps://h/dc=x"), ("ldapdb_starttls", "demand")]));
        assert!(lines(&c.warnings)[0].starts_with("sasl_ldapdb_starttls has no effect"));
    }

    #[test]
    fn scope() {
        for (v, s) in [
            ("base", Scope::Base),
            ("one", Scope::One),
            ("onelevel", Scope::One),
            ("SUB", Scope::Sub),
            ("subtree", Scope::Sub),
        ] {
            assert_eq!(ok(&minimal().set("ldapdb_scope", v)).scope, s, "{v}");
        }
        assert!(
            one_err(&minimal().set("ldapdb_scope", "children"))
                .starts_with("sasl_ldapdb_scope: `children` is not base, one or sub")
        );
        assert_eq!(Scope::One.as_str(), "one");
    }

    #[test]
    fn filter() {
        let c = ok(&minimal().set("ldapdb_filter", "(&(objectClass=posixAccount)(uid=%U))"));
        assert_eq!(c.filter.render("jdoe@x", None), "(&(objectClass=posixAccount)(uid=jdoe))");
        assert!(
            one_err(&minimal().set("ldapdb_filter", "(uid=%x)"))
                .starts_with("sasl_ldapdb_filter: unknown placeholder `%x`")
        );
    }

    #[test]
    fn attr_map() {
        let c = ok(&minimal()
            .set("ldapdb_attr_map", "userPassword=sambaNTPassword, cmusaslsecretPLAIN=x-secret,*authPassword=x-auth"));
        assert_eq!(c.attr_map.len(), 3);
        assert_eq!(c.attribute_for("userPassword"), "sambaNTPassword");
        assert_eq!(c.attribute_for("*userPassword"), "sambaNTPassword");
        assert_eq!(c.attribute_for("userpassword"), "sambaNTPassword");
        assert_eq!(c.attribute_for("cmusaslsecretPLAIN"), "x-secret");
        assert_eq!(c.attribute_for("authPassword"), "x-auth");
        assert_eq!(c.attribute_for("mail"), "mail");
        assert_eq!(c.attribute_for("*mail"), "mail");
        let e = errs(&minimal().set("ldapdb_attr_map", "userPassword, a=b=c =x y= p=q P=r"));
        assert_eq!(
            e,
            vec![
                "sasl_ldapdb_attr_map: `userPassword` has no `=`; write `property=attribute` pairs \
                 separated by spaces or commas, e.g. `userPassword=sambaNTPassword`",
                "sasl_ldapdb_attr_map: `a=b=c` does not map to an LDAP attribute name (a letter \
                 followed by letters, digits or `-`); write `property=attribute` \
                 pairs separated by spaces or commas, e.g. `userPassword=sambaNTPassword`",
                "sasl_ldapdb_attr_map: `=x` does not start with a SASL property name (e.g. \
                 userPassword); write `property=attribute` pairs separated by spaces or commas, \
                 e.g. `userPassword=sambaNTPassword`",
                "sasl_ldapdb_attr_map: `y=` does not map to an LDAP attribute name (a letter \
                 followed by letters, digits or `-`); write `property=attribute` \
                 pairs separated by spaces or commas, e.g. `userPassword=sambaNTPassword`",
                "sasl_ldapdb_attr_map: `P=r` maps a property that is already mapped; write \
                 `property=attribute` pairs separated by spaces or commas, e.g. \
                 `userPassword=sambaNTPassword`",
            ]
        );
    }

    #[test]
    fn timeout_option() {
        for (v, d) in [
            ("10", Duration::from_secs(10)),
            ("0.5", Duration::from_millis(500)),
            ("2.25", Duration::from_millis(2250)),
            (".5", Duration::from_millis(500)),
            ("1.", Duration::from_secs(1)),
            ("300", MAX_TIMEOUT),
        ] {
            assert_eq!(ok(&minimal().set("ldapdb_timeout", v)).timeout, d, "{v}");
        }
        for v in ["0", "0.0", "-1", "1e3", "inf", "NaN", "301", "5s", ".", "1.2.3", "0.0000000001"] {
            let e = one_err(&minimal().set("ldapdb_timeout", v));
            assert_eq!(
                e,
                format!("sasl_ldapdb_timeout: `{v}` is not a number of seconds from 0.001 to 300; write e.g. 5 or 0.5")
            );
        }
    }

    // ---- rc file -----------------------------------------------------------------------------

    fn rc(contents: &str) -> Fake {
        minimal()
            .set("ldapdb_rc", "/etc/ldapbind/ldaprc")
            .file("/etc/ldapbind/ldaprc", contents, 0o644)
            .file("/etc/ssl/ca.pem", PEM_CERT, 0o644)
            .file("/etc/ssl/other-ca.pem", PEM_CERT, 0o644)
    }

    #[test]
    fn rc_file_settings() {
        let c = ok(&rc(
            "# comment\n\n  TLS_CACERT /etc/ssl/ca.pem\ntls_reqcert demand\nNETWORK_TIMEOUT 3\nTIMEOUT 7\nSIZELIMIT 12\n",
        ));
        assert_eq!(c.tls_cacert.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
        assert_eq!(c.tls_cacert_pem.as_deref(), Some(PEM_CERT.as_bytes()));
        assert_eq!(c.tls_reqcert, TlsReqCert::Demand);
        assert_eq!(c.timeout, Duration::from_secs(3));
        // TIMEOUT when NETWORK_TIMEOUT is absent; the option beats both.
        assert_eq!(ok(&rc("TIMEOUT 7\n")).timeout, Duration::from_secs(7));
        assert_eq!(ok(&rc("TIMEOUT 7\n").set("ldapdb_timeout", "1.5")).timeout, Duration::from_millis(1500));
        // The option's CA file beats the rc file's.
        let c = ok(&rc("TLS_CACERT /etc/ssl/ca.pem\n").set("ldapdb_tls_cacert", "/etc/ssl/other-ca.pem"));
        assert_eq!(c.tls_cacert.as_deref(), Some(Path::new("/etc/ssl/other-ca.pem")));
    }

    #[test]
    fn rc_reqcert_levels() {
        for (v, want) in [
            ("never", TlsReqCert::Never),
            ("allow", TlsReqCert::Never),
            ("try", TlsReqCert::Demand),
            ("demand", TlsReqCert::Demand),
            ("HARD", TlsReqCert::Demand),
        ] {
            assert_eq!(ok(&rc(&format!("TLS_REQCERT {v}\n"))).tls_reqcert, want, "{v}");
        }
        let e = one_err(&rc("TLS_REQCERT sometimes\n"));
        assert_eq!(
            e,
            "sasl_ldapdb_rc: `TLS_REQCERT sometimes` in /etc/ldapbind/ldaprc line 1 is not valid; \
             use demand (the default), try, allow or never"
        );
        // `never` with TLS in use is a warning.
        let f = rc("TLS_REQCERT never\n").set("ldapdb_uri", "ldaps://h/dc=x");
        assert!(lines(&ok(&f).warnings).iter().any(|w| w.contains("will not verify the LDAP server's certificate")));
    }

    #[test]
    fn rc_timeouts() {
        let c = ok(&rc("NETWORK_TIMEOUT -1\n"));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(lines(&c.warnings)[0].contains("`NETWORK_TIMEOUT -1` in /etc/ldapbind/ldaprc line 1 is ignored"));
        assert!(one_err(&rc("TIMEOUT soon\n")).contains("write a whole number of seconds"));
    }

    #[test]
    fn rc_unused_keywords_warn() {
        let c = ok(&rc("BASE dc=x\nTLS_CERT /c\nDEREF never\n"));
        assert_eq!(
            lines(&c.warnings),
            vec![
                "sasl_ldapdb_rc: `BASE` in /etc/ldapbind/ldaprc line 1 is not read by ldapbind; set sasl_ldapdb_search_base instead",
                "sasl_ldapdb_rc: `TLS_CERT` in /etc/ldapbind/ldaprc line 2 is not read by ldapbind; set sasl_ldapdb_tls_cert instead",
            ]
        );
    }

    #[test]
    fn rc_errors() {
        let e = one_err(&minimal().set("ldapdb_rc", "/nope"));
        assert!(e.starts_with("sasl_ldapdb_rc: cannot read /nope: "), "{e}");
        let e = one_err(&rc("TLS_CACERT /etc/ssl/missing.pem\n"));
        assert!(
            e.starts_with("sasl_ldapdb_rc: TLS_CACERT in /etc/ldapbind/ldaprc: cannot read /etc/ssl/missing.pem"),
            "{e}"
        );
    }

    // ---- TLS files ---------------------------------------------------------------------------

    #[test]
    fn tls_files() {
        let f = Fake::new(&[
            ("ldapdb_uri", "ldaps://h/dc=x"),
            ("ldapdb_tls_cacert", "/ca.pem"),
            ("ldapdb_tls_cert", "/c.pem"),
            ("ldapdb_tls_key", "/k.pem"),
        ])
        .file("/ca.pem", PEM_CERT, 0o644)
        .file("/c.pem", PEM_CERT, 0o644)
        .file("/k.pem", PEM_KEY, 0o640);
        let c = ok(&f);
        assert_eq!(c.tls_cacert_pem.as_deref(), Some(PEM_CERT.as_bytes()));
        assert_eq!(c.tls_cert.as_ref().unwrap().pem, PEM_CERT.as_bytes());
        let key = c.tls_key.as_ref().unwrap();
        assert_eq!(key.pem.expose(), PEM_KEY.as_bytes());
        assert_eq!(key.path, Path::new("/k.pem"));
        assert!(!format!("{c:?}").contains("MIIE"));
        assert!(
            lines(&c.alerts).iter().any(|w| w.starts_with("sasl_ldapdb_tls_key: /k.pem is readable by its group")),
            "{:?}",
            lines(&c.warnings)
        );
        assert_eq!(f.reads.borrow().len(), 3);
    }

    #[test]
    fn tls_file_errors() {
        let e = one_err(&minimal().set("ldapdb_tls_cert", "/c.pem"));
        assert!(e.starts_with("sasl_ldapdb_tls_cert is set but sasl_ldapdb_tls_key is not"));
        let e = one_err(&minimal().set("ldapdb_tls_key", "/k.pem"));
        assert!(e.starts_with("sasl_ldapdb_tls_key is set but sasl_ldapdb_tls_cert is not"));
        let e = one_err(&minimal().set("ldapdb_tls_cacert", "/ca.der").file("/ca.der", "\u{30}\u{82}", 0o644));
        assert_eq!(
            e,
            "sasl_ldapdb_tls_cacert: /ca.der is not a PEM file with a `-----BEGIN CERTIFICATE-----` \
             block; convert it to PEM (e.g. with `openssl x509 -inform der -in FILE -out FILE.pem`)"
        );
        let f = minimal()
            .set("ldapdb_tls_cert", "/c.pem")
            .set("ldapdb_tls_key", "/k.pem")
            .file("/c.pem", PEM_CERT, 0o644)
            .file("/k.pem", PEM_CERT, 0o600);
        assert!(
            one_err(&f)
                .starts_with("sasl_ldapdb_tls_key: /k.pem is not a PEM file with a `-----BEGIN PRIVATE KEY-----`")
        );
        let e = one_err(&minimal().set("ldapdb_tls_cacert", "/missing.pem"));
        assert!(e.starts_with("sasl_ldapdb_tls_cacert: cannot read /missing.pem"));
    }

    #[test]
    fn tls_files_without_tls_warn() {
        let f = minimal().set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", PEM_CERT, 0o644);
        assert!(lines(&ok(&f).warnings).iter().any(|w| w.contains("no URL uses TLS")));
        let f = f.set("ldapdb_starttls", "try");
        assert!(!lines(&ok(&f).warnings).iter().any(|w| w.contains("no URL uses TLS")));
    }

    // ---- all problems at once ----------------------------------------------------------------

    #[test]
    fn every_problem_is_reported() {
        let f = Fake::new(&[
            ("ldapdb_uri", "ldap://glauth/dc=users,dc=local/"),
            ("ldapdb_id", "cyrus"),
            ("ldapdb_pw", "cyrus"),
            ("ldapdb_mech", "PLAIN"),
            ("ldapdb_canon_attr", "mail!"),
            ("ldapdb_scope", "deep"),
            ("ldapdb_timeout", "forever"),
            ("ldapdb_starttls", "maybe"),
        ]);
        let e = Config::from_sources(&f).unwrap_err();
        assert_eq!(e.0.len(), 6, "{e}");
        assert_eq!(e.to_string().lines().count(), 6);
        assert!(e.0.iter().any(|x| matches!(x, ConfigError::IdNotADn { .. })));
        assert!(e.0.iter().any(|x| matches!(x, ConfigError::UnsupportedMech { .. })));
    }

    #[test]
    fn the_seeds_config_gets_every_fix_at_once() {
        let f = Fake::new(&[
            ("ldapdb_uri", "ldap://glauth/dc=users,dc=local/"),
            ("ldapdb_id", "cyrus"),
            ("ldapdb_pw", "cyrus"),
            ("ldapdb_mech", "PLAIN"),
            ("ldapdb_canon_attr", "mail"),
        ]);
        let e: Vec<String> = errs(&f);
        assert_eq!(
            e,
            vec![
                "sasl_ldapdb_mech: PLAIN is not supported: ldapbind does a simple bind as a DN (or \
                 SASL EXTERNAL); remove sasl_ldapdb_mech and set sasl_ldapdb_id to the service \
                 account's full DN and sasl_ldapdb_pw to its password",
                "sasl_ldapdb_id: `cyrus` is not a DN; ldapbind does a simple bind with a full DN \
                 (not ldapdb's SASL user name), e.g. `sasl_ldapdb_id: cn=cyrus,dc=users,dc=local` \
                 (Active Directory also takes `cyrus@<its domain>` or `<DOMAIN>\\cyrus`)",
            ]
        );
    }

    #[test]
    fn no_secret_in_any_message() {
        let secret = "Pa55w0rd-unique";
        let fakes = [
            minimal().set("ldapdb_pw", secret),
            minimal().set("ldapdb_id", "x").set("ldapdb_pw", secret),
            minimal().set("ldapdb_id", "cn=x,dc=local").set("ldapdb_pw", secret).set("ldapdb_pw_file", "/p"),
            minimal().set("ldapdb_id", "cn=x,dc=local").set("ldapdb_pw", secret).set("ldapdb_mech", "DIGEST-MD5"),
            minimal().set("ldapdb_id", "cn=x,dc=local").set("ldapdb_pw", secret),
            minimal().set("ldapdb_id", "cn=x,dc=local").set("ldapdb_pw_file", "/p").file("/p", secret, 0o666),
            Fake::new(&[("ldapdb_uri", &format!("ldap://cn=x:{secret}@h/dc=x"))]),
        ];
        for f in fakes {
            let text = match Config::from_sources(&f) {
                Ok(c) => {
                    format!("{c:?}\n{}\n{}\n{}", c.summary(), lines(&c.notes).join("\n"), lines(&c.warnings).join("\n"))
                }
                Err(e) => format!("{e}\n{e:?}"),
            };
            assert!(!text.contains(secret), "{text}");
        }
    }

    // ---- helpers -----------------------------------------------------------------------------

    #[test]
    fn secret_wipes_and_redacts() {
        let s = Secret::new("abc".to_string());
        assert_eq!(s.expose(), "abc");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        let b = SecretBytes::new(b"key".to_vec());
        assert_eq!(format!("{b:?}"), "<redacted>");
        let mut v = b"secret".to_vec();
        wipe(&mut v);
        assert!(v.is_empty());
        let d = FileData { contents: b"pw".to_vec(), mode: 0o600 };
        assert_eq!(format!("{d:?}"), "FileData { contents: <2 bytes>, mode: 600 }");
    }

    #[test]
    fn last_rdn_respects_escapes() {
        assert_eq!(last_rdn("cn=a,dc=b"), Some("dc=b"));
        assert_eq!(last_rdn("cn=a\\,b"), Some("cn=a\\,b"));
        assert_eq!(last_rdn("dc=x"), Some("dc=x"));
    }

    #[test]
    fn system_sources_read_real_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let src = SystemSources(|k: &str| (k == "ldapdb_uri").then(|| URI.to_string()));
        let d = src.read_file(&p).unwrap();
        assert_eq!(d.contents, b"secret\n");
        assert_eq!(d.mode, 0o640);
        assert!(src.read_file(dir.path()).is_err());
        assert!(src.read_file(&dir.path().join("none")).is_err());
        assert_eq!(src.option("ldapdb_uri").as_deref(), Some(URI));
        assert!(is_configured(&src));
    }

    proptest! {
        #[test]
        fn arbitrary_option_values_never_panic(
            values in prop::collection::vec(prop::option::of("\\PC{0,40}|[a-z/=,.%:@ 0-9]{0,30}"), keys::ALL.len()),
            file in "\\PC{0,60}",
            mode in 0u32..0o7777,
        ) {
            let mut f = Fake::default();
            for (k, v) in keys::ALL.iter().zip(values) {
                if let Some(v) = v {
                    f.options.insert(k.to_string(), v);
                }
            }
            // Every file path any option could name resolves to the same arbitrary contents.
            for v in f.options.values().cloned().collect::<Vec<_>>() {
                f.files.insert(PathBuf::from(v.trim()), (file.as_bytes().to_vec(), mode));
            }
            let _ = Config::from_sources(&f).map(|c| (c.summary(), c.attribute_for("userPassword").len()));
        }

        #[test]
        fn arbitrary_rc_files_never_panic(contents in "([A-Za-z_]{0,16}[ \t]{0,2}[-a-z0-9/.]{0,12}\n){0,6}|\\PC{0,80}") {
            let _ = Config::from_sources(&rc(&contents));
        }
    }
}
