//! include/kexec_purgatory.h must describe the same layout as abi.rs: a C
//! program compiled against it prints every offset and constant, and this
//! test compares them with the Rust definitions.

use std::mem::{offset_of, size_of};
use std::process::Command;

use kexec_purgatory::abi::*;

const PROGRAM: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include "kexec_purgatory.h"
#define P(x) printf(#x " %lu\n", (unsigned long)(x))
int main(void) {
    P(sizeof(struct rkx_image_header)); P(offsetof(struct rkx_image_header, magic));
    P(offsetof(struct rkx_image_header, image_size)); P(offsetof(struct rkx_image_header, mem_size));
    P(offsetof(struct rkx_image_header, entry_offset)); P(offsetof(struct rkx_image_header, params_offset));
    P(offsetof(struct rkx_image_header, params_size));
    P(sizeof(struct rkx_params)); P(offsetof(struct rkx_params, kernel_entry));
    P(offsetof(struct rkx_params, boot_data)); P(offsetof(struct rkx_params, console));
    P(offsetof(struct rkx_params, on_failure)); P(offsetof(struct rkx_params, nr_segments));
    P(offsetof(struct rkx_params, segments)); P(offsetof(struct rkx_params, reserved));
    P(sizeof(struct rkx_segment)); P(offsetof(struct rkx_segment, sha256)); P(offsetof(struct rkx_segment, kind));
    P(RKX_PARAMS_MAGIC); P(RKX_PARAMS_VERSION); P(RKX_ABI_VERSION); P(RKX_SEGMENT_EXCLUDED);
    P(RKX_PARAM_REFRESH_SEEDS); P(RKX_PARAM_SET_BOOT_CPU); P(RKX_PARAM_SKIP_DIGESTS); P(RKX_PARAM_DEBUG_SOFT_SHA256); P(RKX_PARAM_DEBUG_CACHES_OFF);
    P(RKX_KIND_ELFCOREHDR); P(RKX_KIND_BOOT_PARAMS); P(RKX_CONSOLE_8250_IO); P(RKX_CONSOLE_8250_MMIO8); P(RKX_CONSOLE_SBI); P(RKX_PSCI_SMC);
    P(RKX_ARCH_PPC64LE); P(RKX_CONSOLE_HVTERM); P(RKX_PPC64LE_ENTRY_BLOCK_SIZE); P(RKX_PPC64LE_ENTRY_FILL_START);
    P(RKX_PPC64LE_RUN_AT_LOAD_OFFSET); P(RKX_KIND_BACKUP);
    return 0;
}
"#;

#[test]
fn c_header_matches_rust_abi() {
    let dir = std::env::temp_dir().join(format!("rkx-c-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, PROGRAM).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../include");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I", include, "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(status.success(), "the C header does not compile");
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let got: std::collections::HashMap<&str, u64> =
        text.lines().filter_map(|l| l.rsplit_once(' ')).map(|(k, v)| (k, v.parse().unwrap())).collect();
    let want: [(&str, u64); 39] = [
        ("sizeof(struct rkx_image_header)", size_of::<ImageHeader>() as u64),
        ("offsetof(struct rkx_image_header, magic)", offset_of!(ImageHeader, magic) as u64),
        ("offsetof(struct rkx_image_header, image_size)", offset_of!(ImageHeader, image_size) as u64),
        ("offsetof(struct rkx_image_header, mem_size)", offset_of!(ImageHeader, mem_size) as u64),
        ("offsetof(struct rkx_image_header, entry_offset)", offset_of!(ImageHeader, entry_offset) as u64),
        ("offsetof(struct rkx_image_header, params_offset)", offset_of!(ImageHeader, params_offset) as u64),
        ("offsetof(struct rkx_image_header, params_size)", offset_of!(ImageHeader, params_size) as u64),
        ("sizeof(struct rkx_params)", size_of::<PurgatoryParams>() as u64),
        ("offsetof(struct rkx_params, kernel_entry)", offset_of!(PurgatoryParams, kernel_entry) as u64),
        ("offsetof(struct rkx_params, boot_data)", offset_of!(PurgatoryParams, boot_data) as u64),
        ("offsetof(struct rkx_params, console)", offset_of!(PurgatoryParams, console) as u64),
        ("offsetof(struct rkx_params, on_failure)", offset_of!(PurgatoryParams, on_failure) as u64),
        ("offsetof(struct rkx_params, nr_segments)", offset_of!(PurgatoryParams, nr_segments) as u64),
        ("offsetof(struct rkx_params, segments)", offset_of!(PurgatoryParams, segments) as u64),
        ("offsetof(struct rkx_params, reserved)", offset_of!(PurgatoryParams, reserved) as u64),
        ("sizeof(struct rkx_segment)", size_of::<SegmentDesc>() as u64),
        ("offsetof(struct rkx_segment, sha256)", offset_of!(SegmentDesc, sha256) as u64),
        ("offsetof(struct rkx_segment, kind)", offset_of!(SegmentDesc, kind) as u64),
        ("RKX_PARAMS_MAGIC", PARAMS_MAGIC as u64),
        ("RKX_PARAMS_VERSION", PARAMS_VERSION as u64),
        ("RKX_ABI_VERSION", ABI_VERSION as u64),
        ("RKX_SEGMENT_EXCLUDED", SEGMENT_FLAG_EXCLUDED as u64),
        ("RKX_PARAM_REFRESH_SEEDS", PARAM_FLAG_REFRESH_SEEDS as u64),
        ("RKX_PARAM_SET_BOOT_CPU", PARAM_FLAG_SET_BOOT_CPU as u64),
        ("RKX_PARAM_SKIP_DIGESTS", PARAM_FLAG_SKIP_DIGESTS as u64),
        ("RKX_PARAM_DEBUG_SOFT_SHA256", PARAM_FLAG_DEBUG_SOFT_SHA256 as u64),
        ("RKX_PARAM_DEBUG_CACHES_OFF", PARAM_FLAG_DEBUG_CACHES_OFF as u64),
        ("RKX_KIND_ELFCOREHDR", SegmentKind::ElfCoreHdr as u64),
        ("RKX_KIND_BOOT_PARAMS", SegmentKind::BootParams as u64),
        ("RKX_CONSOLE_8250_IO", CONSOLE_8250_IO as u64),
        ("RKX_CONSOLE_8250_MMIO8", CONSOLE_8250_MMIO8 as u64),
        ("RKX_CONSOLE_SBI", CONSOLE_SBI as u64),
        ("RKX_PSCI_SMC", PSCI_CONDUIT_SMC as u64),
        ("RKX_ARCH_PPC64LE", ARCH_PPC64LE as u64),
        ("RKX_CONSOLE_HVTERM", CONSOLE_HVTERM as u64),
        ("RKX_PPC64LE_ENTRY_BLOCK_SIZE", PPC64LE_ENTRY_BLOCK_SIZE),
        ("RKX_PPC64LE_ENTRY_FILL_START", PPC64LE_ENTRY_FILL_START),
        ("RKX_PPC64LE_RUN_AT_LOAD_OFFSET", PPC64LE_RUN_AT_LOAD_OFFSET),
        ("RKX_KIND_BACKUP", SegmentKind::Backup as u64),
    ];
    for (name, value) in want {
        assert_eq!(got.get(name).copied(), Some(value), "{name}: C says {:?}, Rust says {value}", got.get(name));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
