use clap::Parser;
use hopscope::cli::{Cli, Command};
use hopscope::cmd;
use hopscope::output::{self, exit};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything reads a key: no core dump, no ptrace by others (docs/security.md).
    hopscope::sandbox::non_dumpable();
    // `trace pod/NS/NAME svc/NS/NAME`: objects stand in as placeholder addresses until parsed.
    let (argv, endpoints) = hopscope::kube::resolve::take_endpoints(plugin_argv());
    let mut cli = Cli::parse_from(argv);
    let result = resolve_endpoints(&mut cli, &endpoints)
        .and_then(|()| check_kubeconfig(&cli))
        .and_then(|()| run(&cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::print_error(&e);
            ExitCode::from(exit::ERROR)
        }
    }
}

/// Run the command; the exit status it ends with (docs/exit-codes.md).
fn run(cli: &Cli) -> anyhow::Result<u8> {
    let done = |r: anyhow::Result<()>| r.map(|()| exit::OK);
    match &cli.command {
        Some(Command::Snapshot(args)) => done(cmd::snapshot::run(
            cli,
            args.json,
            args.show_keys,
            args.from.as_deref(),
        )),
        Some(Command::Trace(args)) => cmd::trace::command(cli, args),
        Some(Command::Capture(args)) => done(cmd::capture::command(cli, args)),
        Some(Command::Generate(args)) => {
            // Made whole first: a closed pipe (| head) must not panic inside the generator.
            let mut text = Vec::new();
            args.what.run(&mut text)?;
            done(
                output::ok_if_closed(std::io::stdout().lock().write_all(&text)).map_err(Into::into),
            )
        }
        Some(Command::Doctor(args)) => Ok(doctor(cli, args)),
        Some(Command::Record(a)) => {
            exit_on_signal(cmd::record::record(a, cli.target.targets(), &cli.kube))
        }
        Some(Command::Replay(a)) => exit_on_signal(cmd::record::replay(a, &cli.tui)),
        Some(Command::Demo(a)) => exit_on_signal(cmd::record::demo(a, &cli.tui)),
        Some(Command::Bundle(a)) => exit_on_signal(hopscope::record::bundle::run(
            a,
            cli.target.targets(),
            &cli.kube,
        )),
        Some(Command::Attach(args)) => {
            cmd::attach::run(&cli.kube, args).map(|code| code.clamp(0, 255) as u8)
        }
        // The live TUI; without a terminal (piped, cron) the text snapshot instead.
        None if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() => {
            exit_on_signal(hopscope::tui::run_cli(
                cli.target.target(),
                &cli.tui,
                &cli.kube,
                !cli.no_sandbox,
            ))
        }
        None => {
            // The TUI's options are checked all the same: a bad config file is an error here too.
            hopscope::tui::options(cli.target.target(), &cli.tui)?;
            done(cmd::snapshot::run(cli, false, false, None))
        }
    }
}

/// A command that ends on a signal exits as the shell expects: 128 + the signal.
fn exit_on_signal(r: anyhow::Result<i32>) -> anyhow::Result<u8> {
    r.map(|sig| {
        if sig == 0 {
            exit::OK
        } else {
            (128 + sig).clamp(1, 255) as u8
        }
    })
}

/// A kubeconfig named with --kubeconfig must be readable: say so once, and fail, rather than
/// go on without names (as kubectl does).
fn check_kubeconfig(cli: &Cli) -> anyhow::Result<()> {
    match &cli.kube.kubeconfig {
        Some(path) if !cli.kube.no_kube => hopscope::kube::read_kubeconfig(path).map(|_| ()),
        _ => Ok(()),
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

/// `hopscope doctor`: the report, and its exit status (0 fine, 1 warn, 2 fail).
fn doctor(cli: &Cli, args: &cmd::doctor::DoctorArgs) -> u8 {
    let stamp = output::Stamp::now();
    let names = (!args.no_kube).then(|| cmd::start_names(cli));
    let run = cmd::doctor::run(args, &cli.target.targets(), &cli.target.netns, || {
        names.map(cmd::finish_names).unwrap_or_default()
    });
    let printed =
        run.and_then(|(r, _names)| cmd::doctor::print(&r, args.json, &stamp).map(|()| r.exit_code));
    match printed {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            // Not 1 or 2: those are the doctor's verdicts.
            3
        }
    }
}
