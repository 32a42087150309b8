//! riscv64 purgatory support: entry, self-relocation and the trap guard
//! (`entry`), SBI calls (`sbi`), CSRs and
//! entropy (`cpu`), the Zknh SHA-256 compression (`sha256_zknh`) and the
//! hand-off (`handoff`); `machine` is what the shared glue calls.
//!
//! There is no MMU or cache code: the kernel's relocation code entered us
//! with satp = 0 (Bare), and on RISC-V cacheability is a property of the
//! physical memory attributes (PMAs), not of the translation (privileged
//! spec, "Physical Memory Attributes"): RAM is cached with the MMU off, and
//! the platform keeps harts' and devices' views coherent.

pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod machine;
mod mem;
pub mod sbi;
pub mod sha256_zknh;
