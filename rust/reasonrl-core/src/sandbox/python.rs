//! Python test suites run in the sandbox, a batch at a time.
//!
//! Two styles of tests:
//!
//! * [`Tests::Asserts`] (HumanEval, MBPP): code run after the program, in the program's own
//!   `__main__` namespace. Each snippet is a test case, run even when an earlier one failed, so
//!   the fraction of cases passed is known; the whole suite shares one process and one deadline.
//! * [`Tests::Io`] (competitive programming): the program reads a case's input on stdin and must
//!   print the expected output, compared token by token (any run of whitespace, including
//!   trailing spaces and newlines, separates tokens). One process and one deadline per case;
//!   after a syntax error or a timeout the remaining cases are not run (and count as failed).
//!
//! A small harness (below) executes the program and the tests and writes one verdict per line to
//! the report pipe, tagged with a random nonce. A program that exits early, prints fake verdicts
//! to stdout or writes to a guessed descriptor therefore gains nothing. (Code running in the same
//! interpreter as its tests can, with enough introspection, still reach the nonce; the harness
//! raises the bar against reward hacking, it is not a proof.)

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use rayon::prelude::*;

use super::{run, Ending, Job, Limits, Outcome, REPORT_FD};
use crate::error::{Error, Result};
use crate::parallel;

/// The test cases of one program.
#[derive(Clone, Debug)]
pub enum Tests {
    /// Python code snippets run after the program, one test case each.
    Asserts(Vec<String>),
    /// `(stdin, expected stdout)` pairs.
    Io(Vec<(String, String)>),
}

impl Tests {
    pub fn len(&self) -> usize {
        match self {
            Tests::Asserts(cases) => cases.len(),
            Tests::Io(cases) => cases.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a program's run ended, from best to worst diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Every test case passed and the process exited cleanly.
    Passed,
    /// A test case failed: an assertion, an exception, a wrong answer, an early exit.
    Failed,
    /// The wall-clock deadline or the CPU-time limit was reached.
    Timeout,
    /// The address-space limit was reached (`MemoryError`).
    Memory,
    /// The interpreter died of a signal (segfault from a C-stack overflow, abort, …).
    Crashed,
    /// The program does not compile.
    SyntaxError,
    /// The program wrote more than the output limit.
    OutputLimit,
    /// The sandbox could not run the program (not the program's fault); see the stderr tail.
    SandboxError,
}

impl Status {
    pub const NAMES: [&'static str; 8] = [
        "passed",
        "failed",
        "timeout",
        "memory",
        "crashed",
        "syntax_error",
        "output_limit",
        "sandbox_error",
    ];

    pub fn name(self) -> &'static str {
        Status::NAMES[self as usize]
    }
}

/// The verdict on one program.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    pub status: Status,
    pub tests_passed: usize,
    pub tests_total: usize,
    /// Summed over the processes of this program (one per case for [`Tests::Io`]).
    pub wall_time: Duration,
    /// The end of stderr of the run that decided the status (at most `Limits::stderr_tail_bytes`).
    pub stderr_tail: String,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    /// Fraction of test cases passed, in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.tests_total == 0 {
            0.0
        } else {
            self.tests_passed as f64 / self.tests_total as f64
        }
    }
}

/// Where and how to run Python.
#[derive(Clone, Debug)]
pub struct PythonConfig {
    /// Absolute path of the interpreter.
    pub interpreter: PathBuf,
    /// Paths the interpreter needs (its prefixes), made readable inside the sandbox even when a
    /// directory above them is private to the host user (e.g. a Python under /root).
    pub expose: Vec<PathBuf>,
    pub limits: Limits,
}

/// Runs every program against its tests, `threads` at a time (default: the configured count),
/// so a batch never has more than that many programs alive at once.
pub fn run_tests(
    programs: &[String],
    tests: &[Tests],
    config: &PythonConfig,
    threads: Option<usize>,
) -> Result<Vec<TestResult>> {
    if programs.len() != tests.len() {
        return Err(Error::invalid(
            "tests",
            format!("{} test suites for {} programs", tests.len(), programs.len()),
        ));
    }
    if let Some(i) = tests.iter().position(Tests::is_empty) {
        return Err(Error::invalid("tests", format!("program {i} has no test cases")));
    }
    config.limits.validate()?;
    let interpreter = &config.interpreter;
    if !interpreter.is_absolute() || !interpreter.is_file() {
        return Err(Error::invalid(
            "interpreter",
            format!("{} is not an absolute path to a file", interpreter.display()),
        ));
    }
    let results = parallel::install(threads, || {
        // One program per task: runs take milliseconds to seconds, so balance beats batching.
        (0..programs.len())
            .into_par_iter()
            .with_max_len(1)
            .map(|i| match &tests[i] {
                Tests::Asserts(cases) => run_asserts(&programs[i], cases, config),
                Tests::Io(cases) => run_io(&programs[i], cases, config),
            })
            .collect()
    })?;
    // The last runs' teardown (namespaces, tmpfs) finishes in the background; wait for it so
    // that no process of this batch outlives the call.
    super::capture::wait_for_reaper(Duration::from_secs(5));
    Ok(results)
}

/// Executes `program.py` as `__main__`, then each `test_<i>.py` in the same namespace; writes
/// `<nonce> <verdict> <index>` lines to the report descriptor. Deletes itself and the tests
/// first so that the program can read neither the nonce nor the expected answers from files.
const HARNESS: &str = r#"
def _harness(nonce, report_fd, n_tests):
    import builtins, os, sys

    # Held here, not looked up when the tests run: a program that replaces `builtins.exec` or
    # `builtins.compile` (with a function that runs nothing) would otherwise pass every test.
    exec_, compile_ = builtins.exec, builtins.compile

    names = ["program.py"] + ["test_%d.py" % i for i in range(n_tests)]
    sources = []
    for name in names:
        with open(name, "rb") as file:
            sources.append(file.read())
    # The tests (expected answers) and this file (the nonce) are not the program's to read;
    # program.py stays so that tracebacks can quote its lines.
    for name in names[1:] + ["harness.py"]:
        os.unlink(name)
    report = os.fdopen(report_fd, "w")

    def say(verdict, index=-1):
        report.write("%s %s %d\n" % (nonce, verdict, index))
        report.flush()

    def show(error, skip_frames):
        # The interpreter's own printer: importing `traceback` costs more than most programs take.
        frames = error.__traceback__
        for _ in range(skip_frames):
            frames = frames.tb_next if frames is not None else None
        limit = getattr(sys, "tracebacklimit", None)
        # Only the innermost frames: a 10**6-deep RecursionError takes seconds to print in full.
        sys.tracebacklimit = 30
        try:
            # The printer reads `__traceback__`, not its third argument.
            sys.__excepthook__(type(error), error.with_traceback(frames), frames)
        finally:
            if limit is None:
                del sys.tracebacklimit
            else:
                sys.tracebacklimit = limit

    def run(code, namespace):
        try:
            exec_(code, namespace)
        except MemoryError:
            return "memory"
        except SystemExit as exit:
            if exit.code is None or exit.code == 0:
                return "exit"
            show(exit, 1)
            return "error"
        except BaseException as error:
            show(error, 1)
            return "error"
        return "ok"

    def compiled(source, name):
        try:
            return compile_(source, name, "exec")
        except (SyntaxError, ValueError) as error:  # ValueError: a NUL byte in the source
            show(error, 99)
            return None

    say("start")
    program = compiled(sources[0], "program.py")
    if program is None:
        say("syntax_error")
        return 1
    # The program runs in the real __main__ module, as `python program.py` would run it; this
    # function keeps what it needs in locals.
    namespace = sys.modules["__main__"].__dict__
    namespace.clear()
    namespace.update(__name__="__main__", __file__="program.py", __builtins__=builtins)
    sys.argv = ["program.py"]
    verdict = run(program, namespace)
    say("program_" + verdict)
    if verdict == "ok":
        for index in range(n_tests):
            test = compiled(sources[index + 1], "test_%d.py" % index)
            say("test_error" if test is None else "test_" + run(test, namespace), index)
    elif n_tests:
        print("reasonrl: the program ended before its tests ran", file=sys.stderr)
    sys.stdout.flush()
    say("done")
    return 0 if verdict in ("ok", "exit") else 1


raise SystemExit(_harness(NONCE, int(REPORT_FD_ARG), N_TESTS))
"#;

/// What the harness reported.
#[derive(Default)]
struct Report {
    started: bool,
    syntax_error: bool,
    /// `program_<verdict>`: "ok", "exit", "memory" or "error".
    program: Option<String>,
    tests_ok: Vec<bool>,
    memory: bool,
    done: bool,
}

impl Report {
    fn parse(bytes: &[u8], nonce: &str, n_tests: usize) -> Report {
        let mut report = Report { tests_ok: vec![false; n_tests], ..Report::default() };
        for line in String::from_utf8_lossy(bytes).lines() {
            let mut words = line.split(' ');
            if words.next() != Some(nonce) {
                continue;
            }
            let (Some(verdict), Some(index)) = (words.next(), words.next()) else { continue };
            let index = index.parse::<usize>().ok().filter(|&i| i < n_tests);
            match (verdict, index) {
                ("start", _) => report.started = true,
                ("syntax_error", _) => report.syntax_error = true,
                ("done", _) => report.done = true,
                ("test_ok", Some(i)) => report.tests_ok[i] = true,
                ("test_memory", Some(_)) => report.memory = true,
                (verdict, _) => {
                    if let Some(program) = verdict.strip_prefix("program_") {
                        report.memory |= program == "memory";
                        report.program = Some(program.to_string());
                    }
                }
            }
        }
        report
    }

    fn passed(&self) -> usize {
        self.tests_ok.iter().filter(|&&ok| ok).count()
    }
}

/// One harness process: the program and `tests` (none for an stdin/stdout case).
fn run_harness(
    program: &str,
    tests: &[String],
    stdin: Option<&[u8]>,
    config: &PythonConfig,
) -> (Outcome, Report) {
    let nonce = nonce();
    let harness = HARNESS
        .replace("NONCE", &format!("{nonce:?}"))
        .replace("REPORT_FD_ARG", "sys.argv[1]")
        .replace("N_TESTS", &tests.len().to_string());
    // `sys` is imported by the last line only; the program never sees it in its namespace.
    let harness = format!("import sys\n{harness}");
    let test_names: Vec<String> = (0..tests.len()).map(|i| format!("test_{i}.py")).collect();
    let mut files: Vec<(&str, &[u8])> =
        vec![("harness.py", harness.as_bytes()), ("program.py", program.as_bytes())];
    files.extend(test_names.iter().map(String::as_str).zip(tests.iter().map(|t| t.as_bytes())));
    let args: Vec<OsString> =
        ["-I", "-B", "harness.py", REPORT_FD].iter().map(OsString::from).collect();
    let job = Job { program: &config.interpreter, args: &args, files: &files, stdin };
    let outcome = run(&job, &config.limits, &config.expose);
    let report = Report::parse(&outcome.report, &nonce, tests.len());
    (outcome, report)
}

/// The status of a finished harness process, before any output comparison.
fn classify(outcome: &Outcome, report: &Report, n_tests: usize) -> Status {
    let mentions_memory_error = || {
        let tail = String::from_utf8_lossy(&outcome.stderr_tail);
        tail.contains("MemoryError") || tail.contains("Cannot allocate memory")
    };
    match &outcome.ending {
        Ending::SetupFailed(_) => Status::SandboxError,
        Ending::TimedOut => Status::Timeout,
        // A syntax error is reported before the program runs, so the program cannot fake it.
        _ if report.syntax_error => Status::SyntaxError,
        Ending::OutputLimit => Status::OutputLimit,
        _ if report.memory => Status::Memory,
        Ending::Signaled(libc::SIGXCPU) => Status::Timeout,
        Ending::Signaled(_) if mentions_memory_error() => Status::Memory,
        Ending::Signaled(_) => Status::Crashed,
        // The interpreter died before the harness started (e.g. too little memory to start).
        Ending::Exited(_) if !report.started => {
            if mentions_memory_error() {
                Status::Memory
            } else {
                Status::SandboxError
            }
        }
        Ending::Exited(code) => {
            let program_ok = matches!(report.program.as_deref(), Some("ok" | "exit"));
            let all_tests = report.passed() == n_tests
                && (n_tests == 0 || report.program.as_deref() == Some("ok"));
            if *code == 0 && report.done && program_ok && all_tests {
                Status::Passed
            } else {
                Status::Failed
            }
        }
    }
}

fn run_asserts(program: &str, cases: &[String], config: &PythonConfig) -> TestResult {
    let (outcome, report) = run_harness(program, cases, None, config);
    let status = classify(&outcome, &report, cases.len());
    TestResult {
        status,
        tests_passed: if status == Status::SyntaxError { 0 } else { report.passed() },
        tests_total: cases.len(),
        wall_time: outcome.wall_time,
        stderr_tail: stderr_text(&outcome),
    }
}

fn run_io(program: &str, cases: &[(String, String)], config: &PythonConfig) -> TestResult {
    let mut result = TestResult {
        status: Status::Passed,
        tests_passed: 0,
        tests_total: cases.len(),
        wall_time: Duration::ZERO,
        stderr_tail: String::new(),
    };
    for (input, expected) in cases {
        let (outcome, report) = run_harness(program, &[], Some(input.as_bytes()), config);
        result.wall_time += outcome.wall_time;
        let mut status = classify(&outcome, &report, 0);
        if status == Status::Passed && !same_tokens(&outcome.stdout, expected.as_bytes()) {
            status = Status::Failed;
        }
        if status == Status::Passed {
            result.tests_passed += 1;
            if result.status == Status::Passed {
                result.stderr_tail = stderr_text(&outcome);
            }
            continue;
        }
        // The first failing case names the status and keeps its stderr.
        if result.status == Status::Passed {
            result.status = status;
            result.stderr_tail = stderr_text(&outcome);
        }
        if matches!(status, Status::SyntaxError | Status::Timeout | Status::SandboxError) {
            break;
        }
    }
    result
}

fn stderr_text(outcome: &Outcome) -> String {
    match &outcome.ending {
        Ending::SetupFailed(message) => message.clone(),
        _ => String::from_utf8_lossy(&outcome.stderr_tail).into_owned(),
    }
}

/// Equal as sequences of whitespace-separated tokens.
pub fn same_tokens(actual: &[u8], expected: &[u8]) -> bool {
    fn tokens(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
        bytes.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty())
    }
    tokens(actual).eq(tokens(expected))
}

/// 128 random bits as hex, from the kernel.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom fills the buffer we pass; a short read leaves zeros, still unguessable
    // enough for its purpose only if it succeeded, so fall back to the clock and pid otherwise.
    let filled =
        unsafe { libc::getrandom(bytes.as_mut_ptr() as *mut libc::c_void, bytes.len(), 0) };
    if filled != bytes.len() as isize {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (clock ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
