//! What runs between `fork` and `exec`: the supervisor and the set-up of the sandboxed program.
//!
//! `std::process::Command` forks, wires stdin/stdout/stderr, then calls [`enter`] in the child
//! (call it the supervisor, S). S starts a new session, creates the namespaces and forks again:
//! the grandchild P becomes PID 1 of the new PID namespace, mounts its private directories,
//! drops privileges, locks itself down and returns to `Command`, which execs the program in P.
//! S never execs: it waits for P, kills whatever P left behind, and exits with P's status, so
//! the host sees one child whose exit means "everything is gone".
//!
//! The host is multi-threaded, so between fork and exec only async-signal-safe calls are allowed:
//! raw syscalls, no allocation, no locks. Everything that needs memory (paths, file contents, the
//! uid map text) is prepared by the parent in a [`Plan`] before the fork.

use std::ffi::CString;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, c_void};

use super::landlock;

#[cfg(target_env = "gnu")]
pub(super) type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(super) type Resource = c_int;

/// Exit code of S or P when setting up the sandbox failed; a message starting with
/// [`SETUP_FAILED_PREFIX`] is on stderr.
pub(super) const SETUP_FAILED: i32 = 125;
pub(super) const SETUP_FAILED_PREFIX: &str = "reasonrl sandbox: ";

/// The isolation steps to take. Decided once by the start-up probe (which tries them all and
/// reports which worked through the exit code: one bit per step), then required on every run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Steps {
    pub user_ns: bool,
    pub net_ns: bool,
    pub mount_ns: bool,
    pub pid_ns: bool,
    /// A size-limited tmpfs as the working directory (inside the mount namespace).
    pub tmpfs: bool,
    /// A fresh /proc showing only the sandbox's own processes (needs the PID namespace).
    pub proc: bool,
    pub landlock: bool,
    pub uid_drop: bool,
}

impl Steps {
    pub fn to_bits(self) -> u8 {
        [
            self.user_ns,
            self.net_ns,
            self.mount_ns,
            self.pid_ns,
            self.tmpfs,
            self.proc,
            self.landlock,
            self.uid_drop,
        ]
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &on)| bits | (u8::from(on) << i))
    }

    pub fn from_bits(bits: u8) -> Steps {
        let on = |i: u8| bits & (1 << i) != 0;
        Steps {
            user_ns: on(0),
            net_ns: on(1),
            mount_ns: on(2),
            pid_ns: on(3),
            tmpfs: on(4),
            proc: on(5),
            landlock: on(6),
            uid_drop: on(7),
        }
    }
}

/// A private directory (unreadable to the sandbox uid) that hides something the program needs,
/// typically the interpreter under `/root`: it is covered with an empty tmpfs in the sandbox's
/// mount namespace and only the needed paths are bind-mounted back, read-only, at the same place.
pub(super) struct Cover {
    pub dir: CString,
    /// Directories to create inside the tmpfs, parents first, ending with each bind target.
    pub mkdirs: Vec<CString>,
    /// Paths bound back (at most [`MAX_BINDS`]).
    pub binds: Vec<CString>,
}

/// Bind targets per cover: their descriptors are held in a fixed array (no allocation).
pub(super) const MAX_BINDS: usize = 16;

/// Everything the child needs, prepared (and allocated) by the parent before the fork.
pub(super) struct Plan {
    pub steps: Steps,
    /// Probe mode: P takes every step it can and exits with the bits of those that worked.
    pub probe: bool,
    /// Uid and gid of the program when `uid_drop` (a per-run id nobody else uses).
    pub sandbox_id: u32,
    /// `"<uid> <uid> 1"` and `"<gid> <gid> 1"`: the identity maps written when not root.
    pub uid_map: CString,
    pub gid_map: CString,
    pub run_dir: CString,
    pub tmpfs_options: CString,
    pub covers: Vec<Cover>,
    /// Files to create in the run directory (relative names) as the sandbox user.
    pub files: Vec<(CString, Vec<u8>)>,
    /// Write end of the report pipe, kept open across exec.
    pub report_fd: RawFd,
    /// A network namespace to join instead of creating one (-1: create one per run).
    pub netns_fd: RawFd,
    pub rlimits: Vec<(Resource, u64, u64)>,
}

/// The signals S waits for, blocked in S so that they stay pending until it asks for them:
/// SIGCHLD (P or an orphan ended) and SIGTERM (the host asks S to kill the run and exit).
fn supervisor_signals() -> libc::sigset_t {
    // SAFETY: initialising a local signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// The `pre_exec` hook. Returns only in the process that is to exec the program; S (and the
/// namespace's init, if any) never return. `done_fd`: the pipe on which S reports the program's
/// wait status once nothing of the run is left alive (see `supervise`).
///
/// # Safety
/// Must be called in a freshly forked child, before exec.
pub(super) unsafe fn enter(plan: &Plan, done_fd: c_int) -> std::io::Result<()> {
    let (namespaces, inherited_mask) = enter_supervisor(plan);
    // With a PID namespace, P is its init and the program is P's child; P sends the program's
    // wait status to S through this pipe (P's own exit status cannot carry a signal).
    let mut status_pipe = [-1; 2];
    if libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        fail("pipe", errno());
    }
    match libc::fork() {
        -1 => fail("fork", errno()),
        0 => {
            libc::close(status_pipe[0]);
            // The mask survives exec: give P (and the program) back the one S was started with.
            libc::sigprocmask(libc::SIG_SETMASK, &inherited_mask, std::ptr::null_mut());
            prepare_program(plan, namespaces);
            if plan.steps.pid_ns {
                become_init(status_pipe[1]);
            }
            Ok(())
        }
        first => {
            libc::close(status_pipe[1]);
            supervise(plan, first, status_pipe[0], done_fd, namespaces)
        }
    }
}

/// P as PID 1 of the namespace: forks the program (which returns to exec it), reaps every
/// orphan the program leaves (no zombies pile up during a run), and exits when the program
/// does, after passing on its wait status. Its exit makes the kernel kill what is left in the
/// namespace. Being a normal child of an init, the program sees the usual signal semantics
/// (PID 1 ignores signals it has no handler for, so the program must not be PID 1).
unsafe fn become_init(status_fd: c_int) {
    let program = libc::fork();
    match program {
        -1 => fail("fork", errno()),
        0 => return,
        _ => {}
    }
    // Keep nothing of the run open (stdio, the exec-status pipe of `Command`) but the status pipe.
    libc::dup2(status_fd, 0);
    close_from(1);
    loop {
        let mut status: c_int = 0;
        let reaped = libc::waitpid(-1, &mut status, libc::__WALL);
        if reaped == program {
            write_all(0, &status.to_ne_bytes());
            libc::_exit(0);
        }
        if reaped < 0 && errno() != libc::EINTR {
            libc::_exit(SETUP_FAILED);
        }
    }
}

/// S before the fork: session, subreaper, signals, namespaces. Returns the namespace bits that
/// worked and the signal mask S started with (for P to restore).
unsafe fn enter_supervisor(plan: &Plan) -> (u8, libc::sigset_t) {
    // A new session and process group (pgid = our pid), detached from the host's terminal.
    if libc::setsid() < 0 {
        fail("setsid", errno());
    }
    // If the host thread that spawned us dies, so do we (and P, by its own death signal).
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
    // Orphans of the program (a double-forked daemon) are reparented to us, not to the host's
    // init, so we can kill them; this is the only defence when there is no PID namespace.
    libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as c_ulong);
    // Re-raising the program's fatal signal must not make S dump core into the host.
    set_rlimit(libc::RLIMIT_CORE, 0, 0);
    // Blocked before P exists, so that a SIGTERM arriving at any moment waits, pending, for
    // S's loop to take it (a handler setting a flag could fire just before S goes to sleep and
    // be missed; the host would then give up on S while P lives on). SIGCHLD must be delivered
    // (not discarded, not auto-reaped) whatever disposition the host process gave it.
    libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    let mut inherited_mask: libc::sigset_t = std::mem::zeroed();
    libc::sigprocmask(libc::SIG_BLOCK, &supervisor_signals(), &mut inherited_mask);

    let steps = plan.steps;
    let mut worked = Steps::default();
    // Not root: a user namespace owning the others, with our own ids mapped to themselves, so
    // the program keeps no capability after exec. As root it is not needed (and would not help:
    // the uid drop below is what takes root's powers away).
    if steps.user_ns {
        worked.user_ns = libc::unshare(libc::CLONE_NEWUSER) == 0
            && write_file(c"/proc/self/setgroups", b"deny")
            && write_file(c"/proc/self/uid_map", plan.uid_map.as_bytes())
            && write_file(c"/proc/self/gid_map", plan.gid_map.as_bytes());
        require(plan, worked.user_ns, "user namespace");
    }
    if steps.net_ns {
        // A network namespace has only a loopback interface, and it is down: no network at all.
        worked.net_ns = if plan.netns_fd >= 0 {
            libc::setns(plan.netns_fd, libc::CLONE_NEWNET) == 0
        } else {
            libc::unshare(libc::CLONE_NEWNET) == 0
        };
        require(plan, worked.net_ns, "network namespace");
    }
    if steps.mount_ns {
        // IPC and UTS ride along: SysV shared memory and the hostname are not the host's either.
        worked.mount_ns = libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS)
            == 0
            // Our mounts must never propagate back to the host.
            && mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None);
        require(plan, worked.mount_ns, "mount namespace");
    }
    if steps.pid_ns {
        // Applies to our next child (P): when P exits, the kernel kills everything else in the
        // namespace, whatever it did to leave P's process group or session.
        worked.pid_ns = libc::unshare(libc::CLONE_NEWPID) == 0;
        require(plan, worked.pid_ns, "PID namespace");
    }
    (worked.to_bits(), inherited_mask)
}

/// S after the fork: wait for P, kill and reap what is left, report the program's status.
unsafe fn supervise(
    plan: &Plan,
    first: libc::pid_t,
    status_read: c_int,
    done_fd: c_int,
    namespaces: u8,
) -> ! {
    // Nothing in S may keep a pipe of the run open: the host's reads end when every copy is
    // closed, and `Command::spawn` waits for its exec-status pipe to close. Only the status pipe
    // (moved to descriptor 0) and the done pipe (moved to 1) stay.
    libc::dup2(status_read, 0);
    libc::dup2(done_fd, 1);
    close_from(2);
    let mut status: c_int = 0;
    let mut stopped = false;
    let signals = supervisor_signals();
    loop {
        let reaped = libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL);
        if reaped == first {
            break;
        }
        if reaped > 0 {
            // An orphan reparented to us, now reaped; look for more before sleeping.
            continue;
        }
        if reaped < 0 && errno() != libc::EINTR {
            // No child at all: cannot happen before P is reaped.
            libc::_exit(SETUP_FAILED);
        }
        // Nothing has ended yet. Both signals are blocked, so one raised since the waitpid
        // above is pending and ends this wait at once: no wake-up is lost.
        if libc::sigwaitinfo(&signals, std::ptr::null_mut()) == libc::SIGTERM && !stopped {
            // Killing P ends the PID namespace: the kernel kills everything in it and P's
            // exit waits until all of it is gone, so reaping P below means the run is over.
            libc::kill(first, libc::SIGKILL);
            stopped = true;
        }
    }
    // P as init reports the program's status; P as the program (or a killed P) does not.
    let mut reported = [0u8; 4];
    if libc::read(0, reported.as_mut_ptr() as *mut c_void, 4) == 4 {
        status = c_int::from_ne_bytes(reported);
    }
    kill_leftovers(first, plan.steps.pid_ns);
    if plan.probe {
        let program_bits = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 0 };
        libc::_exit(program_bits | i32::from(namespaces));
    }
    // Everything of the run is dead: tell the host now. Our own exit tears down the namespaces
    // (tmpfs, /proc, network), which takes milliseconds the host need not wait for.
    write_all(1, &status.to_ne_bytes());
    // The host also learns the status from our exit (its fallback when the pipe broke).
    if libc::WIFSIGNALED(status) {
        // Die of the same signal so that the host can tell a crash from an exit.
        let signal = libc::WTERMSIG(status);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// Kills and reaps every process the program left: the process group of `first` (P), and
/// (without a PID namespace) every orphan reparented to us, until we have no child left.
unsafe fn kill_leftovers(first: libc::pid_t, pid_ns: bool) {
    loop {
        // The group outlives its leader: the pgid cannot be reused while members remain.
        libc::kill(-first, libc::SIGKILL);
        if !pid_ns {
            kill_children();
        }
        let mut status = 0;
        if libc::waitpid(-1, &mut status, libc::__WALL) < 0 && errno() == libc::ECHILD {
            return;
        }
    }
}

/// SIGKILLs every direct child of S, read from /proc/thread-self/children (S has one thread).
unsafe fn kill_children() {
    let fd = libc::open(c"/proc/thread-self/children".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return;
    }
    let mut buffer = [0u8; 4096];
    let mut pid: libc::pid_t = 0;
    loop {
        let n = libc::read(fd, buffer.as_mut_ptr() as *mut c_void, buffer.len());
        if n <= 0 {
            break;
        }
        // Space-separated decimal pids; a number may straddle two reads.
        for &byte in &buffer[..n as usize] {
            if byte.is_ascii_digit() {
                pid = pid.saturating_mul(10).saturating_add(libc::pid_t::from(byte - b'0'));
            } else if pid > 0 {
                libc::kill(pid, libc::SIGKILL);
                pid = 0;
            }
        }
    }
    if pid > 0 {
        libc::kill(pid, libc::SIGKILL);
    }
    libc::close(fd);
}

/// P: private directories, privileges dropped, limits; then back to `Command` for the exec.
unsafe fn prepare_program(plan: &Plan, namespaces: u8) {
    let steps = plan.steps;
    let mut worked = Steps::from_bits(namespaces);
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
    // Our own process group, so that S can kill it (and everything still in it) without
    // killing itself.
    libc::setpgid(0, 0);

    // Mounting is only ever done inside our own mount namespace: the same calls in the host's
    // namespace would cover the host's directories.
    if steps.tmpfs && worked.mount_ns {
        // The working directory lives in memory, is size-limited, is invisible to every other
        // process, and vanishes with the mount namespace: nothing to clean up on disk.
        worked.tmpfs = mount(
            Some(c"tmpfs"),
            &plan.run_dir,
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&plan.tmpfs_options),
        ) && plan.covers.iter().all(|cover| mount_cover(cover));
        require(plan, worked.tmpfs, "private tmpfs");
    }
    if steps.proc && worked.mount_ns && worked.pid_ns {
        // A /proc of the new PID namespace: the host's processes (and their environments and
        // command lines) are not listed there.
        worked.proc = mount(
            Some(c"proc"),
            c"/proc",
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        );
        require(plan, worked.proc, "private /proc");
    }
    if libc::chdir(plan.run_dir.as_ptr()) != 0 {
        fail("chdir", errno());
    }
    if steps.uid_drop {
        let id = plan.sandbox_id;
        worked.uid_drop = libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(id) == 0
            && libc::setuid(id) == 0;
        require(plan, worked.uid_drop, "uid drop");
    }
    for (name, contents) in &plan.files {
        if !create_file(name, contents) {
            fail("writing the program files", errno());
        }
    }
    // No setuid binary can give privileges back (and Landlock requires it when unprivileged).
    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong);
    if steps.landlock {
        worked.landlock = landlock::restrict_writes_to_cwd().is_ok();
        require(plan, worked.landlock, "Landlock");
    }
    if plan.probe {
        libc::_exit(i32::from(worked.to_bits()));
    }
    // Descriptors the host leaked without O_CLOEXEC must not reach the program; marking them
    // close-on-exec (rather than closing) keeps `Command`'s own exec-status pipe working.
    mark_cloexec_from(3);
    if libc::fcntl(plan.report_fd, libc::F_SETFD, 0) != 0 {
        fail("report pipe", errno());
    }
    for &(resource, soft, hard) in &plan.rlimits {
        if !set_rlimit(resource, soft, hard) {
            fail("setrlimit", errno());
        }
    }
}

/// Covers a private directory with an empty tmpfs and binds the needed paths back, read-only.
unsafe fn mount_cover(cover: &Cover) -> bool {
    // Opened before the cover hides them, in this mount namespace (a bind source must be in it).
    let mut sources = [-1 as c_int; MAX_BINDS];
    for (source, target) in sources.iter_mut().zip(&cover.binds) {
        *source = libc::open(target.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if *source < 0 {
            return false;
        }
    }
    let covered = mount(
        Some(c"tmpfs"),
        &cover.dir,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755,size=1m"),
    );
    let remount =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    let done = covered
        && cover
            .mkdirs
            .iter()
            .all(|dir| libc::mkdir(dir.as_ptr(), 0o755) == 0 || errno() == libc::EEXIST)
        && sources.iter().zip(&cover.binds).all(|(&source, target)| {
            let mut path = [0u8; 32];
            let source_path = fd_path(source, &mut path);
            mount(Some(source_path), target, None, libc::MS_BIND | libc::MS_REC, None)
                && mount(None, target, None, remount, None)
        });
    for &fd in sources.iter().filter(|&&fd| fd >= 0) {
        libc::close(fd);
    }
    done
}

/// "/proc/self/fd/<fd>" written into `buffer`, without allocating.
fn fd_path(fd: c_int, buffer: &mut [u8; 32]) -> &std::ffi::CStr {
    let prefix = b"/proc/self/fd/";
    buffer[..prefix.len()].copy_from_slice(prefix);
    let digits = decimal(fd.unsigned_abs());
    let end = prefix.len() + digits.len();
    buffer[prefix.len()..end].copy_from_slice(&digits);
    buffer[end] = 0;
    std::ffi::CStr::from_bytes_with_nul(&buffer[..=end]).expect("one NUL at the end")
}

/// The decimal digits of `value`, without allocating.
fn decimal(mut value: u32) -> DecimalDigits {
    let mut digits = DecimalDigits { bytes: [0; 10], start: 10 };
    loop {
        digits.start -= 1;
        digits.bytes[digits.start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return digits;
        }
    }
}

struct DecimalDigits {
    bytes: [u8; 10],
    start: usize,
}

impl std::ops::Deref for DecimalDigits {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// In probe mode a step that fails is just not reported; in a real run it aborts the run, since
/// the probe found it working and running with less isolation than reported is not acceptable.
unsafe fn require(plan: &Plan, worked: bool, step: &str) {
    if !worked && !plan.probe {
        fail(step, errno());
    }
}

/// Writes "reasonrl sandbox: <step> failed (errno N)" to stderr and exits with [`SETUP_FAILED`].
unsafe fn fail(step: &str, errno: c_int) -> ! {
    let digits = decimal(errno.unsigned_abs());
    for part in
        [SETUP_FAILED_PREFIX.as_bytes(), step.as_bytes(), b" failed (errno ", &digits, b")\n"]
    {
        libc::write(2, part.as_ptr() as *const c_void, part.len());
    }
    libc::_exit(SETUP_FAILED)
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

unsafe fn mount(
    source: Option<&std::ffi::CStr>,
    target: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: c_ulong,
    data: Option<&std::ffi::CStr>,
) -> bool {
    let ptr = |s: Option<&std::ffi::CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    libc::mount(ptr(source), target.as_ptr(), ptr(fstype), flags, ptr(data) as *const c_void) == 0
}

unsafe fn write_file(path: &std::ffi::CStr, contents: &[u8]) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let ok = write_all(fd, contents);
    libc::close(fd);
    ok
}

unsafe fn create_file(name: &std::ffi::CStr, contents: &[u8]) -> bool {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = libc::open(name.as_ptr(), flags, 0o600);
    if fd < 0 {
        return false;
    }
    let ok = write_all(fd, contents);
    libc::close(fd);
    ok
}

unsafe fn write_all(fd: c_int, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let n = libc::write(fd, bytes.as_ptr() as *const c_void, bytes.len());
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

unsafe fn set_rlimit(resource: Resource, soft: u64, hard: u64) -> bool {
    let limit = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
    libc::setrlimit(resource, &limit) == 0
}

/// Highest descriptor to sweep when `close_range` is missing (Linux < 5.9 / 5.11).
const FALLBACK_MAX_FD: c_int = 4096;

unsafe fn close_from(first: c_int) {
    if libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0) != 0 {
        for fd in first..FALLBACK_MAX_FD {
            libc::close(fd);
        }
    }
}

unsafe fn mark_cloexec_from(first: c_int) {
    let flags = libc::CLOSE_RANGE_CLOEXEC as libc::c_uint;
    if libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, flags) != 0 {
        for fd in first..FALLBACK_MAX_FD {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}
