//! The riscv64 stand-in kernel. `_start` records a0..a2 and the CSRs
//! Documentation/arch/riscv/boot.rst speaks of before touching anything;
//! `payload_main` checks them, prints them and the DTB's patched fields on
//! QEMU virt's 16550 (byte registers at 0x1000_0000) and exits QEMU through
//! the sifive_test finisher at 0x10_0000.
//!
//! `mstub` is harness-only: the CPU starts there in M-mode (`-bios none`),
//! and it plays the part of firmware that grants S-mode the `seed` CSR
//! (mseccfg.SSEED, which QEMU 7.2's OpenSBI v1.1 never sets), then enters
//! the purgatory in S-mode with a0 = hart id, a1 = DTB, as kexec does.
use core::fmt::Write;

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    mv      s2, a0
    mv      s3, a1
    mv      s4, a2
    mv      s5, a7
    csrr    s6, sstatus
    csrr    s7, sie
    csrr    s8, satp
    lla     sp, __stack_top
    lla     t0, __bss_start
    lla     t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  addi    sp, sp, -64
    sd      s2, 0(sp)
    sd      s3, 8(sp)
    sd      s4, 16(sp)
    sd      s5, 24(sp)
    sd      s6, 32(sp)
    sd      s7, 40(sp)
    sd      s8, 48(sp)
    mv      a0, sp
    call    payload_main
3:  wfi
    j       3b

    // M-mode firmware stand-in (harness only, -bios none).
    .balign 8
    .global mstub
mstub:
    lla     t0, mstub_trap
    csrw    mtvec, t0
    // PMP entry 0: NAPOT over the whole address space, RWX, so S-mode may
    // touch RAM and devices (privileged spec, "Physical Memory Protection").
    li      t0, -1
    csrw    pmpaddr0, t0
    li      t0, 0x1f
    csrw    pmpcfg0, t0
    // mseccfg.SSEED (bit 9): S-mode may access `seed` (Zkr spec, "seed
    // CSR access control"). mseccfg (0x747) exists in QEMU 7.2 with x-epmp.
    li      t0, (1 << 9)
    csrs    0x747, t0
    // S-mode may read `time`; illegal instructions go straight to S-mode
    // (the purgatory's trap guard), ecalls come here.
    li      t0, 7
    csrw    mcounteren, t0
    li      t0, (1 << 2)
    csrw    medeleg, t0
    csrw    mideleg, zero
    csrw    mie, zero
    // mret to S-mode (MPP = 01) at the purgatory, interrupts off.
    li      t0, (3 << 11) | (1 << 7)
    csrc    mstatus, t0
    li      t0, (1 << 11)
    csrs    mstatus, t0
    ld      t0, mstub_target
    csrw    mepc, t0
    csrr    a0, mhartid
    ld      a1, mstub_dtb
    li      a2, 0
    mret

    // ecall from S (mcause 9): SBI_ERR_NOT_SUPPORTED (-2), no extensions.
    // Anything else (a CSR this QEMU lacks): skip the instruction.
    .balign 4
mstub_trap:
    csrrw   t0, mscratch, t0
    csrr    t0, mcause
    addi    t0, t0, -9
    bnez    t0, 4f
    li      a0, -2
    li      a1, 0
4:  csrr    t0, mepc
    addi    t0, t0, 4
    csrw    mepc, t0
    csrrw   t0, mscratch, t0
    mret

    .balign 8
    .global mstub_target
mstub_target:
    .dword  0
    .global mstub_dtb
mstub_dtb:
    .dword  0
"#
);

#[repr(C)]
struct EntryState {
    a0: u64,
    a1: u64,
    a2: u64,
    a7: u64,
    sstatus: u64,
    sie: u64,
    satp: u64,
}

const UART: u64 = 0x1000_0000;
const FINISHER: u64 = 0x10_0000;

struct Ns16550;

impl Write for Ns16550 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            let put = |c: u8| {
                // SAFETY: QEMU virt's uart0, byte registers (reg-shift 0):
                // wait for LSR.THRE, write THR.
                unsafe {
                    while core::ptr::read_volatile((UART + 5) as *const u8) & (1 << 5) == 0 {}
                    core::ptr::write_volatile(UART as *mut u8, c);
                }
            };
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

/// QEMU's sifive_test finisher: 0x5555 exits with status 0, `code << 16 |
/// 0x3333` with status `code`.
fn exit(status: u32) -> ! {
    let v = if status == 0 { 0x5555 } else { (status << 16) | 0x3333 };
    // SAFETY: the finisher register of QEMU virt's test device.
    unsafe { core::ptr::write_volatile(FINISHER as *mut u32, v) };
    loop {
        // SAFETY: idle until QEMU exits.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

fn hex(out: &mut Ns16550, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[unsafe(no_mangle)]
extern "C" fn payload_main(st: &EntryState) -> ! {
    let mut out = Ns16550;
    let sstatus_sie = (st.sstatus >> 1) & 1;
    let _ = writeln!(
        out,
        "payload: entered a0={:#x} a1={:#x} a2={:#x} a7={:#x} satp={:#x} sie={:#x} sstatus.sie={sstatus_sie}",
        st.a0, st.a1, st.a2, st.a7, st.satp, st.sie
    );
    let mut ok = true;
    // boot.rst: satp = 0. The purgatory's contract (docs/abi.md):
    // interrupts off, every other argument register zero.
    if st.satp != 0 {
        let _ = writeln!(out, "payload: FAIL satp is not 0");
        ok = false;
    }
    if st.sie != 0 || sstatus_sie != 0 {
        let _ = writeln!(out, "payload: FAIL interrupts enabled");
        ok = false;
    }
    if st.a2 != 0 || st.a7 != 0 {
        let _ = writeln!(out, "payload: FAIL a2/a7 not zero");
        ok = false;
    }
    // SAFETY: a1 is the DTB the purgatory handed over; read its header,
    // then at most totalsize bytes (bounded to 2 MiB).
    let dtb = unsafe {
        let hdr = core::slice::from_raw_parts(st.a1 as *const u8, 8);
        let total = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]).min(2 << 20) as usize;
        core::slice::from_raw_parts(st.a1 as *const u8, total)
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
            if cpuid as u64 != st.a0 {
                let _ = writeln!(out, "payload: FAIL boot_cpuid_phys is not the hart id in a0");
                ok = false;
            }
        }
        Err(_) => {
            let _ = writeln!(out, "payload: FAIL a1 is not a valid DTB");
            ok = false;
        }
    }
    let _ = writeln!(out, "payload: {}", if ok { "checks passed" } else { "checks FAILED" });
    exit(if ok { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Ns16550, "payload: panic");
    exit(2)
}
