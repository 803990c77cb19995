//! TLS for `ldaps://` and StartTLS, with rustls and its ring provider only.
//!
//! One [`ClientConfig`] is built at init ([`client_config`]) from the [`Config`], whose CA,
//! certificate and key files config.rs has already read: Postfix's smtpd initializes SASL as
//! root before it chroots and drops privileges, so nothing may be read at first TLS use. The
//! system store (rustls-native-certs) is read at init too, and only when some URL uses TLS and
//! no CA file is configured. Every TLS connection is made from it (see [`connect_on`]), never
//! from rustls' process-wide default provider. The provider is passed
//! explicitly and never installed as the process default: another rustls user in the same host
//! must neither change ours nor find ours.
//!
//! Verification of the server's certificate and host name is on unless the rc file says
//! `TLS_REQCERT never` (or `allow`), which config.rs already warns about at init; then
//! [`AcceptAnyServerCert`] is the verifier, so the setting has its real effect.
//!
//! [`connect`] opens one connection the way the configuration asks (plain, ldaps://, StartTLS
//! `try` or `demand`) and turns TLS failures into one log line that names the server, the cause
//! and the fix. `try` falls back to cleartext only when the server refuses the StartTLS
//! request; a failure after the server accepted it (a bad certificate) never falls back.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use ldap3::LdapResult;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{Config, Message, StartTls, TlsReqCert};
use crate::error::{Cause, Error, LdapCode, Step, Trust};
use crate::ldap::net::Deadline;
use crate::ldap::wire::{self, Conn};
use crate::uri::{LdapUrl, Scheme};

/// How connections to one URL are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ldap://` without StartTLS, or `ldapi://`.
    Plain,
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` with `sasl_ldapdb_starttls` `try` or `demand`.
    StartTls { demand: bool },
}

impl Mode {
    pub fn of(url: &LdapUrl, starttls: StartTls) -> Mode {
        match (url.scheme, starttls) {
            (Scheme::Ldaps, _) => Mode::Ldaps,
            (Scheme::Ldap, StartTls::Try) => Mode::StartTls { demand: false },
            (Scheme::Ldap, StartTls::Demand) => Mode::StartTls { demand: true },
            (Scheme::Ldap, StartTls::Off) | (Scheme::Ldapi, _) => Mode::Plain,
        }
    }

    pub fn uses_tls(self) -> bool {
        !matches!(self, Mode::Plain)
    }

    /// What a connection attempt does, for "did not answer the … within" lines.
    pub fn step(self) -> Step {
        match self {
            Mode::Plain => Step::Connect,
            Mode::Ldaps => Step::Ldaps,
            Mode::StartTls { .. } => Step::StartTls,
        }
    }
}

/// Whether any URL of the configuration uses TLS.
pub fn uses_tls(cfg: &Config) -> bool {
    cfg.urls.iter().any(|u| Mode::of(u, cfg.starttls).uses_tls())
}

/// The TLS client configuration built at init, with what init should log.
#[derive(Debug)]
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    /// WARN lines (e.g. certificates of the CA file that rustls could not use).
    pub warnings: Vec<Message>,
}

/// A TLS setting that cannot work; `Display` is one log line naming the option and the fix.
#[derive(Debug)]
pub enum TlsConfigError {
    NoUsableCa { path: PathBuf, detail: String },
    EmptySystemStore { detail: String },
    BadClientCert { path: PathBuf, detail: String },
    BadClientKey { path: PathBuf, detail: String },
    KeyMismatch { cert: PathBuf, key: PathBuf },
    ClientAuth { source: rustls::Error },
    Setup { source: rustls::Error },
}

impl TlsConfigError {
    /// What is wrong and the fix.
    pub fn message(&self) -> Message {
        match self {
            TlsConfigError::NoUsableCa { path, detail } => Message::new(
                format!("sasl_ldapdb_tls_cacert: {} holds no CA certificate rustls can use ({detail})", path.display()),
                "set sasl_ldapdb_tls_cacert to a PEM file with the certificate of the CA that signed the LDAP \
                 server's certificate",
            ),
            TlsConfigError::EmptySystemStore { detail } => Message::new(
                format!(
                    "sasl_ldapdb_tls_cacert is not set and the system certificate store has no usable \
                     certificate ({detail})"
                ),
                "set sasl_ldapdb_tls_cacert to the CA file that signed the LDAP server's certificate (or \
                 install ca-certificates)",
            ),
            TlsConfigError::BadClientCert { path, detail } => Message::new(
                format!("sasl_ldapdb_tls_cert: {}: {detail}", path.display()),
                "write the client certificate (then its chain) as PEM `-----BEGIN CERTIFICATE-----` blocks",
            ),
            TlsConfigError::BadClientKey { path, detail } => Message::new(
                format!("sasl_ldapdb_tls_key: {}: {detail}", path.display()),
                "write the private key unencrypted as PEM (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
                 `BEGIN EC PRIVATE KEY`; `openssl pkey -in KEY -out KEY.pem` decrypts one)",
            ),
            TlsConfigError::KeyMismatch { cert, key } => Message::new(
                format!(
                    "sasl_ldapdb_tls_key: {} is not the key of the certificate in sasl_ldapdb_tls_cert ({})",
                    key.display(),
                    cert.display()
                ),
                "set both to the two halves of one key pair",
            ),
            TlsConfigError::ClientAuth { source } => Message::new(
                format!(
                    "sasl_ldapdb_tls_cert / sasl_ldapdb_tls_key: rustls cannot use this certificate and key \
                     ({source})"
                ),
                "use an RSA, ECDSA (P-256/P-384) or Ed25519 key pair",
            ),
            TlsConfigError::Setup { source } => Message::bare(format!("TLS setup failed: {source}")),
        }
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::ClientAuth { source } | TlsConfigError::Setup { source } => Some(source),
            _ => None,
        }
    }
}

/// The one TLS client configuration for `cfg`, or `None` when no URL uses TLS. Reads the system
/// store when TLS is used, certificates are checked and no CA file is configured.
pub fn client_config(cfg: &Config) -> Result<Option<TlsSetup>, Vec<TlsConfigError>> {
    client_config_with(cfg, rustls_native_certs::load_native_certs)
}

/// [`client_config`] with the system store passed in (tests give a fixed one).
pub fn client_config_with(
    cfg: &Config,
    system_store: impl FnOnce() -> rustls_native_certs::CertificateResult,
) -> Result<Option<TlsSetup>, Vec<TlsConfigError>> {
    if !uses_tls(cfg) {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let roots = match cfg.tls_reqcert {
        TlsReqCert::Never => None,
        TlsReqCert::Demand => match root_store(cfg, system_store, &mut warnings) {
            Ok(roots) => Some(roots),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let identity = client_identity(cfg).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| vec![TlsConfigError::Setup { source }])?;
    let builder = match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        })),
    };
    let mut config = match (identity, &cfg.tls_cert, &cfg.tls_key) {
        (Some((chain, key)), Some(cert_file), Some(key_file)) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    vec![TlsConfigError::KeyMismatch { cert: cert_file.path.clone(), key: key_file.path.clone() }]
                }
                source => vec![TlsConfigError::ClientAuth { source }],
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    // No session cache: it is a mutex shared by every connection, which a fork() in the middle
    // of another thread's handshake would leave locked in the child. Connections are kept, so
    // a full handshake per connection costs little.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Some(TlsSetup { config: Arc::new(config), warnings }))
}

/// The CAs from the CA file, or else from the system store.
fn root_store(
    cfg: &Config,
    system_store: impl FnOnce() -> rustls_native_certs::CertificateResult,
    warnings: &mut Vec<Message>,
) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    if let (Some(path), Some(pem)) = (&cfg.tls_cacert, &cfg.tls_cacert_pem) {
        let mut rejected = Vec::new();
        for (i, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
            match item {
                Ok(der) => {
                    if let Err(e) = store.add(der) {
                        rejected.push(format!("certificate #{}: {e}", i + 1));
                    }
                }
                Err(e) => {
                    rejected.push(format!("PEM block #{}: {e}", i + 1));
                    break;
                }
            }
        }
        if store.is_empty() {
            let detail = if rejected.is_empty() { "no CERTIFICATE block".to_owned() } else { rejected.join("; ") };
            return Err(TlsConfigError::NoUsableCa { path: path.clone(), detail });
        }
        if !rejected.is_empty() {
            warnings.push(Message::new(
                format!(
                    "sasl_ldapdb_tls_cacert: {}: ignoring what rustls cannot use ({})",
                    path.display(),
                    rejected.join("; ")
                ),
                format!("the other {} certificate(s) are trusted", store.len()),
            ));
        }
        return Ok(store);
    }
    let found = system_store();
    let (_, unusable) = store.add_parsable_certificates(found.certs);
    let problems: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    if store.is_empty() {
        let mut detail = problems.join("; ");
        if detail.is_empty() {
            detail = format!("found {unusable} unusable and no usable certificate");
        }
        return Err(TlsConfigError::EmptySystemStore { detail });
    }
    if !problems.is_empty() {
        warnings.push(Message::new(
            format!("the system certificate store was read with errors ({})", problems.join("; ")),
            format!(
                "{} CA certificates are trusted; set sasl_ldapdb_tls_cacert to the CA file to avoid depending on it",
                store.len()
            ),
        ));
    }
    Ok(store)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate chain and key, when both are configured.
fn client_identity(cfg: &Config) -> Result<Option<Identity>, TlsConfigError> {
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
        return Ok(None);
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert.pem).collect::<Result<_, _>>().map_err(|e| {
            TlsConfigError::BadClientCert { path: cert.path.clone(), detail: format!("unreadable PEM ({e})") }
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::BadClientCert { path: cert.path.clone(), detail: "no CERTIFICATE block".into() });
    }
    let key_der = PrivateKeyDer::from_pem_slice(key.pem.expose()).map_err(|e| {
        let detail = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no unencrypted private key block".to_owned(),
            other => format!("unreadable PEM ({other})"),
        };
        TlsConfigError::BadClientKey { path: key.path.clone(), detail }
    })?;
    Ok(Some((chain, key_der)))
}

/// The verifier for `TLS_REQCERT never`/`allow`: any certificate for any name is accepted.
/// The handshake signatures are still checked against the certificate the server sent, which
/// only proves the server holds that certificate's key (not who it is).
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why [`connect`] failed.
#[derive(Debug)]
pub enum ConnectError {
    /// A TLS failure, or StartTLS refused under `demand`.
    Tls(Error),
    /// Anything else (refused, unreachable, timeout); `step` says what was under way, e.g.
    /// the TLS handshake, for the caller's message.
    Ldap { step: Step, source: io::Error },
    /// Resolving the host or the TCP connect failed.
    Net(Error),
}

impl ConnectError {
    /// The error for a failed connect to `url`.
    pub fn into_error(self, cfg: &Config, url: &LdapUrl) -> Error {
        match self {
            ConnectError::Tls(e) | ConnectError::Net(e) => e,
            ConnectError::Ldap { step, source } => Error::ldap(cfg, url, step, source),
        }
    }
}

/// Open a connection to `url` as the configuration says, by `deadline` (which covers the name
/// lookup, TCP connect, the StartTLS request and the TLS handshake). `tls` is the config from
/// [`client_config`]; it must be `Some` when `url` uses TLS.
pub fn connect(
    cfg: &Config,
    url: &LdapUrl,
    tls: Option<&Arc<ClientConfig>>,
    deadline: Deadline,
) -> Result<Conn, ConnectError> {
    connect_on(cfg, url, tls, None, deadline)
}

/// [`connect`] over `stream` when it is `Some` (a TCP connection to `url` already made, see
/// [`crate::ldap::net::connect_addrs`]). StartTLS and the TLS handshake run in the caller's
/// thread, each read and write bounded by `deadline` (see [`crate::ldap::wire`]).
pub fn connect_on(
    cfg: &Config,
    url: &LdapUrl,
    tls: Option<&Arc<ClientConfig>>,
    stream: Option<TcpStream>,
    deadline: Deadline,
) -> Result<Conn, ConnectError> {
    let mode = Mode::of(url, cfg.starttls);
    if url.scheme == crate::uri::Scheme::Ldapi {
        // A local socket needs no lookup, but its connect waits while the server's backlog is full.
        return wire::connect_unix(&url.host, deadline)
            .map(Conn::unix)
            .map_err(|source| ConnectError::Ldap { step: Step::Connect, source });
    }
    let config = match (mode.uses_tls(), tls) {
        (false, _) => None,
        (true, Some(tls)) => Some(Arc::clone(tls)),
        (true, None) => {
            return Err(ConnectError::Tls(Error::Internal(format!("no TLS configuration for {}", url.original))));
        }
    };
    let stream = match stream {
        Some(stream) => stream,
        None => crate::ldap::net::connect(url, deadline, cfg.timeout).map_err(ConnectError::Net)?,
    };
    let failed = |err: io::Error| match describe_failure(cfg, url, mode, &err) {
        Some(line) => ConnectError::Tls(line),
        None => ConnectError::Ldap { step: mode.step(), source: err },
    };
    let mut conn = Conn::tcp(stream);
    if let Mode::StartTls { demand } = mode {
        let answer = conn.start_tls(deadline).map_err(failed)?;
        if answer.rc != 0 {
            // The server does not offer TLS on this port.
            if demand {
                return Err(ConnectError::Tls(starttls_refused(url, &answer)));
            }
            log::warn!(target: "ldapbind", "{}", starttls_fallback(url, &answer));
            return Ok(conn);
        }
    }
    let Some(config) = config else { return Ok(conn) };
    // The name ldap3 verified before (an IPv6 literal keeps its brackets, and is refused).
    let name = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    let name = ServerName::try_from(name).map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    conn.into_tls(config, name, deadline).map_err(failed)
}

/// The error for a connection failure that is about TLS; `None` for anything else.
pub fn describe_failure(cfg: &Config, url: &LdapUrl, mode: Mode, err: &io::Error) -> Option<Error> {
    if !mode.uses_tls() {
        return None;
    }
    let cause = if let Some(e) = rustls_error(err) {
        Cause::Tls { source: e.clone(), trust: Trust::of(cfg) }
    } else if err.get_ref().is_some_and(|e| e.is::<InvalidDnsNameError>()) {
        Cause::TlsName(InvalidDnsNameError)
    } else if err.kind() == io::ErrorKind::UnexpectedEof {
        Cause::Io(io::Error::new(err.kind(), err.to_string()))
    } else {
        return None;
    };
    Some(Error::at(url, mode.step(), cause))
}

/// The rustls error inside an I/O error from the TLS stream, if any.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    let inner: &(dyn std::error::Error + Send + Sync + 'static) = e.get_ref()?;
    inner.downcast_ref::<rustls::Error>()
}

/// The error for a rustls error while talking to `url`.
pub fn describe_rustls(cfg: &Config, url: &LdapUrl, err: &rustls::Error) -> Error {
    let cause = Cause::Tls { source: err.clone(), trust: Trust::of(cfg) };
    Error::at(url, Mode::of(url, cfg.starttls).step(), cause)
}

/// The error for StartTLS refused under `demand`.
fn starttls_refused(url: &LdapUrl, result: &LdapResult) -> Error {
    Error::at(url, Step::StartTls, Cause::Result(LdapCode::of(result)))
}

fn starttls_fallback(url: &LdapUrl, result: &LdapResult) -> String {
    format!(
        "LDAP server {} does not offer StartTLS ({}); continuing WITHOUT TLS because \
         sasl_ldapdb_starttls is try, so passwords cross the network in clear; enable TLS on the \
         server and set sasl_ldapdb_starttls: demand",
        url.endpoint(),
        LdapCode::of(result)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{CertificateError, ClientConnection, ServerConfig, ServerConnection};

    use super::*;
    use crate::config::{FileData, Sources};

    /// A CA made with the `openssl` command, and leaf certificates it signs.
    struct Pki {
        dir: tempfile::TempDir,
        n: std::cell::Cell<u32>,
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    impl Pki {
        fn new() -> Pki {
            static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let id = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            openssl(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "30",
                    "-subj",
                    &format!("/CN=unit test CA {id}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            );
            Pki { dir, n: std::cell::Cell::new(0) }
        }

        fn ca(&self) -> Vec<u8> {
            std::fs::read(self.dir.path().join("ca.pem")).unwrap()
        }

        /// (certificate PEM, key PEM) for `san` (openssl syntax), with `eku`.
        fn leaf(&self, san: &str, eku: &str) -> (Vec<u8>, Vec<u8>) {
            let n = self.n.get() + 1;
            self.n.set(n);
            let (c, k) = (format!("c{n}.pem"), format!("k{n}.pem"));
            openssl(
                self.dir.path(),
                &[
                    "req",
                    "-x509",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &k,
                    "-out",
                    &c,
                    "-days",
                    "30",
                    "-subj",
                    "/CN=leaf",
                    "-addext",
                    &format!("subjectAltName={san}"),
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                    "-addext",
                    &format!("extendedKeyUsage={eku}"),
                ],
            );
            let read = |f: &str| std::fs::read(self.dir.path().join(f)).unwrap();
            (read(&c), read(&k))
        }

        fn server(&self, san: &str) -> (Vec<u8>, Vec<u8>) {
            self.leaf(san, "serverAuth")
        }
    }

    /// Options and files for `Config::from_sources`.
    #[derive(Default)]
    struct Src {
        options: BTreeMap<String, String>,
        files: BTreeMap<PathBuf, Vec<u8>>,
    }

    impl Src {
        fn new(uri: &str) -> Src {
            Src::default().set("ldapdb_uri", uri)
        }
        fn set(mut self, k: &str, v: &str) -> Src {
            self.options.insert(k.into(), v.into());
            self
        }
        fn file(mut self, path: &str, contents: &[u8]) -> Src {
            self.files.insert(path.into(), contents.to_vec());
            self
        }
        fn config(&self) -> Config {
            Config::from_sources(self).unwrap_or_else(|e| panic!("{e}"))
        }
    }

    impl Sources for Src {
        fn option(&self, key: &str) -> Option<String> {
            self.options.get(key).cloned()
        }
        fn read_file(&self, path: &Path) -> io::Result<FileData> {
            let contents = self.files.get(path).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            Ok(FileData { contents, mode: 0o600 })
        }
    }

    fn no_system_store() -> rustls_native_certs::CertificateResult {
        panic!("the system store must not be read here")
    }

    fn store_with(pem: &[u8]) -> impl FnOnce() -> rustls_native_certs::CertificateResult {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().unwrap();
        move || {
            let mut r = rustls_native_certs::CertificateResult::default();
            r.certs = certs;
            r
        }
    }

    fn build(src: &Src) -> Arc<ClientConfig> {
        client_config_with(&src.config(), no_system_store).unwrap().unwrap().config
    }

    fn errors(cfg: &Config, store: impl FnOnce() -> rustls_native_certs::CertificateResult) -> Vec<String> {
        client_config_with(cfg, store).unwrap_err().iter().map(ToString::to_string).collect()
    }

    fn server_config(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Arc<ServerConfig> {
        let chain = CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            ServerConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions().unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca) {
                    roots.add(c.unwrap()).unwrap();
                }
                builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap(),
                )
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// A complete handshake in memory; the first error of either side.
    fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>, name: &str) -> Result<(), rustls::Error> {
        let mut c = ClientConnection::new(client, ServerName::try_from(name).unwrap().to_owned())?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn url(cfg: &Config) -> &LdapUrl {
        &cfg.urls[0]
    }

    #[test]
    fn no_tls_builds_nothing_and_reads_no_store() {
        for src in [Src::new("ldap://127.0.0.1:389/dc=x"), Src::new("ldapi:///dc=x").set("ldapdb_starttls", "demand")] {
            let cfg = src.config();
            assert!(!uses_tls(&cfg));
            assert!(client_config_with(&cfg, no_system_store).unwrap().is_none());
        }
        let cfg = Src::new("ldap://127.0.0.1/dc=x ldaps://127.0.0.1/dc=x").config();
        assert_eq!(Mode::of(&cfg.urls[0], cfg.starttls), Mode::Plain);
        assert_eq!(Mode::of(&cfg.urls[1], cfg.starttls), Mode::Ldaps);
        assert!(uses_tls(&cfg));
        let cfg = Src::new("ldap://h/dc=x").set("ldapdb_starttls", "try").config();
        assert_eq!(Mode::of(url(&cfg), cfg.starttls), Mode::StartTls { demand: false });
        assert_eq!(Mode::StartTls { demand: true }.step(), Step::StartTls);
        assert_eq!(Mode::Ldaps.step(), Step::Ldaps);
    }

    #[test]
    fn the_ca_file_is_trusted_and_nothing_else() {
        let (ours, theirs) = (Pki::new(), Pki::new());
        let src = Src::new("ldaps://127.0.0.1/dc=x").set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", &ours.ca());
        let client = build(&src);
        let (cert, key) = ours.server("IP:127.0.0.1,DNS:localhost");
        handshake(Arc::clone(&client), server_config(&cert, &key, None), "127.0.0.1").unwrap();
        handshake(Arc::clone(&client), server_config(&cert, &key, None), "localhost").unwrap();

        let (cert, key) = theirs.server("IP:127.0.0.1");
        let err = handshake(client, server_config(&cert, &key, None), "127.0.0.1").unwrap_err();
        assert_eq!(
            describe_rustls(&src.config(), url(&src.config()), &err).to_string(),
            "certificate of LDAP server 127.0.0.1:636 is not signed by a trusted CA (trusted: the CA \
             file /ca.pem); set sasl_ldapdb_tls_cacert to the CA file"
        );
    }

    #[test]
    fn the_system_store_is_used_without_a_ca_file() {
        let pki = Pki::new();
        let cfg = Src::new("ldap://127.0.0.1/dc=x").set("ldapdb_starttls", "demand").config();
        let client = client_config_with(&cfg, store_with(&pki.ca())).unwrap().unwrap().config;
        let (cert, key) = pki.server("IP:127.0.0.1");
        handshake(Arc::clone(&client), server_config(&cert, &key, None), "127.0.0.1").unwrap();

        let other = Pki::new();
        let (cert, key) = other.server("IP:127.0.0.1");
        let err = handshake(client, server_config(&cert, &key, None), "127.0.0.1").unwrap_err();
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &err).to_string(),
            "certificate of LDAP server 127.0.0.1:389 is not signed by a trusted CA (trusted: the \
             system certificate store); set sasl_ldapdb_tls_cacert to the CA file"
        );

        assert_eq!(
            errors(&cfg, rustls_native_certs::CertificateResult::default),
            ["sasl_ldapdb_tls_cacert is not set and the system certificate store has no usable \
              certificate (found 0 unusable and no usable certificate); set sasl_ldapdb_tls_cacert \
              to the CA file that signed the LDAP server's certificate (or install ca-certificates)"]
        );
    }

    #[test]
    fn a_certificate_for_another_name_is_refused_with_its_names() {
        let pki = Pki::new();
        let src =
            Src::new("ldaps://127.0.0.1:6360/dc=x").set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", &pki.ca());
        let cfg = src.config();
        let (cert, key) = pki.server("DNS:ldap.example.org,DNS:ldap2.example.org,IP:10.0.0.7");
        let err = handshake(build(&src), server_config(&cert, &key, None), "127.0.0.1").unwrap_err();
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &err).to_string(),
            "certificate of LDAP server 127.0.0.1:6360 is for ldap.example.org, ldap2.example.org, \
             10.0.0.7, not 127.0.0.1; use the name in the certificate in sasl_ldapdb_uri"
        );
        // A client certificate is not a server certificate.
        let (cert, key) = pki.leaf("IP:127.0.0.1", "clientAuth");
        let err = handshake(build(&src), server_config(&cert, &key, None), "127.0.0.1").unwrap_err();
        assert!(describe_rustls(&cfg, url(&cfg), &err).to_string().contains("is not for TLS servers"), "{err}");
    }

    #[test]
    fn tls_reqcert_never_accepts_any_certificate() {
        let pki = Pki::new();
        let src =
            Src::new("ldaps://127.0.0.1/dc=x").set("ldapdb_rc", "/ldaprc").file("/ldaprc", b"TLS_REQCERT never\n");
        let cfg = src.config();
        assert_eq!(cfg.tls_reqcert, TlsReqCert::Never);
        assert!(cfg.warnings.iter().any(|w| w.to_string().contains("will not verify the LDAP server's certificate")));
        // Neither the system store nor any CA is consulted.
        let client = build(&src);
        let (cert, key) = pki.server("DNS:somewhere.else");
        handshake(client, server_config(&cert, &key, None), "127.0.0.1").unwrap();
        // `demand` in the same rc file verifies again.
        let src = src
            .file("/ldaprc", b"TLS_REQCERT demand\n")
            .set("ldapdb_tls_cacert", "/ca.pem")
            .file("/ca.pem", &Pki::new().ca());
        let cfg = src.config();
        let err = handshake(build(&src), server_config(&cert, &key, None), "127.0.0.1").unwrap_err();
        assert!(
            describe_rustls(&cfg, url(&cfg), &err).to_string().contains("is not signed by a trusted CA"),
            "{err:?}"
        );
        // Two CAs with one name: the signature check is what fails.
        let same_name = rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &same_name).to_string(),
            "certificate of LDAP server 127.0.0.1:636 is not signed by the trusted CA it names (the \
             signature does not verify; trusted: the CA file /ca.pem); set sasl_ldapdb_tls_cacert to \
             the CA file that signed it"
        );
    }

    #[test]
    fn the_client_certificate_is_presented() {
        let pki = Pki::new();
        let (client_cert, client_key) = pki.leaf("DNS:client", "clientAuth");
        let src = Src::new("ldaps://127.0.0.1/dc=x")
            .set("ldapdb_tls_cacert", "/ca.pem")
            .set("ldapdb_tls_cert", "/c.pem")
            .set("ldapdb_tls_key", "/k.pem")
            .set("ldapdb_mech", "EXTERNAL")
            .file("/ca.pem", &pki.ca())
            .file("/c.pem", &client_cert)
            .file("/k.pem", &client_key);
        let (cert, key) = pki.server("IP:127.0.0.1");
        handshake(build(&src), server_config(&cert, &key, Some(&pki.ca())), "127.0.0.1").unwrap();
        // Without it, a server that requires one refuses the handshake.
        let bare = Src::new("ldaps://127.0.0.1/dc=x").set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", &pki.ca());
        assert!(handshake(build(&bare), server_config(&cert, &key, Some(&pki.ca())), "127.0.0.1").is_err());
    }

    #[test]
    fn client_certificate_problems_name_the_option() {
        let pki = Pki::new();
        let (cert, _) = pki.leaf("DNS:client", "clientAuth");
        let (_, other_key) = pki.leaf("DNS:other", "clientAuth");
        let base = || {
            Src::new("ldaps://127.0.0.1/dc=x")
                .set("ldapdb_tls_cacert", "/ca.pem")
                .set("ldapdb_tls_cert", "/c.pem")
                .set("ldapdb_tls_key", "/k.pem")
                .file("/ca.pem", &pki.ca())
                .file("/c.pem", &cert)
        };
        let cfg = base().file("/k.pem", &other_key).config();
        assert_eq!(
            errors(&cfg, no_system_store),
            ["sasl_ldapdb_tls_key: /k.pem is not the key of the certificate in sasl_ldapdb_tls_cert \
              (/c.pem); set both to the two halves of one key pair"]
        );
        let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let cfg = base().file("/k.pem", encrypted).config();
        assert_eq!(
            errors(&cfg, no_system_store),
            ["sasl_ldapdb_tls_key: /k.pem: no unencrypted private key block; write the private key \
              unencrypted as PEM (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE \
              KEY`; `openssl pkey -in KEY -out KEY.pem` decrypts one)"]
        );
    }

    #[test]
    fn an_unusable_ca_file_names_the_option() {
        let garbage = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let cfg = Src::new("ldaps://h/dc=x").set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", garbage).config();
        let e = errors(&cfg, no_system_store);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "sasl_ldapdb_tls_cacert: /ca.pem holds no CA certificate rustls can use (certificate #1: "
            ),
            "{e:?}"
        );
        assert!(e[0].ends_with(
            "); set sasl_ldapdb_tls_cacert to a PEM file with the certificate of the CA that signed \
             the LDAP server's certificate"
        ));
        // One good CA among bad ones is used, with a warning.
        let pki = Pki::new();
        let mut mixed = garbage.to_vec();
        mixed.extend(pki.ca());
        let cfg = Src::new("ldaps://h/dc=x").set("ldapdb_tls_cacert", "/ca.pem").file("/ca.pem", &mixed).config();
        let setup = client_config_with(&cfg, no_system_store).unwrap().unwrap();
        assert_eq!(setup.warnings.len(), 1);
        let warning = setup.warnings[0].to_string();
        assert!(
            warning.starts_with("sasl_ldapdb_tls_cacert: /ca.pem: ignoring what rustls cannot use (certificate #1: ")
        );
        assert!(warning.ends_with("the other 1 certificate(s) are trusted"));
        // Made in parts: the doctor shows them apart.
        let m = &setup.warnings[0];
        assert_eq!(
            (m.fix.as_deref(), format!("{}; {}", m.problem, m.fix.as_deref().unwrap_or_default())),
            (Some("the other 1 certificate(s) are trusted"), warning)
        );
    }

    #[test]
    fn a_tls_error_gives_its_problem_and_fix_apart() {
        let e = TlsConfigError::KeyMismatch { cert: "/c.pem".into(), key: "/k.pem".into() };
        let (problem, fix) = (
            "sasl_ldapdb_tls_key: /k.pem is not the key of the certificate in sasl_ldapdb_tls_cert (/c.pem)",
            "set both to the two halves of one key pair",
        );
        assert_eq!(
            (e.message(), e.to_string()),
            (Message { problem: problem.into(), fix: Some(fix.into()) }, format!("{problem}; {fix}"))
        );
    }

    #[test]
    fn dates_and_validity_lines() {
        let cfg = Src::new("ldaps://ldap.example.org/dc=x").config();
        let t = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let expired = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: t(1_800_000_000),
            not_after: t(1_577_923_200),
        });
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &expired).to_string(),
            "certificate of LDAP server ldap.example.org:636 expired on 2020-01-02 00:00:00 UTC (it \
             is now 2027-01-15 08:00:00 UTC); renew the server's certificate"
        );
        let early = rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
            time: t(0),
            not_before: t(951_782_400 + 3_723),
        });
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &early).to_string(),
            "certificate of LDAP server ldap.example.org:636 is not valid before 2000-02-29 01:02:03 \
             UTC (it is now 1970-01-01 00:00:00 UTC); check the clocks of this host and the server"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(
            describe_rustls(&cfg, url(&cfg), &alert).to_string(),
            "LDAP server ldap.example.org:636 refused the TLS handshake (alert: HandshakeFailure); \
             check the server's TLS settings (it must accept TLS 1.2 or 1.3) and its log"
        );
    }

    #[test]
    fn only_tls_failures_are_described() {
        let cfg = Src::new("ldaps://127.0.0.1:1636/dc=x").config();
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io_err = io::Error::new(io::ErrorKind::InvalidData, inner);
        let line = describe_failure(&cfg, url(&cfg), Mode::Ldaps, &io_err).unwrap().to_string();
        assert!(line.starts_with("certificate of LDAP server 127.0.0.1:1636 is not signed by a trusted CA"), "{line}");
        // The same error on a plain connection is not about TLS.
        assert!(describe_failure(&cfg, url(&cfg), Mode::Plain, &io_err).is_none());
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(describe_failure(&cfg, url(&cfg), Mode::Ldaps, &refused).is_none());
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            describe_failure(&cfg, url(&cfg), Mode::Ldaps, &eof).unwrap().to_string(),
            "LDAP server 127.0.0.1:1636 closed the connection during the TLS handshake; check that \
             port 1636 serves ldaps:// (usually 636; 389 is ldap://, which takes \
             sasl_ldapdb_starttls) and the server's TLS settings"
        );
        let garbled = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(describe_rustls(&cfg, url(&cfg), &garbled).to_string().starts_with(
            "LDAP server 127.0.0.1:1636 did not answer in TLS (received corrupt message of type \
             InvalidContentType); check that port 1636 serves ldaps://"
        ));
    }

    #[test]
    fn starttls_refusal_lines() {
        let cfg = Src::new("ldap://127.0.0.1:3389/dc=x").set("ldapdb_starttls", "demand").config();
        let result = LdapResult {
            rc: 52,
            matched: String::new(),
            text: "Could not initialize TLS".into(),
            refs: vec![],
            ctrls: vec![],
        };
        assert_eq!(
            starttls_refused(url(&cfg), &result).to_string(),
            "LDAP server 127.0.0.1:3389 refused StartTLS (52 unavailable: Could not initialize TLS) \
             and sasl_ldapdb_starttls is demand, so ldapbind does not continue without TLS; enable \
             TLS on the server (slapd: olcTLSCertificateFile and olcTLSCertificateKeyFile) or use \
             its ldaps:// URL"
        );
        assert_eq!(
            starttls_fallback(url(&cfg), &LdapResult { rc: 2, text: String::new(), ..result }),
            "LDAP server 127.0.0.1:3389 does not offer StartTLS (2 protocolError); continuing \
             WITHOUT TLS because sasl_ldapdb_starttls is try, so passwords cross the network in \
             clear; enable TLS on the server and set sasl_ldapdb_starttls: demand"
        );
    }

    #[test]
    fn an_ipv6_literal_gets_its_own_line() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let _held: Vec<_> = listener.incoming().take(1).collect();
        });
        let pki = Pki::new();
        let src = Src::new(&format!("ldaps://[::1]:{port}/dc=x"))
            .set("ldapdb_tls_cacert", "/ca.pem")
            .file("/ca.pem", &pki.ca());
        let cfg = src.config();
        let tls = build(&src);
        match connect(&cfg, url(&cfg), Some(&tls), Deadline::after(cfg.timeout)) {
            Err(ConnectError::Tls(line)) => assert_eq!(
                line.to_string(),
                format!(
                    "sasl_ldapdb_uri: `ldaps://[::1]:{port}/dc=x` cannot be checked against a TLS \
                     certificate (invalid dns name); ldapbind checks a certificate against a host \
                     name, not an IPv6 address literal: use a host name that is in the server's certificate"
                )
            ),
            other => panic!("{other:?}"),
        }
    }
}
