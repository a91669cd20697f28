//! Running untrusted programs (model-written code) safely and fast.
//!
//! Every run gets, whatever the kernel offers:
//!
//! | protection | how | without it |
//! |---|---|---|
//! | own session and process group | `setsid` | — (always) |
//! | limits | `RLIMIT_CPU`, `_AS`, `_FSIZE`, `_NOFILE`, `_NPROC`, `_CORE = 0` | — (always) |
//! | empty environment | only `PATH`, `LANG`, `HOME`/`TMPDIR` (its directory), `*_NUM_THREADS=1` | — (always) |
//! | fresh directory, removed after | a tmpfs in its mount namespace (else a host temp dir) | files are on disk until removed |
//! | no network | a network namespace (only a downed loopback) | Landlock ≥ 4 still denies TCP |
//! | no writes outside its directory | Landlock | only file permissions (and the uid drop) |
//! | unprivileged | as root: a per-run uid/gid; not root: a user namespace | runs with the host's rights |
//! | no daemon survives | a PID namespace whose init (ours) exits with the program | a subreaper kills reparented orphans |
//! | host processes invisible | a fresh /proc in its PID namespace | host /proc (protected by the uid drop) |
//!
//! Which protections work here is found out once, at first use, by a probe that takes the very
//! steps a run takes ([`capabilities`]); each run then requires them.
//!
//! The process tree of one run: the host spawns a supervisor (S) in a new session; S creates the
//! namespaces and forks P, the PID namespace's init, which forks the program. At the deadline the
//! host asks S (SIGTERM) to kill P, whose death takes the whole namespace along. S then kills
//! whatever is left (P's group, orphans it inherited), reaps it all and reports the program's
//! status on a pipe: from then on nothing of the run is alive. S's own exit (which tears down the
//! namespaces) and the removal of the working directory are awaited in the background. S is
//! never killed by the host: if emptying the namespace takes longer than the stop grace (a fork
//! bomb on a busy machine), the run's call returns and S finishes in the background too, and a
//! batch waits for all of that before it returns. See `child.rs`.
//!
//! [`python`] runs Python test suites (assert style and stdin/stdout style) on top of [`run`].

mod capture;
mod child;
mod landlock;
pub mod python;

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use capture::{Ending, Outcome};

use child::{Cover, Plan, Resource, Steps};

/// Resource limits of one run.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock deadline; the run is killed when it passes.
    pub wall_time: Duration,
    /// Address space (`RLIMIT_AS`), bytes.
    pub memory_bytes: u64,
    /// Largest file the program may write (`RLIMIT_FSIZE`); the tmpfs holds 4× this in total.
    pub file_bytes: u64,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Processes and threads of the run's uid (`RLIMIT_NPROC`); each run has its own uid when
    /// the host is root, so one run's fork bomb cannot starve another.
    pub processes: u64,
    /// Bytes of stdout kept; writing more to stdout (or more than this to stderr) ends the run
    /// with [`Ending::OutputLimit`]. Pipes are read as they fill, so nothing blocks.
    pub max_output_bytes: usize,
    /// Bytes kept from the end of stderr.
    pub stderr_tail_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            file_bytes: 16 << 20,
            open_files: 256,
            processes: 128,
            max_output_bytes: 16 << 20,
            stderr_tail_bytes: 4096,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        let secs = self.wall_time.as_secs_f64();
        if !(secs > 0.0 && secs <= 86_400.0) {
            return Err(Error::invalid("timeout_s", format!("must be in (0, 86400], got {secs}")));
        }
        if self.memory_bytes < 32 << 20 {
            return Err(Error::invalid(
                "memory_mb",
                format!(
                    "must be at least 32 (an interpreter needs that much to start), got {}",
                    self.memory_bytes >> 20
                ),
            ));
        }
        if self.open_files < 16 || self.processes < 1 || self.file_bytes == 0 {
            return Err(Error::invalid("limits", "open_files ≥ 16, processes ≥ 1, file_bytes ≥ 1"));
        }
        Ok(())
    }
}

/// One program to run.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    /// The executable (absolute path; `PATH` is not searched).
    pub program: &'a Path,
    /// Arguments; an argument equal to [`REPORT_FD`] is replaced by the number of the report
    /// descriptor: a pipe, separate from stdout, whose contents come back in
    /// [`Outcome::report`] (Python harnesses write their per-test verdicts there).
    pub args: &'a [OsString],
    /// Files created in the working directory before the program starts, `(name, contents)`.
    pub files: &'a [(&'a str, &'a [u8])],
    /// Bytes fed to stdin (`None`: stdin is /dev/null).
    pub stdin: Option<&'a [u8]>,
}

/// Placeholder argument replaced by the report descriptor's number (see [`Job::args`]).
pub const REPORT_FD: &str = "{report_fd}";

/// Which protections are active on this machine. Found once per process by [`capabilities`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Running as root (then programs run under a per-run uid instead of a user namespace).
    pub root: bool,
    /// A user namespace could be created (only needed, and only tried, when not root).
    pub user_namespace: bool,
    pub network_namespace: bool,
    pub mount_namespace: bool,
    pub pid_namespace: bool,
    /// The working directory is a size-limited tmpfs private to the run.
    pub private_tmpfs: bool,
    /// The run sees only its own processes in /proc.
    pub private_proc: bool,
    /// The Landlock ABI the kernel offers (0: none) and whether it is applied.
    pub landlock_abi: i32,
    pub landlock: bool,
    /// Programs run under an unprivileged per-run uid (root host) or with no capabilities in
    /// their own user namespace (non-root host).
    pub unprivileged: bool,
    /// Without a PID namespace: /proc/thread-self/children lets the supervisor find orphans.
    pub orphan_reaping: bool,
}

impl Capabilities {
    /// One sentence per missing protection, saying what the program can then do.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.network_namespace {
            missing.push(if self.landlock_abi >= 4 && self.landlock {
                "no network namespace: programs cannot use TCP (Landlock) but can use UDP and other sockets".to_string()
            } else {
                "no network namespace: programs can open network connections".to_string()
            });
        }
        if !self.landlock {
            missing.push(
                "no Landlock: programs can write wherever file permissions let their user write"
                    .to_string(),
            );
        } else if self.landlock_abi < 6 && !self.pid_namespace {
            missing.push(format!(
                "Landlock ABI {} (< 6) and no PID namespace: programs can signal other processes of their user",
                self.landlock_abi
            ));
        }
        if !self.unprivileged {
            missing.push(
                "no privilege drop: programs run with the rights of the host user (reading its files)".to_string(),
            );
        }
        if !self.pid_namespace {
            missing.push(if self.orphan_reaping {
                "no PID namespace: leftover processes are found and killed through the subreaper only".to_string()
            } else {
                "no PID namespace and no /proc/thread-self/children: a daemon that leaves its process group can outlive the run".to_string()
            });
        }
        if !self.private_tmpfs {
            missing.push(
                "no private tmpfs: working directories are on the host's disk (removed after each run)".to_string(),
            );
        }
        if self.pid_namespace && !self.private_proc {
            missing.push("no private /proc: programs can list the host's processes".to_string());
        }
        missing
    }
}

/// The protections active on this machine, probed once (a few milliseconds) at first use.
pub fn capabilities() -> &'static Capabilities {
    &setup().capabilities
}

struct Setup {
    capabilities: Capabilities,
    steps: Steps,
    /// As root: one empty network namespace that every run joins. Creating and destroying a
    /// namespace per run costs milliseconds of kernel time (destruction waits for RCU grace
    /// periods); sharing one loses nothing: its loopback is down, so runs cannot reach each
    /// other over IP (and Landlock ≥ 6 scopes abstract unix sockets to each run).
    netns: Option<OwnedFd>,
}

impl Setup {
    fn netns_fd(&self) -> RawFd {
        self.netns.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

/// A fresh network namespace held by a descriptor. A thread's network namespace is its own,
/// so a throwaway thread enters a new one and opens a handle on it; the host is unchanged.
fn empty_network_namespace() -> Option<OwnedFd> {
    std::thread::spawn(|| {
        // SAFETY: unshare affects only this thread; open returns a descriptor we then own.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return None;
            }
            let fd =
                libc::open(c"/proc/thread-self/ns/net".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
        }
    })
    .join()
    .ok()
    .flatten()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = unsafe { libc::geteuid() } == 0;
        let wanted = Steps {
            user_ns: !root,
            net_ns: true,
            mount_ns: true,
            pid_ns: true,
            tmpfs: true,
            proc: true,
            landlock: true,
            uid_drop: root,
        };
        // Only root may join a namespace it did not create in its own user namespace.
        let netns = if root { empty_network_namespace() } else { None };
        let netns_fd = netns.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        let steps = probe(wanted, netns_fd);
        let landlock_abi = landlock::abi_version();
        let capabilities = Capabilities {
            root,
            user_namespace: steps.user_ns,
            network_namespace: steps.net_ns,
            mount_namespace: steps.mount_ns,
            pid_namespace: steps.pid_ns,
            private_tmpfs: steps.tmpfs,
            private_proc: steps.proc,
            landlock_abi,
            landlock: steps.landlock,
            unprivileged: if root { steps.uid_drop } else { steps.user_ns },
            orphan_reaping: Path::new("/proc/thread-self/children").exists(),
        };
        Setup { capabilities, steps, netns }
    })
}

/// Runs the set-up of a real run in probe mode: each step that works sets its bit in the exit
/// code. The host's own process is never changed by a probe.
fn probe(wanted: Steps, netns_fd: RawFd) -> Steps {
    let Ok(run_dir) = RunDir::create() else { return Steps::default() };
    let id = SandboxId::acquire();
    let Ok(plan) =
        build_plan(wanted, true, id.id, &run_dir, Vec::new(), &[], -1, &Limits::default())
    else {
        return Steps::default();
    };
    let plan = Plan { netns_fd, ..plan };
    let job = Job { program: Path::new("/"), args: &[], files: &[], stdin: None };
    let outcome =
        capture::run_planned(&job, &plan, &Limits::default(), None, Box::new((run_dir, id)));
    match outcome.ending {
        Ending::Exited(code) if (0..=255).contains(&code) && code != child::SETUP_FAILED => {
            let found = Steps::from_bits(code as u8);
            // A probe reports only steps it was asked to take.
            Steps::from_bits(found.to_bits() & wanted.to_bits())
        }
        _ => Steps::default(),
    }
}

/// Runs one program under every protection [`capabilities`] found, with `limits`.
/// `expose`: paths the program must be able to read although a directory above them is private
/// to the host user (e.g. a Python installed under /root); ignored unless the uid is dropped.
pub fn run(job: &Job<'_>, limits: &Limits, expose: &[PathBuf]) -> Outcome {
    let setup = setup();
    let failed = |message: String| Outcome::setup_failed(message);
    let run_dir = match RunDir::create() {
        Ok(dir) => dir,
        Err(e) => return failed(format!("creating the working directory: {e}")),
    };
    let id = SandboxId::acquire();
    let covers =
        if setup.steps.uid_drop && setup.steps.tmpfs { plan_covers(expose) } else { Vec::new() };
    if let Some(cover) = covers.iter().find(|c| c.binds.len() > child::MAX_BINDS) {
        return failed(format!(
            "more than {} paths to expose under {:?}",
            child::MAX_BINDS,
            cover.dir
        ));
    }
    let (report_read, report_write) = match capture::pipe() {
        Ok(pair) => pair,
        Err(e) => return failed(format!("creating the report pipe: {e}")),
    };
    if setup.steps.uid_drop && !setup.steps.tmpfs {
        // The program writes into the host directory as its own uid.
        let path =
            CString::new(run_dir.path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        if unsafe { libc::chown(path.as_ptr(), id.id, id.id) } != 0 {
            return failed(format!(
                "chown of the working directory: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let plan = match build_plan(
        setup.steps,
        false,
        id.id,
        &run_dir,
        covers,
        job.files,
        report_write.as_raw_fd(),
        limits,
    ) {
        Ok(plan) => Plan { netns_fd: setup.netns_fd(), ..plan },
        Err(e) => return failed(e),
    };
    let report_fd = report_write.as_raw_fd().to_string();
    let args: Vec<OsString> = job
        .args
        .iter()
        .map(|a| if a == REPORT_FD { report_fd.clone().into() } else { a.clone() })
        .collect();
    let job = Job { args: &args, ..job.clone() };
    capture::run_planned(
        &job,
        &plan,
        limits,
        Some((report_read, report_write)),
        Box::new((run_dir, id)),
    )
}

#[allow(clippy::too_many_arguments)]
fn build_plan(
    steps: Steps,
    probe: bool,
    sandbox_id: u32,
    run_dir: &RunDir,
    covers: Vec<Cover>,
    files: &[(&str, &[u8])],
    report_fd: i32,
    limits: &Limits,
) -> Result<Plan, String> {
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let c = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| "a path or file name contains a NUL byte".to_string())
    };
    let owner = if steps.uid_drop { sandbox_id } else { uid };
    let owner_group = if steps.uid_drop { sandbox_id } else { gid };
    let cpu_secs = limits.wall_time.as_secs_f64().ceil() as u64 + 1;
    let rlimits: Vec<(Resource, u64, u64)> = vec![
        // SIGXCPU at the soft limit, SIGKILL one second later: a CPU hog that blocks SIGXCPU.
        (libc::RLIMIT_CPU, cpu_secs, cpu_secs + 1),
        (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (libc::RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (libc::RLIMIT_NPROC, limits.processes, limits.processes),
        (libc::RLIMIT_CORE, 0, 0),
    ];
    Ok(Plan {
        steps,
        probe,
        sandbox_id,
        uid_map: c(format!("{uid} {uid} 1").as_bytes())?,
        gid_map: c(format!("{gid} {gid} 1").as_bytes())?,
        run_dir: c(run_dir.path.as_os_str().as_bytes())?,
        tmpfs_options: c(format!(
            "size={},nr_inodes=4096,mode=0700,uid={owner},gid={owner_group}",
            limits.file_bytes.saturating_mul(4)
        )
        .as_bytes())?,
        covers,
        files: files
            .iter()
            .map(|(name, contents)| {
                if name.is_empty() || name.contains('/') || *name == "." || *name == ".." {
                    return Err(format!("invalid file name {name:?}"));
                }
                Ok((c(name.as_bytes())?, contents.to_vec()))
            })
            .collect::<Result<_, _>>()?,
        report_fd,
        netns_fd: -1,
        rlimits,
    })
}

/// For each path in `expose` under a directory that other users cannot traverse, the highest
/// such directory is covered and the path bound back (see [`Cover`]).
fn plan_covers(expose: &[PathBuf]) -> Vec<Cover> {
    use std::os::unix::fs::PermissionsExt;
    let mut paths: Vec<PathBuf> = expose.iter().filter_map(|p| p.canonicalize().ok()).collect();
    paths.sort();
    // A path inside another exposed path comes with it.
    paths.dedup_by(|later, earlier| later.starts_with(earlier));
    let mut covers: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for path in paths {
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        let private = ancestors
            .into_iter()
            .skip(1) // "/"
            .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
        if let Some(dir) = private {
            match covers.iter_mut().find(|(d, _)| d == dir) {
                Some((_, binds)) => binds.push(path.clone()),
                None => covers.push((dir.to_path_buf(), vec![path.clone()])),
            }
        }
    }
    let cstring =
        |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("canonical paths have no NUL");
    covers
        .into_iter()
        .map(|(dir, binds)| {
            let mut mkdirs: Vec<&Path> = Vec::new();
            for target in &binds {
                let mut steps: Vec<&Path> =
                    target.ancestors().take_while(|a| a.starts_with(&dir) && *a != dir).collect();
                steps.reverse();
                for step in steps {
                    if !mkdirs.contains(&step) {
                        mkdirs.push(step);
                    }
                }
            }
            Cover {
                dir: cstring(&dir),
                mkdirs: mkdirs.into_iter().map(cstring).collect(),
                binds: binds.iter().map(|b| cstring(b)).collect(),
            }
        })
        .collect()
}

/// A fresh directory under /tmp (which every uid can traverse), removed on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create() -> std::io::Result<RunDir> {
        let mut template = b"/tmp/reasonrl-run-XXXXXX\0".to_vec();
        // SAFETY: a writable NUL-terminated template, as mkdtemp requires.
        let made = unsafe { libc::mkdtemp(template.as_mut_ptr() as *mut libc::c_char) };
        if made.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        template.pop();
        Ok(RunDir { path: PathBuf::from(std::ffi::OsString::from_vec(template)) })
    }
}

use std::os::unix::ffi::OsStringExt;

impl Drop for RunDir {
    fn drop(&mut self) {
        // With a private tmpfs the directory is an empty mount point. Without one the program
        // may have left files, possibly with permissions that block removal: open them up first.
        if std::fs::remove_dir(&self.path).is_err() && std::fs::remove_dir_all(&self.path).is_err()
        {
            make_removable(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_removable(&entry.path());
            }
        }
    }
}

/// First uid/gid given to sandboxed programs when the host is root: far above the ranges that
/// distributions and container runtimes hand out, so no real user owns files under it.
const SANDBOX_ID_BASE: u32 = 0x7400_0000;

/// A uid (= gid) of its own for each concurrent run: RLIMIT_NPROC counts per uid, so a fork bomb
/// only exhausts its own run's budget, and runs cannot signal or read each other.
struct SandboxId {
    id: u32,
}

static FREE_IDS: Mutex<(Vec<u32>, u32)> = Mutex::new((Vec::new(), 0));

impl SandboxId {
    fn acquire() -> SandboxId {
        let mut ids = FREE_IDS.lock().unwrap_or_else(|p| p.into_inner());
        let id = ids.0.pop().unwrap_or_else(|| {
            ids.1 += 1;
            SANDBOX_ID_BASE + ids.1 - 1
        });
        SandboxId { id }
    }
}

impl Drop for SandboxId {
    fn drop(&mut self) {
        // Only returned once the run's supervisor has exited, i.e. no process of it is left.
        FREE_IDS.lock().unwrap_or_else(|p| p.into_inner()).0.push(self.id);
    }
}

#[cfg(test)]
mod tests;
