//! The sandbox with `/bin/sh` programs: no Python needed.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn sh(script: &str, limits: &Limits) -> Outcome {
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    run(&Job { program: Path::new("/bin/sh"), args: &args, files: &[], stdin: None }, limits, &[])
}

fn quick() -> Limits {
    Limits { wall_time: Duration::from_secs(5), ..Limits::default() }
}

/// Live processes whose command line contains `marker` (the test's own shell excluded).
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[test]
fn sandbox_runs_a_program_and_captures_its_output() {
    let outcome = sh("echo hello; echo oops >&2; exit 3", &quick());
    assert_eq!(outcome.ending, Ending::Exited(3));
    assert_eq!(outcome.stdout, b"hello\n");
    assert_eq!(outcome.stderr_tail, b"oops\n");
}

#[test]
fn sandbox_reports_a_probe_consistent_with_the_kernel() {
    let caps = capabilities();
    assert_eq!(caps.root, unsafe { libc::geteuid() } == 0);
    // Whatever is missing is said, and nothing is said when all is there.
    let all = caps.network_namespace
        && caps.landlock
        && caps.unprivileged
        && caps.pid_namespace
        && caps.private_tmpfs
        && caps.private_proc;
    assert_eq!(caps.missing().is_empty(), all, "{caps:?}");
    eprintln!("sandbox capabilities: {caps:?}");
}

#[test]
fn sandbox_environment_is_empty_and_directory_private() {
    std::env::set_var("REASONRL_SANDBOX_TEST_SECRET", "hunter2");
    let outcome = sh("env; pwd; ls -A; echo x > f && cat f", &quick());
    let out = String::from_utf8_lossy(&outcome.stdout);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{out}");
    assert!(out.contains("/tmp/reasonrl-run-"), "{out}");
    assert!(out.trim_end().ends_with('x'), "{out}");
    assert_eq!(outcome.ending, Ending::Exited(0));
}

#[test]
fn sandbox_kills_an_infinite_loop_at_the_deadline() {
    let limits = Limits { wall_time: Duration::from_millis(300), ..Limits::default() };
    let start = Instant::now();
    let outcome = sh("while :; do :; done", &limits);
    assert_eq!(outcome.ending, Ending::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[test]
fn sandbox_kills_a_daemon_that_left_the_process_group() {
    let marker = "reasonrl-daemon-marker-7f3a";
    // setsid + background + parent exit: the classic escape from a process-group kill.
    let script = format!(
        "setsid sh -c 'exec -a {marker} sleep 30' < /dev/null > /dev/null 2>&1 & sleep 0.2; exit 0"
    );
    let outcome = sh(&script, &quick());
    assert_eq!(outcome.ending, Ending::Exited(0));
    assert!(outcome.wall_time < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(processes_with(marker), 0, "the daemon survived the run");
}

#[test]
fn sandbox_kills_a_daemon_at_the_deadline_too() {
    let marker = "reasonrl-daemon-marker-91bd";
    let script = format!("setsid sh -c 'exec -a {marker} sleep 30' & sleep 30");
    let limits = Limits { wall_time: Duration::from_millis(500), ..Limits::default() };
    let outcome = sh(&script, &limits);
    assert_eq!(outcome.ending, Ending::TimedOut);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(processes_with(marker), 0, "the daemon survived the deadline");
}

#[test]
fn sandbox_stops_a_flood_of_output_early() {
    let limits = Limits { max_output_bytes: 1 << 20, ..quick() };
    let start = Instant::now();
    let outcome = sh("yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &limits);
    assert_eq!(outcome.ending, Ending::OutputLimit);
    assert_eq!(outcome.stdout.len(), 1 << 20);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn sandbox_feeds_large_stdin_without_deadlock() {
    let input = "7\n".repeat(1 << 20);
    let args: Vec<OsString> = vec!["-c".into(), "wc -l".into()];
    let job = Job {
        program: Path::new("/bin/sh"),
        args: &args,
        files: &[],
        stdin: Some(input.as_bytes()),
    };
    let outcome = run(&job, &quick(), &[]);
    assert_eq!(String::from_utf8_lossy(&outcome.stdout).trim(), (1 << 20).to_string());
    // A program that never reads its stdin must not block the host either.
    let args: Vec<OsString> = vec!["-c".into(), "exec 0<&-; echo done".into()];
    let job = Job { args: &args, ..job };
    assert_eq!(run(&job, &quick(), &[]).stdout, b"done\n");
}

#[test]
fn sandbox_creates_files_and_passes_the_report_descriptor() {
    // bash, not sh: dash cannot redirect to a descriptor above 9.
    let args: Vec<OsString> = vec!["script.sh".into(), REPORT_FD.into()];
    let files: &[(&str, &[u8])] =
        &[("script.sh", b"cat data.txt; echo verdict >&$1"), ("data.txt", b"payload")];
    let job = Job { program: Path::new("/bin/bash"), args: &args, files, stdin: None };
    let outcome = run(&job, &quick(), &[]);
    assert_eq!(outcome.stdout, b"payload");
    assert_eq!(outcome.report, b"verdict\n");
}

#[test]
fn sandbox_forbids_writes_outside_and_network_when_available() {
    let caps = capabilities();
    let target = format!("/tmp/reasonrl-escape-{}", std::process::id());
    let outcome = sh(&format!("echo pwned > {target} && echo wrote"), &quick());
    let wrote = Path::new(&target).exists();
    let _ = std::fs::remove_file(&target);
    if caps.landlock || caps.unprivileged {
        assert!(!wrote && outcome.stdout.is_empty(), "{outcome:?}");
    }
    if caps.network_namespace {
        // Only a downed loopback exists: not even 127.0.0.1 is reachable.
        let outcome = sh("cat /proc/net/dev", &quick());
        let out = String::from_utf8_lossy(&outcome.stdout);
        let devices: Vec<&str> = out.lines().skip(2).filter_map(|l| l.split(':').next()).collect();
        assert_eq!(devices.iter().map(|d| d.trim()).collect::<Vec<_>>(), ["lo"], "{out}");
    }
}

#[test]
fn sandbox_contains_a_fork_bomb() {
    let limits = Limits { wall_time: Duration::from_secs(2), processes: 32, ..Limits::default() };
    let outcome = sh("b() { b | b & }; b; sleep 5", &limits);
    assert!(matches!(outcome.ending, Ending::TimedOut | Ending::Exited(_)), "{outcome:?}");
    // Everything is gone: a fresh run starts normally.
    assert_eq!(sh("echo ok", &quick()).stdout, b"ok\n");
}

/// Processes whose parent is this process and that are the init (pid 1) of a PID namespace:
/// a run's P that lost its supervisor.
fn orphaned_namespace_inits() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            let field = |name: &str| {
                status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("")
            };
            field("PPid:") == me && field("NSpid:").split_whitespace().last() == Some("1")
        })
        .map(|status| status.lines().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn sandbox_never_orphans_the_namespace_init_when_it_gives_up_waiting() {
    if !capabilities().pid_namespace {
        eprintln!("skipped: no PID namespace here ({:?})", capabilities().missing());
        return;
    }
    // Orphans come to us rather than to an init that might reap them unseen. Harmless for the
    // other tests: no run leaves an orphan unless this very bug is back.
    // SAFETY: a prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    // No grace at all: the caller returns right after asking S to stop, while S is still
    // killing P and the namespace empties. S must be left to finish, not killed: killing it
    // would hand P (PID 1 of the run's namespace) to us, and in CI to the host's init.
    capture::STOP_GRACE_FOR_TESTS.with(|g| g.set(Some(Duration::ZERO)));
    let limits = Limits { wall_time: Duration::from_millis(200), processes: 64, ..quick() };
    for script in ["sleep 30", "b() { b | b & }; b; sleep 30"] {
        let outcome = sh(script, &limits);
        assert_eq!(outcome.ending, Ending::TimedOut, "{script}: {outcome:?}");
    }
    capture::STOP_GRACE_FOR_TESTS.with(|g| g.set(None));
    capture::wait_for_reaper(Duration::from_secs(20));
    assert_eq!(orphaned_namespace_inits(), Vec::<String>::new());
}

#[test]
fn sandbox_leaves_no_directory_behind() {
    let mut used = Vec::new();
    for script in ["pwd; echo x > a; mkdir -p d/e; chmod 000 d", "pwd; exit 1"] {
        let outcome = sh(script, &quick());
        used.push(String::from_utf8_lossy(&outcome.stdout).lines().next().unwrap().to_string());
    }
    // Removed once their supervisors are reaped (in the background, milliseconds later).
    let deadline = Instant::now() + Duration::from_secs(5);
    while used.iter().any(|dir| Path::new(dir).exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        used.iter().all(|dir| dir.starts_with("/tmp/reasonrl-run-") && !Path::new(dir).exists()),
        "{used:?}"
    );
}

#[test]
fn sandbox_limits_memory_and_reports_signals() {
    // A crash is a signal the host did not send.
    let outcome = sh("kill -SEGV $$", &quick());
    assert_eq!(outcome.ending, Ending::Signaled(libc::SIGSEGV));
    let small = Limits { memory_bytes: 64 << 20, ..quick() };
    // 200 MB of shell string cannot fit in a 64 MiB address space.
    let outcome = sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}", &small);
    assert_ne!(outcome.stdout, b"200000000\n");
}

#[test]
fn sandbox_validates_limits() {
    let bad = Limits { wall_time: Duration::ZERO, ..Limits::default() };
    assert!(bad.validate().is_err());
    let bad = Limits { memory_bytes: 1 << 20, ..Limits::default() };
    assert!(bad.validate().is_err());
    assert!(Limits::default().validate().is_ok());
}

#[test]
fn sandbox_compares_tokens_ignoring_whitespace_layout() {
    use python::same_tokens;
    assert!(same_tokens(b"1 2\n3\n", b"1 2 3"));
    assert!(same_tokens(b"a  \r\n", b"a"));
    assert!(!same_tokens(b"1 2", b"12"));
    assert!(!same_tokens(b"", b"0"));
}
