//! `rkexec`: see `loader_host::cli`.
fn main() -> std::process::ExitCode {
    loader_host::cli::main()
}
