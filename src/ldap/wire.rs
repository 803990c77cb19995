//! One LDAP connection: ldap3's protocol over a socket ldapbind owns, with every message from the
//! server refused as it arrives once it announces more than [`MAX_MESSAGE`] bytes.
//!
//! ldap3 buffers a whole message before anyone sees it (a 400 MB `userPassword` value took
//! 1.18 GB of the host's memory), so ldap3 does not get the socket: it talks to one end of a
//! socket pair, and a relay task copies between the other end and the server, reading each
//! message's BER length as it passes and closing both sides when one is too large. The relay
//! holds the TCP (and TLS) stream; it runs on the connection's own single-thread runtime, with
//! ldap3's driver, only while an operation waits on it: no thread of its own.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, ResultEntry, Scope, SearchOptions, SearchStream,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;

use super::net::Deadline;

/// The largest message taken from a server. A user entry with its secrets is a few KiB.
pub const MAX_MESSAGE: usize = 1 << 20;

type Ldap3Result<T> = Result<T, LdapError>;

/// An open connection, ready for operations.
pub struct Conn {
    rt: Runtime,
    ldap: Ldap,
    encrypted: bool,
    /// Why the relay cut the connection, when it did.
    cut: Arc<Mutex<Option<String>>>,
    relay: tokio::task::JoinHandle<()>,
}

/// A runtime for one connection: one thread (the caller's, during an operation), I/O and timers.
pub fn runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The transport under a connection, as the relay holds it.
pub enum Net {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Unix(tokio::net::UnixStream),
}

/// A std socket as the runtime's, inside `rt` (tokio registers it with the runtime's reactor).
pub fn tcp(rt: &Runtime, stream: TcpStream) -> io::Result<tokio::net::TcpStream> {
    stream.set_nonblocking(true)?;
    let _guard = rt.enter();
    tokio::net::TcpStream::from_std(stream)
}

pub fn unix(rt: &Runtime, stream: UnixStream) -> io::Result<tokio::net::UnixStream> {
    stream.set_nonblocking(true)?;
    let _guard = rt.enter();
    tokio::net::UnixStream::from_std(stream)
}

/// Start ldap3 over `net` (connected, TLS done if any) on `rt`.
pub fn start(rt: Runtime, net: Net) -> Ldap3Result<Conn> {
    let encrypted = matches!(net, Net::Tls(_));
    let (ours, theirs) = UnixStream::pair()?;
    let cut = Arc::new(Mutex::new(None));
    let relay_cut = Arc::clone(&cut);
    let ours = unix(&rt, ours)?;
    let relay = rt.spawn(async move {
        let why = match net {
            Net::Tcp(s) => relay(ours, s).await,
            Net::Tls(s) => relay(ours, *s).await,
            Net::Unix(s) => relay(ours, s).await,
        };
        if let Some(why) = why {
            *lock(&relay_cut) = Some(why);
        }
    });
    let settings = LdapConnSettings::new().set_std_stream(ldap3::StdStream::Unix(theirs));
    let ldap = rt.block_on(async move {
        // The URL only picks ldap3's Unix-socket path; the socket given is used as it is.
        let (conn, ldap) = LdapConnAsync::with_settings(settings, "ldapi://ldapbind").await?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                log::debug!(target: "ldapbind", "LDAP connection ended: {e}");
            }
        });
        Ok::<_, LdapError>(ldap)
    })?;
    Ok(Conn { rt, ldap, encrypted, cut, relay })
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("encrypted", &self.encrypted).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Conn {
    /// Whether TLS protects the connection (ldaps://, or StartTLS accepted).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// `op` on ldap3's handle, by `deadline`; an error says why the relay cut the connection
    /// when it did.
    fn call<T, F>(&mut self, deadline: Deadline, op: impl FnOnce(Ldap) -> F) -> Ldap3Result<T>
    where
        F: Future<Output = Ldap3Result<T>>,
    {
        let fut = op(self.ldap.clone());
        let at = tokio::time::Instant::from_std(deadline.instant());
        let result = self.rt.block_on(async move { tokio::time::timeout_at(at, fut).await? });
        result.map_err(|e| self.explain(e))
    }

    fn explain(&self, e: LdapError) -> LdapError {
        match lock(&self.cut).clone() {
            Some(why) => LdapError::Io { source: io::Error::other(why) },
            None => e,
        }
    }

    /// A simple bind that asks for the password policy response control (servers answer with it
    /// only when asked), so [`crate::account::bind_outcome`] can tell a locked or expired account.
    pub fn simple_bind(&mut self, dn: &str, password: &str, deadline: Deadline) -> Ldap3Result<LdapResult> {
        self.call(deadline, |mut ldap| async move {
            ldap.with_controls(crate::account::ppolicy_request()).simple_bind(dn, password).await
        })
    }

    pub fn sasl_external_bind(&mut self, deadline: Deadline) -> Ldap3Result<LdapResult> {
        self.call(deadline, |mut ldap| async move { ldap.sasl_external_bind().await })
    }

    /// Close politely, waiting `wait` at most (until the relay has passed the request on).
    pub fn unbind(&mut self, wait: Duration) {
        let deadline = Deadline::after(wait);
        let _ = self.call(deadline, |mut ldap| async move { ldap.unbind().await });
        let at = tokio::time::Instant::from_std(deadline.instant());
        let relay = &mut self.relay;
        let _ = self.rt.block_on(async move { tokio::time::timeout_at(at, relay).await });
    }

    /// Start a search; read its entries with [`Search::next_entry`], all by `deadline`.
    pub fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
        opts: SearchOptions,
        deadline: Deadline,
    ) -> Ldap3Result<Search<'_>> {
        let stream = self.call(deadline, |mut ldap| async move {
            ldap.with_search_options(opts).streaming_search(base, scope, filter, attrs).await
        })?;
        Ok(Search { conn: self, stream, deadline, ended: false })
    }
}

/// A search under way. Dropping it before the end leaves the operation running on the server:
/// close the connection then.
pub struct Search<'c> {
    conn: &'c mut Conn,
    stream: SearchStream<'static, String, Vec<String>>,
    deadline: Deadline,
    /// [`Search::next_entry`] returned `None`: ldap3 0.12 panics when asked again.
    ended: bool,
}

impl Search<'_> {
    /// The next entry or referral; `None` after the last, and on every call after that.
    pub fn next_entry(&mut self) -> Ldap3Result<Option<ResultEntry>> {
        if self.ended {
            return Ok(None);
        }
        let stream = &mut self.stream;
        let at = tokio::time::Instant::from_std(self.deadline.instant());
        let result = self.conn.rt.block_on(async move { tokio::time::timeout_at(at, stream.next()).await? });
        self.ended = matches!(result, Ok(None));
        result.map_err(|e| self.conn.explain(e))
    }

    /// The search's result, once [`Search::next_entry`] returned `None`.
    pub fn result(mut self) -> LdapResult {
        let stream = &mut self.stream;
        self.conn.rt.block_on(async move { stream.finish().await })
    }
}

/// Copy between ldap3's end of the pair and the server until either side ends; `Some(why)`
/// when a message from the server was refused.
async fn relay<S: AsyncRead + AsyncWrite>(ours: tokio::net::UnixStream, net: S) -> Option<String> {
    let (mut app_read, mut app_write) = ours.into_split();
    let (mut net_read, mut net_write) = tokio::io::split(net);
    let up = async {
        let _ = tokio::io::copy(&mut app_read, &mut net_write).await;
        let _ = net_write.shutdown().await;
        None
    };
    let down = async {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match net_read.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            if let Err(why) = frames.feed(&buf[..n]) {
                return Some(why);
            }
            if app_write.write_all(&buf[..n]).await.is_err() {
                return None;
            }
        }
    };
    tokio::select! {
        why = up => why,
        why = down => why,
    }
}

/// Where the byte stream from the server is in its BER messages.
#[derive(Default)]
struct Frames {
    state: Frame,
}

#[derive(Default, Clone, Copy)]
enum Frame {
    #[default]
    Tag,
    Length,
    LongLength {
        left: u8,
        len: usize,
    },
    Body(usize),
}

impl Frames {
    /// Follow `bytes`; `Err` naming the problem when a message announces more than
    /// [`MAX_MESSAGE`] bytes or a length LDAP does not allow (indefinite).
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while let Some((&b, rest)) = bytes.split_first() {
            self.state = match self.state {
                Frame::Tag => Frame::Length,
                Frame::Length if b & 0x80 == 0 => Self::body(usize::from(b))?,
                Frame::Length if b == 0x80 => {
                    return Err("the server sent a message of indefinite length, which LDAP does not allow".into());
                }
                Frame::Length => Frame::LongLength { left: b & 0x7f, len: 0 },
                Frame::LongLength { left, len } => {
                    let len = len.saturating_mul(256).saturating_add(usize::from(b));
                    if left == 1 { Self::body(len)? } else { Frame::LongLength { left: left - 1, len } }
                }
                Frame::Body(left) => {
                    let take = left.min(bytes.len());
                    bytes = &bytes[take..];
                    self.state = if take == left { Frame::Tag } else { Frame::Body(left - take) };
                    continue;
                }
            };
            bytes = rest;
        }
        Ok(())
    }

    fn body(len: usize) -> Result<Frame, String> {
        if len > MAX_MESSAGE {
            return Err(format!(
                "the server sent a message of {len} bytes, over ldapbind's limit of {MAX_MESSAGE} bytes \
                 (a user entry takes a few KiB), so the connection was closed"
            ));
        }
        Ok(if len == 0 { Frame::Tag } else { Frame::Body(len) })
    }
}

/// The StartTLS extended request (RFC 4511 4.14.1), message id 1.
const STARTTLS_REQUEST: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// Ask for StartTLS on `stream` and read the answer: its result code and text.
pub async fn starttls(stream: &mut tokio::net::TcpStream) -> io::Result<LdapResult> {
    stream.write_all(STARTTLS_REQUEST).await?;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let len = match head[1] {
        n if n & 0x80 == 0 => usize::from(n),
        n if (1..=4).contains(&(n & 0x7f)) => {
            let mut bytes = vec![0u8; usize::from(n & 0x7f)];
            stream.read_exact(&mut bytes).await?;
            bytes.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b))
        }
        _ => return Err(malformed()),
    };
    if head[0] != 0x30 || len > 64 * 1024 {
        return Err(malformed());
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    // LDAPMessage { messageID, extendedResp [APPLICATION 24] { resultCode, matchedDN, text, ... } }
    let (_, _id, rest) = element(&body).ok_or_else(malformed)?;
    let (tag, resp, _) = element(rest).ok_or_else(malformed)?;
    let (_, rc, rest) = element(resp).ok_or_else(malformed)?;
    let (_, matched, rest) = element(rest).ok_or_else(malformed)?;
    let (_, text, _) = element(rest).ok_or_else(malformed)?;
    if tag != 0x78 {
        return Err(malformed());
    }
    Ok(LdapResult {
        rc: rc.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)),
        matched: String::from_utf8_lossy(matched).into_owned(),
        text: String::from_utf8_lossy(text).into_owned(),
        refs: Vec::new(),
        ctrls: Vec::new(),
    })
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed answer to the StartTLS request")
}

/// (tag, contents, rest) of the first BER element of `b` (short or long definite length).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return None;
        }
        (rest.get(..n)?.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_messages_under_the_limit_in_any_pieces() {
        // Two messages: 5 bytes of body (short form), then 300 bytes (long form, 2 length bytes).
        let mut stream = vec![0x30, 5, 1, 2, 3, 4, 5, 0x30, 0x82, 0x01, 0x2c];
        stream.extend(vec![7u8; 300]);
        for split in 0..stream.len() {
            let mut f = Frames::default();
            f.feed(&stream[..split]).unwrap();
            f.feed(&stream[split..]).unwrap();
            assert!(matches!(f.state, Frame::Tag), "split at {split}");
        }
    }

    #[test]
    fn frames_refuse_a_message_over_the_limit_from_its_length_alone() {
        let mut f = Frames::default();
        let e = f.feed(&[0x30, 0x84, 0x17, 0xd7, 0x84, 0x00]).unwrap_err();
        assert!(e.contains("400000000 bytes") && e.contains("1048576"), "{e}");
        let mut f = Frames::default();
        assert!(f.feed(&[0x30, 0x80]).is_err(), "indefinite length");
        let mut f = Frames::default();
        f.feed(&[0x30, 0x83, 0x10, 0x00, 0x00]).unwrap(); // exactly 1 MiB
    }

    #[test]
    fn the_starttls_request_is_well_formed() {
        let (tag, body, rest) = element(STARTTLS_REQUEST).unwrap();
        assert!(tag == 0x30 && rest.is_empty());
        let (_, id, rest) = element(body).unwrap();
        assert_eq!(id, [1]);
        let (tag, req, _) = element(rest).unwrap();
        assert_eq!(tag, 0x77);
        assert_eq!(element(req).unwrap().1, b"1.3.6.1.4.1.1466.20037");
    }
}
