//! The path this process was started by, read from memory rather than from `/proc`.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The file name `execve` ran (the kernel's `AT_EXECFN` in the auxiliary vector): what Postfix's
/// master passes (`/usr/lib/postfix/sbin/smtpd`), as typed, symbolic links not resolved.
///
/// Read from the process's own memory: `std::env::current_exe` (a `readlink` of
/// `/proc/self/exe`) made procfs build this process's `/proc/<pid>` entries on the first call,
/// 20–45 µs that every imapd and smtpd paid in ldapbind's init.
pub fn exec_path() -> Option<PathBuf> {
    // SAFETY: getauxval only reads the auxiliary vector; 0 means the entry is absent.
    let p = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if p.is_null() {
        return None;
    }
    // SAFETY: AT_EXECFN points at the NUL-terminated file name the kernel copied to the top of
    // the initial stack, which stays mapped and unmoved for the life of the process.
    let name = unsafe { CStr::from_ptr(p) };
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn exec_path_is_the_file_this_process_was_started_from() {
        let exe = super::exec_path().expect("AT_EXECFN on Linux");
        let same = |p: &std::path::Path| std::fs::canonicalize(p).expect("canonicalize");
        assert_eq!(same(&exe), same(&std::env::current_exe().expect("current_exe")), "{}", exe.display());
    }
}
