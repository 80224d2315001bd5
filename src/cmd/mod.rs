//! Commands: what runs when the user types `hopscope snapshot|trace|capture|…` (and the
//! TUI's start-up in `tui::run_cli`). This is the one layer that opens sockets, starts
//! captures and reads Kubernetes, then hands plain data to the pure layers below (trace,
//! explain, model, decode) and prints it through `view`. See docs/architecture.md.

pub mod attach;
pub mod capture;
pub mod capture_file;
pub mod doctor;
pub mod record;
pub(crate) mod reread;
pub mod snapshot;
pub mod trace;

use crate::cli::Cli;

/// `snapshot` and `trace` once everything is read (the node, the names, the recording):
/// what is left formats attacker-shaped text and writes it to stdout, so it runs locked
/// down as `capture` does (`sandbox::lock_down`: nobody, no capabilities, no_new_privs,
/// seccomp), unless `--no-sandbox`. Quietly: their stderr stays theirs.
pub fn lock_down_to_print(cli: &Cli) -> anyhow::Result<()> {
    if !cli.no_sandbox {
        crate::sandbox::lock_down()?;
    }
    Ok(())
}

/// Start reading names from Kubernetes (in the background; nothing without credentials).
pub fn start_names(cli: &Cli) -> crate::kube::names::NamesWatch {
    crate::kube::names::NamesWatch::start(&cli.kube)
}

/// The names read so far, waiting up to the budget for the first lists; the notice (one
/// line) goes to stderr.
pub fn finish_names(w: crate::kube::names::NamesWatch) -> std::sync::Arc<crate::model::Names> {
    let (names, notice) = crate::kube::names::finish(w, crate::kube::names::NAMES_BUDGET);
    if let Some(n) = notice {
        eprintln!("hopscope: {n}");
    }
    names
}

/// The interfaces a command captures on, each once and sorted; None when there are none.
fn devices(names: impl Iterator<Item = String>) -> Option<Vec<String>> {
    let mut devs: Vec<String> = names.collect();
    devs.sort();
    devs.dedup();
    (!devs.is_empty()).then_some(devs)
}
