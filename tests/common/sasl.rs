//! A real-libsasl2 test host: loads mechanism/auxprop/canonuser plugins from a temp plugin dir,
//! serves options through `SASL_CB_GETOPT`, captures `SASL_CB_LOG`, and drives full in-process
//! client/server exchanges with libsasl2's own client.
//!
//! libsasl2 is process-global: `sasl_server_init` may run once per process (2.1.28 does not
//! survive a re-init after `sasl_done`), so [`Server::init`] panics on a second call. Run the
//! tests that use this module with `cargo nextest run` (one process per test), never `cargo test`.
//!
//! Everything libsasl2 keeps a pointer to (the global callback list, option values, the plugin
//! path) is leaked on purpose: libsasl2 stores those pointers for the life of the process.
//!
//! Logging: messages logged with a connection arrive through `SASL_CB_LOG` ([`Server::logs`]);
//! libsasl2 sends everything logged with `conn == NULL` (plugin loading, `*_plug_init`) to
//! syslog instead, so this module interposes `__syslog_chk` in the test executable to capture
//! those too ([`Server::syslog_logs`]). Every line is echoed to stderr unless
//! `SASL_HARNESS_QUIET` is set.
//!
//! Dropping the [`Server`] calls `sasl_done` (plugins' free hooks, then `dlclose`), except
//! while panicking.
//!
//! The `extern "C"` declarations live here (test crate) only; the plugin never links libsasl2.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_ulong, c_void};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

// ---------------------------------------------------------------------------------------------
// Hand-written C ABI (Debian 12, libsasl2 2.1.28; see /work/shared/reference/SASL-ABI.md)
// ---------------------------------------------------------------------------------------------

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

/// Opaque `sasl_interact_t` (we always supply callbacks, so prompts never happen).
#[repr(C)]
pub struct sasl_interact_t {
    _private: [u8; 0],
}

/// `sasl_callback_t` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sasl_callback_t {
    pub id: c_ulong,
    pub proc_: Option<unsafe extern "C" fn()>,
    pub context: *mut c_void,
}

/// `struct propval` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct propval {
    pub name: *const c_char,
    pub values: *mut *const c_char,
    pub nvalues: c_uint,
    pub valsize: c_uint,
}

/// Header of `sasl_secret_t` (`{unsigned long len; unsigned char data[1];}`); the data follows.
#[repr(C)]
struct sasl_secret_t {
    len: c_ulong,
    data: [u8; 1],
}

// Result codes (sasl.h:142-182).
pub const SASL_CONTINUE: c_int = 1;
pub const SASL_OK: c_int = 0;
pub const SASL_FAIL: c_int = -1;
pub const SASL_NOMEM: c_int = -2;
pub const SASL_BUFOVER: c_int = -3;
pub const SASL_NOMECH: c_int = -4;
pub const SASL_BADPROT: c_int = -5;
pub const SASL_NOTDONE: c_int = -6;
pub const SASL_BADPARAM: c_int = -7;
pub const SASL_TRYAGAIN: c_int = -8;
pub const SASL_BADMAC: c_int = -9;
pub const SASL_NOTINIT: c_int = -12;
pub const SASL_BADAUTH: c_int = -13;
pub const SASL_NOAUTHZ: c_int = -14;
pub const SASL_TOOWEAK: c_int = -15;
pub const SASL_ENCRYPT: c_int = -16;
pub const SASL_TRANS: c_int = -17;
pub const SASL_EXPIRED: c_int = -18;
pub const SASL_DISABLED: c_int = -19;
pub const SASL_NOUSER: c_int = -20;
pub const SASL_BADVERS: c_int = -23;
pub const SASL_UNAVAIL: c_int = -24;
pub const SASL_NOVERIFY: c_int = -26;
pub const SASL_PWLOCK: c_int = -21;
pub const SASL_NOCHANGE: c_int = -22;
pub const SASL_WEAKPASS: c_int = -27;
pub const SASL_NOUSERPASS: c_int = -28;
pub const SASL_NEED_OLD_PASSWD: c_int = -29;
pub const SASL_CONSTRAINT_VIOLAT: c_int = -30;
pub const SASL_BADBINDING: c_int = -32;
pub const SASL_CONFIGERR: c_int = -100;

// Log levels.
pub const SASL_LOG_NONE: c_int = 0;
pub const SASL_LOG_ERR: c_int = 1;
pub const SASL_LOG_FAIL: c_int = 2;
pub const SASL_LOG_WARN: c_int = 3;
pub const SASL_LOG_NOTE: c_int = 4;
pub const SASL_LOG_DEBUG: c_int = 5;
pub const SASL_LOG_TRACE: c_int = 6;
pub const SASL_LOG_PASS: c_int = 7;

// Callback ids.
pub const SASL_CB_LIST_END: c_ulong = 0;
pub const SASL_CB_GETOPT: c_ulong = 1;
pub const SASL_CB_LOG: c_ulong = 2;
pub const SASL_CB_GETPATH: c_ulong = 3;
pub const SASL_CB_GETCONFPATH: c_ulong = 5;
pub const SASL_CB_USER: c_ulong = 0x4001;
pub const SASL_CB_AUTHNAME: c_ulong = 0x4002;
pub const SASL_CB_PASS: c_ulong = 0x4004;
pub const SASL_CB_GETREALM: c_ulong = 0x4008;

// sasl_getprop property numbers.
pub const SASL_USERNAME: c_int = 0;
pub const SASL_AUTHSOURCE: c_int = 14;
pub const SASL_MECHNAME: c_int = 15;

type MutexAllocFn = unsafe extern "C" fn() -> *mut c_void;
type MutexLockFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type MutexFreeFn = unsafe extern "C" fn(*mut c_void);

#[link(name = "sasl2")]
unsafe extern "C" {
    fn sasl_set_mutex(
        alloc: Option<MutexAllocFn>,
        lock: Option<MutexLockFn>,
        unlock: Option<MutexLockFn>,
        free: Option<MutexFreeFn>,
    );
    fn sasl_server_init(callbacks: *const sasl_callback_t, appname: *const c_char) -> c_int;
    fn sasl_client_init(callbacks: *const sasl_callback_t) -> c_int;
    fn sasl_done();
    fn sasl_server_new(
        service: *const c_char,
        server_fqdn: *const c_char,
        user_realm: *const c_char,
        iplocalport: *const c_char,
        ipremoteport: *const c_char,
        callbacks: *const sasl_callback_t,
        flags: c_uint,
        pconn: *mut *mut sasl_conn_t,
    ) -> c_int;
    fn sasl_client_new(
        service: *const c_char,
        server_fqdn: *const c_char,
        iplocalport: *const c_char,
        ipremoteport: *const c_char,
        prompt_supp: *const sasl_callback_t,
        flags: c_uint,
        pconn: *mut *mut sasl_conn_t,
    ) -> c_int;
    fn sasl_dispose(pconn: *mut *mut sasl_conn_t);
    fn sasl_checkpass(
        conn: *mut sasl_conn_t,
        user: *const c_char,
        userlen: c_uint,
        pass: *const c_char,
        passlen: c_uint,
    ) -> c_int;
    fn sasl_errdetail(conn: *mut sasl_conn_t) -> *const c_char;
    fn sasl_errstring(code: c_int, langlist: *const c_char, outlang: *mut *const c_char) -> *const c_char;
    fn sasl_getprop(conn: *mut sasl_conn_t, propnum: c_int, pvalue: *mut *const c_void) -> c_int;
    fn sasl_listmech(
        conn: *mut sasl_conn_t,
        user: *const c_char,
        prefix: *const c_char,
        sep: *const c_char,
        suffix: *const c_char,
        result: *mut *const c_char,
        plen: *mut c_uint,
        pcount: *mut c_int,
    ) -> c_int;
    fn sasl_server_start(
        conn: *mut sasl_conn_t,
        mech: *const c_char,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_server_step(
        conn: *mut sasl_conn_t,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_client_start(
        conn: *mut sasl_conn_t,
        mechlist: *const c_char,
        prompt_need: *mut *mut sasl_interact_t,
        clientout: *mut *const c_char,
        clientoutlen: *mut c_uint,
        mech: *mut *const c_char,
    ) -> c_int;
    fn sasl_client_step(
        conn: *mut sasl_conn_t,
        serverin: *const c_char,
        serverinlen: c_uint,
        prompt_need: *mut *mut sasl_interact_t,
        clientout: *mut *const c_char,
        clientoutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_auxprop_request(conn: *mut sasl_conn_t, propnames: *const *const c_char) -> c_int;
    fn sasl_auxprop_getctx(conn: *mut sasl_conn_t) -> *mut propctx;
    fn prop_getnames(ctx: *mut propctx, names: *const *const c_char, vals: *mut propval) -> c_int;
    fn prop_set(ctx: *mut propctx, name: *const c_char, value: *const c_char, vallen: c_int) -> c_int;
}

/// `sasl_errstring` for a result code, e.g. "authentication failure" for -13.
pub fn errstring(code: i32) -> String {
    // SAFETY: sasl_errstring returns a pointer to a static string (or NULL); langlist/outlang
    // may be NULL.
    unsafe { cstr_to_string(sasl_errstring(code, ptr::null(), ptr::null_mut())) }
        .unwrap_or_else(|| format!("unknown SASL code {code}"))
}

/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for the duration of the call.
unsafe fn cstr_to_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

fn nul_terminated(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(b);
    v.push(0);
    v
}

fn cstring(s: &str, what: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| panic!("{what} {s:?} contains a NUL byte"))
}

/// Erases a callback's concrete signature into libsasl2's `sasl_callback_ft`.
macro_rules! cb {
    ($id:expr, $f:expr, $ty:ty, $ctx:expr) => {
        sasl_callback_t {
            id: $id,
            // SAFETY: libsasl2 casts `proc` back to the signature that belongs to `id`, and `$ty`
            // is exactly that signature (sasl.h), so the erased pointer is only ever called
            // with the right type. Function pointers have the same size and ABI.
            proc_: Some(unsafe { std::mem::transmute::<$ty, unsafe extern "C" fn()>($f) }),
            context: $ctx,
        }
    };
}

const CB_END: sasl_callback_t = sasl_callback_t { id: SASL_CB_LIST_END, proc_: None, context: ptr::null_mut() };

// ---------------------------------------------------------------------------------------------
// Plugin directory
// ---------------------------------------------------------------------------------------------

/// The system's libsasl2 plugin directory on Debian 12 (the compiled-in `PLUGINDIR`).
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/sasl2";

/// A temp dir holding symlinks to the system's mechanism/auxprop plugins (every `lib*.so` in
/// [`SYSTEM_PLUGIN_DIR`] except `libldapdb.so`), plus optionally the built `libldapbind.so`
/// (copied, so a concurrent `cargo build` cannot swap it under a running test) or the system's
/// `libldapdb.so`. It is also used as the config path (`SASL_CB_GETCONFPATH`), so no
/// `/etc/sasl2/<appname>.conf` leaks into tests; see [`PluginDir::write_conf`].
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// System plugins (minus ldapdb) plus a copy of the built `libldapbind.so`.
    /// Panics if the plugin has not been built (see [`built_plugin`]).
    pub fn with_ldapbind() -> Self {
        Self::with_ldapbind_on(Path::new(SYSTEM_PLUGIN_DIR))
    }

    /// System plugins only (no ldapdb, no ldapbind).
    pub fn without_ldapbind() -> Self {
        Self::mechanisms_from(Path::new(SYSTEM_PLUGIN_DIR))
    }

    /// The mechanisms of another libsasl2 (`plugins`, e.g. [`libsasl2_2127`]'s `sasl2`) plus
    /// a copy of the built `libldapbind.so`.
    pub fn with_ldapbind_on(plugins: &Path) -> Self {
        let d = Self::mechanisms_from(plugins);
        d.add_copy(&built_plugin(), "libldapbind.so");
        d
    }

    fn mechanisms_from(plugins: &Path) -> Self {
        let dir = tempfile::Builder::new().prefix("sasl-plugins-").tempdir().expect("create temp plugin dir");
        let d = PluginDir { dir };
        let entries = std::fs::read_dir(plugins)
            .unwrap_or_else(|e| panic!("read {}: {e} (install libsasl2-modules)", plugins.display()));
        let mut n = 0;
        for e in entries {
            let e = e.expect("read_dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            // libsasl2 only loads names ending in .so/.la; the versioned .so.2 files are targets.
            if name.starts_with("lib") && name.ends_with(".so") && name != "libldapdb.so" {
                d.add_symlink(&e.path(), &name);
                n += 1;
            }
        }
        assert!(n > 0, "no lib*.so plugins in {} (install libsasl2-modules)", plugins.display());
        d
    }

    /// System plugins (minus ldapdb) plus the system's `libldapdb.so` (for comparisons and
    /// benchmarks). Panics if it is not installed (`apt-get install libsasl2-modules-ldap`).
    pub fn with_ldapdb() -> Self {
        Self::try_with_ldapdb().unwrap_or_else(|| {
            panic!(
                "{SYSTEM_PLUGIN_DIR}/libldapdb.so is not installed \
                 (apt-get install libsasl2-modules-ldap); use PluginDir::try_with_ldapdb to skip"
            )
        })
    }

    /// Like [`PluginDir::with_ldapdb`], but `None` when `libldapdb.so` is not installed.
    pub fn try_with_ldapdb() -> Option<Self> {
        Self::try_with_ldapdb_from(Path::new(SYSTEM_PLUGIN_DIR))
    }

    /// [`PluginDir::try_with_ldapdb`] taking `libldapdb.so` from `dir` (tests of this helper).
    pub fn try_with_ldapdb_from(dir: &Path) -> Option<Self> {
        let ldapdb = dir.join("libldapdb.so");
        if !ldapdb.exists() {
            return None;
        }
        let d = Self::without_ldapbind();
        d.add_symlink(&ldapdb, "libldapdb.so");
        Some(d)
    }

    /// The directory to pass to [`Server::init`].
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a copy of `src` as `file_name`. libsasl2 derives the registration `plugname`
    /// from the file name: drop the first 3 chars, cut at the first `.`.
    pub fn add_copy(&self, src: &Path, file_name: &str) {
        let dst = self.dir.path().join(file_name);
        std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    }

    /// Adds a symlink `file_name` -> `src`.
    pub fn add_symlink(&self, src: &Path, file_name: &str) {
        let dst = self.dir.path().join(file_name);
        std::os::unix::fs::symlink(src, &dst)
            .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", dst.display(), src.display()));
    }

    /// Removes an entry (e.g. `"libsasldb.so"`) so libsasl2 does not load it.
    pub fn remove(&self, file_name: &str) {
        let p = self.dir.path().join(file_name);
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }

    /// Names of the entries, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read plugin dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Writes `<appname>.conf` (`key: value` lines) into the dir, which is the config path:
    /// libsasl2 reads it at `sasl_server_init` as the fallback after the GETOPT callback.
    pub fn write_conf(&self, appname: &str, contents: &str) {
        let p = self.dir.path().join(format!("{appname}.conf"));
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }
}

/// Debian 11's libsasl2 2.1.27 (`libsasl2-2`, `libsasl2-modules`), the last release with
/// `pwcheck_method: auxprop-hashed`, as scripts/deps.sh unpacks it into target/: the directory
/// holding its `libsasl2.so.2` (for `LD_LIBRARY_PATH`), with its mechanisms in `sasl2/`.
pub fn libsasl2_2127() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/libsasl2-2.1.27/usr/lib/x86_64-linux-gnu");
    assert!(
        dir.join("libsasl2.so.2").is_file(),
        "{}/libsasl2.so.2 is missing: run scripts/deps.sh (it fetches Debian 11's libsasl2-2 2.1.27)",
        dir.display()
    );
    dir
}

/// Path of the built cdylib: `current_exe()` is `target/<profile>/deps/<test>-<hash>`, the
/// plugin is `target/<profile>/libldapbind.so` or, when only `cargo test`/`nextest` built it,
/// `target/<profile>/deps/libldapbind.so` (the newer wins). Panics with a hint if missing.
pub fn built_plugin() -> PathBuf {
    let p = built_plugin_path();
    assert!(
        p.is_file(),
        "{} does not exist: build the cdylib first (`cargo build`; integration tests build it \
         when the crate's lib target has crate-type cdylib)",
        p.display()
    );
    p
}

/// `Some(path)` if the built `libldapbind.so` exists, for tests that skip without it.
pub fn built_plugin_if_exists() -> Option<PathBuf> {
    let p = built_plugin_path();
    p.is_file().then_some(p)
}

fn built_plugin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps_dir = exe.parent().unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let profile_dir = deps_dir.parent().unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let uplifted = profile_dir.join("libldapbind.so");
    // `cargo build` uplifts the cdylib to target/<profile>/, but `cargo test`/nextest only
    // leave it in deps/ (built together with this test binary, so never stale). Take the newer.
    let in_deps = deps_dir.join("libldapbind.so");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(&uplifted), mtime(&in_deps)) {
        (Some(a), Some(b)) if b > a => in_deps,
        (None, Some(_)) => in_deps,
        _ => uplifted,
    }
}

// ---------------------------------------------------------------------------------------------
// Process-global state shared with the C callbacks
// ---------------------------------------------------------------------------------------------

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static DONE: AtomicBool = AtomicBool::new(false);
static LOGS: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
static GETOPT_QUERIES: Mutex<Vec<(Option<String>, String)>> = Mutex::new(Vec::new());
/// Option values; each value is leaked so the pointer handed to libsasl2 stays valid forever
/// (callers of getopt may keep it, as ldapdb does).
static OPTIONS: Mutex<Vec<(String, &'static CStr)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test must not turn every later callback into a poisoned-lock abort.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn leak_cstr(s: &str, what: &str) -> &'static CStr {
    Box::leak(cstring(s, what).into_boxed_c_str())
}

/// Property names handed to `prop_request` must outlive the propctx: intern them.
static INTERNED: Mutex<Vec<&'static CStr>> = Mutex::new(Vec::new());

fn intern(name: &str) -> &'static CStr {
    let mut v = lock(&INTERNED);
    if let Some(c) = v.iter().find(|c| c.to_bytes() == name.as_bytes()) {
        return c;
    }
    let c = leak_cstr(name, "property name");
    v.push(c);
    c
}

/// Every libsasl2 log line is echoed to stderr (nextest shows it for failing tests) unless
/// `SASL_HARNESS_QUIET` is set.
fn echo_logs() -> bool {
    std::env::var_os("SASL_HARNESS_QUIET").is_none()
}

unsafe extern "C" fn cb_log(_ctx: *mut c_void, level: c_int, message: *const c_char) -> c_int {
    let r = std::panic::catch_unwind(|| {
        // SAFETY: libsasl2 passes a NUL-terminated message (or NULL).
        let msg = unsafe { cstr_to_string(message) }.unwrap_or_default();
        if echo_logs() {
            eprintln!("[libsasl2 log level {level}] {msg}");
        }
        lock(&LOGS).push((level, msg));
    });
    if r.is_ok() { SASL_OK } else { SASL_FAIL }
}

static SYSLOG_LOGS: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

/// libsasl2 ignores the application's *global* `SASL_CB_LOG` whenever `conn == NULL`
/// (`_sasl_getcallback` only consults `conn->global_callbacks`), so everything logged at init
/// time — plugin load errors, `auxpropfunc error ...`, a plugin's own `utils->log(NULL, ...)` from
/// `*_plug_init` with the global utils — goes to its default sink `_sasl_syslog`, i.e.
/// `syslog(pri, "%s", msg)`, which Debian's fortified build compiles to
/// `__syslog_chk(pri, flag, "%s", msg)`. This definition in the test executable interposes it
/// (the executable comes first in the global lookup scope), so those lines are captured too
/// (see [`Server::syslog_logs`]) and never reach the machine's syslog.
///
/// It is declared non-variadic: on x86_64 SysV the first six integer/pointer arguments of a
/// variadic call are passed in the same registers as a normal call, and the only caller we
/// care about always passes exactly `"%s"` and one string. Other format strings are recorded
/// verbatim without reading any variadic argument.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __syslog_chk(pri: c_int, _flag: c_int, fmt: *const c_char, arg: *const c_char) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `fmt` is the caller's NUL-terminated format string (or NULL).
        let fmt_s = unsafe { cstr_to_string(fmt) }.unwrap_or_default();
        let msg = if fmt_s == "%s" {
            // SAFETY: with format "%s" the first variadic argument is a C string.
            unsafe { cstr_to_string(arg) }.unwrap_or_default()
        } else {
            fmt_s
        };
        let prio = pri & 0x7;
        if echo_logs() {
            eprintln!("[syslog prio {prio}] {msg}");
        }
        lock(&SYSLOG_LOGS).push((prio, msg));
    });
}

unsafe extern "C" fn cb_getopt(
    _ctx: *mut c_void,
    plugin_name: *const c_char,
    option: *const c_char,
    result: *mut *const c_char,
    len: *mut c_uint,
) -> c_int {
    let r = std::panic::catch_unwind(|| {
        // SAFETY: libsasl2 passes NUL-terminated strings or NULL.
        let plugin = unsafe { cstr_to_string(plugin_name) };
        // SAFETY: as above.
        let Some(opt) = (unsafe { cstr_to_string(option) }) else {
            return SASL_BADPARAM;
        };
        lock(&GETOPT_QUERIES).push((plugin, opt.clone()));
        let found = lock(&OPTIONS).iter().rev().find(|(k, _)| *k == opt).map(|(_, v)| *v);
        match found {
            Some(v) => {
                if !result.is_null() {
                    // SAFETY: non-NULL out-pointer from libsasl2; `v` is leaked ('static).
                    unsafe { *result = v.as_ptr() };
                }
                if !len.is_null() {
                    // SAFETY: non-NULL out-pointer from libsasl2.
                    unsafe { *len = v.to_bytes().len() as c_uint };
                }
                SASL_OK
            }
            None => {
                if !result.is_null() {
                    // SAFETY: as above; mirror the library's own getopt (NULL when not found).
                    unsafe { *result = ptr::null() };
                }
                SASL_FAIL
            }
        }
    });
    r.unwrap_or(SASL_FAIL)
}

unsafe extern "C" fn cb_getpath(ctx: *mut c_void, path: *mut *const c_char) -> c_int {
    if path.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: `ctx` is the leaked plugin-dir CStr installed by Server::init; `path` non-NULL.
    unsafe { *path = ctx.cast::<c_char>() };
    SASL_OK
}

unsafe extern "C" fn cb_getconfpath(ctx: *mut c_void, path: *mut *mut c_char) -> c_int {
    if path.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: as cb_getpath. libsasl2 does not write through the (non-const) pointer.
    unsafe { *path = ctx.cast::<c_char>() };
    SASL_OK
}

// Real pthread mutexes: 2.1.28's defaults are no-ops, and threaded use without them corrupts
// the heap inside the mechanism plugins (SASL-ABI.md §8).
unsafe extern "C" fn mutex_alloc() -> *mut c_void {
    // SAFETY: malloc of the right size; checked for NULL before init.
    let m = unsafe { libc::malloc(std::mem::size_of::<libc::pthread_mutex_t>()) }.cast::<libc::pthread_mutex_t>();
    if m.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `m` is valid, suitably aligned (malloc) storage for a pthread_mutex_t.
    if unsafe { libc::pthread_mutex_init(m, ptr::null()) } != 0 {
        // SAFETY: allocated above and never initialised.
        unsafe { libc::free(m.cast()) };
        return ptr::null_mut();
    }
    m.cast()
}

unsafe extern "C" fn mutex_lock(m: *mut c_void) -> c_int {
    if m.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: `m` came from mutex_alloc.
    if unsafe { libc::pthread_mutex_lock(m.cast()) } == 0 { SASL_OK } else { SASL_FAIL }
}

unsafe extern "C" fn mutex_unlock(m: *mut c_void) -> c_int {
    if m.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: `m` came from mutex_alloc and is locked by this thread.
    if unsafe { libc::pthread_mutex_unlock(m.cast()) } == 0 { SASL_OK } else { SASL_FAIL }
}

unsafe extern "C" fn mutex_free(m: *mut c_void) {
    if m.is_null() {
        return;
    }
    // SAFETY: `m` came from mutex_alloc and is unlocked; destroyed then freed exactly once.
    unsafe {
        libc::pthread_mutex_destroy(m.cast());
        libc::free(m);
    }
}

type GetoptFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *mut *const c_char, *mut c_uint) -> c_int;
type LogFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_char) -> c_int;
type GetpathFn = unsafe extern "C" fn(*mut c_void, *mut *const c_char) -> c_int;
type GetconfpathFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_char) -> c_int;
type GetsimpleFn = unsafe extern "C" fn(*mut c_void, c_int, *mut *const c_char, *mut c_uint) -> c_int;
type GetsecretFn = unsafe extern "C" fn(*mut sasl_conn_t, *mut c_void, c_int, *mut *mut sasl_secret_t) -> c_int;
type GetrealmFn = unsafe extern "C" fn(*mut c_void, c_int, *const *const c_char, *mut *const c_char) -> c_int;

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// The process's libsasl2 (server and client side both initialised). Dropping it calls
/// `sasl_done` (unless the thread is panicking, so a crash in teardown cannot hide the
/// original failure); [`Server::done`] does it explicitly. Connections borrow the server, so
/// none can outlive `sasl_done`.
pub struct Server {
    _not_constructible: (),
}

impl Server {
    /// `sasl_set_mutex` (pthread), then `sasl_server_init(appname)` and `sasl_client_init`, both
    /// with the global callbacks GETPATH/GETCONFPATH (= `plugin_dir`), GETOPT (serves `options`
    /// for any plugin_name, exact key match) and LOG. Panics if either init fails, or if libsasl2
    /// was already initialised in this process.
    pub fn init(appname: &str, plugin_dir: &Path, options: &[(&str, &str)]) -> Server {
        match Self::init_result(appname, plugin_dir, options) {
            Ok(s) => s,
            Err(code) => panic!("sasl init failed: {code} ({}); logs: {:#?}", errstring(code), Self::logs()),
        }
    }

    /// Like [`Server::init`] but returns the first failing init's code (`sasl_server_init`, then
    /// `sasl_client_init`). Still panics on a second call in the same process.
    pub fn init_result(appname: &str, plugin_dir: &Path, options: &[(&str, &str)]) -> Result<Server, i32> {
        if INITIALIZED.swap(true, Ordering::SeqCst) {
            panic!(
                "libsasl2 already initialised in this process: sasl_server_init may run only \
                 once per process (it is process-global). Run these tests with \
                 `cargo nextest run` (one process per test), not `cargo test`, and create only \
                 one Server per test."
            );
        }
        {
            let mut opts = lock(&OPTIONS);
            for (k, v) in options {
                opts.push(((*k).to_owned(), leak_cstr(v, "option value")));
            }
        }
        let appname_c = leak_cstr(appname, "appname");
        let dir = plugin_dir.to_str().expect("plugin dir is not UTF-8");
        let dir_c = leak_cstr(dir, "plugin dir");
        let dir_ctx = dir_c.as_ptr().cast_mut().cast::<c_void>();
        // libsasl2 keeps the global callback list pointer (no copy): leak it.
        let callbacks: &'static [sasl_callback_t] = Box::leak(Box::new([
            cb!(SASL_CB_GETOPT, cb_getopt, GetoptFn, ptr::null_mut()),
            cb!(SASL_CB_LOG, cb_log, LogFn, ptr::null_mut()),
            cb!(SASL_CB_GETPATH, cb_getpath, GetpathFn, dir_ctx),
            cb!(SASL_CB_GETCONFPATH, cb_getconfpath, GetconfpathFn, dir_ctx),
            CB_END,
        ]));
        // SAFETY: the four functions implement sasl_mutex_*_t; called before any init, once.
        unsafe { sasl_set_mutex(Some(mutex_alloc), Some(mutex_lock), Some(mutex_unlock), Some(mutex_free)) };
        // SAFETY: `callbacks` is a CB_END-terminated array valid for the process; appname leaked.
        let rc = unsafe { sasl_server_init(callbacks.as_ptr(), appname_c.as_ptr()) };
        if rc != SASL_OK {
            return Err(rc);
        }
        // SAFETY: as above.
        let rc = unsafe { sasl_client_init(callbacks.as_ptr()) };
        if rc != SASL_OK {
            return Err(rc);
        }
        Ok(Server { _not_constructible: () })
    }

    /// Sets (or, with `None`, hides) an option after init. libsasl2 re-reads some options per
    /// lookup (`auxprop_plugin`, `canon_user_plugin`, `pwcheck_method`); plugins may cache others.
    pub fn set_option(&self, key: &str, value: Option<&str>) {
        let mut opts = lock(&OPTIONS);
        opts.retain(|(k, _)| k != key);
        if let Some(v) = value {
            opts.push((key.to_owned(), leak_cstr(v, "option value")));
        }
    }

    /// Every `(SASL_LOG_* level, message)` libsasl2 or a plugin logged through `SASL_CB_LOG`, in
    /// order. Only messages logged with a connection land here (libsasl2 sends `conn == NULL`
    /// messages to syslog; see [`Server::syslog_logs`]).
    pub fn logs() -> Vec<(i32, String)> {
        lock(&LOGS).clone()
    }

    /// Clears both [`Server::logs`] and [`Server::syslog_logs`].
    pub fn clear_logs() {
        lock(&LOGS).clear();
        lock(&SYSLOG_LOGS).clear();
    }

    /// `(syslog priority, message)` for what libsasl2 sent to syslog instead of `SASL_CB_LOG`:
    /// everything logged with `conn == NULL` (init-time plugin loading and `*_plug_init`
    /// messages, `sasl_auxprop_store`'s "could not find auxprop plugin", ...). Priorities:
    /// SASL_LOG_ERR -> 3 (LOG_ERR), WARN -> 4, FAIL/NOTE -> 5 (LOG_NOTICE), DEBUG/TRACE/PASS -> 7.
    pub fn syslog_logs() -> Vec<(i32, String)> {
        lock(&SYSLOG_LOGS).clone()
    }

    /// Entries of [`Server::logs`] and [`Server::syslog_logs`] whose message contains `s`
    /// (levels are not comparable between the two; use the specific getters for that).
    pub fn any_log_containing(s: &str) -> Vec<String> {
        let pick = |v: &[(i32, String)]| -> Vec<String> {
            v.iter().filter(|(_, m)| m.contains(s)).map(|(_, m)| m.clone()).collect()
        };
        let mut out = pick(&lock(&LOGS));
        out.extend(pick(&lock(&SYSLOG_LOGS)));
        out
    }

    /// Log entries whose message contains `s`.
    pub fn logs_containing(s: &str) -> Vec<(i32, String)> {
        lock(&LOGS).iter().filter(|(_, m)| m.contains(s)).cloned().collect()
    }

    /// Every getopt query `(plugin_name, option)`, in order, found or not. The library asks its
    /// own options with `plugin_name = None`; plugins pass their name (e.g. `"sasldb"`).
    pub fn getopt_queries() -> Vec<(Option<String>, String)> {
        lock(&GETOPT_QUERIES).clone()
    }

    pub fn clear_getopt_queries() {
        lock(&GETOPT_QUERIES).clear();
    }

    /// `sasl_server_new(service, "localhost", NULL realm, NULL, NULL, NULL callbacks, 0)`.
    pub fn new_conn(&self, service: &str) -> Conn<'_> {
        self.new_conn_with(service, "localhost", None)
            .unwrap_or_else(|code| panic!("sasl_server_new: {code} ({})", errstring(code)))
    }

    /// `sasl_server_new` with an explicit serverFQDN and user_realm; returns its code on failure.
    pub fn new_conn_with(&self, service: &str, server_fqdn: &str, user_realm: Option<&str>) -> Result<Conn<'_>, i32> {
        let service = cstring(service, "service");
        let fqdn = cstring(server_fqdn, "serverFQDN");
        let realm = user_realm.map(|r| cstring(r, "user_realm"));
        let mut raw: *mut sasl_conn_t = ptr::null_mut();
        // SAFETY: all strings are NUL-terminated and outlive the call (libsasl2 copies them);
        // NULL ip ports/callbacks are allowed; `raw` is a valid out-pointer.
        let rc = unsafe {
            sasl_server_new(
                service.as_ptr(),
                fqdn.as_ptr(),
                realm.as_ref().map_or(ptr::null(), |r| r.as_ptr()),
                ptr::null(),
                ptr::null(),
                ptr::null(),
                0,
                &mut raw,
            )
        };
        if rc != SASL_OK || raw.is_null() {
            if !raw.is_null() {
                // SAFETY: libsasl2 may leave a half-built conn on failure; dispose it.
                unsafe { sasl_dispose(&mut raw) };
            }
            return Err(if rc == SASL_OK { SASL_FAIL } else { rc });
        }
        Ok(Conn { raw, service, server_fqdn: fqdn, _server: PhantomData })
    }

    /// `sasl_done` (unloads plugins: auxprop_free, canon_user_free, dlclose). Once per process.
    pub fn done(self) {
        Self::do_done();
        std::mem::forget(self);
    }

    fn do_done() {
        if !DONE.swap(true, Ordering::SeqCst) {
            // SAFETY: init succeeded (a Server exists) and no Conn is alive (they borrow self).
            unsafe { sasl_done() };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            Self::do_done();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conn
// ---------------------------------------------------------------------------------------------

/// A server connection (`sasl_dispose` on drop).
pub struct Conn<'s> {
    raw: *mut sasl_conn_t,
    /// What the conn was created with; [`exchange_on`] gives the client the same values
    /// (DIGEST-MD5 checks its digest-uri against them).
    service: CString,
    server_fqdn: CString,
    _server: PhantomData<&'s Server>,
}

// SAFETY: a sasl_conn_t may be used from any thread as long as it is not used concurrently;
// `&self` methods are not synchronised, so Conn is Send but not Sync.
unsafe impl Send for Conn<'_> {}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from sasl_server_new and is disposed exactly once.
        unsafe { sasl_dispose(&mut self.raw) };
    }
}

impl Conn<'_> {
    /// `sasl_checkpass` with explicit lengths. Both buffers are copied and NUL-terminated
    /// (not counted in the length): despite `passlen`, 2.1.28's checkpw compares the password
    /// with `strcmp`, so an unterminated buffer reads past the end and fails with BADAUTH.
    /// Embedded NULs are passed through as-is (and the length counts them).
    pub fn checkpass(&self, user: &[u8], pass: &[u8]) -> i32 {
        let user_z = nul_terminated(user);
        let pass_z = nul_terminated(pass);
        let ulen = c_uint::try_from(user.len()).expect("user longer than u32::MAX");
        let plen = c_uint::try_from(pass.len()).expect("password longer than u32::MAX");
        // SAFETY: pointers/lengths describe live, NUL-terminated buffers; conn is valid.
        unsafe { sasl_checkpass(self.raw, user_z.as_ptr().cast(), ulen, pass_z.as_ptr().cast(), plen) }
    }

    /// `sasl_errdetail`.
    pub fn errdetail(&self) -> String {
        // SAFETY: conn is valid; the result is a conn-owned string valid until the next call.
        unsafe { cstr_to_string(sasl_errdetail(self.raw)) }.unwrap_or_default()
    }

    /// `sasl_getprop(SASL_USERNAME)`: the authorisation identity after a successful login.
    pub fn username(&self) -> Option<String> {
        self.getprop_str(SASL_USERNAME)
    }

    /// `sasl_getprop` for a property that is a C string (`SASL_USERNAME`, `SASL_MECHNAME`, ...).
    pub fn getprop_str(&self, propnum: i32) -> Option<String> {
        let mut v: *const c_void = ptr::null();
        // SAFETY: conn valid; `v` is a valid out-pointer.
        let rc = unsafe { sasl_getprop(self.raw, propnum, &mut v) };
        if rc != SASL_OK {
            return None;
        }
        // SAFETY: for string properties libsasl2 returns a conn-owned NUL-terminated string.
        unsafe { cstr_to_string(v.cast()) }
    }

    /// `sasl_auxprop_request(conn, names)`. `"*name"` = authid property, `"name"` = authzid.
    /// Requests accumulate; a request is needed before [`Conn::set_prop_value`].
    /// `prop_request` keeps the name *pointers* (no copy), so names are interned for the
    /// life of the process.
    pub fn auxprop_request(&self, names: &[&str]) -> i32 {
        let mut ptrs: Vec<*const c_char> = names.iter().map(|n| intern(n).as_ptr()).collect();
        ptrs.push(ptr::null());
        // SAFETY: NULL-terminated array of 'static strings (libsasl2 stores the pointers).
        unsafe { sasl_auxprop_request(self.raw, ptrs.as_ptr()) }
    }

    /// Values of property `name` in the conn's propctx: `None` if not requested or without a
    /// value, `Some(vec![])` if present with zero values. Values are read as C strings (a
    /// propctx does not keep per-value lengths), so embedded NULs truncate.
    pub fn auxprop_values(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let ctx = self.propctx();
        let name_c = cstring(name, "property name");
        let names = [name_c.as_ptr(), ptr::null()];
        let mut vals = [propval { name: ptr::null(), values: ptr::null_mut(), nvalues: 0, valsize: 0 }; 2];
        // SAFETY: ctx valid; `names` is NULL-terminated; `vals` is as long as `names`.
        let rc = unsafe { prop_getnames(ctx, names.as_ptr(), vals.as_mut_ptr()) };
        if rc < 0 || vals[0].name.is_null() || vals[0].values.is_null() {
            return None;
        }
        let mut out = Vec::new();
        for i in 0..vals[0].nvalues as usize {
            // SAFETY: `values` has `nvalues` entries (NULL-terminated), each a C string.
            let v = unsafe { *vals[0].values.add(i) };
            if v.is_null() {
                break;
            }
            // SAFETY: non-NULL, NUL-terminated (prop_set terminates every value).
            out.push(unsafe { CStr::from_ptr(v) }.to_bytes().to_vec());
        }
        Some(out)
    }

    /// `prop_set(sasl_auxprop_getctx(conn), name, value, len)`: appends a value (the name must
    /// have been requested, else `SASL_BADPARAM`). E.g. pre-set `*userPassword` like 2.1.27's
    /// hashed checkpw did. An empty `value` is stored as "" (one empty value).
    pub fn set_prop_value(&self, name: &str, value: &[u8]) -> i32 {
        let ctx = self.propctx();
        let name_c = cstring(name, "property name");
        // prop_set treats len <= 0 as "use strlen", so pass a terminated copy.
        let value_z = nul_terminated(value);
        let len = c_int::try_from(value.len()).expect("value longer than i32::MAX");
        // SAFETY: ctx valid; `value_z` holds `value.len()` bytes plus a NUL.
        unsafe { prop_set(ctx, name_c.as_ptr(), value_z.as_ptr().cast(), len) }
    }

    fn propctx(&self) -> *mut propctx {
        // SAFETY: conn valid.
        let ctx = unsafe { sasl_auxprop_getctx(self.raw) };
        assert!(!ctx.is_null(), "sasl_auxprop_getctx returned NULL");
        ctx
    }

    /// The service name given to `sasl_server_new`.
    pub fn service(&self) -> &str {
        self.service.to_str().expect("service was built from a &str")
    }

    /// The serverFQDN given to `sasl_server_new`.
    pub fn server_fqdn(&self) -> &str {
        self.server_fqdn.to_str().expect("serverFQDN was built from a &str")
    }

    /// The raw `sasl_conn_t*`.
    pub fn raw(&self) -> *mut c_void {
        self.raw.cast()
    }

    /// `sasl_listmech`: mechanisms this conn would offer.
    pub fn mechs(&self) -> Vec<String> {
        let mut result: *const c_char = ptr::null();
        let mut len: c_uint = 0;
        let mut count: c_int = 0;
        // SAFETY: conn valid; prefix/sep/suffix are static strings; out-pointers valid.
        let rc = unsafe {
            sasl_listmech(
                self.raw,
                ptr::null(),
                c"".as_ptr(),
                c" ".as_ptr(),
                c"".as_ptr(),
                &mut result,
                &mut len,
                &mut count,
            )
        };
        if rc != SASL_OK {
            return Vec::new();
        }
        // SAFETY: on success `result` is a conn-owned NUL-terminated string.
        let s = unsafe { cstr_to_string(result) }.unwrap_or_default();
        s.split_whitespace().map(str::to_owned).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// In-process client/server exchange
// ---------------------------------------------------------------------------------------------

/// Outcome of [`exchange`].
#[derive(Debug, Clone)]
pub struct ExchangeResult {
    /// Final result: the server's last `sasl_server_start/step` code; if the server was never
    /// reached or the client failed mid-exchange, the client's failing code.
    pub code: i32,
    /// The client's last `sasl_client_start/step` code.
    pub client_code: i32,
    /// `SASL_USERNAME` on the server conn when `code == SASL_OK`.
    pub username: Option<String>,
    /// `sasl_errdetail` of the server conn (or of the client conn if the client failed first).
    pub errdetail: String,
    /// Number of server calls (`sasl_server_start` + `sasl_server_step`s).
    pub steps: usize,
    /// The mechanism the client actually selected.
    pub mech: String,
}

impl ExchangeResult {
    pub fn ok(&self) -> bool {
        self.code == SASL_OK
    }
}

/// Maximum number of server calls in one [`exchange`].
pub const MAX_EXCHANGE_STEPS: usize = 10;

/// Client identity, kept alive (boxed) for the client conn's lifetime.
struct ClientCreds {
    authid: CString,
    authzid: CString,
    realm: CString,
    secret: *mut sasl_secret_t,
}

impl Drop for ClientCreds {
    fn drop(&mut self) {
        // SAFETY: allocated with malloc in exchange_on; freed once, after sasl_dispose.
        unsafe { libc::free(self.secret.cast()) };
    }
}

unsafe extern "C" fn cb_client_simple(
    ctx: *mut c_void,
    id: c_int,
    result: *mut *const c_char,
    len: *mut c_uint,
) -> c_int {
    if ctx.is_null() || result.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: ctx is the ClientCreds box installed by exchange_on, alive for the conn.
    let creds = unsafe { &*ctx.cast::<ClientCreds>() };
    let s = match c_ulong::try_from(id).unwrap_or(0) {
        SASL_CB_AUTHNAME => &creds.authid,
        SASL_CB_USER => &creds.authzid,
        _ => return SASL_BADPARAM,
    };
    // SAFETY: out-pointers checked/allowed NULL (len); the CString outlives the conn.
    unsafe {
        *result = s.as_ptr();
        if !len.is_null() {
            *len = s.as_bytes().len() as c_uint;
        }
    }
    SASL_OK
}

unsafe extern "C" fn cb_client_pass(
    _conn: *mut sasl_conn_t,
    ctx: *mut c_void,
    id: c_int,
    psecret: *mut *mut sasl_secret_t,
) -> c_int {
    if ctx.is_null() || psecret.is_null() || c_ulong::try_from(id) != Ok(SASL_CB_PASS) {
        return SASL_BADPARAM;
    }
    // SAFETY: as cb_client_simple.
    let creds = unsafe { &*ctx.cast::<ClientCreds>() };
    // SAFETY: valid out-pointer; the secret lives until the ClientCreds drop.
    unsafe { *psecret = creds.secret };
    SASL_OK
}

unsafe extern "C" fn cb_client_realm(
    ctx: *mut c_void,
    _id: c_int,
    availrealms: *const *const c_char,
    result: *mut *const c_char,
) -> c_int {
    if ctx.is_null() || result.is_null() {
        return SASL_BADPARAM;
    }
    // SAFETY: as cb_client_simple.
    let creds = unsafe { &*ctx.cast::<ClientCreds>() };
    // Prefer the server's first offered realm (DIGEST-MD5), else the serverFQDN.
    // SAFETY: `availrealms` is NULL or a NULL-terminated array owned by the mechanism.
    let first = if availrealms.is_null() { ptr::null() } else { unsafe { *availrealms } };
    // SAFETY: valid out-pointer.
    unsafe { *result = if first.is_null() { creds.realm.as_ptr() } else { first } };
    SASL_OK
}

/// A full in-process exchange on a fresh server conn (service `"test"`, serverFQDN
/// `"localhost"`, no user_realm) with libsasl2's own client; see [`exchange_on`].
/// `authzid: None` makes the client send no authzid (its `SASL_CB_USER` answers "").
pub fn exchange(server: &Server, mech: &str, authid: &str, authzid: Option<&str>, password: &str) -> ExchangeResult {
    let conn = server.new_conn("test");
    exchange_on(&conn, mech, authid, authzid, password)
}

/// Runs libsasl2's client (`sasl_client_new` with the server conn's service and serverFQDN,
/// flags 0, and AUTHNAME, USER, PASS and GETREALM callbacks) against the given server conn,
/// forcing `mech`. Lets a test prepare the server conn first (service, realm, auxprop
/// requests) and inspect it afterwards. At most [`MAX_EXCHANGE_STEPS`] server calls.
pub fn exchange_on(conn: &Conn<'_>, mech: &str, authid: &str, authzid: Option<&str>, password: &str) -> ExchangeResult {
    let pw = password.as_bytes();
    let hdr = std::mem::offset_of!(sasl_secret_t, data);
    // SAFETY: malloc of header + password + NUL; checked for NULL below.
    let secret = unsafe { libc::malloc(hdr + pw.len() + 1) }.cast::<sasl_secret_t>();
    assert!(!secret.is_null(), "malloc sasl_secret_t");
    // SAFETY: `secret` has room for the header, pw.len() data bytes and a NUL.
    unsafe {
        (*secret).len = pw.len() as c_ulong;
        let data = secret.cast::<u8>().add(hdr);
        ptr::copy_nonoverlapping(pw.as_ptr(), data, pw.len());
        *data.add(pw.len()) = 0;
    }
    let creds = Box::new(ClientCreds {
        authid: cstring(authid, "authid"),
        authzid: cstring(authzid.unwrap_or(""), "authzid"),
        realm: conn.server_fqdn.clone(),
        secret,
    });
    let ctx = std::ptr::from_ref::<ClientCreds>(&creds).cast_mut().cast::<c_void>();
    let client_cbs = [
        cb!(SASL_CB_AUTHNAME, cb_client_simple, GetsimpleFn, ctx),
        cb!(SASL_CB_USER, cb_client_simple, GetsimpleFn, ctx),
        cb!(SASL_CB_PASS, cb_client_pass, GetsecretFn, ctx),
        cb!(SASL_CB_GETREALM, cb_client_realm, GetrealmFn, ctx),
        CB_END,
    ];
    let mech_c = cstring(mech, "mech");
    let mut client: *mut sasl_conn_t = ptr::null_mut();
    // SAFETY: strings valid for the call; `client_cbs` and `creds` outlive the client conn
    // (disposed below before they go out of scope).
    let rc = unsafe {
        sasl_client_new(
            conn.service.as_ptr(),
            conn.server_fqdn.as_ptr(),
            ptr::null(),
            ptr::null(),
            client_cbs.as_ptr(),
            0,
            &mut client,
        )
    };
    if rc != SASL_OK {
        return ExchangeResult {
            code: rc,
            client_code: rc,
            username: None,
            errdetail: format!("sasl_client_new failed: {}", errstring(rc)),
            steps: 0,
            mech: String::new(),
        };
    }
    // SAFETY: `client` is a live client conn; `conn.raw` a live server conn; everything the
    // loop passes to libsasl2 is valid for the call.
    let res = unsafe { run_exchange(conn, client, &mech_c) };
    // SAFETY: disposed exactly once; afterwards no callback can reach `creds`/`client_cbs`.
    unsafe { sasl_dispose(&mut client) };
    drop(creds);
    res
}

/// # Safety
/// `client` and `conn.raw` must be live client/server conns.
unsafe fn run_exchange(conn: &Conn<'_>, client: *mut sasl_conn_t, mech: &CStr) -> ExchangeResult {
    let mut res = ExchangeResult {
        code: SASL_FAIL,
        client_code: SASL_FAIL,
        username: None,
        errdetail: String::new(),
        steps: 0,
        mech: String::new(),
    };
    let client_fail = |res: &mut ExchangeResult, code: i32, what: &str| {
        res.code = code;
        res.client_code = code;
        // SAFETY: client conn live.
        let d = unsafe { cstr_to_string(sasl_errdetail(client)) }.unwrap_or_default();
        res.errdetail = format!("client {what} failed: {d}");
    };

    let mut prompts: *mut sasl_interact_t = ptr::null_mut();
    let mut cout: *const c_char = ptr::null();
    let mut coutlen: c_uint = 0;
    let mut chosen: *const c_char = ptr::null();
    // SAFETY: valid conn and out-pointers.
    let crc = unsafe { sasl_client_start(client, mech.as_ptr(), &mut prompts, &mut cout, &mut coutlen, &mut chosen) };
    res.client_code = crc;
    // SAFETY: `chosen` is NULL or a static mechanism name.
    res.mech = unsafe { cstr_to_string(chosen) }.unwrap_or_default();
    if crc != SASL_OK && crc != SASL_CONTINUE {
        client_fail(&mut res, crc, "sasl_client_start");
        return res;
    }
    // Server-first mechs (DIGEST-MD5, CRAM-MD5) produce no initial response: pass NULL, not "".
    let mut sout: *const c_char = ptr::null();
    let mut soutlen: c_uint = 0;
    // SAFETY: `cout` is NULL or `coutlen` bytes owned by the client conn until its next call.
    let mut src = unsafe { sasl_server_start(conn.raw, mech.as_ptr(), cout, coutlen, &mut sout, &mut soutlen) };
    res.steps = 1;
    while src == SASL_CONTINUE && res.steps < MAX_EXCHANGE_STEPS {
        cout = ptr::null();
        coutlen = 0;
        // SAFETY: `sout` is NULL or `soutlen` bytes owned by the server conn until its next call.
        let crc = unsafe { sasl_client_step(client, sout, soutlen, &mut prompts, &mut cout, &mut coutlen) };
        res.client_code = crc;
        if crc != SASL_OK && crc != SASL_CONTINUE {
            client_fail(&mut res, crc, "sasl_client_step");
            return res;
        }
        // libsasl2 does not always write the out-params (e.g. the final OK after a server's
        // last data went out as a CONTINUE), so stale values must not be mistaken for data.
        sout = ptr::null();
        soutlen = 0;
        // SAFETY: as for sasl_server_start.
        src = unsafe { sasl_server_step(conn.raw, cout, coutlen, &mut sout, &mut soutlen) };
        res.steps += 1;
    }
    if src == SASL_CONTINUE {
        res.code = SASL_FAIL;
        res.errdetail = format!("exchange did not finish within {MAX_EXCHANGE_STEPS} server steps");
        return res;
    }
    res.code = src;
    if src == SASL_OK {
        res.username = conn.username();
        // With flags 0 libsasl2 sends a mech's final data as a CONTINUE, so success data is not
        // expected; if some arrives while the client is not done yet, let the client verify it
        // (e.g. SCRAM's server signature) so a bogus server proof is still caught.
        if res.client_code == SASL_CONTINUE && !sout.is_null() && soutlen > 0 {
            // SAFETY: as above.
            let crc = unsafe { sasl_client_step(client, sout, soutlen, &mut prompts, &mut cout, &mut coutlen) };
            res.client_code = crc;
            if crc != SASL_OK {
                client_fail(&mut res, crc, "verification of server success data");
                return res;
            }
        }
    } else {
        res.errdetail = conn.errdetail();
    }
    res
}

// ---------------------------------------------------------------------------------------------
// sasldb helper
// ---------------------------------------------------------------------------------------------

/// Creates (or adds to) a sasldb file with `saslpasswd2 -f <db> -a <appname> -u <realm> -p -c
/// <user>`, password on stdin. Use realm `"localhost"` to match [`Server::new_conn`]'s
/// serverFQDN (sasldb keys are `user@realm`; without `-u` saslpasswd2 uses the host's FQDN).
pub fn create_sasldb(db: &Path, appname: &str, realm: &str, user: &str, password: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("saslpasswd2")
        .arg("-f")
        .arg(db)
        .args(["-a", appname, "-u", realm, "-p", "-c", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn saslpasswd2 (install sasl2-bin)");
    child.stdin.take().expect("stdin").write_all(password.as_bytes()).expect("write password to saslpasswd2");
    let out = child.wait_with_output().expect("wait saslpasswd2");
    assert!(
        out.status.success(),
        "saslpasswd2 failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
