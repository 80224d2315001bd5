use clap::Parser;
use hopscope::cli::{Cli, Command};
use hopscope::{source, view};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything reads a key: no core dump, no ptrace by others (docs/security.md).
    hopscope::sandbox::non_dumpable();
    // `trace pod/NS/NAME svc/NS/NAME`: objects stand in as placeholder addresses until parsed.
    let (argv, endpoints) = hopscope::kube::resolve::take_endpoints(plugin_argv());
    let mut cli = Cli::parse_from(argv);
    if let Err(e) = resolve_endpoints(&mut cli, &endpoints) {
        eprintln!("hopscope: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        Some(Command::Snapshot(args)) => {
            snapshot(&cli, args.json, args.show_keys, args.from.as_deref())
        }
        Some(Command::Trace(args)) => trace(&cli, args),
        Some(Command::Capture(args)) => capture(&cli, args),
        Some(Command::Doctor(args)) => return doctor(&cli, args),
        Some(Command::Generate(args)) => args
            .what
            .run(&mut std::io::stdout().lock())
            .map_err(Into::into),
        Some(Command::Record(a)) => exit_on_signal(hopscope::record::cmd::record(
            a,
            cli.target.targets(),
            &cli.kube,
        )),
        Some(Command::Replay(a)) => exit_on_signal(hopscope::record::cmd::replay(a, &cli.tui)),
        Some(Command::Demo(a)) => exit_on_signal(hopscope::record::cmd::demo(a, &cli.tui)),
        Some(Command::Attach(args)) => match hopscope::kube::attach::run(&cli.kube, args) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code.clamp(1, 255) as u8),
            Err(e) => Err(e),
        },
        // The live TUI; without a terminal (piped, cron) the text snapshot instead.
        None if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() => {
            match hopscope::tui::run_cli(cli.target.target(), &cli.tui, &cli.kube) {
                Ok(0) => Ok(()),
                // Ended by a signal: the shell convention, 128 + signal number.
                Ok(sig) => return ExitCode::from((128 + sig).clamp(1, 255) as u8),
                Err(e) => Err(e),
            }
        }
        None => snapshot(&cli, false, false, None),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hopscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command that ends on a signal exits as the shell expects: 128 + the signal.
fn exit_on_signal(r: anyhow::Result<i32>) -> anyhow::Result<()> {
    match r {
        Ok(0) => Ok(()),
        Ok(sig) => std::process::exit(128 + sig),
        Err(e) => Err(e),
    }
}

/// The command line. As the kubectl plugin (`kubectl-hopscope`, run as `kubectl hopscope`),
/// the arguments mean `attach …` (`kubectl hopscope node/NAME`, `kubectl hopscope --dry-run
/// worker2`) unless they start with another subcommand (`kubectl hopscope snapshot`) or ask
/// for help or the version.
fn plugin_argv() -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plugin = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-"));
    if plugin {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let first = argv.get(1).map(|a| a.to_string_lossy().into_owned());
        let keep = first.as_deref().is_some_and(|a| {
            matches!(a, "-h" | "--help" | "-V" | "--version" | "help")
                || cmd.get_subcommands().any(|s| s.get_name() == a)
        });
        if !keep {
            argv.insert(1, "attach".into());
        }
    }
    argv
}

/// Replace the placeholders of `trace pod/…`/`svc/…` arguments by the objects' addresses.
fn resolve_endpoints(
    cli: &mut Cli,
    endpoints: &[(std::net::IpAddr, hopscope::kube::resolve::Endpoint)],
) -> anyhow::Result<()> {
    let Some(Command::Trace(args)) = &mut cli.command else {
        return Ok(());
    };
    if endpoints.is_empty() {
        return Ok(());
    }
    let eps: Vec<_> = endpoints.iter().map(|(_, e)| e.clone()).collect();
    let ips = hopscope::kube::resolve::resolve(&cli.kube, &eps)?;
    for ((placeholder, ep), ip) in endpoints.iter().zip(ips) {
        eprintln!("hopscope: {ep} is {ip}");
        for a in [&mut args.src, &mut args.dst] {
            if a == placeholder {
                *a = ip;
            }
        }
    }
    Ok(())
}

/// Start reading names from Kubernetes (in the background; nothing without credentials).
fn start_names(cli: &Cli) -> hopscope::kube::names::NamesWatch {
    hopscope::kube::names::NamesWatch::start(&cli.kube)
}

/// The names read so far, waiting up to the budget for the first lists; the notice (one
/// line) goes to stderr.
fn finish_names(w: hopscope::kube::names::NamesWatch) -> std::sync::Arc<hopscope::model::Names> {
    let (names, notice) = hopscope::kube::names::finish(w, hopscope::kube::names::NAMES_BUDGET);
    if let Some(n) = notice {
        eprintln!("hopscope: {n}");
    }
    names
}

fn trace(cli: &Cli, args: &hopscope::trace::cmd::TraceArgs) -> anyhow::Result<()> {
    let names = start_names(cli);
    // Recorded states alone are enough; the own netns is read only when nothing else is given.
    let targets = if cli.target.netns.is_empty()
        && cli.target.pid.is_none()
        && (!args.states.is_empty() || args.from.is_some())
    {
        vec![]
    } else {
        cli.target.targets()
    };
    let t = hopscope::trace::cmd::run(args, &targets)?;
    let names = finish_names(names);
    let out = if args.json {
        // The trace document, plus `names`: address → name for the addresses in it.
        let mut v = serde_json::to_value(&t)?;
        let found = names.in_text(&v.to_string());
        if let (Some(obj), false) = (v.as_object_mut(), found.is_empty()) {
            obj.insert("names".into(), serde_json::to_value(found)?);
        }
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        hopscope::model::names::with_names(names, || hopscope::view::trace::render(&t))
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

/// `hopscope doctor`: the report, and its exit status (0 fine, 1 warn, 2 fail).
fn doctor(cli: &Cli, args: &hopscope::doctor::cmd::DoctorArgs) -> ExitCode {
    let names = (!args.no_kube).then(|| start_names(cli));
    let run = hopscope::doctor::cmd::run(args, &cli.target.targets());
    let names = names.map(finish_names).unwrap_or_default();
    let printed = run.and_then(|r| {
        hopscope::model::names::with_names(names, || hopscope::doctor::cmd::print(&r, args.json))
            .map(|()| r.exit_code)
    });
    match printed {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("hopscope: {e:#}");
            // Not 1 or 2: those are the doctor's verdicts.
            ExitCode::from(3)
        }
    }
}

fn snapshot(
    cli: &Cli,
    json: bool,
    show_keys: bool,
    from: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let names = start_names(cli);
    let state = match from {
        Some(path) => hopscope::record::reader::node_state(path, cli.target.netns.first())?,
        None => source::collect(&cli.target.target())?,
    };
    let names = finish_names(names);
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = if json {
        view::json::write(&state, show_keys, tty, &mut out)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let text =
            hopscope::model::names::with_names(names, || view::text::render(&state, show_keys));
        write!(out, "{text}")
    };
    // The process ends next: freeing 100k routes one by one would only cost time.
    std::mem::forget(state);
    // A closed pipe (| head) is not an error worth a message.
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

fn capture(cli: &Cli, a: &hopscope::cli::CaptureArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.read {
        return hopscope::keys::offline::run_cli(a, path);
    }
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
        sandbox: !cli.no_sandbox,
    };
    // Kubernetes names for the packet lines (silent without credentials, bounded wait).
    let names = finish_names(start_names(cli));
    hopscope::model::names::with_names(names, || run::run(&cli.target.target(), &args))
}
