//! `rkexec`: kexec-tools' `kexec` command line over the loader library.

mod actions;
mod args;
mod cli;
mod getopt;
mod ops;

fn main() -> std::process::ExitCode {
    cli::main()
}
