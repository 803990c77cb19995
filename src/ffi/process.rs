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
