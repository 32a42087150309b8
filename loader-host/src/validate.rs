//! The loader refuses before the system call whatever the kernel or the
//! purgatory would refuse after it: once kexec_load has succeeded and the
//! machine reboots, a refusal leaves no kernel at all. So the finished plan
//! is checked here against
//! - the purgatory's own rules, by the purgatory crate's `validate()` run
//!   on the very parameter block written into the purgatory segment,
//! - kexec_load's rules (kernel/kexec_core.c sanity_check_segment_list),
//! - the machine's memory map, independently of the placement that made it:
//!   every segment in System RAM (the crash ranges for -p), outside every
//!   other /proc/iomem range, none at address 0,
//! - the hand-off: entries inside the right segments, boot data in a
//!   segment of its kind, nothing over the purgatory's footprint.

use kexec_purgatory::abi::{SegmentKind, MAX_SEGMENTS};

use crate::plan::{LoadKind, Plan, PlanError};
use crate::purgatory_image::PurgatoryImage;
use crate::range::{Range, PAGE};
use crate::system::iomem::Iomem;

fn refuse(rule: impl Into<String>) -> PlanError {
    PlanError::Refused { rule: rule.into() }
}

/// Check `plan` (see the module comment); `Err` names the rule broken.
pub fn plan(plan: &Plan, purgatory: &PurgatoryImage, iomem: &Iomem) -> Result<(), PlanError> {
    segments(plan, iomem)?;
    handoff(plan, purgatory)?;
    // The purgatory's checks, on the block exactly as it will be loaded.
    let purg = plan.purgatory().ok_or_else(|| refuse("the purgatory is not the last segment"))?;
    let off = purgatory.header.params_offset as usize;
    let written = purg.data.get(off..off + std::mem::size_of::<kexec_purgatory::abi::PurgatoryParams>());
    if written != Some(&plan.params.to_bytes()[..]) {
        return Err(PlanError::Internal("the purgatory segment does not carry the plan's parameter block".into()));
    }
    kexec_purgatory::verify::validate(&plan.params)
        .map_err(|e| refuse(format!("the purgatory would refuse this parameter block: {e:?}")))?;
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
    let mut total_pages = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let name = s.kind_name();
        let r = Range::checked(s.mem, s.memsz)
            .ok_or_else(|| refuse(format!("segment {i} ({name}) wraps the address space")))?;
        // sanity_check_segment_list: mem and memsz page aligned, bufsz <= memsz.
        if !s.mem.is_multiple_of(PAGE) || !s.memsz.is_multiple_of(PAGE) {
            return Err(refuse(format!("segment {i} ({name}) {r} is not page aligned")));
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
    }
    Ok(())
}

/// Entries and boot data.
fn handoff(plan: &Plan, purgatory: &PurgatoryImage) -> Result<(), PlanError> {
    let purg = plan.purgatory().ok_or_else(|| refuse("the purgatory is not the last segment"))?;
    if !purg.range().contains(plan.entry) || plan.entry != purg.mem + purgatory.header.entry_offset {
        return Err(refuse(format!("the entry {:#x} is not the purgatory's entry point", plan.entry)));
    }
    if purg.memsz < purgatory.header.mem_size {
        return Err(refuse("the purgatory segment is smaller than the image's mem_size"));
    }
    let holding = |addr: u64| plan.segments.iter().find(|s| s.range().contains(addr));
    match holding(plan.kernel_entry) {
        Some(s) if s.kind == Some(SegmentKind::Kernel) => {}
        _ => return Err(refuse(format!("the kernel entry {:#x} is not inside the kernel segment", plan.kernel_entry))),
    }
    let want = plan.arch.boot_data_kind();
    match holding(plan.boot_data.addr) {
        Some(s) if s.kind == Some(want) && plan.boot_data.kind == want => {}
        _ => {
            return Err(refuse(format!(
                "the boot data {:#x} is not inside a {} segment",
                plan.boot_data.addr,
                want.name()
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Blob;
    use crate::request::Request;
    use crate::testing::{arm64_image, arm64_tree, ARM64_FLAGS_ANYWHERE, VIRT_1G};

    /// A valid arm64 plan, its purgatory and the iomem it was made from.
    fn fixture() -> (Plan, PurgatoryImage<'static>, Iomem) {
        let t = arm64_tree("validate", VIRT_1G);
        let req = Request::new(t.write("Image", arm64_image(0, 4 << 20, ARM64_FLAGS_ANYWHERE, 4096)));
        let p = crate::planner::plan(&req, &t.sys()).unwrap();
        (p, PurgatoryImage::aarch64().unwrap(), Iomem::parse(VIRT_1G).unwrap())
    }

    fn refused(edit: impl FnOnce(&mut Plan)) -> String {
        let (mut p, purg, iomem) = fixture();
        edit(&mut p);
        plan(&p, &purg, &iomem).unwrap_err().to_string()
    }

    #[test]
    fn a_planned_load_passes() {
        let (p, purg, iomem) = fixture();
        plan(&p, &purg, &iomem).unwrap();
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
        assert!(e.contains("not page aligned"), "{e}");
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

    #[test]
    fn each_handoff_rule_refuses_before_the_syscall() {
        let e = refused(|p| p.entry += 4);
        assert!(e.contains("is not the purgatory's entry point"), "{e}");
        let e = refused(|p| p.kernel_entry = p.segments[1].mem);
        assert!(e.contains("kernel entry") && e.contains("not inside the kernel segment"), "{e}");
        let e = refused(|p| p.boot_data.addr = p.segments[0].mem);
        assert!(e.contains("is not inside a dtb segment"), "{e}");
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
    }

    #[test]
    fn the_purgatory_rules_run_on_the_loaded_block() {
        // A block the purgatory would refuse, written into the segment.
        let (mut p, purg, iomem) = fixture();
        p.params.flags |= 1 << 30;
        let last = p.segments.len() - 1;
        p.segments[last].data = Blob::new(purg.with_params(&p.params));
        let e = plan(&p, &purg, &iomem).unwrap_err().to_string();
        assert!(e.contains("the purgatory would refuse this parameter block: UnknownFlags"), "{e}");
        // A segment whose digest the block does not carry.
        let e = refused(|p| p.segments[0].sha256[0] ^= 1);
        assert!(e.contains("does not describe segment 0"), "{e}");
    }
}
