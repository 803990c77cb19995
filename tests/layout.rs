//! The hand-written `#[repr(C)]` mirrors against the installed `<sasl/saslplug.h>`: a C probe
//! prints every mirrored field's offset and size, and each must match `mem::offset_of!`.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use ldapbind::ffi::sasl::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compile(args: &[&str], out: &Path) {
    let status = Command::new("cc").args(args).arg("-o").arg(out).status().expect("cc runs (apt-get install gcc)");
    assert!(status.success(), "cc {args:?} failed: is libsasl2-dev installed? (scripts/deps.sh)");
}

/// (struct, field) -> (offset, size) as the C compiler sees them.
fn probe() -> BTreeMap<(String, String), (usize, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("probe");
    let src = root().join("tests/c/layout_probe.c");
    compile(&["-std=c11", "-Wall", "-Werror", src.to_str().unwrap()], &exe);
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // "struct propval name 0 8" or "sasl_utils_t log 256 8"
        let parts: Vec<&str> = line.split_whitespace().collect();
        let n = parts.len();
        let (ty, field) = (parts[..n - 3].join(" "), parts[n - 3].to_owned());
        let num = |s: &str| s.parse::<i64>().unwrap();
        map.insert((ty, field), (num(parts[n - 2]) as usize, num(parts[n - 1]) as usize));
    }
    map
}

macro_rules! check {
    ($c:expr, $errs:expr, $cname:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        $(
            let key = ($cname.to_owned(), stringify!($field).to_owned());
            match $c.get(&key) {
                None => $errs.push(format!("probe did not print {}.{}", $cname, stringify!($field))),
                Some(&(off, size)) => {
                    let rust_off = offset_of!($ty, $field);
                    if off != rust_off {
                        $errs.push(format!("{}.{}: C offset {off}, Rust {rust_off}", $cname, stringify!($field)));
                    }
                    let _ = size;
                }
            }
        )*
    }};
}

fn check_size(
    c: &BTreeMap<(String, String), (usize, usize)>,
    errs: &mut Vec<String>,
    name: &str,
    size: usize,
    align: usize,
) {
    match c.get(&(name.to_owned(), "sizeof".to_owned())) {
        Some(&(s, a)) if s == size && a == align => {}
        Some(&(s, a)) => errs.push(format!("{name}: C sizeof {s} align {a}, Rust {size} align {align}")),
        None => errs.push(format!("probe did not print sizeof {name}")),
    }
}

#[test]
fn mirrors_match_the_installed_headers() {
    let c = probe();
    let mut errs = Vec::new();
    check!(
        c,
        errs,
        "sasl_utils_t",
        sasl_utils_t,
        [
            version,
            conn,
            rpool,
            getopt_context,
            getopt,
            malloc,
            calloc,
            realloc,
            free,
            mutex_alloc,
            mutex_lock,
            mutex_unlock,
            mutex_free,
            MD5Init,
            MD5Update,
            MD5Final,
            hmac_md5,
            hmac_md5_init,
            hmac_md5_final,
            hmac_md5_precalc,
            hmac_md5_import,
            mkchal,
            utf8verify,
            rand,
            churn,
            checkpass,
            decode64,
            encode64,
            erasebuffer,
            getprop,
            setprop,
            getcallback,
            log,
            seterror,
            spare_fptr,
            prop_new,
            prop_dup,
            prop_request,
            prop_get,
            prop_getnames,
            prop_clear,
            prop_dispose,
            prop_format,
            prop_set,
            prop_setvals,
            prop_erase,
            auxprop_store,
            spare_fptr1,
            spare_fptr2,
        ]
    );
    check_size(&c, &mut errs, "sasl_utils_t", size_of::<sasl_utils_t>(), align_of::<sasl_utils_t>());
    check!(
        c,
        errs,
        "sasl_security_properties_t",
        sasl_security_properties_t,
        [min_ssf, max_ssf, maxbufsize, security_flags, property_names, property_values,]
    );
    check_size(
        &c,
        &mut errs,
        "sasl_security_properties_t",
        size_of::<sasl_security_properties_t>(),
        align_of::<sasl_security_properties_t>(),
    );
    check!(
        c,
        errs,
        "sasl_server_params_t",
        sasl_server_params_t,
        [
            service,
            appname,
            serverFQDN,
            user_realm,
            iplocalport,
            ipremoteport,
            servicelen,
            applen,
            slen,
            urlen,
            iploclen,
            ipremlen,
            log_level,
            utils,
            callbacks,
            props,
            external_ssf,
            transition,
            canon_user,
            propctx,
            gss_creds,
            cbinding,
            http_request,
            spare_ptr4,
            spare_fptr1,
            spare_fptr2,
            spare_int1,
            spare_int2,
            spare_int3,
            flags,
            param_version,
        ]
    );
    check_size(
        &c,
        &mut errs,
        "sasl_server_params_t",
        size_of::<sasl_server_params_t>(),
        align_of::<sasl_server_params_t>(),
    );
    check!(c, errs, "sasl_client_params_t", sasl_client_params_t, [service, serverFQDN, clientFQDN, utils]);
    check!(c, errs, "struct propval", propval, [name, values, nvalues, valsize]);
    check_size(&c, &mut errs, "struct propval", size_of::<propval>(), align_of::<propval>());
    check!(
        c,
        errs,
        "sasl_auxprop_plug_t",
        sasl_auxprop_plug_t,
        [features, spare_int1, glob_context, auxprop_free, auxprop_lookup, name, auxprop_store,]
    );
    check_size(
        &c,
        &mut errs,
        "sasl_auxprop_plug_t",
        size_of::<sasl_auxprop_plug_t>(),
        align_of::<sasl_auxprop_plug_t>(),
    );
    check!(
        c,
        errs,
        "sasl_canonuser_plug_t",
        sasl_canonuser_plug_t,
        [
            features,
            spare_int1,
            glob_context,
            name,
            canon_user_free,
            canon_user_server,
            canon_user_client,
            spare_fptr1,
            spare_fptr2,
            spare_fptr3,
        ]
    );
    check_size(
        &c,
        &mut errs,
        "sasl_canonuser_plug_t",
        size_of::<sasl_canonuser_plug_t>(),
        align_of::<sasl_canonuser_plug_t>(),
    );

    for (name, value) in [
        ("SASL_AUXPROP_PLUG_VERSION", SASL_AUXPROP_PLUG_VERSION as usize),
        ("SASL_CANONUSER_PLUG_VERSION", SASL_CANONUSER_PLUG_VERSION as usize),
        ("SASL_AUTHUSER", SASL_AUTHUSER as usize),
        ("SASL_AUXPROP_VERIFY_AGAINST_HASH", SASL_AUXPROP_VERIFY_AGAINST_HASH as usize),
        ("SASL_NOUSER", SASL_NOUSER as usize),
        ("SASL_CONFIGERR", SASL_CONFIGERR as usize),
    ] {
        let got = c.get(&("const".to_owned(), name.to_owned())).map(|&(v, _)| v as i64);
        // Negative codes were printed with %d: compare as i32.
        let want = value as i32 as i64;
        let got_signed = got.map(|v| v as i32 as i64);
        if got_signed != Some(want) {
            errs.push(format!("{name}: C {got:?}, Rust {want}"));
        }
    }
    assert!(errs.is_empty(), "layout mismatches:\n{}", errs.join("\n"));
    // The sizes the reference documents, as a second witness.
    assert_eq!((size_of::<sasl_utils_t>(), size_of::<sasl_server_params_t>()), (392, 232));
}

#[test]
fn header_declares_libsasl2_entry_point_types() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("header_check.o");
    let src = root().join("tests/c/header_check.c");
    let inc = format!("-I{}", root().join("include").display());
    compile(&["-std=c11", "-Wall", "-Wextra", "-Werror", "-c", &inc, src.to_str().unwrap()], &obj);
}
