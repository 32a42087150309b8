//! `purgatory-rustflags TARGET`: print the purgatory's rustflags for
//! TARGET as CARGO_ENCODED_RUSTFLAGS wants them (0x1f-separated), so that a
//! direct `cargo build`/`cargo clippy` of the purgatory crates for a hosted
//! triple (ppc64le) compiles exactly as the nested build does
//! (scripts/test.sh). Exit 2 for a target with no settings.
fn main() {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: purgatory-rustflags TARGET");
        std::process::exit(2);
    };
    match purgatory_linker::settings::encoded_rustflags(&target) {
        Some(flags) => println!("{flags}"),
        None => {
            eprintln!("purgatory-rustflags: no purgatory settings for {target} (linker/src/settings.rs)");
            std::process::exit(2);
        }
    }
}
