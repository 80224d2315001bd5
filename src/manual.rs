//! What `--help` and the man pages say beyond the options clap lists: examples per command, the
//! TUI's keys, the files and environment variables read, the exit statuses. One source for
//! both, so the help text and the pages cannot disagree.

use std::io::Write;

/// (command line, what it shows) per command; "" is `hopscope` itself.
const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "",
        &[
            (
                "sudo hopscope",
                "the live TUI of this node (q quits, ? lists the keys)",
            ),
            (
                "hopscope demo",
                "the TUI on a recorded lab node: no root, no cluster",
            ),
            (
                "sudo hopscope --netns worker2",
                "the TUI of another network namespace",
            ),
            (
                "sudo hopscope snapshot --json | jq .xfrm_states",
                "the SAs, for a script",
            ),
        ],
    ),
    (
        "snapshot",
        &[
            (
                "sudo hopscope snapshot",
                "links, routes of every table, rules, SAs, policies, xfrm_stat",
            ),
            (
                "sudo hopscope snapshot --json > node.json",
                "a record to trace on later (trace --state)",
            ),
            (
                "sudo hopscope snapshot --pid 4242",
                "the netns of process 4242 (a kind node's init)",
            ),
        ],
    ),
    (
        "trace",
        &[
            (
                "sudo hopscope trace 10.0.1.52 10.0.0.249",
                "pod to remote pod: every hop and what decided it",
            ),
            (
                "sudo hopscope trace 10.0.1.52 10.96.0.10 --proto udp --dport 53",
                "through a Service's DNAT",
            ),
            (
                "sudo hopscope trace 10.0.1.52 10.0.0.249 --netns worker --netns worker2 --follow",
                "across two nodes, and watch the real packets for 5 s",
            ),
            (
                "hopscope trace 10.0.1.52 10.0.0.249 --state worker.json --state worker2.json",
                "on recorded snapshots, no root",
            ),
            (
                "hopscope trace A B >/dev/null; echo $?",
                "0 delivered, 3 stops, 4 not seen (with --follow)",
            ),
        ],
    ),
    (
        "capture",
        &[
            (
                "sudo hopscope capture -i eth0 esp or icmp",
                "the filter as trailing words, as tcpdump",
            ),
            (
                "sudo hopscope capture -i eth0 -i cilium_host --decrypt",
                "ESP decrypted with the node's own keys, per interface",
            ),
            (
                "sudo hopscope capture -i eth0 -c 100 -w out.pcapng",
                "100 packets to a file (not printed)",
            ),
            (
                "sudo hopscope capture --all --stats 1 -q",
                "ESP vs plaintext packets/s per interface",
            ),
            (
                "sudo hopscope capture -i eth0 --json | head -1",
                "one packet as JSON, then exit",
            ),
        ],
    ),
    (
        "doctor",
        &[
            (
                "sudo hopscope doctor",
                "is IPsec on this node healthy? each finding with its evidence",
            ),
            (
                "sudo hopscope doctor --json",
                "the same for a script; exit 0 ok, 1 warn, 2 fail, 3 error",
            ),
        ],
    ),
    (
        "record",
        &[(
            "sudo hopscope record -o incident.hsrec --netns worker --netns worker2 -i eth0",
            "what the nodes did (states, changes, counters, frames) into one file; keys only with --show-keys",
        )],
    ),
    (
        "replay",
        &[
            (
                "hopscope replay incident.hsrec",
                "the recording in the TUI, as it happened",
            ),
            (
                "hopscope replay incident.hsrec --speed 4 --start 30",
                "4× from the 30th second",
            ),
        ],
    ),
    (
        "demo",
        &[
            (
                "hopscope demo",
                "a recorded Cilium IPsec lab node in the TUI: no root, no cluster",
            ),
            (
                "hopscope demo --broken",
                "the same with worker2's inbound SA deleted: find why",
            ),
        ],
    ),
    (
        "bundle",
        &[(
            "sudo hopscope bundle -o node.tar.gz -i eth0",
            "state, doctor findings, iptables rules and a 10 s recording for a ticket; no keys",
        )],
    ),
    (
        "attach",
        &[
            (
                "hopscope attach node/worker2",
                "the TUI on a Kubernetes node, through a debug pod",
            ),
            (
                "kubectl hopscope worker2 -- snapshot --json",
                "as a kubectl plugin, one command",
            ),
        ],
    ),
];

/// Files hopscope reads, as (path, what).
const FILES: &[(&str, &str)] = &[
    (
        "$XDG_CONFIG_HOME/hopscope/config.toml",
        "defaults for the TUI (theme, interval, pane) and [keys] bindings; ~/.config/hopscope/config.toml without XDG_CONFIG_HOME (docs/tui.md)",
    ),
    (
        "/usr/share/hopscope/themes/*.toml",
        "theme files shipped with the package; --theme takes one by path",
    ),
    (
        "/run/netns/NAME",
        "network namespaces named by --netns NAME",
    ),
    (
        "/etc/iproute2/rt_tables, /etc/iproute2/rt_tables.d/*.conf",
        "names of routing tables",
    ),
    (
        "/proc/net/xfrm_stat, /proc/net/nf_conntrack",
        "XFRM error counters; the flow's conntrack entry (trace), when ctnetlink cannot be dumped",
    ),
];

/// Environment variables read, as (name, what).
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "KUBECONFIG",
        "the kubeconfig for names and attach (default ~/.kube/config; --kubeconfig wins)",
    ),
    (
        "KUBERNETES_SERVICE_HOST",
        "with a service account token: running in a pod, use it",
    ),
    (
        "NO_COLOR",
        "present and not empty: the mono theme (unless --theme is given)",
    ),
    (
        "XDG_CONFIG_HOME, HOME",
        "where the config file is looked for",
    ),
    (
        "HOPSCOPE_IMAGE",
        "attach: the image of the debug pod (--image wins)",
    ),
];

/// Exit statuses, as (status, meaning) (docs/exit-codes.md says the same).
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "done; trace: delivered, or leaves the last node given on the wire; a closed pipe too",
    ),
    ("1", "could not do it: the message on stderr says why"),
    ("2", "a bad command line: the message lists what is valid"),
    ("3", "trace: the predicted path stops"),
    ("4", "trace --follow: not seen at every observable hop"),
    ("128+N", "ended by signal N"),
];

fn examples(cmd: &str) -> &'static [(&'static str, &'static str)] {
    EXAMPLES
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, e)| *e)
        .unwrap_or(&[])
}

fn list(title: &str, rows: &[(&str, &str)]) -> String {
    let mut out = format!("{title}:\n");
    for (a, b) in rows {
        if a.len() < 8 {
            out.push_str(&format!("  {a:<8}{b}\n"));
        } else {
            out.push_str(&format!("  {a}\n      {b}\n"));
        }
    }
    out
}

/// `--help`'s text after the options: examples, and for `hopscope` itself also the files,
/// environment and exit statuses.
pub fn after_help(cmd: &str) -> String {
    let mut out = list("Examples", examples(cmd));
    if cmd.is_empty() {
        out.push('\n');
        out.push_str(&list("Files", FILES));
        out.push('\n');
        out.push_str(&list("Environment", ENVIRONMENT));
    }
    out.push('\n');
    out.push_str(&list("Exit status", EXIT_STATUS));
    out.push_str("\nMore: man hopscope, docs/ (user-guide.md first).");
    out
}

/// roff text: backslashes and dashes escaped, no line starting with a control character.
fn roff(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn roff_list(out: &mut String, title: &str, rows: &[(String, String)]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for (a, b) in rows {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(a), roff(b)));
    }
}

fn owned(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// One man page: clap's sections (name, synopsis, description, options, commands), then
/// EXAMPLES, KEYS (hopscope.1: the TUI's bindings), FILES, ENVIRONMENT, EXIT STATUS.
pub fn render_page(cmd: clap::Command, name: &str, w: &mut dyn Write) -> std::io::Result<()> {
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let has_version = cmd.get_version().is_some() || cmd.get_long_version().is_some();
    let man = clap_mangen::Man::new(cmd);
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if has_subcommands {
        man.render_subcommands_section(w)?;
    }
    let mut out = String::new();
    roff_list(&mut out, "EXAMPLES", &owned(examples(name)));
    if name.is_empty() {
        let keys: Vec<(String, String)> = crate::tui::keymap::Keymap::default()
            .bindings
            .iter()
            .map(|b| {
                let keys: Vec<String> = b.keys.iter().map(|k| k.to_string()).collect();
                (keys.join(", "), format!("{} ([keys] {})", b.help, b.name))
            })
            .collect();
        roff_list(&mut out, "KEYS", &keys);
        out.push_str(
            "Bindings are changed in the config file's [keys] section (action = [keys]); ctrl\\-c always quits.\n",
        );
    }
    roff_list(&mut out, "FILES", &owned(FILES));
    roff_list(&mut out, "ENVIRONMENT", &owned(ENVIRONMENT));
    roff_list(&mut out, "EXIT STATUS", &owned(EXIT_STATUS));
    w.write_all(out.as_bytes())?;
    if has_version {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// hopscope.1 and one page per visible subcommand (hopscope-trace.1, …) into `dir`.
pub fn write_pages(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        let file = dir.join(format!("hopscope-{name}.1"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        render_page(sub.clone(), &name, &mut f)?;
        f.flush()?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("hopscope.1"))?);
    render_page(cmd, "", &mut f)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_option_is_described() {
        use clap::CommandFactory;
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let mut all = vec![cmd.clone()];
        all.extend(cmd.get_subcommands().cloned());
        for c in &all {
            for a in c.get_arguments() {
                assert!(
                    a.get_help().is_some() || a.is_hide_set(),
                    "{} {} has no description",
                    c.get_name(),
                    a.get_id()
                );
            }
        }
    }

    #[test]
    fn every_visible_command_has_examples() {
        use clap::CommandFactory;
        for sub in crate::cli::Cli::command().get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                assert!(
                    !super::examples(sub.get_name()).is_empty(),
                    "{} has no examples",
                    sub.get_name()
                );
            }
        }
    }
}
