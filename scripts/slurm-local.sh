#!/usr/bin/env bash
# slurm-local.sh — a real, single-node Slurm on this machine, for tests.
#
# Usage:  scripts/slurm-local.sh start|stop|status
#
#   start   Install Slurm + munge from Debian packages if missing, write a
#           slurm.conf for this host, start munged, slurmctld and slurmd, and
#           wait (bounded) until the node is idle. Already running: no-op.
#   stop    Cancel all jobs, then stop slurmd, slurmctld and munged, each by
#           the PID in its own pid file (TERM, wait, then KILL). Idempotent.
#   status  Say which daemons run (by pid file) and show sinfo/squeue.
#           Exit code: 0 when all three daemons run, 3 otherwise.
#
# Target: Debian 12 (bookworm), run as root, no systemd as PID 1 (containers,
# CI VMs). We therefore start the daemons directly instead of via services.
#
# Layout (all fixed, so tests can rely on it):
#   config       /etc/slurm/slurm.conf          (rewritten by `start`)
#   logs         /var/log/slurm/slurmctld.log, /var/log/slurm/slurmd.log,
#                /var/log/munge/munged.log
#   pid files    /run/slurmctld.pid, /run/slurmd.pid, /run/munge/munged.pid
#   state        /var/spool/slurmctld (owner slurm), /var/spool/slurmd
#
# Accounting is off (no slurmdbd), so `sacct` does not work. Use
# `squeue` / `scontrol show job <id>`; MinJobAge=600 keeps finished jobs
# visible to both for 10 minutes.

set -euo pipefail

readonly PACKAGES=(slurmctld slurmd slurm-client munge)
readonly SLURM_CONF=/etc/slurm/slurm.conf
readonly LOG_DIR=/var/log/slurm
readonly CTLD_PID=/run/slurmctld.pid
readonly SLURMD_PID=/run/slurmd.pid
readonly MUNGE_PID=/run/munge/munged.pid
readonly MUNGE_KEY=/etc/munge/munge.key
readonly MUNGE_LOG=/var/log/munge/munged.log
readonly POLICY_RC_D=/usr/sbin/policy-rc.d
# Marker line that identifies a policy-rc.d written by this script, so that
# we only ever remove our own file, never one the machine already had.
readonly POLICY_MARKER='# created by expops-smk scripts/slurm-local.sh'
readonly START_TIMEOUT=30   # seconds to wait for the node to become idle
readonly STOP_TIMEOUT=10    # seconds between TERM and KILL per daemon

log()  { printf '[slurm-local] %s\n' "$*"; }
die()  { printf '[slurm-local] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# pid-file helpers
# --------------------------------------------------------------------------

# True if process $1 exists and is not a zombie. The daemons fork away from
# us, so after they exit they stay zombies until PID 1 reaps them; in
# containers/VMs PID 1 may reap only every few seconds, and `kill -0`
# alone would count such a zombie as still running.
pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    # Field 3 of /proc/PID/stat is the state; comm (field 2) is in parens
    # and may contain spaces, so cut after the last ')'.
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Print the PID from pid file $1 if that process is alive AND is really the
# daemon $2. Checking the command name guards against a stale pid file whose
# PID has since been reused by an unrelated process (we must never signal
# that one).
live_pid() {
    local pidfile=$1 name=$2 pid comm
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 1
    pid_alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    printf '%s\n' "$pid"
}

is_running() { live_pid "$1" "$2" >/dev/null; }

# PIDs that stop_daemon ended; cmd_stop waits for them to be reaped.
STOPPED_PIDS=()

# Stop daemon $2 via pid file $1: TERM, wait up to STOP_TIMEOUT s, then KILL.
# Only the PID recorded in the daemon's own pid file is ever signalled.
stop_daemon() {
    local pidfile=$1 name=$2 pid i
    if ! pid=$(live_pid "$pidfile" "$name"); then
        log "$name: not running"
        # A leftover pid file (daemon crashed or was KILLed) would only
        # confuse the next status check.
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid (TERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        log "$name: still alive after ${STOP_TIMEOUT}s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    fi
    pid_alive "$pid" && die "$name (pid $pid) did not exit"
    STOPPED_PIDS+=("$pid")
    # Daemons remove their pid file on a clean exit, but not after KILL.
    rm -f "$pidfile"
    log "$name: stopped"
}

# --------------------------------------------------------------------------
# installation
# --------------------------------------------------------------------------

packages_installed() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || return 1
        [[ $status == 'install ok installed' ]] || return 1
    done
}

# Remove the temporary policy-rc.d, but only if it is still the one we wrote.
remove_own_policy_rc_d() {
    if [[ -f $POLICY_RC_D ]] && grep -qxF "$POLICY_MARKER" "$POLICY_RC_D"; then
        rm -f "$POLICY_RC_D"
    fi
}

install_packages() {
    if packages_installed; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    log "installing ${PACKAGES[*]} (apt-get)"
    local t0=$SECONDS
    # The packages' post-install scripts try to start munge/slurmctld/slurmd
    # via invoke-rc.d. Without systemd that either fails or starts daemons
    # with the stock config behind our back; we start them ourselves below.
    # A policy-rc.d exiting 101 tells invoke-rc.d "do not start services".
    # If the machine already has one (Docker images ship one), we leave it
    # exactly as it is — never overwrite or delete someone else's file.
    if [[ -e $POLICY_RC_D ]]; then
        log "keeping the existing $POLICY_RC_D (not ours)"
    else
        # Remove it however this script ends (error, success, or a signal,
        # which we turn into a normal exit so that the EXIT trap runs).
        trap remove_own_policy_rc_d EXIT
        trap 'exit 130' INT TERM HUP
        # noclobber (set -C): never overwrite a file that appeared meanwhile.
        (set -C; printf '#!/bin/sh\n%s\n# Deny service starts during package install.\nexit 101\n' \
            "$POLICY_MARKER" >"$POLICY_RC_D")
        chmod 0755 "$POLICY_RC_D"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
    remove_own_policy_rc_d
    trap - EXIT INT TERM HUP
    log "installed in $((SECONDS - t0)) s"
}

# --------------------------------------------------------------------------
# munge
# --------------------------------------------------------------------------

setup_munge() {
    # munged refuses to run unless its dirs are owned by its user and are not
    # group/world writable, so set owners and modes explicitly every time.
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s $MUNGE_KEY ]]; then
        log "creating $MUNGE_KEY"
        # 1 KiB of random bytes; it is only shared with ourselves.
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
}

start_munge() {
    if is_running "$MUNGE_PID" munged; then
        log "munged: already running (pid $(live_pid "$MUNGE_PID" munged))"
    else
        setup_munge
        # A socket left behind by a KILLed munged makes the new one refuse
        # to start ("socket in use" check); only remove it when no munged runs.
        rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
        log "munged: starting as user munge"
        # Run as the unprivileged munge user, as the packaged service does.
        runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" \
            --log-file="$MUNGE_LOG"
    fi
    # The credential round trip is what slurm relies on; check it for real.
    if ! munge -n | unmunge >/dev/null; then
        tail -n 20 "$MUNGE_LOG" >&2 || true
        die "munge -n | unmunge failed"
    fi
    log "munge: credential round trip OK"
}

# --------------------------------------------------------------------------
# slurm.conf
# --------------------------------------------------------------------------

write_slurm_conf() {
    local host cpus mem_kb real_mem comm_params addr
    host=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # Leave ~1 GiB to the OS and the daemons; slurmd refuses to register if
    # RealMemory exceeds what it measures itself.
    real_mem=$((mem_kb / 1024 - 1024))
    ((real_mem >= 256)) || real_mem=256

    # Loopback only. Clients and slurmd reach slurmctld through
    # SlurmctldHost's address (127.0.0.1), slurmctld reaches slurmd through
    # NodeAddr (127.0.0.1). By default the daemons still *listen* on
    # INADDR_ANY (0.0.0.0), i.e. on every interface. With
    # NoCtldInAddrAny/NoInAddrAny (Slurm 22.05 slurm_setup_addr()) they bind
    # instead to the address that gethostname() resolves to. That is
    # loopback-only exactly when the host name resolves to 127.x. If it
    # resolves to another address (e.g. the eth0 IP), binding there would
    # leave nothing listening on 127.0.0.1 and every client would fail to
    # connect, so in that case we do NOT set the flags and accept listening
    # on all interfaces (same ports 6817/6818, munge-authenticated).
    addr=$(getent ahostsv4 "$(hostname)" | awk 'NR == 1 {print $1}') || true
    if [[ $addr == 127.* ]]; then
        comm_params='CommunicationParameters=NoCtldInAddrAny,NoInAddrAny'
    else
        comm_params="# CommunicationParameters not set: $(hostname) resolves to '${addr:-nothing}', not 127.x"
        log "note: $(hostname) resolves to '${addr:-nothing}', daemons will listen on all interfaces"
    fi

    install -d -m 0755 /etc/slurm
    local tmp
    tmp=$(mktemp /etc/slurm/slurm.conf.XXXXXX)
    cat >"$tmp" <<EOF
# Written by expops-smk scripts/slurm-local.sh for host '$host' — do not edit,
# it is rewritten on every 'start'. Single node, loopback, no cgroups,
# no accounting.
ClusterName=expops
SlurmctldHost=${host}(127.0.0.1)
${comm_params}

AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
MpiDefault=none
SwitchType=switch/none
# No cgroups: plain process tracking and no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Nothing to mail; avoids errors about a missing /usr/bin/mail.
MailProg=/bin/true

# Schedule CPUs and memory as consumable resources, so --mem / -c matter.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
# A node that was down (e.g. slurmd restarted) comes back by itself.
ReturnToService=2
# Keep finished jobs visible to squeue/scontrol for 10 min: Snakemake's
# slurm plugin polls with squeue, and tests read 'scontrol show job'.
MinJobAge=600
# Short grace between SIGTERM and SIGKILL on scancel, so 'stop' is quick.
KillWait=5

# No accounting database: sacct does not work.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 0644 "$tmp"
    mv -f "$tmp" "$SLURM_CONF"
    log "wrote $SLURM_CONF (node $host, CPUs=$cpus, RealMemory=${real_mem} MB)"
}

# --------------------------------------------------------------------------
# start / stop / status
# --------------------------------------------------------------------------

print_log_tails() {
    local f
    for f in "$MUNGE_LOG" "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        echo "----- last lines of $f -----" >&2
        tail -n 25 "$f" >&2 2>/dev/null || echo "(missing)" >&2
    done
    echo "----- (daemons that did start are left running for inspection;" \
        "'$0 stop' stops them) -----" >&2
}

# Node states of all nodes, one per line ("idle", "mixed", "unknown*", ...).
node_states() { timeout 10 sinfo -h -o %T 2>/dev/null; }

all_running() {
    is_running "$MUNGE_PID" munged &&
        is_running "$CTLD_PID" slurmctld &&
        is_running "$SLURMD_PID" slurmd
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    if all_running && [[ -n $(node_states) ]]; then
        log "already running (slurmctld pid $(live_pid "$CTLD_PID" slurmctld)," \
            "slurmd pid $(live_pid "$SLURMD_PID" slurmd)); nothing to do"
        node_states | sed 's/^/[slurm-local] node state: /'
        return 0
    fi

    install_packages
    local t0=$SECONDS
    start_munge

    # Dirs the daemons write to. slurmctld runs as SlurmUser=slurm, so its
    # state and log dir must belong to slurm; slurmd runs as root.
    install -d -o slurm -g slurm -m 0755 "$LOG_DIR" /var/spool/slurmctld
    install -d -o root -g root -m 0755 /var/spool/slurmd

    # Only (re)write the config when no slurm daemon is running: changing it
    # under a running daemon would make the two disagree.
    if ! is_running "$CTLD_PID" slurmctld && ! is_running "$SLURMD_PID" slurmd; then
        write_slurm_conf
    else
        log "a slurm daemon is already running; keeping $SLURM_CONF as is"
    fi

    local i
    if is_running "$CTLD_PID" slurmctld; then
        log "slurmctld: already running"
    else
        log "slurmctld: starting"
        # Daemonizes itself and writes $CTLD_PID.
        /usr/sbin/slurmctld || { print_log_tails; die "slurmctld failed to start"; }
    fi
    # Wait until the controller answers before starting slurmd, so slurmd's
    # registration is not lost to a not-yet-listening controller.
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
        # Fail fast if the daemon already died (bad config, port in use...).
        if ((i >= 4)) && ! is_running "$CTLD_PID" slurmctld; then
            print_log_tails
            die "slurmctld exited during start-up (see its log above)"
        fi
        sleep 0.5
    done
    if ! timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
        print_log_tails
        die "slurmctld did not answer 'scontrol ping' within ${START_TIMEOUT}s"
    fi

    if is_running "$SLURMD_PID" slurmd; then
        log "slurmd: already running"
    else
        log "slurmd: starting"
        /usr/sbin/slurmd || { print_log_tails; die "slurmd failed to start"; }
    fi

    # Ready means: the node registered and is schedulable. "idle" on a fresh
    # start; "mixed"/"allocated" if jobs already run. A trailing '*' means
    # "not responding", '~' powered down — not ready.
    local states=''
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        states=$(node_states || true)
        if grep -qxE 'idle|mixed|allocated' <<<"$states"; then
            log "node ready ($(tr '\n' ' ' <<<"$states" | sed 's/ $//')) after $((SECONDS - t0)) s"
            return 0
        fi
        # slurmd writes its pid file right after forking; if that process is
        # gone after a short grace period, waiting longer will not help.
        if ((i >= 4)) && ! is_running "$SLURMD_PID" slurmd; then
            print_log_tails
            die "slurmd exited during start-up (see its log above)"
        fi
        sleep 0.5
    done
    print_log_tails
    die "node not idle after ${START_TIMEOUT}s (sinfo says: '${states:-nothing}')"
}

cmd_stop() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local i ids
    # Cancel every job first: slurmd does not kill running job steps when it
    # stops, so jobs left alone would outlive the daemons.
    if is_running "$CTLD_PID" slurmctld &&
        timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; then
        ids=$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null || true)
        if [[ -n $ids ]]; then
            log "cancelling jobs: $(tr '\n' ' ' <<<"$ids")"
            # shellcheck disable=SC2086  # one id per word is what we want
            timeout 10 scancel $ids || true
            # Give slurmd the time to kill the job steps (KillWait=5 + slack).
            for ((i = 0; i < 30; i++)); do
                [[ -z $(timeout 5 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
    stop_daemon "$MUNGE_PID" munged
    # The daemons have exited, but until PID 1 reaps them they still show up
    # in `ps` as <defunct>. Wait (bounded) for that, so a `ps` check right
    # after `stop` sees nothing left. Not an error if PID 1 is slow.
    local pid left
    for ((i = 0; i < 50; i++)); do
        left=''
        for pid in "${STOPPED_PIDS[@]}"; do
            [[ -e /proc/$pid ]] && left+="$pid "
        done
        [[ -z $left ]] && break
        sleep 0.1
    done
    [[ -z $left ]] || log "note: exited daemons not yet reaped by PID 1: $left"
    # Job step helpers that survived would hold the node's resources; report
    # them (we do not kill by name, only by our own pid files).
    if pgrep -x slurmstepd >/dev/null 2>&1; then
        log "warning: slurmstepd processes still exist: $(pgrep -x slurmstepd | tr '\n' ' ')"
    fi
}

cmd_status() {
    local rc=0 name pidfile pid
    for name in munged slurmctld slurmd; do
        case $name in
            munged) pidfile=$MUNGE_PID ;;
            slurmctld) pidfile=$CTLD_PID ;;
            slurmd) pidfile=$SLURMD_PID ;;
        esac
        if pid=$(live_pid "$pidfile" "$name"); then
            printf '%-10s running (pid %s)\n' "$name" "$pid"
        else
            printf '%-10s not running\n' "$name"
            rc=3
        fi
    done
    if is_running "$CTLD_PID" slurmctld; then
        echo '--- sinfo'
        timeout 10 sinfo || true
        echo '--- squeue'
        timeout 10 squeue || true
    fi
    return "$rc"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
