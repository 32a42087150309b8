//! The running kernel's live device tree, `/proc/device-tree`: a directory
//! per node and a file per property (drivers/of/kobj.c). Read two ways:
//!
//! - [`read_tree`]: the whole tree as a model, the way kexec-tools' fs2dt
//!   (kexec/fs2dt.c) rebuilds a DTB from it on powerpc, where
//!   /sys/firmware/fdt is only the blob the kernel booted with (its
//!   /chosen and /memreserve/ stale, CPUs and memory added since missing);
//! - [`firmware_ranges`]: the memory facts the running kernel publishes
//!   only there (powerpc's arch/powerpc/kexec/core.c `kexec_setup` adds
//!   `linux,kernel-end` and `linux,crashkernel-base/size` to /chosen;
//!   RTAS and OPAL regions), which its /proc/iomem does not list.
//!
//! Every read is bounded (file sizes, their total, nesting, entries) and
//! refuses what is not a directory or a regular file; nothing here trusts
//! what it reads.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

use super::iomem::FirmwareRange;
use super::ReadError;
use crate::range::Range;

/// The most bytes of property values read from the whole tree (QEMU's
/// pseries tree is 25 KiB; a large LPAR's ibm,dynamic-memory a few MiB).
pub const TREE_LIMIT: u64 = 16 << 20;
/// The most nodes and properties read.
pub const ENTRY_LIMIT: usize = 1 << 20;
/// Deepest nesting accepted (the root is 1), as the purgatory's walker
/// and Linux's unflattening (drivers/of/fdt.c) accept.
pub const MAX_DEPTH: usize = kexec_purgatory::fdt::MAX_DEPTH;

struct Budget {
    bytes: u64,
    entries: usize,
}

fn err(path: &Path, why: impl Into<String>) -> ReadError {
    ReadError { path: path.to_path_buf(), why: why.into() }
}

/// A property file: opened without following a FIFO's writer
/// (O_NONBLOCK), checked to be a regular file on the open descriptor, read
/// to at most the budget left.
fn read_property(path: &Path, budget: &mut Budget) -> Result<Vec<u8>, ReadError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| err(path, e.to_string()))?;
    let meta = f.metadata().map_err(|e| err(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(err(path, "is not a regular file (a device-tree property is one)"));
    }
    let mut out = Vec::new();
    f.take(budget.bytes.saturating_add(1)).read_to_end(&mut out).map_err(|e| err(path, e.to_string()))?;
    let n = out.len() as u64;
    if n > budget.bytes {
        return Err(err(path, format!("the device tree holds more than {TREE_LIMIT} bytes of properties")));
    }
    budget.bytes -= n;
    Ok(out)
}

fn read_node(dir: &Path, name: &str, depth: usize, budget: &mut Budget) -> Result<DeviceTreeNode, ReadError> {
    if depth > MAX_DEPTH {
        return Err(err(dir, format!("nodes nest deeper than {MAX_DEPTH} levels")));
    }
    let mut entries: Vec<(String, std::fs::FileType)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))? {
        let e = e.map_err(|e| err(dir, e.to_string()))?;
        let name = e.file_name().into_string().map_err(|n| err(dir, format!("the name {n:?} is not UTF-8")))?;
        let kind = e.file_type().map_err(|e| err(dir, e.to_string()))?;
        budget.entries = budget.entries.checked_sub(1).ok_or_else(|| err(dir, "too many nodes and properties"))?;
        entries.push((name, kind));
    }
    // kexec-tools' fs2dt sorts with alphasort: the same order every time.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut node = DeviceTreeNode::new_unchecked(name);
    for (entry, kind) in entries {
        let path = dir.join(&entry);
        if kind.is_dir() {
            node.add_child(read_node(&path, &entry, depth + 1, budget)?);
        } else if kind.is_file() {
            let value = read_property(&path, budget)?;
            // The kernel makes `name` from the node's name (drivers/of/
            // base.c); a flattened tree does not carry it (fs2dt drops it).
            if entry != "name" {
                node.add_property(DeviceTreeProperty::new_unchecked(&entry, value));
            }
        } else {
            return Err(err(&path, "is neither a node (directory) nor a property (regular file)"));
        }
    }
    Ok(node)
}

/// The tree under `dir` (/proc/device-tree) as a model, with no
/// reservation entries (a live tree has none: the loader adds what the
/// next kernel must keep).
pub fn read_tree(dir: &Path) -> Result<DeviceTree, ReadError> {
    let meta = std::fs::metadata(dir).map_err(|e| err(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(err(dir, "is not a directory"));
    }
    let mut budget = Budget { bytes: TREE_LIMIT, entries: ENTRY_LIMIT };
    let mut tree = DeviceTree::new();
    tree.root = read_node(dir, "", 1, &mut budget)?;
    Ok(tree)
}

/// A big-endian number property of 4 or 8 bytes under `dir`; None when the
/// file does not exist.
fn number(dir: &Path, node: &str, prop: &str) -> Result<Option<u64>, ReadError> {
    let path = dir.join(node).join(prop);
    if !path.exists() {
        return Ok(None);
    }
    let mut budget = Budget { bytes: 8, entries: 1 };
    let v = read_property(&path, &mut budget)?;
    match v.len() {
        4 => Ok(Some(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])))),
        8 => Ok(Some(u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]))),
        n => Err(err(&path, format!("{n} bytes: not a 32- or 64-bit number"))),
    }
}

/// The running kernel's image up to `linux,kernel-end`: kexec_load refuses
/// a segment below it (arch/powerpc/kexec/core_64.c
/// machine_kexec_prepare, -ETXTBSY), as kexec-tools' ppc64 loader
/// excludes it (kexec/arch/ppc64/kexec-ppc64.c get_devtree_details).
pub const KERNEL_END: &str = "Kernel image (/chosen/linux,kernel-end)";
/// RTAS, instantiated by the firmware and kept by every kernel after
/// (`/rtas` `linux,rtas-base` + `rtas-size`).
pub const RTAS: &str = "RTAS (/rtas)";
/// OPAL's runtime on powernv (`/ibm,opal` `opal-base-address` +
/// `opal-runtime-size`).
pub const OPAL: &str = "OPAL (/ibm,opal)";

/// What `dir` (/proc/device-tree) says of memory that /proc/iomem leaves
/// out: the running kernel's image, the crash reservation, RTAS and OPAL
/// (kexec-tools' ppc64 get_devtree_details reads the same properties).
/// Nothing when the tree or the properties are absent (every architecture
/// but powerpc publishes none of them).
pub fn firmware_ranges(dir: &Path) -> Result<Vec<FirmwareRange>, ReadError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut add = |start: u64, len: u64, name: &'static str, what: &str| -> Result<(), ReadError> {
        let range = Range::checked(start, len)
            .ok_or_else(|| err(&dir.join(what), format!("{start:#x} + {len:#x} wraps the address space")))?;
        if !range.is_empty() {
            out.push(FirmwareRange { range, name });
        }
        Ok(())
    };
    if let Some(end) = number(dir, "chosen", "linux,kernel-end")? {
        add(0, end, KERNEL_END, "chosen/linux,kernel-end")?;
    }
    if let (Some(base), Some(size)) =
        (number(dir, "chosen", "linux,crashkernel-base")?, number(dir, "chosen", "linux,crashkernel-size")?)
    {
        add(base, size, super::iomem::CRASH_KERNEL, "chosen/linux,crashkernel-base")?;
    }
    if let (Some(base), Some(size)) = (number(dir, "rtas", "linux,rtas-base")?, number(dir, "rtas", "rtas-size")?) {
        add(base, size, RTAS, "rtas/linux,rtas-base")?;
    }
    if let (Some(base), Some(size)) =
        (number(dir, "ibm,opal", "opal-base-address")?, number(dir, "ibm,opal", "opal-runtime-size")?)
    {
        add(base, size, OPAL, "ibm,opal/opal-base-address")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtoolkit::{Node, Property};

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rkx-dt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(dir: &Path, path: &str, bytes: &[u8]) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn a_live_tree_reads_as_a_model_without_name_properties() {
        let d = temp("tree");
        put(&d, "name", b"\0");
        put(&d, "#address-cells", &2u32.to_be_bytes());
        put(&d, "chosen/name", b"chosen\0");
        put(&d, "chosen/bootargs", b"console=hvc0\0");
        put(&d, "vdevice/vty@71000000/reg", &0x7100_0000u32.to_be_bytes());
        let t = read_tree(&d).unwrap();
        let chosen = t.root.children().find(|c| c.name() == "chosen").unwrap();
        assert!(chosen.properties().any(|p| p.name() == "bootargs"));
        assert!(!chosen.properties().any(|p| p.name() == "name"), "the kernel's pseudo-property is dropped");
        assert!(t.root.properties().any(|p| p.name() == "#address-cells"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn what_is_no_property_is_refused() {
        let d = temp("fifo");
        put(&d, "chosen/bootargs", b"x\0");
        let fifo = d.join("chosen/stdout-path");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_tree(&d).unwrap_err().to_string();
        assert!(
            e.contains("stdout-path") && e.contains("is neither a node (directory) nor a property (regular file)"),
            "{e}"
        );
        std::fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
        let e = read_tree(&d).unwrap_err().to_string();
        assert!(e.contains("stdout-path"), "a link is not followed: {e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let d = temp("deep");
        let mut p = d.clone();
        for _ in 0..70 {
            p = p.join("n");
        }
        std::fs::create_dir_all(&p).unwrap();
        let e = read_tree(&d).unwrap_err().to_string();
        assert!(e.contains("deeper than 64"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn powerpc_chosen_facts_become_memory_ranges() {
        let d = temp("facts");
        put(&d, "chosen/linux,kernel-end", &0x28a_0000u64.to_be_bytes());
        put(&d, "chosen/linux,crashkernel-base", &0x2000_0000u64.to_be_bytes());
        put(&d, "chosen/linux,crashkernel-size", &0x2000_0000u64.to_be_bytes());
        put(&d, "rtas/linux,rtas-base", &0x2fff_0000u32.to_be_bytes());
        put(&d, "rtas/rtas-size", &0x83cu32.to_be_bytes());
        let f = firmware_ranges(&d).unwrap();
        assert_eq!(
            f,
            vec![
                FirmwareRange { range: Range::new(0, 0x28a_0000), name: KERNEL_END },
                FirmwareRange { range: Range::new(0x2000_0000, 0x4000_0000), name: "Crash kernel" },
                FirmwareRange { range: Range::new(0x2fff_0000, 0x2fff_083c), name: RTAS },
            ]
        );
        put(&d, "rtas/rtas-size", &[1, 2, 3]);
        assert!(firmware_ranges(&d).unwrap_err().to_string().contains("3 bytes: not a 32- or 64-bit number"));
        assert_eq!(firmware_ranges(&d.join("absent")).unwrap(), vec![]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
