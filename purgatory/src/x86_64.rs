//! The x86_64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) in 64-bit mode on the kexec identity map, interrupts off,
//! relocations applied, our GDT loaded and a stack in .bss. What is
//! x86-only: CR4 as relocate_kernel left it, restored at the hand-off
//! (choosing SHA-NI turns SSE on); caches are coherent, nothing to clean.

use kexec_purgatory::console_lines::SETUP_X86;
use kexec_purgatory::report::Arg;
use kexec_purgatory::template;
use purgatory_arch::x86_64::{cpu, handoff};

use crate::platform::Machine;

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64) -> ! {
    let (cr0_at_entry, cr4_at_entry) = (cpu::read_cr0(), cpu::read_cr4());

    // 1. Validate the block; nothing happens before (nor without) that.
    let mut m = Machine::start(base);
    m.hello("long mode", template!(SETUP_X86), &[Arg::Hex(cr0_at_entry), Arg::Hex(cr4_at_entry)]);

    // 2. Verify and patch (never returns on failure).
    let h = m.verify();

    m.entering(&h);
    // SAFETY: entry and boot_params were verified; CR4 goes back to its
    // value at entry.
    unsafe { handoff::enter_kernel(h.entry, h.boot_data, cr4_at_entry) }
}
