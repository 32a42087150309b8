//! rkexec loader library: embeds the purgatory, parses kernel images, lays
//! out segments, computes digests, and calls kexec_load / kexec_file_load.

pub mod args;
pub mod arm64;
pub mod bzimage;
pub mod cli;
pub mod console;
pub mod dtb_edit;
pub mod elfcore;
pub mod handover_dtb;
pub mod iomem;
pub mod kcore;
pub mod kernel_image;
pub mod layout;
pub mod memory_hotplug;
pub mod plan;
pub mod purgatory_image;
pub mod report;
pub mod sources;
pub mod syscall;
pub mod x86_64;
pub mod x86_boot_params;
