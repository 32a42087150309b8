use core::fmt::Write;

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    // Record the hand-off state first: x0..x3, DAIF, CurrentEL, SCTLR, HCR.
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    mrs     x23, daif
    mrs     x24, CurrentEL
    cmp     x24, #(2 << 2)
    b.eq    1f
    mrs     x25, sctlr_el1
    mov     x26, xzr
    mrs     x1, cpacr_el1
    orr     x1, x1, #(3 << 20)
    msr     cpacr_el1, x1
    b       2f
1:  mrs     x25, sctlr_el2
    mrs     x26, hcr_el2
    mrs     x1, cptr_el2
    tbnz    x26, #34, 3f
    bic     x1, x1, #(1 << 10)
    msr     cptr_el2, x1
    b       2f
3:  orr     x1, x1, #(3 << 20)
    msr     cptr_el2, x1
2:  isb
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b
5:  mov     x0, sp
    sub     sp, sp, #80
    mov     x0, sp
    stp     x19, x20, [x0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    bl      payload_main
6:  wfe
    b       6b

    // Harness-only: become a VHE hypervisor (HCR_EL2.E2H=1, TGE=1, as a
    // VHE Linux host runs) and jump to the purgatory.
    .balign 8
    .global vhe_stub
vhe_stub:
    mrs     x0, hcr_el2
    mov     x1, #1
    lsl     x1, x1, #34             // E2H
    orr     x0, x0, x1
    mov     x1, #1
    lsl     x1, x1, #27             // TGE
    orr     x0, x0, x1
    msr     hcr_el2, x0
    isb
    ldr     x1, vhe_stub_target
    mov     x0, xzr
    br      x1
    .balign 8
    .global vhe_stub_target
vhe_stub_target:
    .quad   0
"#
);

#[repr(C)]
struct EntryState {
    x: [u64; 4],
    daif: u64,
    current_el: u64,
    sctlr: u64,
    hcr: u64,
}

const PL011: u64 = 0x0900_0000;

struct Pl011;

impl Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            // SAFETY: QEMU virt's PL011 data register; MMU is off.
            unsafe {
                while core::ptr::read_volatile((PL011 + 0x18) as *const u32) & (1 << 5) != 0 {}
                if b == b'\n' {
                    core::ptr::write_volatile(PL011 as *mut u32, b'\r' as u32);
                }
                core::ptr::write_volatile(PL011 as *mut u32, b as u32);
            }
        }
        Ok(())
    }
}

/// Arm semihosting SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit and a
/// status: QEMU exits with that status.
fn exit(status: u64) -> ! {
    let block = [0x20026u64, status];
    // SAFETY: semihosting trap; QEMU runs with -semihosting.
    unsafe { core::arch::asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack)) };
    loop {
        // SAFETY: waits for an event; no memory effect.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

fn hex(out: &mut Pl011, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[unsafe(no_mangle)]
extern "C" fn payload_main(st: &EntryState) -> ! {
    let mut out = Pl011;
    let el = (st.current_el >> 2) & 3;
    let e2h = (st.hcr >> 34) & 1;
    let mmu = st.sctlr & 1;
    let dcache = (st.sctlr >> 2) & 1;
    let _ = writeln!(
        out,
        "payload: entered el={el} e2h={e2h} x0={:#x} x1={:#x} x2={:#x} x3={:#x} daif={:#x} mmu={mmu} dcache={dcache}",
        st.x[0], st.x[1], st.x[2], st.x[3], st.daif
    );
    let mut ok = true;
    // booting.rst: x1..x3 are zero, MMU off, D-cache off, DAIF all masked.
    if st.x[1] != 0 || st.x[2] != 0 || st.x[3] != 0 {
        let _ = writeln!(out, "payload: FAIL x1..x3 not zero");
        ok = false;
    }
    if mmu != 0 || dcache != 0 {
        let _ = writeln!(out, "payload: FAIL mmu or d-cache on");
        ok = false;
    }
    if st.daif & 0x3c0 != 0x3c0 {
        let _ = writeln!(out, "payload: FAIL DAIF not all masked");
        ok = false;
    }
    // SAFETY: x0 is the DTB the purgatory handed over; read its header,
    // then at most totalsize bytes (bounded to 2 MiB).
    let dtb = unsafe {
        let hdr = core::slice::from_raw_parts(st.x[0] as *const u8, 8);
        let total = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]).min(2 << 20) as usize;
        core::slice::from_raw_parts(st.x[0] as *const u8, total)
    };
    match fdt::Fdt::new(dtb) {
        Ok(fdt) => {
            let cpuid = u32::from_be_bytes([dtb[0x1c], dtb[0x1d], dtb[0x1e], dtb[0x1f]]);
            let _ = write!(out, "payload: dtb ok boot_cpuid={cpuid:#x}");
            if let Some(chosen) = fdt.find_node("/chosen") {
                if let Some(args) = chosen.property("bootargs").and_then(|p| p.as_str()) {
                    let _ = write!(out, " bootargs=\"{args}\"");
                }
                for name in ["kaslr-seed", "rng-seed"] {
                    if let Some(p) = chosen.property(name) {
                        let _ = write!(out, " {name}=");
                        hex(&mut out, p.value);
                    }
                }
            }
            let _ = writeln!(out);
        }
        Err(_) => {
            let _ = writeln!(out, "payload: FAIL x0 is not a valid DTB");
            ok = false;
        }
    }
    let _ = writeln!(out, "payload: {}", if ok { "checks passed" } else { "checks FAILED" });
    exit(if ok { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Pl011, "payload: panic");
    exit(2)
}
