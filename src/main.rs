use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = termtag::cli::Cli::parse();
    if !cli.is_tui() {
        termtag::logging::to_stderr();
    }
    match termtag::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`termtag images list | head`): not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", termtag::logging::error_line(&*e));
            ExitCode::FAILURE
        }
    }
}
