//! AArch64 purgatory support. Entry and relocation (`entry`), exception
//! level and CPU features (`cpu`), caches (`cache`), the MMU (`mmu`), the
//! console UART (`uart`), SHA-256 instructions (`sha2_ce`) and the final
//! hand-off (`handoff`).

pub mod cache;
pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod mmu;
pub mod sha2_ce;
pub mod uart;
