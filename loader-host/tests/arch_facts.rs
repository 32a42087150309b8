//! tests/guest/arch_facts.json is generated from the architectures'
//! descriptions (`loader_host::arch`), so that the Python guest tier reads
//! what the loader says of each architecture instead of writing it again:
//! the `arch` a plan names, the boot data kind, the purgatory image, the
//! kexec_load flags. Run `RKEXEC_BLESS=1 cargo test -p loader-host --test
//! arch_facts` after changing an architecture.

use std::path::PathBuf;

use kexec_purgatory::verify::{MemSpan, Rules};

fn generate() -> String {
    let mut rows = Vec::new();
    for a in loader_host::arch::all() {
        let rules = Rules::for_arch(a.purgatory_arch, MemSpan::new(0x1000, 0x1000)).expect("purgatory rules");
        let image = loader_host::purgatory_image::embedded(a.purgatory_arch).expect("embedded image");
        rows.push(format!(
            "  \"{debian}\": {{\"plan_arch\": \"{name}\", \"boot_data\": \"{boot}\", \"purgatory_image\": \"{image}\", \
             \"elf_machine\": {machine}, \"kexec_arch_flag\": \"{flag:#x}\", \"hotplug_flag\": \"{hotplug}\"}}",
            debian = a.debian_arch,
            name = a.name,
            boot = rules.boot_data_kind.name(),
            image = image.name,
            machine = a.elf_machine,
            flag = a.kexec_arch_flag(),
            hotplug = a.hotplug_flag.map_or(String::new(), |f| format!("{:#x}", f.value)),
        ));
    }
    format!("{{\n{}\n}}\n", rows.join(",\n"))
}

#[test]
fn arch_facts_json_is_in_sync() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/guest/arch_facts.json");
    let want = generate();
    if std::env::var_os("RKEXEC_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale:\n--- file\n{have}\n--- generated\n{want}\nrun: RKEXEC_BLESS=1 cargo test -p loader-host --test arch_facts",
        path.display()
    );
}
