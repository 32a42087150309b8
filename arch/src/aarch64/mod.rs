//! AArch64 purgatory support. Entry and relocation (`entry`), exception
//! level and CPU features (`cpu`), caches (`cache`), the MMU (`mmu`),
//! SHA-256 instructions (`sha2_ce`), the final hand-off (`handoff`) and the
//! interface the shared purgatory code calls (`machine`).

pub mod cache;
pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod machine;
mod mem;
pub mod mmu;
pub mod sha2_ce;
