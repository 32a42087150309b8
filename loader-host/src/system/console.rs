//! Which UART the purgatory prints on: `--serial ttyXXX` through sysfs
//! (serial_core's iomem_base/io_type/port attributes), as kexec-tools does,
//! or a console the architecture's description names (riscv64's SBI
//! `hvc0`, x86's I/O ports).

use std::fmt;
use std::path::Path;

use kexec_purgatory::abi::{ConsoleDesc, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_PL011};

use crate::arch_spec::{Arch, NamedConsole};

/// serial_core `io_type` values (include/uapi/linux/serial.h UPIO_*).
const UPIO_PORT: u32 = 0;
const UPIO_MEM: u32 = 2;
const UPIO_MEM32: u32 = 3;

/// Why `--serial TTY` gives the purgatory no console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleError {
    /// A serial_core attribute of the tty cannot be read (no such tty, or
    /// not a UART).
    Missing {
        /// The tty as given, without /dev/.
        tty: String,
        /// The attribute file (/sys/class/tty/TTY/...).
        file: String,
        /// The read error.
        err: String,
    },
    /// An attribute holds no number.
    Parse {
        /// The attribute file.
        file: String,
        /// What it holds.
        value: String,
    },
    /// A UART the purgatory has no driver for (or a register layout it
    /// does not support).
    Unsupported {
        /// The tty as given, without /dev/.
        tty: String,
        /// What is unsupported.
        why: String,
    },
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Missing { tty, file, err } => {
                write!(f, "--serial {}: cannot read {file}: {err}", crate::escape::text(tty))
            }
            ConsoleError::Parse { file, value } => {
                write!(f, "{file}: '{}' is not a number", crate::escape::text(value))
            }
            ConsoleError::Unsupported { tty, why } => write!(f, "--serial {}: {why}", crate::escape::text(tty)),
        }
    }
}

impl std::error::Error for ConsoleError {}

fn read_attr(sys_root: &Path, tty: &str, attr: &str) -> Result<u64, ConsoleError> {
    let file = sys_root.join("class/tty").join(tty).join(attr);
    let text = super::read_text(&file).map_err(|e| ConsoleError::Missing {
        tty: tty.into(),
        file: crate::escape::path(&file).to_string(),
        err: e.why,
    })?;
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| ConsoleError::Parse { file: crate::escape::path(&file).to_string(), value: t.into() })
}

/// The console descriptor for `--serial SPEC` when loading an `arch`
/// kernel: a name the architecture's description gives (a hypervisor or
/// firmware console such as riscv64's SBI `hvc0`, or a fixed port name),
/// an `0x<port>` I/O port where the architecture has them (kexec-tools'
/// x86 form), else a UART in sysfs.
pub fn for_serial(sys_root: &Path, spec: &str, arch: Arch) -> Result<ConsoleDesc, ConsoleError> {
    let name = spec.trim_start_matches("/dev/");
    if arch.io_port_serial {
        if let Some(port) = io_port(name) {
            return Ok(ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: port });
        }
    }
    let named = arch.named_consoles.iter().find(|c| if c.prefix { name.starts_with(c.tty) } else { name == c.tty });
    let desc = |c: &NamedConsole| ConsoleDesc { kind: c.kind, reserved: 0, base: c.base };
    match named {
        Some(c) if !c.sysfs_first => return Ok(desc(c)),
        Some(c) => return Ok(from_sysfs(sys_root, name).unwrap_or(desc(c))),
        None => {}
    }
    if name.starts_with("hvc") {
        return Err(ConsoleError::Unsupported {
            tty: name.into(),
            why: format!("a hypervisor console the {arch} purgatory cannot drive"),
        });
    }
    from_sysfs(sys_root, name)
}

/// kexec-tools' x86 `--serial=0x<hex>` form (kexec/arch/x86_64/
/// kexec-x86_64.c arch_process_options): an 8250 at that I/O port.
fn io_port(spec: &str) -> Option<u64> {
    let hex = spec.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok().filter(|p| *p < 65536)
}

/// The console descriptor for `tty` (e.g. "ttyAMA0", "/dev/ttyS0").
pub fn from_sysfs(sys_root: &Path, tty: &str) -> Result<ConsoleDesc, ConsoleError> {
    let tty = tty.trim_start_matches("/dev/");
    let unsupported = |why: &str| ConsoleError::Unsupported { tty: tty.into(), why: why.into() };
    if tty.starts_with("ttyAMA") {
        // amba-pl011: always MMIO.
        let base = read_attr(sys_root, tty, "iomem_base")?;
        if base == 0 {
            return Err(unsupported("has no MMIO base (iomem_base is 0)"));
        }
        return Ok(ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base });
    }
    if tty.starts_with("ttyS") {
        let io_type = read_attr(sys_root, tty, "io_type")? as u32;
        return match io_type {
            // 16550 with byte registers (QEMU virt riscv's uart0).
            UPIO_MEM => {
                let shift = read_attr(sys_root, tty, "iomem_reg_shift")?;
                if shift != 0 {
                    return Err(unsupported("8-bit MMIO UART with reg-shift other than 0 is not supported"));
                }
                let base = read_attr(sys_root, tty, "iomem_base")?;
                Ok(ConsoleDesc { kind: CONSOLE_8250_MMIO8, reserved: 0, base })
            }
            UPIO_MEM32 => {
                let shift = read_attr(sys_root, tty, "iomem_reg_shift")?;
                if shift != 2 {
                    return Err(unsupported("32-bit MMIO UART with reg-shift other than 2 is not supported"));
                }
                let base = read_attr(sys_root, tty, "iomem_base")?;
                Ok(ConsoleDesc { kind: CONSOLE_8250_MMIO32, reserved: 0, base })
            }
            UPIO_PORT => {
                let port = read_attr(sys_root, tty, "port")?;
                Ok(ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: port })
            }
            other => {
                Err(unsupported(&format!("8250 io_type {other} is not supported (need MMIO8, MMIO32 or I/O port)")))
            }
        };
    }
    Err(unsupported("only ttyAMA* (PL011) and ttyS* (8250) UARTs are read from sysfs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kexec_purgatory::abi::CONSOLE_SBI;

    fn fake_tty(root: &Path, tty: &str, attrs: &[(&str, &str)]) {
        let d = root.join("class/tty").join(tty);
        std::fs::create_dir_all(&d).unwrap();
        for (k, v) in attrs {
            std::fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
    }

    #[test]
    fn pl011_and_8250_from_sysfs() {
        let root = std::env::temp_dir().join(format!("rkx-console-{}", std::process::id()));
        fake_tty(&root, "ttyAMA0", &[("iomem_base", "0x9000000"), ("io_type", "2")]);
        fake_tty(&root, "ttyS0", &[("io_type", "0"), ("port", "0x3F8"), ("iomem_base", "0x0")]);
        fake_tty(&root, "ttyS1", &[("io_type", "3"), ("iomem_reg_shift", "2"), ("iomem_base", "0x1c28000")]);
        fake_tty(&root, "ttyS2", &[("io_type", "2"), ("iomem_base", "0x10000000"), ("iomem_reg_shift", "0")]);
        fake_tty(&root, "ttyS3", &[("io_type", "7"), ("iomem_base", "0x1c28000")]);
        fake_tty(&root, "ttyS4", &[("io_type", "2"), ("iomem_base", "0x1c28000"), ("iomem_reg_shift", "1")]);
        assert_eq!(
            from_sysfs(&root, "ttyAMA0").unwrap(),
            ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base: 0x900_0000 }
        );
        assert_eq!(from_sysfs(&root, "/dev/ttyS0").unwrap().kind, CONSOLE_8250_IO);
        assert_eq!(from_sysfs(&root, "ttyS0").unwrap().base, 0x3f8);
        assert_eq!(from_sysfs(&root, "ttyS1").unwrap().base, 0x1c2_8000);
        assert_eq!(
            from_sysfs(&root, "ttyS2").unwrap(),
            ConsoleDesc { kind: CONSOLE_8250_MMIO8, reserved: 0, base: 0x1000_0000 }
        );
        assert!(from_sysfs(&root, "ttyS3").unwrap_err().to_string().contains("io_type 7 is not supported"));
        assert!(from_sysfs(&root, "ttyS4").unwrap_err().to_string().contains("reg-shift other than 0"));
        let arch = |name| crate::arch::by_name(name).unwrap();
        assert_eq!(for_serial(&root, "hvc0", arch("riscv64")).unwrap().kind, CONSOLE_SBI);
        let e = for_serial(&root, "/dev/hvc0", arch("arm64")).unwrap_err().to_string();
        assert!(e.contains("the arm64 purgatory cannot drive"), "{e}");
        assert_eq!(for_serial(&root, "ttyS2", arch("riscv64")).unwrap().kind, CONSOLE_8250_MMIO8);
        // x86: an I/O port, kexec-tools' fixed names when sysfs has none.
        assert_eq!(
            for_serial(&root, "0x2e8", arch("x86_64")).unwrap(),
            ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: 0x2e8 }
        );
        assert_eq!(for_serial(&root, "ttyS1", arch("x86_64")).unwrap().base, 0x1c2_8000, "sysfs first");
        fake_tty(&root, "ttyS1", &[]);
        std::fs::remove_dir_all(root.join("class/tty/ttyS1")).unwrap();
        assert_eq!(for_serial(&root, "ttyS1", arch("x86_64")).unwrap().base, 0x2f8, "kexec-tools' name");
        assert!(for_serial(&root, "0x2e8", arch("arm64")).is_err(), "no I/O ports on arm64");
        let missing = from_sysfs(&root, "ttyAMA9").unwrap_err().to_string();
        assert!(missing.starts_with("--serial ttyAMA9: cannot read") && missing.contains("iomem_base"), "{missing}");
        assert!(from_sysfs(&root, "ttyUSB0").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
