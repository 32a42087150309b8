//! The one [`Platform`] every architecture runs the portable flow on. It
//! calls only `purgatory_arch::machine`, which each architecture module
//! provides under the same names; the per-architecture glue files
//! (`aarch64.rs`, `x86_64.rs`) keep just what is specific to them and call
//! the steps here in order.

use kexec_purgatory::abi::{
    PurgatoryParams, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_PL011, CONSOLE_SBI,
    ON_FAILURE_RESET, PARAM_FLAG_DEBUG_SOFT_SHA256, PSCI_CONDUIT_HVC, PSCI_CONDUIT_SMC,
};
use kexec_purgatory::report::Console;
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::verify::{self, Handoff, Platform};
use purgatory_arch::machine as arch;
use purgatory_arch::uart::Uart;
use purgatory_arch::{Conduit, UartKind};

/// The parameter block the loader fills in (docs/abi.md). Zero in the
/// built image, so an unfilled image refuses to run (bad magic).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".params")]
static mut PURGATORY_PARAMS: PurgatoryParams = PurgatoryParams::EMPTY;

/// The block as the loader wrote it. `black_box` hides the static's
/// initialiser from the optimiser (the loader changed it after the build)
/// without a field-by-field volatile copy.
pub fn loaded_params() -> &'static PurgatoryParams {
    // SAFETY: nothing in the purgatory writes the block; single CPU.
    unsafe { &*core::hint::black_box(core::ptr::addr_of!(PURGATORY_PARAMS)) }
}

/// The console the block names, as this architecture can drive it.
fn uart_from(params: &PurgatoryParams) -> Uart {
    let kind = match params.console.kind {
        CONSOLE_PL011 => UartKind::Pl011,
        CONSOLE_8250_MMIO32 => UartKind::Ns16550Mmio32,
        CONSOLE_8250_IO => UartKind::Ns16550Io,
        CONSOLE_8250_MMIO8 => UartKind::Ns16550Mmio8,
        // riscv64's SBI console has no base address.
        CONSOLE_SBI => return arch::uart(UartKind::Sbi, 0).unwrap_or(Uart::None),
        _ => return Uart::None,
    };
    match params.console.base {
        0 => Uart::None,
        base => arch::uart(kind, base).unwrap_or(Uart::None),
    }
}

/// Console output through the UART.
pub struct UartConsole(Uart);

impl Console for UartConsole {
    #[inline(never)]
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

/// The machine the purgatory runs on, as the portable flow sees it.
pub struct Machine {
    params: &'static PurgatoryParams,
    /// Runtime base and `mem_size` of the purgatory image.
    image: (u64, u64),
    uart: Uart,
    console: UartConsole,
    compress: CompressFn,
    engine: &'static str,
    clock: Option<arch::Clock>,
}

impl Machine {
    /// Read the parameter block, pick the console and the digest engine.
    /// `base` is the runtime base `_start` computed.
    pub fn start(base: u64) -> Self {
        let params = loaded_params();
        // SAFETY: `base` is the runtime base `_start` passed on.
        let image = (base, unsafe { arch::image_mem_size(base) });
        let uart = uart_from(params);
        let soft = params.flags & PARAM_FLAG_DEBUG_SOFT_SHA256 != 0;
        let hw = if soft { None } else { arch::sha256_engine() };
        let (compress, engine) = hw.unwrap_or((compress_portable, "portable"));
        Machine { params, image, uart, console: UartConsole(uart), compress, engine, clock: None }
    }

    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // x86 maps nothing it names
    pub fn params(&self) -> &'static PurgatoryParams {
        self.params
    }

    /// Runtime base and size in memory of the purgatory image.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // x86 maps and cleans nothing
    pub fn image(&self) -> (u64, u64) {
        self.image
    }

    /// The console UART (its MMIO page needs mapping as Device memory).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // only aarch64 builds page tables
    pub fn uart(&self) -> Uart {
        self.uart
    }

    /// Start the first console line, "purgatory: ARCH MODE, image BASE, ";
    /// the caller finishes it with what it set up.
    pub fn hello(&mut self, mode: &str) -> &mut UartConsole {
        self.console.put("purgatory: ").put(arch::NAME).put(" ").put(mode);
        self.console.put(", image ").hex(self.image.0).put(", ")
    }

    /// The portable flow: verify, patch, and say where to go. Never returns
    /// on failure (the failure has been reported).
    pub fn verify(&mut self) -> Handoff {
        // Started late: x86 calibrates its TSC here (10 ms), after the
        // first console line.
        self.clock = arch::Clock::start();
        if self.clock.is_none() {
            self.console.put("purgatory: no clock to time the verification: times read 0\n");
        }
        let params = self.params;
        match verify::run(params, self) {
            Ok(h) => h,
            Err(_) => self.fail(),
        }
    }

    /// The last line before the jump.
    pub fn entering(&mut self, h: &Handoff, boot_data_name: &str) {
        self.console.put("purgatory: entering kernel at ").hex(h.entry);
        self.console.put(", ").put(boot_data_name).put(" ").hex(h.boot_data).put("\n");
    }

    /// Not entering the kernel: reset if the block asks for it and the
    /// architecture can, else halt.
    pub fn fail(&mut self) -> ! {
        fail(self.params, &mut self.console)
    }
}

/// A failure found outside the portable flow (riscv64: a trap that was no
/// guarded probe): `report` says what happened on the block's console,
/// then reset or halt as for any failure.
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
pub fn fail_with(report: impl FnOnce(&mut UartConsole)) -> ! {
    let params = loaded_params();
    let mut con = UartConsole(uart_from(params));
    report(&mut con);
    fail(params, &mut con)
}

fn fail(params: &PurgatoryParams, con: &mut UartConsole) -> ! {
    if params.on_failure == ON_FAILURE_RESET {
        let conduit = match params.psci_conduit {
            PSCI_CONDUIT_HVC => Conduit::Hvc,
            PSCI_CONDUIT_SMC => Conduit::Smc,
            _ => Conduit::None,
        };
        if let Some(method) = arch::reset_method(conduit) {
            con.put("purgatory: resetting the system (").put(method).put(")\n");
            arch::reset(conduit);
            con.put("purgatory: the reset did not happen\n");
        }
    }
    con.put("purgatory: halted\n");
    arch::halt()
}

impl Platform for Machine {
    type Con = UartConsole;

    fn console(&mut self) -> &mut UartConsole {
        &mut self.console
    }

    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        // SAFETY: verify::validate() checked the range is non-empty, does
        // not wrap and does not start at 0; the loader placed a segment
        // there, so it is RAM, identity-mapped (or the MMU is off).
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
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // A bug of ours, never a verification result: say so and stop.
    let params = loaded_params();
    let mut con = UartConsole(uart_from(params));
    con.put("purgatory: internal error (panic), not entering the kernel\n");
    arch::halt()
}
