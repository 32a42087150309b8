//! The ppc64le stand-in kernel. Its first 256 bytes are laid out like the
//! kernel's (arch/powerpc/kernel/head_64.S `first_256B`): the entry at 0,
//! `__secondary_hold_spinloop` at 0x38, `__secondary_hold_acknowledge` at
//! 0x40, `__run_at_load` ("run0") at 0x5c and `__secondary_hold` at 0x60,
//! entered big-endian by the CPUs kexec releases there (the harness
//! copies these bytes into the purgatory's entry block as a loader does).
//! `_start` records r3, r4, r5, the MSR and PIR before touching anything;
//! `payload_main` checks Documentation/arch/powerpc/booting.rst's entry
//! (r3 = DTB, r4 = our base, r5 = 0, real mode, little-endian, EE off),
//! that boot_cpuid_phys is the CPU it runs on and names a cpu node (the
//! kernel BUG()s otherwise: prom.c early_init_dt_scan_cpus), that the held
//! CPU acknowledged at physical 0x40 and runs when released through 0x38,
//! that a kdump backup segment (if the harness loaded one) holds physical
//! [0, 0x10000) as the purgatory found it, prints what it found on the
//! hvterm and powers QEMU off through RTAS.
//!
//! `launcher` is harness-only: the firmware (QEMU's VOF) enters it as the
//! boot image, big-endian and 32-bit. It recreates the state
//! kexec_sequence leaves: copies the purgatory's entry block to physical
//! 0, starts another CPU at 0x60 (RTAS start-cpu: big-endian, real mode,
//! r3 = its id, as kexec_wait's release), then enters the purgatory
//! little-endian in real mode with r3 = the boot CPU id, r4 = LR = the
//! entry, r5 = 0, EE/FP/VEC/VSX off and junk in r1, r2, r12, r13.
use core::fmt::Write;

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    b       payload_master
    .space  0x38 - 4, 0
    .quad   0                       // 0x38 __secondary_hold_spinloop
    .quad   0                       // 0x40 __secondary_hold_acknowledge
    .space  0x5c - 0x48, 0
    .long   0x72756e30              // 0x5c __run_at_load: "run0"
    // 0x60 __secondary_hold: entered big-endian at physical 0x60.
    // `tdi 0,0,0x48` read big-endian is `b .+8`: to the big-endian words
    // that set MSR[LE] with rfid; read little-endian it does nothing.
    tdi     0, 0, 0x48
    b       2f
    .byte   0x7d, 0x60, 0x00, 0xa6  // mfmsr  r11
    .byte   0x61, 0x6b, 0x00, 0x01  // ori    r11, r11, 1 (LE)
    .byte   0x42, 0x9f, 0x00, 0x05  // bcl    20, 31, $+4
    .byte   0x7d, 0x48, 0x02, 0xa6  // mflr   r10
    .byte   0x39, 0x4a, 0x00, 0x14  // addi   r10, r10, 20
    .byte   0x7d, 0x5a, 0x03, 0xa6  // mtsrr0 r10
    .byte   0x7d, 0x7b, 0x03, 0xa6  // mtsrr1 r11
    .byte   0x4c, 0x00, 0x00, 0x24  // rfid
2:  std     %r3, 0x40(0)            // acknowledge: our id at physical 0x40
3:  ld      %r12, 0x38(0)           // spin on physical 0x38
    cmpdi   %r12, 0
    beq     3b
    mtctr   %r12
    bctr
    .space  0x100 - (. - _start), 0

payload_master:
    mr      %r20, %r3
    mr      %r21, %r4
    mr      %r22, %r5
    mfmsr   %r23
    mfspr   %r24, 1023              // PIR
    bcl     20, 31, 1f
1:  mflr    %r25
    addis   %r2, %r25, (.TOC. - 1b)@ha
    addi    %r2, %r2, (.TOC. - 1b)@l
    addis   %r1, %r2, __stack_top@toc@ha
    addi    %r1, %r1, __stack_top@toc@l
    addis   %r5, %r2, __bss_start@toc@ha
    addi    %r5, %r5, __bss_start@toc@l
    addis   %r6, %r2, __bss_end@toc@ha
    addi    %r6, %r6, __bss_end@toc@l
    li      %r0, 0
4:  cmpld   %r5, %r6
    bge     5f
    std     %r0, 0(%r5)
    addi    %r5, %r5, 8
    b       4b
5:  stdu    %r0, -112(%r1)
    std     %r20, 32(%r1)
    std     %r21, 40(%r1)
    std     %r22, 48(%r1)
    std     %r23, 56(%r1)
    std     %r24, 64(%r1)
    // FP/VEC/VSX for the compiler's code (the purgatory hands over with
    // them as it found them)
    ori     %r23, %r23, 0x2000
    oris    %r23, %r23, 0x0280
    mtmsrd  %r23
    isync
    addi    %r3, %r1, 32
    bl      payload_main
    nop
6:  b       6b

    // The released CPU lands here, little-endian, r3 = its id.
    .global secondary_main
secondary_main:
    bcl     20, 31, 1f
1:  mflr    %r4
    addis   %r2, %r4, (.TOC. - 1b)@ha
    addi    %r2, %r2, (.TOC. - 1b)@l
    addis   %r4, %r2, SECONDARY_SEEN@toc@ha
    addi    %r4, %r4, SECONDARY_SEEN@toc@l
    li      %r5, 1
    sldi    %r5, %r5, 63
    or      %r5, %r5, %r3
    std     %r5, 0(%r4)
    sync
2:  b       2b

    .section .text.launcher, "ax"
    .balign 8
    .global launcher
    .global launcher_slots
    .global launcher_end
launcher:
    tdi     0, 0, 0x48              // big-endian: b .+8
    b       2f
    .byte   0x7d, 0x60, 0x00, 0xa6  // mfmsr  r11
    .byte   0x61, 0x6b, 0x00, 0x01  // ori    r11, r11, 1 (LE)
    .byte   0x39, 0x80, 0xff, 0xff  // li     r12, -1
    .byte   0x79, 0x8c, 0x00, 0x04  // rldicr r12, r12, 0, 0 (SF)
    .byte   0x7d, 0x6b, 0x63, 0x78  // or     r11, r11, r12
    .byte   0x42, 0x9f, 0x00, 0x05  // bcl    20, 31, $+4
    .byte   0x7d, 0x88, 0x02, 0xa6  // mflr   r12
    .byte   0x39, 0x8c, 0x00, 0x14  // addi   r12, r12, 20
    .byte   0x7d, 0x9a, 0x03, 0xa6  // mtsrr0 r12
    .byte   0x7d, 0x7b, 0x03, 0xa6  // mtsrr1 r11
    .byte   0x4c, 0x00, 0x00, 0x24  // rfid
2:  bcl     20, 31, 3f
3:  mflr    %r31
    addi    %r30, %r31, launcher_slots - 3b
    // EE, FP, VEC, VSX off: kexec leaves EE off and the others as the
    // old kernel had them; the purgatory must turn on what it uses.
    mfmsr   %r9
    li      %r10, 0x2000
    oris    %r10, %r10, 0x0280
    ori     %r10, %r10, 0x8000
    andc    %r9, %r9, %r10
    mtmsrd  %r9
    isync
    // kexec_sequence: copy_and_flush(0, image->start, 0x100).
    ld      %r4, 0(%r30)
    li      %r5, 0
    li      %r6, 32
    mtctr   %r6
4:  ldx     %r7, %r4, %r5
    stdx    %r7, 0, %r5
    addi    %r5, %r5, 8
    bdnz    4b
    li      %r5, 0
    dcbst   0, %r5
    li      %r5, 0x80
    dcbst   0, %r5
    sync
    li      %r5, 0
    icbi    0, %r5
    li      %r5, 0x80
    icbi    0, %r5
    sync
    isync
    // Then the other CPUs go to 0x60: RTAS start-cpu(id, 0x60, r3 = id)
    // through QEMU's KVMPPC_H_RTAS (0xf000), big-endian rtas_args.
    ld      %r6, 16(%r30)
    cmpdi   %r6, -1
    beq     6f
    ld      %r7, 24(%r30)
    addi    %r8, %r30, 32
    li      %r10, 0
    stwbrx  %r7, %r8, %r10          // token
    li      %r9, 3
    li      %r10, 4
    stwbrx  %r9, %r8, %r10          // nargs
    li      %r9, 1
    li      %r10, 8
    stwbrx  %r9, %r8, %r10          // nret
    li      %r10, 12
    stwbrx  %r6, %r8, %r10          // the CPU
    li      %r9, 0x60
    li      %r10, 16
    stwbrx  %r9, %r8, %r10          // where it starts
    li      %r10, 20
    stwbrx  %r6, %r8, %r10          // its r3
    li      %r3, 0
    ori     %r3, %r3, 0xf000
    mr      %r4, %r8
    sc      1
    // Wait until it acknowledged at physical 0x40 (bounded).
    lis     %r10, 0x0100
    mtctr   %r10
5:  ld      %r7, 0x40(0)
    cmpd    %r7, %r6
    beq     6f
    bdnz    5b
6:  ld      %r3, 8(%r30)
    ld      %r4, 0(%r30)
    li      %r5, 0
    mtlr    %r4
    lis     %r1, 0xc000             // the old kernel's kexec_stack,
    lis     %r2, 0xc001             // TOC and PACA: virtual addresses
    lis     %r13, 0xc002            // that mean nothing to the purgatory
    lis     %r12, 0xc003
    blr
    .balign 8
launcher_slots:
    .quad   0                       // +0: purgatory entry (block)
    .quad   0                       // +8: r3, the boot CPU id
    .quad   -1                      // +16: CPU to start at 0x60, or -1
    .quad   0                       // +24: RTAS start-cpu token
    .space  32, 0                   // +32: rtas_args
launcher_end:

    .section .text.rkx_mem, "ax"
    .balign 4
    .global memcpy
memcpy:
    cmpldi  %r5, 0
    beqlr
    mtctr   %r5
    addi    %r6, %r3, -1
    addi    %r4, %r4, -1
1:  lbzu    %r7, 1(%r4)
    stbu    %r7, 1(%r6)
    bdnz    1b
    blr
    .global memmove
memmove:
    cmpld   %r3, %r4
    ble     memcpy
    cmpldi  %r5, 0
    beqlr
    mtctr   %r5
    add     %r4, %r4, %r5
    add     %r6, %r3, %r5
1:  lbzu    %r7, -1(%r4)
    stbu    %r7, -1(%r6)
    bdnz    1b
    blr
    .global memset
memset:
    cmpldi  %r5, 0
    beqlr
    mtctr   %r5
    addi    %r6, %r3, -1
1:  stbu    %r4, 1(%r6)
    bdnz    1b
    blr
    .global memcmp
    .global bcmp
memcmp:
bcmp:
    li      %r6, 0
    li      %r7, 0
    cmpldi  %r5, 0
    beq     2f
    mtctr   %r5
1:  lbz     %r6, 0(%r3)
    lbz     %r7, 0(%r4)
    cmplw   %r6, %r7
    bne     2f
    addi    %r3, %r3, 1
    addi    %r4, %r4, 1
    bdnz    1b
2:  subf    %r3, %r7, %r6
    blr
    .global rust_eh_personality
rust_eh_personality:
    trap
"#
);

#[repr(C)]
struct EntryState {
    r3: u64,
    r4: u64,
    r5: u64,
    msr: u64,
    pir: u64,
}

/// Set by the released CPU: 1 << 63 | its r3.
#[unsafe(no_mangle)]
static mut SECONDARY_SEEN: u64 = 0;

/// QEMU's vty (spapr_vty, reg 0x71000000) through H_PUT_TERM_CHAR.
const VTERM: u64 = 0x7100_0000;

fn hcall(op: u64, a: u64, b: u64, c: u64, d: u64) -> u64 {
    let r: u64;
    // SAFETY: a PAPR hypercall from the partition (QEMU pseries).
    unsafe {
        core::arch::asm!("sc 1", inlateout("r3") op => r, inlateout("r4") a => _, inlateout("r5") b => _,
            inlateout("r6") c => _, inlateout("r7") d => _, out("cr2") _, out("cr3") _, out("cr4") _,
            clobber_abi("C"), options(nostack));
    }
    r
}

struct Hvterm;

impl Write for Hvterm {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                hcall(0x58, VTERM, 1, (b'\r' as u64) << 56, 0);
            }
            hcall(0x58, VTERM, 1, (b as u64) << 56, 0);
        }
        Ok(())
    }
}

/// RTAS power-off(0, 0) through QEMU's KVMPPC_H_RTAS: QEMU shuts down.
fn power_off(token: u32) -> ! {
    let args: [u32; 6] = [token.to_be(), 2u32.to_be(), 1u32.to_be(), 0, 0, 0];
    hcall(0xf000, args.as_ptr() as u64, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

unsafe extern "C" {
    fn _start();
    fn secondary_main();
}

fn hex(out: &mut Hvterm, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// Where the harness loads the kdump backup segment, and its length
/// (tests/harness/src/scenario.rs `PPC_BACKUP_ADDR`, `PPC_BACKUP_LEN`).
const BACKUP: usize = 0x0a30_0000;
const BACKUP_LEN: usize = 0x1_0000;

/// A byte of physical memory outside every Rust allocation (address 0
/// included: `read_volatile` allows it through a pointer without
/// provenance).
fn phys(addr: usize) -> u8 {
    // SAFETY: RAM (QEMU pseries, 2 GiB from 0), real mode; reads have no
    // side effects.
    unsafe { core::ptr::read_volatile(core::ptr::without_provenance::<u8>(addr)) }
}

/// kdump: the purgatory copied physical [0, BACKUP_LEN) into the backup
/// segment after verifying it (zeros as loaded). Nothing has written low
/// memory since (the purgatory, this payload and QEMU's hypercalls leave
/// it alone; the held CPU is released only below), so it must equal low
/// memory now, and its 4..0x100 must be the entry block kexec copied to 0:
/// our own head (word 0 is the purgatory's branch). All zeros: no backup.
/// Returns whether the checks held.
fn check_backup(out: &mut Hvterm, base: usize) -> bool {
    let nonzero = (0..BACKUP_LEN).filter(|&i| phys(BACKUP + i) != 0).count();
    if nonzero == 0 {
        let _ = writeln!(out, "payload: no backup at {BACKUP:#x}");
        return true;
    }
    if let Some(i) = (0..BACKUP_LEN).find(|&i| phys(BACKUP + i) != phys(i)) {
        let _ = writeln!(out, "payload: FAIL backup {BACKUP:#x} differs from physical memory at {i:#x}");
        return false;
    }
    if let Some(i) = (4..0x100).find(|&i| phys(BACKUP + i) != phys(base + i)) {
        let _ = writeln!(out, "payload: FAIL backup {BACKUP:#x} differs from the entry block (our head) at {i:#x}");
        return false;
    }
    let _ = writeln!(
        out,
        "payload: backup {BACKUP:#x} equals physical 0x0+{BACKUP_LEN:#x} ({nonzero} bytes non-zero), 0x4..0x100 our head"
    );
    true
}

/// MSR bits (Power ISA Book III "Machine State Register").
const MSR_SF: u64 = 1 << 63;
const MSR_EE: u64 = 1 << 15;
const MSR_PR: u64 = 1 << 14;
const MSR_IR: u64 = 1 << 5;
const MSR_DR: u64 = 1 << 4;
const MSR_LE: u64 = 1;

#[unsafe(no_mangle)]
extern "C" fn payload_main(st: &EntryState) -> ! {
    let mut out = Hvterm;
    let base = _start as *const () as usize as u64;
    let _ = writeln!(
        out,
        "payload: entered r3={:#x} r4={:#x} r5={:#x} msr={:#x} pir={:#x}",
        st.r3, st.r4, st.r5, st.msr, st.pir
    );
    let mut ok = true;
    let mut fail = |out: &mut Hvterm, why: &str| {
        let _ = writeln!(out, "payload: FAIL {why}");
        ok = false;
    };
    if st.r4 != base {
        fail(&mut out, "r4 is not the kernel's base");
    }
    if st.r5 != 0 {
        fail(&mut out, "r5 is not 0 (booting.rst: 0 for a flat-tree entry)");
    }
    if st.msr & (MSR_IR | MSR_DR) != 0 {
        fail(&mut out, "not in real mode");
    }
    if st.msr & MSR_LE == 0 || st.msr & MSR_SF == 0 || st.msr & MSR_PR != 0 {
        fail(&mut out, "not 64-bit little-endian supervisor");
    }
    if st.msr & MSR_EE != 0 {
        fail(&mut out, "external interrupts enabled");
    }
    // SAFETY: our own head word, as the purgatory wrote it.
    let run_at_load = unsafe { core::ptr::read_volatile((base + 0x5c) as *const u32) };
    let _ = writeln!(out, "payload: run_at_load={run_at_load:#x}");
    let mut power_off_token = 0x2003;
    // SAFETY: r3 is the DTB the purgatory handed over; read its header,
    // then at most totalsize bytes (bounded to 2 MiB).
    let dtb = unsafe {
        let hdr = core::slice::from_raw_parts(st.r3 as *const u8, 8);
        let total = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]).min(2 << 20) as usize;
        core::slice::from_raw_parts(st.r3 as *const u8, total)
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
            if let Some(t) = fdt.find_node("/rtas").and_then(|r| r.property("power-off")).and_then(|p| p.as_usize()) {
                power_off_token = t as u32;
            }
            // prom.c early_init_dt_scan_cpus: a cpu node must list it in
            // ibm,ppc-interrupt-server#s, and it must be us.
            let listed = fdt.find_node("/cpus").is_some_and(|cpus| {
                cpus.children().any(|c| {
                    c.property("ibm,ppc-interrupt-server#s")
                        .is_some_and(|p| p.value.chunks_exact(4).any(|w| w == cpuid.to_be_bytes()))
                })
            });
            if !listed {
                fail(&mut out, "boot_cpuid_phys names no cpu node");
            }
            if cpuid as u64 != st.pir {
                fail(&mut out, "boot_cpuid_phys is not the CPU the kernel runs on (PIR)");
            }
        }
        Err(_) => fail(&mut out, "r3 is not a valid DTB"),
    }
    // Before the held CPU is released (it writes low memory).
    if !check_backup(&mut out, base as usize) {
        fail(&mut out, "the backup is not physical [0, 0x10000)");
    }
    // A CPU held in our __secondary_hold (at physical 0x60, copied there
    // from the purgatory's entry block) acknowledged at physical 0x40
    // before the purgatory ran; release it as smp_release_cpus does.
    // SAFETY: physical 0..0x100 is the head kexec copied there; 0x38 and
    // 0x40 are its spinloop and acknowledge words.
    let ack = unsafe { core::ptr::read_volatile(0x40 as *const u64) };
    if ack != 0 {
        // SAFETY: as above; the held CPU reads 0x38 and jumps there.
        unsafe {
            core::ptr::write_volatile(0x38 as *mut u64, secondary_main as *const () as usize as u64);
            core::arch::asm!("sync", options(nostack));
        }
        let mut seen = 0;
        for _ in 0..50_000_000u64 {
            // SAFETY: written by the released CPU.
            seen = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(SECONDARY_SEEN)) };
            if seen != 0 {
                break;
            }
        }
        let _ = writeln!(out, "payload: secondary acknowledged {ack:#x}, released, ran {:#x}", seen & !(1 << 63));
        if seen != (1 << 63 | ack) {
            fail(&mut out, "the held CPU did not run when released");
        }
    } else {
        let _ = writeln!(out, "payload: no CPU held at 0x60");
    }
    let _ = writeln!(out, "payload: {}", if ok { "checks passed" } else { "checks FAILED" });
    power_off(power_off_token)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Hvterm, "payload: panic");
    power_off(0x2003)
}
