//! The riscv64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) in S-mode with satp = 0 (Bare), interrupts off, relocations
//! applied, our trap vector installed and a stack in .bss. What is
//! riscv-only: the hart id arrives in a0 and must leave in a0; the
//! extensions come from the DTB (no CPUID); caches need no code (PMAs);
//! the console may be the SBI one and reset is SBI SRST.

use kexec_purgatory::abi::{
    PurgatoryParams, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_SBI, ON_FAILURE_RESET,
    PARAM_FLAG_DEBUG_SOFT_SHA256,
};
use kexec_purgatory::hart_isa::{boot_hart_isa, timebase_frequency, HartIsa};
use kexec_purgatory::report::Console;
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::verify::{self, Platform};
use purgatory_arch::riscv64::sbi::{self, SbiConsole};
use purgatory_arch::riscv64::{cpu, handoff, sha256_zknh, uart::Uart};

use crate::params::loaded_params;

struct UartConsole(Uart);

impl Console for UartConsole {
    #[inline(never)]
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

struct Riscv64 {
    console: UartConsole,
    compress: CompressFn,
    engine: &'static str,
    hart_id: u64,
    isa: HartIsa,
    timebase_hz: Option<u64>,
}

impl Platform for Riscv64 {
    type Con = UartConsole;

    fn console(&mut self) -> &mut UartConsole {
        &mut self.console
    }

    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        // SAFETY: verify::validate() checked the range is non-empty, does
        // not wrap and does not start at 0; the loader placed a segment
        // there, so it is RAM, and satp = 0 makes it physically addressed.
        unsafe { core::slice::from_raw_parts_mut(mem as *mut u8, len as usize) }
    }

    fn digest_engine(&self) -> (CompressFn, &'static str) {
        (self.compress, self.engine)
    }

    fn entropy(&mut self) -> Option<u64> {
        cpu::seed_u64(self.isa.zkr)
    }

    fn boot_cpu_id(&self) -> u32 {
        // The DTB's cpu `reg` for a hart is its hart id (cpus.yaml); FDT
        // boot_cpuid_phys is 32 bits.
        self.hart_id as u32
    }

    fn now_us(&self) -> u64 {
        match (self.timebase_hz, cpu::time()) {
            (Some(hz), Some(t)) => cpu::ticks_to_us(t, hz),
            _ => 0,
        }
    }
}

fn uart_from(params: &PurgatoryParams) -> Uart {
    match params.console.kind {
        CONSOLE_8250_MMIO8 if params.console.base != 0 => Uart::Ns16550Mmio8(params.console.base),
        CONSOLE_8250_MMIO32 if params.console.base != 0 => Uart::Ns16550Mmio32(params.console.base),
        CONSOLE_SBI => Uart::Sbi(SbiConsole::detect()),
        _ => Uart::None,
    }
}

/// The DTB bytes from `dtb_addr` to the end of its segment, once the block
/// passed validation (so the range is a loaded segment); None otherwise.
fn dtb_bytes(params: &PurgatoryParams) -> Option<&'static [u8]> {
    verify::validate(params).ok()?;
    let seg = params.active_segments().iter().find(|s| params.dtb_addr >= s.mem && params.dtb_addr - s.mem < s.len)?;
    let len = seg.mem + seg.len - params.dtb_addr;
    // SAFETY: inside a validated segment (RAM, physically addressed).
    Some(unsafe { core::slice::from_raw_parts(params.dtb_addr as *const u8, len as usize) })
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64, hart_id: u64, a1: u64) -> ! {
    let params = loaded_params();
    let uart = uart_from(params);
    // Read before verification only to choose the engine and the timer:
    // a DTB that lies about Zknh makes the first sha256 instruction trap,
    // which is reported and never enters the kernel.
    let dtb = dtb_bytes(params);
    let isa = dtb.map(|d| boot_hart_isa(d, hart_id)).unwrap_or_default();
    let timebase_hz = dtb.and_then(timebase_frequency);
    let hw = isa.zknh && params.flags & PARAM_FLAG_DEBUG_SOFT_SHA256 == 0;
    let (compress, engine): (CompressFn, &'static str) =
        if hw { (sha256_zknh::compress, "zknh") } else { (compress_portable, "portable") };
    let mut plat = Riscv64 { console: UartConsole(uart), compress, engine, hart_id, isa, timebase_hz };

    let con = plat.console();
    con.put("purgatory: riscv64 S-mode, hart ").hex(hart_id).put(", image ").hex(base).put(", a1 ").hex(a1);
    con.put(", caches on (PMA, satp 0)\n");
    con.put("purgatory: boot hart isa from ").put(isa.source.name()).put(":");
    con.put(if isa.zknh { " zknh" } else { " no-zknh" }).put(if isa.zkr { " zkr" } else { " no-zkr" }).put("\n");
    if timebase_hz.is_none() {
        con.put("purgatory: no /cpus/timebase-frequency: times read 0\n");
    }
    if a1 != params.dtb_addr {
        // kexec_load hands over the first FDT-looking segment (riscv
        // machine_kexec_prepare); we hand over the verified one.
        con.put("purgatory: note: the kernel found the FDT at a1 ").hex(a1);
        con.put(", the loader named ").hex(params.dtb_addr).put("\n");
    }

    match verify::run(params, &mut plat) {
        Ok(h) => {
            plat.console().put("purgatory: entering kernel at ").hex(h.entry).put(", hart ").hex(hart_id);
            plat.console().put(", dtb ").hex(h.dtb).put("\n");
            // SAFETY: entry and dtb were verified; nothing to clean (caches
            // are coherent; the hand-off fences stores and fetches).
            unsafe { handoff::enter_kernel(h.entry, hart_id, h.dtb) }
        }
        Err(_) => fail(params, &mut plat.console),
    }
}

fn fail(params: &PurgatoryParams, con: &mut UartConsole) -> ! {
    if params.on_failure == ON_FAILURE_RESET {
        con.put("purgatory: resetting the system (SBI SRST)\n");
        sbi::system_reset();
        con.put("purgatory: the reset did not happen\n");
    }
    con.put("purgatory: halted\n");
    handoff::halt()
}

/// Every trap but a guarded probe ends here (arch entry.rs): a bug of
/// ours or a DTB claiming an extension the hart lacks. Never the kernel.
#[unsafe(no_mangle)]
extern "C" fn rkx_unexpected_trap(scause: u64, sepc: u64, stval: u64) -> ! {
    let params = loaded_params();
    let mut con = UartConsole(uart_from(params));
    con.put("purgatory: unexpected trap scause ").hex(scause).put(" sepc ").hex(sepc).put(" stval ").hex(stval);
    con.put(", not entering the kernel\n");
    fail(params, &mut con)
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    let params = loaded_params();
    UartConsole(uart_from(params)).put("purgatory: internal error (panic), not entering the kernel\n");
    handoff::halt()
}
