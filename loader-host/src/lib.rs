//! rkexec loader library: embeds the purgatory, parses kernel images, lays
//! out segments, computes digests, and calls kexec_load / kexec_file_load.

pub mod purgatory_image;
