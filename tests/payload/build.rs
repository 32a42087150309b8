//! Link the payload at the harness's kernel address with its own script.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed={dir}/payload.ld");
    if std::env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/payload.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
