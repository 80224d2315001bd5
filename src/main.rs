use clap::Parser;
use hopscope::cli::{Cli, Command};
use hopscope::{source, view};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Snapshot(args)) => snapshot(&cli, args.json, args.show_keys),
        Some(Command::Trace(args)) => trace(&cli, args),
        Some(Command::Capture(args)) => capture(&cli, args),
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

fn trace(cli: &Cli, args: &hopscope::trace::cmd::TraceArgs) -> anyhow::Result<()> {
    // Recorded states alone are enough; the own netns is read only when nothing else is given.
    let targets =
        if cli.target.netns.is_empty() && cli.target.pid.is_none() && !args.states.is_empty() {
            vec![]
        } else {
            cli.target.targets()
        };
    let t = hopscope::trace::cmd::run(args, &targets)?;
    let out = if args.json {
        serde_json::to_string_pretty(&t)? + "\n"
    } else {
        hopscope::view::trace::render(&t)
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

fn snapshot(cli: &Cli, json: bool, show_keys: bool) -> anyhow::Result<()> {
    let state = source::collect(&cli.target.target())?;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = if json {
        view::json::write(&state, show_keys, tty, &mut out)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write!(out, "{}", view::text::render(&state, show_keys))
    };
    // A closed pipe (| head) is not an error worth a message.
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

fn capture(cli: &Cli, a: &hopscope::cli::CaptureArgs) -> anyhow::Result<()> {
    use hopscope::capture::{Options, run};
    let args = run::RunArgs {
        opts: Options {
            ifaces: a.interfaces.clone(),
            all: a.all,
            filter: a.filter.clone(),
            decrypt: a.decrypt,
            count: a.count,
            duration: a.duration.map(std::time::Duration::from_secs_f64),
            snaplen: a.snaplen,
            buffer_bytes: a.buffer_kib.saturating_mul(1024),
            queue: a.queue,
        },
        json: a.json,
        write: a.write.clone(),
        show_keys: a.show_keys,
        stats_every: a.stats.map(std::time::Duration::from_secs_f64),
        quiet: a.quiet,
    };
    run::run(&cli.target.target(), &args)
}
