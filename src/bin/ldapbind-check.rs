//! `ldapbind-check`: explain in one step whether a user can log in through ldapbind, and why
//! not. This file only parses the command line and prints; the checking is
//! [`ldapbind::doctor`], which runs the plugin's own configuration, connection and lookup code.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable
    )
)]

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use ldapbind::config::{Secret, keys};
use ldapbind::doctor::{self, ConfFile, Input};

/// Exit status for a mistake in the command line.
const USAGE_ERROR: u8 = 2;
/// Longest password line read from standard input.
const MAX_PASSWORD: u64 = 4096;

const USAGE: &str = "\
Usage: ldapbind-check [-C IMAPD.CONF [--service NAME] | --sasl-conf APP.CONF] [-o KEY=VALUE]...
                      [--user NAME] [--password-stdin] [--json] USER
       ldapbind-check --authd SOCKET [--service NAME] --password-stdin USER
       ldapbind-check --help
Try 'ldapbind-check --help' for more information.
";

fn help() -> String {
    format!(
        "\
ldapbind-check {version}: will USER's login work through ldapbind, and if not, why?

Usage: ldapbind-check [-C IMAPD.CONF [--service NAME] | --sasl-conf APP.CONF] [-o KEY=VALUE]...
                      [--user NAME] [--password-stdin] [--json] USER

Reads ldapbind's options the way libsasl2 hands them to the plugin, then takes every step of a
login with the plugin's own code and says, for each, ok or problem, with the fix on the line
after a problem:
  options         the effective options (passwords masked) and where each came from
                  (FILE:LINE and the name it was found under, -o, or default)
  server URL      for each URL in ldapdb_uri: parse, resolve, connect, TLS, service bind
  user search     base, filter as sent, number of entries, the entry's DN
  canonical name  the ldapdb_canon_attr value (with canon_user_plugin: ldapbind)
  properties      userPassword, authPassword, cmusaslsecret*: formats only, never values
                  (cleartext, {{SSHA}}, authPassword SCRAM-SHA-256, ...)
  mechanisms      PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256: works or
                  not, and why (PLAIN/LOGIN need a cleartext userPassword with pwcheck_method
                  auxprop, or saslauthd; CRAM-MD5/DIGEST-MD5 a cleartext userPassword;
                  SCRAM a cleartext userPassword or an authPassword of that SCRAM variant)
  password        with --password-stdin: checked against the cleartext userPassword, or for
                  a hashed one by a simple bind as the user's DN

Options:
  -C FILE             a Cyrus imapd.conf (`key: value`, `#` comments, keys lower-cased,
                      @include followed). Option ldapdb_X is read from the first of
                      <service>_sasl_ldapbind_ldapdb_X, sasl_ldapbind_ldapdb_X,
                      <service>_sasl_ldapdb_X, sasl_ldapdb_X (imapd's order); libsasl2's own
                      options (pwcheck_method, auxprop_plugin, canon_user_plugin, mech_list)
                      from <service>_sasl_X, then sasl_X.
  --sasl-conf FILE    a libsasl2 application config instead (/etc/postfix/sasl/smtpd.conf,
                      /etc/sasl2/APP.conf): the same lines, option names without a prefix.
  --service NAME      imapd's service name, the cyrus.conf SERVICES entry (imap, imaps, pop3,
                      sieve, lmtp, ...); default {service}. Only with -C.
  -o KEY=VALUE        set an option, over the file; KEY as libsasl2 asks for it (ldapdb_uri,
                      pwcheck_method, ...; a leading sasl_ is accepted). Repeatable; the last
                      one wins. A password given here shows in `ps`: prefer the file.
  --user NAME         the user the mail daemon reads ldapbind's files as (ldapdb_pw_file,
                      ldapdb_rc, the TLS files); checked as that user when run as root.
                      Default: cyrus with -C (imapd), root for a --sasl-conf smtpd.conf
                      (Postfix's smtpd reads them before dropping privileges).
  --password-stdin    read USER's password from the first line of standard input and check it
                      (e.g. `read -rs PW; printf '%s\\n' \"$PW\" | ldapbind-check ... USER`).
  --json              print the same report as one JSON object.
  --authd SOCKET      instead, ask the ldapbind-authd listening on SOCKET (sasl_saslauthd_path)
                      whether USER's password (--password-stdin) is right, as libsasl2 would
                      with sasl_pwcheck_method: saslauthd, and explain the answer.
  -h, --help          print this help.

Options ldapbind reads: {options}.
libsasl2 options checked: {library}.

USER is the login name as typed (a uid or a mail address, as ldapdb_filter matches it).

Exit status:
  0  USER can log in with at least one of the mechanisms above (and, with --password-stdin,
     with that password); problems that do not stop that are still listed
  1  a problem stops every login (or the password is wrong, or cannot be checked by libsasl2)
  2  usage error: bad arguments, unreadable file, unknown -o option

No password is ever printed: ldapdb_pw is masked, password values are shown as their format.
The configuration is read as the user running ldapbind-check; the files it names are also
checked as the daemon's user (--user).

Examples:
  ldapbind-check -C /etc/cyrus/imapd.conf jdoe@example.com
  ldapbind-check -C /etc/imapd.conf --service pop3 -o ldapdb_timeout=2 jdoe
  ldapbind-check --sasl-conf /etc/postfix/sasl/smtpd.conf --json jdoe@example.com
",
        version = env!("CARGO_PKG_VERSION"),
        service = doctor::DEFAULT_SERVICE,
        options = keys::ALL.join(", "),
        library = doctor::LIBRARY_KEYS.join(", "),
    )
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Check {
        input: Args,
        password_stdin: bool,
        json: bool,
    },
    /// `--authd PATH`: ask a running ldapbind-authd instead.
    Authd {
        socket: PathBuf,
        user: String,
        service: String,
    },
}

/// The parsed arguments, before the password is read.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    conf: Option<ConfFile>,
    service: Option<String>,
    daemon_user: Option<String>,
    overrides: Vec<(String, String)>,
    user: String,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut conf = None;
    let mut service = None;
    let mut daemon_user = None;
    let mut overrides = Vec::new();
    let mut user: Option<String> = None;
    let mut password_stdin = false;
    let mut json = false;
    let mut authd = None;
    let mut only_operands = false;
    // No message quotes an argument that could hold a password (`-o ldapdb_pw:Secret`).
    let text = |a: OsString| a.into_string().map_err(|_| "an argument is not UTF-8 text".to_owned());
    while let Some(arg) = args.next() {
        let arg = text(arg)?;
        let mut value = |name: &str| -> Result<String, String> {
            args.next().map(text).transpose()?.ok_or_else(|| format!("{name} needs a value"))
        };
        // `--opt=value` as well as `--opt value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if arg.starts_with("--") && !only_operands => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut take = |name: &str| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(name),
        };
        match flag.as_str() {
            _ if only_operands || !arg.starts_with('-') || arg == "-" => {
                if user.replace(arg.clone()).is_some() {
                    return Err("only one USER, but there is a second operand (not shown: it may be a password); \
                                quote a value with spaces, and write `--` before a USER that starts with `-`"
                        .into());
                }
            }
            "--" => only_operands = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-C" | "--sasl-conf" => {
                let path = PathBuf::from(take(&flag)?);
                let new = if flag == "-C" { ConfFile::Imapd(path) } else { ConfFile::SaslApp(path) };
                if conf.replace(new).is_some() {
                    return Err("give one of -C and --sasl-conf, once".into());
                }
            }
            "--service" => {
                let s = take("--service")?;
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return Err(format!("--service {s:?}: a service name is letters, digits, `_` and `-` (e.g. imap)"));
                }
                service = Some(s);
            }
            "--user" => {
                let u = take("--user")?;
                if u.is_empty() || u.starts_with('-') || u.contains(char::is_whitespace) {
                    return Err(format!("--user {u:?}: give the user name the mail daemon runs as (e.g. cyrus)"));
                }
                daemon_user = Some(u);
            }
            "-o" | "--option" => {
                let kv = take("-o")?;
                let Some((k, v)) = kv.split_once('=') else {
                    let (shown, hidden) = doctor::shown_malformed(&kv);
                    return Err(format!(
                        "-o {shown}: write KEY=VALUE, e.g. -o ldapdb_uri=ldap://localhost:389/dc=example,dc=com{hidden}"
                    ));
                };
                if doctor::option_key(k).is_none() {
                    let (shown, hidden) = match k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                        true => (format!("{k}=..."), ""),
                        false => doctor::shown_malformed(&kv),
                    };
                    return Err(format!(
                        "-o {shown}: unknown option; use one of {}, {}{hidden}",
                        keys::ALL.join(", "),
                        doctor::LIBRARY_KEYS.join(", ")
                    ));
                }
                overrides.push((k.trim().to_owned(), v.to_owned()));
            }
            "--authd" => authd = Some(PathBuf::from(take("--authd")?)),
            "--password-stdin" if inline.is_none() => password_stdin = true,
            "--json" if inline.is_none() => json = true,
            "--password-stdin" | "--json" => return Err(format!("{flag} takes no value (write it without `=`)")),
            // Never the value: `--name=VALUE` is shown as `--name`, `-xVALUE` as `-x…`.
            _ if flag.starts_with("--") || flag.chars().count() <= 2 => return Err(format!("unknown option {flag}")),
            _ => {
                let short: String = flag.chars().take(2).collect();
                return Err(format!("unknown option {short}… (the rest is not shown: it may hold a password)"));
            }
        }
    }
    let Some(user) = user else {
        return Err("USER is missing".into());
    };
    if let Some(socket) = authd {
        if !password_stdin {
            return Err("--authd needs --password-stdin (the password to check)".into());
        }
        let service = service.unwrap_or_else(|| doctor::DEFAULT_SERVICE.to_owned());
        return Ok(Command::Authd { socket, user, service });
    }
    if service.is_some() && !matches!(conf, Some(ConfFile::Imapd(_))) {
        return Err("--service applies to -C (imapd.conf) only".into());
    }
    Ok(Command::Check { input: Args { conf, service, daemon_user, overrides, user }, password_stdin, json })
}

/// The first line of standard input, without its line end.
fn read_password() -> Result<Secret, String> {
    let mut buf = Vec::with_capacity(MAX_PASSWORD as usize + 1);
    // Up to the first newline only, so a typed password ends with Enter.
    std::io::stdin()
        .lock()
        .take(MAX_PASSWORD + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("--password-stdin: cannot read standard input: {e}"))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_PASSWORD as usize {
        buf.fill(0);
        return Err(format!("--password-stdin: the password is longer than {MAX_PASSWORD} bytes"));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map(Secret::new).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.fill(0);
        "--password-stdin: the password is not UTF-8 text".to_owned()
    })
}

fn usage_error(msg: &str) -> ExitCode {
    let _ = write!(std::io::stderr(), "ldapbind-check: {msg}\n{USAGE}");
    ExitCode::from(USAGE_ERROR)
}

fn main() -> ExitCode {
    let (args, password_stdin, json) = match parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            let _ = std::io::stdout().write_all(help().as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Check { input, password_stdin, json }) => (input, password_stdin, json),
        Ok(Command::Authd { socket, user, service }) => {
            let password = match read_password() {
                Ok(p) => p,
                Err(msg) => return usage_error(&msg),
            };
            let asked = ldapbind::authd::client::ask(&socket, &user, password.expose(), &service);
            let _ = writeln!(std::io::stdout(), "{}: {}", if asked.ok { "ok" } else { "problem" }, asked.text);
            return if asked.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        Err(msg) => return usage_error(&msg),
    };
    let password = match password_stdin.then(read_password).transpose() {
        Ok(p) => p,
        Err(msg) => return usage_error(&msg),
    };
    let input = Input {
        conf: args.conf,
        service: args.service.unwrap_or_else(|| doctor::DEFAULT_SERVICE.to_owned()),
        overrides: args.overrides,
        user: args.user,
        password,
        daemon_user: args.daemon_user,
    };
    let report = match doctor::run(&input) {
        Ok(r) => r,
        Err(e) => return usage_error(&e.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    let written = if json { report.write_json(&mut stdout) } else { stdout.write_all(report.to_text().as_bytes()) };
    if written.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    fn check(args: &[&str]) -> Args {
        match p(args) {
            Ok(Command::Check { input, .. }) => input,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn full_command_line() {
        let got = p(&[
            "-C",
            "/etc/imapd.conf",
            "--service=pop3",
            "--user",
            "cyrus",
            "-o",
            "ldapdb_timeout=2",
            "--json",
            "--password-stdin",
            "jdoe",
        ]);
        assert_eq!(
            got,
            Ok(Command::Check {
                input: Args {
                    conf: Some(ConfFile::Imapd("/etc/imapd.conf".into())),
                    service: Some("pop3".into()),
                    daemon_user: Some("cyrus".into()),
                    overrides: vec![("ldapdb_timeout".into(), "2".into())],
                    user: "jdoe".into(),
                },
                password_stdin: true,
                json: true,
            })
        );
        assert_eq!(check(&["--sasl-conf", "/x.conf", "u"]).conf, Some(ConfFile::SaslApp("/x.conf".into())));
        assert_eq!(check(&["--", "-odd-user"]).user, "-odd-user");
        assert_eq!(
            check(&["-o", "sasl_ldapdb_pw=a=b", "u"]).overrides,
            vec![("sasl_ldapdb_pw".to_owned(), "a=b".to_owned())]
        );
    }

    #[test]
    fn help_wins() {
        assert_eq!(p(&["-C", "x", "--help"]), Ok(Command::Help));
        assert_eq!(p(&["-h"]), Ok(Command::Help));
        let h = help();
        for word in [
            "-C FILE",
            "--sasl-conf",
            "--service",
            "--user NAME",
            "-o KEY=VALUE",
            "--password-stdin",
            "--json",
            "Exit status",
            "ldapdb_uri",
        ] {
            assert!(h.contains(word), "{word}");
        }
    }

    #[test]
    fn usage_errors() {
        for (args, msg) in [
            (&[][..], "USER is missing"),
            (&["a", "b"][..], "only one USER"),
            (&["-C"][..], "-C needs a value"),
            (&["-C", "a", "--sasl-conf", "b", "u"][..], "one of -C and --sasl-conf"),
            (&["-o", "ldapdb_uri", "u"][..], "write KEY=VALUE"),
            (&["-o", "ldap_uri=x", "u"][..], "unknown option; use one of"),
            (&["--frobnicate", "u"][..], "unknown option --frobnicate"),
            (&["--json=yes", "u"][..], "--json takes no value"),
            (&["--service", "imap", "u"][..], "--service applies to -C"),
            (&["-C", "f", "--service", "im ap", "u"][..], "a service name is"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(msg), "{args:?}: {e}");
        }
    }
}
