//! Which libsasl2 the host runs. The plugin does not link libsasl2: its `sasl_version` is found
//! in the library that holds the host's own `prop_get` (dladdr), so a host that loaded libsasl2
//! privately (RTLD_LOCAL) or from another path (LD_LIBRARY_PATH) is still answered for.

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;

use libc::{c_char, c_int};

use super::sasl::sasl_utils_t;

/// libsasl2's `(major, minor, step)`.
pub type Version = (u8, u8, u16);

/// The host's libsasl2 version, looked up once per process; `None` when it cannot be told.
pub fn host_libsasl2(utils: &sasl_utils_t) -> Option<Version> {
    static VERSION: OnceLock<Option<Version>> = OnceLock::new();
    *VERSION.get_or_init(|| lookup(utils))
}

fn lookup(utils: &sasl_utils_t) -> Option<Version> {
    let inside = utils.prop_get? as *const c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a plain out-struct.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `inside` is the address of a function of a loaded library.
    if unsafe { libc::dladdr(inside, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname names a library that is loaded (RTLD_NOLOAD never loads one); the
    // handle only adds a reference, released below.
    let handle = unsafe { libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    const NAME: &CStr = c"sasl_version";
    // SAFETY: a valid handle and a NUL-terminated name.
    let symbol = unsafe { libc::dlsym(handle, NAME.as_ptr()) };
    let mut version: c_int = 0;
    if !symbol.is_null() {
        // SAFETY: libsasl2's `void sasl_version(const char **implementation, int *version)`;
        // both arguments may be NULL, `version` is a valid out-pointer.
        unsafe {
            let sasl_version: unsafe extern "C" fn(*mut *const c_char, *mut c_int) = std::mem::transmute(symbol);
            sasl_version(std::ptr::null_mut(), &mut version);
        }
    }
    // SAFETY: the handle from dlopen above, used no more.
    unsafe { libc::dlclose(handle) };
    // High byte major, next byte minor, low 16 bits step (common.c).
    (!symbol.is_null()).then_some(((version >> 24) as u8, (version >> 16) as u8, version as u16))
}
