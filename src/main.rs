//! Entry point: parse flags, start logging, dispatch, map the error to an exit code.

use clap::Parser;
use model_optimizer::{cli::Cli, commands, exit, logging};

fn main() {
    // Before any thread starts: the forward pass's thread pool, this thread included.
    model_optimizer::model::init_threads();
    let cli = Cli::parse();
    logging::init(&cli.global);
    let code = match commands::execute(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::code_of(&err)
        }
    };
    std::process::exit(code.code());
}
