//! The aarch64 purgatory: `purgatory_main` is called by `_start` (arch
//! crate) with the MMU off, DAIF masked, relocations applied, a stack in
//! .bss and FP/SIMD enabled.

use kexec_purgatory::abi::{
    PurgatoryParams, CONSOLE_8250_MMIO32, CONSOLE_PL011, ON_FAILURE_RESET, PARAM_FLAG_DEBUG_CACHES_OFF,
    PARAM_FLAG_DEBUG_SOFT_SHA256, PSCI_CONDUIT_HVC, PSCI_CONDUIT_SMC,
};
use kexec_purgatory::report::Console;

use crate::params::loaded_params;
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::verify::{self, Platform};
use purgatory_arch::aarch64::{cache, cpu, entry, handoff, mmu, sha2_ce, uart::Uart};
use purgatory_arch::pagetable::{IdentityMap, MemType, Table};

/// Translation tables: root + up to 16 segments with unaligned edges, the
/// image and the console. 64 tables cover the worst case with room.
const TABLES: usize = 64;
static mut PAGE_TABLES: [Table; TABLES] = [Table::ZERO; TABLES];

struct UartConsole(Uart);

impl Console for UartConsole {
    #[inline(never)]
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

struct Aarch64 {
    console: UartConsole,
    compress: CompressFn,
    engine: &'static str,
}

impl Platform for Aarch64 {
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
        cpu::rndr()
    }

    fn boot_cpu_id(&self) -> u32 {
        cpu::mpidr_affinity()
    }

    fn now_us(&self) -> u64 {
        cpu::now_us()
    }
}

fn uart_from(params: &PurgatoryParams) -> Uart {
    match params.console.kind {
        CONSOLE_PL011 if params.console.base != 0 => Uart::Pl011(params.console.base),
        CONSOLE_8250_MMIO32 if params.console.base != 0 => Uart::Ns16550Mmio32(params.console.base),
        _ => Uart::None,
    }
}

/// Build the identity map (segments and image as Normal memory, the
/// console as Device) and turn MMU and caches on. Returns why not, if not.
fn enable_caches(
    params: &PurgatoryParams,
    regime: cpu::Regime,
    image: (u64, u64),
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
    map.map(image.0, image.1, MemType::Normal).map_err(|_| "cannot map image")?;
    for seg in params.active_segments() {
        map.map(seg.mem, seg.len, MemType::Normal).map_err(|_| "cannot map segment")?;
    }
    if let Some(base) = uart.mmio_base() {
        map.map(base, 0x1000, MemType::Device).map_err(|_| "cannot map console")?;
    }
    // Tables and everything else were written with caches off: drop any
    // stale lines for the image and the segments before turning caches on
    // (booting.rst guarantees the segments were cleaned to PoC).
    cache::invalidate_to_poc(image.0, image.1);
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
    let params = loaded_params();
    // SAFETY: `base` is the runtime base computed by _start.
    let image = (base, unsafe { entry::image_mem_size(base) });
    let regime = cpu::Regime::current();
    let uart = uart_from(params);

    let hw = cpu::has_sha256_instructions() && params.flags & PARAM_FLAG_DEBUG_SOFT_SHA256 == 0;
    let (compress, engine): (CompressFn, &'static str) =
        if hw { (sha2_ce::compress, "armv8-sha2") } else { (compress_portable, "portable") };
    let mut plat = Aarch64 { console: UartConsole(uart), compress, engine };

    let caches = enable_caches(params, regime, image, uart);
    let con = plat.console();
    con.put("purgatory: aarch64 ").put(regime.name()).put(", image ").hex(base);
    match caches {
        Ok(()) => con.put(", mmu+caches on\n"),
        Err(why) => con.put(", mmu+caches off (").put(why).put(")\n"),
    };

    match verify::run(params, &mut plat) {
        Ok(h) => {
            // Leave no lines of segment memory in the caches: the kernel
            // starts with them off and later turns them on.
            if caches.is_ok() {
                for seg in params.active_segments() {
                    cache::clean_invalidate_to_poc(seg.mem, seg.len);
                }
            }
            plat.console().put("purgatory: entering kernel at ").hex(h.entry).put(", dtb ").hex(h.dtb).put("\n");
            // SAFETY: entry and dtb were verified; the segments (DTB patches
            // included) were cleaned above; enter_kernel cleans the image.
            unsafe { handoff::enter_kernel(h.entry, h.dtb, image.0, image.1) }
        }
        Err(_) => fail(params, &mut plat),
    }
}

fn fail(params: &PurgatoryParams, plat: &mut Aarch64) -> ! {
    if params.on_failure == ON_FAILURE_RESET {
        let conduit = match params.psci_conduit {
            PSCI_CONDUIT_SMC => Some(true),
            PSCI_CONDUIT_HVC => Some(false),
            _ => None,
        };
        if conduit.is_some() {
            plat.console().put("purgatory: resetting the system (PSCI SYSTEM_RESET)\n");
            handoff::psci_system_reset(conduit);
        }
    }
    plat.console().put("purgatory: halted\n");
    handoff::halt()
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // A bug of ours, never a verification result: say so and stop.
    let params = loaded_params();
    UartConsole(uart_from(params)).put("purgatory: internal error (panic), not entering the kernel\n");
    handoff::halt()
}
