#!/bin/bash
# docs/screenshots/make.sh — the README's and user guide's pictures, from the real TUI in the
# real-kernel lab: boots the lab (tests/lab.rs' healthy and no-out-policy groups; root, qemu),
# where tests/lab/checks/tui-packets.sh drives the TUI in tmux and saves `capture-pane -e`
# screens, then renders them to PNG (render.py: Pillow + fonts-dejavu-core).
# HOPSCOPE_LAB_REUSE=1 renders the last lab run's screens without booting.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo test --test lab tui_packets
lab=${CARGO_TARGET_DIR:-target}/tmp/lab
for n in links sas packets trace; do
    python3 docs/screenshots/render.py "$lab/healthy/tui-packets/$n.ansi" "docs/screenshots/$n.png" --rows 32
done
python3 docs/screenshots/render.py "$lab/no-out-policy/tui-packets/packets.ansi" docs/screenshots/leaks.png --rows 24
ls -l docs/screenshots/*.png
