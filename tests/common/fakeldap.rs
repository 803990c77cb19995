//! A scripted, misbehaving LDAP server for the cases slapd cannot show: chosen result codes
//! (busy, unavailable, referral), answers dripped slowly, connections that go silent without a
//! reset, and messages far larger than any real entry.
//!
//! It speaks just enough BER: it reads each request's message id and operation, asks the
//! test's script what to do and writes the answer. Threads only, on loopback: nothing outlives
//! the test process; [`FakeLdap`]'s `Drop` stops the accept loop and every connection thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A simple bind (`dn`, password).
    Bind(String, String),
    Search,
    Unbind,
    /// Any other operation, by its BER tag.
    Other(u8),
}

/// One request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Which connection (0 = the first accepted).
    pub conn: usize,
    /// Which request on that connection (0 = the first).
    pub nth: usize,
    pub msgid: i64,
    pub op: Op,
}

/// What the server does with a request.
pub enum Reply {
    /// Write these messages at once.
    Send(Vec<Vec<u8>>),
    /// Write these messages with a pause before each.
    Drip(Vec<Vec<u8>>, Duration),
    /// Write a search entry for `dn` whose attribute `attr` has one value of `len` bytes,
    /// streamed in chunks (the server never holds it), then the search done.
    Huge { msgid: i64, dn: String, attr: String, len: usize },
    /// Never answer and stop reading, but keep the socket open: a peer that vanished behind a
    /// firewall or a NAT that forgot the connection (no FIN, no RST).
    Silent,
    /// Close the connection.
    Close,
    /// No answer (unbind, abandon).
    Nothing,
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct FakeLdap {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeLdap {
    pub fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeLdap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (stop2, accepted2, requests2) = (Arc::clone(&stop), Arc::clone(&accepted), Arc::clone(&requests));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let conn = accepted2.fetch_add(1, Ordering::SeqCst);
                let (script, stop, requests) = (Arc::clone(&script), Arc::clone(&stop2), Arc::clone(&requests2));
                thread::spawn(move || serve(stream, conn, &*script, &stop, &requests));
            }
        });
        FakeLdap { port, stop, accepted, requests }
    }

    /// A server that binds everyone and finds one entry, `dn` with `attrs`, for every search.
    pub fn directory(dn: &str, attrs: &[(&str, &str)]) -> FakeLdap {
        let (dn, attrs): (String, Vec<(String, String)>) =
            (dn.to_owned(), attrs.iter().map(|(a, v)| ((*a).to_owned(), (*v).to_owned())).collect());
        FakeLdap::start(move |r| answer(r, &dn, &attrs))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ldap://127.0.0.1:<port>/<base>`.
    pub fn url(&self, base: &str) -> String {
        format!("ldap://127.0.0.1:{}/{base}", self.port)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeLdap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The ordinary answer of a directory holding one entry: bind OK, the entry, search done.
pub fn answer(r: &Request, dn: &str, attrs: &[(String, String)]) -> Reply {
    match r.op {
        Op::Bind(..) => Reply::Send(vec![bind_response(r.msgid, 0, "")]),
        Op::Search => {
            let attrs: Vec<(&str, &str)> = attrs.iter().map(|(a, v)| (a.as_str(), v.as_str())).collect();
            Reply::Send(vec![search_entry(r.msgid, dn, &attrs), search_done(r.msgid, 0, "")])
        }
        _ => Reply::Nothing,
    }
}

fn serve(mut stream: TcpStream, conn: usize, script: &Script, stop: &AtomicBool, log: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = stream.set_nodelay(true);
    let mut nth = 0;
    while !stop.load(Ordering::SeqCst) {
        let msg = match read_message(&mut stream, stop) {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => return,
        };
        let Some(req) = parse_request(&msg, conn, nth) else { return };
        nth += 1;
        log.lock().unwrap().push(req.clone());
        let reply = script(&req);
        let sent = match reply {
            Reply::Send(msgs) => msgs.iter().try_for_each(|m| stream.write_all(m)),
            Reply::Drip(msgs, pause) => msgs.iter().try_for_each(|m| {
                thread::sleep(pause);
                stream.write_all(m)
            }),
            Reply::Huge { msgid, dn, attr, len } => write_huge(&mut stream, msgid, &dn, &attr, len),
            Reply::Silent => {
                // Hold the socket, read nothing, answer nothing, until the test ends.
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Reply::Close => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Reply::Nothing => Ok(()),
        };
        if sent.is_err() || req.op == Op::Unbind {
            return;
        }
    }
}

/// One whole BER element from the stream; `None` at end of stream or when stopped.
fn read_message(stream: &mut TcpStream, stop: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 2];
    if !read_exact_or_stop(stream, &mut head, stop)? {
        return Ok(None);
    }
    let mut msg = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let mut n = vec![0u8; usize::from(head[1] & 0x7f)];
        if !read_exact_or_stop(stream, &mut n, stop)? {
            return Ok(None);
        }
        msg.extend_from_slice(&n);
        n.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    if !read_exact_or_stop(stream, &mut body, stop)? {
        return Ok(None);
    }
    msg.extend_from_slice(&body);
    Ok(Some(msg))
}

fn read_exact_or_stop(stream: &mut TcpStream, mut buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    while !buf.is_empty() {
        match stream.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// (tag, contents, rest) of the first element of `b`.
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        let len = rest.get(..n)?.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    Some((tag, rest.get(..len)?, &rest[len..]))
}

fn parse_request(msg: &[u8], conn: usize, nth: usize) -> Option<Request> {
    let (_, body, _) = element(msg)?;
    let (_, id, rest) = element(body)?;
    let msgid = id.iter().fold(0i64, |acc, b| acc << 8 | i64::from(*b));
    let (tag, op_body, _) = element(rest)?;
    let op = match tag {
        0x60 => {
            let (_, _version, rest) = element(op_body)?;
            let (_, dn, rest) = element(rest)?;
            let (_, pw, _) = element(rest)?;
            Op::Bind(String::from_utf8_lossy(dn).into_owned(), String::from_utf8_lossy(pw).into_owned())
        }
        0x63 => Op::Search,
        0x42 => Op::Unbind,
        other => Op::Other(other),
    };
    Some(Request { conn, nth, msgid, op })
}

fn length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// One BER element.
pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(length(contents.len()));
    out.extend_from_slice(contents);
    out
}

fn message(msgid: i64, op: Vec<u8>) -> Vec<u8> {
    let id: Vec<u8> = msgid.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let id = if id.is_empty() || id[0] & 0x80 != 0 { [vec![0], id].concat() } else { id };
    tlv(0x30, &[tlv(0x02, &id), op].concat())
}

fn result(tag: u8, rc: u8, text: &str) -> Vec<u8> {
    tlv(tag, &[tlv(0x0a, &[rc]), tlv(0x04, b""), tlv(0x04, text.as_bytes())].concat())
}

pub fn bind_response(msgid: i64, rc: u8, text: &str) -> Vec<u8> {
    message(msgid, result(0x61, rc, text))
}

pub fn search_done(msgid: i64, rc: u8, text: &str) -> Vec<u8> {
    message(msgid, result(0x65, rc, text))
}

pub fn search_entry(msgid: i64, dn: &str, attrs: &[(&str, &str)]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs
        .iter()
        .flat_map(|(a, v)| tlv(0x30, &[tlv(0x04, a.as_bytes()), tlv(0x31, &tlv(0x04, v.as_bytes()))].concat()))
        .collect();
    message(msgid, tlv(0x64, &[tlv(0x04, dn.as_bytes()), tlv(0x30, &attrs)].concat()))
}

/// A search entry with one value of `len` bytes, written as it is made.
fn write_huge(stream: &mut TcpStream, msgid: i64, dn: &str, attr: &str, len: usize) -> io::Result<()> {
    // Every enclosing element's length is known up front, so only the value is streamed.
    let value_head = [vec![0x04], length(len)].concat();
    let set_len = value_head.len() + len;
    let set_head = [vec![0x31], length(set_len)].concat();
    let attr_elt = tlv(0x04, attr.as_bytes());
    let pair_len = attr_elt.len() + set_head.len() + set_len;
    let pair_head = [vec![0x30], length(pair_len)].concat();
    let list_len = pair_head.len() + pair_len;
    let list_head = [vec![0x30], length(list_len)].concat();
    let dn_elt = tlv(0x04, dn.as_bytes());
    let entry_len = dn_elt.len() + list_head.len() + list_len;
    let entry_head = [vec![0x64], length(entry_len)].concat();
    let id = tlv(0x02, &[msgid as u8]);
    let msg_len = id.len() + entry_head.len() + entry_len;
    let head =
        [vec![0x30], length(msg_len), id, entry_head, dn_elt, list_head, pair_head, attr_elt, set_head, value_head]
            .concat();
    stream.write_all(&head)?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n])?;
        left -= n;
    }
    stream.write_all(&search_done(msgid, 0, ""))
}
