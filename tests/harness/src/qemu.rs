//! Running qemu-system-aarch64 / qemu-system-riscv64 and collecting what
//! the guest printed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run ended and what the serial console showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub console: String,
    /// QEMU's exit status (semihosting or sifive_test exit code, or 0 after
    /// a PSCI/SBI reset with -no-reboot); None when the harness had to kill
    /// it.
    pub exit: Option<i32>,
    /// The guest stopped printing after saying it halted, or the deadline
    /// passed; QEMU was killed.
    pub killed: bool,
    pub wall: Duration,
    pub command: String,
}

impl Outcome {
    pub fn contains(&self, needle: &str) -> bool {
        self.console.contains(needle)
    }

    /// The lines the payload (stand-in kernel) printed.
    pub fn payload_ran(&self) -> bool {
        self.console.contains("payload: entered")
    }

    pub fn line_with(&self, needle: &str) -> Option<&str> {
        self.console.lines().find(|l| l.contains(needle))
    }
}

/// Run `qemu` (e.g. qemu-system-aarch64) with `args` until it exits, the
/// console shows `stop_after` (then wait `grace` more and kill it), or
/// `deadline` passes.
pub fn run(qemu: &str, args: &[String], stop_after: &str, grace: Duration, deadline: Duration) -> Outcome {
    let command = format!("{qemu} {}", args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {qemu} ({e}); run scripts/setup.sh"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    let mut seen_at: Option<Instant> = None;
    let mut killed = false;
    let exit = loop {
        while let Ok(chunk) = rx.try_recv() {
            console.extend_from_slice(&chunk);
        }
        if seen_at.is_none() && String::from_utf8_lossy(&console).contains(stop_after) {
            seen_at = Some(Instant::now());
        }
        if let Some(status) = child.try_wait().expect("wait on qemu") {
            break status.code();
        }
        let overdue = seen_at.is_some_and(|t| t.elapsed() >= grace) || start.elapsed() >= deadline;
        if overdue {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    while let Ok(chunk) = rx.try_recv() {
        console.extend_from_slice(&chunk);
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let mut console = String::from_utf8_lossy(&console).replace('\r', "");
    if !err.trim().is_empty() {
        console.push_str("\n[qemu stderr] ");
        console.push_str(err.trim());
    }
    Outcome { console, exit, killed, wall: start.elapsed(), command }
}
