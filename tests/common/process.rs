//! Fixture servers die with the test thread that started them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Have the kernel send `signal` to `cmd`'s process when the thread that spawns it dies without
/// running the fixture's `Drop` (`PR_SET_PDEATHSIG`, which survives exec of programs that are not
/// set-uid), and make the process exit at once if the parent died before that took effect.
/// Start and drop the fixture on the test's own thread: the signal follows that thread.
pub fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    let parent = std::process::id();
    // SAFETY: runs in the forked child before exec and calls only async-signal-safe functions
    // (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
