//! The man pages are generated from --help (scripts/man.sh, help2man): the committed ones are
//! what the current --help texts give, and every option --help lists is in its page.

use std::path::Path;
use std::process::Command;

const CHECK: &str = env!("CARGO_BIN_EXE_ldapbind-check");
const AUTHD: &str = env!("CARGO_BIN_EXE_ldapbind-authd");

#[test]
fn the_man_pages_are_what_help_says_now() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let bins = Path::new(CHECK).parent().unwrap();
    assert_eq!(bins, Path::new(AUTHD).parent().unwrap());
    let status = Command::new(root.join("scripts/man.sh"))
        .arg(out.path())
        .arg(bins)
        .status()
        .expect("run scripts/man.sh (help2man: scripts/deps.sh installs it)");
    assert!(status.success(), "scripts/man.sh: {status}");
    for (bin, page) in [(CHECK, "ldapbind-check.1"), (AUTHD, "ldapbind-authd.8")] {
        let fresh = std::fs::read_to_string(out.path().join(page)).unwrap();
        let committed = std::fs::read_to_string(root.join("man").join(page)).unwrap();
        assert!(
            fresh == committed,
            "man/{page} is not what --help gives now: run `cargo build --bins && scripts/man.sh man target/debug`"
        );
        // Every option of --help, as the page shows it (roff escapes each `-`).
        let help = String::from_utf8(Command::new(bin).arg("--help").output().unwrap().stdout).unwrap();
        let options: Vec<&str> = help
            .lines()
            .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.split_whitespace().next()))
            .filter(|w| w.starts_with('-'))
            .map(|w| w.trim_end_matches(','))
            .collect();
        assert!(options.len() >= 6, "{page}: options found in --help: {options:?}");
        for opt in options {
            let shown = format!("\\fB{}\\fR", opt.replace('-', "\\-"));
            assert!(fresh.contains(&shown), "{page} lacks {opt}");
        }
    }
}
