//! Data-cache maintenance by virtual address (identity-mapped, so also by
//! physical address), to the point of coherency.

/// Smallest D-cache line in bytes: 4 << CTR_EL0.DminLine (Arm ARM D19.2.34).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reads an identification register.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

macro_rules! by_line {
    ($name:ident, $op:literal, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(start: u64, len: u64) {
            let line = dcache_line();
            let mut addr = start & !(line - 1);
            let end = start.saturating_add(len);
            while addr < end {
                // SAFETY: cache maintenance by VA on memory the caller owns;
                // it changes no architectural memory contents except as the
                // operation's definition says.
                unsafe { core::arch::asm!(concat!("dc ", $op, ", {0}"), in(reg) addr, options(nostack)) };
                addr += line;
            }
            // SAFETY: barrier only.
            unsafe { core::arch::asm!("dsb sy", options(nostack)) };
        }
    };
}

by_line!(
    invalidate_to_poc,
    "ivac",
    "Invalidate `[start, start+len)`: drop stale lines before caches are \
     enabled over memory written with them off (as head.S does)."
);
by_line!(
    clean_invalidate_to_poc,
    "civac",
    "Clean and invalidate `[start, start+len)` to PoC: leave nothing of \
     ours in the caches for a kernel that starts with them off \
     (booting.rst: the image must be cleaned to the PoC)."
);
