//! Helpers of the tests that run the real `mynah` binary: child processes that never outlive a
//! test, scratch directories, free ports, log files.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// A child process, killed (SIGKILL) and reaped when dropped: a failing test leaves nothing
/// running.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Proc {
        Proc { child: Some(child) }
    }

    /// Whether it exited successfully, once it has exited (then it is reaped); `None` while it
    /// runs.
    pub fn try_wait(&mut self) -> Option<bool> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.success())
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (how service managers stop it), then wait up to 30 s for it to exit.
    pub fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!("the process did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A scratch directory, removed after a passing test (kept after a failure, for its logs and
/// database). Declared before the processes, so they are gone when it is removed.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `mynah-{suite}-{name}-{pid}` in the temp directory, empty.
    pub fn new(suite: &str, name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mynah-{suite}-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs and data kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// A log file in `dir`, appended to.
pub fn log_file(dir: &Path, name: &str) -> File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("log file")
}

/// Starts the `mynah` binary with `args`; its standard output goes to `{name}.out` and its log
/// (standard error) to `{name}.log` in `dir`.
pub fn spawn_mynah<I, S>(dir: &Path, name: &str, args: I) -> Proc
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(log_file(dir, &format!("{name}.out")))
        .stderr(log_file(dir, &format!("{name}.log")))
        .spawn()
        .expect("mynah starts");
    Proc::new(child)
}

/// Starts the `mynah` binary with `args` as [`spawn_mynah`] does, under an open-files limit of
/// `nofile` (soft and hard), set by `bash`'s `ulimit -n` before it `exec`s the binary: the
/// child's pid is the binary's.
pub fn spawn_mynah_with_open_files<I, S>(dir: &Path, name: &str, nofile: u32, args: I) -> Proc
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mynah"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(log_file(dir, &format!("{name}.out")))
        .stderr(log_file(dir, &format!("{name}.log")))
        .spawn()
        .expect("bash starts mynah");
    Proc::new(child)
}

/// Waits (at most 30 s) until something accepts connections on the port.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listened on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The arguments of `mynah serve` with its data in `dir/data` and both planes on these ports.
pub fn serve_args(dir: &Path, sb_port: u16, gw_port: u16) -> Vec<String> {
    vec![
        "serve".to_string(),
        "--data-dir".to_string(),
        dir.join("data").display().to_string(),
        "--listen".to_string(),
        format!("127.0.0.1:{sb_port}"),
        "--gateway-listen".to_string(),
        format!("127.0.0.1:{gw_port}"),
    ]
}
