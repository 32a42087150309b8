//! CPU lists in sysfs (/sys/devices/system/cpu/possible, present,
//! online): "0-3,8,10-11" (Documentation/ABI/testing/sysfs-devices-system-cpu;
//! lib/bitmap-str.c bitmap_parselist is the kernel's reader).

use std::path::Path;

use super::{read_text, ReadError};

/// The most CPUs a list may name (include/linux/threads.h NR_CPUS is at
/// most 8192; a larger list is not a real machine's).
const MAX_CPUS: u64 = 1 << 13;

/// How many CPUs a list names.
pub fn count(list: &str) -> Result<u64, String> {
    let mut n = 0u64;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| format!("{part:?} is not a CPU number or range"));
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if last < first || last >= MAX_CPUS {
            return Err(format!("{part:?} is not a range of CPU numbers below {MAX_CPUS}"));
        }
        n += last - first + 1;
        if n > MAX_CPUS {
            return Err(format!("more than {MAX_CPUS} CPUs"));
        }
    }
    if n == 0 {
        return Err("an empty CPU list".into());
    }
    Ok(n)
}

/// The CPUs the running kernel may ever bring up
/// (/sys/devices/system/cpu/possible).
pub fn possible_cpus(sys_root: &Path) -> Result<u64, ReadError> {
    let path = sys_root.join("devices/system/cpu/possible");
    let text = read_text(&path)?;
    count(&text).map_err(|why| ReadError { path, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_count_their_cpus() {
        assert_eq!(count("0\n"), Ok(1));
        assert_eq!(count("0-3"), Ok(4));
        assert_eq!(count("0-3,8,10-11\n"), Ok(7));
        assert!(count("").unwrap_err().contains("empty"));
        assert!(count("3-1").unwrap_err().contains("not a range"));
        assert!(count("0-99999").unwrap_err().contains("below 8192"));
        assert!(count("x").unwrap_err().contains("not a CPU number"));
    }
}
