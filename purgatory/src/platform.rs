//! The one [`Platform`] every architecture runs the portable flow on. It
//! calls only `purgatory_arch::machine`, which each architecture module
//! provides under the same names; the per-architecture glue files
//! (`aarch64.rs`, `x86_64.rs`) keep just what is specific to them and call
//! the steps here in order: [`Machine::start`] (validate, nothing else
//! before it; or [`Validated::check`] then [`Machine::new`] for riscv64,
//! which reads its DTB in between), their own set-up, [`Machine::hello`],
//! [`Machine::verify`], [`Machine::entering`], their hand-off.

use kexec_purgatory::abi::{
    PurgatoryParams, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_PL011, CONSOLE_SBI,
    ON_FAILURE_RESET, PARAMS_MAGIC, PARAM_FLAG_DEBUG_SOFT_SHA256, PSCI_CONDUIT_HVC, PSCI_CONDUIT_SMC,
};
use kexec_purgatory::console_lines as lines;
use kexec_purgatory::report::{Arg, Console};
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::template;
use kexec_purgatory::verify::{self, boot_data_name, Failure, Handoff, MemSpan, Platform, Rules};
use purgatory_arch::machine as arch;
use purgatory_arch::uart::Uart;
use purgatory_arch::{Conduit, UartKind};

/// The parameter block the loader fills in (docs/abi.md). Zero in the
/// built image, so an unfilled image refuses to run (bad magic).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".params")]
static mut PURGATORY_PARAMS: PurgatoryParams = PurgatoryParams::EMPTY;

/// The console once `Validated::check` found it usable, for the panic
/// handler and `fail_with`. Uart::None until then.
static mut CONSOLE: Uart = Uart::None;

/// The block as the loader wrote it. `black_box` hides the static's
/// initialiser from the optimiser (the loader changed it after the build)
/// without a field-by-field volatile copy.
pub fn loaded_params() -> &'static PurgatoryParams {
    // SAFETY: nothing in the purgatory writes the block; single CPU.
    unsafe { &*core::hint::black_box(core::ptr::addr_of!(PURGATORY_PARAMS)) }
}

/// The console the block names, as this architecture drives it. Call only
/// once `verify::console_usable` said yes. Out of line on riscv64, where
/// that measured 160 bytes smaller (on aarch64, 16 bytes larger).
#[cfg_attr(target_arch = "riscv64", inline(never))]
fn uart_from(params: &PurgatoryParams) -> Uart {
    let kind = match params.console.kind {
        CONSOLE_PL011 => UartKind::Pl011,
        CONSOLE_8250_MMIO32 => UartKind::Ns16550Mmio32,
        CONSOLE_8250_IO => UartKind::Ns16550Io,
        CONSOLE_8250_MMIO8 => UartKind::Ns16550Mmio8,
        // riscv64's SBI console has no base address.
        CONSOLE_SBI => return arch::uart(UartKind::Sbi, 0).unwrap_or(Uart::None),
        // ppc64le: `base` is the vterm number.
        #[cfg(target_arch = "powerpc64")]
        kexec_purgatory::abi::CONSOLE_HVTERM => UartKind::Hvterm,
        _ => return Uart::None,
    };
    arch::uart(kind, params.console.base).unwrap_or(Uart::None)
}

/// Console output through the UART.
pub struct UartConsole(Uart);

impl Console for UartConsole {
    #[inline(never)]
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

/// This architecture's rules (`verify::Rules`) for the image at `image`.
/// Built where they are used, from constants: the optimiser then drops
/// what another architecture's rules would need (x86's boot_params patch
/// on DTB machines, the DTB patch on x86).
fn arch_rules(image: MemSpan) -> Rules {
    #[cfg(target_arch = "aarch64")]
    let rules = Rules::aarch64(image);
    #[cfg(target_arch = "x86_64")]
    let rules = Rules::x86_64(image);
    #[cfg(target_arch = "riscv64")]
    let rules = Rules::riscv64(image);
    #[cfg(target_arch = "powerpc64")]
    let rules = Rules::ppc64le(image);
    rules
}

/// A parameter block `verify::validate` accepted for this image, and the
/// console it names when that passed its rules too.
pub struct Validated {
    params: &'static PurgatoryParams,
    image: MemSpan,
    uart: Uart,
}

impl Validated {
    /// Validate the parameter block against this image (loaded at `base`,
    /// the runtime base `_start` computed) and the architecture's rules,
    /// before anything else: no page table, cache operation, console byte
    /// or read of a segment comes first. A block that fails never gets past
    /// here: the refusal is printed if the console passed its own rules
    /// (else nothing is printed), then the failure policy runs.
    pub fn check(base: u64) -> Self {
        let params = loaded_params();
        // SAFETY: `base` is the runtime base `_start` passed on.
        let image = MemSpan::new(base, unsafe { arch::image_mem_size(base) });
        let rules = arch_rules(image);
        let verdict = verify::validate(params, &rules);
        let uart = if verify::console_usable(params, &rules) { uart_from(params) } else { Uart::None };
        // SAFETY: single CPU; written before anything can read it.
        unsafe { core::ptr::addr_of_mut!(CONSOLE).write(uart) };
        if let Err(e) = verdict {
            let mut console = UartConsole(uart);
            verify::report_failure(params, &mut console, &Failure::Params(e));
            fail(params, &mut console);
        }
        Validated { params, image, uart }
    }

    /// The validated parameter block.
    #[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))] // riscv reads its DTB before Machine::new
    pub fn params(&self) -> &'static PurgatoryParams {
        self.params
    }

    #[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
    pub fn rules(&self) -> Rules {
        arch_rules(self.image)
    }

    /// Runtime base and size in memory of the purgatory image.
    #[cfg(target_arch = "powerpc64")]
    pub fn image(&self) -> MemSpan {
        self.image
    }

    /// The boot data from `boot_data` to the end of its segment (the DTB
    /// on DTB machines), in this validated block; None without one.
    #[cfg(target_arch = "powerpc64")]
    pub fn boot_data_bytes(&self) -> Option<&'static [u8]> {
        let params = self.params;
        let seg = params.active_segments().get(verify::boot_data_segment(params, &self.rules()).ok()??)?;
        let len = seg.len.checked_sub(params.boot_data.checked_sub(seg.mem)?)?;
        // SAFETY: inside a validated segment: RAM, physically addressed
        // (real mode), outside the purgatory image; nothing writes it
        // while the slice is read.
        Some(unsafe { core::slice::from_raw_parts(params.boot_data as *const u8, len as usize) })
    }
}

/// The machine the purgatory runs on, as the portable flow sees it. Exists
/// only for a parameter block `verify::validate` accepted.
pub struct Machine {
    params: &'static PurgatoryParams,
    image: MemSpan,
    uart: Uart,
    console: UartConsole,
    compress: CompressFn,
    engine: &'static str,
    clock: Option<arch::Clock>,
}

impl Machine {
    /// [`Validated::check`], then [`Machine::new`]: for architectures with
    /// nothing to learn between the two.
    #[cfg_attr(any(target_arch = "riscv64", target_arch = "powerpc64"), allow(dead_code))]
    pub fn start(base: u64) -> Self {
        Self::new(Validated::check(base))
    }

    /// The machine for a validated block: picks the digest engine (the
    /// architecture's, unless the block asks for the portable one).
    pub fn new(v: Validated) -> Self {
        let Validated { params, image, uart } = v;
        let soft = params.flags & PARAM_FLAG_DEBUG_SOFT_SHA256 != 0;
        let hw = if soft { None } else { arch::sha256_engine() };
        let (compress, engine) = hw.unwrap_or((compress_portable, "portable"));
        Machine { params, image, uart, console: UartConsole(uart), compress, engine, clock: None }
    }

    /// The validated parameter block.
    #[cfg_attr(any(target_arch = "x86_64", target_arch = "powerpc64"), allow(dead_code))] // x86 maps nothing it names
    pub fn params(&self) -> &'static PurgatoryParams {
        self.params
    }

    /// Runtime base and size in memory of the purgatory image.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // x86 maps and cleans nothing
    pub fn image(&self) -> MemSpan {
        self.image
    }

    /// The validated console UART (its MMIO page needs mapping as Device
    /// memory on architectures that turn the MMU on).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // only aarch64 builds page tables
    pub fn uart(&self) -> Uart {
        self.uart
    }

    /// The first line: `console_lines::STARTED` with this architecture's
    /// mode and what its set-up did (a `console_lines::SETUP_*` template).
    pub fn hello(&mut self, mode: &str, setup: &str, setup_args: &[Arg]) {
        let image = self.image.start;
        let args = [Arg::Text(arch::NAME), Arg::Text(mode), Arg::Hex(image), Arg::Sub(&(setup, setup_args))];
        self.console.line(template!(lines::STARTED), &args);
    }

    /// The portable flow: verify, patch, and say where to go. Never returns
    /// on failure (the failure has been reported).
    pub fn verify(&mut self) -> Handoff {
        // Started late: x86 calibrates its TSC here (10 ms), after the
        // first console line.
        self.clock = arch::Clock::start();
        if self.clock.is_none() {
            self.console.line(template!(lines::NO_CLOCK), &[]);
        }
        let (params, rules) = (self.params, arch_rules(self.image));
        match verify::run(params, &rules, self) {
            Ok(h) => h,
            Err(_) => fail(params, &mut self.console),
        }
    }

    /// The last line before the jump.
    pub fn entering(&mut self, h: &Handoff) {
        let name = boot_data_name(arch_rules(self.image).boot_data_kind);
        self.console.line(template!(lines::ENTERING), &[Arg::Hex(h.entry), Arg::Text(name), Arg::Hex(h.boot_data)]);
    }
}

/// The console `Validated::check` found usable (Uart::None before, or
/// when it was not).
fn validated_console() -> UartConsole {
    // SAFETY: single CPU; written once by `Validated::check` before any
    // reader (the panic handler, `fail_with`) can run.
    UartConsole(unsafe { core::ptr::addr_of!(CONSOLE).read() })
}

/// A failure found outside the portable flow (a panic; riscv64: a trap
/// that was no guarded probe): `report` says what happened on the
/// validated console, then reset or halt as for any failure.
pub fn fail_with(report: impl FnOnce(&mut UartConsole)) -> ! {
    let mut con = validated_console();
    report(&mut con);
    fail(loaded_params(), &mut con)
}

/// Not entering the kernel: reset if the block asks for it and the
/// architecture can, else (or if the reset does not happen) halt. A block
/// without the magic is not trusted to ask for anything: halt.
fn fail(params: &PurgatoryParams, con: &mut UartConsole) -> ! {
    if params.magic == PARAMS_MAGIC && params.on_failure == ON_FAILURE_RESET {
        let conduit = match params.psci_conduit {
            PSCI_CONDUIT_HVC => Conduit::Hvc,
            PSCI_CONDUIT_SMC => Conduit::Smc,
            _ => Conduit::None,
        };
        match arch::reset_method(conduit) {
            Some(method) => {
                con.line(template!(lines::RESETTING), &[Arg::Text(method)]);
                arch::reset(conduit);
                con.line(template!(lines::RESET_FAILED), &[]);
            }
            None => {
                #[cfg(not(target_arch = "powerpc64"))]
                con.line(template!(lines::NO_RESET), &[]);
                #[cfg(target_arch = "powerpc64")]
                con.line(template!(lines::NO_RESET_RTAS), &[]);
            }
        }
    }
    con.line(template!(lines::HALTED), &[]);
    arch::halt()
}

impl Platform for Machine {
    type Con = UartConsole;

    fn console(&mut self) -> &mut UartConsole {
        &mut self.console
    }

    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        // SAFETY: verify::validate() checked the range is non-empty, does
        // not wrap, does not start at 0 and does not overlap this image;
        // the loader placed a segment there, so it is RAM, identity-mapped
        // (or the MMU is off).
        unsafe { core::slice::from_raw_parts_mut(mem as *mut u8, len as usize) }
    }

    fn digest_engine(&self) -> (CompressFn, &'static str) {
        (self.compress, self.engine)
    }

    fn entropy(&mut self) -> Option<u64> {
        arch::entropy()
    }

    fn boot_cpu_id(&self) -> u32 {
        arch::boot_cpu_id()
    }

    fn now_us(&self) -> u64 {
        self.clock.as_ref().map_or(0, arch::Clock::now_us)
    }

    #[cfg(not(target_os = "none"))]
    fn copy_low_memory(&mut self, dst: u64, len: u64) {
        // SAFETY: only ppc64le's rules allow a backup segment; validate()
        // checked that [0, len) overlaps no segment, not this image and no
        // MMIO console page: the crashed kernel's RAM, outside every Rust
        // allocation (this image is not there), read in real mode; and that
        // [dst, + len) is the one backup segment, loaded RAM, not wrapping
        // and (as a segment) not starting inside [0, len).
        unsafe { purgatory_arch::lowmem::copy_from_zero(dst, len) }
    }
}

/// A bug of ours, never a verification result: say so on the console if it
/// was validated, then the failure policy the block asked for.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    fail_with(|con| {
        con.line(template!(lines::INTERNAL_ERROR), &[]);
    })
}
