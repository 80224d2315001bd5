#!/bin/bash
# tests/lab/kernel.sh — fetch Debian's 6.1 kernel and build the lab's initramfs (cached).
#
# Our own kernel has no ESP (esp4/gcm), so the lab boots Debian's stock kernel under qemu.
# This script prepares everything the boot needs, in a cache dir:
#
#   $HOPSCOPE_LAB_CACHE (default: <repo>/target/lab-cache)
#     deb/linux-image-<kver>_*.deb    the downloaded package (apt-get download)
#     <kver>/                          the package extracted with dpkg -x (never installed)
#       boot/vmlinuz-<kver>
#       lib/modules/<kver>/            depmod'ed, used by `modprobe -d <cache>/<kver>` in the guest
#     initrd-<kver>.gz                 busybox initramfs: insmod 9p chain, mount host / , switch_root
#     kernel.env                       KVER= VMLINUZ= INITRD= MODROOT= for run.sh (sourced)
#
# Kernel choice: HOPSCOPE_LAB_KVER if set (e.g. 6.1.0-56-amd64), else the newest
# linux-image-6.1.0-N-amd64 that `apt-cache search` lists; if apt knows none (no `apt-get update`)
# but a kernel is cached, the cached one is used.
#
# Idempotent: every step is skipped when its output exists; a lock serialises parallel callers.
# Prints the path of kernel.env on success. Any missing tool/package/module is a loud failure.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
CACHE=${HOPSCOPE_LAB_CACHE:-$REPO/target/lab-cache}

die() { echo "kernel.sh: ERROR: $*" >&2; exit 1; }
log() { echo "kernel.sh: $*" >&2; }

# The modules the initramfs must insmod, in dependency order, to mount host / over virtio-9p.
INITRD_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"

need() { # need TOOL PACKAGE
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install the Debian package '$2' (apt-get install $2)"
}
need apt-get apt
need apt-cache apt
need dpkg dpkg
need depmod kmod
need flock util-linux
need gzip gzip
need qemu-system-x86_64 qemu-system-x86
[ -x /bin/busybox ] || die "/bin/busybox not found: install the Debian package 'busybox-static'"
# busybox-static is statically linked; a dynamic busybox cannot run in the initramfs.
if command -v file >/dev/null 2>&1 && ! file -L /bin/busybox | grep -q 'statically linked'; then
    die "/bin/busybox is not statically linked: install 'busybox-static' (not 'busybox')"
fi

mkdir -p "$CACHE/deb"
exec 9>"$CACHE/.lock"
flock 9

# ---- 1. choose the kernel version -------------------------------------------------------------
KVER=${HOPSCOPE_LAB_KVER:-}
if [ -z "$KVER" ]; then
    KVER=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
        | awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -n1 || true)
fi
if [ -z "$KVER" ]; then
    cached=$(ls -d "$CACHE"/6.1.0-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$cached" ] || die "apt-cache lists no linux-image-6.1.0-N-amd64 and nothing is cached: run 'apt-get update' (Debian bookworm sources needed)"
    KVER=$(basename "$cached")
    log "apt-cache lists no kernel; using cached $KVER"
fi
case "$KVER" in *[!A-Za-z0-9._-]*) die "odd kernel version '$KVER'";; esac

ROOT="$CACHE/$KVER"
VMLINUZ="$ROOT/boot/vmlinuz-$KVER"
MODDIR="$ROOT/lib/modules/$KVER"
INITRD="$CACHE/initrd-$KVER.gz"

# ---- 2. download + extract ---------------------------------------------------------------------
if [ ! -f "$VMLINUZ" ] || [ ! -f "$MODDIR/modules.dep" ]; then
    deb=$(ls "$CACHE/deb/linux-image-${KVER}_"*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        log "downloading linux-image-$KVER"
        (cd "$CACHE/deb" && apt-get download "linux-image-$KVER") >&2 \
            || die "apt-get download linux-image-$KVER failed (run 'apt-get update'?)"
        deb=$(ls "$CACHE/deb/linux-image-${KVER}_"*.deb | head -n1)
    fi
    log "extracting $(basename "$deb")"
    rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
    dpkg -x "$deb" "$ROOT.tmp" || die "dpkg -x $deb failed"
    [ -f "$ROOT.tmp/boot/vmlinuz-$KVER" ] || die "$deb has no boot/vmlinuz-$KVER"
    depmod -b "$ROOT.tmp" "$KVER" || die "depmod failed"
    rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
fi

# ---- 3. initramfs -----------------------------------------------------------------------------
# Its /init (below) is part of the cache key: a changed init rebuilds the initramfs.
INIT_SCRIPT=$(cat <<'EOF'
#!/bin/busybox sh
# hopscope lab initramfs /init: load the virtio-9p chain, mount the host's / (shared by qemu
# with mount_tag host0) and switch_root into it, running the script named on the kernel command
# line as hopscope_lab_init=PATH (normally tests/lab/guest-init.sh).
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "HOPSCOPE-LAB-FAIL: initramfs: $*" >/dev/console; sleep 1; poweroff -f; }
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules.list); do
    insmod "/modules/$m.ko" || fail "insmod $m failed"
done
mkdir -p /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,access=any host0 /newroot \
    || fail "mounting host / over 9p failed"
init=$(sed -n 's/.*hopscope_lab_init=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$init" ] || fail "no hopscope_lab_init= on the kernel command line"
[ -x "/newroot$init" ] || fail "$init is not executable on the host root"
umount /dev 2>/dev/null
umount /proc
exec switch_root /newroot "$init"
EOF
)
stamp="$KVER $(printf '%s' "$INIT_SCRIPT$INITRD_MODULES" | sha256sum | cut -c1-16)"
if [ ! -f "$INITRD" ] || [ "$(cat "$INITRD.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building initramfs for $KVER"
    work=$(mktemp -d "$CACHE/initrd.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/bin" "$work/proc" "$work/dev" "$work/modules"
    cp /bin/busybox "$work/bin/busybox"
    printf '%s\n' "$INIT_SCRIPT" > "$work/init"
    chmod +x "$work/init"
    : > "$work/modules.list"
    for m in $INITRD_MODULES; do
        ko=$(find "$MODDIR/kernel" -name "$m.ko" -print -quit)
        if [ -z "$ko" ]; then
            # built into this kernel? then there is nothing to insmod
            grep -q "/$m\.ko$" "$MODDIR/modules.builtin" \
                || die "module $m is neither in $MODDIR nor built in"
            continue
        fi
        cp "$ko" "$work/modules/$m.ko"
        echo "$m" >> "$work/modules.list"
    done
    (cd "$work" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -9 > "$INITRD.tmp") \
        || die "packing the initramfs failed"
    mv "$INITRD.tmp" "$INITRD"
    echo "$stamp" > "$INITRD.stamp"
fi

cat > "$CACHE/kernel.env" <<EOF
KVER=$KVER
VMLINUZ=$VMLINUZ
INITRD=$INITRD
MODROOT=$ROOT
EOF
echo "$CACHE/kernel.env"
