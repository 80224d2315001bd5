use clap::Parser;
use hopscope::cli::{Cli, Command};
use hopscope::{source, view};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Snapshot(args)) => snapshot(&cli, args.json, args.show_keys),
        // The TUI is not built yet: the default is the text snapshot of this node.
        None => snapshot(&cli, false, false),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn snapshot(cli: &Cli, json: bool, show_keys: bool) -> anyhow::Result<()> {
    let state = source::collect(&cli.target.target())?;
    let out = if json {
        view::json::render(&state, show_keys)
    } else {
        view::text::render(&state, show_keys)
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (| head) is not an error worth a message.
    match writeln!(stdout, "{out}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}
