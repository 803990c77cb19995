//! Process control for ldapbind-authd (never used by the plugin): SIGTERM, SIGINT and SIGHUP
//! are blocked in every thread and taken one at a time with `sigwait` by the thread that asks;
//! [`detach`] puts the daemon in the background.

use std::io;

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: finish and exit.
    Term,
    /// SIGHUP: read the configuration again.
    Hup,
}

/// The blocked set; [`Signals::wait`] takes the next one.
pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Block the signals in the calling thread and in every thread it starts afterwards. Call
    /// it before starting any thread.
    pub fn block() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, initialised sigset_t owned by this frame.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (NULL).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Signals { set })
    }

    /// Wait for the next blocked signal.
    pub fn wait(&self) -> Signal {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `self.set` is initialised; `sig` is a valid out pointer.
            if unsafe { libc::sigwait(&self.set, &mut sig) } == 0 {
                return if sig == libc::SIGHUP { Signal::Hup } else { Signal::Term };
            }
        }
    }
}

/// Go to the background as daemons do (`daemon(3)`: fork, the parent exits 0, a new session,
/// working directory `/`, standard streams on `/dev/null`). Call it before starting any thread.
pub fn detach() -> io::Result<()> {
    // SAFETY: no thread has been started yet, so the child is a full copy of this process.
    if unsafe { libc::daemon(0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A user from the password database: its uid and primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Look `name` up in the password database (`getpwnam_r`); `None` when there is no such user.
pub fn user_by_name(name: &str) -> io::Result<Option<Account>> {
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data, filled in by getpwnam_r before it is read.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it and its length is passed.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some(Account { uid: pw.pw_uid, gid: pw.pw_gid }))
}

/// Look `name` up in the group database (`getgrnam_r`); `None` when there is no such group.
pub fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Large groups list many members.
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: group is plain data, filled in by getgrnam_r before it is read.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it and its length is passed.
    let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some(gr.gr_gid))
}

/// Become `account` for good: no supplementary groups, its primary group, its user id, real,
/// effective and saved alike. Checked afterwards: getting root back must fail. Call it before
/// starting any thread.
pub fn drop_to(account: Account) -> io::Result<()> {
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
    // SAFETY: an empty list (length 0, NULL) is valid for setgroups.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: setresgid/setresuid take plain ids.
    check(unsafe { libc::setresgid(account.gid, account.gid, account.gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(account.uid, account.uid, account.uid) })?;
    // SAFETY: plain id; it must fail now that every id is dropped.
    if account.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("root could be taken back after dropping privileges"));
    }
    Ok(())
}

/// Keep glibc's malloc to `arenas` arenas for the whole process. By default every thread that
/// allocates may get an arena of its own (up to 8 per CPU), each keeping what its thread freed:
/// the daemon's resident memory crept up as requests spread over its 16 workers (4,584 -> 5,012
/// kB over 100,000 logins, +92 kB over the second half; with 2 arenas 3,808 -> 3,924 kB, +20 kB).
/// Call it before starting any thread. Elsewhere than glibc it does nothing.
pub fn limit_malloc_arenas(arenas: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and changes only the allocator's tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}
