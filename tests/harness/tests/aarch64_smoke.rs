use test_harness::{Cell, Scenario};

#[test]
fn smoke() {
    for cell in [Cell::EL2_NVHE, Cell::EL2_VHE, Cell::EL1_MAX] {
    let out = Scenario::standard("smoke", cell).run();
    println!("{}\n{:?}", out.console, out.exit);
    }
}
