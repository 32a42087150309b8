//! The loader refuses before the system call whatever the kernel or the
//! purgatory would refuse after it: once kexec_load has succeeded and the
//! machine reboots, a refusal leaves no kernel at all. So the finished plan
//! is checked here against
//! - the purgatory's own rules, by the purgatory crate's `validate()` run
//!   on the very parameter block written into the purgatory segment, and
//!   its whole flow rehearsed on copies of what it reads or writes
//!   (excluded-segment structure checks, the boot-data patch) with only the
//!   hashing left out (the digests come from the same SHA-256),
//! - kexec_load's rules (kernel/kexec_core.c sanity_check_segment_list),
//! - the machine's memory map, independently of the placement that made it:
//!   every segment in System RAM (the crash ranges for -p), outside every
//!   other /proc/iomem range, none at address 0,
//! - the hand-off: the entry is the purgatory's, its segment holds its
//!   whole footprint (entries, boot data and the footprint's overlaps are
//!   the purgatory's own rules, checked by its code above), and on riscv64
//!   no segment before the DTB that the kernel would take for it.

use kexec_purgatory::abi::{SegmentKind, MAX_SEGMENTS};

use crate::dtb::header_check;
use crate::plan::{LoadKind, Plan, PlanError};
use crate::purgatory_image::PurgatoryImage;
use crate::range::{Range, PAGE};
use crate::system::iomem::Iomem;

fn refuse(rule: impl Into<String>) -> PlanError {
    PlanError::Refused { rule: rule.into() }
}

/// Check `plan` (see the module comment); `Err` names the rule broken.
pub fn check(plan: &Plan, purgatory: &PurgatoryImage, iomem: &Iomem) -> Result<(), PlanError> {
    segments(plan, iomem)?;
    handoff(plan, purgatory)?;
    // The purgatory's checks, on the block exactly as it will be loaded.
    let purg = plan.purgatory().ok_or_else(|| refuse("the purgatory is not the last segment"))?;
    let off = purgatory.header.params_offset as usize;
    let written = purg.data.get(off..off + std::mem::size_of::<kexec_purgatory::abi::PurgatoryParams>());
    if written != Some(&plan.params.to_bytes()[..]) {
        return Err(PlanError::Internal("the purgatory segment does not carry the plan's parameter block".into()));
    }
    let own_image = kexec_purgatory::verify::MemSpan::new(purg.mem, purgatory.header.mem_size);
    let rules = kexec_purgatory::verify::Rules::for_arch(purgatory.header.arch, own_image)
        .ok_or_else(|| PlanError::Internal(format!("purgatory image arch {}", purgatory.header.arch)))?;
    kexec_purgatory::verify::validate(&plan.params, &rules)
        .map_err(|e| refuse(format!("the purgatory would refuse this parameter block: {e}")))?;
    console_is_a_device(plan, iomem)?;
    rehearse(plan, &rules)?;
    for (i, (d, s)) in plan.params.active_segments().iter().zip(&plan.segments).enumerate() {
        if d.mem != s.mem || d.len != s.digest_len || d.sha256 != s.sha256 {
            return Err(PlanError::Internal(format!("parameter block entry {i} does not describe segment {i}")));
        }
    }
    Ok(())
}

/// kexec_load's segment rules and the memory map.
fn segments(plan: &Plan, iomem: &Iomem) -> Result<(), PlanError> {
    let segs = &plan.segments;
    // include/uapi/linux/kexec.h KEXEC_SEGMENT_MAX; the purgatory describes
    // all but itself in MAX_SEGMENTS descriptors.
    if segs.len() > 16 || segs.len() > MAX_SEGMENTS + 1 {
        return Err(refuse(format!("{} segments; kexec_load takes at most 16", segs.len())));
    }
    let allowed = match plan.kind {
        LoadKind::Kexec => iomem.usable_ram(),
        LoadKind::Crash => iomem.crash_usable(),
    };
    let ram_pages = iomem.system_ram().iter().map(|r| r.len() / PAGE).sum::<u64>();
    let page = plan.page_size.max(PAGE);
    let mut total_pages = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let name = s.kind_name();
        let r = Range::checked(s.mem, s.memsz)
            .ok_or_else(|| refuse(format!("segment {i} ({name}) wraps the address space")))?;
        // sanity_check_segment_list: mem and memsz aligned to the running
        // kernel's PAGE_SIZE, bufsz <= memsz.
        if !s.mem.is_multiple_of(page) || !s.memsz.is_multiple_of(page) {
            return Err(refuse(format!(
                "segment {i} ({name}) {r} is not aligned to the kernel's {page:#x}-byte pages"
            )));
        }
        if s.data.len() as u64 > s.digest_len || s.digest_len > s.memsz {
            return Err(PlanError::Internal(format!("segment {i} ({name}) has more bytes than it hashes or holds")));
        }
        if s.mem == 0 {
            return Err(refuse(format!("segment {i} ({name}) starts at physical address 0")));
        }
        if !allowed.covers(&r) {
            let what = match plan.kind {
                LoadKind::Kexec => "usable System RAM (outside reserved, MMIO and crash ranges in /proc/iomem)",
                LoadKind::Crash => "the Crash kernel range",
            };
            return Err(refuse(format!("segment {i} ({name}) {r} is not inside {what}")));
        }
        for (j, t) in segs.iter().enumerate().take(i) {
            if r.overlaps(&t.range()) {
                return Err(refuse(format!("segment {i} ({name}) {r} overlaps segment {j} ({})", t.kind_name())));
            }
        }
        total_pages = total_pages.saturating_add(s.memsz / PAGE);
    }
    // sanity_check_segment_list: "Verify that no more than half of memory
    // will be consumed" (totalram_pages() / 2).
    if plan.kind == LoadKind::Kexec && total_pages > ram_pages / 2 {
        return Err(refuse(format!(
            "the segments take {} MiB, more than half of System RAM ({} MiB): kexec_load refuses that",
            (total_pages * PAGE) >> 20,
            (ram_pages * PAGE) >> 20
        )));
    }
    // With crash hotplug the kernel takes the last ELF-looking segment for
    // the elfcorehdr (kernel/crash_core.c): no other may look like one.
    if plan.hotplug {
        if let Some(s) = segs.iter().find(|s| s.kind != Some(SegmentKind::ElfCoreHdr) && s.data.starts_with(b"\x7fELF"))
        {
            return Err(refuse(format!(
                "--hotplug: the {} starts with an ELF magic; the kernel would mistake it for the elfcorehdr",
                s.kind_name()
            )));
        }
        // An architecture whose kernel rewrites the DTB on a CPU hot-add
        // finds it as the first segment that starts with the FDT magic
        // (the architecture's crash.c get_fdt_index): that must be the DTB
        // the capture kernel boots with.
        if plan.arch.crash.hotplug_rewrites_dtb {
            let magic = kexec_purgatory::fdt::MAGIC.to_be_bytes();
            if let Some(s) = segs.iter().find(|s| s.data.starts_with(&magic)) {
                if s.kind != Some(SegmentKind::Dtb) {
                    return Err(refuse(format!(
                        "crash hotplug: the {} starts with the FDT magic; the kernel's crash-hotplug update would rewrite it instead of the DTB (get_fdt_index)",
                        s.kind_name()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// An MMIO console's registers are a device's, not RAM: the purgatory
/// writes them after verification, so a base in System RAM (which the
/// purgatory cannot tell from a UART) would change memory the next kernel
/// gets. The purgatory already refuses a base inside a segment or its own
/// image; only the loader sees /proc/iomem.
fn console_is_a_device(plan: &Plan, iomem: &Iomem) -> Result<(), PlanError> {
    use kexec_purgatory::abi::{CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_PL011};
    let c = plan.params.console;
    if !matches!(c.kind, CONSOLE_PL011 | CONSOLE_8250_MMIO32 | CONSOLE_8250_MMIO8) {
        return Ok(());
    }
    // RAM a kernel may use: usable System RAM and the crash reservation.
    // A device listed across System RAM (a hostile or odd /proc/iomem) is
    // not usable RAM and stays allowed.
    let usable = iomem.usable_ram();
    let ram = usable.ranges().iter().copied().chain(iomem.crash_kernel());
    match ram.into_iter().find(|r| r.contains(c.base)) {
        Some(r) => Err(refuse(format!(
            "the console base {:#x} is in usable System RAM {r} (/proc/iomem), not a device: the purgatory would write memory the next kernel gets",
            c.base
        ))),
        None => Ok(()),
    }
}

/// The entry and the purgatory's segment.
fn handoff(plan: &Plan, purgatory: &PurgatoryImage) -> Result<(), PlanError> {
    let purg = plan.purgatory().ok_or_else(|| refuse("the purgatory is not the last segment"))?;
    if !purg.range().contains(plan.entry) || plan.entry != purg.mem + purgatory.header.entry_offset {
        return Err(refuse(format!("the entry {:#x} is not the purgatory's entry point", plan.entry)));
    }
    if purg.memsz < purgatory.header.mem_size {
        return Err(refuse("the purgatory segment is smaller than the image's mem_size"));
    }
    if plan.arch.kernel_takes_first_fdt {
        first_fdt_is_the_dtb(plan)?;
    }
    Ok(())
}

/// riscv's machine_kexec_prepare() walks the segments in order and takes
/// the first whose memsz exceeds `sizeof(struct fdt_header)` and whose
/// first 40 bytes pass fdt_check_header() as the FDT it enters the next
/// image with (a1); with none it refuses the load ("Device tree not
/// included in the provided image"). That segment must be the DTB the
/// purgatory is told to hand over.
fn first_fdt_is_the_dtb(plan: &Plan) -> Result<(), PlanError> {
    let first = plan
        .segments
        .iter()
        .enumerate()
        .find(|(_, s)| s.memsz > kexec_purgatory::fdt::HEADER_LEN as u64 && header_check::passes(&s.data));
    match first {
        None => Err(refuse(format!(
            "no segment passes fdt_check_header(): {}'s machine_kexec_prepare() would refuse the load (\"Device tree not included in the provided image\")",
            plan.arch
        ))),
        Some((_, s)) if s.kind == Some(SegmentKind::Dtb) && s.mem == plan.boot_data.addr => Ok(()),
        Some((i, s)) => Err(refuse(format!(
            "segment {i} ({}) at {:#x} starts like an FDT and comes before the DTB {:#x}: {}'s machine_kexec_prepare() takes the first such segment as the device tree",
            s.kind_name(),
            s.mem,
            plan.boot_data.addr,
            plan.arch
        ))),
    }
}

/// What the purgatory reads or writes, as it will find it: segment copies
/// zero-padded to their digest length, made on first use.
struct Rehearsal<'a> {
    plan: &'a Plan,
    copies: Vec<Option<Vec<u8>>>,
    console: Silent,
}

/// The purgatory's console during the rehearsal: its lines are not
/// needed (a refusal comes back as the typed `Failure`).
struct Silent;

impl kexec_purgatory::report::Console for Silent {
    fn write_bytes(&mut self, _: &[u8]) {}
}

impl kexec_purgatory::verify::Platform for Rehearsal<'_> {
    type Con = Silent;

    fn console(&mut self) -> &mut Silent {
        &mut self.console
    }

    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        // validate() proved [mem, mem + len) lies inside one described
        // segment; anything else gets an empty slice, which every check
        // the purgatory makes refuses.
        let plan = self.plan;
        let Some(i) = plan.segments.iter().position(|s| s.kind.is_some() && s.range().contains(mem)) else {
            return &mut [];
        };
        let seg = &plan.segments[i];
        let (Ok(off), Ok(len)) = (usize::try_from(mem - seg.mem), usize::try_from(len)) else {
            return &mut [];
        };
        let copy = self.copies[i].get_or_insert_with(|| {
            let mut v = seg.data.to_vec();
            v.resize(seg.digest_len as usize, 0);
            v
        });
        match off.checked_add(len) {
            Some(end) if end <= copy.len() => &mut copy[off..end],
            _ => &mut [],
        }
    }

    fn digest_engine(&self) -> (kexec_purgatory::sha256::CompressFn, &'static str) {
        (kexec_purgatory::sha256::compress_portable, "none (rehearsal)")
    }

    fn entropy(&mut self) -> Option<u64> {
        None
    }

    fn boot_cpu_id(&self) -> u32 {
        0
    }

    fn now_us(&self) -> u64 {
        0
    }
}

/// Run the purgatory's flow on the host with hashing off: a refusal there
/// (a malformed excluded segment, boot data the patcher cannot walk) is a
/// refusal here, in the purgatory's own words.
fn rehearse(plan: &Plan, rules: &kexec_purgatory::verify::Rules) -> Result<(), PlanError> {
    let mut params = plan.params;
    params.flags |= kexec_purgatory::abi::PARAM_FLAG_SKIP_DIGESTS;
    let mut r = Rehearsal { plan, copies: vec![None; plan.segments.len()], console: Silent };
    kexec_purgatory::verify::run(&params, rules, &mut r).map(|_| ()).map_err(PlanError::PurgatoryRefuses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Blob;
    use crate::request::Request;
    use crate::testing::{arm64_image, arm64_tree, ARM64_FLAGS_ANYWHERE, VIRT_1G};
    use kexec_purgatory::verify::Failure;

    /// A valid arm64 plan, its purgatory and the iomem it was made from.
    fn fixture() -> (Plan, PurgatoryImage<'static>, Iomem) {
        let t = arm64_tree("preflight", VIRT_1G);
        let req = Request::new(t.write("Image", arm64_image(0, 4 << 20, ARM64_FLAGS_ANYWHERE, 4096)));
        let p = crate::planner::plan(&req, &t.sys()).unwrap();
        (p, PurgatoryImage::aarch64().unwrap(), Iomem::parse(VIRT_1G).unwrap())
    }

    fn refused(edit: impl FnOnce(&mut Plan)) -> String {
        let (mut p, purg, iomem) = fixture();
        edit(&mut p);
        check(&p, &purg, &iomem).unwrap_err().to_string()
    }

    #[test]
    fn a_planned_load_passes() {
        let (p, purg, iomem) = fixture();
        check(&p, &purg, &iomem).unwrap();
    }

    #[test]
    fn each_kernel_and_memory_rule_refuses_before_the_syscall() {
        let e = refused(|p| p.segments[1].mem = 0);
        assert!(e.contains("segment 1 (dtb) starts at physical address 0"), "{e}");
        let e = refused(|p| p.segments[1].mem = 0x4176_0000);
        assert!(e.contains("is not inside usable System RAM"), "on the reserved range: {e}");
        let e = refused(|p| p.segments[1].mem = 0x9000_0000);
        assert!(e.contains("is not inside usable System RAM"), "outside RAM: {e}");
        let e = refused(|p| p.segments[1].mem += 0x10);
        assert!(e.contains("is not aligned to the kernel's 0x1000-byte pages"), "{e}");
        let e = refused(|p| p.segments[1].mem = p.segments[0].mem);
        assert!(e.contains("overlaps segment 0"), "{e}");
        let e = refused(|p| {
            let s = p.segments[1].clone();
            for _ in 0..14 {
                p.segments.insert(1, s.clone());
            }
        });
        assert!(e.contains("kexec_load takes at most 16"), "{e}");
        let e = refused(|p| p.segments[0].memsz = 900 << 20);
        assert!(e.contains("more than half of System RAM") || e.contains("not inside"), "{e}");
    }

    /// Edit the parameter block and write it into the purgatory segment,
    /// as a loader bug would; the plan's own fields stay as planned.
    fn refused_params(edit: impl FnOnce(&mut kexec_purgatory::abi::PurgatoryParams, &Plan)) -> String {
        let (mut p, purg, iomem) = fixture();
        let mut params = p.params;
        edit(&mut params, &p);
        p.params = params;
        let last = p.segments.len() - 1;
        p.segments[last].data = Blob::new(purg.with_params(&params));
        check(&p, &purg, &iomem).unwrap_err().to_string()
    }

    #[test]
    fn each_purgatory_rule_refuses_before_the_syscall() {
        use kexec_purgatory::abi::{CONSOLE_PL011, PARAMS_MAGIC};
        // (edit, the purgatory's own words for it)
        type Edit = fn(&mut kexec_purgatory::abi::PurgatoryParams, &Plan);
        let cases: [(Edit, &str); 14] = [
            (|q, _| q.magic = PARAMS_MAGIC ^ 1, "magic is not RKXP"),
            (|q, _| q.version = 9, "unsupported version 9"),
            (|q, _| q.size = 64, "size 64 is smaller than the version 1 block"),
            (|q, _| q.flags |= 1 << 30, "unknown flags 0x40000000"),
            (|q, _| q.nr_segments = 17, "too many segments: 17"),
            (|q, _| q.on_failure = 7, "unknown on_failure 7"),
            (|q, _| q.psci_conduit = 9, "unknown psci_conduit 9"),
            (|q, _| q.segments[1].kind = 99, "segment 1: unknown kind 99"),
            (|q, _| q.kernel_entry = q.segments[1].mem, "is not inside a kernel segment"),
            (|q, p| q.boot_data = p.segments[0].mem, "is not inside a dtb segment"),
            (|q, p| q.segments[1].mem = p.segments[2].mem, "overlaps the purgatory image"),
            (|q, _| q.console.kind = 42, "console kind 42 is not supported here"),
            (
                |q, p| {
                    q.console.kind = CONSOLE_PL011;
                    q.console.base = p.segments[0].mem + 0x1000;
                },
                "console page 0x",
            ),
            (|q, _| q.console.base = 0, "console base is 0"),
        ];
        for (edit, words) in cases {
            let e = refused_params(edit);
            assert!(e.starts_with("refused before loading: the purgatory would refuse"), "{e}");
            assert!(e.contains(words), "expected {words:?} in: {e}");
        }
    }

    #[test]
    fn an_mmio_console_in_system_ram_is_refused() {
        use kexec_purgatory::abi::CONSOLE_PL011;
        let (p, _, iomem) = fixture();
        // A RAM page no segment holds (the purgatory refuses the others).
        let ram = iomem.system_ram()[0];
        let free =
            (ram.start..ram.end).step_by(1 << 20).find(|a| !p.segments.iter().any(|s| s.range().contains(*a))).unwrap();
        let e = refused_params(|q, _| {
            q.console.kind = CONSOLE_PL011;
            q.console.base = free;
        });
        assert!(e.contains(&format!("the console base {free:#x} is in usable System RAM")), "{e}");
        // The QEMU virt UART (MMIO, outside RAM) passes.
        let (mut p, purg, iomem) = fixture();
        p.params.console.kind = CONSOLE_PL011;
        p.params.console.base = 0x900_0000;
        let last = p.segments.len() - 1;
        p.segments[last].data = Blob::new(purg.with_params(&p.params));
        check(&p, &purg, &iomem).unwrap();
    }

    #[test]
    fn the_rehearsal_catches_what_only_the_purgatory_flow_would() {
        // A DTB the purgatory's walker refuses (a property value running past
        // its block), though its header is fine: refused now, in the
        // purgatory's words, not after the reboot.
        let (mut p, purg, iomem) = fixture();
        let mut dtb = p.segments[1].data.to_vec();
        let size_struct = u32::from_be_bytes(dtb[36..40].try_into().unwrap());
        dtb[36..40].copy_from_slice(&(size_struct - 8).to_be_bytes());
        p.segments[1].data = Blob::new(dtb);
        let e = check(&p, &purg, &iomem).unwrap_err().to_string();
        assert!(e.contains("the purgatory would refuse this load: cannot patch the dtb: "), "{e}");
        assert!(
            matches!(
                check(&p, &purg, &iomem),
                Err(PlanError::PurgatoryRefuses(Failure::Patch { kind: SegmentKind::Dtb, .. }))
            ),
            "the purgatory's typed failure"
        );
    }

    #[test]
    fn the_loaders_own_handoff_rules() {
        let e = refused(|p| p.entry += 4);
        assert!(e.contains("is not the purgatory's entry point"), "{e}");
        let e = refused(|p| {
            let s = p.segments.last_mut().unwrap();
            s.memsz = (s.data.len() as u64).next_multiple_of(4096);
            s.digest_len = s.memsz;
        });
        assert!(e.contains("smaller than the image's mem_size"), "{e}");
        let e = refused(|p| {
            p.hotplug = true;
            let mut d = p.segments[1].data.to_vec();
            d[..4].copy_from_slice(b"\x7fELF");
            p.segments[1].data = Blob::new(d);
        });
        assert!(e.contains("starts with an ELF magic"), "{e}");
        // A segment whose digest the block does not carry.
        let e = refused(|p| p.segments[0].sha256[0] ^= 1);
        assert!(e.contains("does not describe segment 0"), "{e}");
    }

    #[test]
    fn riscv_kernels_must_find_our_dtb_first() {
        use crate::testing::{riscv_image, riscv_tree, RISCV_VIRT_1G};
        let t = riscv_tree("preflight-rv", RISCV_VIRT_1G);
        let req = Request::new(t.write("Image", riscv_image(0x20_0000, 4 << 20, 4096)));
        let p = crate::planner::plan(&req, &t.sys()).unwrap();
        let purg = PurgatoryImage::riscv64().unwrap();
        let iomem = Iomem::parse(RISCV_VIRT_1G).unwrap();
        check(&p, &purg, &iomem).unwrap();
        // The DTB damaged: the kernel would find no device tree at all.
        let mut q = p.clone();
        let mut d = q.segments[1].data.to_vec();
        d[4..8].copy_from_slice(&0x10u32.to_be_bytes()); // totalsize below the header
        q.segments[1].data = Blob::new(d);
        let e = check(&q, &purg, &iomem).unwrap_err().to_string();
        assert!(e.contains("no segment passes fdt_check_header()"), "{e}");
        // The boot data naming another address than the FDT the kernel takes.
        let mut q = p.clone();
        q.boot_data.addr += 8;
        let e = check(&q, &purg, &iomem).unwrap_err().to_string();
        assert!(e.contains("segment 1 (dtb)") && e.contains("starts like an FDT and comes before the DTB"), "{e}");
    }
}
