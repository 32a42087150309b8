//! The riscv64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) in S-mode with satp = 0 (Bare), interrupts off, relocations
//! applied, our trap vector installed and a stack in .bss. What is
//! riscv-only: the hart id arrives in a0 and must leave in a0; the boot
//! hart's extensions and timer come from the DTB (no CPUID), read once the
//! block is validated and before the shared code picks an engine; caches
//! need no code (PMAs); a trap that is no guarded probe is a failure like
//! any other.

use kexec_purgatory::abi::PurgatoryParams;
use kexec_purgatory::console_lines::{RISCV_A1_NOTE, RISCV_ISA, SETUP_RISCV, UNEXPECTED_TRAP};
use kexec_purgatory::hart_isa::boot_hart;
use kexec_purgatory::report::{Arg, Console};
use kexec_purgatory::template;
use kexec_purgatory::verify::{self, Platform, Rules};
use purgatory_arch::riscv64::{handoff, machine};

use crate::platform::{fail_with, Machine, Validated};

/// The DTB bytes from `boot_data` to the end of its segment, in a validated
/// block (so the range is a loaded segment of kind Dtb); None without one.
fn dtb_bytes(params: &PurgatoryParams, rules: &Rules) -> Option<&'static [u8]> {
    let seg = params.active_segments().get(verify::boot_data_segment(params, rules).ok()??)?;
    let len = seg.len.checked_sub(params.boot_data.checked_sub(seg.mem)?)?;
    // SAFETY: inside a validated segment: RAM, physically addressed (satp
    // = 0), outside the purgatory image, nothing else references it yet.
    Some(unsafe { core::slice::from_raw_parts(params.boot_data as *const u8, len as usize) })
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64, hart_id: u64, a1: u64) -> ! {
    // 1. Validate the block; nothing happens before (nor without) that.
    let v = Validated::check(base);

    // 2. The boot hart from the (validated, not yet verified) DTB, only to
    // choose the engine, the entropy source and the timer: a DTB that lies
    // about Zknh makes the first sha256 instruction trap, which is reported
    // and never enters the kernel; the rest of the DTB is verified before
    // it is used.
    let dtb = dtb_bytes(v.params(), &v.rules());
    let (isa, timebase) = dtb.map(|d| boot_hart(d, hart_id)).unwrap_or_default();
    machine::init(hart_id, isa.zknh, isa.zkr, timebase.unwrap_or(0));
    let mut m = Machine::new(v);
    let boot_data = m.params().boot_data;

    m.hello("S-mode", template!(SETUP_RISCV), &[Arg::Hex(hart_id), Arg::Hex(a1)]);
    let zknh = if isa.zknh { "zknh" } else { "no-zknh" };
    let zkr = if isa.zkr { "zkr" } else { "no-zkr" };
    m.console().line(template!(RISCV_ISA), &[Arg::Text(isa.source.name()), Arg::Text(zknh), Arg::Text(zkr)]);
    if a1 != boot_data {
        // kexec_load hands over the first FDT-looking segment (riscv
        // machine_kexec_prepare); we hand over the verified one.
        m.console().line(template!(RISCV_A1_NOTE), &[Arg::Hex(a1), Arg::Hex(boot_data)]);
    }

    // 3. Verify and patch (never returns on failure).
    let h = m.verify();

    m.entering(&h);
    // SAFETY: entry and the DTB were verified; nothing to clean (caches are
    // coherent; the hand-off fences stores against instruction fetch).
    unsafe { handoff::enter_kernel(h.entry, hart_id, h.boot_data) }
}

/// Every trap but a guarded probe ends here (arch entry.rs): a bug of
/// ours, or a DTB claiming an extension the hart lacks. Never the kernel.
#[unsafe(no_mangle)]
extern "C" fn rkx_unexpected_trap(scause: u64, sepc: u64, stval: u64) -> ! {
    fail_with(|con| {
        con.line(template!(UNEXPECTED_TRAP), &[Arg::Hex(scause), Arg::Hex(sepc), Arg::Hex(stval)]);
    })
}
