//! `hopscope snapshot` (and the plain run without a terminal): one dump, printed as text or
//! JSON.

use super::{finish_names, start_names};
use crate::cli::Cli;
use crate::{source, view};
use std::io::{IsTerminal, Write};

pub fn run(
    cli: &Cli,
    json: bool,
    show_keys: bool,
    from: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if told_to_wait(cli) && !wait_until_told()? {
        return Ok(());
    }
    let stamp = crate::output::Stamp::now();
    let names = start_names(cli);
    let state = match from {
        Some(path) => crate::record::reader::node_state(path, cli.target.netns.first())?,
        None => source::collect(&cli.target.target())?,
    };
    let names = finish_names(names);
    super::lock_down_to_print(cli)?;
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = {
        if json {
            view::json::write(&state, &stamp, show_keys, tty, &names, &mut out)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            let text = view::text::render(&state, show_keys, &names);
            // Interface names and labels are the kernel's bytes: escape control characters.
            write!(crate::output::Escaped::new(&mut out), "{text}")
        }
    };
    // The process ends next: freeing 100k routes one by one would only cost time.
    std::mem::forget(state);
    // A closed pipe (| head) is not an error worth a message.
    crate::output::ok_if_closed(written.and_then(|()| out.flush())).map_err(Into::into)
}

/// `snapshot --when-told` (the helper of src/cmd/reread.rs).
fn told_to_wait(cli: &Cli) -> bool {
    matches!(&cli.command, Some(crate::cli::Command::Snapshot(a)) if a.when_told)
}

/// Block until a line arrives on stdin: true, read now; false, the asker is gone.
fn wait_until_told() -> anyhow::Result<bool> {
    let mut line = String::new();
    Ok(std::io::stdin().read_line(&mut line)? > 0)
}
