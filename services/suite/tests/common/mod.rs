//! Running `jixiao serve` as a child process in tests.

#![allow(dead_code)]

use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_jixiao");

/// One service in a child process of its own, restartable on its port.
pub struct Process {
    args: Vec<OsString>,
    addr: String,
    child: Option<Child>,
}

impl Process {
    /// `jixiao serve --target {target}` on a free loopback port.
    pub fn start(
        target: &str,
        data_dir: &Path,
        key_hex: &str,
        extra: &[(&str, String)],
    ) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut args: Vec<OsString> = ["serve", "--target", target, "--listen", &addr]
            .iter()
            .map(OsString::from)
            .collect();
        args.extend(["--data-dir".into(), data_dir.as_os_str().to_owned()]);
        args.extend(["--token-key".into(), key_hex.into()]);
        for (flag, value) in extra {
            args.extend([OsString::from(flag), OsString::from(value)]);
        }
        let mut c = Process {
            args,
            addr,
            child: None,
        };
        c.spawn();
        c
    }

    /// The process id, for reading its memory.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `host:port`, as a load balancer's upstream names it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the process and waits for its serving line.
    pub fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(&self.args)
            .env("JIXIAO_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jixiao serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let serving = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("jixiao serving"));
        assert!(serving, "jixiao serve {:?} did not start", self.args);
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGTERM, then the exit status if the process ends within `within`.
    pub fn terminate(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: no drain, no clean close of anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
