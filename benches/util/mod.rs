//! What the benchmarks share: the child's arguments and `RESULT` lines, statistics, and what
//! they say about the machine.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A child's `key=value` arguments.
pub type Args = BTreeMap<String, String>;
/// The fields of a child's `RESULT key=value ...` line.
pub type Fields = BTreeMap<String, String>;

pub fn parse_args(raw: &[String]) -> Args {
    raw.iter().filter_map(|a| a.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

pub fn arg<'a>(args: &'a Args, key: &str) -> &'a str {
    args.get(key).unwrap_or_else(|| panic!("child argument {key}= missing"))
}

pub fn parse_result(line: &str) -> Fields {
    line.strip_prefix("RESULT ")
        .unwrap_or("")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn f(m: &Fields, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// A line to the parent, flushed.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).expect("write to the parent");
}

pub fn wait_for_parent() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{ncpu} CPUs, {model}, Linux {}", kernel.trim())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// The library's size as built and stripped (`strip --strip-all`).
pub fn so_sizes(plugin: &Path) -> (u64, Option<u64>) {
    let size = std::fs::metadata(plugin).map_or(0, |m| m.len());
    let tmp = std::env::temp_dir().join(format!("ldapbind-bench-strip-{}.so", std::process::id()));
    let stripped = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&tmp)
        .arg(plugin)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&tmp).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&tmp);
    (size, stripped)
}

/// (process group, user + system CPU time) of a process (all threads), from /proc (clock-tick
/// resolution); `None` when it is gone.
fn stat_cpu(pid: u32) -> Option<(u32, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // After "<pid> (<comm>) ": state is field 3, pgrp 5, utime 14, stime 15.
    let pgrp = fields.get(2)?.parse().ok()?;
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((pgrp, Duration::from_nanos(ticks * 1_000_000_000 / hz)))
}

/// User + system CPU time of a process (all threads).
pub fn proc_cpu(pid: u32) -> Duration {
    stat_cpu(pid).map_or(Duration::ZERO, |(_, cpu)| cpu)
}

/// User + system CPU time of the live processes of a process group (a daemon and its workers).
pub fn group_cpu(pgid: u32) -> Duration {
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    pids.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat_cpu)
        .filter(|&(g, _)| g == pgid)
        .map(|(_, cpu)| cpu)
        .sum()
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

/// User + system CPU time of this process (all threads).
pub fn self_cpu() -> Duration {
    let ru = rusage();
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn count_dir(path: &str, pred: impl Fn(&Path) -> bool) -> usize {
    std::fs::read_dir(path).map(|d| d.flatten().filter(|e| pred(&e.path())).count()).unwrap_or(0)
}

fn threads() -> usize {
    count_dir("/proc/self/task", |_| true)
}

fn sockets() -> usize {
    count_dir("/proc/self/fd", |p| std::fs::read_link(p).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
}

/// The load-cost child of both benchmarks: times libsasl2's init (`sasl_server_init` +
/// `sasl_client_init`) with the plugin dir `dir` and `opts` (ldapbind's, ignored when the dir
/// has no ldapbind), counts threads and sockets before and after, idles `idle_ms=` so that a
/// connection made in the background would show up in slapd's log, and says its RESULT line.
/// `preload=1` maps and relocates the dir's `libldapbind.so` first, the way libsasl2 will
/// (RTLD_NOW), so the timed init costs only ldapbind's own init functions: `with - preloaded`
/// is the dlopen.
pub fn load_probe(app: &str, dir: &Path, opts: &[(&str, &str)], args: &Args) {
    use crate::common::sasl::Server;
    if args.get("preload").is_some_and(|v| v == "1") {
        let so = std::ffi::CString::new(dir.join("libldapbind.so").to_str().expect("UTF-8 path")).expect("path");
        // SAFETY: a NUL-terminated path; the handle is kept for the life of the process.
        let h = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        assert!(!h.is_null(), "dlopen {}", dir.display());
    }
    let (t0, s0) = (threads(), sockets());
    let (start, cpu0, faults0) = (std::time::Instant::now(), self_cpu(), rusage().ru_minflt);
    let server = Server::init(app, dir, opts);
    let (init, cpu, faults) = (start.elapsed(), self_cpu() - cpu0, rusage().ru_minflt - faults0);
    let getopts = Server::getopt_queries().len();
    let (t1, s1) = (threads(), sockets());
    let idle = args.get("idle_ms").map_or(0, |v| v.parse().expect("idle_ms"));
    std::thread::sleep(Duration::from_millis(idle));
    let (t2, s2) = (threads(), sockets());
    drop(server);
    say(&format!(
        "RESULT init_us={:.1} cpu_us={:.1} minflt={faults} getopt={getopts} threads={t0},{t1},{t2} sockets={s0},{s1},{s2}",
        init.as_secs_f64() * 1e6,
        cpu.as_secs_f64() * 1e6
    ));
}

/// The environment variable naming Debian's `libldapdb.so` (scripts/bench.sh unpacks the
/// package under target/ rather than installing it).
pub const LDAPDB_ENV: &str = "LDAPBIND_BENCH_LDAPDB";

/// Where Debian's ldapdb plugin is: `$LDAPBIND_BENCH_LDAPDB` (scripts/bench.sh unpacks the
/// package under target/ rather than installing it, so the machine's other libsasl2 programs do
/// not start loading an unconfigured ldapdb from the system plugin dir), else the system's.
pub fn ldapdb_plugin() -> Option<std::path::PathBuf> {
    let from_env = std::env::var_os(LDAPDB_ENV).map(std::path::PathBuf::from);
    let system = Path::new(crate::common::sasl::SYSTEM_PLUGIN_DIR).join("libldapdb.so");
    from_env.or(Some(system)).filter(|p| p.exists())
}

/// `--baseline DIR`: an earlier build to measure against in the same run (its `libldapbind.so`
/// and `ldapbind-authd`, as scripts/bench.sh --baseline-ref leaves them).
pub fn baseline_dir(dir: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(dir);
    for f in ["libldapbind.so", "ldapbind-authd"] {
        assert!(d.join(f).is_file(), "--baseline {}: no {f} in it", d.display());
    }
    std::fs::canonicalize(&d).expect("canonicalize --baseline")
}
