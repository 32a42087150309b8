//! Architecture code for the purgatory. Everything unsafe or written in
//! assembly lives here, in small functions commented with the rule they
//! implement. The page-table builder is portable and unit-tested on the host.
//!
//! Every architecture module has a `machine` module offering the same
//! names (`NAME`, `uart`, `sha256_engine`, `entropy`, `boot_cpu_id`,
//! `Clock`, `reset_method`, `reset`, `halt`, `image_mem_size`), re-exported
//! here as [`machine`]: the purgatory's shared `Platform` implementation
//! calls only those. Porting to a new architecture is a module here
//! (entry, hand-off, `machine`) plus a short glue file in the purgatory.
#![cfg_attr(not(test), no_std)]

pub mod pagetable;
pub mod sha256_compress;
pub mod strtab;

/// Where cargo keeps this crate's sources (its CARGO_MANIFEST_DIR), for the
/// loader's build script: it rebuilds the purgatory image from them when
/// the crates come from a package rather than the repository
/// (docs/packaging.md). A constant and not `links` metadata because a
/// build script of this crate would change the image's bytes (cargo folds
/// it into the crate's metadata hash, hence the symbol hashes the linker
/// lays functions out by). Host builds only.
#[cfg(not(any(target_os = "none", rkx_bare_metal)))]
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[cfg(any(target_os = "none", rkx_bare_metal))]
pub mod uart;

#[cfg(any(target_os = "none", rkx_bare_metal))]
pub mod lowmem;

/// A SHA-256 block-compression function (FIPS 180-4 §6.2.2): the same
/// shape as `kexec_purgatory::sha256::CompressFn`.
pub type Compress = fn(state: &mut [u32; 8], blocks: &[[u8; 64]]);

/// The kinds of console UART a parameter block can name (docs/abi.md
/// `console.kind`), independent of the ABI's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    Pl011,
    Ns16550Mmio32,
    /// x86 I/O port: exists only on x86.
    Ns16550Io,
    /// 16550 with byte registers (reg-shift 0, reg-io-width 1).
    Ns16550Mmio8,
    /// riscv64: the SBI console (DBCN or the legacy putchar).
    Sbi,
    /// ppc64le: the PAPR hypervisor's virtual terminal (H_PUT_TERM_CHAR).
    #[cfg(target_arch = "powerpc64")]
    Hvterm,
}

/// The PSCI conduit the loader found in the DTB's `/psci/method`. Only
/// aarch64 uses it; other architectures reset without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    None,
    Hvc,
    Smc,
}

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
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::machine;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86_64;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use x86_64::machine;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub mod riscv64;
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
pub use riscv64::machine;

// ppc64le: built for powerpc64le-unknown-linux-gnu without its C library;
// `rkx_bare_metal` (.cargo/config.toml) marks that build as the image.
#[cfg(all(target_arch = "powerpc64", target_endian = "little", rkx_bare_metal))]
pub mod ppc64le;
#[cfg(all(target_arch = "powerpc64", target_endian = "little", rkx_bare_metal))]
pub use ppc64le::machine;

/// The x86_64 purgatory's SHA-NI assembly is plain SysV code: on an x86_64
/// host the very same file is assembled here, so tests can check it
/// against the `sha2` crate and the benchmark can time it on real hardware
/// (the QEMU guests' TCG CPUs lack SHA-NI).
#[cfg(all(target_arch = "x86_64", not(target_os = "none")))]
pub mod host_sha_ni {
    extern crate std;

    core::arch::global_asm!(include_str!("x86_64/sha256_ni.s"), k = sym crate::sha256_compress::K);

    unsafe extern "C" {
        fn rkx_sha256_ni(state: *mut u32, data: *const u8, nblocks: usize);
    }

    /// The purgatory's SHA-NI compression function, or None when this CPU
    /// lacks SHA-NI/SSE4.1.
    pub fn compress_fn() -> Option<crate::Compress> {
        fn run(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
            // SAFETY: compress_fn() returned this only after the CPUID check;
            // the pointers cover the slices.
            unsafe { rkx_sha256_ni(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
        }
        (std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1"))
            .then_some(run as crate::Compress)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod sha_ni_on_host {
    use super::host_sha_ni::compress_fn;

    /// The engine the x86_64 purgatory picks on this CPU (x86_64/cpu.rs:
    /// SHA-NI when CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] and
    /// CPUID.01H:ECX.SSE4_1[bit 19] are set, else the portable engine) must
    /// follow the raw CPUID bits and agree with the sha2 crate. On a CPU
    /// with SHA-NI that runs the assembly; on one without, it checks that
    /// the assembly is not offered and the fallback is right.
    #[test]
    fn engine_chosen_by_cpuid_matches_the_sha2_crate() {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        // CPUID exists on every x86_64 CPU (a safe intrinsic there); an
        // out-of-range leaf returns data, not a fault (Intel SDM vol. 2A).
        let (leaf1, leaf7) = (__cpuid(1), __cpuid_count(7, 0));
        let cpuid_has_sha_ni = leaf7.ebx & (1 << 29) != 0 && leaf1.ecx & (1 << 19) != 0;
        let offered = compress_fn();
        assert_eq!(offered.is_some(), cpuid_has_sha_ni, "SHA-NI offered iff CPUID reports SHA and SSE4.1");
        let (name, compress) = match offered {
            Some(ni) => ("SHA-NI assembly", ni),
            None => ("portable", crate::sha256_compress::compress_portable as crate::Compress),
        };
        let data: Vec<u8> = (0..64 * 37).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for nblocks in [0usize, 1, 2, 5, 37] {
            let init =
                [0x6a09e667u32, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
            let mut ours = init;
            let blocks: Vec<[u8; 64]> = data[..nblocks * 64].chunks_exact(64).map(|c| c.try_into().unwrap()).collect();
            compress(&mut ours, &blocks);
            let mut theirs = init;
            sha2::block_api::compress256(&mut theirs, &blocks);
            assert_eq!(ours, theirs, "{name} engine, {nblocks} blocks");
        }
    }
}
