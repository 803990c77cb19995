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

/// Read exactly `buf.len()` bytes before `deadline`.
fn read_full(stream: &mut UnixStream, buf: &mut [u8], deadline: Instant) -> Result<(), ReadError> {
    let mut got = 0;
    while got < buf.len() {
        // What already arrived is read even at the deadline (a request that waited in the
        // queue), without waiting for more.
        let now = Instant::now();
        if now >= deadline + GRACE {
            return Err(ReadError::TimedOut);
        }
        let left = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(ReadError::TimedOut);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

fn read_field(stream: &mut UnixStream, field: &'static str, deadline: Instant) -> Result<Vec<u8>, ReadError> {
    let mut len = [0u8; 2];
    read_full(stream, &mut len, deadline)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_FIELD {
        return Err(ReadError::Oversize { field, len });
    }
    let mut data = vec![0u8; len];
    read_full(stream, &mut data, deadline)?;
    Ok(data)
}

/// Read one request, waiting at most until `deadline` for all of it.
pub fn read_request(stream: &mut UnixStream, deadline: Instant) -> Result<Request, ReadError> {
    let login = read_field(stream, FIELDS[0], deadline)?;
    let password = SecretBytes::new(read_field(stream, FIELDS[1], deadline)?);
    let service = read_field(stream, FIELDS[2], deadline)?;
    let realm = read_field(stream, FIELDS[3], deadline)?;
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
    let mut len = [0u8; 2];
    read_full(stream, &mut len, deadline)?;
    let mut data = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_full(stream, &mut data, deadline)?;
    Ok(String::from_utf8_lossy(&data).into_owned())
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
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&encode_request([b"jdoe", b"secret", b"imap", b"example.com"])).unwrap();
        let r = read_request(&mut b, deadline()).unwrap();
        assert_eq!((r.login.as_slice(), r.password.expose()), (&b"jdoe"[..], &b"secret"[..]));
        // A request that waited in the queue past its deadline is still read, at once.
        a.write_all(&encode_request([b"jdoe", b"secret", b"imap", b""])).unwrap();
        assert!(read_request(&mut b, Instant::now()).is_ok());
        assert_eq!((r.service.as_slice(), r.realm.as_slice()), (&b"imap"[..], &b"example.com"[..]));
    }

    #[test]
    fn half_a_request_times_out_and_a_closed_one_is_closed() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 4, b'j']).unwrap();
        let t = Instant::now();
        assert!(matches!(read_request(&mut b, deadline()), Err(ReadError::TimedOut)));
        assert!(t.elapsed() < Duration::from_millis(600));
        drop(a);
        assert!(matches!(read_request(&mut b, deadline()), Err(ReadError::Closed)));
    }

    #[test]
    fn oversize_fields_are_refused_before_their_data() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 4, b'j', b'd', b'o', b'e', 0xff, 0xff]).unwrap();
        assert!(matches!(read_request(&mut b, deadline()), Err(ReadError::Oversize { field: "password", len: 65535 })));
    }

    #[test]
    fn answers_are_counted_strings() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&encode_answer("NO wrong password")).unwrap();
        assert_eq!(read_answer(&mut b, Duration::from_secs(1)).unwrap(), "NO wrong password");
    }
}
