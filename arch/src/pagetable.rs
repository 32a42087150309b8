//! Identity-map builder for the AArch64 VMSAv8-64 translation regime with a
//! 4 KiB granule and 48-bit input addresses (Arm ARM D8.2 "Translation
//! table descriptor formats"; lookup starts at level 0, T0SZ = 16).
//!
//! Portable: it fills tables from a caller-supplied pool and interprets
//! table addresses as identity (virtual == physical), which holds in the
//! purgatory and for host tests alike.

/// One translation table: 512 eight-byte descriptors, 4 KiB aligned.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
pub struct Table(pub [u64; 512]);

impl Table {
    pub const ZERO: Self = Self([0; 512]);
}

/// Memory types, indexes into MAIR (see [`MAIR_VALUE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Normal, inner/outer write-back read/write-allocate, inner shareable.
    Normal,
    /// Device-nGnRE, never executable.
    Device,
}

/// MAIR_ELx: Attr0 = 0xff (Normal WB RWA), Attr1 = 0x04 (Device-nGnRE).
pub const MAIR_VALUE: u64 = 0xff | (0x04 << 8);

const PAGE: u64 = 4096;
const DESC_VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3); clear = block.
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
/// Lower attributes (D8.3.2): AttrIndx[4:2], SH[9:8], AF[10].
const ATTR_INDX_SHIFT: u64 = 2;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
/// Output address bits [47:12].
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Log2 of the bytes one entry maps at each level (4 KiB granule).
const fn entry_shift(level: usize) -> u32 {
    39 - 9 * level as u32
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The pool ran out of tables.
    OutOfTables,
    /// Range not page aligned, empty, or above 48 bits.
    BadRange,
    /// The range overlaps an existing mapping of another memory type.
    Conflict,
    /// A table descriptor points outside the pool (the tables were
    /// changed behind the builder's back).
    BadTable,
}

/// Builds an identity map inside a pool of tables. Table 0 is the root
/// (level 0) table, whose address goes to TTBR0.
pub struct IdentityMap<'a> {
    pool: &'a mut [Table],
    used: usize,
    /// Execute-never bits for Device memory: PXN|UXN (bits 53, 54) at EL1
    /// and VHE EL2; only XN (bit 54) at nVHE EL2, where bit 53 is RES0.
    device_xn: u64,
}

impl<'a> IdentityMap<'a> {
    /// `pool` must not be empty; its contents are cleared.
    pub fn new(pool: &'a mut [Table], device_xn: u64) -> Result<Self, MapError> {
        let root = pool.first_mut().ok_or(MapError::OutOfTables)?;
        *root = Table::ZERO;
        Ok(Self { pool, used: 1, device_xn })
    }

    /// Physical address of the root table.
    pub fn root_addr(&self) -> u64 {
        self.pool.as_ptr() as u64
    }

    /// Tables used so far.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Bytes of the pool used so far (for cache maintenance).
    pub fn pool_range(&self) -> (u64, u64) {
        (self.root_addr(), (self.used as u64) * PAGE)
    }

    fn attrs(&self, ty: MemType) -> u64 {
        match ty {
            MemType::Normal => (0 << ATTR_INDX_SHIFT) | SH_INNER | AF,
            MemType::Device => (1 << ATTR_INDX_SHIFT) | AF | self.device_xn,
        }
    }

    /// Map `[start, start+len)`, rounded out to pages, as `ty`.
    pub fn map(&mut self, start: u64, len: u64, ty: MemType) -> Result<(), MapError> {
        let begin = start & !(PAGE - 1);
        let end = start.checked_add(len).ok_or(MapError::BadRange)?.checked_add(PAGE - 1).ok_or(MapError::BadRange)?
            & !(PAGE - 1);
        if len == 0 || end > (1 << 48) {
            return Err(MapError::BadRange);
        }
        let attrs = self.attrs(ty);
        self.map_level(0, 0, begin, end, attrs)
    }

    fn alloc(&mut self) -> Result<usize, MapError> {
        let idx = self.used;
        let table = self.pool.get_mut(idx).ok_or(MapError::OutOfTables)?;
        *table = Table::ZERO;
        self.used += 1;
        Ok(idx)
    }

    /// The pool index a table descriptor points at.
    fn table_index(&self, desc: u64) -> Result<usize, MapError> {
        let off = (desc & OA_MASK).checked_sub(self.root_addr()).ok_or(MapError::BadTable)?;
        let idx = usize::try_from(off / PAGE).map_err(|_| MapError::BadTable)?;
        if idx < self.used {
            Ok(idx)
        } else {
            Err(MapError::BadTable)
        }
    }

    /// Descriptor `idx` of table `table` (indexes are checked: no panic).
    fn entry(&self, table: usize, idx: usize) -> Result<u64, MapError> {
        self.pool.get(table).and_then(|t| t.0.get(idx)).copied().ok_or(MapError::BadTable)
    }

    fn set_entry(&mut self, table: usize, idx: usize, desc: u64) -> Result<(), MapError> {
        let slot = self.pool.get_mut(table).and_then(|t| t.0.get_mut(idx)).ok_or(MapError::BadTable)?;
        *slot = desc;
        Ok(())
    }

    fn map_level(&mut self, table: usize, level: usize, begin: u64, end: u64, attrs: u64) -> Result<(), MapError> {
        let shift = entry_shift(level);
        let size = 1u64 << shift;
        let mut addr = begin;
        while addr < end {
            let entry_base = addr & !(size - 1);
            let next = entry_base.saturating_add(size).min(end);
            let idx = ((addr >> shift) & 511) as usize;
            let desc = self.entry(table, idx)?;
            let whole = addr == entry_base && next == entry_base.saturating_add(size);
            // Blocks exist at levels 1 and 2, pages at level 3 (D8.2.1).
            let leaf_ok = level >= 1;
            let leaf = if level == 3 { DESC_VALID | DESC_TABLE_OR_PAGE } else { DESC_VALID };
            if desc & DESC_VALID == 0 && whole && leaf_ok {
                self.set_entry(table, idx, entry_base | attrs | leaf)?;
            } else if desc & DESC_VALID != 0 && (level == 3 || desc & DESC_TABLE_OR_PAGE == 0) {
                // Already a block/page covering this address: it must be
                // the same memory type (mapping one page as both Normal
                // and Device would be a mismatched-attribute alias).
                let existing = desc & !OA_MASK & !(DESC_VALID | DESC_TABLE_OR_PAGE);
                if existing != attrs {
                    return Err(MapError::Conflict);
                }
            } else if level < 3 {
                let child = if desc & DESC_VALID == 0 {
                    let child = self.alloc()?;
                    self.set_entry(table, idx, self.table_desc(child))?;
                    child
                } else {
                    self.table_index(desc)?
                };
                self.map_level(child, level + 1, addr, next, attrs)?;
            } else {
                // A level 3 entry is always a page: the cases above cover it.
                return Err(MapError::BadTable);
            }
            addr = next;
        }
        Ok(())
    }

    fn table_desc(&self, idx: usize) -> u64 {
        (self.root_addr() + idx as u64 * PAGE) | DESC_VALID | DESC_TABLE_OR_PAGE
    }

    /// Walk the tables for `addr` (tests and self-checks): the leaf
    /// descriptor and its level, or None when unmapped.
    pub fn lookup(&self, addr: u64) -> Option<(u64, usize)> {
        let mut table = 0usize;
        for level in 0..4 {
            let desc = self.entry(table, ((addr >> entry_shift(level)) & 511) as usize).ok()?;
            if desc & DESC_VALID == 0 {
                return None;
            }
            if level == 3 || desc & DESC_TABLE_OR_PAGE == 0 {
                return Some((desc, level));
            }
            table = self.table_index(desc).ok()?;
        }
        None
    }
}

/// Memory type a leaf descriptor maps (tests).
pub fn leaf_type(desc: u64) -> MemType {
    if (desc >> ATTR_INDX_SHIFT) & 7 == 1 {
        MemType::Device
    } else {
        MemType::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XN: u64 = 3 << 53;

    fn pool(n: usize) -> Vec<Table> {
        vec![Table::ZERO; n]
    }

    #[test]
    fn two_mib_aligned_range_uses_blocks() {
        let mut p = pool(8);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        m.map(0x4000_0000, 0x40_0000, MemType::Normal).unwrap();
        assert_eq!(m.tables_used(), 3, "L0 + L1 + L2");
        let (desc, level) = m.lookup(0x4020_1234).unwrap();
        assert_eq!(level, 2);
        assert_eq!(desc & OA_MASK, 0x4020_0000);
        assert_eq!(leaf_type(desc), MemType::Normal);
        assert!(m.lookup(0x4040_0000).is_none());
        assert!(m.lookup(0x3fff_f000).is_none());
    }

    #[test]
    fn unaligned_edges_use_pages() {
        let mut p = pool(16);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        m.map(0x4010_3000, 0x30_0000, MemType::Normal).unwrap();
        assert_eq!(m.lookup(0x4010_3000).unwrap().1, 3);
        assert!(m.lookup(0x4010_2fff).is_none());
        assert_eq!(m.lookup(0x4020_0000).unwrap().1, 2);
        assert_eq!(m.lookup(0x4040_2fff).unwrap().1, 3);
        assert!(m.lookup(0x4040_3000).is_none());
    }

    #[test]
    fn device_page_is_device_and_execute_never() {
        let mut p = pool(8);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        m.map(0x0900_0000, 0x1000, MemType::Device).unwrap();
        let (desc, level) = m.lookup(0x0900_0010).unwrap();
        assert_eq!((level, leaf_type(desc)), (3, MemType::Device));
        assert_eq!(desc & XN, XN);
    }

    #[test]
    fn overlapping_same_type_is_merged_and_other_type_conflicts() {
        let mut p = pool(16);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        m.map(0x4000_0000, 0x20_0000, MemType::Normal).unwrap();
        m.map(0x4000_0000, 0x1000, MemType::Normal).unwrap();
        m.map(0x401f_f000, 0x2000, MemType::Normal).unwrap();
        assert_eq!(m.lookup(0x4020_0000).unwrap().1, 3, "the overhang got a page");
        // One page as both Normal and Device would alias attributes.
        assert_eq!(m.map(0x4010_0000, 0x1000, MemType::Device), Err(MapError::Conflict));
        m.map(0x4030_0000, 0x1000, MemType::Device).unwrap();
        assert_eq!(m.map(0x4030_0000, 0x1000, MemType::Normal), Err(MapError::Conflict));
        assert_eq!(leaf_type(m.lookup(0x4010_0000).unwrap().0), MemType::Normal);
    }

    #[test]
    fn pool_exhaustion_and_bad_ranges_are_errors() {
        let mut p = pool(2);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        assert_eq!(m.map(0x4000_0000, 0x1000, MemType::Normal), Err(MapError::OutOfTables));
        let mut p = pool(4);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        assert_eq!(m.map(0x4000_0000, 0, MemType::Normal), Err(MapError::BadRange));
        assert_eq!(m.map(1 << 48, 0x1000, MemType::Normal), Err(MapError::BadRange));
    }

    #[test]
    fn high_memory_and_gigabyte_blocks() {
        let mut p = pool(8);
        let mut m = IdentityMap::new(&mut p, XN).unwrap();
        m.map(0x80_0000_0000, 0x4000_0000, MemType::Normal).unwrap();
        assert_eq!(m.lookup(0x80_2000_0000).unwrap().1, 1);
    }
}
