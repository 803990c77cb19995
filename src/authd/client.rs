//! Asking a running daemon as libsasl2 does (`ldapbind-check --authd PATH USER`), with the
//! answer explained.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{ReadError, encode_request, read_answer};

/// How long to wait for the answer (libsasl2 itself waits without a bound).
pub const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// What the daemon said, as one line each for the verdict and the advice.
#[derive(Debug, PartialEq, Eq)]
pub struct Asked {
    pub ok: bool,
    pub text: String,
}

/// Send `user` and `password` as libsasl2 2.1.28 does (the name split at its last `@` into
/// login and realm) and explain the answer.
pub fn ask(path: &Path, user: &str, password: &str, service: &str) -> Asked {
    let (login, realm) = user.rsplit_once('@').unwrap_or((user, ""));
    let shown = path.display();
    let no = |text: String| Asked { ok: false, text };
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return no(format!(
                "no socket at {shown}: start ldapbind-authd (with --socket {shown}), or fix sasl_saslauthd_path"
            ));
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            return no(format!(
                "{shown} is a socket nobody listens on (a daemon that stopped without cleaning up): start ldapbind-authd"
            ));
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return no(format!(
                "may not connect to {shown} ({e}): run this as the mail server's user (e.g. sudo -u cyrus), \
                 and let that user reach the socket's directory"
            ));
        }
        Err(e) => return no(format!("cannot connect to {shown}: {e}")),
    };
    let request = encode_request([login.as_bytes(), password.as_bytes(), service.as_bytes(), realm.as_bytes()]);
    if let Err(e) = stream.write_all(&request) {
        return no(format!("{shown} closed the connection before the request was sent ({e}): the daemon is busy"));
    }
    let sent = if realm.is_empty() {
        format!("login {login}, no realm, service {service}")
    } else {
        format!("login {login}, realm {realm}, service {service}")
    };
    match read_answer(&mut stream, ANSWER_WAIT) {
        Ok(a) if a.starts_with("OK") => Asked { ok: true, text: format!("{shown} accepts the password ({sent})") },
        Ok(a) => {
            let why = match a.as_str() {
                "NO authentication failed" => {
                    "a wrong password, an unknown or ambiguous user, or an account the directory refuses; \
                     the daemon's log line for this login says which"
                }
                "NO directory unavailable" => {
                    "the daemon could not ask the directory in time; its log line names the server and the fix"
                }
                "NO busy" => "every worker of the daemon was busy: the directory is slow or the load too high",
                "NO bad request" => {
                    "the name or password cannot be sent to LDAP (empty, NUL byte, not UTF-8, too long)"
                }
                _ => "an answer ldapbind-authd does not give: is another saslauthd listening there?",
            };
            no(format!("{shown} refuses the password ({sent}): \"{a}\": {why}"))
        }
        Err(ReadError::TimedOut) => no(format!(
            "{shown} did not answer within {}s; libsasl2 would wait for ever: check the daemon",
            ANSWER_WAIT.as_secs()
        )),
        Err(_) => no(format!("{shown} closed the connection without an answer: check the daemon's log")),
    }
}
