//! The ppc64le purgatory on QEMU pseries.

use kexec_purgatory::abi::SegmentKind;
use test_harness::{Cell, Scenario};

#[test]
fn p9_smp2() {
    let out = Scenario::standard("p9-smp2", Cell::P9_SMP2).run();
    println!("{}\n{:?}", out.console, out.shutdown);
}

#[test]
fn p9_reset() {
    let mut sc = Scenario::standard("p9-reset", Cell::P9);
    sc.corrupt.push((1, 5, 1));
    let out = sc.run();
    println!("{}\n{:?} {:?}", out.console, out.shutdown, out.halted_at);
    let mut sc = Scenario::standard("p9-halt", Cell::P9).halting();
    sc.corrupt.push((1, 5, 1));
    let out = sc.run();
    println!("{}\n{:?} {:?}", out.console, out.shutdown, out.halted_at);
    let _ = SegmentKind::Kernel;
}
