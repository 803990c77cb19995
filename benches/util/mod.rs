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
