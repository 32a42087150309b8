//! rkexec's loader: plans a kexec_load image — kernel, initrd, boot data,
//! elfcorehdr and the embedded verifying purgatory — checks it against
//! every rule the kernel and the purgatory would apply, and loads it.
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
//! `request` (what is asked) → `planner` (the flow) → `system` (the
//! machine: iomem, memory, firmware, crash notes, console) → `input` +
//! `image` (the kernel file and its format) → `crash` (kdump) → `arch::*`
//! (per-architecture placement and boot data, through `placement`, with
//! `dtb` / `arch::x86_64::boot_params`) → `digest` → `validate` → `plan` /
//! `report` → `syscall`.

pub mod arch;
pub mod bytes;
pub mod cmdline;
pub mod crash;
pub mod digest;
pub mod dtb;
pub mod dtb_boot;
pub mod error;
pub mod file_load;
pub mod image;
pub mod input;
pub mod placement;
pub mod plan;
pub mod planner;
pub mod purgatory_image;
pub mod range;
pub mod report;
pub mod request;
pub mod syscall;
pub mod system;
pub mod validate;

#[cfg(test)]
pub(crate) mod testing;

pub use arch::Arch;
pub use error::LoadError;
pub use plan::Plan;
pub use planner::plan;
pub use request::{CmdlineChoice, CrashOptions, OnFailure, Request};
pub use system::SystemSources;
