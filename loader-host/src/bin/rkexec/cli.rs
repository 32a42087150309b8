//! The `rkexec` command: argv scanned as getopt_long would (`getopt`),
//! kexec-tools' action state machine (`actions`), then status, unload,
//! load, shutdown, sync, ifdown and exec in kexec-tools' order (kexec/
//! kexec.c main()), with its exit statuses: 0 success, 1 usage errors and
//! die(), 255 failed loads/unloads/exec, 253 -s without kexec_file_load,
//! and -S's 1 = loaded / 0 = not. Errors are one line on stderr naming the
//! file or field and the rule; nothing is loaded half-way (every check
//! runs before the system call).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use loader_host::file_load::{self, FilePlan};
use loader_host::image;
use loader_host::plan::Plan;
use loader_host::request::{CmdlineChoice, CrashOptions, OnFailure as ReqOnFailure, Request};
use loader_host::system::iomem::Iomem;
use loader_host::{render, Arch, LoadError, SystemSources};

use crate::actions::{self, Actions, Early};
use crate::args::{Args, OnFailure, Shell, SyscallChoice};
use crate::getopt::{self, GetoptError, Table};
use crate::ops::{self, Ops, Real, Simulated};

/// kexec-tools' exit statuses (kexec/kexec.h EFAILED -1, EFALLBACK -3;
/// die() exits 1).
const EXIT_USAGE: u8 = 1;
const EXIT_FAILED: u8 = 255;
const EXIT_FALLBACK: u8 = 253;

/// A failure with its exit status.
struct Fail {
    msg: String,
    code: u8,
    /// Print the usage text after the message (kexec-tools' usage()).
    usage: bool,
}

impl Fail {
    fn usage(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_USAGE, usage: true }
    }
    /// kexec-tools' die(): message, exit 1.
    fn die(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_USAGE, usage: false }
    }
    fn failed(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_FAILED, usage: false }
    }
}

impl From<LoadError> for Fail {
    fn from(e: LoadError) -> Self {
        Fail::failed(e.to_string())
    }
}

fn print_usage() {
    let mut cmd = Args::command();
    print!("{}", cmd.render_help());
}

fn version_line() -> String {
    format!("rkexec {} (kexec-tools 2.0.32 compatible)", env!("CARGO_PKG_VERSION"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let mut raw = std::env::args_os();
    let argv0 = raw
        .next()
        .and_then(|a| PathBuf::from(a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "rkexec".into());
    let mut argv: Vec<String> = Vec::new();
    for a in raw {
        match a.into_string() {
            Ok(s) => argv.push(s),
            Err(bad) => {
                eprintln!("rkexec: argument {bad:?} is not UTF-8 text");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    // `rkexec purgatory ...`: rkexec's own command for other loaders.
    if argv.first().is_some_and(|a| a == "purgatory") {
        return ExitCode::from(crate::purgatory_cmd::main(&argv0, &argv[1..]));
    }
    let table = Table::from_clap();
    let mut scanned = match getopt::scan(&table, &argv, std::env::var_os("POSIXLY_CORRECT").is_some()) {
        Ok(s) => s,
        Err((before, e)) => {
            // The options before the bad one act first (-h, -v ...).
            if let Err(
                early @ (Early::Help | Early::Version | Early::PrintCkrSize | Early::BadValue(_) | Early::Die(_)),
            ) = actions::fold(&before)
            {
                return early_exit(early, None);
            }
            // glibc's getopt prints the message with argv[0]; kexec-tools
            // then prints its usage and returns 1.
            if e != GetoptError::QuestionMark {
                eprintln!("{argv0}: {e}");
            }
            print_usage();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // `rkexec plan KERNEL ...`: rkexec's own word, as the first non-option
    // word (a kernel file called "plan" is ./plan).
    let plan_cmd = scanned.operands.first().is_some_and(|a| a == "plan");
    if plan_cmd {
        scanned.operands.remove(0);
    }
    let parsed = Args::command()
        .try_get_matches_from(getopt::canonical(&table, &scanned))
        .and_then(|m| Args::from_arg_matches(&m));
    let actions = match actions::fold(&scanned) {
        Ok(a) => a,
        Err(early) => return early_exit(early, parsed.ok()),
    };
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            let text = e.render().to_string();
            eprintln!("{argv0}: {}", text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: "));
            print_usage();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(args, actions, scanned.operands, plan_cmd) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("rkexec: {}", f.msg);
            if f.usage {
                print_usage();
            }
            ExitCode::from(f.code)
        }
    }
}

fn early_exit(early: Early, args: Option<Args>) -> ExitCode {
    let mut out = std::io::stdout();
    match early {
        Early::Help => {
            let mut cmd = Args::command();
            print!("{}", cmd.render_long_help());
        }
        Early::Version => println!("{}", version_line()),
        Early::PrintCkrSize => {
            // kexec/kexec.c print_crashkernel_region_size: decimal, 0 if none.
            let src = args.map_or_else(SystemSources::running, |a| SystemSources::new(a.proc_root, a.sys_root));
            let size = src
                .iomem()
                .ok()
                .and_then(|t| Iomem::parse(&t).ok())
                .map_or(0, |i| i.crash_kernel().iter().map(|r| r.len()).sum::<u64>());
            println!("{size}");
        }
        Early::Man => {
            let man = clap_mangen::Man::new(Args::command());
            if let Err(e) = man.render(&mut out) {
                eprintln!("rkexec: writing the man page: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        }
        Early::Completions => {
            let Some(shell) = args.and_then(|a| a.completions) else {
                eprintln!("rkexec: --completions needs a shell: bash, zsh, fish, elvish or powershell");
                return ExitCode::from(EXIT_USAGE);
            };
            let mut cmd = Args::command();
            use clap_complete::Shell as S;
            let s = match shell {
                Shell::Bash => S::Bash,
                Shell::Zsh => S::Zsh,
                Shell::Fish => S::Fish,
                Shell::Elvish => S::Elvish,
                Shell::Powershell => S::PowerShell,
            };
            clap_complete::generate(s, &mut cmd, "rkexec", &mut out);
        }
        Early::BadValue(msg) => {
            eprintln!("{msg}");
            print_usage();
            return ExitCode::from(EXIT_USAGE);
        }
        Early::Die(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

struct Ctx {
    args: Args,
    act: Actions,
    src: SystemSources,
    /// No privileged call is made (--dry-run, plan, the test seam).
    simulated: bool,
    /// Print the plan on stdout (plan, --dry-run).
    show_plan: bool,
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

fn note(msg: &str) {
    eprintln!("rkexec: note: {msg}");
}

/// kexec/kexec.c is_crashkernel_mem_reserved: a "Crash kernel" range in
/// /proc/iomem. A /proc/iomem that cannot be read or parsed is not taken
/// for "not reserved": the load reads it again and names what is wrong
/// with it (a FIFO, a device, a malformed line), on every path alike.
fn crash_reserved(src: &SystemSources) -> bool {
    src.iomem().ok().and_then(|t| Iomem::parse(&t).ok()).is_none_or(|i| !i.crash_kernel().is_empty())
}

/// kexec-tools' x86 arch_process_options checks (kexec/arch/x86_64/
/// kexec-x86_64.c): --serial-baud divides 115200 within 9600..115200, an
/// `0x` --serial is an I/O port below 65536.
fn arch_option_errors(a: &Args) -> Option<String> {
    if let Some(b) = &a.serial_baud {
        let ok = actions::c_number(b).is_some_and(|v| (9600..=115_200).contains(&v) && 115_200 % v == 0);
        if !ok {
            return Some(format!("Bad serial port baud rate '{b}'"));
        }
    }
    if let Some(s) = a.serial.as_deref().filter(|s| s.starts_with("0x")) {
        if u64::from_str_radix(&s[2..], 16).map_or(true, |v| v >= 65536) {
            return Some(format!("Bad serial port base '{s}'"));
        }
    }
    None
}

/// One line for each accepted option that cannot change what rkexec loads.
fn option_notes(a: &Args, file_syscall: bool) -> Vec<String> {
    let mut n = Vec::new();
    let mut add = |on: bool, s: &str| {
        if on {
            n.push(s.to_string());
        }
    };
    add(a.console_vga, "--console-vga: rkexec's purgatory has no VGA console, only a serial one (ignored)");
    add(a.reset_vga, "--reset-vga: rkexec's purgatory does not reset VGA devices (ignored)");
    add(
        a.serial_baud.is_some(),
        "--serial-baud: the purgatory keeps the UART settings the running kernel left (ignored)",
    );
    add(a.elf32_core_headers, "--elf32-core-headers: x86_64 capture kernels get ELF64 core headers (ignored, as in kexec-tools' x86_64 build)");
    add(
        a.pass_memmap_cmdline,
        "--pass-memmap-cmdline: the capture kernel gets its memory map in boot_params' e820 (ignored)",
    );
    add(a.noefi, "--noefi: rkexec passes no EFI information in boot_params anyway");
    add(a.args_elf, "--args-elf: rkexec boots a vmlinux with Linux boot parameters, as with --args-linux");
    add(a.args_none, "--args-none: rkexec boots a vmlinux with Linux boot parameters, as with --args-linux");
    add(!a.module.is_empty(), "--module: multiboot modules are not supported (ignored)");
    add(a.real_mode, "--real-mode: rkexec enters the kernel through the 64-bit boot protocol (ignored)");
    add(a.entry_32bit, "--entry-32bit: rkexec enters the kernel through the 64-bit boot protocol (ignored)");
    add(a.entry.is_some(), "--entry: only --load-jump-back-helper uses it (ignored)");
    add(
        !file_syscall && (a.no_cma || a.force_dtb),
        "--no-cma/--force-dtb are kexec_file_load flags; kexec_load has none (ignored)",
    );
    n
}

fn run(args: Args, act: Actions, operands: Vec<String>, plan_cmd: bool) -> Result<u8, Fail> {
    let src = SystemSources::new(args.proc_root.clone(), args.sys_root.clone());
    let simulated = args.dry_run || plan_cmd || ops::seam_on();
    let show_plan = args.dry_run || plan_cmd;
    let mut act = act;
    if plan_cmd {
        // `plan` is a load that stops before the system call.
        (act.load, act.exec, act.shutdown, act.unload, act.status, act.sync, act.ifdown) =
            (true, false, false, false, false, false, false);
        if operands.is_empty() {
            return Err(Fail::usage("plan: give a kernel image"));
        }
    }
    let mut ops: Box<dyn Ops> =
        if simulated { Box::new(Simulated::new(src.clone())) } else { Box::new(Real { src: src.clone() }) };
    let ctx = Ctx { args, act, src, simulated, show_plan };
    let (a, act) = (&ctx.args, ctx.act);

    // kexec/kexec.c main(), after the option loop, in its order.
    if act.load && act.crash && !crash_reserved(&ctx.src) {
        return Err(Fail::die(format!(
            "Memory for crashkernel is not reserved ({} has no \"Crash kernel\" range)\n\
             Please reserve memory by passing \"crashkernel=Y@X\" parameter to kernel\n\
             Then try to loading kdump kernel",
            ctx.src.iomem_path().display()
        )));
    }
    if act.load && act.live_update {
        return Err(Fail::die("--load-live-update can only be used with xen"));
    }
    if act.load && act.preserve_context {
        return Err(Fail::die(
            "--load-preserve-context is not supported: rkexec's purgatory never returns to the old kernel",
        ));
    }
    if act.jump_back_helper {
        return Err(Fail::die(
            "--load-jump-back-helper is not supported: rkexec's purgatory never returns to the old kernel",
        ));
    }
    if act.load && a.hotplug && !act.crash {
        return Err(Fail::usage("--hotplug applies to crash kernels: use it with -p"));
    }
    // arch_process_options: a bad value makes result -1: nothing is loaded.
    let mut result = 0u8;
    if let Some(msg) = arch_option_errors(a) {
        eprintln!("{msg}");
        print_usage();
        result = EXIT_FAILED;
    }
    if act.reuse_initrd {
        // check_reuse_initrd: the running kernel must have kept it.
        let cmdline = ctx.src.cmdline().map_err(|e| Fail::die(format!("Failed to read /proc/cmdline: {e}")))?;
        if !cmdline.contains("retain_initrd") {
            return Err(Fail::die("unrecoverable error: current boot didn't retain the initrd for reuse."));
        }
        return Err(Fail::die("--reuseinitrd is not supported by rkexec: give the initrd with --initrd"));
    }
    if act.status {
        // k_status: 1 loaded, 0 not, 255 when the file cannot be read; silent.
        return Ok(match ops.loaded(act.crash) {
            Some(v) => (v & 0xff) as u8,
            None => EXIT_FAILED,
        });
    }
    if act.unload {
        if let Err(f) = unload(&ctx, ops.as_mut()) {
            eprintln!("rkexec: {}", f.msg);
            result = f.code;
        }
    }
    if act.load && result == 0 {
        let Some(kernel) = operands.first() else {
            eprintln!("No kernel specified");
            print_usage();
            return Ok(EXIT_FAILED);
        };
        if operands.len() > 1 {
            note(&format!("extra arguments after the kernel are ignored, as by kexec-tools: {:?}", &operands[1..]));
        }
        load(&ctx, PathBuf::from(kernel), ops.as_mut())?;
    }
    // "Don't shutdown unless there is something to reboot to!"
    if result == 0 && (act.shutdown || act.exec) && ops.loaded(false) == Some(0) {
        return Err(Fail::die("Nothing has been loaded!"));
    }
    if result == 0 && act.shutdown {
        if let Some(err) = ops.shutdown() {
            return Err(Fail::failed(format!("shutdown: {err}")));
        }
        return Ok(0);
    }
    if result == 0 && act.sync {
        ops.sync();
    }
    if result == 0 && act.ifdown {
        ops.ifdown();
    }
    if result == 0 && act.exec {
        ctx.progress("reboot(LINUX_REBOOT_CMD_KEXEC)");
        if let Some(e) = ops.reboot_kexec() {
            return Err(Fail::failed(format!("kexec failed: {e}")));
        }
    }
    Ok(result)
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
    req.console_serial = a.console_serial;
    req.verify = !a.no_checks;
    req.on_failure = match a.on_failure {
        OnFailure::Halt => ReqOnFailure::Halt,
        OnFailure::Reset => ReqOnFailure::Reset,
    };
    req.mem_min = ctx.act.mem_min;
    req.mem_max = ctx.act.mem_max;
    if ctx.act.crash {
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
    // A FIFO or device is refused here, not waited on.
    let (mut f, _) = loader_host::input::open_regular(path).map_err(|e| Fail::failed(e.to_string()))?;
    let n = f.read(&mut head).map_err(|e| Fail::failed(format!("{}: {e}", path.display())))?;
    head.truncate(n);
    Ok(image::probe_machine(&head).and_then(loader_host::arch::by_machine))
}

fn print_plan(ctx: &Ctx, plan: &Plan) {
    if ctx.args.json {
        println!("{}", render::json(plan));
    } else {
        print!("{}", render::table(plan));
    }
}

fn print_file_plan(ctx: &Ctx, plan: &FilePlan) {
    if ctx.args.json {
        println!("{}", render::file_json(plan));
    } else {
        print!("{}", render::file_table(plan));
    }
}

fn load(ctx: &Ctx, kernel: PathBuf, ops: &mut dyn Ops) -> Result<(), Fail> {
    let a = &ctx.args;
    let choice = ctx.act.syscall;
    for n in option_notes(a, choice == SyscallChoice::File) {
        note(&n);
    }
    let req = request(ctx, kernel.clone())?;
    if choice == SyscallChoice::File {
        return load_file(ctx, &req, ops);
    }
    if !ctx.simulated {
        if let Some(arch) = kernel_arch(&kernel)? {
            if loader_host::arch::native() != Some(arch) {
                return Err(Fail::failed(format!(
                    "{}: an {arch} kernel cannot be kexec'd from this {} machine (plan works anywhere)",
                    kernel.display(),
                    std::env::consts::ARCH
                )));
            }
        }
    }
    ctx.progress("reading kernel, initrds and boot data; laying out segments");
    let plan = loader_host::plan(&req, &ctx.src)?;
    ctx.progress(&format!("planned {} segments, entry {:#x}", plan.segments.len(), plan.entry));
    if ctx.show_plan || a.debug {
        print_plan(ctx, &plan);
    }
    ctx.progress("kexec_load");
    match ops.kexec_load(&plan) {
        Ok(()) => Ok(()),
        Err(mut e) if e.errno == libc::EINVAL && plan.hotplug => {
            if let Some(f) = plan.arch.hotplug_flag {
                e.context = Some(format!("this kernel rejected {}: it needs {}", f.name, f.kernels));
            }
            Err(Fail::failed(e.to_string()))
        }
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && ctx.src.lockdown_active() => {
            note("kexec_load refused by kernel lockdown; falling back to kexec_file_load (the kernel verifies the image; our purgatory is not used)");
            load_file(ctx, &req, ops)
        }
        Err(mut e) if matches!(e.errno, libc::EINVAL | libc::EADDRNOTAVAIL) => {
            // The kernel does not say which segment it refused: list them
            // (every rule it checks was checked here first, so this points
            // at a rule of the running kernel we do not know about).
            let list: Vec<String> =
                plan.segments.iter().enumerate().map(|(i, s)| format!("{i} {} {}", s.kind_name(), s.range())).collect();
            e.context = Some(format!("segments: {}", list.join(", ")));
            Err(Fail::failed(e.to_string()))
        }
        Err(e) => Err(Fail::failed(e.to_string())),
    }
}

fn load_file(ctx: &Ctx, req: &Request, ops: &mut dyn Ops) -> Result<(), Fail> {
    let a = &ctx.args;
    let mut extra = 0;
    if a.no_cma {
        extra |= loader_host::uapi::KEXEC_FILE_NO_CMA;
    }
    if a.force_dtb {
        extra |= loader_host::uapi::KEXEC_FILE_FORCE_DTB;
    }
    let plan = file_load::file_plan(req, &ctx.src, extra)?;
    if ctx.show_plan || a.debug {
        print_file_plan(ctx, &plan);
    }
    if !ctx.show_plan {
        for n in &plan.notes {
            note(n);
        }
    }
    ctx.progress("kexec_file_load");
    ops.kexec_file_load(&plan).map_err(|(msg, errno)| {
        // kexec/kexec.c: with -s there is no fallback, and ENOSYS, EINVAL,
        // ENOEXEC, ENOTSUP end as EFALLBACK: "syscall kexec_file_load not
        // available.", exit 253. Not EINVAL here: the call exists and
        // refused this image (its rules are checked before the call,
        // file_load::file_plan), and saying it is missing sends the user
        // looking for the wrong fault; it is a failed load, 255.
        let unavailable = matches!(errno, libc::ENOSYS | libc::ENOEXEC | libc::EOPNOTSUPP);
        if unavailable && ctx.act.syscall == SyscallChoice::File {
            Fail { msg: format!("{msg}\nsyscall kexec_file_load not available."), code: EXIT_FALLBACK, usage: false }
        } else {
            Fail::failed(msg)
        }
    })
}

fn unload(ctx: &Ctx, ops: &mut dyn Ops) -> Result<(), Fail> {
    let crash = ctx.act.crash;
    let choice = ctx.act.syscall;
    if choice == SyscallChoice::File {
        // kexec/kexec.c kexec_file_unload: ENOSYS is EFALLBACK, and -s
        // allows no fallback: "syscall kexec_file_load not available.", 253.
        return ops.unload(crash, true).map_err(|e| {
            if e.errno == libc::ENOSYS {
                Fail { msg: format!("{e}\nsyscall kexec_file_load not available."), code: EXIT_FALLBACK, usage: false }
            } else {
                Fail::failed(e.to_string())
            }
        });
    }
    match ops.unload(crash, false) {
        Ok(()) => Ok(()),
        // Lockdown refuses kexec_load even for unloading; kexec_file_load's
        // unload is allowed (it loads nothing).
        Err(e) if choice == SyscallChoice::Auto && e.errno == libc::EPERM && ctx.src.lockdown_active() => {
            note("kexec_load refused by kernel lockdown; unloading with kexec_file_load");
            ops.unload(crash, true).map_err(|e| Fail::failed(e.to_string()))
        }
        Err(e) => Err(Fail::failed(e.to_string())),
    }
}
