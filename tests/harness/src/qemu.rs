//! Running qemu-system-aarch64 / -riscv64 / -x86_64 and collecting what
//! the guest printed and how the run really ended, through QMP: a PSCI,
//! SBI or port 0xcf9 reset is the SHUTDOWN event QEMU sends under
//! -no-reboot (reason "guest-reset"), and a halt is the vCPU's PC inside
//! the purgatory's `purgatory_halt` loop, read with `info registers`.
//! Neither is inferred from silence or a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a run ended and what the serial console showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub console: String,
    /// QEMU's exit status: the payload's semihosting or sifive_test exit
    /// code (x86_64: isa-debug-exit's, `(value << 1) | 1`), or 0 after a
    /// shutdown (reset under -no-reboot, or our `quit` after a halt); None
    /// when the harness had to kill it.
    pub exit: Option<i32>,
    /// The `reason` of QEMU's SHUTDOWN event: "guest-reset" for a PSCI
    /// SYSTEM_RESET or SBI SRST, "host-qmp-quit" when the harness ended a
    /// halted run. None when QEMU exited without one (the payload's
    /// semihosting or sifive_test exit).
    pub shutdown: Option<String>,
    /// The vCPU's PC, read while it sat in the purgatory's halt loop.
    pub halted_at: Option<u64>,
    /// The deadline passed with the guest in no recognised final state;
    /// QEMU was killed.
    pub killed: bool,
    /// x86: QEMU logged a triple fault (`-d cpu_reset` into
    /// [`CPU_RESET_LOG`]), which resets the machine just as port 0xcf9
    /// does: a crash, not a reset the guest asked for.
    pub triple_fault: bool,
    pub wall: Duration,
    pub command: String,
}

/// The file in the run's directory that `-d cpu_reset -D` writes; QEMU's
/// x86 target logs "Triple fault" there before the reset it causes.
pub const CPU_RESET_LOG: &str = "cpu-reset.log";

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

    /// The guest reset the system (PSCI SYSTEM_RESET, SBI SRST, port
    /// 0xcf9, RTAS system-reboot), and not by crashing (an x86 triple
    /// fault).
    pub fn reset(&self) -> bool {
        self.shutdown.as_deref() == Some("guest-reset") && !self.triple_fault
    }

    /// The guest powered the system off (the ppc64le payload's RTAS
    /// power-off).
    pub fn powered_off(&self) -> bool {
        self.shutdown.as_deref() == Some("guest-shutdown")
    }
}

/// The address range of the purgatory's halt loop in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct HaltLoop {
    pub start: u64,
    pub end: u64,
}

/// A QMP connection: commands go out on `stream`, replies and events come
/// back through `rx` from a reader thread.
struct Qmp {
    stream: UnixStream,
    rx: Receiver<Value>,
    next_id: u64,
    shutdown: Option<String>,
}

impl Qmp {
    /// Connect to QEMU's QMP socket (server=on,wait=on: QEMU waits for us)
    /// and leave capabilities negotiation mode, before which QMP sends no
    /// events.
    fn connect(path: &Path, child: &mut Child) -> Result<Self, String> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("QEMU exited ({status}) before QMP was up"));
                    }
                    if start.elapsed() > Duration::from_secs(20) {
                        return Err(format!("no QMP socket at {}: {e}", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let reader = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut qmp = Qmp { stream, rx, next_id: 1, shutdown: None };
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Record an event; return replies.
    fn note(&mut self, v: Value) -> Option<Value> {
        if v.get("event").and_then(Value::as_str) == Some("SHUTDOWN") {
            // The first one says why; a guest reset is followed by the
            // host-qmp-quit of our `quit`.
            let reason = v.pointer("/data/reason").and_then(Value::as_str).unwrap_or("?");
            self.shutdown.get_or_insert_with(|| reason.to_string());
            return None;
        }
        (v.get("return").is_some() || v.get("error").is_some()).then_some(v)
    }

    /// Drain events that arrived so far.
    fn poll_events(&mut self) {
        while let Ok(v) = self.rx.try_recv() {
            self.note(v);
        }
    }

    /// Wait until the connection closes (QEMU exited), for its last events.
    fn drain_until_closed(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.note(v);
                }
                Err(_) => break,
            }
        }
    }

    fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = serde_json::json!({ "execute": command, "id": id });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        writeln!(self.stream, "{msg}").map_err(|e| format!("QMP {command}: {e}"))?;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let left = end.checked_duration_since(Instant::now()).ok_or(format!("QMP {command}: no reply"))?;
            let v = self.rx.recv_timeout(left).map_err(|_| format!("QMP {command}: no reply"))?;
            if let Some(reply) = self.note(v) {
                if reply.get("id").and_then(Value::as_u64) == Some(id) {
                    return match reply.get("error") {
                        Some(e) => Err(format!("QMP {command}: {e}")),
                        None => Ok(reply["return"].clone()),
                    };
                }
            }
        }
    }

    /// The vCPU's program counter, from `info registers`: x86_64 prints
    /// "RIP=%016x", aarch64 " PC=%016x ", riscv64 a line " pc       %016x",
    /// ppc64 "NIP %016x".
    fn pc(&mut self) -> Result<u64, String> {
        let text =
            self.execute("human-monitor-command", Some(serde_json::json!({ "command-line": "info registers" })))?;
        let text = text.as_str().unwrap_or_default();
        let value = match text
            .find("RIP=")
            .map(|at| at + 4)
            .or_else(|| text.find("PC=").map(|at| at + 3))
            .or_else(|| text.find("NIP ").map(|at| at + 4))
        {
            Some(at) => &text[at..],
            None => text
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("pc ").map(str::trim_start))
                .ok_or_else(|| format!("no PC in: {text}"))?,
        };
        let hex: String = value.chars().take_while(char::is_ascii_hexdigit).collect();
        u64::from_str_radix(&hex, 16).map_err(|e| format!("PC {hex:?}: {e}"))
    }
}

/// Run `qemu` (e.g. qemu-system-aarch64) with `args` (plus a QMP socket in
/// `dir`) until it exits, its vCPU sits in `halt` (then quit it), or
/// `deadline` passes (then kill it).
pub fn run(qemu: &str, args: &[String], dir: &Path, halt: HaltLoop, deadline: Duration) -> Outcome {
    let socket = dir.join("qmp.sock");
    let mut args = args.to_vec();
    // Start paused (-S): the guest runs only once QMP is in command mode,
    // so no event (a reset in the first microseconds) can be missed.
    args.extend(["-S".into(), "-qmp".into(), format!("unix:{},server=on,wait=on", socket.display())]);
    // A guest shutdown (a reset, under -no-reboot) pauses the VM instead of
    // ending QEMU, which we then `quit`: QEMU 7.2 can hang for good in its
    // exit path (monitor_cleanup) when it exits on its own while one of our
    // `info registers` is in flight.
    args.extend(["-action".into(), "shutdown=pause".into()]);
    let command = format!("{qemu} {}", args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {qemu} ({e}); run scripts/setup.sh"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut qmp = match Qmp::connect(&socket, &mut child) {
        Ok(q) => q,
        Err(e) => {
            let _ = child.kill();
            let out = child.wait_with_output().ok();
            let err = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
            panic!("{e}\n{command}\n{err}")
        }
    };

    if let Err(e) = qmp.execute("cont", None) {
        // A guest that ends at once (the payload's isa-debug-exit or
        // semihosting exit when entered without the purgatory) can take
        // QEMU down before it answers `cont`: the run ended, the loop below
        // reads its status. Anything else is a harness failure.
        let exited = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
            panic!("{e}\n{command}");
        }
    }

    let mut halted_at = None;
    let mut killed = false;
    let exit = loop {
        qmp.poll_events();
        if let Some(status) = child.try_wait().expect("wait on qemu") {
            break status.code();
        }
        // The guest shut down (and is paused): that is how it ended.
        if qmp.shutdown.is_some() {
            let _ = qmp.execute("quit", None);
            break child.wait().ok().and_then(|s| s.code());
        }
        // A guest that is still running: is it in the halt loop? (Masked
        // interrupts keep it there for good once it is.)
        match qmp.pc() {
            Ok(pc) if pc >= halt.start && pc < halt.end => {
                halted_at = Some(pc);
                let _ = qmp.execute("quit", None);
                break child.wait().ok().and_then(|s| s.code());
            }
            _ => {}
        }
        if start.elapsed() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    qmp.drain_until_closed(Duration::from_secs(2));
    let _ = reader.join();
    let mut console = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        console.extend_from_slice(&chunk);
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let mut console = String::from_utf8_lossy(&console).replace('\r', "");
    // QEMU announces that it waits for the QMP client: not worth showing.
    let err: Vec<&str> = err.lines().filter(|l| !l.contains("info: QEMU waiting for connection")).collect();
    let err = err.join("\n");
    if !err.trim().is_empty() {
        console.push_str("\n[qemu stderr] ");
        console.push_str(err.trim());
    }
    let triple_fault = std::fs::read_to_string(dir.join(CPU_RESET_LOG)).is_ok_and(|log| log.contains("Triple fault"));
    Outcome { console, exit, shutdown: qmp.shutdown, halted_at, killed, triple_fault, wall: start.elapsed(), command }
}
