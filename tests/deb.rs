//! The Debian package, installed the way admins install: `cargo deb` builds it, `dpkg -i`
//! installs it, libsasl2 (saslpluginviewer) and Cyrus IMAP find the plugin in the system plugin
//! directory, `dpkg -r` removes it again.
//!
//! The machine is left exactly as found, also when the test fails or is killed: every dpkg run
//! happens in a private mount namespace (`unshare -m`) where `/usr`, `/etc` and `/var` are
//! overlays whose writable layer is a tmpfs. dpkg, its database, ldconfig's cache and the
//! installed files are the real ones as far as the processes inside can tell; nothing outside
//! the namespace (other tests, the admin's libsasl2 servers, apt) ever sees the package, and the
//! overlay vanishes with the namespace. Needs root (scripts/test.sh).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::imapd::{self, Imapd, ImapdOptions, PASSWORD, Plugins, USER};
use common::slapd::{self, Slapd};

const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/sasl2/libldapbind.so";
const DOCS: &str = "/usr/share/doc/ldapbind";
const UNIT: &str = "/usr/lib/systemd/system/ldapbind-authd.service";
/// `cargo deb` builds the release profile first; from scratch that takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DPKG_TIMEOUT: Duration = Duration::from_secs(120);

/// Shell commands that overlay /usr, /etc and /var with a tmpfs-backed writable layer under
/// `dir` (which must exist); run them inside a private mount namespace only.
fn overlay_setup(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"mount -t tmpfs -o mode=755 ldapbind-deb-test "{d}"
for top in usr etc var; do
    mkdir "{d}/$top.up" "{d}/$top.work"
    mount -t overlay ldapbind-deb-test -o "lowerdir=/$top,upperdir={d}/$top.up,workdir={d}/$top.work" "/$top"
done
"#
    )
}

/// Runs `script` with `sh -eu` in a private mount namespace; returns its output.
fn in_namespace(script: &str) -> String {
    let mut child = Command::new(imapd::UNSHARE)
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-euc", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    // Drain the pipes on threads so a chatty dpkg cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let status = imapd::wait_bounded(&mut child, DPKG_TIMEOUT);
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let text = format!("{out}{err}");
    match status {
        Some(s) if s.success() => text,
        Some(s) => panic!("namespace script failed ({s}):\n{script}\n--- output ---\n{text}"),
        None => panic!("namespace script did not finish within {DPKG_TIMEOUT:?}:\n{script}\n--- output ---\n{text}"),
    }
}

fn build_deb(out_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_cargo_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(has_cargo_deb, "cargo-deb is missing: run scripts/deps.sh (cargo install --locked cargo-deb)");
    let log = out_dir.join("cargo-deb.log");
    let log_file = fs::File::create(&log).expect("create the cargo-deb log");
    let mut child = Command::new(&cargo)
        .args(["deb", "--quiet", "--output"])
        .arg(out_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup"))
        .stderr(log_file)
        .spawn()
        .expect("spawn cargo deb");
    let status = imapd::wait_bounded(&mut child, BUILD_TIMEOUT);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "cargo deb failed ({status:?}):\n{text}");
    let debs: Vec<PathBuf> = fs::read_dir(out_dir)
        .expect("read the output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}\n{text}", out_dir.display());
    debs[0].clone()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the host has of ldapbind: the plugin file and dpkg's idea of the package.
fn host_state() -> (bool, String) {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status} ${Version}", "ldapbind"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    (Path::new(PLUGIN).exists(), status)
}

#[test]
fn the_deb_installs_the_plugin_where_libsasl2_and_cyrus_find_it_and_removes_it() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root: run scripts/test.sh as root");
    let before = host_state();
    let work = tempfile::Builder::new().prefix("ldapbind-deb-").tempdir().expect("temp dir");
    let deb = build_deb(work.path());

    // The package itself.
    let info = run("dpkg-deb", &["--info", deb.to_str().expect("UTF-8 path")]);
    assert!(info.contains("Package: ldapbind"), "{info}");
    let depends = info.lines().find(|l| l.trim_start().starts_with("Depends:")).unwrap_or_default();
    assert!(depends.contains("libsasl2-2"), "{info}");
    let contents = run("dpkg-deb", &["--contents", deb.to_str().expect("UTF-8 path")]);
    for path in [
        PLUGIN,
        "/usr/bin/ldapbind-check",
        "/usr/sbin/ldapbind-authd",
        &format!("{DOCS}/sasl2.conf.example"),
        &format!("{DOCS}/README.md"),
        &format!("{DOCS}/BENCHMARKS.md"),
        UNIT,
        "/usr/share/man/man1/ldapbind-check.1.gz",
        "/usr/share/man/man8/ldapbind-authd.8.gz",
    ] {
        assert!(contents.contains(&format!(".{path}")), "{path} not in the package:\n{contents}");
    }
    // lintian: clean, or each remaining tag overridden (with its reason) in debian/lintian-overrides.
    let lintian = Command::new("lintian")
        .args(["--fail-on", "error,warning,info", "--display-level", ">=info"])
        .arg(&deb)
        .output()
        .expect("run lintian (scripts/deps.sh installs it)");
    let text = String::from_utf8_lossy(&lintian.stdout).into_owned() + &String::from_utf8_lossy(&lintian.stderr);
    // As root (the test's dpkg part needs it) lintian says it would rather not be: not a tag.
    let tags: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.contains("running with root privileges")).collect();
    assert!(lintian.status.success() && tags.is_empty(), "lintian {}:\n{text}", lintian.status);

    // dpkg -i, what libsasl2 sees, dpkg -r: in a namespace of its own.
    let ovl = work.path().join("overlay");
    fs::create_dir(&ovl).expect("create the overlay mount point");
    let d = deb.display();
    let script = format!(
        r#"{setup}
dpkg -i "{d}"
echo "== status"; dpkg-query -W -f='${{db:Status-Status}} ${{Version}}\n' ldapbind
echo "== files"; ls -l {PLUGIN} {DOCS}/sasl2.conf.example {DOCS}/README.md
echo "== symbols"; nm -D --defined-only {PLUGIN}
echo "== pluginviewer"; saslpluginviewer -a
echo "== service"; getent passwd ldapbind | cut -d: -f1,6,7; getent group sasl | cut -d: -f1
ls {UNIT}; man -w ldapbind-authd ldapbind-check
dpkg -r ldapbind
echo "== after removal"; ls {PLUGIN} {DOCS} 2>&1 || true
dpkg-query -W -f='${{db:Status-Status}}\n' ldapbind 2>&1 || true
"#,
        setup = overlay_setup(&ovl)
    );
    let out = in_namespace(&script);
    let section = |name: &str| -> String {
        let start = out.find(&format!("== {name}\n")).unwrap_or_else(|| panic!("no {name} section:\n{out}"));
        let rest = &out[start + name.len() + 4..];
        rest[..rest.find("\n== ").map_or(rest.len(), |i| i + 1)].to_owned()
    };
    assert!(out.contains("Setting up ldapbind ("), "{out}");
    assert!(section("status").starts_with("installed "), "{out}");
    assert!(section("files").lines().all(|l| l.starts_with("-rw-r--r-- 1 root root")), "{out}");
    let symbols = section("symbols");
    for sym in ["sasl_auxprop_plug_init", "sasl_canonuser_init"] {
        assert!(symbols.lines().any(|l| l.ends_with(&format!(" T {sym}"))), "{sym} not exported:\n{symbols}");
    }
    // saslpluginviewer lists auxprop plugins; it has no listing of canonuser plugins (that part
    // is proven below by Cyrus canonicalizing through the installed plugin).
    let viewer = section("pluginviewer");
    let configured = viewer
        .lines()
        .skip_while(|l| !l.starts_with("Installed and properly configured auxprop mechanisms are:"))
        .nth(1)
        .unwrap_or_default();
    assert!(configured.split_whitespace().any(|m| m == "ldapbind"), "{viewer}");
    assert!(viewer.contains("Plugin \"ldapbind\" ,"), "{viewer}");
    // The daemon's user and socket group exist; the unit and man pages are where systemd and
    // man look.
    let service = section("service");
    assert!(service.contains("ldapbind:/nonexistent:/usr/sbin/nologin\nsasl\n"), "{out}");
    assert!(service.contains(&format!("{UNIT}\n")), "{out}");
    assert!(service.contains("/usr/share/man/man8/ldapbind-authd.8.gz"), "{out}");
    assert!(service.contains("/usr/share/man/man1/ldapbind-check.1.gz"), "{out}");
    assert!(out.contains("Removing ldapbind ("), "{out}");
    let after = section("after removal");
    assert!(after.contains("No such file or directory") && !after.contains("\ninstalled"), "{out}");

    // Cyrus IMAP with the installed package: no SASL_PATH, libsasl2's own directory, and
    // ldapbind as canonuser plugin too. The Cyrus user becomes the directory's uid.
    let slapd = Slapd::start();
    let ovl = work.path().join("overlay-imapd");
    fs::create_dir(&ovl).expect("create the overlay mount point");
    let mut opts =
        ImapdOptions::for_slapd(&slapd).set("sasl_canon_user_plugin", "ldapbind").set("sasl_ldapdb_canon_attr", "uid");
    opts.plugins = Plugins::System;
    opts.namespace_setup = Some(format!("{}dpkg -i \"{d}\" >/dev/null\n", overlay_setup(&ovl)));
    let imapd = Imapd::start(opts);
    let john = slapd::JOHNDOE;
    for mech in ["PLAIN", "SCRAM-SHA-256", "login"] {
        let mark = imapd.mark();
        let login = imapd.imtest(Some(mech), USER, PASSWORD);
        assert!(login.ok, "{mech}:\n{}", login.transcript);
        let shown = if mech == "login" { "plaintext" } else { mech };
        imapd.expect_log(mark, &format!("login: localhost [127.0.0.1] {} {shown} User logged in", john.uid));
    }
    assert!(imapd.syslog().iter().any(|l| l.text.contains("ldapbind: ") && l.text.contains(" configured: ")));
    drop(imapd);

    assert_eq!(host_state(), before, "the host's plugin directory and dpkg database are untouched");
}

/// The README is installed into /usr/share/doc/ldapbind/: every relative link in it must point
/// at a file the package installs next to it, and it names no path outside that directory.
#[test]
fn the_installed_readme_links_only_to_files_installed_with_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    // assets = [["src", "usr/share/doc/ldapbind/NAME", "644"], ...]
    let shipped: Vec<&str> =
        manifest.lines().filter_map(|l| l.split("\"usr/share/doc/ldapbind/").nth(1)?.split('"').next()).collect();
    assert!(shipped.contains(&"README.md"), "{shipped:?}");
    for doc in &shipped {
        let text = fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        if !doc.ends_with(".md") {
            continue;
        }
        for target in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            assert!(shipped.contains(&file), "{doc} links to {target}, which the package does not install");
        }
        // Reference-style links: `[name]: target`.
        for line in text.lines().filter(|l| l.starts_with('[') && l.contains("]: ")) {
            let target = line.split("]: ").nth(1).unwrap_or("");
            assert!(target.starts_with("https://") || shipped.contains(&target), "{doc}: {line}");
        }
        assert!(!text.contains("../"), "{doc} names a path outside {DOCS}");
    }
}
