//! Synthetic inputs shared by the integration tests.

/// A bzImage (boot.rst 2.15 header, 64-bit, relocatable) with a payload.
pub fn bzimage(payload: usize) -> Vec<u8> {
    let setup_sects = 27usize;
    let mut f = vec![0u8; (setup_sects + 1) * 512 + payload];
    f[0x1f1] = setup_sects as u8;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x200] = 0xeb;
    f[0x201] = 0x6a;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x211] = 1;
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x235] = 21;
    f[0x236..0x238].copy_from_slice(&0x3u16.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&0x200_0000u32.to_le_bytes());
    for (i, b) in f[(setup_sects + 1) * 512..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    f
}
