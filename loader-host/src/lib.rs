//! rkexec loader library: embeds the purgatory, parses kernel images, lays
//! out segments, computes digests, and calls kexec_load / kexec_file_load.

pub mod args;
pub mod console;
pub mod elfcore;
pub mod layout;
pub mod plan;
pub mod purgatory_image;
pub mod report;
pub mod sources;
pub mod syscall;
