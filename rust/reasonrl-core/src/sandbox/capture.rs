//! The host side of one run: spawn the supervisor, feed stdin, read stdout / stderr / the report
//! pipe as they fill (one `poll` loop on the calling thread, no helper threads), enforce the
//! deadline and the output limit, and reap.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::{self, Plan};
use super::{Job, Limits};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal (not by us): a crash, `SIGXCPU` from `RLIMIT_CPU`…
    Signaled(i32),
    /// Killed at the wall-clock deadline.
    TimedOut,
    /// Killed for writing more than `Limits::max_output_bytes`.
    OutputLimit,
    /// The sandbox could not be set up (the message says why); the program did not run.
    SetupFailed(String),
}

/// What came out of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ending: Ending,
    /// The first `Limits::max_output_bytes` of stdout.
    pub stdout: Vec<u8>,
    /// The last `Limits::stderr_tail_bytes` of stderr.
    pub stderr_tail: Vec<u8>,
    /// What the program wrote to the report descriptor (at most [`REPORT_LIMIT`] bytes).
    pub report: Vec<u8>,
    pub wall_time: Duration,
}

impl Outcome {
    pub(super) fn setup_failed(message: String) -> Outcome {
        Outcome {
            ending: Ending::SetupFailed(message),
            stdout: Vec::new(),
            stderr_tail: Vec::new(),
            report: Vec::new(),
            wall_time: Duration::ZERO,
        }
    }
}

/// Bytes of report kept; a harness writes a few bytes per test.
pub const REPORT_LIMIT: usize = 1 << 20;
/// Time the caller waits for the supervisor to kill and reap everything after SIGTERM. Past it
/// the call returns and the supervisor finishes in the background: it is never killed, since
/// the namespace's init may still be waiting in the kernel for the namespace to empty (a fork
/// bomb on a busy machine), and killing S then would leave P's zombie to the host's init.
const STOP_GRACE: Duration = Duration::from_secs(2);

#[cfg(test)]
thread_local! {
    /// Replaces [`STOP_GRACE`] for runs on this thread (tests that must give up at once).
    pub(super) static STOP_GRACE_FOR_TESTS: std::cell::Cell<Option<Duration>> =
        const { std::cell::Cell::new(None) };
}

fn stop_grace() -> Duration {
    #[cfg(test)]
    if let Some(grace) = STOP_GRACE_FOR_TESTS.with(|g| g.get()) {
        return grace;
    }
    STOP_GRACE
}
/// How long pipes may stay open after the supervisor has exited (only a process that escaped
/// every protection could hold them) before we stop reading.
const DRAIN_GRACE: Duration = Duration::from_millis(200);
/// Poll period when the kernel has no pidfd (Linux < 5.3) to tell us the supervisor exited.
const NO_PIDFD_TICK: Duration = Duration::from_millis(5);

/// A pipe with both ends close-on-exec: `(read, write)`.
pub(super) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Environment of every program: nothing from the host.
fn environment(run_dir: &std::ffi::CStr) -> Vec<(&'static str, std::ffi::OsString)> {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::ffi::OsStr::from_bytes(run_dir.to_bytes()).to_os_string();
    let mut env = vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG", "C.UTF-8".into()),
        ("HOME", dir.clone()),
        ("TMPDIR", dir),
    ];
    // Numeric libraries would otherwise start a thread per core in every run.
    for name in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        env.push((name, "1".into()));
    }
    env
}

/// Runs `job` under `plan`. `resources` (the working directory, the sandbox uid) are released
/// only once the supervisor has been reaped, i.e. once the run's namespaces are gone.
pub(super) fn run_planned(
    job: &Job<'_>,
    plan: &Plan,
    limits: &Limits,
    report: Option<(OwnedFd, OwnedFd)>,
    resources: Box<dyn Send>,
) -> Outcome {
    let mut command = Command::new(job.program);
    command
        .args(job.args)
        .env_clear()
        .envs(environment(&plan.run_dir))
        .stdin(if job.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (done_read, done_write) = match pipe() {
        Ok(pair) => pair,
        Err(e) => return Outcome::setup_failed(format!("creating the done pipe: {e}")),
    };
    let done_fd = done_write.as_raw_fd();
    // `pre_exec` wants a 'static hook, but it only ever runs inside `spawn()` below (in the
    // forked child), while `plan` is borrowed; `command` is dropped before we return.
    let plan_address = plan as *const Plan as usize;
    // SAFETY: see above for the pointer; `child::enter` only makes async-signal-safe calls on
    // memory prepared in the plan.
    unsafe {
        command.pre_exec(move || child::enter(&*(plan_address as *const Plan), done_fd));
    }
    let started = Instant::now();
    let spawned = command.spawn();
    drop(done_write);
    let (report_read, _report_write_dropped_here) = match report {
        Some((read, write)) => (Some(read), drop(write)),
        None => (None, ()),
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Outcome::setup_failed(format!("spawning the sandbox: {e}")),
    };
    let (mut outcome, reaped) =
        watch(&mut child, job.stdin, report_read, done_read, limits, started);
    if !reaped {
        reap_later(child, resources);
    }
    outcome.wall_time = started.elapsed();
    if let Ending::Exited(code) = outcome.ending {
        let stderr = String::from_utf8_lossy(&outcome.stderr_tail);
        if code == child::SETUP_FAILED {
            if let Some(line) = stderr.lines().find(|l| l.starts_with(child::SETUP_FAILED_PREFIX)) {
                outcome.ending = Ending::SetupFailed(line.to_string());
            }
        }
    }
    outcome
}

struct Stream {
    fd: Option<OwnedFd>,
    total: usize,
}

impl Stream {
    fn new(fd: Option<OwnedFd>) -> Stream {
        if let Some(fd) = &fd {
            set_nonblocking(fd.as_raw_fd());
        }
        Stream { fd, total: 0 }
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Why the host is stopping the run, and since when.
#[derive(Clone, Copy)]
enum Stop {
    Deadline,
    Output,
}

/// Runs the poll loop until the run is over. Returns the outcome and whether the supervisor was
/// reaped (it may still be tearing down namespaces after reporting the end of the run).
fn watch(
    child: &mut Child,
    stdin: Option<&[u8]>,
    report: Option<OwnedFd>,
    done: OwnedFd,
    limits: &Limits,
    started: Instant,
) -> (Outcome, bool) {
    let supervisor = child.id() as libc::pid_t;
    let take = |fd: Option<OwnedFd>| {
        fd.map(|fd| Stream::new(Some(fd))).unwrap_or(Stream { fd: None, total: 0 })
    };
    let mut stdout = take(child.stdout.take().map(OwnedFd::from));
    let mut stderr = take(child.stderr.take().map(OwnedFd::from));
    let mut report = take(report);
    let mut input = take(child.stdin.take().map(OwnedFd::from));
    let mut done = take(Some(done));
    let mut done_message = Vec::new();
    let mut reaped = false;
    let mut pending_input = stdin.unwrap_or_default();
    // SAFETY: pidfd_open on our own, not yet reaped, child; -1 when unsupported.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, supervisor, 0) };
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });

    let mut kept_stdout = Vec::new();
    let mut tail = Vec::new();
    let mut kept_report = Vec::new();
    let deadline = started + limits.wall_time;
    let mut stop: Option<(Stop, Instant)> = None;
    let mut exit: Option<(std::process::ExitStatus, Instant)> = None;
    // Set when the supervisor is still tearing the run down at `STOP_GRACE`.
    let mut left_to_reaper = false;
    let mut buffer = vec![0u8; 64 << 10];

    loop {
        if exit.is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                exit = Some((status, Instant::now()));
                reaped = true;
            } else if let Ok(bytes) = <[u8; 4]>::try_from(done_message.as_slice()) {
                // The supervisor's report: the program's wait status, everything dead.
                exit = Some((
                    std::process::ExitStatus::from_raw(i32::from_ne_bytes(bytes)),
                    Instant::now(),
                ));
            }
        }
        let open_outputs = [&stdout, &stderr, &report].iter().any(|s| s.fd.is_some());
        match exit {
            Some(_) if !open_outputs => break,
            Some((_, at)) if at.elapsed() > DRAIN_GRACE => break,
            _ => {}
        }
        let now = Instant::now();
        match stop {
            None if now >= deadline => stop = Some(begin_stop(supervisor, Stop::Deadline)),
            Some((_, since)) if exit.is_none() && now >= since + stop_grace() => {
                // P has been killed (S acts on SIGTERM at once) and the kernel is emptying the
                // namespace; S reaps it and exits when that is done. The batch waits for the
                // reaper before it returns, so nothing outlives the call in the usual case.
                left_to_reaper = true;
                break;
            }
            _ => {}
        }

        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut push = |fd: &Option<OwnedFd>, events| {
            if let Some(fd) = fd {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 });
            }
        };
        push(&stdout.fd, libc::POLLIN);
        push(&stderr.fd, libc::POLLIN);
        push(&report.fd, libc::POLLIN);
        push(&input.fd, libc::POLLOUT);
        push(&done.fd, libc::POLLIN);
        if exit.is_none() {
            push(&pidfd, libc::POLLIN);
        }
        let next_event = match (stop, exit) {
            (_, Some((_, at))) => at + DRAIN_GRACE,
            (None, None) => deadline,
            (Some((_, since)), None) => since + stop_grace(),
        };
        let mut wait = next_event.saturating_duration_since(Instant::now());
        if pidfd.is_none() && exit.is_none() {
            wait = wait.min(NO_PIDFD_TICK);
        }
        let timeout_ms = wait.as_millis().min(i32::MAX as u128) as i32 + 1;
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };

        read_into(&mut stdout, &mut buffer, |bytes| {
            let room = limits.max_output_bytes.saturating_sub(kept_stdout.len());
            kept_stdout.extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
        read_into(&mut stderr, &mut buffer, |bytes| {
            tail.extend_from_slice(bytes);
            if tail.len() > 2 * limits.stderr_tail_bytes.max(1) {
                tail.drain(..tail.len() - limits.stderr_tail_bytes);
            }
        });
        read_into(&mut report, &mut buffer, |bytes| {
            let room = REPORT_LIMIT.saturating_sub(kept_report.len());
            kept_report.extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
        read_into(&mut done, &mut buffer, |bytes| {
            let room = 4usize.saturating_sub(done_message.len());
            done_message.extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
        write_from(&mut input, &mut pending_input);

        let flooded =
            stdout.total > limits.max_output_bytes || stderr.total > limits.max_output_bytes;
        if flooded && stop.is_none() && exit.is_none() {
            stop = Some(begin_stop(supervisor, Stop::Output));
        }
    }
    let status = if left_to_reaper {
        // Only read when the run was not stopped, which is not the case here.
        std::process::ExitStatus::from_raw(libc::SIGKILL)
    } else {
        // Anything still in the supervisor's group (only possible if the supervisor died
        // before cleaning up) goes now. The pgid cannot have been reused while members remain.
        // SAFETY: signal to our own child's process group.
        unsafe { libc::kill(-supervisor, libc::SIGKILL) };
        match exit {
            Some((status, _)) => status,
            None => {
                reaped = true;
                child.wait().unwrap_or_else(|_| std::process::ExitStatus::from_raw(libc::SIGKILL))
            }
        }
    };
    if tail.len() > limits.stderr_tail_bytes {
        tail.drain(..tail.len() - limits.stderr_tail_bytes);
    }
    let ending = match stop {
        Some((Stop::Deadline, _)) => Ending::TimedOut,
        Some((Stop::Output, _)) => Ending::OutputLimit,
        None => match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(signal)) => Ending::Signaled(signal),
            (None, None) => Ending::Signaled(0),
        },
    };
    let outcome = Outcome {
        ending,
        stdout: kept_stdout,
        stderr_tail: tail,
        report: kept_report,
        wall_time: Duration::ZERO,
    };
    (outcome, reaped)
}

/// Reaps, on a background thread, supervisors that have reported the end of their run but not
/// exited yet, then releases the run's resources. The supervisor's exit tears down the run's
/// namespaces and removing the working directory detaches its tmpfs: both wait on the kernel
/// (an RCU grace period, milliseconds) and the next run need not wait with them. Nothing of the
/// run is alive by then but the supervisor. At process exit, pending work is finished first.
/// Supervisors handed to the reaper and not reaped yet (in this process).
static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits, at most `limit`, until every supervisor handed to the reaper is reaped: then no
/// process of any finished run is alive. A batch calls this before it returns, so "nothing is
/// left behind" holds when the caller gets its results, while single runs inside the batch
/// still do not wait for each other's teardown.
pub(crate) fn wait_for_reaper(limit: Duration) {
    use std::sync::atomic::Ordering;
    let deadline = Instant::now() + limit;
    while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn reap_later(mut child: Child, resources: Box<dyn Send>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc::{channel, SendError, Sender};
    use std::sync::Mutex;
    type Pending = (Child, Box<dyn Send>);
    /// The reaper's channel and the pid of the process that started the thread: after `fork()`
    /// the thread does not exist in the child, which then starts its own.
    static REAPER: Mutex<Option<(u32, Sender<Pending>)>> = Mutex::new(None);
    static OWNER: AtomicU32 = AtomicU32::new(0);
    /// Registered with `atexit`: lets the reaper remove the last working directories (for at
    /// most a few seconds) before the process goes.
    extern "C" fn finish_pending() {
        if OWNER.load(Ordering::SeqCst) != std::process::id() {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while PENDING.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    let mut reaper = REAPER.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if reaper.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let (sender, receiver) = channel::<Pending>();
        let thread = std::thread::Builder::new().name("reasonrl-reaper".into()).spawn(move || {
            for (mut supervisor, resources) in receiver {
                let _ = supervisor.wait();
                drop(resources);
                PENDING.fetch_sub(1, Ordering::SeqCst);
            }
        });
        if thread.is_err() {
            drop(reaper);
            let _ = child.wait();
            return;
        }
        // Work counted by the parent before a fork is not this process's to wait for.
        PENDING.store(0, Ordering::SeqCst);
        if OWNER.swap(pid, Ordering::SeqCst) == 0 {
            // SAFETY: registering a plain extern "C" function (inherited across fork, where
            // the OWNER check makes it a no-op until the child starts its own reaper).
            unsafe { libc::atexit(finish_pending) };
        }
        // A channel inherited through fork has no receiver here; forget it rather than drop it.
        std::mem::forget(reaper.replace((pid, sender)));
    }
    let sender = &reaper.as_ref().expect("set above").1;
    PENDING.fetch_add(1, Ordering::SeqCst);
    if let Err(SendError((mut child, resources))) = sender.send((child, resources)) {
        let _ = child.wait();
        drop(resources);
        PENDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Asks the supervisor to kill the program and everything it started.
fn begin_stop(supervisor: libc::pid_t, why: Stop) -> (Stop, Instant) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(supervisor, libc::SIGTERM) };
    (why, Instant::now())
}

/// Reads everything available from `stream` (non-blocking), counting all bytes and handing them
/// to `keep`; closes the stream at end of file.
fn read_into(stream: &mut Stream, buffer: &mut [u8], mut keep: impl FnMut(&[u8])) {
    let Some(fd) = &stream.fd else { return };
    loop {
        // SAFETY: reading into a buffer we own, of the length we pass.
        let n = unsafe {
            libc::read(fd.as_raw_fd(), buffer.as_mut_ptr() as *mut libc::c_void, buffer.len())
        };
        if n > 0 {
            stream.total = stream.total.saturating_add(n as usize);
            keep(&buffer[..n as usize]);
            continue;
        }
        let error = std::io::Error::last_os_error().raw_os_error();
        if n < 0 && error == Some(libc::EINTR) {
            continue;
        }
        if n == 0 || error != Some(libc::EAGAIN) {
            stream.fd = None;
        }
        return;
    }
}

/// Writes as much of `pending` as the pipe takes; closes stdin once all is written or the
/// program closed its end.
fn write_from(stream: &mut Stream, pending: &mut &[u8]) {
    let Some(fd) = &stream.fd else { return };
    let _guard = SigpipeBlocked::new();
    while !pending.is_empty() {
        // SAFETY: writing from a slice we borrow, of the length we pass.
        let n = unsafe {
            libc::write(fd.as_raw_fd(), pending.as_ptr() as *const libc::c_void, pending.len())
        };
        if n > 0 {
            *pending = &pending[n as usize..];
            continue;
        }
        let error = std::io::Error::last_os_error().raw_os_error();
        if n < 0 && error == Some(libc::EINTR) {
            continue;
        }
        if error == Some(libc::EAGAIN) {
            return;
        }
        break;
    }
    stream.fd = None;
}

/// Blocks SIGPIPE on this thread while it writes to a program's stdin: a program that closes
/// stdin early must cost us an EPIPE, not the host process (Python ignores SIGPIPE, but other
/// embedders may not). A SIGPIPE raised meanwhile is consumed before the mask is restored.
struct SigpipeBlocked {
    previous: libc::sigset_t,
}

impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        // SAFETY: signal-set manipulation on local values and this thread's mask.
        unsafe {
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &sigpipe_set(), &mut previous);
            SigpipeBlocked { previous }
        }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // SAFETY: as in `new`; a zero timeout makes sigtimedwait a non-blocking poll.
        unsafe {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            while libc::sigtimedwait(&sigpipe_set(), std::ptr::null_mut(), &zero) == libc::SIGPIPE {
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: initialising a local signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}
