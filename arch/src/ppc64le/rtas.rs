//! Run-Time Abstraction Services (PAPR RTAS) calls, entered the way the
//! kernel enters RTAS (arch/powerpc/kernel/rtas_entry.S `enter_rtas`):
//! `rfid` to `linux,rtas-entry` with MSR = ME | RI (32-bit, big-endian,
//! real mode), r3 = the physical address of a big-endian `rtas_args` block
//! (token, nargs, nret, args, rets: asm/rtas-types.h), r4 =
//! `linux,rtas-base`, LR = where RTAS returns with `blr`, still 32-bit and
//! big-endian. So the block and our return path lie below 4 GiB, and the
//! first instructions of the return path are encoded big-endian; they
//! switch back to little-endian 64-bit mode with `rfid`. RTAS is not
//! relied on to keep any register of ours: they are saved in memory and
//! found again PC-relatively (as the kernel's rtas_return_loc reloads its
//! state from the PACA).
//!
//! This is the portable path (PowerVM, QEMU, any PAPR firmware). On QEMU
//! the RTAS code at `linux,rtas-entry` is itself one hypercall
//! (`hcall::KVMPPC_H_RTAS`, QEMU's pc-bios/vof/entry.S `hv_rtas`).

core::arch::global_asm!(
    r#"
    .section .text.rtas, "ax"
    .balign 4
    // rkx_rtas_call(r3 = args, r4 = rtas base, r5 = rtas entry, r6 = save
    // area of 24 doublewords): returns RTAS's r3 when RTAS returns.
    .global rkx_rtas_call
rkx_rtas_call:
    mflr    %r0
    std     %r0, 0(%r6)
    std     %r1, 8(%r6)
    std     %r2, 16(%r6)
    mfmsr   %r7
    std     %r7, 24(%r6)
    mfcr    %r0
    std     %r0, 32(%r6)
    std     %r13, 40(%r6)
    std     %r14, 48(%r6)
    std     %r15, 56(%r6)
    std     %r16, 64(%r6)
    std     %r17, 72(%r6)
    std     %r18, 80(%r6)
    std     %r19, 88(%r6)
    std     %r20, 96(%r6)
    std     %r21, 104(%r6)
    std     %r22, 112(%r6)
    std     %r23, 120(%r6)
    std     %r24, 128(%r6)
    std     %r25, 136(%r6)
    std     %r26, 144(%r6)
    std     %r27, 152(%r6)
    std     %r28, 160(%r6)
    std     %r29, 168(%r6)
    std     %r30, 176(%r6)
    std     %r31, 184(%r6)
    bcl     20, 31, 1f
1:  mflr    %r8
    addi    %r8, %r8, .Lrtas_return - 1b
    mtlr    %r8
    // EE and RI off (mtmsrd L = 1 sets just those two) before SRR0/1 hold
    // the RTAS entry, as enter_rtas does.
    li      %r0, 0
    mtmsrd  %r0, 1
    mtsrr0  %r5
    // SRR1 = ME | RI, plus HV where we have it (bare metal).
    li      %r8, 0x1002
    srdi    %r9, %r7, 60
    andi.   %r9, %r9, 1
    sldi    %r9, %r9, 60
    or      %r8, %r8, %r9
    mtsrr1  %r8
    rfid

    // RTAS returns here with blr: 32-bit, big-endian. These words are
    // big-endian encodings: MSR |= LE | SF, then rfid to .Lrtas_back.
.Lrtas_return:
    .byte   0x7d, 0x60, 0x00, 0xa6  // mfmsr  r11
    .byte   0x61, 0x6b, 0x00, 0x01  // ori    r11, r11, 1 (LE)
    .byte   0x39, 0x80, 0xff, 0xff  // li     r12, -1
    .byte   0x79, 0x8c, 0x00, 0x04  // rldicr r12, r12, 0, 0 (SF)
    .byte   0x7d, 0x6b, 0x63, 0x78  // or     r11, r11, r12
    .byte   0x42, 0x9f, 0x00, 0x05  // bcl    20, 31, $+4
    .byte   0x7d, 0x88, 0x02, 0xa6  // mflr   r12
    .byte   0x39, 0x8c, 0x00, 0x14  // addi   r12, r12, 20 (.Lrtas_back)
    .byte   0x7d, 0x9a, 0x03, 0xa6  // mtsrr0 r12
    .byte   0x7d, 0x7b, 0x03, 0xa6  // mtsrr1 r11
    .byte   0x4c, 0x00, 0x00, 0x24  // rfid
.Lrtas_back:
    // Little-endian, 64-bit again. Our TOC from our own address, then
    // everything else from the save area.
    mr      %r5, %r3
    bcl     20, 31, 2f
2:  mflr    %r6
    addis   %r2, %r6, (.TOC. - 2b)@ha
    addi    %r2, %r2, (.TOC. - 2b)@l
    addis   %r6, %r2, rkx_rtas_save@toc@ha
    addi    %r6, %r6, rkx_rtas_save@toc@l
    ld      %r7, 24(%r6)
    mtmsrd  %r7                      // FP/VEC/VSX, RI as before
    isync
    ld      %r0, 0(%r6)
    mtlr    %r0
    ld      %r1, 8(%r6)
    ld      %r2, 16(%r6)
    ld      %r0, 32(%r6)
    mtcr    %r0
    ld      %r13, 40(%r6)
    ld      %r14, 48(%r6)
    ld      %r15, 56(%r6)
    ld      %r16, 64(%r6)
    ld      %r17, 72(%r6)
    ld      %r18, 80(%r6)
    ld      %r19, 88(%r6)
    ld      %r20, 96(%r6)
    ld      %r21, 104(%r6)
    ld      %r22, 112(%r6)
    ld      %r23, 120(%r6)
    ld      %r24, 128(%r6)
    ld      %r25, 136(%r6)
    ld      %r26, 144(%r6)
    ld      %r27, 152(%r6)
    ld      %r28, 160(%r6)
    ld      %r29, 168(%r6)
    ld      %r30, 176(%r6)
    ld      %r31, 184(%r6)
    extsw   %r3, %r5
    blr
"#
);

unsafe extern "C" {
    fn rkx_rtas_call(args: *mut u32, base: u64, entry: u64, save: *mut u64) -> i64;
}

/// Registers saved across an RTAS call (found again PC-relatively through
/// the TOC: the assembly names this symbol).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)] // the assembly's name for it
static mut rkx_rtas_save: [u64; 24] = [0; 24];

/// The `rtas_args` block: token, nargs, nret, then the arguments and the
/// returns, all big-endian 32-bit (asm/rtas-types.h).
static mut RTAS_ARGS: [u32; 16] = [0; 16];

/// Where RTAS is and the token of one of its calls, from the DTB's /rtas
/// node (`linux,rtas-base`, `linux,rtas-entry`, the call's property).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtas {
    pub base: u64,
    pub entry: u64,
}

impl Rtas {
    /// Call RTAS `token` with no arguments and one return (`system-reboot`,
    /// PAPR "System Reboot"): its status, if RTAS returns at all.
    ///
    /// # Safety
    /// `base` and `entry` must be firmware's instantiated RTAS (below 4
    /// GiB), the purgatory image must lie below 4 GiB (RTAS runs 32-bit
    /// and returns into it, reading the block in it), and this must run
    /// in a pseries partition in real mode.
    pub unsafe fn call0(&self, token: u32) -> i32 {
        let args = core::ptr::addr_of_mut!(RTAS_ARGS).cast::<u32>();
        // SAFETY: our own static block, 16 words; the saved registers go
        // to our own static area; per the caller's contract for the rest.
        unsafe {
            for (i, w) in [token, 0, 1, u32::MAX].into_iter().enumerate() {
                args.add(i).write_volatile(w.to_be());
            }
            rkx_rtas_call(args, self.base, self.entry, core::ptr::addr_of_mut!(rkx_rtas_save).cast());
            u32::from_be(args.add(3).read_volatile()) as i32
        }
    }
}

/// Is `[start, start + len)` below 4 GiB, where 32-bit RTAS can reach it?
pub fn below_4g(start: u64, len: u64) -> bool {
    start.checked_add(len).is_some_and(|end| end <= 1 << 32)
}
