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
//! println!("{}", loader_host::report::table(&plan));
//! // loader_host::syscall::load(&plan)?;  // needs CAP_SYS_BOOT
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Module map, in the order one load passes through them:
//!
//! - [`request`]: what is asked; [`planner`]: the flow, step by step;
//! - [`system`]: the machine (/proc/iomem, usable memory, firmware memory
//!   map, memory hotplug, /proc/kcore, crash notes, console, entropy);
//! - [`input`] + [`image`]: the kernel file, read once, and its format
//!   (which decides the [`Arch`]);
//! - [`crash`]: kdump's crash ranges and elfcorehdr;
//! - [`arch`]: per-architecture placement and boot data — [`dtb_boot`] with
//!   [`dtb`] for arm64 and riscv64, [`arch::x86_64::boot_params`] for
//!   x86_64 — all through the crate-internal `placement` primitive;
//! - [`digest`] (segment SHA-256) and [`purgatory_image`] (the embedded
//!   purgatories and their parameter block);
//! - [`validate`]: every rule kexec_load and the purgatory apply, checked on
//!   the finished plan;
//! - [`plan`](mod@plan) / [`report`]: the result, its table and JSON;
//! - [`syscall`]: kexec_load, kexec_file_load ([`file_load`] plans what it
//!   gets), reboot, and what each errno means.
//!
//! [`bytes`], [`cmdline`] and [`range`] are the helpers they share:
//! bounds-checked little-endian reads, the command-line rules, physical
//! address ranges.

#![warn(missing_docs)]

pub mod arch;
pub mod arch_spec;
pub mod boot_params;
pub mod bytes;
pub mod cmdline;
pub mod crash;
pub mod digest;
pub mod dtb;
pub mod error;
pub mod file_load;
pub mod image;
pub mod input;
pub(crate) mod kernel_file;
pub(crate) mod placement;
pub mod plan;
pub mod planner;
pub mod purgatory_image;
pub mod range;
pub mod report;
pub mod request;
pub mod syscall;
pub mod system;
pub mod uapi;
pub mod validate;

#[cfg(test)]
pub(crate) mod testing;

pub use arch_spec::Arch;
pub use error::LoadError;
pub use plan::Plan;
pub use planner::plan;
pub use request::{CmdlineChoice, CrashOptions, OnFailure, Request};
pub use system::SystemSources;
