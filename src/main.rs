use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    iari::cli::run(iari::cli::Cli::parse())
}
