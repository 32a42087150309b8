//! rkexec's loader: plans a kexec_load image — kernel, initrd, boot data,
//! elfcorehdr and the embedded verifying purgatory — checks it against
//! every rule the kernel and the purgatory would apply, and loads it.
//!
//! One load is three calls: build a [`Request`], [`plan()`] it against a
//! machine ([`SystemSources`]: the running one, or another machine's /proc
//! and /sys), then [`syscall::load`] the [`Plan`] and
//! [`syscall::kexec_reboot`] (or load it as a crash kernel with
//! [`Request::crash`] set). Every refusal is a [`LoadError`] naming the
//! file, field or option and the rule, returned before anything is loaded.
//!
//! ```no_run
//! use loader_host::{plan, Request, SystemSources};
//! let mut req = Request::new("/boot/vmlinuz");
//! req.initrds.push("/boot/initrd.img".into());
//! let plan = plan(&req, &SystemSources::running())?;
//! println!("{}", loader_host::render::table(&plan));
//! // loader_host::syscall::load(&plan)?;  // needs CAP_SYS_BOOT
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Module map, in the order one load passes through them (each imports
//! only modules before it; `tests/module_graph.rs` keeps it so):
//!
//! - [`request`]: what is asked; [`planner`]: the flow, step by step;
//! - [`system`]: the machine (/proc/iomem, usable memory, firmware memory
//!   map, memory hotplug, /proc/kcore, crash notes, console, entropy);
//! - [`input`] + [`image`]: the kernel file, read once, and its format,
//!   which names the architecture by its ELF machine;
//! - [`arch_spec`]: what an architecture is, as data ([`Arch`]), and
//!   [`arch`]: one module per architecture behind one table, placing the
//!   segments and building the boot data ([`dtb`] for the DTB
//!   architectures, [`boot_params`] for x86_64) through the crate-internal
//!   `placement` primitive;
//! - [`crash`]: kdump's crash ranges and elfcorehdr;
//! - [`digest`] (segment SHA-256) and [`purgatory_image`] (the embedded
//!   purgatories and their parameter block);
//! - [`preflight`]: every rule kexec_load and the purgatory apply, checked
//!   on the finished plan;
//! - [`plan`](mod@plan) / [`render`]: the result, its table and JSON;
//! - [`syscall`]: kexec_load, kexec_file_load ([`file_load`] plans what it
//!   gets), reboot, and what each errno means; [`uapi`]: the kexec flags.
//!
//! [`fields`], [`cmdline`] and [`range`] are the helpers they share:
//! bounds-checked fixed-width reads, the command-line rules, physical
//! address ranges.

#![warn(missing_docs)]

pub mod arch;
pub mod arch_spec;
pub mod boot_params;
pub mod cmdline;
pub mod crash;
pub mod digest;
pub mod dtb;
pub mod error;
pub mod fields;
pub mod file_load;
pub mod image;
pub mod input;
pub(crate) mod kernel_file;
pub(crate) mod placement;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod purgatory_image;
pub mod range;
pub mod render;
pub mod request;
pub mod syscall;
pub mod system;
pub mod uapi;

#[cfg(test)]
pub(crate) mod testing;

pub use arch_spec::Arch;
pub use error::LoadError;
pub use plan::Plan;
pub use planner::plan;
pub use request::{CmdlineChoice, CrashOptions, Hotplug, OnFailure, Request};
pub use system::SystemSources;
