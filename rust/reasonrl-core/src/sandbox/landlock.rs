//! Landlock through raw syscalls: the program may write only beneath its working directory (and
//! to /dev/null); with ABI ≥ 4 it may not bind or connect TCP sockets; with ABI ≥ 6 it may not
//! signal processes outside its own domain (the host, other sandboxes) nor reach abstract unix
//! sockets outside it.
//!
//! Why not the `landlock` crate: the rules must be built in the forked child (the working
//! directory is a tmpfs mounted there, so it has no inode the parent could name), where only
//! allocation-free, async-signal-safe code may run. The raw interface is four structs and three
//! syscalls.

use libc::{c_int, c_long, c_void};

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: c_int = 1;

const FS_WRITE_FILE: u64 = 1 << 1;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2: linking or renaming a file into another directory.
const FS_REFER: u64 = 1 << 13;
/// ABI 3.
const FS_TRUNCATE: u64 = 1 << 14;
/// ABI 4.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
/// ABI 6.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel supports, 0 when it has none (or it is disabled).
pub(super) fn abi_version() -> i32 {
    // SAFETY: the documented version query: null attributes, size 0.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    version.max(0) as i32
}

/// Restricts the calling process (and everything it later runs) as described in the module
/// docs. Async-signal-safe. Requires `PR_SET_NO_NEW_PRIVS` (or CAP_SYS_ADMIN).
///
/// # Safety
/// Only syscalls; safe to call anywhere, meant for the child between fork and exec.
pub(super) unsafe fn restrict_writes_to_cwd() -> Result<(), c_long> {
    let abi = abi_version();
    if abi < 1 {
        return Err(-1);
    }
    let mut writes = FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    let mut file_writes = FS_WRITE_FILE;
    if abi >= 2 {
        writes |= FS_REFER;
    }
    if abi >= 3 {
        writes |= FS_TRUNCATE;
        file_writes |= FS_TRUNCATE;
    }
    // Fields the kernel does not know must be zero, so each is set only from its ABI on.
    let attr = RulesetAttr {
        handled_access_fs: writes,
        handled_access_net: if abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
        scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
    };
    let ruleset = libc::syscall(
        libc::SYS_landlock_create_ruleset,
        &attr as *const RulesetAttr,
        std::mem::size_of::<RulesetAttr>(),
        0u32,
    );
    if ruleset < 0 {
        return Err(ruleset);
    }
    let ruleset = ruleset as c_int;
    let allowed = allow_beneath(ruleset, c".", libc::O_DIRECTORY, writes)
        && allow_beneath(ruleset, c"/dev/null", 0, file_writes);
    let restricted = allowed && libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) == 0;
    libc::close(ruleset);
    if restricted {
        Ok(())
    } else {
        Err(-1)
    }
}

unsafe fn allow_beneath(ruleset: c_int, path: &std::ffi::CStr, flags: c_int, access: u64) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags);
    if fd < 0 {
        return false;
    }
    let rule = PathBeneathAttr { allowed_access: access, parent_fd: fd };
    let added = libc::syscall(
        libc::SYS_landlock_add_rule,
        ruleset,
        RULE_PATH_BENEATH,
        &rule as *const PathBeneathAttr,
        0u32,
    ) == 0;
    libc::close(fd);
    added
}
