//! The ppc64le purgatory: `purgatory_main` is called by the entry block's
//! master code (arch crate) in real mode, little-endian, MSR EE off,
//! relocations applied, our own stack and TOC, FP/VEC/VSX on. What is
//! ppc64le-only: the CPU id arrives in r3 and becomes boot_cpuid_phys; the
//! boot CPU's ISA level and time base and RTAS come from its PVR and the
//! DTB, read once the block is validated and before the shared code picks
//! an engine; the other CPUs spin in the kernel's own `__secondary_hold`,
//! which kexec copied to physical 0x60 from our entry block (we never
//! write 0..0xff; a kdump backup segment gets a copy of [0, len) in the
//! shared flow, after verification and before the DTB patch); after
//! verification the entry block must match the kernel's first 256 bytes,
//! and its run_at_load word is copied into the kernel (kexec-tools'
//! v2wrap.S); caches need no code (real mode).

use kexec_purgatory::abi::{
    PARAM_FLAG_SKIP_DIGESTS, PPC64LE_ENTRY_BLOCK_SIZE, PPC64LE_ENTRY_FILL_START, PPC64LE_RUN_AT_LOAD_OFFSET,
};
use kexec_purgatory::console_lines::{ENTRY_BLOCK_MISMATCH, NOT_ENTERING, RUN_AT_LOAD, SETUP_PPC64LE};
use kexec_purgatory::ppc_dt::{self, PpcDt};
use kexec_purgatory::report::{Arg, Console};
use kexec_purgatory::sha256::{compress_portable, digest};
use kexec_purgatory::template;
use kexec_purgatory::verify::{boot_data_segment, MemSpan, Platform};
use purgatory_arch::ppc64le::machine::{self, BootCpu};
use purgatory_arch::ppc64le::rtas::{below_4g, Rtas};
use purgatory_arch::ppc64le::{cpu, entry, handoff};

use crate::platform::{fail_with, Machine, Validated};

/// RTAS as the DTB describes it, if the purgatory may call it: the entry
/// inside `[base, base + size)`, all of it below 4 GiB (RTAS runs 32-bit)
/// and outside every segment and this image (firmware memory, never
/// something the loader placed), and this image below 4 GiB too (RTAS
/// returns into it and reads its argument block there).
fn usable_rtas(dt: &PpcDt, v: &Validated) -> Option<(Rtas, u32)> {
    let node = dt.rtas?;
    let region = MemSpan::new(node.base, node.size);
    let image = v.image();
    let ok = region.contains(node.entry)
        && below_4g(node.base, node.size)
        && below_4g(image.start, image.len)
        && !region.overlaps(image)
        && !v.params().active_segments().iter().any(|s| region.overlaps(MemSpan::from(s)));
    ok.then_some((Rtas { base: node.base, entry: node.entry }, node.system_reboot))
}

/// The DTB, if it may be believed before the shared flow verifies it: its
/// segment's digest matches (hashed here with the portable engine, since
/// the engine choice depends on the DTB; DTBs are a page or a few), or the
/// loader excluded it or asked for no hashing (`-i`); the walker checks
/// its structure either way. A DTB that fails its digest is read for
/// nothing: no RTAS is called from a corrupted one.
fn trusted_dtb(v: &Validated) -> Option<&'static [u8]> {
    let params = v.params();
    let seg = params.active_segments().get(boot_data_segment(params, &v.rules()).ok()??)?;
    let bytes = v.boot_data_bytes()?;
    if seg.is_excluded() || params.flags & PARAM_FLAG_SKIP_DIGESTS != 0 {
        return Some(bytes);
    }
    // SAFETY: a validated segment: RAM, physically addressed (real mode),
    // outside the purgatory image; only read here.
    let whole = unsafe { core::slice::from_raw_parts(seg.mem as *const u8, seg.len as usize) };
    (digest(whole, compress_portable) == seg.sha256).then_some(bytes)
}

#[unsafe(no_mangle)]
extern "C" fn purgatory_main(base: u64, cpu_id: u64, msr_at_entry: u64) -> ! {
    // 1. Validate the block; nothing happens before (nor without) that.
    let v = Validated::check(base);

    // 2. The boot CPU from its PVR and the DTB (once its digest matched),
    // to choose the engine, the entropy source, the clock and the reset;
    // the level never exceeds what the PVR says the processor is.
    let id = cpu_id as u32;
    let dt = trusted_dtb(&v).map(|d| ppc_dt::read(d, id)).unwrap_or_default();
    let pvr = cpu::pvr();
    let level = ppc_dt::isa_level(pvr, dt.cpu_version);
    let boot = BootCpu { id, vcrypto: level.vcrypto(), darn: level.darn(), timebase_hz: dt.timebase_hz.unwrap_or(0) };
    machine::init(boot, usable_rtas(&dt, &v));
    let mut m = Machine::new(v);

    let vcrypto = if boot.vcrypto { "vcrypto" } else { "no-vcrypto" };
    let darn = if boot.darn { "darn" } else { "no-darn" };
    let version = Arg::Hex(dt.cpu_version.unwrap_or(0) as u64);
    let setup =
        [Arg::Hex(cpu_id), Arg::Hex(pvr as u64), version, Arg::Text(level.name()), Arg::Text(vcrypto), Arg::Text(darn)];
    m.hello("real mode", template!(SETUP_PPC64LE), &setup);

    // 3. Verify and patch (never returns on failure).
    let h = m.verify();

    // 4. The entry block kexec copied to physical 0 must be the kernel's
    // first 256 bytes (word 0 ours, 0x5c the loader's run_at_load): the
    // other CPUs run its 0x60 code. Then run_at_load into the kernel.
    // SAFETY: `base` is the runtime base; the header gives the block's
    // offset inside our image.
    let block = (base + unsafe { entry::image_entry_offset(base) }) as *const u8;
    // validate() put [kernel_entry, + 256) inside the (now verified)
    // kernel segment (Rules::ppc64le: kernel_head).
    let kernel = h.entry as *mut u8;
    let run_at_load = PPC64LE_RUN_AT_LOAD_OFFSET as usize;
    for i in PPC64LE_ENTRY_FILL_START as usize..PPC64LE_ENTRY_BLOCK_SIZE as usize {
        // SAFETY: both are 256 readable bytes: our image's entry block and
        // the kernel's first 256 bytes (above).
        let (b, k) = unsafe { (block.add(i).read_volatile(), kernel.add(i).read_volatile()) };
        if b != k && !(run_at_load..run_at_load + 4).contains(&i) {
            fail_with(|con| {
                con.line(template!(ENTRY_BLOCK_MISMATCH), &[Arg::Hex(block as u64), Arg::Hex(i as u64)]);
                con.line(template!(NOT_ENTERING), &[]);
            });
        }
    }
    // head_64.S __run_at_load, as v2wrap.S copies it: "run0" (the kernel
    // copies itself to 0) unless the loader set 1 (kdump: run in place).
    // SAFETY: 4 aligned bytes of our entry block, and 4 inside the first
    // 256 of the verified kernel segment (the kernel is page aligned).
    let word = unsafe {
        let w = block.add(run_at_load).cast::<u32>().read_volatile();
        kernel.add(run_at_load).cast::<u32>().write_volatile(w);
        w
    };
    let at = h.entry + PPC64LE_RUN_AT_LOAD_OFFSET;
    m.console().line(template!(RUN_AT_LOAD), &[Arg::Hex(word as u64), Arg::Hex(at)]);

    m.entering(&h);
    // SAFETY: entry and the DTB were verified; real mode needs no cache
    // maintenance for data, and we changed no code.
    unsafe { handoff::enter_kernel(h.entry, h.boot_data, msr_at_entry) }
}
