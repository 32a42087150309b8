//! Architecture code for the purgatory. Everything unsafe or written in
//! assembly lives here, in small functions commented with the rule they
//! implement. The page-table builder is portable and unit-tested on the host.
#![cfg_attr(not(test), no_std)]

pub mod pagetable;

/// Serial-console text: every `\n` goes out as `\r\n`.
pub fn for_each_crlf(bytes: &[u8], mut put: impl FnMut(u8)) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86_64;
