//! Build script: records the version string logged at init. Never links libsasl2.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    // Only a file that exists: cargo reruns the script (and rebuilds the crate) on every build
    // for a missing one, as `.git/HEAD` is in a git worktree (`.git` is a file there) or a
    // source tree without git.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]).filter(|p| std::path::Path::new(p).is_file()) {
        println!("cargo:rerun-if-changed={head}");
    }
    let rev = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LDAPBIND_VERSION={} ({rev})", env!("CARGO_PKG_VERSION"));
}
