//! The SHA-256 of every segment, as the purgatory will compute it: the
//! loaded bytes, then zeros up to `digest_len` (the kernel zero-fills past
//! bufsz). Segments are hashed in parallel, one thread each up to the
//! number of CPUs: each byte is read once, here.

use sha2::{Digest, Sha256};

use crate::plan::PlannedSegment;

/// SHA-256 of `data` zero-padded to `len` bytes (`len` ≥ data length).
pub fn padded(data: &[u8], len: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    let zeros = [0u8; 4096];
    let mut left = len.saturating_sub(data.len() as u64);
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        h.update(&zeros[..n]);
        left -= n as u64;
    }
    h.finalize().into()
}

/// Fill `sha256` of every segment but the purgatory (which cannot hash
/// itself and is not described to itself).
pub fn fill(segments: &mut [PlannedSegment]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
    let mut todo: Vec<&mut PlannedSegment> = segments.iter_mut().filter(|s| s.kind.is_some()).collect();
    // Largest first, so that the big kernel and initrd run side by side.
    todo.sort_by_key(|s| std::cmp::Reverse(s.data.len()));
    let mut lanes: Vec<Vec<&mut PlannedSegment>> = (0..threads).map(|_| Vec::new()).collect();
    let mut load = vec![0u64; threads];
    for s in todo {
        // Greedy: the next segment goes to the least loaded lane.
        let lane = (0..threads).min_by_key(|&i| load[i]).unwrap_or(0);
        load[lane] = load[lane].saturating_add(s.digest_len);
        lanes[lane].push(s);
    }
    std::thread::scope(|scope| {
        for lane in lanes.into_iter().filter(|l| !l.is_empty()) {
            scope.spawn(move || {
                for s in lane {
                    s.sha256 = padded(&s.data, s.digest_len);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Blob;
    use kexec_purgatory::abi::SegmentKind;

    fn seg(kind: Option<SegmentKind>, n: usize, digest_len: u64) -> PlannedSegment {
        PlannedSegment {
            kind,
            mem: 0x1000,
            memsz: digest_len.max(4096),
            digest_len,
            data: Blob::new((0..n).map(|i| i as u8).collect()),
            sha256: [0; 32],
            excluded: false,
            source: String::new(),
        }
    }

    #[test]
    fn padded_digest_covers_the_zeros() {
        let mut v = vec![7u8; 5000];
        let d = padded(&v, 8192);
        v.resize(8192, 0);
        assert_eq!(d, <[u8; 32]>::from(Sha256::digest(&v)));
        assert_eq!(padded(b"abc", 3), <[u8; 32]>::from(Sha256::digest(b"abc")));
    }

    #[test]
    fn every_segment_but_the_purgatory_is_hashed() {
        let mut segs = vec![
            seg(Some(SegmentKind::Kernel), 100_000, 102_400),
            seg(Some(SegmentKind::Initrd), 3, 4096),
            seg(None, 10, 4096),
        ];
        fill(&mut segs);
        assert_eq!(segs[1].sha256, padded(&segs[1].data, 4096));
        assert_eq!(segs[0].sha256, padded(&segs[0].data, 102_400));
        assert_eq!(segs[2].sha256, [0; 32]);
    }
}
