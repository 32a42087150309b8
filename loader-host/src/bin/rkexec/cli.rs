//! The `rkexec` command: argv scanned as getopt_long would (`getopt`),
//! kexec-tools' action state machine (`actions`), then status, unload,
//! load, shutdown, sync, ifdown and exec in kexec-tools' order (kexec/
//! kexec.c main()), with its exit statuses: 0 success, 1 usage errors and
//! die(), 255 failed loads/unloads/exec, 253 -s without kexec_file_load,
//! and -S's 1 = loaded / 0 = not. Errors are one line on stderr naming the
//! file or field and the rule; nothing is loaded half-way (every check
//! runs before the system call).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use loader_host::file_load::{self, FilePlan};
use loader_host::image;
use loader_host::plan::Plan;
use loader_host::request::{CmdlineChoice, CrashOptions, Hotplug, OnFailure as ReqOnFailure, Request};
use loader_host::{escape, render, Arch, LoadError, SystemSources};

use crate::actions::{self, Actions, Early};
use crate::args::{Args, OnFailure, Shell, SyscallChoice};
use crate::getopt::{self, GetoptError, Table};
use crate::kexec_tools::{self, Build, SerialRule};
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
    /// kexec-tools' own words: printed as they are, without "rkexec: ".
    bare: bool,
}

impl Fail {
    fn usage(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_USAGE, usage: true, bare: false }
    }
    /// kexec-tools' die(): message, exit 1.
    fn die(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_USAGE, usage: false, bare: false }
    }
    fn failed(msg: impl Into<String>) -> Self {
        Fail { msg: msg.into(), code: EXIT_FAILED, usage: false, bare: false }
    }
    /// kexec-tools' message, word for word, with `code`.
    fn kexec_tools(msg: impl Into<String>, code: u8) -> Self {
        Fail { msg: msg.into(), code, usage: false, bare: true }
    }
    fn print(&self) {
        if self.bare {
            eprintln!("{}", self.msg);
        } else {
            eprintln!("rkexec: {}", self.msg);
        }
        if self.usage {
            print_usage();
        }
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
        .and_then(|a| PathBuf::from(a).file_name().map(|n| escape::os(n).to_string()))
        .unwrap_or_else(|| "rkexec".into());
    // Bytes, as kexec-tools' argv: file names and the command line pass
    // through whatever their encoding (issue 21 item 3).
    let argv: Vec<OsString> = raw.collect();
    // Invoked as `kexec` (the /sbin/kexec link), argv is kexec-tools' and
    // nothing else: a kernel file may be called `plan` or `purgatory`.
    // As rkexec, those words are rkexec's own commands.
    let subcommands = argv0 != "kexec";
    // `rkexec purgatory ...`: rkexec's own command for other loaders.
    if subcommands && argv.first().is_some_and(|a| a == "purgatory") {
        // Its words are names and options: text.
        let mut words = Vec::new();
        for a in &argv[1..] {
            match a.to_str() {
                Some(s) => words.push(s.to_string()),
                None => {
                    eprintln!("{argv0}: purgatory: argument {} is not UTF-8 text", escape::os(a));
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
        return ExitCode::from(crate::purgatory_cmd::main(&argv0, &words));
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
                return early_exit(early, None, &argv0);
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
    let plan_cmd = subcommands && scanned.operands.first().is_some_and(|a| a == "plan");
    if plan_cmd {
        scanned.operands.remove(0);
    }
    // `rkexec status`: what is loaded, in words (-S stays kexec-tools'
    // silent exit status).
    if subcommands && scanned.operands.first().is_some_and(|a| a == "status") {
        return match Args::command()
            .try_get_matches_from(getopt::canonical(&table, &scanned))
            .and_then(|m| Args::from_arg_matches(&m))
        {
            Ok(a) => {
                let src = SystemSources::new(a.proc_root, a.sys_root);
                for crash in [false, true] {
                    println!("{}", status_detail(&src, crash, ops::read_loaded(&src, crash)));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{argv0}: {}", e.render().to_string().lines().next().unwrap_or("bad arguments"));
                ExitCode::from(EXIT_USAGE)
            }
        };
    }
    let parsed = Args::command()
        .try_get_matches_from(getopt::canonical(&table, &scanned))
        .and_then(|m| Args::from_arg_matches(&m));
    let actions = match actions::fold(&scanned) {
        Ok(a) => a,
        Err(early) => return early_exit(early, parsed.ok(), &argv0),
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
    let dtb_words = scanned.opts.iter().filter(|o| o.id == "dtb").filter_map(|o| o.word.clone()).collect();
    match run(args, actions, scanned.operands, plan_cmd, Invoked { argv0, dtb_words }) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            f.print();
            ExitCode::from(f.code)
        }
    }
}

/// How the command was invoked, for kexec-tools' getopt warnings.
struct Invoked {
    /// argv\[0\]'s file name, as glibc's getopt messages start.
    argv0: String,
    /// Each `--dtb` as written (`--dtb=FILE`, `--dtb`): what an x86
    /// loader's getopt_long calls an unrecognized option.
    dtb_words: Vec<OsString>,
}

/// The documented command, for the man page and the completions: the
/// clap definition without its hidden test and generator options, named
/// `name`.
fn public_command(name: &'static str) -> clap::Command {
    let full = Args::command();
    let mut cmd = clap::Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(crate::args::ABOUT)
        .long_about(crate::args::LONG_ABOUT)
        .after_help(crate::args::AFTER_HELP)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .max_term_width(100);
    for a in full.get_arguments().filter(|a| !a.is_hide_set()) {
        cmd = cmd.arg(a.clone());
    }
    cmd
}

/// The names the completions register for: rkexec, and kexec, the name it
/// is installed under to replace kexec-tools.
const COMMAND_NAMES: [&str; 2] = ["rkexec", "kexec"];

fn early_exit(early: Early, args: Option<Args>, argv0: &str) -> ExitCode {
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
            let size = src.memory_map().ok().map_or(0, |i| i.crash_kernel().iter().map(|r| r.len()).sum::<u64>());
            println!("{size}");
        }
        Early::Man => {
            // Section 8, system administration, where kexec(8) is (and
            // where the package installs both pages).
            let name = if argv0 == "kexec" { "kexec" } else { "rkexec" };
            let man = clap_mangen::Man::new(public_command(name)).section("8").manual("System Administration");
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
            use clap_complete::Shell as S;
            let s = match shell {
                Shell::Bash => S::Bash,
                Shell::Zsh => S::Zsh,
                Shell::Fish => S::Fish,
                Shell::Elvish => S::Elvish,
                Shell::Powershell => S::PowerShell,
            };
            let script = completions(s);
            if let Err(e) = out.write_all(script.as_bytes()) {
                eprintln!("rkexec: writing the completions: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
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

/// One completion script that registers for every name in
/// COMMAND_NAMES. zsh autoloads one function per file, named by its
/// `#compdef` line, so there the one script names both commands; the
/// other shells' scripts are independent per command and are concatenated.
fn completions(shell: clap_complete::Shell) -> String {
    let script = |name: &'static str| {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut public_command(name), name, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    if shell == clap_complete::Shell::Zsh {
        let all = COMMAND_NAMES.join(" ");
        return script("rkexec").replacen("#compdef rkexec\n", &format!("#compdef {all}\n"), 1).replacen(
            "compdef _rkexec rkexec\n",
            &format!("compdef _rkexec {all}\n"),
            1,
        );
    }
    COMMAND_NAMES.iter().map(|n| script(n)).collect::<Vec<_>>().join("\n")
}

struct Ctx {
    args: Args,
    act: Actions,
    src: SystemSources,
    how: Invoked,
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
    src.memory_map().ok().is_none_or(|i| !i.crash_kernel().is_empty())
}

/// kexec-tools' x86 arch_process_options checks (kexec/arch/x86_64/
/// kexec-x86_64.c): --serial-baud divides 115200 within 9600..115200; on
/// an x86 build, --serial is ttyS0, ttyS1 or an I/O port below 65536
/// (`kexec_tools::x86_serial_port`).
fn arch_option_errors(a: &Args, build: Option<&Build>) -> Option<String> {
    if let Some(b) = &a.serial_baud {
        let ok = crate::args::c_number(b).is_some_and(|v| (9600..=115_200).contains(&v) && 115_200 % v == 0);
        if !ok {
            return Some(format!("Bad serial port baud rate '{}'", escape::text(b)));
        }
    }
    match (&a.serial, build.map(|b| b.serial)) {
        (Some(s), Some(SerialRule::X86Port)) => kexec_tools::x86_serial_port(s).err(),
        _ => None,
    }
}

/// kexec/kexec.c main(): `--hotplug` reads /sys/kernel/crash_elfcorehdr_size
/// before anything else is done, whatever the action, and dies (exit 1)
/// when it is missing, 0 or not a number (strtoul base 0, one trailing
/// newline allowed).
/// `rkexec status`: what is loaded, and for a crash kernel whether the running
/// kernel updates it on CPU and memory hotplug (the crash_hotplug files,
/// drivers/base/cpu.c and memory.c crash_hotplug_show: 1 only for a loaded
/// hotplug-aware crash image).
fn status_detail(src: &SystemSources, crash: bool, loaded: Option<i64>) -> String {
    let what = if crash { "crash kernel" } else { "kernel" };
    let Some(n) = loaded else {
        return format!(
            "{what}: cannot tell (/sys/kernel/kexec{}_loaded unreadable)",
            if crash { "_crash" } else { "" }
        );
    };
    if n != 1 {
        return format!("{what}: not loaded");
    }
    if !crash {
        return format!("{what}: loaded");
    }
    let read = |dev: &str| {
        let p = src.sys_root.join(format!("devices/system/{dev}/crash_hotplug"));
        loader_host::system::read_text(&p).ok().map(|t| t.trim() == "1")
    };
    match (read("cpu"), read("memory")) {
        (None, None) => format!("{what}: loaded; not hotplug-aware (the running kernel has no crash hotplug)"),
        (cpu, mem) if cpu.unwrap_or(false) || mem.unwrap_or(false) => format!(
            "{what}: loaded, hotplug-aware: the kernel updates it on CPU and memory hotplug (crash_hotplug cpu {}, memory {})",
            u8::from(cpu.unwrap_or(false)),
            u8::from(mem.unwrap_or(false))
        ),
        _ => format!("{what}: loaded, not hotplug-aware (loaded with --no-hotplug or by another loader): reload it after CPU or memory hotplug"),
    }
}

fn hotplug_size_error(src: &SystemSources) -> Option<String> {
    let path = src.sys_root.join("kernel/crash_elfcorehdr_size");
    let size = loader_host::system::read_text(&path)
        .ok()
        .and_then(|t| crate::args::c_number(t.strip_suffix('\n').unwrap_or(&t)));
    match size {
        Some(n) if n != 0 => None,
        _ => Some(format!("Path {} does not exist, the kernel needs CONFIG_CRASH_HOTPLUG", escape::path(&path))),
    }
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

fn run(args: Args, act: Actions, operands: Vec<OsString>, plan_cmd: bool, how: Invoked) -> Result<u8, Fail> {
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
    let ctx = Ctx { args, act, src, how, simulated, show_plan };
    let (a, act) = (&ctx.args, ctx.act);

    // kexec/kexec.c main(), after the option loop, in its order.
    if act.load && act.crash && !crash_reserved(&ctx.src) {
        return Err(Fail::die(format!(
            "Memory for crashkernel is not reserved ({} has no \"Crash kernel\" range)\n\
             Please reserve memory by passing \"crashkernel=Y@X\" parameter to kernel\n\
             Then try to loading kdump kernel",
            escape::path(&ctx.src.iomem_path())
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
    if a.hotplug {
        if let Some(msg) = hotplug_size_error(&ctx.src) {
            return Err(Fail::die(msg));
        }
    }
    if act.load && (a.hotplug || a.no_hotplug) && !act.crash {
        return Err(Fail::usage("--hotplug/--no-hotplug apply to crash kernels: use them with -p"));
    }
    // arch_process_options: a bad value makes result -1: nothing is loaded.
    let mut result = 0u8;
    let kernel = operands.first().map(PathBuf::from);
    if let Some(msg) = arch_option_errors(a, loader_build(kernel.as_deref())) {
        eprintln!("{msg}");
        print_usage();
        result = EXIT_FAILED;
    }
    if act.reuse_initrd {
        // check_reuse_initrd: the running kernel must have kept it.
        let cmdline = ctx.src.cmdline().map_err(|e| Fail::die(format!("Failed to read /proc/cmdline: {e}")))?;
        if !cmdline.windows(b"retain_initrd".len()).any(|w| w == b"retain_initrd") {
            return Err(Fail::die("unrecoverable error: current boot didn't retain the initrd for reuse."));
        }
        return Err(Fail::die("--reuseinitrd is not supported by rkexec: give the initrd with --initrd"));
    }
    if act.status {
        // k_status: 1 loaded, 0 not, 255 when the file cannot be read;
        // silent, as kexec-tools (`rkexec status` says more).
        return Ok(match ops.loaded(act.crash) {
            Some(v) => (v & 0xff) as u8,
            None => EXIT_FAILED,
        });
    }
    if act.unload {
        if let Err(f) = unload(&ctx, ops.as_mut()) {
            f.print();
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
            let extra: Vec<String> = operands[1..].iter().map(|o| format!("{:?}", escape::os(o))).collect();
            note(&format!("extra arguments after the kernel are ignored, as by kexec-tools: [{}]", extra.join(", ")));
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
        (Some(s), false) => CmdlineChoice::Set(s.as_bytes().to_vec()),
        (extra, true) => CmdlineChoice::Reuse(extra.as_deref().map_or_else(Vec::new, |s| s.as_bytes().to_vec())),
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
        let hotplug = match (a.hotplug, a.no_hotplug) {
            (true, _) => Hotplug::Required,
            (false, true) => Hotplug::Off,
            (false, false) => Hotplug::Auto,
        };
        req.crash = Some(CrashOptions { hotplug, exclude: !a.debug_hash_excluded });
    }
    for s in &a.dtb_set {
        let (path, value) = s.split_once('=').ok_or_else(|| {
            Fail::usage(format!("--dtb-set {}: expected /path/to/node/property=value", escape::text(s)))
        })?;
        if loader_host::dtb::handover::split_property_path(path).is_none() {
            return Err(Fail::usage(format!(
                "--dtb-set {}: '{}' is not an absolute /node/property path",
                escape::text(s),
                escape::text(path)
            )));
        }
        req.dtb_set.push((path.to_string(), value.to_string()));
    }
    for p in &a.dtb_delete {
        if loader_host::dtb::handover::split_property_path(p).is_none() {
            return Err(Fail::usage(format!("--dtb-delete {}: not an absolute /node/property path", escape::text(p))));
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
    let n = f.read(&mut head).map_err(|e| Fail::failed(format!("{}: {e}", escape::path(path))))?;
    head.truncate(n);
    Ok(image::probe_machine(&head).and_then(loader_host::arch::by_machine))
}

/// The plan goes to stdout when it is what was asked for (plan,
/// --dry-run); -d prints it as debug output, on stderr, where kexec-tools'
/// dbgprintf writes (kexec/kexec.h: `fprintf(stderr, ...)` when
/// kexec_debug).
fn show(ctx: &Ctx, text: String) {
    if ctx.show_plan {
        print!("{text}");
    } else if ctx.args.debug {
        eprint!("{text}");
    }
}

fn print_plan(ctx: &Ctx, plan: &Plan) {
    show(ctx, if ctx.args.json { format!("{}\n", render::json(plan)) } else { render::table(plan) });
}

fn print_file_plan(ctx: &Ctx, plan: &FilePlan) {
    show(ctx, if ctx.args.json { format!("{}\n", render::file_json(plan)) } else { render::file_table(plan) });
}

/// The kexec-tools build whose loader rules apply to a kernel of `arch`:
/// that architecture's (None: no build is described for it, rkexec's own
/// rules), or the running one's when the file does not say.
fn build_for(arch: Option<Arch>) -> Option<&'static Build> {
    match arch {
        Some(a) => Build::for_arch(a.name),
        None => Build::running(),
    }
}

/// `build_for` the architecture of the kernel file at `kernel`.
fn loader_build(kernel: Option<&std::path::Path>) -> Option<&'static Build> {
    build_for(kernel.and_then(|k| kernel_arch(k).ok().flatten()))
}

/// Why kexec_load's errno lets `--syscall auto` go on with kexec_file_load,
/// or None. kernel/kexec.c kexec_load_check refuses kexec_load (and its
/// unload) before looking at the image: EPERM from kexec_load_permitted
/// (CAP_SYS_BOOT, kexec_load_disabled) and from lockdown
/// (security_locked_down(LOCKDOWN_KEXEC)); whatever a security module's
/// kernel_load_data(LOADING_KEXEC_IMAGE) hook returns: EACCES from IMA
/// (security/integrity/ima/ima_main.c ima_load_data: KEXEC_SIG with Secure
/// Boot, or an appraise rule for KEXEC_KERNEL_CHECK; "try using
/// kexec_file_load syscall") and SELinux, EPERM from LoadPin. ENOSYS: a
/// kernel without CONFIG_KEXEC. kexec-tools >= 2.0.27 is never stopped by
/// these: its auto mode tries kexec_file_load first (kexec/kexec.c main(),
/// do_kexec_file_syscall = do_kexec_fallback = 1) and uses kexec_load only
/// when that returns EFALLBACK.
fn refused_by_policy(errno: i32, src: &SystemSources) -> Option<&'static str> {
    match errno {
        libc::EPERM if src.lockdown_active() => Some("kexec_load refused by kernel lockdown"),
        libc::EPERM => Some("kexec_load refused (EPERM: a security module, kexec_load_disabled or no CAP_SYS_BOOT)"),
        libc::EACCES => Some("kexec_load refused by IMA or another security module (EACCES)"),
        libc::ENOSYS => Some("kexec_load is not in this kernel (ENOSYS)"),
        _ => None,
    }
}

/// kexec-tools' messages for a `-t` it does not know (kexec/kexec.c
/// my_load: "Unsupported kernel type %s", -1: exit 255); other errors as
/// rkexec words them.
fn plan_failure(e: LoadError) -> Fail {
    use loader_host::image::ImageError;
    match e {
        LoadError::Kernel { err: ImageError::UnknownType { name }, .. } => {
            Fail::kexec_tools(format!("Unsupported kernel type {}", escape::text(&name)), EXIT_FAILED)
        }
        e => e.into(),
    }
}

fn load(ctx: &Ctx, kernel: PathBuf, ops: &mut dyn Ops) -> Result<(), Fail> {
    let a = &ctx.args;
    let choice = ctx.act.syscall;
    for n in option_notes(a, choice == SyscallChoice::File) {
        note(&n);
    }
    let arch = kernel_arch(&kernel)?;
    let build = build_for(arch);
    let mut req = request(ctx, kernel.clone())?;
    if let Some(b) = build {
        loader_rules(ctx, b, arch, &mut req);
    }
    if choice == SyscallChoice::File {
        return load_file(ctx, &req, ops);
    }
    if !ctx.simulated {
        if let Some(arch) = arch {
            if loader_host::arch::native() != Some(arch) {
                return Err(Fail::failed(format!(
                    "{}: an {arch} kernel cannot be kexec'd from this {} machine (plan works anywhere)",
                    escape::path(&kernel),
                    std::env::consts::ARCH
                )));
            }
        }
    }
    ctx.progress("reading kernel, initrds and boot data; laying out segments");
    let plan = loader_host::plan(&req, &ctx.src).map_err(plan_failure)?;
    ctx.progress(&format!("planned {} segments, entry {:#x}", plan.segments.len(), plan.entry));
    print_plan(ctx, &plan);
    ctx.progress("kexec_load");
    match ops.kexec_load(&plan) {
        Ok(()) => Ok(()),
        Err(mut e) if e.errno == libc::EINVAL && plan.hotplug => {
            if let Some(f) = plan.arch.hotplug_flag {
                e.context = Some(format!("this kernel rejected {}: it needs {}", f.name, f.kernels));
            }
            Err(Fail::failed(e.to_string()))
        }
        Err(e) if choice == SyscallChoice::Auto && refused_by_policy(e.errno, &ctx.src).is_some() => {
            let why = refused_by_policy(e.errno, &ctx.src).unwrap_or_default();
            note(&format!(
                "{why}; falling back to kexec_file_load (the kernel loads and verifies the image; our purgatory is not used)"
            ));
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

/// What kexec-tools' build for the kernel's architecture does with the
/// loader options, applied to the request: an option its loaders do not
/// know gets glibc's warning and is dropped (x86 `--dtb`), and an arm64
/// `--serial` that names no usable UART is reported and dropped.
fn loader_rules(ctx: &Ctx, build: &Build, arch: Option<Arch>, req: &mut Request) {
    if build.loader_unknown.contains(&"dtb") && req.dtb.is_some() {
        // glibc posix/getopt.c process_long_option: "%s: unrecognized
        // option '%s%s'\n", the word as written, once per occurrence.
        for w in &ctx.how.dtb_words {
            eprintln!("{}: unrecognized option '{}'", ctx.how.argv0, escape::os(w));
        }
        req.dtb = None;
    }
    let Some(tty) = req.serial.clone() else { return };
    match build.serial {
        SerialRule::X86Port => {
            // Checked by arch_option_errors; hand the library the port.
            match kexec_tools::x86_serial_port(&tty) {
                Ok(0) => {
                    note(&format!(
                        "--serial={} is I/O port 0, no UART: the purgatory prints nothing",
                        escape::text(&tty)
                    ));
                    req.serial = None;
                }
                Ok(port) if tty.starts_with("0x") => req.serial = Some(format!("{port:#x}")),
                _ => {}
            }
        }
        SerialRule::AnyTty => {
            let Some(arch) = arch else { return };
            if let Err(e) = loader_host::system::console::for_serial(&ctx.src.sys_root, &tty, arch) {
                note(&format!(
                    "--serial={}: {e}; loading without a purgatory console (kexec-tools' {} find_purgatory_sink does the same)",
                    escape::text(&tty),
                    build.dir
                ));
                req.serial = None;
            }
        }
        SerialRule::RkexecOnly => {}
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
    if a.debug {
        // kexec/kexec.c main(), OPT_DEBUG: kexec_file_flags |= KEXEC_FILE_DEBUG
        // (kexec-tools 2.0.29, commit 9d9cf8d): the kernel prints its own
        // placement (Linux 6.7+).
        extra |= loader_host::uapi::KEXEC_FILE_DEBUG;
    }
    let mut req = req.clone();
    if let Some(t) = req.kernel_type.take() {
        // do_kexec_file_load probes the file with every type and never
        // reads `type` (kexec/kexec.c): -t only chooses a kexec_load loader.
        note(&format!(
            "-t {} is ignored with kexec_file_load, as by kexec-tools: the file's own format is used",
            escape::text(&t)
        ));
    }
    let mut plan = file_load::file_plan(&req, &ctx.src, extra).map_err(plan_failure)?;
    print_file_plan(ctx, &plan);
    if !ctx.show_plan {
        for n in &plan.notes {
            note(n);
        }
    }
    ctx.progress("kexec_file_load");
    let mut result = ops.kexec_file_load(&plan);
    let debug = loader_host::uapi::KEXEC_FILE_DEBUG;
    if matches!(result, Err((_, libc::EINVAL))) && plan.flags & debug != 0 {
        // Kernels before 6.7 refuse an unknown flag with EINVAL
        // (kernel/kexec_file.c, KEXEC_FILE_FLAGS): -d must not stop a load
        // there (kexec-tools' -s -d does).
        note("kexec_file_load refused KEXEC_FILE_DEBUG (EINVAL: a kernel before 6.7); loading again without it");
        plan.flags &= !debug;
        result = ops.kexec_file_load(&plan);
    }
    result.map_err(|(msg, errno)| {
        // kexec/kexec.c: with -s there is no fallback, and ENOSYS, EINVAL,
        // ENOEXEC, ENOTSUP end as EFALLBACK: "syscall kexec_file_load not
        // available.", exit 253. Not EINVAL here: the call exists and
        // refused this image (its rules are checked before the call,
        // file_load::file_plan), and saying it is missing sends the user
        // looking for the wrong fault; it is a failed load, 255.
        let unavailable = matches!(errno, libc::ENOSYS | libc::ENOEXEC | libc::EOPNOTSUPP);
        if unavailable && ctx.act.syscall == SyscallChoice::File {
            // A kernel without the call: kexec-tools probes for it first
            // (is_kexec_file_load_implemented) and prints only its one
            // line; an image the kernel has no loader for also gets the
            // kernel's errno first.
            if errno == libc::ENOSYS {
                Fail::kexec_tools(FILE_LOAD_UNAVAILABLE, EXIT_FALLBACK)
            } else {
                Fail { msg: format!("{msg}\n{FILE_LOAD_UNAVAILABLE}"), code: EXIT_FALLBACK, usage: false, bare: false }
            }
        } else {
            Fail::failed(msg)
        }
    })
}

/// kexec/kexec.c main(): what `-s` prints when the call is missing
/// (EFALLBACK with no fallback allowed), exit 253.
const FILE_LOAD_UNAVAILABLE: &str = "syscall kexec_file_load not available.";

fn unload(ctx: &Ctx, ops: &mut dyn Ops) -> Result<(), Fail> {
    let crash = ctx.act.crash;
    let choice = ctx.act.syscall;
    if choice == SyscallChoice::File {
        // kexec/kexec.c kexec_file_unload: ENOSYS is EFALLBACK, and -s
        // allows no fallback: "syscall kexec_file_load not available.", 253.
        return ops.unload(crash, true).map_err(|e| {
            if e.errno == libc::ENOSYS {
                Fail::kexec_tools(FILE_LOAD_UNAVAILABLE, EXIT_FALLBACK)
            } else {
                Fail::failed(e.to_string())
            }
        });
    }
    match ops.unload(crash, false) {
        Ok(()) => Ok(()),
        // kexec_load_check refuses kexec_load's unload as it refuses a load
        // (lockdown, IMA, ...); kexec_file_load's unload is allowed (it
        // loads nothing). kexec-tools >= 2.0.27 unloads with
        // kexec_file_load first (kexec/kexec.c kexec_file_unload).
        Err(e) if choice == SyscallChoice::Auto && refused_by_policy(e.errno, &ctx.src).is_some() => {
            note(&format!(
                "{}; unloading with kexec_file_load",
                refused_by_policy(e.errno, &ctx.src).unwrap_or_default()
            ));
            ops.unload(crash, true).map_err(|e| Fail::failed(e.to_string()))
        }
        Err(e) => Err(Fail::failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_rules_follow_the_kernels_architecture() {
        let by = |n: &str| build_for(loader_host::arch::by_name(n)).map(|b| b.dir);
        assert_eq!(by("arm64"), Some("arm64"));
        assert_eq!(by("x86_64"), Some("x86_64"));
        // No kexec-tools build is described for ppc64le: rkexec's own rules,
        // never the running machine's (x86's --serial rule would refuse hvc0).
        assert_eq!(by("ppc64le"), None);
    }
}
