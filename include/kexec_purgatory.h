/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * rkexec purgatory ABI, version 1 (image header) / version 1 (parameters).
 *
 * The C mirror of purgatory/src/abi.rs; docs/abi.md is the prose contract
 * (its "For loaders" section walks through a kexec_load with this header).
 * All fields are little-endian and the structures have no padding: on a
 * little-endian host a loader may memcpy them (the rkx_layout_ok_*
 * typedefs below check the sizes in C99 too). A loader:
 *   1. gets the flat image (`rkexec purgatory --arch ARCH --output FILE`)
 *      and checks struct rkx_image_header at offset 0: magic, abi_version
 *      1, header_size 96, arch, flags bit 0, image_size = the file's length,
 *      mem_size >= image_size, entry and parameter block inside the image;
 *   2. copies the image into a buffer, writes struct rkx_params at
 *      header.params_offset (the rest of params_size stays zero);
 *   3. loads it as one kexec segment at any 4 KiB-aligned physical address,
 *      bufsz = image_size, memsz = mem_size rounded up to 4 KiB (kexec_load
 *      zero-fills past bufsz; _start zeroes .bss again);
 *   4. makes load address + header.entry_offset the kexec entry point.
 * ppc64le adds one step before 3: the entry point is a 256-byte block
 * (RKX_PPC64LE_ENTRY_BLOCK_SIZE at header.entry_offset) that the kernel's
 * kexec_sequence copies to physical 0; the loader fills its bytes
 * RKX_PPC64LE_ENTRY_FILL_START..0xff with the new kernel's own bytes at
 * those offsets (kexec-tools does the same), and may set the run_at_load
 * word at RKX_PPC64LE_RUN_AT_LOAD_OFFSET (1 for a crash kernel).
 */
#ifndef KEXEC_PURGATORY_H
#define KEXEC_PURGATORY_H

#include <stdint.h>

#define RKX_IMAGE_MAGIC          "RKXPURG\0" /* 8 bytes, NUL included */
#define RKX_ABI_VERSION          1u
#define RKX_HEADER_OFFSET        0u
#define RKX_IMAGE_LOAD_ALIGN     4096u

#define RKX_ARCH_AARCH64         1u
#define RKX_ARCH_X86_64          2u
#define RKX_ARCH_RISCV64         3u
#define RKX_ARCH_PPC64LE         4u

/* ppc64le: the entry block at header.entry_offset (256-byte aligned).
 * Word 0 is the purgatory's branch; bytes FILL_START..BLOCK_SIZE are the
 * loader's: copy the new kernel's bytes at the same offsets there (its
 * __secondary_hold at 0x60 holds the other CPUs kexec releases to 0x60;
 * its __run_at_load word at 0x5c, which the purgatory copies back into the
 * kernel after verification: keep it, or write 1 for a crash kernel that
 * must run where it was loaded). The purgatory refuses to enter a kernel
 * whose first 256 bytes (0x5c..0x5f aside) differ from the block. */
#define RKX_PPC64LE_ENTRY_BLOCK_SIZE   0x100u
#define RKX_PPC64LE_ENTRY_FILL_START   4u
#define RKX_PPC64LE_RUN_AT_LOAD_OFFSET 0x5cu

#define RKX_IMAGE_FLAG_POSITION_INDEPENDENT (1u << 0)

struct rkx_image_header {
	uint32_t code0;          /* branch to the entry point */
	uint32_t code1;
	uint8_t  magic[8];       /* RKX_IMAGE_MAGIC */
	uint32_t abi_version;    /* RKX_ABI_VERSION */
	uint32_t header_size;    /* 96 */
	uint32_t arch;           /* RKX_ARCH_* */
	uint32_t flags;          /* RKX_IMAGE_FLAG_* */
	uint64_t image_size;     /* bytes in the flat image file */
	uint64_t mem_size;       /* bytes of memory needed from the load address */
	uint64_t entry_offset;   /* entry point, from the load address */
	uint64_t params_offset;  /* struct rkx_params, from the load address */
	uint64_t params_size;    /* bytes reserved for it */
	uint64_t reserved[3];     /* zero */
};

#define RKX_PARAMS_MAGIC         0x50584b52u /* "RKXP" little-endian */
#define RKX_PARAMS_VERSION       1u
#define RKX_MAX_SEGMENTS         16u  /* kexec_load takes 16 with the purgatory's
                                       * own: list at most 15 there */

/* rkx_params.flags */
#define RKX_PARAM_REFRESH_SEEDS     (1u << 0)  /* refresh the loader's /chosen kaslr-seed,
                                                 * rng-seed (x86: SETUP_RNG_SEED) in place
                                                 * after hashing; a DTB without /chosen is
                                                 * then refused */
#define RKX_PARAM_SET_BOOT_CPU      (1u << 1)  /* set FDT boot_cpuid_phys to the CPU the
                                                 * purgatory runs on, after hashing */
#define RKX_PARAM_SKIP_DIGESTS      (1u << 2)  /* kexec-tools -i: bounds/structure checks only */
#define RKX_PARAM_DEBUG_SOFT_SHA256 (1u << 16) /* never use SHA instructions */
#define RKX_PARAM_DEBUG_CACHES_OFF  (1u << 17) /* hash with MMU/caches off */

/* rkx_segment.flags */
#define RKX_SEGMENT_EXCLUDED     (1u << 0)  /* structure-check, do not hash */

/* rkx_segment.kind */
#define RKX_KIND_OTHER           0u
#define RKX_KIND_KERNEL          1u
#define RKX_KIND_INITRD          2u
#define RKX_KIND_DTB             3u
#define RKX_KIND_ELFCOREHDR      4u
#define RKX_KIND_BOOT_PARAMS     5u
#define RKX_KIND_BACKUP          6u  /* ppc64le kdump only (refused elsewhere): after
                                      * every segment verified, and before the DTB
                                      * patch, the purgatory copies physical [0, len)
                                      * here, as kexec-tools' crashdump_backup.c; load
                                      * it zero-filled and hash the zeros. At most one,
                                      * not excluded; [0, len) must overlap no segment,
                                      * not the purgatory, no MMIO console (docs/abi.md
                                      * "The kdump backup (ppc64le)") */

/* rkx_console.kind */
#define RKX_CONSOLE_NONE         0u
/* base is the CPU physical address (after every parent's `ranges`); the
 * UART must already be set up (no baud/line setting is done); kind 0 means
 * a silent purgatory, refusals included. */
#define RKX_CONSOLE_PL011        1u  /* arm,pl011 MMIO */
#define RKX_CONSOLE_8250_MMIO32  2u  /* 16550, 32-bit registers: reg-shift 2, reg-io-width 4 */
#define RKX_CONSOLE_8250_IO      3u  /* 16550 at an x86 I/O port (x86_64 only, <= 0xffff) */
#define RKX_CONSOLE_8250_MMIO8   4u  /* 16550, 8-bit registers: reg-shift 0 */
#define RKX_CONSOLE_SBI          5u  /* riscv64: SBI DBCN / legacy putchar, base ignored */
#define RKX_CONSOLE_HVTERM       6u  /* ppc64le under PAPR (pseries): H_PUT_TERM_CHAR to the
                                      * vterm number in base (the vty node's reg; QEMU:
                                      * 0x71000000); not memory, any value */

/* rkx_params.on_failure */
#define RKX_ON_FAILURE_HALT      0u
#define RKX_ON_FAILURE_RESET     1u

/* rkx_params.psci_conduit: aarch64's way to reset on failure (the DTB's
 * /psci/method); used only with RKX_ON_FAILURE_RESET, which without a
 * conduit says so and halts */
#define RKX_PSCI_NONE            0u
#define RKX_PSCI_HVC             1u
#define RKX_PSCI_SMC             2u

struct rkx_segment {
	uint64_t mem;            /* physical address */
	uint64_t len;            /* bytes from mem the purgatory hashes, inside one
	                          * loaded kexec segment (<= its memsz; bytes past
	                          * the segment's bufsz are kexec's zeros) */
	uint8_t  sha256[32];     /* SHA-256 of those len bytes */
	uint32_t kind;           /* RKX_KIND_* */
	uint32_t flags;          /* RKX_SEGMENT_* */
};

struct rkx_console {
	uint32_t kind;           /* RKX_CONSOLE_* */
	uint32_t reserved;
	uint64_t base;           /* MMIO base, I/O port or (hvterm) vterm number */
};

struct rkx_params {
	uint32_t magic;          /* RKX_PARAMS_MAGIC */
	uint32_t version;        /* RKX_PARAMS_VERSION */
	uint32_t size;           /* sizeof(struct rkx_params) as the loader knew it:
	                          * >= 1024 and <= header.params_size */
	uint32_t flags;          /* RKX_PARAM_* */
	uint64_t kernel_entry;   /* physical address jumped to, inside a KERNEL
	                          * segment: aarch64/riscv64 base + text_offset,
	                          * x86_64 load address + 0x200, ppc64le the
	                          * kernel's first byte (its first 256 bytes must
	                          * be in the segment) */
	uint64_t boot_data;      /* boot data the kernel receives: DTB on aarch64 (x0),
	                          * riscv64 (a1) and ppc64le (r3), boot_params on
	                          * x86_64 (rsi);
	                          * its kind is the kind of the segment holding it
	                          * (RKX_KIND_DTB / RKX_KIND_BOOT_PARAMS); 0: none */
	struct rkx_console console;
	uint32_t on_failure;     /* RKX_ON_FAILURE_* */
	uint32_t psci_conduit;   /* RKX_PSCI_* */
	uint32_t nr_segments;    /* <= RKX_MAX_SEGMENTS */
	uint32_t reserved0;
	struct rkx_segment segments[RKX_MAX_SEGMENTS];
	uint64_t reserved[8];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct rkx_image_header) == 96, "rkx_image_header layout");
_Static_assert(sizeof(struct rkx_segment) == 56, "rkx_segment layout");
_Static_assert(sizeof(struct rkx_params) == 1024, "rkx_params layout");
#endif
/* The same check for C99: a negative array size if the layout drifts. */
typedef char rkx_layout_ok_header[sizeof(struct rkx_image_header) == 96 ? 1 : -1];
typedef char rkx_layout_ok_segment[sizeof(struct rkx_segment) == 56 ? 1 : -1];
typedef char rkx_layout_ok_params[sizeof(struct rkx_params) == 1024 ? 1 : -1];

#endif /* KEXEC_PURGATORY_H */
