//! The built plugin exports exactly the two SASL entry points and links no second copy of
//! libsasl2, libldap or an OpenSSL.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn plugin() -> PathBuf {
    common::sasl::built_plugin()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .arg(plugin())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (apt-get install binutils)"));
    assert!(out.status.success(), "{cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn only_the_sasl_entry_points_are_exported() {
    let mut symbols: Vec<String> = run("nm", &["-D", "--defined-only"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    symbols.sort();
    assert_eq!(symbols, ["sasl_auxprop_plug_init", "sasl_canonuser_init"]);
}

#[test]
fn links_no_second_sasl_ldap_or_tls_library() {
    let dynamic = run("readelf", &["-d"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    for forbidden in ["libsasl2", "libldap", "liblber", "libssl", "libcrypto", "libgnutls"] {
        assert!(!needed.iter().any(|l| l.contains(forbidden)), "{forbidden} is NEEDED: {needed:#?}");
    }
    assert!(!needed.is_empty(), "readelf printed no NEEDED entries at all: {dynamic}");
}

/// The LDAP client runs in the caller's thread (src/ldap/wire.rs): no async runtime is linked
/// into the host process, even though ldap3, whose codec it uses, depends on tokio.
#[test]
fn no_async_runtime_is_linked() {
    let symbols = run("nm", &["-C"]);
    let tokio: Vec<&str> = symbols.lines().filter(|l| l.contains("tokio")).take(5).collect();
    assert!(tokio.is_empty(), "tokio is linked into the plugin: {tokio:#?}");
    assert!(symbols.lines().any(|l| l.contains("sasl_auxprop_plug_init")), "nm printed no symbols: {symbols}");
}
