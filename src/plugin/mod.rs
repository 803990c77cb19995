//! The exported C entry points and the callbacks in the two plug tables. Each body is a null
//! check and a call into safe code, inside [`boundary`].
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::ptr;
use std::sync::Mutex;

use libc::{c_char, c_int, c_uint, c_void};

use crate::core::LookupFlags;
use crate::error::{ConfigIssue, Error};
use crate::ffi::boundary::boundary;
use crate::ffi::bytes::{copy_in, copy_out};
use crate::ffi::sasl::*;
use crate::ffi::utils::{ServerHost, Utils};
use crate::host::{FirstSeen, Host, Level};
use crate::state::{self, Setup};

const NAME: &CStr = c"ldapbind";

/// A table libsasl2 reads through a `*mut` but never writes; we never write it either.
struct HostTable<T>(UnsafeCell<T>);
// SAFETY: the tables are immutable after construction; libsasl2 only reads them.
unsafe impl<T> Sync for HostTable<T> {}

static AUXPROP: HostTable<sasl_auxprop_plug_t> = HostTable(UnsafeCell::new(sasl_auxprop_plug_t {
    features: 0,
    spare_int1: 0,
    glob_context: ptr::null_mut(),
    auxprop_free: Some(auxprop_free),
    auxprop_lookup: Some(auxprop_lookup),
    name: NAME.as_ptr().cast_mut(),
    auxprop_store: Some(auxprop_store),
}));

static CANONUSER: HostTable<sasl_canonuser_plug_t> = HostTable(UnsafeCell::new(sasl_canonuser_plug_t {
    features: 0,
    spare_int1: 0,
    glob_context: ptr::null_mut(),
    name: NAME.as_ptr().cast_mut(),
    canon_user_free: Some(canon_user_free),
    canon_user_server: Some(canon_user_server),
    canon_user_client: Some(canon_user_client),
    spare_fptr1: None,
    spare_fptr2: None,
    spare_fptr3: None,
}));

/// Read the options through the init-time utils and register one use of the shared state.
fn register(utils: Utils<'_>) {
    // Before the host may chroot: how its admin spells the options in what we log.
    crate::host::Spelling::of_process();
    let library = |key: &str| utils.option(None, key);
    let level = library("log_level").and_then(|l| l.trim().parse::<c_int>().ok()).unwrap_or(SASL_LOG_ERR);
    let utils = utils.with_max_level(level);
    let options = |key: &str| utils.option(Some(NAME), key);
    state::register(&options, &library, &|lvl: Level, msg| utils.log(lvl as c_int, msg));
}

/// The body of both init functions: check, register, hand out the static table.
///
/// # Safety
/// `utils` null or valid for the call; `out_version`/`plug` null or writable.
unsafe fn init<T>(
    utils: *const sasl_utils_t,
    max_version: c_int,
    version: c_int,
    out_version: *mut c_int,
    plug: *mut *mut T,
    table: &'static HostTable<T>,
) -> c_int {
    // SAFETY: null-tolerant; libsasl2's utils outlive the call.
    let u = unsafe { Utils::from_ptr(utils, SASL_LOG_ERR) };
    boundary(u, || {
        let Some(u) = u else { return SASL_BADPARAM };
        if out_version.is_null() || plug.is_null() {
            return SASL_BADPARAM;
        }
        if max_version < version {
            return SASL_BADVERS;
        }
        register(u);
        // SAFETY: both out-pointers were checked for null above; written only on success.
        unsafe {
            *out_version = version;
            *plug = table.0.get();
        }
        SASL_OK
    })
}

/// # Safety
/// Called by libsasl2 with its global utils and valid out-pointers (null ones are refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sasl_auxprop_plug_init(
    utils: *const sasl_utils_t,
    max_version: c_int,
    out_version: *mut c_int,
    plug: *mut *mut sasl_auxprop_plug_t,
    _plugname: *const c_char,
) -> c_int {
    // SAFETY: forwarded unchanged from libsasl2.
    unsafe { init(utils, max_version, SASL_AUXPROP_PLUG_VERSION, out_version, plug, &AUXPROP) }
}

/// # Safety
/// Called by libsasl2 with its global utils and valid out-pointers (null ones are refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sasl_canonuser_init(
    utils: *const sasl_utils_t,
    max_version: c_int,
    out_version: *mut c_int,
    plug: *mut *mut sasl_canonuser_plug_t,
    _plugname: *const c_char,
) -> c_int {
    // SAFETY: forwarded unchanged from libsasl2.
    unsafe { init(utils, max_version, SASL_CANONUSER_PLUG_VERSION, out_version, plug, &CANONUSER) }
}

unsafe extern "C" fn auxprop_free(_glob: *mut c_void, utils: *const sasl_utils_t) {
    // SAFETY: null-tolerant; valid for the call when non-null.
    let u = unsafe { Utils::from_ptr(utils, SASL_LOG_ERR) };
    boundary(u, || {
        state::release();
        SASL_OK
    });
}

unsafe extern "C" fn canon_user_free(_glob: *mut c_void, utils: *const sasl_utils_t) {
    // SAFETY: null-tolerant; valid for the call when non-null.
    let u = unsafe { Utils::from_ptr(utils, SASL_LOG_ERR) };
    boundary(u, || {
        state::release();
        SASL_OK
    });
}

/// The SASL connection whose login last logged the configuration error: one login makes
/// several calls, and the admin needs the line once per login, not once per call.
static CONFIG_LOGGED_FOR: Mutex<usize> = Mutex::new(0);

/// Log `e` once, record it for `sasl_errdetail`, and return its code. The admin's problems are
/// `Err` the first time `seen` meets them and `Fail` afterwards; a configuration error was
/// logged at `Err` by init already, and is repeated at `Fail` once per login.
fn report(host: &impl Host, e: &Error, seen: Option<&FirstSeen>) -> c_int {
    let msg = e.to_string();
    let repeated = matches!(e, Error::Config(_)) && {
        let mut last = CONFIG_LOGGED_FOR.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *last, host.conn_id()) == host.conn_id()
    };
    if !repeated {
        let level = match (e.level(), seen) {
            (Level::Err, _) if matches!(e, Error::Config(_)) => Level::Fail,
            (Level::Err, Some(seen)) => seen.level(&msg),
            (level, _) => level,
        };
        host.log(level, format_args!("{msg}"));
    }
    host.set_error(&msg);
    e.sasl_code()
}

unsafe extern "C" fn auxprop_lookup(
    _glob: *mut c_void,
    sparams: *mut sasl_server_params_t,
    flags: c_uint,
    user: *const c_char,
    ulen: c_uint,
) -> c_int {
    // SAFETY: null-tolerant; libsasl2 passes the connection's params, valid for the call.
    let host = unsafe { ServerHost::from_ptr(sparams) };
    boundary(host.as_ref().map(ServerHost::utils), || {
        let (Some(host), false) = (host.as_ref(), user.is_null()) else { return SASL_BADPARAM };
        let Some(plugin) = state::current() else { return SASL_NOMECH };
        let service = match &plugin.setup {
            Setup::Unconfigured => return SASL_NOMECH,
            Setup::Broken(msg) => return report(host, &Error::Config(ConfigIssue::Rejected(msg.clone())), None),
            Setup::Ready(service) => service,
        };
        // SAFETY: non-null; libsasl2 passes `ulen` bytes (or a C string when 0).
        let name = unsafe { copy_in(user, ulen) };
        let flags = LookupFlags {
            override_values: flags & SASL_AUXPROP_OVERRIDE != 0,
            authzid: flags & SASL_AUXPROP_AUTHZID != 0,
            verify_against_hash: flags & SASL_AUXPROP_VERIFY_AGAINST_HASH != 0,
        };
        match service.lookup(host, flags, &name) {
            Ok(()) => SASL_OK,
            Err(e) => report(host, &e, Some(service.seen())),
        }
    })
}

/// Storing is not supported: answer the probe (`ctx == NULL`) with "no", so libsasl2 looks
/// for another writable plugin instead of believing ldapbind stored a password.
unsafe extern "C" fn auxprop_store(
    _glob: *mut c_void,
    sparams: *mut sasl_server_params_t,
    ctx: *mut propctx,
    _user: *const c_char,
    _ulen: c_uint,
) -> c_int {
    // SAFETY: null-tolerant (the probe passes NULL sparams).
    let host = unsafe { ServerHost::from_ptr(sparams) };
    boundary(host.as_ref().map(ServerHost::utils), || {
        if let (Some(host), false) = (host.as_ref(), ctx.is_null()) {
            host.log(Level::Note, format_args!("does not store properties; change passwords in the directory itself"));
        }
        SASL_NOMECH
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn canon_user_server(
    _glob: *mut c_void,
    sparams: *mut sasl_server_params_t,
    user: *const c_char,
    len: c_uint,
    _flags: c_uint,
    out: *mut c_char,
    out_umax: c_uint,
    out_ulen: *mut c_uint,
) -> c_int {
    // SAFETY: null-tolerant; libsasl2 passes the connection's params, valid for the call.
    let host = unsafe { ServerHost::from_ptr(sparams) };
    boundary(host.as_ref().map(ServerHost::utils), || {
        let Some(host) = host.as_ref() else { return SASL_BADPARAM };
        if user.is_null() || out.is_null() || out_ulen.is_null() {
            return SASL_BADPARAM;
        }
        // Copy before anything is written: `out` may be the same buffer as `user`.
        // SAFETY: non-null; `len` bytes, or a C string when 0.
        let input = unsafe { copy_in(user, len) };
        let plugin = state::current();
        let (result, seen) = match plugin.as_deref().map(|p| &p.setup) {
            Some(Setup::Ready(service)) => (service.canonicalize(host, &input), Some(service.seen())),
            Some(Setup::Broken(msg)) => (Err(Error::Config(ConfigIssue::Rejected(msg.clone()))), None),
            Some(Setup::Unconfigured) | None => (Err(Error::Config(ConfigIssue::CanonWithoutUri)), None),
        };
        // SAFETY: out has out_umax writable bytes and out_ulen is writable (libsasl2's buffers).
        match result.and_then(|name| unsafe { copy_out(name.as_bytes(), out, out_umax, out_ulen) }) {
            Ok(()) => SASL_OK,
            Err(e) => report(host, &e, seen),
        }
    })
}

/// Client side (libsasl2 calls it without a NULL check): trim and copy, no directory.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn canon_user_client(
    _glob: *mut c_void,
    cparams: *mut sasl_client_params_t,
    user: *const c_char,
    len: c_uint,
    _flags: c_uint,
    out: *mut c_char,
    out_max: c_uint,
    out_len: *mut c_uint,
) -> c_int {
    // SAFETY: null-tolerant reads of the client params' utils pointer.
    let utils = unsafe { cparams.as_ref().and_then(|c| Utils::from_ptr(c.utils, SASL_LOG_ERR)) };
    boundary(utils, || {
        if user.is_null() || out.is_null() || out_len.is_null() {
            return SASL_BADPARAM;
        }
        // SAFETY: non-null; `len` bytes, or a C string when 0.
        let input = unsafe { copy_in(user, len) };
        let trimmed = input.trim_ascii();
        // SAFETY: libsasl2's output buffer of out_max bytes and a writable length.
        match unsafe { copy_out(trimmed, out, out_max, out_len) } {
            Ok(()) => SASL_OK,
            Err(e) => e.sasl_code(),
        }
    })
}

#[cfg(test)]
#[allow(clippy::undocumented_unsafe_blocks)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_nulls_and_old_versions() {
        let mut v = 0;
        let mut p: *mut sasl_auxprop_plug_t = ptr::null_mut();
        let code = unsafe { sasl_auxprop_plug_init(ptr::null(), 8, &mut v, &mut p, ptr::null()) };
        assert_eq!(code, SASL_BADPARAM);
        assert!(p.is_null() && v == 0, "nothing written on failure");
        let mut c: *mut sasl_canonuser_plug_t = ptr::null_mut();
        let code = unsafe { sasl_canonuser_init(ptr::null(), 5, &mut v, &mut c, ptr::null()) };
        assert_eq!(code, SASL_BADPARAM);
        assert!(c.is_null());
    }

    #[test]
    fn client_canon_trims_and_bounds() {
        let mut out = [0x55u8; 6];
        let mut n: c_uint = 0;
        let code = unsafe {
            canon_user_client(
                ptr::null_mut(),
                ptr::null_mut(),
                c"  bob ".as_ptr(),
                0,
                0,
                out.as_mut_ptr().cast(),
                6,
                &mut n,
            )
        };
        assert_eq!((code, n, &out[..4]), (SASL_OK, 3, &b"bob\0"[..]));
        let code = unsafe {
            canon_user_client(
                ptr::null_mut(),
                ptr::null_mut(),
                c"abcdef".as_ptr(),
                6,
                0,
                out.as_mut_ptr().cast(),
                6,
                &mut n,
            )
        };
        assert_eq!(code, SASL_BUFOVER);
    }

    #[test]
    fn lookup_and_canon_refuse_nulls() {
        let code = unsafe { auxprop_lookup(ptr::null_mut(), ptr::null_mut(), 0, c"x".as_ptr(), 1) };
        assert_eq!(code, SASL_BADPARAM);
        let mut n = 0;
        let code = unsafe {
            canon_user_server(ptr::null_mut(), ptr::null_mut(), c"x".as_ptr(), 1, 0, ptr::null_mut(), 0, &mut n)
        };
        assert_eq!(code, SASL_BADPARAM);
        assert_eq!(
            unsafe { auxprop_store(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), ptr::null(), 0) },
            SASL_NOMECH
        );
    }
}
