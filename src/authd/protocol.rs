//! saslauthd's socket protocol as libsasl2 2.1.28 speaks it (`lib/checkpw.c`,
//! `saslauthd_verify_password`): four counted strings (a 2-byte big-endian length, then the
//! bytes) for login, password, service and realm; the answer is one counted string beginning
//! `OK` or `NO`, after which the client closes. Later libsasl2 versions append a fifth string
//! (the client address); it is left unread, since the connection is closed after the answer.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::config::SecretBytes;

/// Longest field accepted, in bytes. libsasl2 never sends a request over 8 KiB in total;
/// saslauthd itself refuses fields over 256 bytes.
pub const MAX_FIELD: usize = 8192;

/// The four fields, in order.
pub const FIELDS: [&str; 4] = ["login", "password", "service", "realm"];

/// One request as it arrived; nothing checked beyond the lengths.
pub struct Request {
    pub login: Vec<u8>,
    pub password: SecretBytes,
    pub service: Vec<u8>,
    pub realm: Vec<u8>,
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed, or sent part of a request and closed.
    Closed,
    /// The request was not complete before the deadline.
    TimedOut,
    /// A field announced more than [`MAX_FIELD`] bytes; answered NO without reading it.
    Oversize {
        field: &'static str,
        len: usize,
    },
    Io(io::Error),
}

/// How long past its deadline a request that has arrived may still be read.
const GRACE: Duration = Duration::from_millis(20);

/// Read at least `want` more bytes into `buf` before `deadline`, as many as one read brings
/// (up to `chunk`).
fn read_more(
    stream: &UnixStream,
    buf: &mut Vec<u8>,
    want: usize,
    chunk: usize,
    deadline: Instant,
) -> Result<(), ReadError> {
    let target = buf.len() + want;
    while buf.len() < target {
        // What already arrived is read even at the deadline (a request that waited in the
        // queue), without waiting for more.
        let now = Instant::now();
        if now >= deadline + GRACE {
            return Err(ReadError::TimedOut);
        }
        let left = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        let old = buf.len();
        buf.resize(old + chunk.max(target - old), 0);
        let read = (&mut &*stream).read(&mut buf[old..]);
        buf.truncate(old + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(ReadError::TimedOut);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

/// What arrived from a client and is not parsed yet, zeroed when dropped (it holds the
/// password). libsasl2 writes a request in one go, so one read brings all four fields: one
/// read and one timeout setting per request (it was eight of each, a read per length and per
/// field).
struct Incoming<'s> {
    stream: &'s UnixStream,
    buf: Vec<u8>,
    at: usize,
}

impl Incoming<'_> {
    /// Room for a whole request of usual size (libsasl2 fields are short) in the first read.
    const CHUNK: usize = 2048;

    fn take(&mut self, n: usize, deadline: Instant) -> Result<&[u8], ReadError> {
        let have = self.buf.len() - self.at;
        if have < n {
            read_more(self.stream, &mut self.buf, n - have, Self::CHUNK, deadline)?;
        }
        self.at += n;
        Ok(&self.buf[self.at - n..self.at])
    }

    fn field(&mut self, field: &'static str, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let len = self.take(2, deadline)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > MAX_FIELD {
            return Err(ReadError::Oversize { field, len });
        }
        Ok(self.take(len, deadline)?.to_vec())
    }
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        crate::config::wipe(&mut self.buf);
    }
}

/// Read one request, waiting at most until `deadline` for all of it.
pub fn read_request(stream: &UnixStream, deadline: Instant) -> Result<Request, ReadError> {
    let mut incoming = Incoming { stream, buf: Vec::with_capacity(Incoming::CHUNK), at: 0 };
    let login = incoming.field(FIELDS[0], deadline)?;
    let password = SecretBytes::new(incoming.field(FIELDS[1], deadline)?);
    let service = incoming.field(FIELDS[2], deadline)?;
    let realm = incoming.field(FIELDS[3], deadline)?;
    Ok(Request { login, password, service, realm })
}

/// How long writing an answer may take; it is a few bytes into an empty socket buffer.
pub const WRITE_WAIT: Duration = Duration::from_secs(1);

/// One answer (`OK` or `NO ...`) as a counted string.
pub fn encode_answer(answer: &str) -> Vec<u8> {
    let bytes = answer.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
    out
}

/// A request as libsasl2 writes it (for tests and `ldapbind-check --authd`).
pub fn encode_request(fields: [&[u8]; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&f[..usize::from(len)]);
    }
    out
}

/// Read one counted answer, as libsasl2 does, waiting at most `wait`.
pub fn read_answer(stream: &mut UnixStream, wait: Duration) -> Result<String, ReadError> {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    read_more(stream, &mut buf, 2, 2, deadline)?;
    let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    read_more(stream, &mut buf, len, len, deadline)?;
    Ok(String::from_utf8_lossy(&buf[2..]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_millis(300)
    }

    #[test]
    fn reads_the_four_fields_libsasl2_writes() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&encode_request([b"jdoe", b"secret", b"imap", b"example.com"])).unwrap();
        let r = read_request(&b, deadline()).unwrap();
        assert_eq!((r.login.as_slice(), r.password.expose()), (&b"jdoe"[..], &b"secret"[..]));
        // A request that waited in the queue past its deadline is still read, at once.
        a.write_all(&encode_request([b"jdoe", b"secret", b"imap", b""])).unwrap();
        assert!(read_request(&b, Instant::now()).is_ok());
        assert_eq!((r.service.as_slice(), r.realm.as_slice()), (&b"imap"[..], &b"example.com"[..]));
    }

    #[test]
    fn a_request_that_arrived_whole_is_taken_in_one_read() {
        let (mut a, b) = UnixStream::pair().unwrap();
        // libsasl2 2.1.28 writes its four fields and, since 2.1.27's successors, a fifth (the
        // client address) in one write.
        let mut sent = encode_request([b"jdoe", b"secret", b"imap", b""]);
        sent.extend_from_slice(&[0, 9, b'1', b'2', b'7', b'.', b'0', b'.', b'0', b'.', b'1']);
        a.write_all(&sent).unwrap();
        let r = read_request(&b, deadline()).unwrap();
        assert_eq!((r.login.as_slice(), r.realm.as_slice()), (&b"jdoe"[..], &b""[..]));
        // Nothing is left in the socket: the whole write came in with the first read (it took
        // a read and a timeout setting per length and per field before).
        b.set_nonblocking(true).unwrap();
        let left = (&b).read(&mut [0u8; 64]);
        assert!(matches!(&left, Err(e) if e.kind() == io::ErrorKind::WouldBlock), "{left:?}");
    }

    #[test]
    fn half_a_request_times_out_and_a_closed_one_is_closed() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 4, b'j']).unwrap();
        let t = Instant::now();
        assert!(matches!(read_request(&b, deadline()), Err(ReadError::TimedOut)));
        assert!(t.elapsed() < Duration::from_millis(600));
        drop(a);
        assert!(matches!(read_request(&b, deadline()), Err(ReadError::Closed)));
    }

    #[test]
    fn oversize_fields_are_refused_before_their_data() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 4, b'j', b'd', b'o', b'e', 0xff, 0xff]).unwrap();
        assert!(matches!(read_request(&b, deadline()), Err(ReadError::Oversize { field: "password", len: 65535 })));
    }

    #[test]
    fn answers_are_counted_strings() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&encode_answer("NO wrong password")).unwrap();
        assert_eq!(read_answer(&mut b, Duration::from_secs(1)).unwrap(), "NO wrong password");
    }
}
