//! The x86_64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) in 64-bit mode on the kexec identity map, interrupts off,
//! relocations applied, our GDT loaded and a stack in .bss.

use kexec_purgatory::abi::{
    PurgatoryParams, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, ON_FAILURE_RESET, PARAM_FLAG_DEBUG_SOFT_SHA256,
};
use kexec_purgatory::report::Console;

use crate::params::loaded_params;
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::verify::{self, Platform};
use purgatory_arch::x86_64::{cpu, handoff, sha_ni, uart::Uart};

struct UartConsole(Uart);

impl Console for UartConsole {
    #[inline(never)]
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

struct X86 {
    console: UartConsole,
    compress: CompressFn,
    engine: &'static str,
    tsc_hz: Option<u64>,
}

impl Platform for X86 {
    type Con = UartConsole;

    fn console(&mut self) -> &mut UartConsole {
        &mut self.console
    }

    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        // SAFETY: verify::validate() checked the range; the kexec identity
        // map covers every segment (relocate_kernel's page tables).
        unsafe { core::slice::from_raw_parts_mut(mem as *mut u8, len as usize) }
    }

    fn digest_engine(&self) -> (CompressFn, &'static str) {
        (self.compress, self.engine)
    }

    fn entropy(&mut self) -> Option<u64> {
        cpu::hw_random()
    }

    fn boot_cpu_id(&self) -> u32 {
        cpu::apic_id()
    }

    fn now_us(&self) -> u64 {
        match self.tsc_hz {
            Some(hz) if hz > 0 => {
                let t = cpu::rdtsc();
                (t / hz) * 1_000_000 + (t % hz) * 1_000_000 / hz
            }
            _ => 0,
        }
    }
}

fn uart_from(params: &PurgatoryParams) -> Uart {
    match params.console.kind {
        CONSOLE_8250_IO if params.console.base != 0 && params.console.base <= 0xffff => {
            Uart::Io(params.console.base as u16)
        }
        CONSOLE_8250_MMIO32 if params.console.base != 0 => Uart::Mmio32(params.console.base),
        _ => Uart::None,
    }
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64) -> ! {
    let params = loaded_params();
    let cr4_at_entry = cpu::read_cr4();
    // SSE on for the whole run: SHA-NI needs it, and nothing else in the
    // image uses vector registers (soft-float target).
    sha_ni::enable_sse();
    let hw = cpu::has_sha_ni() && params.flags & PARAM_FLAG_DEBUG_SOFT_SHA256 == 0;
    let (compress, engine): (CompressFn, &'static str) =
        if hw { (sha_ni::compress, "sha-ni") } else { (compress_portable, "portable") };
    let mut plat = X86 { console: UartConsole(uart_from(params)), compress, engine, tsc_hz: None };
    let con = plat.console();
    con.put("purgatory: x86_64, image ").hex(base).put(", cr0 ").hex(cpu::read_cr0());
    con.put(", cr4 ").hex(cr4_at_entry).put("\n");
    plat.tsc_hz = cpu::tsc_hz();
    if plat.tsc_hz.is_none() {
        plat.console().put("purgatory: no PIT to calibrate the TSC: times read 0\n");
    }

    match verify::run(params, &mut plat) {
        Ok(h) => {
            plat.console()
                .put("purgatory: entering kernel at ")
                .hex(h.entry)
                .put(", boot_params ")
                .hex(h.dtb)
                .put("\n");
            // SAFETY: entry and boot_params were verified; x86 caches are
            // coherent, nothing to clean.
            unsafe { handoff::enter_kernel(h.entry, h.dtb, cr4_at_entry) }
        }
        Err(_) => {
            if params.on_failure == ON_FAILURE_RESET {
                plat.console().put("purgatory: resetting the system\n");
                handoff::reset();
            }
            plat.console().put("purgatory: halted\n");
            handoff::halt()
        }
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    UartConsole(uart_from(loaded_params())).put("purgatory: internal error (panic), not entering the kernel\n");
    handoff::halt()
}
