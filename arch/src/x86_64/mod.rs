//! x86_64 purgatory support: entry, self-relocation and our own GDT
//! (`entry`), CPU features, TSC and entropy (`cpu`), SSE state and SHA-NI
//! (`sha_ni`), the 8250 console (`uart`) and the hand-off (`handoff`).

pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod sha_ni;
pub mod uart;
