//! Link the payload at the harness's kernel address with its own script.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed={dir}/payload.ld");
    println!("cargo:rerun-if-changed={dir}/payload-riscv64.ld");
    println!("cargo:rerun-if-changed={dir}/payload-x86_64.ld");
    println!("cargo:rerun-if-changed={dir}/payload-ppc64le.ld");
    let script = match std::env::var("TARGET").as_deref() {
        Ok("aarch64-unknown-none") => "payload.ld",
        Ok("riscv64gc-unknown-none-elf") => "payload-riscv64.ld",
        Ok("x86_64-unknown-none") => "payload-x86_64.ld",
        Ok("powerpc64le-unknown-linux-gnu") => "payload-ppc64le.ld",
        _ => return,
    };
    println!("cargo:rustc-link-arg-bins=-T{dir}/{script}");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    if script == "payload-ppc64le.ld" {
        // A hosted target used without its C library (.cargo/config.toml).
        println!("cargo:rustc-link-arg-bins=-nostdlib");
    }
}
