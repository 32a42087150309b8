//! The x86_64 stand-in kernel. `startup_64` (at load address + 0x200, where
//! Documentation/arch/x86/boot.rst "64-bit Boot Protocol" enters a kernel)
//! records every general register, RFLAGS, the segment selectors, CR0,
//! CR3, CR4, EFER and the GDTR before touching anything; `payload_main`
//! checks what that protocol requires of the hand-off, reads the
//! boot_params %rsi names (setup header, command line, initrd, e820 and the
//! setup_data chain with its SETUP_RNG_SEED), prints what it found on COM1
//! (I/O port 0x3f8) and exits QEMU through isa-debug-exit (port 0xf4).
//!
//! `launcher` is harness-only, the part firmware and the old kernel's
//! relocate_kernel play on real hardware: the last 4 KiB of the harness's
//! `-bios` image. The CPU resets into it in real mode; it enters long mode
//! on an identity map of the low 4 GiB and jumps to the purgatory in the
//! state arch/x86/kernel/relocate_kernel_64.S leaves (see below).
use core::arch::x86_64::{__cpuid, __cpuid_count};
use core::fmt::Write;

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .code64
    // A bzImage's protected-mode kernel has its 32-bit entry at offset 0
    // and the 64-bit one at 0x200 (boot.rst, "64-bit Boot Protocol"). The
    // purgatory must enter at 0x200; arriving here is a failure.
    .global startup_32
startup_32:
    mov     al, 0x13
    out     0xf4, al
1:  cli
    hlt
    jmp     1b

    .org    0x200, 0xcc
    .global _start
_start:
    // Before anything else: the general registers, by RIP-relative stores
    // (no stack is assumed).
    mov     [rip + entry_state + 0x00], rax
    mov     [rip + entry_state + 0x08], rbx
    mov     [rip + entry_state + 0x10], rcx
    mov     [rip + entry_state + 0x18], rdx
    mov     [rip + entry_state + 0x20], rsi
    mov     [rip + entry_state + 0x28], rdi
    mov     [rip + entry_state + 0x30], rbp
    mov     [rip + entry_state + 0x38], rsp
    mov     [rip + entry_state + 0x40], r8
    mov     [rip + entry_state + 0x48], r9
    mov     [rip + entry_state + 0x50], r10
    mov     [rip + entry_state + 0x58], r11
    mov     [rip + entry_state + 0x60], r12
    mov     [rip + entry_state + 0x68], r13
    mov     [rip + entry_state + 0x70], r14
    mov     [rip + entry_state + 0x78], r15
    // MOV and LEA leave the flags alone: RFLAGS is still the entry value.
    lea     rsp, [rip + __stack_top]
    pushfq
    pop     rax
    mov     [rip + entry_state + 0x80], rax
    mov     eax, cs
    mov     [rip + entry_state + 0x88], rax
    mov     eax, ds
    mov     [rip + entry_state + 0x90], rax
    mov     eax, es
    mov     [rip + entry_state + 0x98], rax
    mov     eax, ss
    mov     [rip + entry_state + 0xa0], rax
    mov     rax, cr0
    mov     [rip + entry_state + 0xa8], rax
    mov     rax, cr3
    mov     [rip + entry_state + 0xb0], rax
    mov     rax, cr4
    mov     [rip + entry_state + 0xb8], rax
    mov     ecx, 0xc0000080
    rdmsr
    shl     rdx, 32
    or      rax, rdx
    mov     [rip + entry_state + 0xc0], rax
    sgdt    [rip + entry_state + 0xc8]
    cld
    lea     rdi, [rip + __bss_start]
    lea     rcx, [rip + __bss_end]
    sub     rcx, rdi
    xor     eax, eax
    rep stosb
    lea     rdi, [rip + entry_state]
    call    payload_main
2:  cli
    hlt
    jmp     2b

    // In .data (not .bss, which _start zeroes after filling this).
    .section .data.entry_state, "aw"
    .balign 16
entry_state:
    .zero   0xd8
"#
);

// The launcher: linked at 0xfffff000, the last page of the 4 GiB space,
// where QEMU maps the end of the `-bios` image; the CPU starts at
// 0xfffffff0 in real mode with CS base 0xffff0000 (Intel SDM Vol. 3A §9.1.4
// "First Instruction Executed"). It switches to protected mode, builds an
// identity map of the low 4 GiB (2 MiB pages) at 8 MiB, enters long mode
// (SDM Vol. 3A §9.8.5) and goes to the purgatory entry the harness wrote in
// `launcher_target`, in the state relocate_kernel_64.S's identity_mapped
// leaves: 64-bit mode on identity page tables, CR0 = PG|NE|ET|MP|PE
// (AM, WP, TS, EM clear), CR4 = PAE, interrupts off, a stack whose top
// word is 0, and a GDT of its own that is not the one boot.rst asks of
// the kernel's entry (here 0x10 is data and 0x18 is code: the purgatory
// must load its own). Stricter than relocate_kernel, which zeroes them,
// every general register but %rsp holds a poison value and RFLAGS.DF is
// set: the purgatory's entry relies on none of them.
core::arch::global_asm!(
    r#"
    .set    LAUNCHER_CS_OFFSET, 0xf000  // 0xfffff000 - the reset CS base
    .set    PT_BASE, 0x800000           // PML4, PDPT, four PDs
    .set    STACK_TOP, 0x808000

    .section .launcher, "ax"
    .code16
    .global launcher_start
launcher_start:
    cli
    // An operand-size prefixed LGDT takes all 32 bits of the base.
    lgdtl   %cs:(LAUNCHER_CS_OFFSET + launcher_gdtr - launcher_start)
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   $0x08, $launcher32

    .code32
launcher32:
    movl    $0x10, %eax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    // COM1 as firmware leaves it: 115200 baud (divisor 1), 8N1, FIFOs on.
    movw    $0x3fb, %dx
    movb    $0x80, %al
    outb    %al, %dx
    movw    $0x3f8, %dx
    movb    $1, %al
    outb    %al, %dx
    movw    $0x3f9, %dx
    xorb    %al, %al
    outb    %al, %dx
    movw    $0x3fb, %dx
    movb    $3, %al
    outb    %al, %dx
    movw    $0x3fa, %dx
    movb    $7, %al
    outb    %al, %dx
    // Page tables: PML4[0] -> PDPT, PDPT[0..4] -> PD0..PD3, each PD 512
    // 2 MiB pages (present, writable, accessed, dirty, PS).
    cld
    movl    $PT_BASE, %edi
    xorl    %eax, %eax
    movl    $(6 * 4096 / 4), %ecx
    rep stosl
    movl    $(PT_BASE + 0x1003), PT_BASE
    movl    $(PT_BASE + 0x2003), PT_BASE + 0x1000
    movl    $(PT_BASE + 0x3003), PT_BASE + 0x1008
    movl    $(PT_BASE + 0x4003), PT_BASE + 0x1010
    movl    $(PT_BASE + 0x5003), PT_BASE + 0x1018
    movl    $(PT_BASE + 0x2000), %edi
    movl    $0xe3, %eax
    movl    $2048, %ecx
1:  movl    %eax, (%edi)
    addl    $0x200000, %eax
    addl    $8, %edi
    loop    1b
    movl    $0x20, %eax                 // CR4 = PAE
    movl    %eax, %cr4
    movl    $PT_BASE, %eax
    movl    %eax, %cr3
    movl    $0xc0000080, %ecx           // EFER.LME
    rdmsr
    orl     $0x100, %eax
    wrmsr
    movl    $0x80000033, %eax           // PG | NE | ET | MP | PE
    movl    %eax, %cr0
    ljmp    $0x18, $launcher64

    .code64
launcher64:
    movq    $STACK_TOP, %rsp
    pushq   $0
    pushq   launcher_target(%rip)
    movabsq $0x5afe5afe5afe5afe, %rax
    movq    %rax, %rbx
    movq    %rax, %rcx
    movq    %rax, %rdx
    movq    %rax, %rsi
    movq    %rax, %rdi
    movq    %rax, %rbp
    movq    %rax, %r8
    movq    %rax, %r9
    movq    %rax, %r10
    movq    %rax, %r11
    movq    %rax, %r12
    movq    %rax, %r13
    movq    %rax, %r14
    movq    %rax, %r15
    std
    ret

    .balign 8
launcher_gdt:
    .quad   0
    .quad   0x00cf9a000000ffff          // 0x08: 32-bit code, 4 GiB flat
    .quad   0x00cf92000000ffff          // 0x10: data, 4 GiB flat
    .quad   0x00af9a000000ffff          // 0x18: 64-bit code
launcher_gdt_end:
launcher_gdtr:
    .word   launcher_gdt_end - launcher_gdt - 1
    .long   launcher_gdt
    .balign 8
    .global launcher_target
launcher_target:
    .quad   0

    .org    0xff0, 0xf4
    // The reset vector, 0xfffffff0 (CS:IP = 0xf000:0xfff0), in real mode.
    .code16
    jmp     launcher_start
    .org    0x1000, 0xf4
"#,
    options(att_syntax)
);

/// What `_start` recorded, in its order (offsets in the assembly above).
#[repr(C)]
struct EntryState {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15.
    gpr: [u64; 16],
    rflags: u64,
    cs: u64,
    ds: u64,
    es: u64,
    ss: u64,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
    /// SGDT: limit (u16), base (u64).
    gdtr: [u8; 16],
}

const GPR_NAMES: [&str; 16] =
    ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

/// COM1.
const COM1: u16 = 0x3f8;
/// isa-debug-exit (`-device isa-debug-exit,iobase=0xf4`): QEMU exits with
/// status (value << 1) | 1.
const DEBUG_EXIT: u16 = 0xf4;
/// Values written there: QEMU exits 33 (checks passed), 35 (a check
/// failed), 37 (panic); 39 means startup_32 was entered.
const EXIT_PASSED: u8 = 0x10;
const EXIT_FAILED: u8 = 0x11;
const EXIT_PANIC: u8 = 0x12;

/// boot.rst: __BOOT_CS and __BOOT_DS.
const BOOT_CS: u64 = 0x10;
const BOOT_DS: u64 = 0x18;

// zero-page.rst / boot.rst offsets in struct boot_params.
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
const EXT_RAMDISK_SIZE: usize = 0x0c4;
const EXT_CMD_LINE_PTR: usize = 0x0c8;
const E820_ENTRIES: usize = 0x1e8;
const BOOT_FLAG: usize = 0x1fe;
const HEADER: usize = 0x202;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21c;
const CMD_LINE_PTR: usize = 0x228;
const SETUP_DATA: usize = 0x250;
const E820_TABLE: usize = 0x2d0;
/// include/uapi/asm/setup_data.h.
const SETUP_RNG_SEED: u32 = 9;
const E820_RAM: u32 = 1;
/// Our page tables map the low 4 GiB.
const MAPPED_END: u64 = 1 << 32;

fn outb(port: u16, v: u8) {
    // SAFETY: ring 0; the ports of COM1 and isa-debug-exit.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: ring 0; COM1's line status register.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}

struct Com1;

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            let put = |c: u8| {
                // 16550: wait for LSR.THRE, write THR.
                while inb(COM1 + 5) & (1 << 5) == 0 {}
                outb(COM1, c);
            };
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

fn exit(code: u8) -> ! {
    outb(DEBUG_EXIT, code);
    loop {
        // SAFETY: idle until QEMU exits.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

fn hex(out: &mut Com1, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// `len` bytes of physical memory at `addr`, if they lie inside the
/// identity map (never at 0).
fn phys(addr: u64, len: usize) -> Option<&'static [u8]> {
    let end = addr.checked_add(len as u64)?;
    if addr == 0 || end > MAPPED_END {
        return None;
    }
    // SAFETY: identity-mapped (the launcher maps the low 4 GiB and the
    // purgatory keeps that map); nothing else runs.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from(le32(b, off)) | u64::from(le32(b, off + 4)) << 32
}

/// The GDT descriptor for `selector` (Intel SDM Vol. 3A §3.4.5), if the
/// GDT limit covers it.
fn descriptor(gdtr: &[u8; 16], selector: u64) -> Option<u64> {
    let limit = u64::from(le16(gdtr, 0));
    let base = le64(gdtr, 2);
    let off = selector & !7;
    if off + 7 > limit {
        return None;
    }
    phys(base.checked_add(off)?, 8).map(|d| le64(d, 0))
}

/// boot.rst: "__BOOT_CS(0x10) ... must have execute/read permission,
/// __BOOT_DS(0x18) must have read/write permission", both 4G flat. A
/// 64-bit code descriptor (L=1, D=0) has no base or limit in long mode.
fn check_gdt(out: &mut Com1, gdtr: &[u8; 16]) -> bool {
    let (Some(cs), Some(ds)) = (descriptor(gdtr, BOOT_CS), descriptor(gdtr, BOOT_DS)) else {
        let _ = writeln!(out, "payload: FAIL the GDT does not reach selector 0x18");
        return false;
    };
    let _ = writeln!(out, "payload: gdt[0x10]={cs:#018x} gdt[0x18]={ds:#018x}");
    let access = |d: u64| (d >> 40) & 0xff;
    let flags = |d: u64| (d >> 52) & 0xf;
    let base = |d: u64| (d >> 16) & 0xff_ffff | (d >> 32) & 0xff00_0000;
    let limit = |d: u64| d & 0xffff | (d >> 32) & 0xf_0000;
    let mut ok = true;
    // Access byte: P (0x80), DPL 0, S (0x10), code (0x08) readable (0x02).
    if access(cs) & 0xfa != 0x9a || flags(cs) & 0x6 != 0x2 {
        let _ = writeln!(out, "payload: FAIL gdt[0x10] is not a 64-bit execute/read code segment");
        ok = false;
    }
    // P, DPL 0, S, data (0x08 clear), writable (0x02); 4 GiB flat.
    if access(ds) & 0xfa != 0x92 || base(ds) != 0 || limit(ds) != 0xf_ffff || flags(ds) & 0x8 == 0 {
        let _ = writeln!(out, "payload: FAIL gdt[0x18] is not a 4G flat read/write data segment");
        ok = false;
    }
    ok
}

/// The RAM ranges of the e820 table in boot_params.
fn in_ram(bp: &[u8], addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else { return false };
    let n = usize::from(bp[E820_ENTRIES]).min(128);
    (0..n).any(|i| {
        let e = E820_TABLE + i * 20;
        let (start, size, kind) = (le64(bp, e), le64(bp, e + 8), le32(bp, e + 16));
        kind == E820_RAM && addr >= start && start.checked_add(size).is_some_and(|top| end <= top && end <= MAPPED_END)
    })
}

/// Read boot_params: setup header magic, command line, initrd, the
/// setup_data chain (at most 16 nodes, each inside e820 RAM) and the
/// first SETUP_RNG_SEED's bytes.
fn check_boot_params(out: &mut Com1, rsi: u64) -> bool {
    let Some(bp) = phys(rsi, 4096) else {
        let _ = writeln!(out, "payload: FAIL rsi {rsi:#x} is not a boot_params address");
        return false;
    };
    // boot.rst: boot_flag 0xAA55 at 0x1fe, "HdrS" at 0x202.
    if le16(bp, BOOT_FLAG) != 0xaa55 || &bp[HEADER..HEADER + 4] != b"HdrS" {
        let _ = writeln!(out, "payload: FAIL no setup header (boot_flag/HdrS) at rsi {rsi:#x}");
        return false;
    }
    let cmdline_at = u64::from(le32(bp, CMD_LINE_PTR)) | u64::from(le32(bp, EXT_CMD_LINE_PTR)) << 32;
    let initrd = u64::from(le32(bp, RAMDISK_IMAGE)) | u64::from(le32(bp, EXT_RAMDISK_IMAGE)) << 32;
    let initrd_len = u64::from(le32(bp, RAMDISK_SIZE)) | u64::from(le32(bp, EXT_RAMDISK_SIZE)) << 32;
    let _ = write!(out, "payload: boot_params ok");
    match phys(cmdline_at, 256).filter(|_| in_ram(bp, cmdline_at, 256)) {
        Some(c) => {
            let s = c.iter().position(|&b| b == 0).map_or(c, |n| &c[..n]);
            let _ = write!(out, " cmdline=\"{}\"", core::str::from_utf8(s).unwrap_or("<not utf-8>"));
        }
        None => {
            let _ = write!(out, " cmdline=<none>");
        }
    }
    let _ = write!(out, " initrd={initrd:#x}+{initrd_len:#x}");
    let mut next = le64(bp, SETUP_DATA);
    let mut nodes = 0;
    let mut seed = None;
    while next != 0 && nodes < 16 {
        let Some(hdr) = phys(next, 16).filter(|_| in_ram(bp, next, 16)) else {
            let _ = write!(out, " setup_data@{next:#x}=<not in RAM>");
            break;
        };
        let (link, ty, len) = (le64(hdr, 0), le32(hdr, 8), le32(hdr, 12));
        nodes += 1;
        if ty == SETUP_RNG_SEED && seed.is_none() {
            let shown = len.min(64) as usize;
            seed = phys(next + 16, shown).filter(|_| in_ram(bp, next + 16, shown as u64)).map(|s| (next, s));
        }
        next = link;
    }
    let _ = write!(out, " setup_data nodes={nodes}");
    if let Some((at, bytes)) = seed {
        let _ = write!(out, " rng-seed@{at:#x}=");
        hex(out, bytes);
    }
    let _ = writeln!(out);
    true
}

#[unsafe(no_mangle)]
extern "C" fn payload_main(st: &EntryState) -> ! {
    let mut out = Com1;
    let rsi = st.gpr[4];
    let intr = (st.rflags >> 9) & 1;
    let lma = (st.efer >> 10) & 1;
    let _ = writeln!(
        out,
        "payload: entered rsi={rsi:#x} cs={:#x} ds={:#x} es={:#x} ss={:#x} if={intr} cr0={:#x} cr4={:#x} efer.lma={lma}",
        st.cs, st.ds, st.es, st.ss, st.cr0, st.cr4
    );
    let _ = write!(out, "payload: regs");
    for (name, v) in GPR_NAMES.iter().zip(st.gpr) {
        let _ = write!(out, " {name}={v:#x}");
    }
    let _ = writeln!(out, " rflags={:#x}", st.rflags);
    // What the purgatory's engine and seed choices depend on.
    let (l1, l7) = (__cpuid(1), __cpuid_count(7, 0));
    let bit = |reg: u32, n: u32| (reg >> n) & 1;
    let _ = writeln!(
        out,
        "payload: cpuid sha-ni={} rdrand={} rdseed={}",
        bit(l7.ebx, 29),
        bit(l1.ecx, 30),
        bit(l7.ebx, 18)
    );
    let mut ok = true;
    // boot.rst 64-bit protocol: 64-bit mode with paging on, CS = __BOOT_CS,
    // DS = ES = SS = __BOOT_DS, interrupts disabled.
    if st.cr0 & 0x8000_0001 != 0x8000_0001 || lma != 1 {
        let _ = writeln!(out, "payload: FAIL not in long mode with paging on");
        ok = false;
    }
    if st.cs != BOOT_CS || st.ds != BOOT_DS || st.es != BOOT_DS || st.ss != BOOT_DS {
        let _ = writeln!(out, "payload: FAIL selectors are not __BOOT_CS/__BOOT_DS");
        ok = false;
    }
    if intr != 0 {
        let _ = writeln!(out, "payload: FAIL interrupts enabled");
        ok = false;
    }
    ok &= check_gdt(&mut out, &st.gdtr);
    // The purgatory's contract (docs/abi.md): every general register but
    // %rsi (boot_params), %rax (the entry it jumped through) and %rsp
    // cleared.
    for (i, (name, v)) in GPR_NAMES.iter().zip(st.gpr).enumerate() {
        if ![0, 4, 7].contains(&i) && v != 0 {
            let _ = writeln!(out, "payload: FAIL {name} is not zero");
            ok = false;
        }
    }
    ok &= check_boot_params(&mut out, rsi);
    let _ = writeln!(out, "payload: {}", if ok { "checks passed" } else { "checks FAILED" });
    exit(if ok { EXIT_PASSED } else { EXIT_FAILED })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Com1, "payload: panic");
    exit(EXIT_PANIC)
}
