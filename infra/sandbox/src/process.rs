//! Processes the sandbox starts: detached from the terminal, tracked by PID, stopped by PID.
//! Uses `/proc` and `kill(1)` rather than unsafe `libc` calls (the workspace forbids unsafe).

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// A free loopback port for a server of the sandbox, chosen **below the kernel's ephemeral
/// range**: a port from that range can be taken as the local port of any outgoing connection
/// while its server is down (a database restarting in `rejoin`), and the server then cannot
/// bind it again ("Address already in use"). Another process could still take the port before
/// we bind it; the sandbox then fails to start with that error in the log.
pub fn free_port() -> Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(10_001));
    // Ports handed out by this process and maybe not bound yet: never twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let seed = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..2000 {
        let mut h = seed.build_hasher();
        h.write_u32(attempt);
        let port = low + (h.finish() % u64::from(high - low)) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(200)).is_ok()
}

/// Waits until something accepts connections on `port`; fails at once if `pid` (the process
/// that should listen) exits first, quoting the end of its log.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str, log: &Path, pid: Option<u32>) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if port_is_open(port) {
            return Ok(());
        }
        if pid.is_some_and(|p| !is_alive(p)) {
            bail!("{what} exited before listening on 127.0.0.1:{port}:\n{}", log_tail(log, 15));
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}; see {}", log.display())
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `cmd` in its own process group (so a Ctrl-C in the terminal that ran `sandbox up`
/// does not reach it) with output appended to `log`. Returns its PID.
pub fn spawn_detached(cmd: &mut Command, log: &Path) -> Result<u32> {
    let out =
        File::options().create(true).append(true).open(log).with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(child.id())
}

/// True if `pid` is a live process (a zombie counts as gone: it has exited).
pub fn is_alive(pid: u32) -> bool {
    stat(&pid.to_string()).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn signal(target: &str, sig: &str) {
    // Failure means the process is already gone, which is what we want.
    let _ = Command::new("kill").arg(format!("-{sig}")).arg("--").arg(target).stderr(Stdio::null()).status();
}

/// State and process group of a process, from `/proc/<pid>/stat`.
fn stat(pid: &str) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name (which may contain spaces):
    // state, ppid, pgrp, …
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// True while any process of group `pgid` is running. Zombies do not count: they have exited,
/// and waiting for whoever must reap them (possibly us, possibly init) would only add delay.
fn group_is_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.bytes().all(|b| b.is_ascii_digit())
            && stat(&name).is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z' && state != 'X')
    })
}

/// Stops the whole process group led by `pgid` (a process started by [`spawn_detached`] and
/// everything it started, e.g. the function processes of `cargo lambda watch`).
pub fn stop_group(pgid: u32, sig: &str, grace: Duration) -> Result<()> {
    let group = format!("-{pgid}");
    if !group_is_alive(pgid) {
        return Ok(());
    }
    signal(&group, sig);
    let start = Instant::now();
    while group_is_alive(pgid) && start.elapsed() < grace {
        thread::sleep(Duration::from_millis(50));
    }
    if group_is_alive(pgid) {
        signal(&group, "KILL");
        thread::sleep(Duration::from_millis(200));
    }
    // Members that already exited but are not yet reaped still count for `kill -0`.
    if is_alive(pgid) {
        bail!("process group {pgid} survived SIGKILL");
    }
    Ok(())
}

/// Stops `pid` with `sig`, escalating to SIGKILL after `grace`. Returns once it is gone.
pub fn stop(pid: u32, sig: &str, grace: Duration) -> Result<()> {
    if !is_alive(pid) {
        return Ok(());
    }
    signal(&pid.to_string(), sig);
    let start = Instant::now();
    while is_alive(pid) {
        if start.elapsed() > grace {
            signal(&pid.to_string(), "KILL");
            thread::sleep(Duration::from_millis(200));
            if is_alive(pid) {
                bail!("process {pid} survived SIGKILL");
            }
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs a command to completion, failing with its output if it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
