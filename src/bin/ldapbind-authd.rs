//! `ldapbind-authd`: answer libsasl2's saslauthd requests (`sasl_pwcheck_method: saslauthd`)
//! by binding to the directory as the user, with ldapbind's own options. This file parses the
//! command line; the daemon is [`ldapbind::authd`].
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
use std::path::PathBuf;
use std::process::ExitCode;

use ldapbind::authd;
use ldapbind::doctor::{self, ConfFile, Input};
use ldapbind::ffi::process::{Signals, detach, limit_malloc_arenas};

/// Where libsasl2 looks with `sasl_saslauthd_path: /run/ldapbind-authd/mux`.
const DEFAULT_SOCKET: &str = "/run/ldapbind-authd/mux";

/// Who the daemon runs as after taking its socket, and the group that may connect to it
/// (Debian's group for saslauthd's socket: cyrus and postfix join it).
const DEFAULT_USER: &str = "ldapbind";
const DEFAULT_GROUP: &str = "sasl";

const USAGE: &str = "\
Usage: ldapbind-authd [-C IMAPD.CONF [--service NAME] | --sasl-conf APP.CONF] [-o KEY=VALUE]...
                      [--socket PATH] [--user NAME] [--group NAME] [-d]
";

fn help() -> String {
    format!(
        "\
ldapbind-authd {version}: check passwords for libsasl2 by binding to the directory as the user.

{USAGE}
Speaks saslauthd's protocol on a unix socket, for directories that never hand out a password
(glauth, Active Directory, OpenLDAP's default ACL). Select it in imapd.conf with
  sasl_pwcheck_method: saslauthd        (or `auxprop saslauthd` to keep cleartext users'
                                         CRAM-MD5/SCRAM through ldapbind as auxprop)
  sasl_saslauthd_path: {socket}
The user is found exactly as the plugin finds it (sasl_ldapdb_filter, the same escaping; a name
libsasl2 split at `@` is put back together), then a simple bind as that DN checks the password.

Options (read as ldapbind-check reads them):
  -C FILE             a Cyrus imapd.conf; ldapbind's sasl_ldapdb_* lines
  --service NAME      imapd's service name for <service>_sasl_ options (default {service})
  --sasl-conf FILE    a libsasl2 application config instead (/etc/postfix/sasl/smtpd.conf)
  -o KEY=VALUE        set an option over the file (ldapdb_uri, ldapdb_timeout, ...)
  --socket PATH       where to listen (default {socket}); its directory is the daemon's
                      own: created if missing, refused if it holds other files, made
                      USER:GROUP mode 0750 and the socket 0660, so only GROUP may ask
  --user NAME         started as root, become NAME once the configuration is read and the
                      socket made (default {user}); SIGHUP reads the configuration as NAME
  --group NAME        the group whose members may connect (default {group}: add cyrus and
                      postfix to it)
  -d                  stay in the foreground and log to standard error, successful logins
                      included (default: go to the background, log to syslog, facility auth)
  -h, --help          print this help

Every request is answered within sasl_ldapdb_timeout plus {margin} ms; {workers} are checked at
once, {queue} more wait, further ones are answered NO at once. SIGHUP reads the configuration
again (a rejected one is logged and the old one kept); SIGTERM answers what is in flight,
removes the socket and exits 0.
",
        version = env!("CARGO_PKG_VERSION"),
        service = doctor::DEFAULT_SERVICE,
        socket = DEFAULT_SOCKET,
        user = DEFAULT_USER,
        group = DEFAULT_GROUP,
        margin = authd::server::MARGIN.as_millis(),
        workers = authd::server::WORKERS,
        queue = authd::server::QUEUE,
    )
}

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    conf: Option<ConfFile>,
    service: Option<String>,
    overrides: Vec<(String, String)>,
    socket: PathBuf,
    owner: authd::server::Owner,
    foreground: bool,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Args>, String> {
    let mut args = args.into_iter();
    let mut out = Args {
        conf: None,
        service: None,
        overrides: Vec::new(),
        socket: PathBuf::from(DEFAULT_SOCKET),
        owner: authd::server::Owner { user: DEFAULT_USER.to_owned(), group: DEFAULT_GROUP.to_owned(), explicit: false },
        foreground: false,
    };
    let text = |a: OsString| a.into_string().map_err(|a| format!("argument {a:?} is not UTF-8"));
    while let Some(arg) = args.next() {
        let arg = text(arg)?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if arg.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut take = |name: &str| match &inline {
            Some(v) => Ok(v.clone()),
            None => args.next().map(text).transpose()?.ok_or_else(|| format!("{name} needs a value")),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-C" | "--sasl-conf" => {
                let path = PathBuf::from(take(&flag)?);
                let new = if flag == "-C" { ConfFile::Imapd(path) } else { ConfFile::SaslApp(path) };
                if out.conf.replace(new).is_some() {
                    return Err("give one of -C and --sasl-conf, once".into());
                }
            }
            "--service" => out.service = Some(take("--service")?),
            "-o" | "--option" => {
                let kv = take("-o")?;
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("-o {kv}: write KEY=VALUE"))?;
                out.overrides.push((k.trim().to_owned(), v.to_owned()));
            }
            "--socket" => out.socket = PathBuf::from(take("--socket")?),
            "--user" => (out.owner.user, out.owner.explicit) = (take("--user")?, true),
            "--group" => (out.owner.group, out.owner.explicit) = (take("--group")?, true),
            "-d" => out.foreground = true,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if out.service.is_some() && !matches!(out.conf, Some(ConfFile::Imapd(_))) {
        return Err("--service applies to -C (imapd.conf) only".into());
    }
    Ok(Some(out))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprint!("ldapbind-authd: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Two malloc arenas, not one per worker: the resident memory stays flat (see the function).
    limit_malloc_arenas(2);
    // Before any thread starts, so that every thread inherits the blocked set.
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ldapbind-authd: cannot block signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The daemon works in `/`: paths are made absolute while the working directory is known.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let conf = args.conf.map(|c| match c {
        ConfFile::Imapd(p) => ConfFile::Imapd(absolute(p)),
        ConfFile::SaslApp(p) => ConfFile::SaslApp(absolute(p)),
    });
    let input = Input {
        conf,
        service: args.service.unwrap_or_else(|| doctor::DEFAULT_SERVICE.to_owned()),
        overrides: args.overrides,
        user: String::new(),
        password: None,
        daemon_user: None,
    };
    let load: authd::server::Loader = Box::new(move || {
        let loaded = doctor::read_config(&input).map_err(|e| e.to_string())?;
        Ok((loaded.config.map_err(|lines| lines.join(" / "))?, loaded.problems))
    });
    // What stops the start is said on standard error, before going to the background.
    let prepared = match authd::server::prepare(absolute(args.socket), &load, &args.owner) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ldapbind-authd: not started: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.foreground {
        if let Err(e) = authd::log::syslog_reachable() {
            eprintln!(
                "ldapbind-authd: cannot reach syslog ({e}): its lines will be lost in the background; \
                 start a syslog daemon, or run it in the foreground with -d"
            );
        }
        if let Err(e) = detach() {
            eprintln!("ldapbind-authd: cannot go to the background: {e}");
            return ExitCode::FAILURE;
        }
    }
    authd::log::install(args.foreground, args.foreground);
    match authd::server::serve(prepared, load, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(target: "ldapbind", "stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn command_line() {
        let a = p(&["-C", "/etc/imapd.conf", "--service", "pop3", "-o", "ldapdb_timeout=2", "--socket=/tmp/m", "-d"])
            .unwrap()
            .unwrap();
        assert_eq!(a.conf, Some(ConfFile::Imapd("/etc/imapd.conf".into())));
        assert_eq!(a.service.as_deref(), Some("pop3"));
        assert_eq!(a.overrides, [("ldapdb_timeout".to_owned(), "2".to_owned())]);
        assert_eq!((a.socket, a.foreground), (PathBuf::from("/tmp/m"), true));
        assert_eq!(p(&[]).unwrap().unwrap().socket, PathBuf::from(DEFAULT_SOCKET));
        let owner = p(&["--user", "mail", "--group=postfix"]).unwrap().unwrap().owner;
        assert_eq!((owner.user.as_str(), owner.group.as_str(), owner.explicit), ("mail", "postfix", true));
        assert!(!p(&[]).unwrap().unwrap().owner.explicit);
        assert!(p(&["--service", "imap"]).is_err());
        assert!(p(&["-C", "a", "--sasl-conf", "b"]).is_err());
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
