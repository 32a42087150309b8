//! ppc64le purgatory support (64-bit little-endian POWER, ISA 2.07 /
//! POWER8 or later, as ppc64le Linux itself requires): the header and
//! entry block, self-relocation (`entry`), processor registers and `darn`
//! (`cpu`), PAPR hypercalls and the hvterm console (`hcall`), RTAS
//! (`rtas`), the vector-crypto SHA-256 engine (`sha256_vcrypto`) and the
//! hand-off (`handoff`); `machine` is what the shared glue calls.
//!
//! There is no MMU or cache code: kexec enters us in real mode (MSR IR =
//! DR = 0) and real-mode accesses are cacheable and coherent
//! (docs/abi.md, "What the purgatory does (ppc64le)").

pub mod cpu;
pub mod entry;
pub mod handoff;
pub mod hcall;
pub mod machine;
mod mem;
pub mod rtas;
pub mod sha256_vcrypto;
