//! The aarch64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) with the MMU off, DAIF masked, relocations applied, a stack in
//! .bss and FP/SIMD enabled. What is aarch64-only: the identity map, MMU
//! and caches around the verification, and cleaning to PoC before the jump.

use kexec_purgatory::abi::{PurgatoryParams, PARAM_FLAG_DEBUG_CACHES_OFF};
use kexec_purgatory::console_lines::{SETUP_CACHES_OFF, SETUP_CACHES_ON};
use kexec_purgatory::report::Arg;
use kexec_purgatory::template;
use kexec_purgatory::verify::{console_span, MemSpan};
use purgatory_arch::aarch64::{cache, cpu, handoff, mmu};
use purgatory_arch::pagetable::{IdentityMap, MemType, Table};
use purgatory_arch::uart::Uart;

use crate::platform::Machine;

/// Translation tables: root + up to 16 segments with unaligned edges, the
/// image and the console. 64 tables cover the worst case with room.
const TABLES: usize = 64;
static mut PAGE_TABLES: [Table; TABLES] = [Table::ZERO; TABLES];

/// Build the identity map (segments and image as Normal memory, the
/// console page as Device) and turn MMU and caches on. Returns why not, if
/// not. Only ever called on a validated block: every range mapped and
/// maintained here is one `verify::validate` accepted.
fn enable_caches(
    params: &PurgatoryParams,
    regime: cpu::Regime,
    image: MemSpan,
    uart: Uart,
) -> Result<(), &'static str> {
    if params.flags & PARAM_FLAG_DEBUG_CACHES_OFF != 0 {
        return Err("debug flag");
    }
    if !cpu::has_4k_granule() {
        return Err("no 4 KiB granule");
    }
    // SAFETY: single CPU, MMU off, nothing else references the tables.
    let pool = unsafe { &mut *core::ptr::addr_of_mut!(PAGE_TABLES) };
    let mut map = IdentityMap::new(pool, mmu::device_xn_bits(regime)).map_err(|_| "page tables")?;
    map.map(image.start, image.len, MemType::Normal).map_err(|_| "cannot map image")?;
    for seg in params.active_segments() {
        map.map(seg.mem, seg.len, MemType::Normal).map_err(|_| "cannot map segment")?;
    }
    if let Some(base) = uart.mmio_base() {
        let page = console_span(base);
        map.map(page.start, page.len, MemType::Device).map_err(|_| "cannot map console")?;
    }
    // Tables and everything else were written with caches off: drop any
    // stale lines for the image and the segments before turning caches on
    // (booting.rst guarantees the segments were cleaned to PoC).
    cache::invalidate_to_poc(image.start, image.len);
    for seg in params.active_segments() {
        cache::invalidate_to_poc(seg.mem, seg.len);
    }
    // SAFETY: the map covers the image (code, data, stack, tables), every
    // segment and the console: all we touch until the hand-off.
    unsafe { mmu::enable(regime, map.root_addr()) };
    Ok(())
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64) -> ! {
    // 1. Validate the block; nothing happens before (nor without) that.
    let mut m = Machine::start(base);

    // 2. MMU and caches over what was validated.
    let regime = cpu::Regime::current();
    let caches = enable_caches(m.params(), regime, m.image(), m.uart());
    // One call: SETUP_CACHES_ON has no placeholder for the (empty) reason.
    let (setup, why) = match caches {
        Ok(()) => (template!(SETUP_CACHES_ON), ""),
        Err(why) => (template!(SETUP_CACHES_OFF), why),
    };
    m.hello(regime.name(), setup, &[Arg::Text(why)]);

    // 3. Verify and patch (never returns on failure).
    let h = m.verify();

    // 4. Leave no lines of segment memory in the caches: the kernel starts
    // with them off and later turns them on.
    if caches.is_ok() {
        for seg in m.params().active_segments() {
            cache::clean_invalidate_to_poc(seg.mem, seg.len);
        }
    }
    m.entering(&h);
    let image = m.image();
    // SAFETY: entry and dtb were verified; the segments (DTB patches
    // included) were cleaned above; enter_kernel cleans the image.
    unsafe { handoff::enter_kernel(h.entry, h.boot_data, image.start, image.len) }
}
