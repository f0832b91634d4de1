//! Runs `moto_server` (AWS APIs on loopback: CloudWatch Logs, S3) for tests. Shared by the
//! analyzer's and capture's tests.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// One moto_server process on 127.0.0.1.
pub struct Moto {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
}

/// Dummy credentials and region for moto, in this process's environment (children inherit it).
pub fn set_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY (edition 2021: safe fn): set once, before any test thread reads them.
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/lanner-test-aws-config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/lanner-test-aws-credentials"),
        ] {
            std::env::set_var(k, v);
        }
    });
}

/// Tests using moto run one at a time (they time outages and compete for two cores).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How to run moto: the `moto_server` script, or the module when the script is not on PATH.
fn moto_command() -> Option<Command> {
    let works = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if works(Command::new("moto_server").arg("-h")) {
        return Some(Command::new("moto_server"));
    }
    if works(Command::new("python3").args(["-m", "moto.server", "-h"])) {
        let mut c = Command::new("python3");
        c.args(["-m", "moto.server"]);
        return Some(c);
    }
    None
}

/// True when moto_server can run. Without it, a test is skipped with a message, except under
/// CI=true, where that is a failure.
pub fn available(test: &str) -> bool {
    let ok = moto_command().is_some();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: moto_server is not installed (CI=true): run `cargo xtask setup`");
        }
        eprintln!("SKIPPED {test}: moto_server is not installed (pip install 'moto[server]' or cargo xtask setup)");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    /// Starts moto on a free port.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts moto on `port` (fresh state) and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        set_env();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = moto_command()
                .expect("moto_server (checked by available())")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto_server");
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child: Some(child), port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port is not free yet: try again
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its state is lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
