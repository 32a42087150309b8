//! The `rkexec` command: parse arguments, then plan, load, unload, report
//! status or execute. Errors are one line on stderr naming the file or
//! field and the rule broken, with a non-zero exit; nothing is loaded
//! half-way (every check runs before the system call).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kexec_purgatory::abi::{ON_FAILURE_HALT, ON_FAILURE_RESET};

use crate::args::{Args, OnFailure, SyscallChoice};
use crate::arm64::{self, CmdlineChoice, Input, LoadRequest};
use crate::console;
use crate::plan::Plan;
use crate::purgatory_image::PurgatoryImage;
use crate::report;
use crate::sources::SystemSources;
use crate::syscall::{self, KexecSegment, SyscallError};

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

    if a.kernel_type.as_deref().is_some_and(|t| {
        !matches!(
            t.to_ascii_lowercase().as_str(),
            "image" | "image-arm64" | "arm64" | "vmlinuz" | "zimg" | "image.gz" | "bzimage" | "bzimage64"
        )
    }) {
        return Err(Fail::usage(format!(
            "--type {}: this loader handles arm64 Image, Image.gz, EFI zboot and x86 bzImage (types Image, vmlinuz, zimg, bzImage)",
            a.kernel_type.as_deref().unwrap_or_default()
        )));
    }

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
        let loaded = syscall::loaded_status(&ctx.src.sys_root, crash)
            .map_err(|e| Fail::run(format!("{}: {e}", ctx.src.sys_root.join("kernel").display())))?;
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

fn request(ctx: &Ctx, kernel: PathBuf) -> Result<LoadRequest, Fail> {
    let a = &ctx.args;
    let mut req = LoadRequest::new(kernel);
    for i in &a.initrd {
        req.inputs.push(Input::Initrd(i.clone()));
    }
    if let Some(d) = &a.dtb {
        req.inputs.push(Input::Dtb(d.clone()));
    }
    req.cmdline = match (&a.append, a.reuse_cmdline) {
        (None, false) => CmdlineChoice::Keep,
        (Some(s), false) => CmdlineChoice::Set(s.clone()),
        (extra, true) => CmdlineChoice::Reuse(extra.clone().unwrap_or_default()),
    };
    if let CmdlineChoice::Set(s) | CmdlineChoice::Reuse(s) = &req.cmdline {
        req.inputs.push(Input::Cmdline(s.clone()));
    }
    if let Some(tty) = &a.serial {
        req.console = Some(console::from_sysfs(&ctx.src.sys_root, tty)?);
    }
    req.verify = !a.no_checks;
    if a.load_panic {
        req.crash = Some(crate::arm64::CrashOptions { hotplug: a.hotplug, exclude: !a.debug_hash_excluded });
    }
    req.on_failure = match a.on_failure {
        OnFailure::Halt => ON_FAILURE_HALT,
        OnFailure::Reset => ON_FAILURE_RESET,
    };
    for s in &a.dtb_set {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| Fail::usage(format!("--dtb-set {s}: expected /path/to/node/property=value")))?;
        if crate::handover_dtb::split_property_path(path).is_none() {
            return Err(Fail::usage(format!("--dtb-set {s}: '{path}' is not an absolute /node/property path")));
        }
        req.dtb_set.push((path.to_string(), value.to_string()));
    }
    for p in &a.dtb_delete {
        if crate::handover_dtb::split_property_path(p).is_none() {
            return Err(Fail::usage(format!("--dtb-delete {p}: not an absolute /node/property path")));
        }
        req.dtb_delete.push(p.clone());
    }
    Ok(req)
}

/// The architecture a kernel image is for, from its format: a bzImage is
/// x86_64, anything else goes to the arm64 parser (which names what it
/// found if that is not arm64 either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelArch {
    Arm64,
    X86_64,
}

fn kernel_arch(path: &std::path::Path) -> Result<KernelArch, Fail> {
    use std::io::Read;
    let mut head = vec![0u8; 1024];
    let mut f = std::fs::File::open(path).map_err(|e| Fail::run(format!("{}: {e}", path.display())))?;
    let n = f.read(&mut head).map_err(|e| Fail::run(format!("{}: {e}", path.display())))?;
    head.truncate(n);
    Ok(if crate::kernel_image::is_bzimage(&head) { KernelArch::X86_64 } else { KernelArch::Arm64 })
}

fn native_arch() -> Option<KernelArch> {
    if cfg!(target_arch = "aarch64") {
        Some(KernelArch::Arm64)
    } else if cfg!(target_arch = "x86_64") {
        Some(KernelArch::X86_64)
    } else {
        None
    }
}

fn make_plan(ctx: &Ctx, kernel: PathBuf) -> Result<Plan, Fail> {
    let arch = kernel_arch(&kernel)?;
    let req = request(ctx, kernel)?;
    ctx.progress("reading kernel, initrds and boot data; laying out segments");
    let plan = match arch {
        KernelArch::Arm64 => arm64::plan(&req, &ctx.src, &PurgatoryImage::aarch64()?)?,
        KernelArch::X86_64 => crate::x86_64::plan(&req, &ctx.src, &PurgatoryImage::x86_64()?)?,
    };
    ctx.progress(&format!("planned {} segments, entry {:#x}", plan.segments.len(), plan.entry));
    Ok(plan)
}

fn print_plan(ctx: &Ctx, plan: &Plan) {
    if ctx.args.json {
        println!("{}", serde_json::to_string_pretty(&report::json(plan)).unwrap_or_default());
    } else {
        let arch = match plan
            .params
            .segments
            .iter()
            .take(plan.params.nr_segments as usize)
            .any(|s| s.kind == kexec_purgatory::abi::SegmentKind::BootParams as u32)
        {
            true => "x86_64",
            false => "arm64",
        };
        let what = if ctx.args.load_panic { " crash kernel" } else { "" };
        let title = format!("rkexec plan ({arch}{what}, kexec_load through the rkexec purgatory):");
        print!("{}", report::table(plan, &title));
    }
}

fn load(ctx: &Ctx, kernel: PathBuf, choice: SyscallChoice) -> Result<(), Fail> {
    if choice == SyscallChoice::File {
        return load_file(ctx, kernel);
    }
    let arch = kernel_arch(&kernel)?;
    if native_arch() != Some(arch) {
        return Err(Fail::usage(format!(
            "{}: a {arch:?} kernel cannot be kexec'd from this {} machine (plan works anywhere)",
            kernel.display(),
            std::env::consts::ARCH
        )));
    }
    let plan = make_plan(ctx, kernel.clone())?;
    if ctx.args.debug {
        print_plan(ctx, &plan);
    }
    let segs: Vec<KexecSegment> = plan
        .segments
        .iter()
        .map(|s| KexecSegment {
            buf: s.bytes.as_ptr().cast(),
            bufsz: s.bytes.len(),
            mem: s.mem,
            memsz: s.memsz as usize,
        })
        .collect();
    let mut flags = syscall::native_arch_flag();
    if ctx.args.load_panic {
        flags |= syscall::KEXEC_ON_CRASH;
        if ctx.args.hotplug {
            // x86 has taken KEXEC_UPDATE_ELFCOREHDR since 6.5 (and 6.5-6.9
            // reject 0x8); every other arch uses the generic flag (6.10+).
            flags |= if arch == KernelArch::X86_64 {
                syscall::KEXEC_UPDATE_ELFCOREHDR
            } else {
                syscall::KEXEC_CRASH_HOTPLUG_SUPPORT
            };
        }
    }
    ctx.progress("kexec_load");
    match syscall::kexec_load(plan.entry, &segs, flags) {
        Ok(()) => Ok(()),
        Err(mut e) if e.errno == libc::EINVAL && ctx.args.hotplug => {
            e.context = Some(if arch == KernelArch::X86_64 {
                "this kernel rejected KEXEC_UPDATE_ELFCOREHDR (0x4): it needs Linux 6.5+ with CONFIG_CRASH_HOTPLUG"
                    .into()
            } else {
                "this kernel rejected KEXEC_CRASH_HOTPLUG_SUPPORT (0x8): it needs Linux 6.10+ with CONFIG_CRASH_HOTPLUG"
                    .into()
            });
            Err(Fail::run(e.to_string()))
        }
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && lockdown_active(ctx) => {
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

/// /sys/kernel/security/lockdown shows "[none] integrity confidentiality"
/// with the active mode in brackets.
fn lockdown_active(ctx: &Ctx) -> bool {
    std::fs::read_to_string(ctx.src.sys_root.join("kernel/security/lockdown")).is_ok_and(|s| !s.contains("[none]"))
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
    let cmdline = match (&a.append, a.reuse_cmdline) {
        (Some(s), false) => s.clone(),
        (extra, true) => {
            let mut c = ctx.src.cmdline()?;
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
    let flags = if a.load_panic { syscall::KEXEC_FILE_ON_CRASH } else { 0 };
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
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && lockdown_active(ctx) => {
            eprintln!("rkexec: kexec_load refused by kernel lockdown; unloading with kexec_file_load");
            syscall::kexec_file_unload(crash).map_err(|e| Fail::run(e.to_string()))
        }
        Err(e) => Err(Fail::run(e.to_string())),
    }
}

fn exec(ctx: &Ctx) -> Result<ExitCode, Fail> {
    let loaded = syscall::loaded_status(&ctx.src.sys_root, false).unwrap_or(true);
    if !loaded {
        return Err(Fail::run("no kexec image is loaded (load one with -l first)"));
    }
    ctx.progress("reboot(LINUX_REBOOT_CMD_KEXEC)");
    let e = syscall::kexec_reboot();
    Err(Fail::run(e.to_string()))
}
