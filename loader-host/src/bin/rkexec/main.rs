//! `rkexec`: kexec-tools' `kexec` command line over the loader library.

mod args;
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
