//! One LDAP connection, blocking: ldap3's own BER codec ([`ldap3::asn1`], [`ldap3::parse_filter`],
//! its result types) over a socket ldapbind owns, in the caller's thread. No runtime, no thread,
//! nothing started at load time.
//!
//! Every read and write is bounded by the operation's [`Deadline`]: before each system call the
//! socket's receive or send timeout is at most the time left (set anew unless the one already set
//! is, see [`Sock::bounded`]), so a server that drips its answer cannot stretch an operation, and
//! the TLS handshake is bounded the same way.
//!
//! Each message from the server is framed here: its BER tag and length are read first, and a
//! message announcing more than [`MAX_MESSAGE`] bytes (or an indefinite length) is refused
//! before its body is read, so a 400 MB `userPassword` value costs the host no memory. One read
//! buffer per connection is reused for every message.
//!
//! Dropping a [`Conn`] only closes its socket: it never writes (no unbind, no TLS close_notify),
//! so a connection inherited across `fork()` can simply be dropped in the child.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::{ASNTag, Boolean, Integer, Null, OctetString, PL, Sequence, StructureTag, Tag, TagClass, Types};
use ldap3::controls::{Control, RawControl};
use ldap3::{LdapResult, ResultEntry, Scope, SearchOptions};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::net::Deadline;

/// The largest message taken from a server. A user entry with its secrets is a few KiB.
pub const MAX_MESSAGE: usize = 1 << 20;
/// The deepest nesting of constructed elements taken from a server: ldap3's parser recurses once
/// per level, and a message of nested headers (two bytes each) would overflow the host's stack.
/// An entry nests 5 deep, a control 3.
const MAX_DEPTH: usize = 16;
/// The read buffer a connection keeps between messages; a larger one, grown for a large
/// message, is given back.
const KEEP_BUFFER: usize = 16 * 1024;
/// The OID of StartTLS (RFC 4511 4.14.1).
const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";

// LDAPMessage protocolOp tags ([APPLICATION n], RFC 4511 4.2 to 4.14).
const BIND_REQUEST: u64 = 0;
const BIND_RESPONSE: u64 = 1;
const UNBIND_REQUEST: u64 = 2;
const SEARCH_REQUEST: u64 = 3;
const SEARCH_ENTRY: u64 = 4;
const SEARCH_DONE: u64 = 5;
const SEARCH_REFERENCE: u64 = 19;
const EXTENDED_REQUEST: u64 = 23;
const EXTENDED_RESPONSE: u64 = 24;
const INTERMEDIATE_RESPONSE: u64 = 25;

type Result<T> = io::Result<T>;

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the server sent a malformed {what}"))
}

/// The socket under a connection; every system call on it waits until `deadline` at most.
struct Sock {
    fd: Fd,
    deadline: Deadline,
    /// The receive and send timeouts this connection last set on the socket (`None`: unknown).
    timeouts: [Option<Duration>; 2],
}

const RECEIVE: usize = 0;
const SEND: usize = 1;

/// How much shorter than the time left a socket timeout set for an earlier call may be and still
/// serve the next one (see [`Sock::bounded`]).
const TIMEOUT_SLACK: Duration = Duration::from_millis(100);

enum Fd {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    /// The time left, or a timeout error once the deadline has passed.
    fn left(&self) -> Result<Duration> {
        if self.deadline.passed() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the operation's time is up"));
        }
        Ok(self.deadline.left())
    }

    /// `call` (a system call on the socket) with the socket's timeout for `which` set no longer
    /// than the time left, so it returns by the deadline. A timeout set for an earlier call is
    /// kept while it is no longer than the time left and at most [`TIMEOUT_SLACK`] shorter (a
    /// login's calls then make no `setsockopt`): new ones are set half that much under the time left.
    /// A call such a shorter timeout ends before the deadline is made again with the exact time
    /// left.
    fn bounded<T>(&mut self, which: usize, mut call: impl FnMut(&mut Fd) -> Result<T>) -> Result<T> {
        loop {
            let left = self.left()?;
            if !self.timeouts[which].is_some_and(|t| t <= left && left - t <= TIMEOUT_SLACK) {
                let t = if left > TIMEOUT_SLACK { left - TIMEOUT_SLACK / 2 } else { left };
                self.timeouts[which] = None;
                match (&self.fd, which) {
                    (Fd::Tcp(s), RECEIVE) => s.set_read_timeout(Some(t)),
                    (Fd::Tcp(s), _) => s.set_write_timeout(Some(t)),
                    (Fd::Unix(s), RECEIVE) => s.set_read_timeout(Some(t)),
                    (Fd::Unix(s), _) => s.set_write_timeout(Some(t)),
                }?;
                self.timeouts[which] = Some(t);
            }
            match call(&mut self.fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.deadline.passed() => {
                    self.timeouts[which] = None;
                }
                done => return done.map_err(timed_out),
            }
        }
    }
}

/// A receive or send timeout is `WouldBlock` (EAGAIN) from the kernel: say what it is.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "the server did not answer in time")
    } else {
        e
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.bounded(RECEIVE, |fd| match fd {
            Fd::Tcp(s) => s.read(buf),
            Fd::Unix(s) => s.read(buf),
        })
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.bounded(SEND, |fd| match fd {
            Fd::Tcp(s) => s.write(buf),
            Fd::Unix(s) => s.write(buf),
        })
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

enum Stream {
    Plain(Sock),
    Tls(Box<StreamOwned<ClientConnection, Sock>>),
}

impl Stream {
    fn sock(&mut self) -> &mut Sock {
        match self {
            Stream::Plain(sock) => sock,
            Stream::Tls(tls) => &mut tls.sock,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Stream::Plain(sock) => sock.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Stream::Plain(sock) => sock.write_all(bytes),
            Stream::Tls(tls) => tls.write_all(bytes).and_then(|()| tls.flush()),
        }
    }
}

/// A `UnixStream` connected to the socket at `path` by `deadline`: a server whose backlog is
/// full makes `connect` wait, up to the socket's send timeout on Linux.
pub fn connect_unix(path: &str, deadline: Deadline) -> Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_write_timeout(Some(deadline.left()))?;
    socket.connect(&SockAddr::unix(path)?).map_err(timed_out)?;
    Ok(socket.into())
}

/// An open connection, ready for operations.
pub struct Conn {
    stream: Stream,
    /// The message id of the last request (RFC 4511 4.1.1.1: increasing, never 0).
    last_id: i32,
    /// Bytes from the server not yet taken, `buf[start..end]`; reused for every message.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Why the connection cannot be used any more: a failure left it in the middle of a message
    /// or the server ended it.
    broken: Option<(io::ErrorKind, String)>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("encrypted", &self.encrypted()).finish_non_exhaustive()
    }
}

/// One message from the server: its id, its protocolOp and its controls.
struct Message {
    id: i32,
    op: StructureTag,
    controls: Vec<Control>,
}

impl Conn {
    /// A connection over a TCP stream already connected (TLS comes later, see [`Conn::into_tls`]).
    pub fn tcp(stream: TcpStream) -> Conn {
        Conn::new(Fd::Tcp(stream))
    }

    /// A connection over an `ldapi://` socket, see [`connect_unix`].
    pub fn unix(stream: UnixStream) -> Conn {
        Conn::new(Fd::Unix(stream))
    }

    fn new(fd: Fd) -> Conn {
        let deadline = Deadline::after(Duration::ZERO);
        Conn {
            stream: Stream::Plain(Sock { fd, deadline, timeouts: [None; 2] }),
            last_id: 0,
            buf: Vec::new(),
            start: 0,
            end: 0,
            broken: None,
        }
    }

    /// This connection with TLS on it, the handshake done by `deadline`: for ldaps:// right after
    /// connecting, for StartTLS after the server accepted it ([`Conn::start_tls`]).
    pub fn into_tls(
        mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Deadline,
    ) -> Result<Conn> {
        let Stream::Plain(mut sock) = self.stream else {
            return Err(io::Error::other("TLS is already on this connection"));
        };
        if self.start != self.end {
            // The server spoke after its StartTLS answer, before the client's handshake.
            return Err(malformed("message after its StartTLS answer"));
        }
        sock.deadline = deadline;
        let mut tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut sock)?;
        }
        self.stream = Stream::Tls(Box::new(StreamOwned::new(tls, sock)));
        Ok(self)
    }

    /// Whether TLS protects the connection (ldaps://, or StartTLS accepted).
    pub fn encrypted(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Ask for StartTLS and return the server's answer; TLS is put on by [`Conn::into_tls`]
    /// when the answer is success.
    pub fn start_tls(&mut self, deadline: Deadline) -> Result<LdapResult> {
        let request = tagged(
            EXTENDED_REQUEST,
            vec![Tag::OctetString(OctetString {
                id: 0,
                class: TagClass::Context,
                inner: STARTTLS_OID.as_bytes().to_vec(),
            })],
        );
        let id = self.send(request, None, deadline)?;
        self.result_of(id, EXTENDED_RESPONSE, deadline)
    }

    /// A simple bind that asks for the password policy response control (servers answer with it
    /// only when asked), so [`crate::account::bind_outcome`] can tell a locked or expired account.
    pub fn simple_bind(&mut self, dn: &str, password: &str, deadline: Deadline) -> Result<LdapResult> {
        let request = tagged(
            BIND_REQUEST,
            vec![
                Tag::Integer(Integer { inner: 3, ..Default::default() }),
                octets(dn.as_bytes()),
                Tag::OctetString(OctetString { id: 0, class: TagClass::Context, inner: password.as_bytes().to_vec() }),
            ],
        );
        let id = self.send(request, Some(vec![crate::account::ppolicy_request()]), deadline)?;
        self.result_of(id, BIND_RESPONSE, deadline)
    }

    /// A SASL EXTERNAL bind with an empty authorization identity: the server maps the peer
    /// credentials (ldapi://) or the client certificate to an identity.
    pub fn sasl_external_bind(&mut self, deadline: Deadline) -> Result<LdapResult> {
        let request = tagged(
            BIND_REQUEST,
            vec![
                Tag::Integer(Integer { inner: 3, ..Default::default() }),
                octets(b""),
                Tag::Sequence(Sequence {
                    id: 3,
                    class: TagClass::Context,
                    inner: vec![octets(b"EXTERNAL"), octets(b"")],
                }),
            ],
        );
        let id = self.send(request, None, deadline)?;
        self.result_of(id, BIND_RESPONSE, deadline)
    }

    /// Close politely: an unbind request (and TLS close_notify), waiting `wait` at most.
    pub fn unbind(&mut self, wait: Duration) {
        let deadline = Deadline::after(wait);
        let request = Tag::Null(Null { id: UNBIND_REQUEST, class: TagClass::Application, inner: () });
        if self.send(request, None, deadline).is_ok()
            && let Stream::Tls(tls) = &mut self.stream
        {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        self.broken = Some((io::ErrorKind::NotConnected, "the connection was closed".into()));
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
    ) -> Result<Search<'_>> {
        self.search_for(base, scope, filter, &attrs, opts, deadline)
    }

    /// [`Conn::search`] with the attribute names borrowed (a login's search copies none).
    pub fn search_for(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[impl AsRef<str>],
        opts: SearchOptions,
        deadline: Deadline,
    ) -> Result<Search<'_>> {
        let filter = ldap3::parse_filter(filter).map_err(|()| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("the search filter {filter} is not valid"))
        })?;
        let filter = filter.into_structure();
        // The SearchRequest (RFC 4511 4.5.1) written straight to BER: a login's search builds
        // no tag tree but the filter's.
        let id = self.send_with(deadline, |id| {
            // Room for the whole request as a login's is (the filter's own size unknown).
            let attrs_len: usize = attrs.iter().map(|a| a.as_ref().len() + 2).sum();
            let mut out = Vec::with_capacity(base.len() + attrs_len + 256);
            tlv(&mut out, &[0x30], |msg| {
                ber_integer(msg, 0x02, i64::from(id));
                tlv(msg, &[0x60 | SEARCH_REQUEST as u8], |req| {
                    tlv(req, &[0x04], |o| o.extend_from_slice(base.as_bytes()));
                    ber_integer(req, 0x0a, scope as i64);
                    ber_integer(req, 0x0a, opts.deref as i64);
                    ber_integer(req, 0x02, i64::from(opts.sizelimit));
                    ber_integer(req, 0x02, i64::from(opts.timelimit));
                    tlv(req, &[0x01], |o| o.push(if opts.typesonly { 0xff } else { 0 }));
                    write_ber(req, &filter);
                    tlv(req, &[0x30], |list| {
                        for a in attrs {
                            tlv(list, &[0x04], |o| o.extend_from_slice(a.as_ref().as_bytes()));
                        }
                    });
                });
            });
            Ok(out)
        })?;
        Ok(Search { conn: self, id, deadline, result: None })
    }

    /// Send `op` with `controls` as the next message; its id.
    fn send(&mut self, op: Tag, controls: Option<Vec<RawControl>>, deadline: Deadline) -> Result<i32> {
        self.send_with(deadline, |id| encode(id, op, controls))
    }

    /// Send the next message, which `encode` writes for its id; the id.
    fn send_with(&mut self, deadline: Deadline, encode: impl FnOnce(i32) -> Result<Vec<u8>>) -> Result<i32> {
        self.usable()?;
        self.last_id = if self.last_id == i32::MAX { 1 } else { self.last_id + 1 };
        let bytes = encode(self.last_id)?;
        self.stream.sock().deadline = deadline;
        self.stream.send(&bytes).inspect_err(|e| self.break_off(e))?;
        Ok(self.last_id)
    }

    fn usable(&self) -> Result<()> {
        match &self.broken {
            Some((kind, why)) => Err(io::Error::new(*kind, why.clone())),
            None => Ok(()),
        }
    }

    fn break_off(&mut self, e: &io::Error) {
        self.broken = Some((e.kind(), e.to_string()));
    }

    /// Give up on a message that is not what LDAP allows here: the connection is unusable.
    fn refuse<T>(&mut self, what: &str) -> Result<T> {
        let e = malformed(what);
        self.break_off(&e);
        Err(e)
    }

    /// The LDAPResult of the response to request `id`, which must be a `[APPLICATION tag]`.
    fn result_of(&mut self, id: i32, tag: u64, deadline: Deadline) -> Result<LdapResult> {
        let msg = self.receive_for(id, deadline)?;
        if !is_op(&msg.op, tag) {
            return self.refuse("response (not the one the request asks for)");
        }
        let Some(mut result) = ldap_result(msg.op) else { return self.refuse("result") };
        result.ctrls = msg.controls;
        Ok(result)
    }

    /// The next message for request `id` (others, left over from an operation cut short, are
    /// skipped).
    fn receive_for(&mut self, id: i32, deadline: Deadline) -> Result<Message> {
        loop {
            let msg = self.receive(deadline).inspect_err(|e| self.break_off(e))?;
            if msg.id == 0 {
                // An unsolicited notification: the server is ending the connection.
                let e = notice(msg.op);
                self.break_off(&e);
                return Err(e);
            }
            if msg.id == id {
                return Ok(msg);
            }
        }
    }

    /// The next message from the server, by `deadline`.
    fn receive(&mut self, deadline: Deadline) -> Result<Message> {
        self.usable()?;
        self.stream.sock().deadline = deadline;
        let (head, len) = loop {
            match frame(&self.buf[self.start..self.end]).map_err(io::Error::other)? {
                Some(found) => break found,
                None => self.fill(6)?,
            }
        };
        let total = head + len;
        while self.end - self.start < total {
            self.fill(total)?;
        }
        let bytes = &self.buf[self.start..self.start + total];
        if !nesting_within(bytes, MAX_DEPTH) {
            return Err(malformed("message (nested too deep or with bad lengths)"));
        }
        let tag = match ldap3::asn1::parse_tag(bytes) {
            Ok(([], tag)) => tag,
            _ => return Err(malformed("message")),
        };
        self.start += total;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > KEEP_BUFFER {
                self.buf = Vec::new();
            }
        }
        message(tag).ok_or_else(|| malformed("message"))
    }

    /// Read once from the server into the buffer, which gets room for `need` bytes from `start`.
    fn fill(&mut self, need: usize) -> Result<()> {
        if self.start + need > self.buf.len() || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            let room = need.max(KEEP_BUFFER);
            if self.buf.len() < room {
                self.buf.resize(room, 0);
            }
        }
        let read = self.stream.read(&mut self.buf[self.end..])?;
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        self.end += read;
        Ok(())
    }
}

/// A search under way. Dropping it before the end leaves the operation running on the server:
/// close the connection then.
pub struct Search<'c> {
    conn: &'c mut Conn,
    id: i32,
    deadline: Deadline,
    /// The search's result, once its SearchResultDone came.
    result: Option<LdapResult>,
}

impl Search<'_> {
    /// The next entry or referral; `None` after the last, and on every call after that.
    pub fn next_entry(&mut self) -> Result<Option<ResultEntry>> {
        if self.result.is_some() {
            return Ok(None);
        }
        let msg = self.conn.receive_for(self.id, self.deadline)?;
        match op_tag(&msg.op) {
            Some(SEARCH_ENTRY) if valid_entry(&msg.op) => {}
            Some(SEARCH_ENTRY) => return self.conn.refuse("search entry"),
            Some(SEARCH_REFERENCE | INTERMEDIATE_RESPONSE) => {}
            Some(SEARCH_DONE) => {
                let Some(mut result) = ldap_result(msg.op) else { return self.conn.refuse("search result") };
                result.ctrls = msg.controls;
                self.result = Some(result);
                return Ok(None);
            }
            _ => return self.conn.refuse("response to a search"),
        }
        let mut entry = ResultEntry::new(msg.op);
        entry.1 = msg.controls;
        Ok(Some(entry))
    }

    /// The search's result, once [`Search::next_entry`] returned `None`.
    pub fn result(self) -> LdapResult {
        self.result.unwrap_or_else(|| LdapResult {
            rc: 88,
            matched: String::new(),
            text: "the search was not read to its end".into(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        })
    }
}

/// `[APPLICATION tag] SEQUENCE { inner }`.
fn tagged(tag: u64, inner: Vec<Tag>) -> Tag {
    Tag::Sequence(Sequence { id: tag, class: TagClass::Application, inner })
}

fn octets(bytes: &[u8]) -> Tag {
    Tag::OctetString(OctetString { inner: bytes.to_vec(), ..Default::default() })
}

/// The LDAPMessage `{ id, op, controls }` as BER (RFC 4511 4.1.1, controls 4.1.11).
fn encode(id: i32, op: Tag, controls: Option<Vec<RawControl>>) -> Result<Vec<u8>> {
    let mut parts = vec![Tag::Integer(Integer { inner: i64::from(id), ..Default::default() }), op];
    if let Some(controls) = controls {
        let controls = controls.into_iter().map(|c| {
            let mut parts = vec![octets(c.ctype.as_bytes())];
            if c.crit {
                parts.push(Tag::Boolean(Boolean { inner: true, ..Default::default() }));
            }
            parts.extend(c.val.map(|v| octets(&v)));
            Tag::Sequence(Sequence { inner: parts, ..Default::default() })
        });
        parts.push(Tag::Sequence(Sequence { id: 0, class: TagClass::Context, inner: controls.collect() }));
    }
    let tag = Tag::Sequence(Sequence { inner: parts, ..Default::default() }).into_structure();
    let mut out = Vec::new();
    write_ber(&mut out, &tag);
    Ok(out)
}

/// The identifier `ident`, then what `contents` writes, with its length (definite, shortest
/// form) put between them once known.
fn tlv(out: &mut Vec<u8>, ident: &[u8], contents: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(ident);
    let at = out.len();
    out.push(0);
    contents(out);
    let len = out.len() - at - 1;
    if len < 128 {
        out[at] = len as u8;
    } else {
        let n = (usize::BITS - len.leading_zeros()).div_ceil(8) as usize;
        out[at] = 0x80 | n as u8;
        out.splice(at + 1..at + 1, len.to_be_bytes()[size_of::<usize>() - n..].iter().copied());
    }
}

/// An INTEGER or ENUMERATED (identifier `ident`) with the contents lber gives it (its
/// `i_e_into_structure`: the shortest two's complement of a non-negative `n`).
fn ber_integer(out: &mut Vec<u8>, ident: u8, n: i64) {
    let mut count = 1;
    let mut rem = n.saturating_abs() >> 8;
    while rem > 0 {
        count += 1;
        rem >>= 8;
    }
    if n > 0 && n >> (8 * count - 1) == 1 {
        count += 1;
    }
    tlv(out, &[ident], |o| {
        if count > 8 {
            o.push(0);
            count = 8;
        }
        o.extend_from_slice(&n.to_be_bytes()[8 - count..]);
    });
}

/// `tag` as BER into `out` in one pass, byte for byte as `ldap3::asn1::write::encode_into` writes
/// it, without its buffer per constructed element.
fn write_ber(out: &mut Vec<u8>, tag: &StructureTag) {
    let constructed = matches!(tag.payload, PL::C(_));
    let first = (tag.class as u8) << 6 | u8::from(constructed) << 5;
    let mut ident = [0u8; 11];
    let len = if tag.id > 30 {
        ident[0] = first | 0x1f;
        let n = (64 - tag.id.leading_zeros() as usize).div_ceil(7);
        for i in 0..n {
            let byte = (tag.id >> (7 * (n - 1 - i))) as u8 & 0x7f;
            ident[1 + i] = if i + 1 < n { byte | 0x80 } else { byte };
        }
        1 + n
    } else {
        ident[0] = first | tag.id as u8;
        1
    };
    tlv(out, &ident[..len], |out| match &tag.payload {
        PL::P(v) => out.extend_from_slice(v),
        PL::C(parts) => parts.iter().for_each(|p| write_ber(out, p)),
    });
}

/// The header of the message at the start of `bytes`: (header length, body length), `None`
/// while incomplete; `Err` naming the problem when it announces more than [`MAX_MESSAGE`] bytes
/// or a length LDAP does not allow (indefinite).
fn frame(bytes: &[u8]) -> std::result::Result<Option<(usize, usize)>, String> {
    let Some(&first) = bytes.get(1) else { return Ok(None) };
    let (head, len) = match first {
        n if n & 0x80 == 0 => (2, usize::from(n)),
        0x80 => return Err("the server sent a message of indefinite length, which LDAP does not allow".into()),
        n => {
            let head = 2 + usize::from(n & 0x7f);
            let Some(digits) = bytes.get(2..head) else { return Ok(None) };
            (head, digits.iter().fold(0usize, |len, b| len.saturating_mul(256).saturating_add(usize::from(*b))))
        }
    };
    if len > MAX_MESSAGE {
        return Err(format!(
            "the server sent a message of {len} bytes, over ldapbind's limit of {MAX_MESSAGE} bytes \
             (a user entry takes a few KiB), so the connection was closed"
        ));
    }
    Ok(Some((head, len)))
}

/// (constructed, contents, rest) of the first BER element of `b`, read as ldap3's parser reads
/// it (one tag byte, a definite length of at most 4 bytes), so that what this accepts is nested
/// for the parser exactly as here; anything else is `None`.
fn element(b: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        (rest.get(..n)?.iter().fold(0usize, |len, b| len << 8 | usize::from(*b)), rest.get(n..)?)
    };
    Some((tag & 0x20 != 0, rest.get(..len)?, rest.get(len..)?))
}

/// Whether `bytes` are whole BER elements nested no deeper than `depth` constructed levels.
fn nesting_within(mut bytes: &[u8], depth: usize) -> bool {
    while !bytes.is_empty() {
        let Some((constructed, contents, rest)) = element(bytes) else { return false };
        if constructed && (depth == 0 || !nesting_within(contents, depth - 1)) {
            return false;
        }
        bytes = rest;
    }
    true
}

fn constructed(tag: StructureTag) -> Option<Vec<StructureTag>> {
    tag.expect_constructed()
}

/// A universal primitive of type `ty`: its contents.
fn universal(tag: StructureTag, ty: Types) -> Option<Vec<u8>> {
    tag.match_class(TagClass::Universal)?.match_id(ty as u64)?.expect_primitive()
}

/// A non-negative INTEGER or ENUMERATED of at most 32 bits.
fn small_uint(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [] => None,
        [0, rest @ ..] if rest.len() <= 4 => Some(rest.iter().fold(0, |n, b| n << 8 | u32::from(*b))),
        [first, ..] if first & 0x80 == 0 && bytes.len() <= 4 => {
            Some(bytes.iter().fold(0, |n, b| n << 8 | u32::from(*b)))
        }
        _ => None,
    }
}

/// An LDAPMessage from the server.
fn message(tag: StructureTag) -> Option<Message> {
    let mut parts = constructed(tag.match_class(TagClass::Universal)?.match_id(Types::Sequence as u64)?)?.into_iter();
    let id = small_uint(&universal(parts.next()?, Types::Integer)?)?;
    let op = parts.next()?;
    let mut controls = Vec::new();
    // Active Directory puts a Notice of Disconnection's responseName [10] here: skipped.
    for part in parts {
        if part.class == TagClass::Context && part.id == 0 {
            controls = parse_controls(part)?;
        }
    }
    Some(Message { id: i32::try_from(id).ok()?, op, controls })
}

/// `Controls ::= SEQUENCE OF Control { controlType, criticality DEFAULT FALSE, controlValue OPTIONAL }`.
fn parse_controls(tag: StructureTag) -> Option<Vec<Control>> {
    constructed(tag)?
        .into_iter()
        .map(|control| {
            let mut parts = constructed(control)?.into_iter().peekable();
            let ctype = String::from_utf8(universal(parts.next()?, Types::OctetString)?).ok()?;
            let crit = match parts.next_if(|p| p.class == TagClass::Universal && p.id == Types::Boolean as u64) {
                Some(b) => b.expect_primitive()?.first().is_some_and(|b| *b != 0),
                None => false,
            };
            let val = match parts.next() {
                Some(v) => Some(universal(v, Types::OctetString)?),
                None => None,
            };
            Some(Control(None, RawControl { ctype, crit, val }))
        })
        .collect()
}

fn op_tag(op: &StructureTag) -> Option<u64> {
    (op.class == TagClass::Application).then_some(op.id)
}

fn is_op(op: &StructureTag, tag: u64) -> bool {
    op_tag(op) == Some(tag)
}

/// `LDAPResult ::= { resultCode, matchedDN, diagnosticMessage, referral [3] OPTIONAL, ... }`
/// (the bind's and extended response's own fields after it are not needed).
fn ldap_result(op: StructureTag) -> Option<LdapResult> {
    let mut parts = constructed(op)?.into_iter();
    let rc = small_uint(&universal(parts.next()?, Types::Enumerated)?)?;
    let matched = String::from_utf8_lossy(&universal(parts.next()?, Types::OctetString)?).into_owned();
    let text = String::from_utf8_lossy(&universal(parts.next()?, Types::OctetString)?).into_owned();
    let mut refs = Vec::new();
    if let Some(referral) = parts.find(|p| p.class == TagClass::Context && p.id == 3) {
        for uri in constructed(referral)? {
            refs.push(String::from_utf8_lossy(&uri.expect_primitive()?).into_owned());
        }
    }
    Some(LdapResult { rc, matched, text, refs, ctrls: Vec::new() })
}

/// Whether a SearchResultEntry has the shape [`ldap3::SearchEntry::construct`] expects (which
/// panics on anything else): a UTF-8 DN, then attributes each with a UTF-8 name and a set of
/// primitive values.
fn valid_entry(op: &StructureTag) -> bool {
    let PL::C(parts) = &op.payload else { return false };
    let [dn, attrs, ..] = parts.as_slice() else { return false };
    let utf8 = |t: &StructureTag| matches!(&t.payload, PL::P(v) if std::str::from_utf8(v).is_ok());
    let PL::C(attrs) = &attrs.payload else { return false };
    utf8(dn)
        && attrs.iter().all(|attr| match &attr.payload {
            PL::C(parts) => match parts.as_slice() {
                [name, values, ..] => {
                    utf8(name)
                        && matches!(&values.payload, PL::C(vs) if vs.iter().all(|v| matches!(v.payload, PL::P(_))))
                }
                _ => false,
            },
            PL::P(_) => false,
        })
}

/// The error for an unsolicited notification (message id 0): RFC 4511 4.4.1's Notice of
/// Disconnection, the only one defined, ends the connection.
fn notice(op: StructureTag) -> io::Error {
    let why = match is_op(&op, EXTENDED_RESPONSE).then(|| ldap_result(op)).flatten() {
        Some(r) if r.text.is_empty() => format!(" (result {})", r.rc),
        Some(r) => format!(" (result {}: {})", r.rc, r.text),
        None => String::new(),
    };
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("the server ended the connection with a Notice of Disconnection{why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::{DerefAliases, SearchEntry};
    use std::thread::{self, JoinHandle};
    use std::time::Instant;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// A BER element with a definite length, written by hand (not by the codec under test).
    fn ber(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let body = parts.concat();
        let mut out = vec![tag];
        if body.len() < 128 {
            out.push(body.len() as u8);
        } else {
            let len = (body.len() as u32).to_be_bytes();
            let skip = len.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend(&len[skip..]);
        }
        out.extend(body);
        out
    }

    fn msg(id: u8, op: &[u8], controls: &[u8]) -> Vec<u8> {
        ber(0x30, &[&ber(0x02, &[&[id]]), op, controls])
    }

    /// An LDAPResult under `tag` with result code `rc` and diagnostic `text`, then `extra`.
    fn result(tag: u8, rc: u8, text: &str, extra: &[u8]) -> Vec<u8> {
        ber(tag, &[&ber(0x0a, &[&[rc]]), &ber(0x04, &[]), &ber(0x04, &[text.as_bytes()]), extra])
    }

    fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Vec<u8> {
        let attrs: Vec<Vec<u8>> = attrs
            .iter()
            .map(|(name, values)| {
                let values: Vec<Vec<u8>> = values.iter().map(|v| ber(0x04, &[v])).collect();
                let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                ber(0x30, &[&ber(0x04, &[name.as_bytes()]), &ber(0x31, &values)])
            })
            .collect();
        let attrs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        ber(0x64, &[&ber(0x04, &[dn.as_bytes()]), &ber(0x30, &attrs)])
    }

    /// One whole message from the client's side of the pair.
    fn read_request(s: &mut UnixStream) -> Vec<u8> {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        let mut out = head.to_vec();
        let len = if head[1] & 0x80 == 0 {
            usize::from(head[1])
        } else {
            let mut n = vec![0u8; usize::from(head[1] & 0x7f)];
            s.read_exact(&mut n).unwrap();
            out.extend(&n);
            n.iter().fold(0, |l, b| l << 8 | usize::from(*b))
        };
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        out.extend(body);
        out
    }

    /// A connection to a scripted peer: `serve` gets the other end and returns what it read.
    fn with_peer<T: Send + 'static>(serve: impl FnOnce(UnixStream) -> T + Send + 'static) -> (Conn, JoinHandle<T>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (Conn::unix(ours), thread::spawn(move || serve(theirs)))
    }

    fn secs(n: u64) -> Deadline {
        Deadline::after(Duration::from_secs(n))
    }

    fn search_all(conn: &mut Conn, deadline: Deadline) -> Result<(Vec<ResultEntry>, LdapResult)> {
        let mut search = conn.search("dc=x", Scope::Subtree, "(uid=a)", vec![], SearchOptions::new(), deadline)?;
        let mut entries = Vec::new();
        while let Some(e) = search.next_entry()? {
            entries.push(e);
        }
        Ok((entries, search.result()))
    }

    // Captured from ldap3 0.12.1's own client (LdapConn, the same calls, message ids 1 to 5)
    // against a listener that recorded what it received.
    const LDAP3_SIMPLE_BIND: &str = "305702010160330201030426636e3d63797275732c6f753d6d616368696e65732c64633d75736572732c64633d6c6f63616c8006736563726574a01d301b0419312e332e362e312e342e312e34322e322e32372e382e352e31";
    const LDAP3_EXTERNAL_BIND: &str = "301802010260130201030400a30c040845585445524e414c0400";
    const LDAP3_USER_SEARCH: &str = "305f020103635a041164633d75736572732c64633d6c6f63616c0a01020a0100020102020100010100a121a30e040375696404076a6f686e646f65a30f04046d61696c04076a6f686e646f653013040c7573657250617373776f72640403756964";
    const LDAP3_ROOT_DSE_SEARCH: &str =
        "302a020104632504000a01000a01030201000201070101ff870b6f626a656374436c61737330050403312e31";
    const LDAP3_UNBIND: &str = "30050201054200";

    #[test]
    fn requests_are_encoded_byte_for_byte_as_ldap3_does() {
        let (mut conn, peer) = with_peer(|mut s| {
            let mut seen = Vec::new();
            for (id, tag) in [(1, 0x61), (2, 0x61), (3, 0x65), (4, 0x65)] {
                seen.push(read_request(&mut s));
                s.write_all(&msg(id, &result(tag, 0, "", &[]), &[])).unwrap();
            }
            seen.push(read_request(&mut s));
            seen
        });
        let d = secs(5);
        assert_eq!(conn.simple_bind("cn=cyrus,ou=machines,dc=users,dc=local", "secret", d).unwrap().rc, 0);
        assert_eq!(conn.sasl_external_bind(d).unwrap().rc, 0);
        let opts = SearchOptions::new().deref(DerefAliases::Never).sizelimit(2);
        let attrs = vec!["userPassword".to_owned(), "uid".to_owned()];
        let mut s = conn.search("dc=users,dc=local", Scope::Subtree, "(|(uid=johndoe)(mail=johndoe))", attrs, opts, d);
        assert!(s.as_mut().unwrap().next_entry().unwrap().is_none());
        drop(s);
        let opts = SearchOptions::new().deref(DerefAliases::Always).timelimit(7).typesonly(true);
        let mut s = conn.search("", Scope::Base, "(objectClass=*)", vec!["1.1".to_owned()], opts, d).unwrap();
        assert!(s.next_entry().unwrap().is_none());
        assert_eq!(s.result().rc, 0);
        conn.unbind(Duration::from_secs(1));
        let seen = peer.join().unwrap();
        let want = [LDAP3_SIMPLE_BIND, LDAP3_EXTERNAL_BIND, LDAP3_USER_SEARCH, LDAP3_ROOT_DSE_SEARCH, LDAP3_UNBIND];
        for (seen, want) in seen.iter().zip(want) {
            assert_eq!(seen, &hex(want));
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn integers_are_encoded_as_ldap3_does() {
        for n in [0, 1, 127, 128, 255, 256, 32_767, 32_768, 65_535, i64::from(i32::MAX), i64::MAX] {
            let mut want = bytes::BytesMut::new();
            ldap3::asn1::write::encode_into(
                &mut want,
                Tag::Integer(Integer { inner: n, ..Default::default() }).into_structure(),
            )
            .unwrap();
            let mut seen = Vec::new();
            ber_integer(&mut seen, 0x02, n);
            assert!(seen == want[..], "{n}: {seen:02x?}");
        }
    }

    #[test]
    fn long_lengths_and_high_tag_numbers_are_encoded_as_ldap3_does() {
        for (id, size) in [(0, 0), (30, 127), (31, 128), (127, 255), (128, 256), (16_383, 65_536), (1 << 20, 70_000)] {
            let value = Tag::OctetString(OctetString { id, inner: vec![7; size], ..Default::default() });
            let tag = Tag::Sequence(Sequence { id, inner: vec![value], ..Default::default() }).into_structure();
            let mut want = bytes::BytesMut::new();
            ldap3::asn1::write::encode_into(&mut want, tag.clone()).unwrap();
            let mut seen = Vec::new();
            write_ber(&mut seen, &tag);
            assert!(seen == want[..], "id {id}, {size} bytes");
        }
    }

    /// An entry, a referral and the done message with a ppolicy response control, as one stream.
    fn search_answer(id: u8) -> Vec<u8> {
        let values: &[&[u8]] = &[b"secret", b"\xff\xfe"];
        let control =
            ber(0xa0, &[&ber(0x30, &[&ber(0x04, &[b"1.3.6.1.4.1.42.2.27.8.5.1"]), &ber(0x04, &[&[0x30, 0x00]])])]);
        let refs = ber(0xa3, &[&ber(0x04, &[b"ldap://other/dc=x"])]);
        [
            msg(id, &entry("uid=a,dc=x", &[("uid", &[b"a"]), ("userPassword", values)]), &[]),
            msg(id, &ber(0x73, &[&ber(0x04, &[b"ldap://elsewhere/dc=y"])]), &[]),
            msg(id, &result(0x65, 10, "see there", &refs), &control),
        ]
        .concat()
    }

    fn check_search_answer(entries: Vec<ResultEntry>, done: LdapResult) {
        assert_eq!(entries.len(), 2);
        assert!(entries[1].is_ref());
        let e = SearchEntry::construct(entries[0].clone());
        assert_eq!(e.dn, "uid=a,dc=x");
        assert_eq!(e.attrs["uid"], ["a"]);
        // ldap3 keeps an attribute with a value that is not UTF-8 as bytes, all its values.
        assert_eq!(e.bin_attrs["userPassword"], [b"\xff\xfe".to_vec(), b"secret".to_vec()]);
        assert_eq!(
            (done.rc, done.text.as_str(), done.refs.as_slice()),
            (10, "see there", ["ldap://other/dc=x".to_owned()].as_slice())
        );
        let [Control(_, raw)] = done.ctrls.as_slice() else { panic!("{:?}", done.ctrls) };
        assert_eq!(
            (raw.ctype.as_str(), raw.crit, raw.val.as_deref()),
            (crate::account::PPOLICY_OID, false, Some(&[0x30, 0][..]))
        );
    }

    #[test]
    fn entries_references_and_the_result_with_its_controls_are_decoded() {
        let (mut conn, peer) = with_peer(|mut s| {
            read_request(&mut s);
            s.write_all(&search_answer(1)).unwrap();
            s
        });
        let (entries, done) = search_all(&mut conn, secs(5)).unwrap();
        check_search_answer(entries, done);
        drop(peer.join().unwrap());
    }

    #[test]
    fn messages_split_at_every_byte_are_read_whole() {
        let answer = search_answer(1);
        for split in 1..answer.len() {
            let (first, second) = (answer[..split].to_vec(), answer[split..].to_vec());
            let (mut conn, peer) = with_peer(move |mut s| {
                read_request(&mut s);
                s.write_all(&first).unwrap();
                // Let the client read the first piece on its own.
                thread::sleep(Duration::from_millis(2));
                s.write_all(&second).unwrap();
                s
            });
            let (entries, done) = search_all(&mut conn, secs(5)).unwrap_or_else(|e| panic!("split at {split}: {e}"));
            check_search_answer(entries, done);
            drop(peer.join().unwrap());
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header_before_its_body() {
        let (fits, over) = ([0x30, 0x83, 0x10, 0x00, 0x00], [0x30, 0x84, 0x17, 0xd7, 0x84, 0x00]);
        assert_eq!(frame(&fits), Ok(Some((5, MAX_MESSAGE))));
        assert_eq!(frame(&over[..5]), Ok(None));
        for (header, says) in [
            (&over[..], "message of 400000000 bytes, over ldapbind's limit of 1048576 bytes"),
            (&[0x30, 0x80][..], "indefinite length"),
        ] {
            // Only the header is ever sent, and the peer keeps the connection open: the client
            // refuses at once, without waiting for (or making room for) a body.
            let header = header.to_vec();
            let (mut conn, peer) = with_peer(move |mut s| {
                read_request(&mut s);
                s.write_all(&header).unwrap();
                s
            });
            let started = Instant::now();
            let e = conn.simple_bind("cn=x", "pw", secs(5)).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(1), "{e}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(conn.buf.len() <= KEEP_BUFFER);
            // The connection is unusable from then on.
            assert_eq!(conn.sasl_external_bind(secs(5)).unwrap_err().to_string(), e.to_string());
            drop(peer.join().unwrap());
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_into_it() {
        // 200,000 nested SEQUENCEs (1 MB, under the size limit): ldap3's parser would recurse
        // once per level and overflow the stack.
        const LEVELS: u32 = 200_000;
        let nested: Vec<u8> = (1..=LEVELS)
            .flat_map(|level| {
                let len = (5 * (LEVELS - level)).to_be_bytes();
                [0x30, 0x83, len[1], len[2], len[3]]
            })
            .collect();
        let answer = msg(1, &ber(0x61, &[&nested]), &[]);
        let (mut conn, peer) = with_peer(move |mut s| {
            read_request(&mut s);
            s.write_all(&answer).unwrap();
            s
        });
        let e = conn.simple_bind("cn=x", "pw", secs(5)).unwrap_err();
        assert!(e.to_string().contains("malformed message (nested too deep"), "{e}");
        drop(peer.join().unwrap());
        assert!(nesting_within(&msg(1, &entry("cn=x", &[("a", &[b"b"])]), &[]), MAX_DEPTH));
        // Tag number 31 (0x3f, constructed): one byte to ldap3's parser, so one level here too.
        let deep31 = (0..=MAX_DEPTH as u8).rev().fold(Vec::new(), |inner, _| ber(0x3f, &[&inner]));
        assert!(!nesting_within(&deep31, MAX_DEPTH));
    }

    #[test]
    fn a_notice_of_disconnection_ends_the_connection_and_others_messages_are_skipped() {
        let (mut conn, peer) = with_peer(|mut s| {
            read_request(&mut s);
            // A late answer to an earlier request is skipped; the bind's own answer counts.
            s.write_all(&[msg(7, &result(0x65, 0, "", &[]), &[]), msg(1, &result(0x61, 49, "no", &[]), &[])].concat())
                .unwrap();
            read_request(&mut s);
            let notice = ber(0x78, &[&ber(0x0a, &[&[52]]), &ber(0x04, &[]), &ber(0x04, &[b"shutting down"])]);
            s.write_all(&msg(0, &notice, &[])).unwrap();
            s
        });
        let res = conn.simple_bind("cn=x", "wrong", secs(5)).unwrap();
        assert_eq!((res.rc, res.text.as_str()), (49, "no"));
        let e = conn.simple_bind("cn=x", "pw", secs(5)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(
            e.to_string(),
            "the server ended the connection with a Notice of Disconnection (result 52: shutting down)"
        );
        assert_eq!(conn.sasl_external_bind(secs(5)).unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        drop(peer.join().unwrap());
    }

    #[test]
    fn a_silent_or_dripping_peer_times_out_by_the_deadline() {
        let answer = msg(1, &result(0x61, 0, "", &[]), &[]);
        let (mut conn, peer) = with_peer(move |mut s| {
            read_request(&mut s);
            for b in answer {
                thread::sleep(Duration::from_millis(100));
                if s.write_all(&[b]).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let e = conn.simple_bind("cn=x", "pw", Deadline::after(Duration::from_millis(300))).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(450), "{took:?}");
        drop(conn);
        peer.join().unwrap();
    }

    /// The socket timeout one operation leaves behind neither outlives the next one's shorter
    /// deadline nor ends a longer one early.
    #[test]
    fn a_kept_socket_timeout_neither_outlives_nor_cuts_short_the_next_deadline() {
        let ok = |id| msg(id, &result(0x61, 0, "", &[]), &[]);
        let (mut conn, peer) = with_peer(move |mut s| {
            read_request(&mut s);
            s.write_all(&ok(1)).unwrap();
            read_request(&mut s); // never answered
            let _ = s.read(&mut [0; 1]); // until the client closes
        });
        assert_eq!(conn.simple_bind("cn=x", "pw", secs(5)).unwrap().rc, 0);
        let started = Instant::now();
        let e = conn.simple_bind("cn=x", "pw", Deadline::after(Duration::from_millis(300))).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took < Duration::from_millis(450), "{took:?}: the first bind's timeout was kept");
        drop(conn);
        peer.join().unwrap();
        let (mut conn, peer) = with_peer(move |mut s| {
            read_request(&mut s);
            s.write_all(&ok(1)).unwrap();
            read_request(&mut s);
            thread::sleep(Duration::from_millis(1000));
            s.write_all(&ok(2)).unwrap();
            s
        });
        // 1 s, then 1.04 s left: the timeout set for the first (50 ms under its time) is kept
        // for the second and ends its wait at about 0.95 s; the answer at 1 s must still count.
        assert_eq!(conn.simple_bind("cn=x", "pw", secs(1)).unwrap().rc, 0);
        let res = conn.simple_bind("cn=x", "pw", Deadline::after(Duration::from_millis(1040)));
        assert_eq!(res.map(|r| r.rc).map_err(|e| e.to_string()), Ok(0));
        drop(conn);
        drop(peer.join().unwrap());
    }

    #[test]
    fn an_ldapi_connect_to_a_full_backlog_times_out_by_the_deadline() {
        use socket2::{Domain, SockAddr, Socket, Type};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ldapi");
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        // Backlog 0: one connection waits to be accepted (never), the next one finds it full.
        listener.listen(0).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let _first = connect_unix(&path, secs(1)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let started = Instant::now();
            let result = connect_unix(&path, Deadline::after(Duration::from_millis(300)));
            let _ = tx.send((result.map(drop), started.elapsed()));
        });
        let (result, took) = rx.recv_timeout(Duration::from_secs(3)).expect("connect still waiting after 3 s");
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(600), "{took:?}");
    }

    #[test]
    fn dropping_a_connection_writes_nothing() {
        let (mut conn, peer) = with_peer(|mut s| {
            read_request(&mut s);
            s.write_all(&msg(1, &result(0x61, 0, "", &[]), &[])).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            rest
        });
        conn.simple_bind("cn=x", "pw", secs(5)).unwrap();
        drop(conn);
        assert!(peer.join().unwrap().is_empty(), "a dropped connection wrote to its peer");
    }

    #[test]
    fn malformed_entries_and_results_are_errors_not_panics() {
        let bad_entries = [
            ber(0x64, &[&ber(0x04, &[b"\xff"]), &ber(0x30, &[])]), // DN not UTF-8
            ber(0x64, &[&ber(0x04, &[b"cn=x"])]),                  // no attributes
            ber(0x64, &[&ber(0x04, &[b"cn=x"]), &ber(0x30, &[&ber(0x04, &[b"a"])])]), // attribute not a sequence
            result(0x65, 0, "", &[]).into_iter().take(3).collect(), // truncated
        ];
        for op in bad_entries {
            let answer = msg(1, &op, &[]);
            let (mut conn, peer) = with_peer(move |mut s| {
                read_request(&mut s);
                s.write_all(&answer).unwrap();
                s
            });
            let e = search_all(&mut conn, secs(5)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            drop(peer.join().unwrap());
        }
    }
}
