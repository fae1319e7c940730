#!/usr/bin/env bash
# Installs the Debian packages calico-node needs at run time and in tests.
# Shared by `make setup` (developer machines, CI) and the Dockerfile, so the
# image and the test machine get exactly the same set. Idempotent: does nothing
# when every package is already installed.
set -euo pipefail

PACKAGES=(
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
  etcd-server     # tests and the demo cluster run a real etcd
  etcd-client
  python3
  python3-venv
  ca-certificates
  openssl         # tests generate etcd TLS certificates
)

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
# The Debian packages enable services we do not want running on a test host:
# tests start their own etcd and BIRD on private ports and sockets.
for svc in etcd bird bird6 supervisor; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
