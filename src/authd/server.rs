//! The daemon: one listening socket, a fixed pool of workers behind a bounded queue, and a
//! watchdog that answers `NO` for any request the directory has not decided in time.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ffi::process::{Account, Signal, Signals, drop_to, effective_uid, group_by_name, user_by_name};
use crate::ldap::client::LdapDirectory;

use super::protocol::{self, MAX_FIELD, ReadError};
use super::verify::{Refusal, Verifier, shown_login};

/// Requests checked at the same time.
pub const WORKERS: usize = 16;
/// Connections accepted while every worker is busy; more are answered `NO` at once.
pub const QUEUE: usize = 64;
/// How long a client may take to send its request (libsasl2 sends it in one write).
pub const REQUEST_WAIT: Duration = Duration::from_secs(2);
/// Added to `sasl_ldapdb_timeout` for the latest answer to an accepted connection.
pub const MARGIN: Duration = Duration::from_millis(300);
/// How often the watchdog looks at the clock.
const TICK: Duration = Duration::from_millis(20);

/// Builds the configuration, at start and on SIGHUP: the configuration and the warnings reading
/// it found.
pub type Loader = Box<dyn Fn() -> Result<(Config, Vec<String>), String> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A verifier for what `load` reads, with the TLS setup the plugin would build, and the
/// warnings to log.
pub fn build(load: &Loader) -> Result<(Verifier<LdapDirectory>, Vec<String>), String> {
    let (config, mut warnings) = load()?;
    let tls = crate::tls::client_config(&config)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / "))?;
    let tls = tls.map(|setup| {
        warnings.extend(setup.warnings.iter().map(ToString::to_string));
        setup.config
    });
    warnings.extend(config.warnings.iter().map(ToString::to_string));
    let config = Arc::new(config);
    Ok((Verifier::new(Arc::clone(&config), LdapDirectory::new(config, tls)), warnings))
}

/// One accepted connection, shared by its worker and the watchdog: whoever answers first wins.
struct Conn {
    id: u64,
    stream: UnixStream,
    deadline: Instant,
    answered: AtomicBool,
    /// A worker took it.
    picked: AtomicBool,
    /// "login NAME (service S)" once the request was read.
    who: Mutex<Option<String>>,
}

impl Conn {
    fn new(id: u64, stream: UnixStream, deadline: Instant) -> Conn {
        Conn {
            id,
            stream,
            deadline,
            answered: AtomicBool::new(false),
            picked: AtomicBool::new(false),
            who: Mutex::new(None),
        }
    }

    /// Send `answer` unless someone already did.
    fn answer(&self, answer: &str) -> bool {
        if self.answered.swap(true, Ordering::AcqRel) {
            return false;
        }
        let mut s = &self.stream;
        let _ = s.set_write_timeout(Some(protocol::WRITE_WAIT));
        let _ = std::io::Write::write_all(&mut s, &protocol::encode_answer(answer));
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        true
    }
}

struct Shared {
    current: RwLock<Arc<Verifier<LdapDirectory>>>,
    in_flight: AtomicUsize,
    watched: Mutex<Vec<Arc<Conn>>>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Connections refused because every worker and queue slot was taken, since the last line.
    busy_refused: AtomicU64,
    busy_logged: Mutex<Option<Instant>>,
}

impl Shared {
    fn verifier(&self) -> Arc<Verifier<LdapDirectory>> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn timeout(&self) -> Duration {
        self.verifier().config().timeout
    }
}

fn handle(shared: &Shared, conn: &Conn) {
    conn.picked.store(true, Ordering::Release);
    let read_until = conn.deadline.min(Instant::now() + REQUEST_WAIT);
    let req = match protocol::read_request(&conn.stream, read_until) {
        Ok(req) => req,
        Err(ReadError::Oversize { field, len }) => {
            conn.answer("NO bad request");
            log::warn!(
                target: "ldapbind",
                "refused a request whose {field} has {len} bytes (at most {MAX_FIELD}); no LDAP operation made"
            );
            return;
        }
        Err(ReadError::TimedOut) if !conn.answered.load(Ordering::Acquire) => {
            log::warn!(
                target: "ldapbind",
                "a client sent no complete request within {:.1}s; dropped it without an answer",
                REQUEST_WAIT.min(shared.timeout() + MARGIN).as_secs_f64()
            );
            return;
        }
        Err(ReadError::Closed | ReadError::TimedOut) => return,
        Err(ReadError::Io(e)) => {
            log::debug!(target: "ldapbind", "reading a request: {e}");
            return;
        }
    };
    // Shown as sent, but never a line break or other control character in the log.
    let service: String = String::from_utf8_lossy(&req.service[..req.service.len().min(64)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let who = format!("login {} (service {service})", shown_login(&req));
    *lock(&conn.who) = Some(who.clone());
    if conn.answered.load(Ordering::Acquire) {
        return;
    }
    match shared.verifier().verify(&req) {
        Ok(dn) => {
            if conn.answer("OK") {
                log::debug!(target: "ldapbind", "{who} verified as {dn}");
            }
        }
        Err(refusal) => {
            if conn.answer(refusal.answer()) {
                let level =
                    if matches!(refusal, Refusal::Unavailable(_)) { log::Level::Error } else { log::Level::Warn };
                log::log!(target: "ldapbind", level, "{who} refused: {}", refusal.reason());
            } else {
                log::debug!(target: "ldapbind", "{who}: late result after the deadline: {}", refusal.reason());
            }
        }
    }
}

fn worker(shared: Arc<Shared>, jobs: Arc<Mutex<Receiver<Arc<Conn>>>>) {
    loop {
        let next = lock(&jobs).recv();
        let Ok(conn) = next else { return };
        // A panic (in ldap3, say) costs this request, not the worker or its slot.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&shared, &conn))).is_err()
            && conn.answer("NO internal error")
        {
            log::error!(target: "ldapbind", "internal error (please report) while checking a request; answered NO");
        }
        lock(&shared.watched).retain(|c| c.id != conn.id);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn watchdog(shared: Arc<Shared>) {
    loop {
        thread::sleep(TICK);
        let now = Instant::now();
        let expired: Vec<Arc<Conn>> = {
            let mut w = lock(&shared.watched);
            let (late, keep): (Vec<_>, Vec<_>) = w.drain(..).partition(|c| c.deadline <= now);
            *w = keep;
            late
        };
        for conn in expired {
            expire(&shared, &conn);
        }
        if shared.stopping.load(Ordering::Acquire) && shared.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
    }
}

/// The deadline of `conn` passed: answer `NO` unless its worker did or its client never asked.
fn expire(shared: &Shared, conn: &Conn) {
    let who = lock(&conn.who).clone();
    let Some(who) = who else {
        // Still waiting for a worker: the directory is too slow for the load. (A picked
        // connection whose client has not sent its request yet is dropped by its reader.)
        if !conn.picked.load(Ordering::Acquire) && conn.answer("NO busy") {
            note_busy(shared);
        }
        return;
    };
    if conn.answer("NO directory unavailable") {
        log::error!(
            target: "ldapbind",
            "{who} refused: the directory did not decide within sasl_ldapdb_timeout ({:.1}s); \
             check that the servers in sasl_ldapdb_uri are up and answering",
            shared.timeout().as_secs_f64()
        );
    }
}

/// Refuse a connection at once for lack of workers.
fn refuse_busy(shared: &Shared, stream: UnixStream) {
    Conn::new(0, stream, Instant::now()).answer("NO busy");
    note_busy(shared);
}

/// Say that connections were refused for lack of workers, at most once a second.
fn note_busy(shared: &Shared) {
    let n = shared.busy_refused.fetch_add(1, Ordering::AcqRel) + 1;
    let mut last = lock(&shared.busy_logged);
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        shared.busy_refused.store(0, Ordering::Release);
        log::error!(
            target: "ldapbind",
            "refused {n} connection(s): all {WORKERS} workers busy and {QUEUE} waiting (or none free in time); \
             the directory is slow or the load is higher than it can answer"
        );
    }
}

/// Who the daemon becomes once its socket exists (`--user`), and the group whose members may
/// connect (`--group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `--user`.
    pub user: String,
    /// `--group`.
    pub group: String,
    /// Given on the command line (an error without root) rather than the defaults (skipped
    /// without root).
    pub explicit: bool,
}

/// What [`Owner`] names, looked up; `None` when the daemon was not started as root.
struct Ids {
    account: Account,
    group_gid: u32,
}

fn resolve(owner: &Owner) -> Result<Option<Ids>, String> {
    if effective_uid() != 0 {
        if owner.explicit {
            return Err("--user and --group need the daemon to be started as root; start it as root, \
                        or leave them out to run as the user who starts it"
                .into());
        }
        return Ok(None);
    }
    let Owner { user, group, .. } = owner;
    let account = user_by_name(user).map_err(|e| format!("cannot look up the user {user}: {e}"))?.ok_or_else(|| {
        format!(
            "there is no user {user} to run as; create it (adduser --system --group --no-create-home \
                 --home /nonexistent {user}; the Debian package does) or name another with --user"
        )
    })?;
    if account.uid == 0 {
        return Err(format!("--user {user} is root; name an unprivileged user (the package creates ldapbind)"));
    }
    let group_gid =
        group_by_name(group).map_err(|e| format!("cannot look up the group {group}: {e}"))?.ok_or_else(|| {
            format!(
                "there is no group {group} for the socket; create it (addgroup --system {group}) and add the \
                 servers' users to it (adduser cyrus {group}; adduser postfix {group}), or name another with --group"
            )
        })?;
    Ok(Some(Ids { account, group_gid }))
}

/// Make the socket's directory: created if missing, holding nothing else, `USER:GROUP` mode
/// 0750 (as root), so that only the group's members and the daemon reach the socket.
fn socket_dir(path: &Path, ids: Option<&Ids>) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        // Missing parents as mkdir -p makes them (others may need to pass through, e.g. smtpd
        // into var/run in its chroot); the directory itself closed from the start.
        if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(up).map_err(|e| format!("cannot create {}: {e}", up.display()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o750)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let others: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| Some(n.as_os_str()) != path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "the socket's directory {} holds other files ({}); give --socket a directory of its own \
             (the daemon creates it and lets only --group in), e.g. {DEFAULT_SOCKET_HINT}",
            dir.display(),
            others.join(", ")
        ));
    }
    if let Some(ids) = ids {
        std::os::unix::fs::chown(dir, Some(ids.account.uid), Some(ids.group_gid))
            .map_err(|e| format!("cannot give {} to the daemon's user and group: {e}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .map_err(|e| format!("cannot set the permissions of {}: {e}", dir.display()))
}

/// Where the socket goes by default, named in messages.
const DEFAULT_SOCKET_HINT: &str = "/run/ldapbind-authd/mux";

/// Take the socket path: refuse a live daemon's, replace a stale socket file (said in the
/// second value). The socket is mode 0660, owned by the daemon's user and group when root.
fn bind_socket(path: &Path, ids: Option<&Ids>) -> Result<(UnixListener, Option<String>), String> {
    let mut replaced = None;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(format!("{} exists and is not a socket; remove it or choose another --socket", path.display()));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "another daemon answers on {}; stop it first or choose another --socket",
                    path.display()
                ));
            }
            Err(_) => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
                replaced = Some(format!("replaced the stale socket {}", path.display()));
            }
        },
        Err(_) => {}
    }
    socket_dir(path, ids)?;
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    if let Some(ids) = ids {
        std::os::unix::fs::chown(path, Some(ids.account.uid), Some(ids.group_gid))
            .map_err(|e| format!("cannot give {} to the daemon's user and group: {e}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the permissions of {}: {e}", path.display()))?;
    Ok((listener, replaced))
}

/// Everything that can fail at start, done before any thread or logger exists (so that a
/// daemon going to the background has said what stops it).
pub struct Prepared {
    socket: PathBuf,
    listener: UnixListener,
    verifier: Verifier<LdapDirectory>,
    /// Lines to log once the logger is there.
    warnings: Vec<String>,
    notes: Vec<String>,
}

/// Read the configuration and its secrets, take the socket, then become `owner`'s user (when
/// started as root). Call it before starting any thread.
pub fn prepare(socket: PathBuf, load: &Loader, owner: &Owner) -> Result<Prepared, String> {
    let ids = resolve(owner)?;
    let (verifier, mut warnings) = build(load)?;
    let (listener, replaced) = bind_socket(&socket, ids.as_ref())?;
    let mut notes: Vec<String> = replaced.into_iter().collect();
    if let Some(ids) = &ids {
        drop_to(ids.account).map_err(|e| format!("cannot become the user {}: {e}", owner.user))?;
        notes.push(format!(
            "running as user {} (uid {}, gid {}); the socket is for group {} only",
            owner.user, ids.account.uid, ids.account.gid, owner.group
        ));
        // SIGHUP reads the configuration as this user: say now if it cannot.
        if let Err(e) = build(load) {
            warnings.push(format!(
                "as user {} the configuration cannot be read again ({e}); SIGHUP will keep the current one \
                 until it can: make the files readable by group {} (chgrp {} FILE; chmod 0640 FILE)",
                owner.user, owner.user, owner.user
            ));
        }
    }
    Ok(Prepared { socket, listener, verifier, warnings, notes })
}

/// Serve until SIGTERM. `load` is called again on SIGHUP; a broken new configuration keeps
/// the old one.
pub fn serve(prepared: Prepared, load: Loader, signals: Signals) -> Result<(), String> {
    let Prepared { socket, listener, verifier, warnings, notes } = prepared;
    for w in &warnings {
        log::warn!(target: "ldapbind", "{w}");
    }
    for n in &notes {
        log::info!(target: "ldapbind", "{n}");
    }
    let timeout = verifier.config().timeout;
    log::info!(
        target: "ldapbind",
        "{} listening on {}: {}; {WORKERS} workers, {QUEUE} waiting at most, every answer within {:.1}s",
        env!("LDAPBIND_VERSION"),
        socket.display(),
        verifier.config().summary(),
        (timeout + MARGIN).as_secs_f64()
    );
    let shared = Arc::new(Shared {
        current: RwLock::new(Arc::new(verifier)),
        in_flight: AtomicUsize::new(0),
        watched: Mutex::new(Vec::new()),
        stopping: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        busy_refused: AtomicU64::new(0),
        busy_logged: Mutex::new(None),
    });
    let (tx, rx): (SyncSender<Arc<Conn>>, _) = sync_channel(WORKERS + QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..WORKERS {
        let (shared, rx) = (Arc::clone(&shared), Arc::clone(&rx));
        spawn(&format!("authd-worker-{n}"), move || worker(shared, rx))?;
    }
    let watch = Arc::clone(&shared);
    spawn("authd-watchdog", move || watchdog(watch))?;
    let accepting = Arc::clone(&shared);
    let shown = socket.display().to_string();
    spawn("authd-accept", move || accept_loop(&accepting, &listener, &tx, &shown))?;
    signal_loop(&shared, &signals, &load);

    // SIGTERM: no new connections; what was accepted is answered (the watchdog bounds it).
    shared.stopping.store(true, Ordering::Release);
    let _ = std::fs::remove_file(&socket);
    let until = Instant::now() + shared.timeout() + MARGIN + Duration::from_secs(1);
    while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < until {
        thread::sleep(TICK);
    }
    let left = shared.in_flight.load(Ordering::Acquire);
    log::info!(target: "ldapbind", "stopped on SIGTERM ({left} request(s) unfinished); removed {}", socket.display());
    Ok(())
}

/// Hand each connection to the workers, or answer `NO` at once when all are taken.
fn accept_loop(shared: &Shared, listener: &UnixListener, tx: &SyncSender<Arc<Conn>>, shown: &str) {
    for incoming in listener.incoming() {
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                log::error!(target: "ldapbind", "accept on {shown}: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Stopping: the socket is gone; a client that connected just before is not served.
        if shared.stopping.load(Ordering::Acquire) {
            continue;
        }
        if shared.in_flight.fetch_add(1, Ordering::AcqRel) >= WORKERS + QUEUE {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            refuse_busy(shared, stream);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, stream, Instant::now() + shared.timeout() + MARGIN));
        lock(&shared.watched).push(Arc::clone(&conn));
        if tx.send(conn).is_err() {
            return;
        }
    }
}

/// Start a thread that runs for the life of the process.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new().name(name.into()).spawn(f).map(drop).map_err(|e| format!("cannot start a thread: {e}"))
}

/// Act on SIGHUP until SIGTERM.
fn signal_loop(shared: &Shared, signals: &Signals, load: &Loader) {
    loop {
        match signals.wait() {
            Signal::Hup => match build(load) {
                Ok((verifier, warnings)) => {
                    for w in &warnings {
                        log::warn!(target: "ldapbind", "{w}");
                    }
                    log::info!(target: "ldapbind", "SIGHUP: configuration read again: {}", verifier.config().summary());
                    *shared.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(verifier);
                }
                Err(e) => log::error!(
                    target: "ldapbind",
                    "SIGHUP: the new configuration is rejected, the old one stays in use: {e}"
                ),
            },
            Signal::Term => return,
        }
    }
}
