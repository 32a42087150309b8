//! Portable purgatory logic: everything that decides whether the new kernel
//! may be entered, written as plain `no_std` Rust so that the host's
//! `cargo test` exercises it. Architecture code (entry, MMU, caches,
//! hand-off) lives in the `purgatory-arch` crate; `src/main.rs` glues the two
//! into the image.
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod bytes;
pub mod checks;
pub mod console_lines;
pub mod elf;
pub mod fdt;
pub mod fdt_patch;
pub mod hart_isa;
// ppc64le's DTB reader: the host (tests, loaders) and the ppc64le image
// only; the other images (`target_os = "none"`) are built without it.
#[cfg(not(target_os = "none"))]
pub mod ppc_dt;
pub mod report;
pub mod seed;
pub mod setup_data;
pub mod sha256;
pub mod validate;
pub mod verify;
