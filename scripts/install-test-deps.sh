#!/usr/bin/env bash
# Installs what Strata's tests need at run time, idempotently:
#   - with apt: etcd-server (etcd 3.4), docker-registry (distribution 2.8, the OCI
#     registry) and faketime (libfaketime, which the leader-election test preloads to put
#     one controller's wall clock ahead); apt is skipped when all are installed;
#   - scripts/kube-binaries.sh: kube-apiserver, kube-controller-manager, kube-scheduler and
#     kubectl v1.20.2 built from Debian's source package and cached. (Debian's
#     kubernetes-client is not used: its kubectl 1.20 segfaults when it writes a kubeconfig
#     - the reflect2 bug the build fixes - and its /usr/bin/kubectl conflicts with the
#     Google Cloud SDK's kubectl package, which some machines have.)
#   - scripts/helm-engine.sh, when it exists.
# The tests start their own etcd and registry processes on free ports: this script keeps
# the packages' system services from starting on install (policy-rc.d), disables the ones
# it installed on systemd machines, and stops any etcd or registry daemon listening on the
# default ports (2379, 5000). Ends with a summary of what is where.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PACKAGES=(etcd-server docker-registry faketime)
# package  service  default port  daemon process name
readonly DAEMONS=("etcd-server etcd 2379 etcd" "docker-registry docker-registry 5000 docker-registry")

log() { printf '[install-test-deps %4ss] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install packages with apt"
    SUDO=(sudo -n)
fi

# (No `producer | grep -q`: with pipefail, grep quitting early fails the producer.)
installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

has_candidate() {
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null) || return 1
    [[ $policy =~ Candidate:\ [^\(] ]]
}

POLICY=/usr/sbin/policy-rc.d
OUR_POLICY=0
cleanup() {
    if [ "$OUR_POLICY" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT

apt_quiet() {
    local out status=0
    out=$("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@" 2>&1 </dev/null) || status=$?
    if [ "$status" -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 30 >&2
        log "'apt-get $*' failed (exit $status)" >&2
    fi
    return "$status"
}

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then
    log "${PACKAGES[*]}: already installed"
else
    for p in "${missing[@]}"; do
        if ! has_candidate "$p"; then
            log "apt-get update"
            apt_quiet update
            break
        fi
    done
    # Keep postinst scripts from starting etcd and the registry (invoke-rc.d and
    # deb-systemd-invoke both ask policy-rc.d); an existing policy is left alone.
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# Temporary, from Strata'"'"'s scripts/install-test-deps.sh: no service starts.\nexit 101\n' \
            | "${SUDO[@]}" tee "$POLICY" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY"
        OUR_POLICY=1
    fi
    log "apt-get install ${missing[*]}"
    if ! apt_quiet install -y --no-install-recommends "${missing[@]}"; then
        log "retrying after apt-get update (the package lists may be stale)"
        apt_quiet update
        apt_quiet install -y --no-install-recommends "${missing[@]}"
    fi
    cleanup
    OUR_POLICY=0
    # On systemd, the units are enabled and would start at the next boot: disable those of
    # the packages installed just now (a daemon someone set up on purpose is left alone).
    if [ -d /run/systemd/system ]; then
        for d in "${DAEMONS[@]}"; do
            read -r pkg service _ _ <<<"$d"
            case " ${missing[*]} " in
            *" $pkg "*)
                log "disabling the $service service (tests start their own)"
                "${SUDO[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
                ;;
            esac
        done
    fi
fi

# Stop etcd / registry daemons that hold the default ports (e.g. started by a postinst on
# a machine without systemd and without policy-rc.d). Only the listening process is
# stopped: the packages' init.d scripts must not be used for this, as `/etc/init.d/etcd
# stop` ends with `start-stop-daemon --stop --exec /usr/bin/etcd`, which would kill every
# etcd on the machine, the running tests' ones included.
pids_on_port() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
if command -v ss >/dev/null; then
    for d in "${DAEMONS[@]}"; do
        read -r _ service port name <<<"$d"
        for pid in $(pids_on_port "$port"); do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || continue
            log "stopping the $name daemon (pid $pid) listening on port $port (tests start their own)"
            if [[ $(cat "/proc/$pid/cgroup" 2>/dev/null) == */"$service".service* ]]; then
                # A systemd unit would restart a killed daemon: stop the unit.
                "${SUDO[@]}" systemctl stop "$service" >/dev/null 2>&1 || true
            fi
            if [ -d "/proc/$pid" ]; then
                "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
                if [ -d "/proc/$pid" ]; then "${SUDO[@]}" kill -KILL "$pid" 2>/dev/null || true; fi
            fi
        done
    done
else
    log "ss not found: not checking ports 2379 and 5000 for etcd or registry daemons"
fi

bash scripts/kube-binaries.sh

if [ -f scripts/helm-engine.sh ]; then
    bash scripts/helm-engine.sh
else
    log "scripts/helm-engine.sh not found: skipping the Helm engine"
fi

# The ORAS Python SDK, for the interoperability tests and the registry benchmark.
log "ORAS Python SDK (scripts/oras-sdk.sh)"
oras_python=$(bash scripts/oras-sdk.sh)

cache=${STRATA_CACHE_DIR:-$HOME/.cache/strata}
kube_bin=$cache/kubernetes-v1.20.2/bin
helm_lib=$cache/helm-sdkpy/libhelm_sdkpy.so
first_line() { "$@" 2>&1 | head -n 1; }
log "summary:"
printf '  %-24s %s (%s)\n' \
    etcd /usr/bin/etcd "$(first_line /usr/bin/etcd --version)" \
    docker-registry /usr/bin/docker-registry "$(dpkg-query -W -f='${Version}' docker-registry)"
printf '  %-24s %s (%s)\n' libfaketime \
    "$(dpkg-query -L libfaketime | grep 'libfaketimeMT.so.1$')" "$(dpkg-query -W -f='${Version}' libfaketime)"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    printf '  %-24s %s\n' "$b" "$kube_bin/$b"
done
if [ -f "$helm_lib" ]; then
    printf '  %-24s %s\n' "helm engine" "$helm_lib"
else
    printf '  %-24s %s\n' "helm engine" "not installed ($helm_lib)"
fi
printf '  %-24s %s (%s)\n' "ORAS Python SDK" "$oras_python" "$(cat "$(dirname "$(dirname "$oras_python")")/STRATA-ORAS-VERSION")"
