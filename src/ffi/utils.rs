//! Safe views of libsasl2's `sasl_utils_t`: options, logging, the property context.

use std::ffi::{CStr, CString};
use std::ptr;

use libc::{c_char, c_int, c_uint, c_void};

use super::sasl::{SASL_AUTHUSER, SASL_LOG_ERR, SASL_NOLOG, SASL_OK, propval, sasl_server_params_t, sasl_utils_t};
use crate::error::Error;
use crate::host::{Host, Level, Requested, Spelling};

/// Text for a C `%s`: interior NULs cannot cross, so they become U+FFFD.
fn c_text(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// The host's utilities, valid for the duration of one call from libsasl2.
#[derive(Clone, Copy)]
pub struct Utils<'a> {
    raw: &'a sasl_utils_t,
    /// Lines above this SASL level are dropped before any formatting.
    max_level: c_int,
}

impl<'a> Utils<'a> {
    /// # Safety
    /// `utils` must be null or point to a `sasl_utils_t` that outlives `'a`.
    pub unsafe fn from_ptr(utils: *const sasl_utils_t, max_level: c_int) -> Option<Utils<'a>> {
        // SAFETY: null-checked by as_ref; the caller guarantees validity otherwise.
        unsafe { utils.as_ref() }.map(|raw| Utils { raw, max_level })
    }

    pub fn raw(&self) -> &'a sasl_utils_t {
        self.raw
    }

    pub fn max_level(&self) -> c_int {
        self.max_level
    }

    pub fn with_max_level(self, max_level: c_int) -> Self {
        Utils { max_level, ..self }
    }

    /// One option through libsasl2's lookup chain, copied at once (the pointer is only valid
    /// until the next getopt call). `plugin` is our plugin name, or `None` for library options.
    pub fn option(&self, plugin: Option<&CStr>, key: &str) -> Option<String> {
        let getopt = self.raw.getopt?;
        let key = CString::new(key).ok()?;
        let mut result: *const c_char = ptr::null();
        let mut len: c_uint = 0;
        // SAFETY: getopt is libsasl2's; every pointer passed is valid for the call.
        let rc = unsafe {
            getopt(
                self.raw.getopt_context,
                plugin.map_or(ptr::null(), CStr::as_ptr),
                key.as_ptr(),
                &mut result,
                &mut len,
            )
        };
        if rc != SASL_OK || result.is_null() {
            return None;
        }
        // SAFETY: on success `result` is a NUL-terminated string owned by the host. `len` is
        // not trusted (it is left unset by some callbacks).
        let value = unsafe { CStr::from_ptr(result) }.to_string_lossy().into_owned();
        Some(value)
    }

    /// Log one line at a SASL level through `utils->log`, never as a format string: `msg` is
    /// formatted (with [`crate::host::line`]'s prefix) only when the level is wanted.
    pub fn log(&self, level: c_int, msg: std::fmt::Arguments<'_>) {
        if level > self.max_level {
            return;
        }
        let Some(log) = self.raw.log else { return };
        let text = c_text(&Spelling::of_process().apply(&crate::host::line(msg)));
        // SAFETY: libsasl2's variadic logger; "%s" consumes exactly one C string.
        unsafe { log(self.raw.conn, level, c"%s".as_ptr(), text.as_ptr()) }
    }

    /// Set the connection's error detail without logging it a second time.
    pub fn set_error(&self, msg: &str) {
        let Some(seterror) = self.raw.seterror else { return };
        if self.raw.conn.is_null() {
            return;
        }
        let text = c_text(&Spelling::of_process().apply(&crate::host::line(format_args!("{msg}"))));
        // SAFETY: libsasl2's variadic seterror; "%s" consumes exactly one C string.
        unsafe { seterror(self.raw.conn, SASL_NOLOG, c"%s".as_ptr(), text.as_ptr()) }
    }
}

/// The host as seen from one server-side call (`auxprop_lookup`, `canon_user_server`).
pub struct ServerHost<'a> {
    utils: Utils<'a>,
    sparams: &'a sasl_server_params_t,
}

impl<'a> ServerHost<'a> {
    /// # Safety
    /// `sparams` must be null or valid for `'a`, with a valid `utils` pointer.
    pub unsafe fn from_ptr(sparams: *const sasl_server_params_t) -> Option<ServerHost<'a>> {
        // SAFETY: null-checked; validity guaranteed by the caller.
        let sparams = unsafe { sparams.as_ref() }?;
        // Logging follows the connection's log_level (libsasl2 filters only some paths).
        let level = if sparams.log_level > 0 { sparams.log_level } else { SASL_LOG_ERR };
        // SAFETY: sparams->utils is the connection's utils, valid as long as sparams.
        let utils = unsafe { Utils::from_ptr(sparams.utils, level) }?;
        Some(ServerHost { utils, sparams })
    }

    pub fn utils(&self) -> Utils<'a> {
        self.utils
    }

    fn propctx(&self) -> *mut super::sasl::propctx {
        self.sparams.propctx
    }
}

impl Host for ServerHost<'_> {
    fn log(&self, level: Level, msg: std::fmt::Arguments<'_>) {
        self.utils.log(level as c_int, msg);
    }

    fn set_error(&self, msg: &str) {
        self.utils.set_error(msg);
    }

    fn realm(&self) -> Option<String> {
        if self.sparams.user_realm.is_null() {
            return None;
        }
        // SAFETY: user_realm is a NUL-terminated string owned by the connection.
        let realm = unsafe { CStr::from_ptr(self.sparams.user_realm) }.to_string_lossy().into_owned();
        (!realm.is_empty()).then_some(realm)
    }

    fn conn_id(&self) -> usize {
        self.utils.raw.conn as usize
    }

    fn login_in_progress(&self) -> bool {
        let (Some(getprop), false) = (self.utils.raw.getprop, self.utils.raw.conn.is_null()) else {
            return false;
        };
        let mut value: *const c_void = ptr::null();
        // SAFETY: getprop reads a property of the live connection into `value`.
        let rc = unsafe { getprop(self.utils.raw.conn, SASL_AUTHUSER, &mut value) };
        rc == SASL_OK && !value.is_null()
    }

    fn requested(&self) -> Vec<Requested> {
        let (Some(prop_get), ctx) = (self.utils.raw.prop_get, self.propctx()) else { return Vec::new() };
        if ctx.is_null() {
            return Vec::new();
        }
        let mut out = Vec::new();
        // SAFETY: prop_get returns the context's array, terminated by an entry whose name is
        // NULL; values (when non-null) is a NULL-terminated array of C strings.
        unsafe {
            let mut pv: *const propval = prop_get(ctx);
            while !pv.is_null() && !(*pv).name.is_null() {
                let name = CStr::from_ptr((*pv).name).to_string_lossy().into_owned();
                let values = (*pv).values;
                let first_value = if values.is_null() || (*values).is_null() {
                    None
                } else {
                    Some(CStr::from_ptr(*values).to_bytes().to_vec())
                };
                out.push(Requested { name, has_values: !values.is_null(), first_value });
                pv = pv.add(1);
            }
        }
        out
    }

    fn library_option(&self, key: &str) -> Option<String> {
        self.utils.option(None, key)
    }

    fn libsasl2_version(&self) -> Option<(u8, u8, u16)> {
        super::version::host_libsasl2(self.utils.raw)
    }

    fn prop_erase(&self, name: &str) {
        let (Some(erase), ctx) = (self.utils.raw.prop_erase, self.propctx()) else { return };
        let Ok(name) = CString::new(name) else { return };
        if !ctx.is_null() {
            // SAFETY: valid context and NUL-terminated name.
            unsafe { erase(ctx, name.as_ptr()) }
        }
    }

    fn prop_set(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        let fail = |code| Error::Host { call: "prop_set", code };
        let (Some(set), ctx) = (self.utils.raw.prop_set, self.propctx()) else {
            return Err(fail(super::sasl::SASL_FAIL));
        };
        let name = CString::new(name).map_err(|_| fail(super::sasl::SASL_BADPARAM))?;
        let len = c_int::try_from(value.len()).map_err(|_| fail(super::sasl::SASL_BADPARAM))?;
        // prop_set treats len 0 as "strlen": give it a terminated buffer either way.
        let mut buf = Vec::with_capacity(value.len() + 1);
        buf.extend_from_slice(value);
        buf.push(0);
        // SAFETY: valid context, NUL-terminated name, `len` readable bytes (plus a NUL).
        let rc = unsafe { set(ctx, name.as_ptr(), buf.as_ptr().cast(), len) };
        if rc == SASL_OK { Ok(()) } else { Err(fail(rc)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::sasl::{SASL_LOG_DEBUG, SASL_LOG_ERR};

    /// Panics when formatted: a line below the host's level must never be.
    struct Unwanted;
    impl std::fmt::Display for Unwanted {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("a line above the host's log level was formatted");
        }
    }

    #[test]
    fn a_line_above_the_log_level_is_never_formatted() {
        // SAFETY: every field of sasl_utils_t is an integer, a raw pointer or an optional
        // function pointer, for which all-zero is a valid value (no callbacks).
        let raw: sasl_utils_t = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` outlives `utils`.
        let utils = unsafe { Utils::from_ptr(&raw, SASL_LOG_ERR) }.unwrap();
        utils.log(SASL_LOG_DEBUG, format_args!("lookup of {}", Unwanted));
    }

    #[test]
    fn the_prefix_is_added_once_by_the_sink() {
        assert_eq!(crate::host::line(format_args!("user {} not found", "jdoe")), "ldapbind: user jdoe not found");
    }
}
