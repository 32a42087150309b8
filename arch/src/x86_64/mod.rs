//! x86_64 purgatory support: entry, self-relocation and our own GDT
//! (`entry`), CPU features, TSC and entropy (`cpu`), I/O ports (`port`),
//! SSE state and SHA-NI (`sha_ni`), the hand-off (`handoff`) and the
//! interface the shared purgatory code calls (`machine`).

pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod machine;
mod mem;
pub mod port;
pub mod sha_ni;
