//! ldapbind-authd against Debian's saslauthd (issue 14) and the plugin against the fastest client
//! (issue 10), all through real libsasl2 and against throwaway slapds on loopback.
//!
//! Run it with `scripts/bench.sh` (which also runs `benches/logins.rs`), or
//! `cargo bench --bench authd -- [--rounds N] [--secs S] [--rss-logins N] [--quick]`.
//! `BENCHMARKS.md` shows a run and says what the numbers mean.
//!
//! Like `benches/logins.rs`, every libsasl2 measurement runs in a child process (libsasl2 can be
//! initialised once per process): this binary re-executes itself (`__child key=value...`) and
//! reads the child's `RESULT` line. The wire limit is `benches/ldap_loop.c` (libldap), compiled
//! here with `cc`.
//!
//! Part 1, one directory whose passwords nobody may read (`SlapdOptions::hidden_passwords`):
//! 1. slapd with `-d stats`: LDAP operations per login through each daemon and the wire limit;
//! 2. slapd restarted without logging, daemons started afresh: rounds of every configuration
//!    at 1 and at 8 concurrent clients (threads, each with its own `sasl_conn_t` per login), in
//!    an order rotated each round; ratios are taken within a round;
//! 3. ldapbind-authd's VmRSS over `--rss-logins` logins;
//! 4. slapd frozen (SIGSTOP): how long 1 and 8 concurrent logins through ldapbind-authd take.
//!
//! Part 2, the glauth-like directory with readable passwords (what the auxprop plugin needs):
//! 5. the plugin's checkpass against the libldap search loop, alternating processes;
//! 6. the first login of a fresh process (load + init, then connect, bind, search), ldap:// and
//!    ldaps://.

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::sasl::{PluginDir, SASL_OK, Server};
use common::slapd::{self, Slapd, SlapdOptions, TestCa};
use util::{Args, Fields, arg, f, group_cpu, loadavg, machine, median, parse_result, proc_cpu, quantile, say};

const APP: &str = "ldapbind-bench";
const AUTHD: &str = env!("CARGO_BIN_EXE_ldapbind-authd");
const SASLAUTHD: &str = "/usr/sbin/saslauthd";
const USER: slapd::TestUser = slapd::JOHNDOE;
/// ldapbind-authd's `ldapdb_timeout` (seconds): the bound of phase 4 is this plus its margin.
const AUTHD_TIMEOUT: u64 = 1;
const CLIENTS: [usize; 2] = [1, 8];

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

/// libsasl2's options for `how`: `saslauthd` (pwcheck_method saslauthd, `socket=`), `plugin`
/// (auxprop ldapbind on `url=`, with `cacert=` when given) or `ldapdb` (Debian's plugin on
/// `url=`, binding with `mech=` DIGEST-MD5 or EXTERNAL).
fn sasl_opts(args: &Args) -> Vec<(&'static str, String)> {
    let mut opts: Vec<(&str, String)> = vec![("mech_list", "PLAIN".into())];
    match arg(args, "how") {
        "saslauthd" => {
            opts.extend([("pwcheck_method", "saslauthd".into()), ("saslauthd_path", arg(args, "socket").into())]);
        }
        "plugin" => {
            opts.extend([
                ("pwcheck_method", "auxprop".into()),
                ("auxprop_plugin", "ldapbind".into()),
                ("ldapdb_uri", format!("{}/{}", arg(args, "url"), slapd::BASE_DN)),
                ("ldapdb_id", slapd::SERVICE_DN.into()),
                ("ldapdb_pw", slapd::SERVICE_PW.into()),
            ]);
            if let Some(ca) = args.get("cacert") {
                opts.push(("ldapdb_tls_cacert", ca.clone()));
            }
        }
        "ldapdb" => {
            let mech = arg(args, "mech");
            opts.extend([
                ("pwcheck_method", "auxprop".into()),
                ("auxprop_plugin", "ldapdb".into()),
                ("ldapdb_uri", arg(args, "url").into()),
                ("ldapdb_mech", mech.into()),
            ]);
            if mech != "EXTERNAL" {
                opts.extend([("ldapdb_id", slapd::LDAPDB_SASL_ID.into()), ("ldapdb_pw", slapd::SERVICE_PW.into())]);
            }
        }
        h => panic!("unknown how={h}"),
    }
    opts
}

/// The plugin dir for `how` (see [`sasl_opts`]): Debian's mechanisms, plus the
/// `libldapbind.so` named by `so=` (else the one built) for `plugin`, Debian's ldapdb `so=` for
/// `ldapdb`.
fn plugin_dir(args: &Args) -> PluginDir {
    match (arg(args, "how"), args.get("so")) {
        ("plugin", None) => PluginDir::with_ldapbind(),
        ("plugin", Some(so)) => {
            let dir = PluginDir::without_ldapbind();
            dir.add_copy(Path::new(so), "libldapbind.so");
            dir
        }
        ("ldapdb", Some(so)) => {
            let dir = PluginDir::without_ldapbind();
            dir.add_symlink(Path::new(so), "libldapdb.so");
            dir
        }
        _ => PluginDir::without_ldapbind(),
    }
}

fn sasl_setup(args: &Args) -> (PluginDir, Vec<(&'static str, String)>) {
    (plugin_dir(args), sasl_opts(args))
}

fn sasl_init(dir: &PluginDir, opts: &[(&str, String)]) -> Server {
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::init(APP, dir.path(), &opts)
}

/// libsasl2 initialised for `how` (see [`sasl_setup`]).
fn init_sasl(args: &Args) -> (PluginDir, Server) {
    let (dir, opts) = sasl_setup(args);
    let server = sasl_init(&dir, &opts);
    (dir, server)
}

/// One login as a server does it: a new `sasl_conn_t`, `sasl_checkpass`, dispose.
fn login(server: &Server) -> Result<(), String> {
    let conn = server.new_conn("imap");
    let rc = conn.checkpass(USER.uid.as_bytes(), USER.pw().as_bytes());
    if rc == SASL_OK { Ok(()) } else { Err(format!("checkpass: {rc} ({})", conn.errdetail())) }
}

/// The test host records getopt queries and log lines for assertions; a benchmark drops them.
fn forget_host_records() {
    Server::clear_getopt_queries();
    Server::clear_logs();
}

fn child(raw: &[String]) {
    let args: Args = util::parse_args(raw);
    let result = match arg(&args, "mode") {
        "run" => child_run(&args),
        "ops" => child_ops(&args),
        "first" => child_first(&args),
        "frozen" => child_frozen(&args),
        "load" => {
            let opts = sasl_opts(&args);
            let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
            util::load_probe(APP, Path::new(arg(&args, "dir")), &opts, &args);
            Ok(())
        }
        m => panic!("unknown child mode {m}"),
    };
    if let Err(e) = result {
        eprintln!("login failed: {e}");
        for (level, line) in Server::logs().iter().rev().take(10) {
            eprintln!("  [sasl {level}] {line}");
        }
        std::process::exit(2);
    }
}

/// `threads` clients logging in concurrently: for `secs` after `warmup` (or, with `n=`, `n`
/// logins in all); logins/s (each thread's own rate, summed) and latency over all logins.
fn child_run(args: &Args) -> Result<(), String> {
    let threads: usize = arg(args, "threads").parse().expect("threads");
    let secs: f64 = args.get("secs").map_or(0.0, |s| s.parse().expect("secs"));
    let warmup = Duration::from_secs_f64(args.get("warmup").map_or(0.0, |s| s.parse().expect("warmup")));
    let total: usize = args.get("n").map_or(0, |s| s.parse().expect("n"));
    let (_dir, server) = init_sasl(args);
    let left = AtomicUsize::new(total);
    let warm_logins = AtomicUsize::new(0);
    let per_thread: Vec<Result<(Vec<u64>, Duration), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (server, left, warm_logins) = (&server, &left, &warm_logins);
                s.spawn(move || -> Result<(Vec<u64>, Duration), String> {
                    let end = Instant::now() + warmup;
                    while Instant::now() < end {
                        login(server)?;
                        warm_logins.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut samples = Vec::with_capacity(100_000);
                    let start = Instant::now();
                    loop {
                        if total > 0
                            && left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1)).is_err()
                        {
                            break;
                        }
                        let t = Instant::now();
                        login(server)?;
                        let now = Instant::now();
                        samples.push((now - t).as_nanos() as u64);
                        if total == 0 && now - start >= Duration::from_secs_f64(secs) {
                            break;
                        }
                        if samples.len() % 1024 == 0 {
                            forget_host_records();
                        }
                    }
                    Ok((samples, start.elapsed()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let mut all = Vec::new();
    let mut rate = 0.0;
    for r in per_thread {
        let (samples, span) = r?;
        rate += samples.len() as f64 / span.as_secs_f64();
        all.extend(samples);
    }
    let n = all.len();
    all.sort_unstable();
    let pct = |p: f64| all[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    let mean = all.iter().sum::<u64>() as f64 / n as f64 / 1000.0;
    // n_all: with the warm-up, for CPU per login measured around the whole process.
    let n_all = n + warm_logins.load(Ordering::Relaxed);
    say(&format!("RESULT n={n} n_all={n_all} rate={rate:.1} mean={mean:.2} p50={:.2} p99={:.2}", pct(0.50), pct(0.99)));
    Ok(())
}

/// Warm up, say READY, wait for the parent to mark slapd's log, do `n` logins, say DONE, wait.
fn child_ops(args: &Args) -> Result<(), String> {
    let n: usize = arg(args, "n").parse().expect("n");
    let (_dir, server) = init_sasl(args);
    for _ in 0..20 {
        login(&server)?;
    }
    say("READY");
    util::wait_for_parent();
    for _ in 0..n {
        login(&server)?;
        forget_host_records();
    }
    say("DONE");
    util::wait_for_parent();
    Ok(())
}

/// What a new server process pays for its first login: libsasl2's init with the plugin
/// (dlopen, init functions), then the first checkpass (resolve, connect, TLS, service bind,
/// search), then a second one for comparison.
fn child_first(args: &Args) -> Result<(), String> {
    let (dir, opts) = sasl_setup(args);
    let t0 = Instant::now();
    let server = sasl_init(&dir, &opts);
    let t1 = Instant::now();
    login(&server)?;
    let t2 = Instant::now();
    login(&server)?;
    let t3 = Instant::now();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    say(&format!("RESULT init_us={:.1} first_us={:.1} second_us={:.1}", us(t1 - t0), us(t2 - t1), us(t3 - t2)));
    Ok(())
}

/// `threads` concurrent logins while the directory is frozen: each must fail, and how long each
/// took.
fn child_frozen(args: &Args) -> Result<(), String> {
    let threads: usize = arg(args, "threads").parse().expect("threads");
    let (_dir, server) = init_sasl(args);
    let took: Vec<(Duration, bool)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let server = &server;
                s.spawn(move || {
                    let t = Instant::now();
                    let ok = login(server).is_ok();
                    (t.elapsed(), ok)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let max = took.iter().map(|t| t.0).max().unwrap_or_default();
    let succeeded = took.iter().filter(|t| t.1).count();
    say(&format!("RESULT max_ms={:.0} succeeded={succeeded} n={threads}", max.as_secs_f64() * 1e3));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent side: the daemons
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Daemon {
    Authd,
    /// `--baseline DIR`'s ldapbind-authd.
    AuthdBaseline,
    Saslauthd,
    SaslauthdCache,
}

/// `--baseline DIR` (see [`util::baseline_dir`]), once parsed.
static BASELINE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

impl Daemon {
    const ALL: [Daemon; 4] = [Daemon::Authd, Daemon::AuthdBaseline, Daemon::Saslauthd, Daemon::SaslauthdCache];

    /// Those this run measures: the baseline daemon only with `--baseline`.
    fn measured() -> Vec<Daemon> {
        Daemon::ALL.into_iter().filter(|d| *d != Daemon::AuthdBaseline || BASELINE.get().is_some()).collect()
    }

    fn label(self) -> &'static str {
        match self {
            Daemon::Authd => "ldapbind-authd",
            Daemon::AuthdBaseline => "ldapbind-authd (baseline)",
            Daemon::Saslauthd => "saslauthd -a ldap",
            Daemon::SaslauthdCache => "saslauthd -a ldap -c (cache)",
        }
    }

    /// The ldapbind-authd executable of this configuration.
    fn authd_exe(self) -> Option<PathBuf> {
        match self {
            Daemon::Authd => Some(PathBuf::from(AUTHD)),
            Daemon::AuthdBaseline => Some(BASELINE.get().expect("--baseline").join("ldapbind-authd")),
            Daemon::Saslauthd | Daemon::SaslauthdCache => None,
        }
    }
}

/// A daemon this benchmark started, in its own process group (saslauthd's workers are its
/// children), with its socket in a temp dir; stopped by its group id when dropped.
struct Running {
    dir: tempfile::TempDir,
    child: Child,
}

impl Running {
    fn start(which: Daemon, slapd: &Slapd) -> Running {
        Running::start_under(which, slapd, &[], AUTHD_TIMEOUT)
    }

    /// [`Running::start`] with ldapbind-authd run by `wrapper` (e.g. valgrind) and `timeout` as
    /// its `ldapdb_timeout`.
    fn start_under(which: Daemon, slapd: &Slapd, wrapper: &[String], timeout: u64) -> Running {
        let dir = tempfile::Builder::new().prefix("ldapbind-bench-daemon-").tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("log")).expect("daemon log");
        let mut cmd = match which {
            Daemon::Authd | Daemon::AuthdBaseline => {
                let conf = dir.path().join("app.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "ldapdb_uri: {}/{}\nldapdb_id: {}\nldapdb_pw: {}\nldapdb_timeout: {timeout}\n",
                        slapd.url(),
                        slapd::BASE_DN,
                        slapd::SERVICE_DN,
                        slapd::SERVICE_PW
                    ),
                )
                .expect("write app.conf");
                let exe = which.authd_exe().expect("an ldapbind-authd");
                let mut c = match wrapper.split_first() {
                    Some((first, rest)) => {
                        let mut c = Command::new(first);
                        c.args(rest).arg(exe);
                        c
                    }
                    None => Command::new(exe),
                };
                // Started as root it drops to `nobody`; its socket directory (`run`) is its own.
                // Under a wrapper (valgrind), the wrapper starts as `nobody` instead, so that what
                // it writes at exit can be written.
                c.arg("--sasl-conf").arg(&conf).arg("--socket").arg(dir.path().join("run/mux"));
                if wrapper.is_empty() {
                    c.args(["--user", "nobody"]);
                } else {
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
                }
                c.arg("-d");
                c
            }
            Daemon::Saslauthd | Daemon::SaslauthdCache => {
                let conf = dir.path().join("saslauthd.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "ldap_servers: {}/\nldap_search_base: {}\nldap_filter: (|(uid=%u)(mail=%u))\n\
                         ldap_bind_dn: {}\nldap_password: {}\nldap_auth_method: bind\nldap_timeout: 5\n",
                        slapd.url(),
                        slapd::BASE_DN,
                        slapd::SERVICE_DN,
                        slapd::SERVICE_PW
                    ),
                )
                .expect("write saslauthd.conf");
                let mut c = Command::new(SASLAUTHD);
                // -n 8: a worker process per concurrent client of the largest run.
                std::fs::create_dir(dir.path().join("run")).expect("saslauthd's run dir");
                c.args(["-a", "ldap", "-d", "-n", "8", "-O"]).arg(&conf).arg("-m").arg(dir.path().join("run"));
                if which == Daemon::SaslauthdCache {
                    c.arg("-c");
                }
                c
            }
        };
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({}): {e}", which.label(), "apt-get install sasl2-bin"));
        let r = Running { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.socket().exists() {
            assert!(Instant::now() < deadline, "{} did not create its socket:\n{}", which.label(), r.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        // saslauthd creates the socket before its workers are forked.
        std::thread::sleep(Duration::from_millis(200));
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/mux")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group this benchmark created for its own daemon.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        // Long enough for a daemon under valgrind to write its profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above; whatever of the group did not stop by now.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Parent side: running children
// ---------------------------------------------------------------------------------------------

fn child_command(extra: &[String]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.arg("__child")
        .args(extra)
        .env("SASL_HARNESS_QUIET", "1")
        .env("LDAPNOINIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn output_result(what: &str, out: std::process::Output) -> Result<Fields, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find(|l| l.starts_with("RESULT ")) {
        Some(line) if out.status.success() => Ok(parse_result(line)),
        _ => Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())),
    }
}

fn run_child(extra: &[String]) -> Result<Fields, String> {
    let out = child_command(extra).output().map_err(|e| format!("spawn child: {e}"))?;
    output_result(&format!("child {extra:?}"), out)
}

/// The compiled `benches/ldap_loop.c`.
struct Loop(PathBuf);

impl Loop {
    fn build(scratch: &Path) -> Loop {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ldap_loop.c");
        let exe = scratch.join("ldap_loop");
        let out = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&exe)
            .arg(&src)
            .args(["-lldap", "-lpthread"])
            .output()
            .expect("run cc (apt-get install gcc)");
        assert!(
            out.status.success(),
            "compiling {} failed (scripts/deps.sh installs libldap-dev):\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(exe)
    }

    /// `searchbind`: search + user bind on two kept connections; `search`: the search only.
    /// `secs == 0`: `warmup` iterations per thread.
    fn run(&self, url: &str, mode: &str, threads: usize, secs: f64, warmup: f64) -> Result<Fields, String> {
        let filter = ldapbind::filter::DEFAULT_FILTER.replace("%u", USER.uid);
        let out = Command::new(&self.0)
            .args([url, slapd::SERVICE_DN, slapd::SERVICE_PW, slapd::BASE_DN, &filter, mode])
            .args([threads.to_string(), secs.to_string(), warmup.to_string(), USER.pw().to_owned()])
            .env("LDAPNOINIT", "1")
            .output()
            .map_err(|e| format!("run ldap_loop: {e}"))?;
        output_result(&format!("ldap_loop {mode}"), out)
    }
}

/// Operations per login: `n` logins through `socket` after 20 of warm-up.
fn count_ops(slapd: &Slapd, socket: &Path, n: usize) -> Result<slapd::OpCounts, String> {
    let extra =
        ["mode=ops".to_owned(), "how=saslauthd".into(), format!("socket={}", socket.display()), format!("n={n}")];
    let mut child = child_command(&extra).stdin(Stdio::piped()).spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut stdin = child.stdin.take().expect("child stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let mut expect = |word: &str| -> bool { matches!(lines.next(), Some(Ok(l)) if l == word) };
    let counted = if expect("READY") {
        let mark = slapd.mark();
        let _ = writeln!(stdin, "go");
        // slapd writes its log asynchronously: let the last operations land.
        let done = expect("DONE");
        std::thread::sleep(Duration::from_millis(300));
        done.then(|| slapd.ops_since(&mark))
    } else {
        None
    };
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    match counted {
        Some(c) if out.status.success() => Ok(c),
        _ => Err(format!("ops child failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())),
    }
}

fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Opts {
    rounds: usize,
    secs: f64,
    warmup: f64,
    ops_logins: usize,
    rss_logins: usize,
    first_runs: usize,
    load_triples: usize,
    /// `--profile-authd N`: only profile ldapbind-authd over N logins with callgrind.
    profile_authd: Option<usize>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        rounds: 3,
        secs: 1.5,
        warmup: 0.3,
        ops_logins: 100,
        rss_logins: 100_000,
        first_runs: 15,
        load_triples: 40,
        profile_authd: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> String { it.next().unwrap_or_else(|| panic!("{name} needs a value")).clone() };
        match a.as_str() {
            "--bench" => {}
            "--rounds" => o.rounds = val(a).parse().expect("--rounds N"),
            "--secs" => o.secs = val(a).parse().expect("--secs S"),
            "--rss-logins" => o.rss_logins = val(a).parse().expect("--rss-logins N"),
            "--first-runs" => o.first_runs = val(a).parse().expect("--first-runs N"),
            "--warmup" => o.warmup = val(a).parse().expect("--warmup S"),
            "--ops-logins" => o.ops_logins = val(a).parse().expect("--ops-logins N"),
            "--load-triples" => o.load_triples = val(a).parse().expect("--load-triples N"),
            "--baseline" => {
                let dir = util::baseline_dir(&val(a));
                BASELINE.set(dir).expect("one --baseline");
            }
            "--profile-authd" => o.profile_authd = Some(val(a).parse().expect("--profile-authd N")),
            "--quick" => {
                o.rounds = 1;
                o.secs = 0.5;
                o.warmup = 0.1;
                o.ops_logins = 20;
                o.rss_logins = 5_000;
                o.first_runs = 3;
                o.load_triples = 6;
            }
            "-h" | "--help" => {
                println!(
                    "authd [--rounds N (3)] [--secs S per configuration and round (1.5)] [--warmup S (0.3)] \
                     [--ops-logins N (100)] [--rss-logins N (100000)] [--first-runs N (15)] \
                     [--load-triples N (40)] [--quick] [--baseline DIR (libldapbind.so and ldapbind-authd \
                     of an earlier build, measured alongside)] [--profile-authd N (only: callgrind on \
                     ldapbind-authd over N logins)]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    o
}

/// The plugin as `cargo build --release --lib` leaves it, as it is installed (scripts/bench.sh
/// builds it first). Not the copy `cargo bench` makes next to this binary: that one is built with
/// the dev-dependencies' features unified in (ldap3's synchronous client and its tokio runtime).
fn installed_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let so = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<bench>").join("libldapbind.so");
    assert!(so.is_file(), "{} missing: run `cargo build --release --lib` first (scripts/bench.sh does)", so.display());
    so
}

/// `--profile-authd N`: ldapbind-authd under `valgrind --tool=callgrind` (or the command in
/// `$LDAPBIND_BENCH_AUTHD_WRAPPER`, e.g. `strace -f -c -o FILE`; `{out}` in it is replaced by
/// the output file's path), its `ldapdb_timeout` raised to 30 s for valgrind's pace, against the
/// hashed directory: 20 logins of warm-up then `n` at 1 client through real libsasl2; the
/// profile is written when the daemon stops.
fn profile_authd(n: usize) {
    let slapd = Slapd::start_with(SlapdOptions { hidden_passwords: true, stats_log: false, ..SlapdOptions::default() });
    let out = std::env::temp_dir().join(format!("profile.ldapbind-authd.{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let tool = std::env::var("LDAPBIND_BENCH_AUTHD_WRAPPER")
        .unwrap_or_else(|_| "valgrind --tool=callgrind --callgrind-out-file={out}".into());
    // The wrapper starts as `nobody` (what the daemon would drop to) so that it can write its file.
    let wrapper: Vec<String> = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        .into_iter()
        .map(String::from)
        .chain(tool.split_whitespace().map(|w| w.replace("{out}", &out.display().to_string())))
        .collect();
    let r = Running::start_under(Daemon::Authd, &slapd, &wrapper, 30);
    let base = ["how=saslauthd".to_owned(), format!("socket={}", r.socket().display()), "threads=1".into()];
    let run = |n: usize| run_child(&[&base[..], &["mode=run".into(), format!("n={n}")]].concat());
    let cpu0 = group_cpu(r.pid());
    let (warm, measured) = (run(20), run(n));
    let cpu = group_cpu(r.pid()).saturating_sub(cpu0);
    drop(r);
    match (warm, measured) {
        (Ok(_), Ok(m)) => println!(
            "{n} logins ({:.0}/s under valgrind, {:.0} µs of daemon CPU per login); profile: {}\n\
             callgrind_annotate --inclusive=yes {} | less",
            f(&m, "rate"),
            cpu.as_secs_f64() * 1e6 / (n + 20) as f64,
            out.display(),
            out.display()
        ),
        (w, m) => println!("FAILED {:?} {:?}", w.err(), m.err()),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("__child") {
        child(&argv[2..]);
        return;
    }
    let o = parse_opts();
    if let Some(n) = o.profile_authd {
        profile_authd(n);
        return;
    }
    let t_start = Instant::now();
    println!("# ldapbind-authd and wire-limit benchmark");
    println!("machine: {}; load average at start {}", machine(), loadavg());
    let scratch = tempfile::Builder::new().prefix("ldapbind-bench-authd-").tempdir().expect("temp dir");
    let ldap_loop = Loop::build(scratch.path());
    let mut targets: Vec<(String, bool)> = Vec::new();

    // ---- Part 1: the hashed directory ----
    let mut slapd = Slapd::start_with(SlapdOptions { hidden_passwords: true, ..SlapdOptions::default() });
    let url = slapd.url();

    println!("\n## phase 1: LDAP operations per login (slapd -d stats, {} logins after 20)", o.ops_logins);
    let mut ops_ok = false;
    {
        for d in Daemon::measured() {
            let r = Running::start(d, &slapd);
            match count_ops(&slapd, &r.socket(), o.ops_logins) {
                Ok(c) => {
                    let per = |x: usize| x as f64 / o.ops_logins as f64;
                    println!(
                        "{:<30}: {:.2} searches, {:.2} binds, {:.2} other, {:.2} connections per login",
                        d.label(),
                        per(c.searches),
                        per(c.binds),
                        per(c.other_ops),
                        per(c.connections)
                    );
                    if d == Daemon::Authd {
                        ops_ok = c.searches == o.ops_logins && c.binds == o.ops_logins && c.other_ops == 0;
                    }
                }
                Err(e) => println!("FAILED {}: {e}\n{}", d.label(), r.log()),
            }
        }
        let mark = slapd.mark();
        match ldap_loop.run(&url, "searchbind", 1, 0.0, o.ops_logins as f64) {
            Ok(_) => {
                std::thread::sleep(Duration::from_millis(300));
                let c = slapd.ops_since(&mark);
                // Less its set-up: 2 connections, each bound as the service once.
                let per = |x: usize, setup: usize| (x - setup.min(x)) as f64 / o.ops_logins as f64;
                println!(
                    "{:<30}: {:.2} searches, {:.2} binds, {:.2} other per login (+ 2 connections and 2 service binds once)",
                    "wire limit (libldap)",
                    per(c.searches, 0),
                    per(c.binds, 2),
                    per(c.other_ops, 0)
                );
            }
            Err(e) => println!("FAILED {e}"),
        }
    }
    targets.push(("ldapbind-authd: 1 search and 1 bind per login".into(), ops_ok));

    slapd.set_stats_log(false);
    slapd.restart();
    let daemons: BTreeMap<Daemon, Running> =
        Daemon::measured().into_iter().map(|d| (d, Running::start(d, &slapd))).collect();

    println!(
        "\n## phase 2: throughput (slapd -d 0), {} rounds x {} s per configuration; load average now {}",
        o.rounds,
        o.secs,
        loadavg()
    );
    // (configuration, clients) -> RESULT fields per round; None = the wire limit.
    type Key = (Option<Daemon>, usize);
    let mut runs: BTreeMap<Key, Vec<Fields>> = BTreeMap::new();
    let mut per_round: Vec<BTreeMap<Key, f64>> = Vec::new();
    let configs: Vec<Option<Daemon>> = Daemon::measured().into_iter().map(Some).chain([None]).collect();
    for round in 0..o.rounds {
        let mut rates = BTreeMap::new();
        let mut line = format!("round {}:", round + 1);
        for clients in CLIENTS {
            let mut order = configs.clone();
            order.rotate_left(round % configs.len());
            for c in order {
                let (daemon0, slapd0) = (c.map(|d| group_cpu(daemons[&d].pid())), proc_cpu(slapd.pid()));
                let r = match c {
                    Some(d) => run_child(&[
                        "mode=run".into(),
                        "how=saslauthd".into(),
                        format!("socket={}", daemons[&d].socket().display()),
                        format!("threads={clients}"),
                        format!("secs={}", o.secs),
                        format!("warmup={}", o.warmup),
                    ]),
                    None => ldap_loop.run(&url, "searchbind", clients, o.secs, o.warmup),
                };
                let (daemon1, slapd1) = (c.map(|d| group_cpu(daemons[&d].pid())), proc_cpu(slapd.pid()));
                match r {
                    Ok(mut r) => {
                        // The wire limit reports no warm-up count: it ran `warmup` more at its rate.
                        let n_all = r.get("n_all").map_or(f(&r, "n") + f(&r, "rate") * o.warmup, |_| f(&r, "n_all"));
                        let per = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6 / n_all);
                        if let (Some(a), Some(b)) = (daemon0, daemon1) {
                            r.insert("daemon_cpu_us".into(), per(b.saturating_sub(a)));
                        }
                        r.insert("slapd_cpu_us".into(), per(slapd1.saturating_sub(slapd0)));
                        let _ = write!(line, " {}x{clients}={:.0}", c.map_or("wire", Daemon::label), f(&r, "rate"));
                        rates.insert((c, clients), f(&r, "rate"));
                        runs.entry((c, clients)).or_default().push(r);
                    }
                    Err(e) => println!("FAILED {e}"),
                }
            }
        }
        println!("{line}");
        per_round.push(rates);
    }

    println!("\n## phase 3: ldapbind-authd's VmRSS over {} logins (8 clients)", o.rss_logins);
    let step = (o.rss_logins / 10).max(1);
    let authds = [Daemon::Authd, Daemon::AuthdBaseline].into_iter().filter(|d| daemons.contains_key(d));
    for d in authds.collect::<Vec<_>>() {
        let authd = &daemons[&d];
        let args = ["how=saslauthd".to_owned(), format!("socket={}", authd.socket().display()), "threads=8".into()];
        let run_n = |n: usize| run_child(&[&args[..], &["mode=run".into(), format!("n={n}")]].concat());
        let mut rss = Vec::new();
        let rss_start = Instant::now();
        match run_n(2_000) {
            Ok(_) => {
                rss.push(vm_rss_kb(authd.pid()));
                for _ in 0..10 {
                    if let Err(e) = run_n(step) {
                        println!("FAILED {e}");
                        break;
                    }
                    rss.push(vm_rss_kb(authd.pid()));
                }
            }
            Err(e) => println!("FAILED {e}"),
        }
        let rss_list: Vec<String> = rss.iter().map(u64::to_string).collect();
        println!(
            "{}: VmRSS kB after 2,000 warm-up logins, then every {step}: {} ({:.0} s)",
            d.label(),
            rss_list.join(","),
            rss_start.elapsed().as_secs_f64()
        );
        if let (Some(&first), Some(&last)) = (rss.first(), rss.last()) {
            let mid = rss[rss.len() / 2];
            let flat = rss.len() == 11 && last.saturating_sub(first) <= 512 && last.saturating_sub(mid) <= 128;
            let what = format!(
                "{}'s RSS flat over {} logins: {first} -> {last} kB ({:+} kB over the second half)",
                d.label(),
                o.rss_logins,
                last as i64 - mid as i64
            );
            if d == Daemon::Authd {
                targets.push((what, flat));
            } else {
                println!("{what}");
            }
        }
    }
    let authd = &daemons[&Daemon::Authd];
    let base_args = ["how=saslauthd".to_owned(), format!("socket={}", authd.socket().display())];

    println!("\n## phase 4: slapd frozen (SIGSTOP), logins through ldapbind-authd (ldapdb_timeout: {AUTHD_TIMEOUT})");
    let bound_ms = (AUTHD_TIMEOUT * 1000 + 300) as f64;
    let mut frozen_ok = true;
    slapd.freeze();
    for clients in CLIENTS {
        let r = run_child(&[&base_args[..], &["mode=frozen".into(), format!("threads={clients}")]].concat());
        match r {
            Ok(r) => {
                println!(
                    "{clients} client(s): slowest answer {:.0} ms (bound {bound_ms:.0} ms), {} of {clients} succeeded",
                    f(&r, "max_ms"),
                    f(&r, "succeeded")
                );
                // Scheduling slack on a loaded 2-core machine: 200 ms.
                frozen_ok &= f(&r, "max_ms") <= bound_ms + 200.0 && f(&r, "succeeded") == 0.0;
            }
            Err(e) => {
                println!("FAILED {e}");
                frozen_ok = false;
            }
        }
    }
    slapd.thaw();
    targets.push((
        format!("answers within the bound ({bound_ms:.0} ms + 200 ms slack) with the directory frozen"),
        frozen_ok,
    ));
    let daemons_run: Vec<Daemon> = daemons.keys().copied().collect();
    drop(daemons);
    drop(slapd);

    // ---- Part 2: the plugin against the fastest client ----
    let ca = TestCa::new("ldapbind bench CA");
    // ldapdb_compat: Debian's ldapdb's first login (DIGEST-MD5 over ldap://, EXTERNAL over ldapi://).
    let slapd = Slapd::start_with(SlapdOptions {
        stats_log: false,
        tls: Some(ca.server(&["127.0.0.1", "localhost"])),
        ldapdb_compat: true,
        ..SlapdOptions::default()
    });
    // The plugin builds of this run: (label, library).
    let builds: Vec<(&str, PathBuf)> = [("ldapbind", installed_plugin())]
        .into_iter()
        .chain(BASELINE.get().map(|d| ("ldapbind (baseline)", d.join("libldapbind.so"))))
        .collect();
    let so_arg = |i: usize| format!("so={}", builds[i].1.display());
    println!(
        "\n## phase 5: plugin checkpass against the libldap search loop, one process each in turn, {} rounds",
        2 * o.rounds
    );
    // Per round, each plugin build and the libldap loop (None), in an order rotated each round.
    let sides: Vec<Option<usize>> = (0..builds.len()).map(Some).chain([None]).collect();
    let mut side_runs: BTreeMap<Option<usize>, Vec<Fields>> = BTreeMap::new();
    let mut round_rates: Vec<BTreeMap<Option<usize>, f64>> = Vec::new();
    for round in 0..2 * o.rounds {
        let mut order = sides.clone();
        order.rotate_left(round % sides.len());
        let mut rates = BTreeMap::new();
        let mut line = format!("round {}:", round + 1);
        for side in order {
            let r = match side {
                Some(i) => {
                    let mut extra = vec![
                        "mode=run".to_owned(),
                        "how=plugin".into(),
                        format!("url={}", slapd.url()),
                        "threads=1".into(),
                        format!("secs={}", o.secs),
                        format!("warmup={}", o.warmup),
                    ];
                    extra.push(so_arg(i));
                    run_child(&extra)
                }
                None => ldap_loop.run(&slapd.url(), "search", 1, o.secs, o.warmup),
            };
            match r {
                Ok(r) => {
                    let _ = write!(line, " {}={:.0}/s", side.map_or("libldap", |i| builds[i].0), f(&r, "rate"));
                    rates.insert(side, f(&r, "rate"));
                    side_runs.entry(side).or_default().push(r);
                }
                Err(e) => println!("FAILED {e}"),
            }
        }
        println!("{line}");
        round_rates.push(rates);
    }

    println!("\n## phase 6: first login of a fresh process, {} processes per configuration", o.first_runs);
    let ldapdb = util::ldapdb_plugin();
    let ldapi = slapd.ldapi_url().expect("ldapdb_compat gives an ldapi:// URL");
    let cacert = format!("cacert={}", ca.cert_path().display());
    // (configuration, URL scheme, child arguments)
    let mut variants: Vec<(String, &str, Vec<String>)> = Vec::new();
    for (i, (label, _)) in builds.iter().enumerate() {
        for (scheme, url, extra) in
            [("ldap://", slapd.url(), None), ("ldaps://", slapd.ldaps_url(), Some(cacert.clone()))]
        {
            let mut a = vec!["how=plugin".to_owned(), format!("url={url}"), so_arg(i)];
            a.extend(extra);
            variants.push(((*label).to_owned(), scheme, a));
        }
    }
    match &ldapdb {
        Some(so) => {
            for (label, scheme, mech, url) in [
                ("ldapdb, DIGEST-MD5 bind", "ldap://", "DIGEST-MD5", slapd.url()),
                ("ldapdb, EXTERNAL", "ldapi://", "EXTERNAL", ldapi.clone()),
            ] {
                let a = vec![
                    "how=ldapdb".to_owned(),
                    format!("mech={mech}"),
                    format!("url={url}"),
                    format!("so={}", so.display()),
                ];
                variants.push((label.to_owned(), scheme, a));
            }
        }
        None => println!(
            "NOTE: no libldapdb.so (scripts/bench.sh fetches it, or set {}): ldapdb rows skipped",
            util::LDAPDB_ENV
        ),
    }
    let mut first: Vec<Vec<Fields>> = vec![Vec::new(); variants.len()];
    for i in 0..o.first_runs {
        for k in 0..variants.len() {
            let v = (i + k) % variants.len();
            match run_child(&[&["mode=first".to_owned()][..], &variants[v].2].concat()) {
                Ok(r) => first[v].push(r),
                Err(e) => println!("FAILED {e}"),
            }
        }
    }

    println!(
        "\n## phase 7: load cost, {} sets of fresh processes (libsasl2 init with Debian's mechanisms)",
        o.load_triples
    );
    // Slots: without ldapbind, then per build: with it, with it dlopen-ed beforehand.
    let none_dir = PluginDir::without_ldapbind();
    let build_dirs: Vec<PluginDir> = builds
        .iter()
        .map(|(_, so)| {
            let d = PluginDir::without_ldapbind();
            d.add_copy(so, "libldapbind.so");
            d
        })
        .collect();
    let slots: Vec<(&Path, bool)> = [(none_dir.path(), false)]
        .into_iter()
        .chain(build_dirs.iter().flat_map(|d| [(d.path(), false), (d.path(), true)]))
        .collect();
    // Per set: (CPU µs, minor faults) per slot.
    let mut load_sets: Vec<Vec<(f64, f64)>> = Vec::new();
    for i in 0..o.load_triples {
        let mut set = vec![(f64::NAN, f64::NAN); slots.len()];
        for k in 0..slots.len() {
            let slot = (i + k) % slots.len();
            let (dir, preload) = slots[slot];
            let extra = [
                "mode=load".to_owned(),
                "how=plugin".into(),
                format!("url={}", slapd.url()),
                format!("dir={}", dir.display()),
                format!("preload={}", u8::from(preload)),
            ];
            match run_child(&extra) {
                Ok(r) => set[slot] = (f(&r, "cpu_us"), f(&r, "minflt")),
                Err(e) => println!("FAILED {e}"),
            }
        }
        load_sets.push(set);
    }
    drop(slapd);

    // ---- Report ----
    let med = |v: &[Fields], k: &str| median(v.iter().map(|r| f(r, k)).collect());
    println!("\n## results: checkpass through libsasl2 with pwcheck_method: saslauthd (median over rounds)");
    println!(
        "| configuration | clients | logins/s | mean µs | p50 µs | p99 µs | daemon CPU µs/login | slapd CPU µs/login |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for clients in CLIENTS {
        for c in &configs {
            let v = runs.get(&(*c, clients)).map_or(&[][..], Vec::as_slice);
            println!(
                "| {} | {clients} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
                c.map_or("wire limit: libldap search + bind, 2 kept conns", Daemon::label),
                med(v, "rate"),
                med(v, "mean"),
                med(v, "p50"),
                med(v, "p99"),
                if c.is_some() { format!("{:.1}", med(v, "daemon_cpu_us")) } else { "–".into() },
                med(v, "slapd_cpu_us")
            );
        }
    }
    let ratio = |a: Key, b: Key| {
        let v: Vec<f64> = per_round.iter().filter_map(|r| Some(r.get(&a)? / r.get(&b)?)).collect();
        (median(v.clone()), quantile(v.clone(), 0.0), quantile(v, 1.0))
    };
    println!("\nratios of logins/s within a round, median [min..max]:");
    for clients in CLIENTS {
        for d in [Daemon::Authd, Daemon::AuthdBaseline].into_iter().filter(|d| daemons_run.contains(d)) {
            let a = (Some(d), clients);
            let mut against = vec![
                ((Some(Daemon::Saslauthd), clients), "saslauthd without cache"),
                ((Some(Daemon::SaslauthdCache), clients), "saslauthd with cache"),
                ((None, clients), "wire limit"),
            ];
            if d == Daemon::Authd && daemons_run.contains(&Daemon::AuthdBaseline) {
                against.push(((Some(Daemon::AuthdBaseline), clients), "ldapbind-authd (baseline)"));
            }
            for (b, what) in against {
                let (r, lo, hi) = ratio(a, b);
                println!("  {} / {what:<25} at {clients} client(s): {r:.2} [{lo:.2}..{hi:.2}]", d.label());
                if d == Daemon::Authd && b.0 == Some(Daemon::Saslauthd) {
                    targets.push((
                        format!("ldapbind-authd >= 2x saslauthd without cache at {clients} client(s): {r:.2}x"),
                        r >= 2.0,
                    ));
                }
            }
        }
    }

    println!("\n## plugin checkpass against the libldap search loop (1 client, kept connection; issue 10)");
    let side_name = |side: Option<usize>| side.map_or("libldap search loop (C)", |i| builds[i].0);
    for side in &sides {
        let v = side_runs.get(side).map_or(&[][..], Vec::as_slice);
        println!(
            "{:<24} {:.0}/s (mean {:.1} µs, p99 {:.1} µs; median over {} rounds)",
            side_name(*side),
            med(v, "rate"),
            med(v, "mean"),
            med(v, "p99"),
            v.len()
        );
    }
    let side_ratio = |a: Option<usize>, b: Option<usize>| {
        let v: Vec<f64> = round_rates.iter().filter_map(|r| Some(r.get(&a)? / r.get(&b)?)).collect();
        (median(v.clone()), quantile(v.clone(), 0.0), quantile(v.clone(), 1.0), v.len())
    };
    let mut pairs: Vec<(Option<usize>, Option<usize>)> = (0..builds.len()).map(|i| (Some(i), None)).collect();
    if builds.len() > 1 {
        pairs.push((Some(0), Some(1)));
    }
    for (a, b) in pairs {
        let (r, lo, hi, n) = side_ratio(a, b);
        println!(
            "ratio {} / {}, within a round: median {r:.2} [{lo:.2}..{hi:.2}] over {n} rounds",
            side_name(a),
            side_name(b)
        );
        if a == Some(0) && b.is_none() {
            targets.push((format!("ldapbind checkpass >= 0.8x the libldap search loop (issue 10): {r:.2}x"), r >= 0.8));
        }
    }

    println!("\n## first login of a fresh process (median [min..max] over processes, µs of wall time)");
    for ((label, scheme, _), v) in variants.iter().zip(&first) {
        let show = |k: &str| {
            let x: Vec<f64> = v.iter().map(|r| f(r, k)).collect();
            format!("{:.0} [{:.0}..{:.0}]", median(x.clone()), quantile(x.clone(), 0.0), quantile(x, 1.0))
        };
        let total: Vec<f64> = v.iter().map(|r| f(r, "init_us") + f(r, "first_us")).collect();
        println!(
            "{label:<24} {scheme:<9} libsasl2 init {}; first checkpass (connect, bind, search) {}; \
             init + first {:.0}; second checkpass {}",
            show("init_us"),
            show("first_us"),
            median(total),
            show("second_us")
        );
    }

    println!("\n## load cost: libsasl2 init CPU (µs) with ldapbind minus without, medians of per-set differences");
    let diff = |x: usize, y: usize| median(load_sets.iter().map(|s| s[x].0 - s[y].0).collect());
    println!(
        "without ldapbind: {:.0} µs, {:.0} minor faults",
        median(load_sets.iter().map(|s| s[0].0).collect()),
        median(load_sets.iter().map(|s| s[0].1).collect())
    );
    for (i, (label, _)) in builds.iter().enumerate() {
        let (with, pre) = (1 + 2 * i, 2 + 2 * i);
        println!(
            "{label:<20} +{:.0} µs (dlopen +{:.0}, init functions +{:.0}); minor faults {:.0} ({:.0} dlopen-ed beforehand)",
            diff(with, 0),
            diff(with, pre),
            diff(pre, 0),
            median(load_sets.iter().map(|s| s[with].1).collect()),
            median(load_sets.iter().map(|s| s[pre].1).collect()),
        );
    }
    if builds.len() > 1 {
        println!("ldapbind - baseline, with it loaded: {:+.0} µs; init functions: {:+.0} µs", diff(1, 3), diff(2, 4));
    }

    for (label, so) in &builds {
        let (size, stripped) = util::so_sizes(so);
        println!(
            "{label}: libldapbind.so {size} bytes as built{} ({})",
            stripped.map_or(String::new(), |s| format!(", {s} bytes stripped")),
            so.display()
        );
    }

    println!("\n## targets (issues 14 and 10)");
    for (what, ok) in &targets {
        println!("{:<6} {what}", if *ok { "MET" } else { "MISSED" });
    }
    println!("\ntotal {:.0} s; load average at end {}", t_start.elapsed().as_secs_f64(), loadavg());
    drop(scratch);
}
