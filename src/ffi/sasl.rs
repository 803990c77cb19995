//! Hand-written `#[repr(C)]` mirrors of the libsasl2 2.1.28 plugin ABI (`<sasl/saslplug.h>`,
//! `<sasl/prop.h>`), and the constants ldapbind uses.
//!
//! Every field up to the last one we touch is kept, unused ones included, so offsets match.
//! `tests/layout.rs` compiles a C probe against the installed headers and compares each
//! mirrored field's offset and each struct's size with these definitions. Function pointers
//! that C may leave NULL are `Option<unsafe extern "C" fn …>`; ones we never call are opaque.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code)]

use libc::{c_char, c_int, c_uint, c_ulong, c_void};

/// Opaque `sasl_conn_t`.
#[repr(C)]
pub struct sasl_conn_t {
    _private: [u8; 0],
}
/// Opaque `struct propctx`.
#[repr(C)]
pub struct propctx {
    _private: [u8; 0],
}

/// A function pointer slot we never call; only its size and position matter.
pub type opaque_fn = Option<unsafe extern "C" fn()>;

pub type sasl_getopt_t = unsafe extern "C" fn(
    context: *mut c_void,
    plugin_name: *const c_char,
    option: *const c_char,
    result: *mut *const c_char,
    len: *mut c_uint,
) -> c_int;

/// `sasl_utils_t` (saslplug.h:50-160). `version` is never initialised by libsasl2: never read it.
#[repr(C)]
pub struct sasl_utils_t {
    pub version: c_int,
    pub conn: *mut sasl_conn_t,
    pub rpool: *mut c_void,
    pub getopt_context: *mut c_void,
    pub getopt: Option<sasl_getopt_t>,
    pub malloc: opaque_fn,
    pub calloc: opaque_fn,
    pub realloc: opaque_fn,
    pub free: opaque_fn,
    pub mutex_alloc: opaque_fn,
    pub mutex_lock: opaque_fn,
    pub mutex_unlock: opaque_fn,
    pub mutex_free: opaque_fn,
    pub MD5Init: opaque_fn,
    pub MD5Update: opaque_fn,
    pub MD5Final: opaque_fn,
    pub hmac_md5: opaque_fn,
    pub hmac_md5_init: opaque_fn,
    pub hmac_md5_final: opaque_fn,
    pub hmac_md5_precalc: opaque_fn,
    pub hmac_md5_import: opaque_fn,
    pub mkchal: opaque_fn,
    pub utf8verify: opaque_fn,
    pub rand: opaque_fn,
    pub churn: opaque_fn,
    pub checkpass: opaque_fn,
    pub decode64: opaque_fn,
    pub encode64: opaque_fn,
    pub erasebuffer: opaque_fn,
    pub getprop:
        Option<unsafe extern "C" fn(conn: *mut sasl_conn_t, propnum: c_int, pvalue: *mut *const c_void) -> c_int>,
    pub setprop: opaque_fn,
    pub getcallback: opaque_fn,
    /// C-variadic; we only ever pass the format `"%s"` and one string.
    pub log: Option<unsafe extern "C" fn(conn: *mut sasl_conn_t, level: c_int, fmt: *const c_char, ...)>,
    /// C-variadic; we only ever pass the format `"%s"` and one string.
    pub seterror: Option<unsafe extern "C" fn(conn: *mut sasl_conn_t, flags: c_uint, fmt: *const c_char, ...)>,
    pub spare_fptr: opaque_fn,
    pub prop_new: opaque_fn,
    pub prop_dup: opaque_fn,
    pub prop_request: opaque_fn,
    pub prop_get: Option<unsafe extern "C" fn(ctx: *mut propctx) -> *const propval>,
    pub prop_getnames: opaque_fn,
    pub prop_clear: opaque_fn,
    pub prop_dispose: opaque_fn,
    pub prop_format: opaque_fn,
    pub prop_set: Option<
        unsafe extern "C" fn(ctx: *mut propctx, name: *const c_char, value: *const c_char, vallen: c_int) -> c_int,
    >,
    pub prop_setvals: opaque_fn,
    pub prop_erase: Option<unsafe extern "C" fn(ctx: *mut propctx, name: *const c_char)>,
    pub auxprop_store: opaque_fn,
    pub spare_fptr1: opaque_fn,
    pub spare_fptr2: opaque_fn,
}

/// `sasl_security_properties_t`, embedded in the server params.
#[repr(C)]
pub struct sasl_security_properties_t {
    pub min_ssf: c_uint,
    pub max_ssf: c_uint,
    pub maxbufsize: c_uint,
    pub security_flags: c_uint,
    pub property_names: *mut *const c_char,
    pub property_values: *mut *const c_char,
}

/// `sasl_server_params_t` (saslplug.h:496-600), read-only for plugins.
#[repr(C)]
pub struct sasl_server_params_t {
    pub service: *const c_char,
    pub appname: *const c_char,
    pub serverFQDN: *const c_char,
    pub user_realm: *const c_char,
    pub iplocalport: *const c_char,
    pub ipremoteport: *const c_char,
    pub servicelen: c_uint,
    pub applen: c_uint,
    pub slen: c_uint,
    pub urlen: c_uint,
    pub iploclen: c_uint,
    pub ipremlen: c_uint,
    pub log_level: c_int,
    pub utils: *const sasl_utils_t,
    pub callbacks: *const c_void,
    pub props: sasl_security_properties_t,
    pub external_ssf: c_uint,
    pub transition: opaque_fn,
    pub canon_user: opaque_fn,
    pub propctx: *mut propctx,
    pub gss_creds: *const c_void,
    pub cbinding: *const c_void,
    pub http_request: *const c_void,
    pub spare_ptr4: *mut c_void,
    pub spare_fptr1: opaque_fn,
    pub spare_fptr2: opaque_fn,
    pub spare_int1: c_int,
    pub spare_int2: c_int,
    pub spare_int3: c_int,
    pub flags: c_uint,
    pub param_version: c_int,
}

/// `sasl_client_params_t`: only the prefix up to `utils`, which is all `canon_user_client` reads.
#[repr(C)]
pub struct sasl_client_params_t {
    pub service: *const c_char,
    pub serverFQDN: *const c_char,
    pub clientFQDN: *const c_char,
    pub utils: *const sasl_utils_t,
}

/// `struct propval` (prop.h:58-66). `name == NULL` ends an array.
#[repr(C)]
pub struct propval {
    pub name: *const c_char,
    /// NULL: no value requested yet; non-NULL with `*values == NULL`: present, zero values.
    pub values: *mut *const c_char,
    pub nvalues: c_uint,
    pub valsize: c_uint,
}

pub type auxprop_free_t = unsafe extern "C" fn(glob_context: *mut c_void, utils: *const sasl_utils_t);
pub type auxprop_lookup_t = unsafe extern "C" fn(
    glob_context: *mut c_void,
    sparams: *mut sasl_server_params_t,
    flags: c_uint,
    user: *const c_char,
    ulen: c_uint,
) -> c_int;
pub type auxprop_store_t = unsafe extern "C" fn(
    glob_context: *mut c_void,
    sparams: *mut sasl_server_params_t,
    ctx: *mut propctx,
    user: *const c_char,
    ulen: c_uint,
) -> c_int;

/// `sasl_auxprop_plug_t` (SASL_AUXPROP_PLUG_VERSION 8). Note `name` FOLLOWS the lookup here.
#[repr(C)]
pub struct sasl_auxprop_plug_t {
    pub features: c_int,
    pub spare_int1: c_int,
    pub glob_context: *mut c_void,
    pub auxprop_free: Option<auxprop_free_t>,
    pub auxprop_lookup: Option<auxprop_lookup_t>,
    pub name: *mut c_char,
    pub auxprop_store: Option<auxprop_store_t>,
}

pub type canon_user_free_t = unsafe extern "C" fn(glob_context: *mut c_void, utils: *const sasl_utils_t);
pub type canon_user_server_t = unsafe extern "C" fn(
    glob_context: *mut c_void,
    sparams: *mut sasl_server_params_t,
    user: *const c_char,
    len: c_uint,
    flags: c_uint,
    out: *mut c_char,
    out_umax: c_uint,
    out_ulen: *mut c_uint,
) -> c_int;
pub type canon_user_client_t = unsafe extern "C" fn(
    glob_context: *mut c_void,
    cparams: *mut sasl_client_params_t,
    user: *const c_char,
    len: c_uint,
    flags: c_uint,
    out: *mut c_char,
    out_max: c_uint,
    out_len: *mut c_uint,
) -> c_int;

/// `sasl_canonuser_plug_t` (SASL_CANONUSER_PLUG_VERSION 5). Note `name` PRECEDES the free here.
#[repr(C)]
pub struct sasl_canonuser_plug_t {
    pub features: c_int,
    pub spare_int1: c_int,
    pub glob_context: *mut c_void,
    pub name: *mut c_char,
    pub canon_user_free: Option<canon_user_free_t>,
    pub canon_user_server: Option<canon_user_server_t>,
    pub canon_user_client: Option<canon_user_client_t>,
    pub spare_fptr1: opaque_fn,
    pub spare_fptr2: opaque_fn,
    pub spare_fptr3: opaque_fn,
}

pub type sasl_auxprop_init_t = unsafe extern "C" fn(
    utils: *const sasl_utils_t,
    max_version: c_int,
    out_version: *mut c_int,
    plug: *mut *mut sasl_auxprop_plug_t,
    plugname: *const c_char,
) -> c_int;
pub type sasl_canonuser_init_t = unsafe extern "C" fn(
    utils: *const sasl_utils_t,
    max_version: c_int,
    out_version: *mut c_int,
    plug: *mut *mut sasl_canonuser_plug_t,
    plugname: *const c_char,
) -> c_int;

pub const SASL_AUXPROP_PLUG_VERSION: c_int = 8;
pub const SASL_CANONUSER_PLUG_VERSION: c_int = 5;

// Result codes (sasl.h:142-182).
pub const SASL_OK: c_int = 0;
pub const SASL_FAIL: c_int = -1;
pub const SASL_NOMEM: c_int = -2;
pub const SASL_BUFOVER: c_int = -3;
pub const SASL_NOMECH: c_int = -4;
pub const SASL_BADPROT: c_int = -5;
pub const SASL_BADPARAM: c_int = -7;
pub const SASL_BADAUTH: c_int = -13;
pub const SASL_EXPIRED: c_int = -18;
pub const SASL_DISABLED: c_int = -19;
pub const SASL_NOUSER: c_int = -20;
pub const SASL_BADVERS: c_int = -23;
pub const SASL_UNAVAIL: c_int = -24;
pub const SASL_CONFIGERR: c_int = -100;

// Log levels (sasl.h:399-407).
pub const SASL_LOG_NONE: c_int = 0;
pub const SASL_LOG_ERR: c_int = 1;
pub const SASL_LOG_FAIL: c_int = 2;
pub const SASL_LOG_WARN: c_int = 3;
pub const SASL_LOG_NOTE: c_int = 4;
pub const SASL_LOG_DEBUG: c_int = 5;
pub const SASL_LOG_TRACE: c_int = 6;
pub const SASL_LOG_PASS: c_int = 7;

/// `seterror` flag: do not also log the message.
pub const SASL_NOLOG: c_uint = 0x01;

// Auxprop lookup flags (saslplug.h:943-952).
pub const SASL_AUXPROP_OVERRIDE: c_uint = 0x01;
pub const SASL_AUXPROP_AUTHZID: c_uint = 0x02;
pub const SASL_AUXPROP_VERIFY_AGAINST_HASH: c_uint = 0x10;

// Canon flags (sasl.h:644-658).
pub const SASL_CU_AUTHID: c_uint = 0x01;
pub const SASL_CU_AUTHZID: c_uint = 0x02;

/// Callback ids, for completeness of the mirrors used by tests.
pub const SASL_CB_GETOPT: c_ulong = 1;

/// `sasl_getprop` property number of the authentication id (sasl.h:822).
pub const SASL_AUTHUSER: c_int = 16;
