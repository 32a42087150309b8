//! Bare-metal QEMU harness for the aarch64 purgatory.
//!
//! A [`Scenario`] places the purgatory, a stand-in kernel (tests/payload)
//! and synthetic initrd/DTB/elfcorehdr segments in a `qemu-system-aarch64
//! -M virt` guest with `-device loader`, fills the parameter block the way
//! a loader would, optionally corrupts memory after the digests were taken,
//! starts the CPU at the purgatory (or at a VHE stub) and reports what the
//! guest printed and how the run really ended, asked of QEMU over QMP: the
//! payload's semihosting exit, a PSCI reset (SHUTDOWN event, reason
//! guest-reset, under -no-reboot), or the vCPU's PC inside the purgatory's
//! `purgatory_halt` loop; anything else runs into the deadline.

pub mod checks;
pub mod fixtures;
pub mod qemu;
pub mod scenario;

pub use qemu::Outcome;
pub use scenario::{Arch, Cell, Scenario, SegmentSpec};
