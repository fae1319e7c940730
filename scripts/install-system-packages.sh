#!/usr/bin/env bash
# Installs the Debian packages calico-node needs, in one of two sets:
#
#   install-system-packages.sh           the node's run-time packages plus what the tests
#                                        and the image build use (make setup, CI)
#   install-system-packages.sh --image   the node's run-time packages only (the Dockerfile)
#
# One script for both, so the image and the test machine get exactly the same run-time
# set. Idempotent: does nothing when every package is already installed.
set -euo pipefail

MODE=host
case "${1:-}" in
  "") ;;
  --image) MODE=image ;;
  *) echo "install-system-packages: unknown argument '$1' (expected nothing or --image)" >&2; exit 2 ;;
esac

# What calico-node runs with, in the image and on a test machine alike.
RUNTIME=(
  bird            # bird, bird6, birdc (1.6.x)
  iptables
  ipset
  iproute2
  conntrack
  iputils-ping
  kmod            # modprobe for kernel preparation
  util-linux      # setpriv: test etcd processes die with the test run
  procps          # sysctl
  supervisor
  tini            # the image's PID 1: forwards signals (a bare PID 1 ignores an early SIGTERM)
  python3
  python3-venv
  ca-certificates
)

# Only on the machine that runs the tests and builds the image.
HOST_ONLY=(
  etcd-server     # tests and the demo cluster run a real etcd
  etcd-client
  openssl         # tests generate etcd TLS certificates
  docker.io       # dockerd and containerd: make image, calicoctl node run tests
  debootstrap     # make image builds its Debian base locally (no registry here)
)

PACKAGES=("${RUNTIME[@]}")
if [ "$MODE" = host ]; then
  PACKAGES+=("${HOST_ONLY[@]}")
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-packages: missing ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi

echo "install-system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

if [ "$MODE" = image ]; then
  # Keep the image small: package lists and downloaded archives are not needed at run time.
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  exit 0
fi

# The Debian packages we just installed may have started services we do not want on a
# test host: tests start their own etcd, BIRD and (when none is running) dockerd, the
# last without touching the host's iptables or bridges. Services of packages that were
# already installed are left alone.
declare -A SERVICES=(
  [etcd-server]="etcd" [bird]="bird bird6" [supervisor]="supervisor"
  [docker.io]="docker docker.socket containerd"
)
for pkg in "${missing[@]}"; do
  for svc in ${SERVICES[$pkg]:-}; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    fi
  done
done
