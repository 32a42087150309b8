//! The `rkexec` command: parse arguments, then plan, load, unload, report
//! status or execute. Errors are one line on stderr naming the file or
//! field and the rule broken, with a non-zero exit; nothing is loaded
//! half-way (every check runs before the system call).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use loader_host::image;
use loader_host::plan::Plan;
use loader_host::request::{CmdlineChoice, CrashOptions, OnFailure as ReqOnFailure, Request};
use loader_host::syscall::{self, SyscallError};
use loader_host::{report, Arch, SystemSources};

use crate::args::{Args, OnFailure, SyscallChoice};

/// A failure with its exit status.
struct Fail {
    msg: String,
    code: u8,
}

impl Fail {
    fn usage(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: 2 }
    }
    fn run(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: 1 }
    }
}

impl<E: std::error::Error> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail::run(e.to_string())
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help/--version print to stdout and succeed; errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("rkexec: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

struct Ctx {
    args: Args,
    src: SystemSources,
}

impl Ctx {
    /// Progress on stderr: always with -d, else only for a person at a
    /// terminal (scripts get quiet success, as with kexec-tools).
    fn progress(&self, msg: &str) {
        use std::io::IsTerminal;
        if self.args.debug || std::io::stderr().is_terminal() {
            eprintln!("rkexec: {msg}");
        }
    }
}

fn run(args: Args) -> Result<ExitCode, Fail> {
    let src = SystemSources::new(args.proc_root.clone(), args.sys_root.clone());
    let mut positional = args.positional.clone();
    let plan_cmd = positional.first().is_some_and(|p| p.as_os_str() == "plan");
    if plan_cmd {
        positional.remove(0);
    }
    if positional.len() > 1 {
        return Err(Fail::usage(format!("one kernel image expected, got {}: {:?}", positional.len(), positional)));
    }
    let kernel = positional.pop();
    let syscall_choice = args.syscall_choice().map_err(Fail::usage)?;
    let ctx = Ctx { args, src };
    let a = &ctx.args;

    if a.hotplug && !a.load_panic {
        return Err(Fail::usage("--hotplug applies to crash kernels: use it with -p"));
    }
    if plan_cmd || a.dry_run {
        let kernel = kernel.ok_or_else(|| Fail::usage("plan: give a kernel image"))?;
        let plan = make_plan(&ctx, kernel)?;
        print_plan(&ctx, &plan);
        return Ok(ExitCode::SUCCESS);
    }
    if a.status {
        // kexec-tools: -S reports the crash kernel unless -l is given.
        let crash = !a.load;
        let loaded = ctx.src.kexec_loaded(crash)?;
        println!("{} kernel {}", if crash { "crash" } else { "kexec" }, if loaded { "loaded" } else { "not loaded" });
        return Ok(if loaded { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    if a.unload {
        unload(&ctx, syscall_choice)?;
        return Ok(ExitCode::SUCCESS);
    }
    let exec_only = (a.exec || a.force) && kernel.is_none();
    if exec_only {
        return exec(&ctx);
    }
    let Some(kernel) = kernel else {
        return Err(Fail::usage("nothing to do: give -l KERNEL, -e, -u, -S or `plan KERNEL` (see --help)"));
    };
    load(&ctx, kernel, syscall_choice)?;
    // kexec-tools: `kexec KERNEL` without -l/-p loads and boots; -f boots
    // at once. A crash kernel is only ever entered by a panic.
    if !a.load_panic && (a.force || a.exec || !a.load) {
        return exec(&ctx);
    }
    Ok(ExitCode::SUCCESS)
}

/// The library request for these arguments.
fn request(ctx: &Ctx, kernel: PathBuf) -> Result<Request, Fail> {
    let a = &ctx.args;
    let mut req = Request::new(kernel);
    req.kernel_type = a.kernel_type.clone();
    req.initrds = a.initrd.clone();
    req.dtb = a.dtb.clone();
    req.cmdline = match (&a.append, a.reuse_cmdline) {
        (None, false) => CmdlineChoice::Keep,
        (Some(s), false) => CmdlineChoice::Set(s.clone()),
        (extra, true) => CmdlineChoice::Reuse(extra.clone().unwrap_or_default()),
    };
    req.serial = a.serial.clone();
    req.verify = !a.no_checks;
    req.on_failure = match a.on_failure {
        OnFailure::Halt => ReqOnFailure::Halt,
        OnFailure::Reset => ReqOnFailure::Reset,
    };
    if a.load_panic {
        req.crash = Some(CrashOptions { hotplug: a.hotplug, exclude: !a.debug_hash_excluded });
    }
    for s in &a.dtb_set {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| Fail::usage(format!("--dtb-set {s}: expected /path/to/node/property=value")))?;
        if loader_host::dtb::handover::split_property_path(path).is_none() {
            return Err(Fail::usage(format!("--dtb-set {s}: '{path}' is not an absolute /node/property path")));
        }
        req.dtb_set.push((path.to_string(), value.to_string()));
    }
    for p in &a.dtb_delete {
        if loader_host::dtb::handover::split_property_path(p).is_none() {
            return Err(Fail::usage(format!("--dtb-delete {p}: not an absolute /node/property path")));
        }
        req.dtb_delete.push(p.clone());
    }
    Ok(req)
}

/// The architecture of a kernel file, from its first bytes (for refusing
/// a foreign kernel before anything is read in full).
fn kernel_arch(path: &std::path::Path) -> Result<Option<Arch>, Fail> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let mut f = std::fs::File::open(path).map_err(|e| Fail::run(format!("{}: {e}", path.display())))?;
    let n = f.read(&mut head).map_err(|e| Fail::run(format!("{}: {e}", path.display())))?;
    head.truncate(n);
    Ok(image::probe_arch(&head))
}

fn make_plan(ctx: &Ctx, kernel: PathBuf) -> Result<Plan, Fail> {
    let req = request(ctx, kernel)?;
    ctx.progress("reading kernel, initrds and boot data; laying out segments");
    let plan = loader_host::plan(&req, &ctx.src)?;
    ctx.progress(&format!("planned {} segments, entry {:#x}", plan.segments.len(), plan.entry));
    Ok(plan)
}

fn print_plan(ctx: &Ctx, plan: &Plan) {
    if ctx.args.json {
        println!("{}", report::json(plan));
    } else {
        print!("{}", report::table(plan));
    }
}

fn load(ctx: &Ctx, kernel: PathBuf, choice: SyscallChoice) -> Result<(), Fail> {
    if choice == SyscallChoice::File {
        return load_file(ctx, kernel);
    }
    if let Some(arch) = kernel_arch(&kernel)? {
        if Arch::native() != Some(arch) {
            return Err(Fail::usage(format!(
                "{}: an {arch} kernel cannot be kexec'd from this {} machine (plan works anywhere)",
                kernel.display(),
                std::env::consts::ARCH
            )));
        }
    }
    let plan = make_plan(ctx, kernel.clone())?;
    if ctx.args.debug {
        print_plan(ctx, &plan);
    }
    ctx.progress("kexec_load");
    match syscall::load(&plan) {
        Ok(()) => Ok(()),
        Err(mut e) if e.errno == libc::EINVAL && plan.hotplug => {
            e.context = Some(match plan.arch {
                Arch::X86_64 => {
                    "this kernel rejected KEXEC_UPDATE_ELFCOREHDR (0x4): it needs Linux 6.5+ with CONFIG_CRASH_HOTPLUG"
                        .into()
                }
                _ => "this kernel rejected KEXEC_CRASH_HOTPLUG_SUPPORT (0x8): it needs Linux 6.10+ with CONFIG_CRASH_HOTPLUG"
                    .into(),
            });
            Err(Fail::run(e.to_string()))
        }
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && ctx.src.lockdown_active() => {
            eprintln!("rkexec: kexec_load refused by kernel lockdown; falling back to kexec_file_load (the kernel verifies the image; our purgatory is not used)");
            load_file(ctx, kernel)
        }
        Err(mut e) if matches!(e.errno, libc::EINVAL | libc::EADDRNOTAVAIL) => {
            // The kernel does not say which segment it refused: list them
            // (every rule it checks was checked here first, so this points
            // at a rule of the running kernel we do not know about).
            let list: Vec<String> =
                plan.segments.iter().enumerate().map(|(i, s)| format!("{i} {} {}", s.kind_name(), s.range())).collect();
            e.context = Some(format!("segments: {}", list.join(", ")));
            Err(Fail::run(e.to_string()))
        }
        Err(e) => Err(Fail::run(e.to_string())),
    }
}

fn load_file(ctx: &Ctx, kernel: PathBuf) -> Result<(), Fail> {
    let a = &ctx.args;
    if a.dtb.is_some() {
        return Err(Fail::usage(
            "--dtb: kexec_file_load takes no DTB from userspace; drop --dtb or use -c (kexec_load)",
        ));
    }
    if a.initrd.len() > 1 {
        return Err(Fail::usage("kexec_file_load takes one initrd; concatenate them first or use -c"));
    }
    let crash = a.load_panic;
    let cmdline = match (&a.append, a.reuse_cmdline) {
        (Some(s), false) => s.clone(),
        (extra, true) => {
            let mut c = loader_host::cmdline::inherited(&ctx.src.cmdline()?, crash);
            if let Some(e) = extra {
                c.push(' ');
                c.push_str(e);
            }
            c
        }
        (None, false) => String::new(),
    };
    let open = |p: &PathBuf| std::fs::File::open(p).map_err(|e| Fail::run(format!("{}: {e}", p.display())));
    let kf = open(&kernel)?;
    let initrd = a.initrd.first().map(open).transpose()?;
    let flags = if crash { syscall::KEXEC_FILE_ON_CRASH } else { 0 };
    ctx.progress("kexec_file_load");
    syscall::kexec_file_load(&kf, initrd.as_ref(), &cmdline, flags).map_err(|e: SyscallError| Fail::run(e.to_string()))
}

fn unload(ctx: &Ctx, choice: SyscallChoice) -> Result<(), Fail> {
    let crash = ctx.args.load_panic;
    if choice == SyscallChoice::File {
        return syscall::kexec_file_unload(crash).map_err(|e| Fail::run(e.to_string()));
    }
    match syscall::kexec_unload(crash) {
        Ok(()) => Ok(()),
        // Lockdown refuses kexec_load even for unloading; kexec_file_load's
        // unload is allowed (it loads nothing).
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && ctx.src.lockdown_active() => {
            eprintln!("rkexec: kexec_load refused by kernel lockdown; unloading with kexec_file_load");
            syscall::kexec_file_unload(crash).map_err(|e| Fail::run(e.to_string()))
        }
        Err(e) => Err(Fail::run(e.to_string())),
    }
}

fn exec(ctx: &Ctx) -> Result<ExitCode, Fail> {
    let loaded = ctx.src.kexec_loaded(false).unwrap_or(true);
    if !loaded {
        return Err(Fail::run("no kexec image is loaded (load one with -l first)"));
    }
    ctx.progress("reboot(LINUX_REBOOT_CMD_KEXEC)");
    let e = syscall::kexec_reboot();
    Err(Fail::run(e.to_string()))
}
