# Sourced by the packaging scripts: check the tools a script needs before it starts, and install
# the missing ones (apt-get as root), or say the one command that does.
#   need PACKAGE:COMMAND ...   e.g. need flex:flex bison:bison dpkg-dev:dpkg-source
need() {
  local missing=() p
  for p in "$@"; do
    command -v "${p#*:}" >/dev/null 2>&1 || missing+=("${p%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "$(basename "$0"): installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  else
    echo "$(basename "$0"): missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
}

# need_cargo [SUBCOMMAND:CRATE ...]: cargo itself (apt has no rustup on Debian 12: say the one
# command that installs it), then each cargo subcommand, installed with `cargo install` if missing.
need_cargo() {
  local cargo=${CARGO:-cargo} p
  if ! command -v "$cargo" >/dev/null 2>&1; then
    echo "$(basename "$0"): no cargo; install Rust with: curl --proto '=https' -sSf https://sh.rustup.rs | sh" >&2
    exit 1
  fi
  for p in "$@"; do
    if ! "$cargo" "${p%%:*}" --version >/dev/null 2>&1; then
      echo "$(basename "$0"): installing ${p#*:}" >&2
      "$cargo" install --locked "${p#*:}" >&2
    fi
  done
}
