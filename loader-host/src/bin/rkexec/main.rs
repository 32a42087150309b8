//! `rkexec`: kexec-tools' `kexec` command line over the loader library.

mod actions;
mod args;
mod cli;
mod getopt;
mod kexec_tools;
mod ops;
mod purgatory_cmd;

fn main() -> std::process::ExitCode {
    // A closed stdout (`rkexec plan ... | head`) ends the process quietly,
    // as it does kexec-tools and every C tool: Rust's runtime ignores
    // SIGPIPE, which would turn the write error into a panic in print!.
    // SAFETY: restoring the default disposition of one signal before any
    // thread exists; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    cli::main()
}
