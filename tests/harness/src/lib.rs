//! Bare-metal QEMU harness for the purgatories.
//!
//! A [`Scenario`] places the purgatory, a stand-in kernel (tests/payload)
//! and synthetic initrd/DTB (x86_64: boot_params)/elfcorehdr segments in a
//! guest (`qemu-system-aarch64 -M virt`, `qemu-system-riscv64 -M virt`,
//! `qemu-system-x86_64 -M pc` or `q35`) with `-device loader`, fills the
//! parameter block the way a loader would, optionally corrupts memory after
//! the digests were taken, starts the CPU at the purgatory (or at a stub
//! that plays firmware: a VHE stub, an M-mode stub, OpenSBI and a launcher,
//! the x86 launcher ROM) and reports what the guest printed and how the
//! run really ended, asked of QEMU over QMP: the payload's exit
//! (semihosting, sifive_test, isa-debug-exit), a reset (SHUTDOWN event,
//! reason guest-reset, under -no-reboot), or the vCPU's PC inside the
//! purgatory's `purgatory_halt` loop; anything else runs into the deadline.

pub mod checks;
pub mod fixtures;
pub mod qemu;
pub mod scenario;

pub use qemu::Outcome;
pub use scenario::{Arch, Cell, Scenario, SegmentSpec};
