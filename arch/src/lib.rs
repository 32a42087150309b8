//! Architecture code for the purgatory. Everything unsafe or written in
//! assembly lives here, in small functions commented with the rule they
//! implement. The page-table builder is portable and unit-tested on the host.
#![cfg_attr(not(test), no_std)]

pub mod pagetable;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86_64;
