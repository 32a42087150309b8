//! The riscv64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) in S-mode with satp = 0 (Bare), interrupts off, relocations
//! applied, our trap vector installed and a stack in .bss. What is
//! riscv-only: the hart id arrives in a0 and must leave in a0; the boot
//! hart's extensions and timer come from the DTB (no CPUID), read before
//! the shared code starts; caches need no code (PMAs); a trap that is no
//! guarded probe is a failure like any other.

use kexec_purgatory::abi::PurgatoryParams;
use kexec_purgatory::hart_isa::{boot_hart_isa, timebase_frequency};
use kexec_purgatory::report::Console;
use kexec_purgatory::verify;
use purgatory_arch::riscv64::{handoff, machine};

use crate::machine::{fail_with, loaded_params, Machine};

/// The DTB bytes from `boot_data` to the end of its segment, once the block
/// passed validation (so the range is a loaded segment); None otherwise.
fn dtb_bytes(params: &PurgatoryParams) -> Option<&'static [u8]> {
    verify::validate(params).ok()?;
    let dtb = params.boot_data;
    let seg = params.active_segments().iter().find(|s| dtb >= s.mem && dtb - s.mem < s.len)?;
    let len = seg.mem + seg.len - dtb;
    // SAFETY: inside a validated segment: RAM, physically addressed (satp
    // = 0), nothing else references it yet.
    Some(unsafe { core::slice::from_raw_parts(dtb as *const u8, len as usize) })
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64, hart_id: u64, a1: u64) -> ! {
    // Read before verification only to choose the engine, the entropy
    // source and the timer: a DTB that lies about Zknh makes the first
    // sha256 instruction trap, which is reported and never enters the
    // kernel; the rest of the DTB is verified before it is used.
    let params = loaded_params();
    let dtb = dtb_bytes(params);
    let isa = dtb.map(|d| boot_hart_isa(d, hart_id)).unwrap_or_default();
    machine::init(hart_id, isa.zknh, isa.zkr, dtb.and_then(timebase_frequency).unwrap_or(0));
    let mut m = Machine::start(base);

    let con = m.hello("S-mode");
    con.put("hart ").hex(hart_id).put(", a1 ").hex(a1).put(", caches on (PMA, satp 0)\n");
    con.put("purgatory: boot hart isa from ").put(isa.source.name()).put(":");
    con.put(if isa.zknh { " zknh" } else { " no-zknh" }).put(if isa.zkr { " zkr" } else { " no-zkr" }).put("\n");
    if a1 != params.boot_data {
        // kexec_load hands over the first FDT-looking segment (riscv
        // machine_kexec_prepare); we hand over the verified one.
        con.put("purgatory: note: the kernel found the FDT at a1 ").hex(a1);
        con.put(", the loader named ").hex(params.boot_data).put("\n");
    }

    let h = m.verify();

    m.entering(&h, "dtb");
    // SAFETY: entry and the DTB were verified; nothing to clean (caches are
    // coherent; the hand-off fences stores against instruction fetch).
    unsafe { handoff::enter_kernel(h.entry, hart_id, h.boot_data) }
}

/// Every trap but a guarded probe ends here (arch entry.rs): a bug of
/// ours, or a DTB claiming an extension the hart lacks. Never the kernel.
#[unsafe(no_mangle)]
extern "C" fn rkx_unexpected_trap(scause: u64, sepc: u64, stval: u64) -> ! {
    fail_with(|con| {
        con.put("purgatory: unexpected trap scause ").hex(scause).put(" sepc ").hex(sepc).put(" stval ").hex(stval);
        con.put(", not entering the kernel\n");
    })
}
