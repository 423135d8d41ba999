#!/bin/sh
# PID 1 of the VM kernel test (`cargo xtask vm`, xtask/src/vm.rs). Everything printed here
# reaches the host through the serial console, which the host parses between the
# `=== ... ===` markers. /etc/vmtest.env (written by the host) sets PROBES, TCP_PORT,
# FORK_PORT, FORK_PROBE, DNS_PORT, DNS_PROBE, LIFE_PROBE and LIFE_PORTS (TCP, closed, UDP).

/bin/busybox --install -s /bin
export PATH=/bin
# The monitor logs through tracing; plain text keeps `hook=... backend=...` greppable.
export NO_COLOR=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Keep kernel messages off the console so they cannot split the JSON lines; they are
# printed from dmesg in their own section instead.
echo 1 >/proc/sys/kernel/printk
# Same cgroup layout as the CI host: a tmpfs on /sys/fs/cgroup, cgroup2 under `unified`.
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/unified
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmpfs /tmp
hostname vmtest
ip link set lo up

. /etc/vmtest.env

echo
echo "=== VM READY kernel=$(uname -r) ==="

# Waits up to $2 tenths of a second for the file $1 to contain every word in $3.
wait_for_words() {
    tries=0
    while [ "$tries" -lt "$2" ]; do
        missing=0
        for w in $3; do
            grep -q "$w" "$1" 2>/dev/null || missing=1
        done
        [ "$missing" = 0 ] && return 0
        kill -0 "$MONITOR_PID" 2>/dev/null || return 1
        usleep 100000
        tries=$((tries + 1))
    done
    return 1
}

run_probe() {
    probe=$1
    out=/tmp/$probe.json
    log=/tmp/$probe.log
    echo "=== START $probe ==="
    echo "uptime $(cut -d' ' -f1 /proc/uptime) s: starting monitor run --probe $probe --lifecycle"
    /monitor run --probe "$probe" --events --lifecycle --rules /empty-rules >"$out" 2>"$log" &
    MONITOR_PID=$!
    # The start-up log names each hook's backend once its program is attached.
    if wait_for_words "$log" 600 "tcp_connect udp_sendmsg"; then
        echo "=== ATTACHED $probe ==="
    else
        echo "=== NOT ATTACHED $probe (monitor gone or no hook lines within 60 s) ==="
    fi
    # Attached programs queue events in the ring buffer even while the monitor is still
    # priming its process table; the pause only keeps the traffic clear of start-up.
    usleep 500000

    # TCP: a full connect to a loopback listener, which closes it at once (-e true).
    nc -l -p "$TCP_PORT" -e true &
    listener=$!
    usleep 300000
    timeout 5 nc 127.0.0.1 "$TCP_PORT" </dev/null
    echo "=== TCP $probe client-status=$? ==="
    kill "$listener" 2>/dev/null
    wait "$listener" 2>/dev/null

    # UDP: DNS queries to 127.0.0.1:53; nothing answers, only the sends matter.
    timeout 3 nslookup example.test 127.0.0.1 >/dev/null 2>&1
    echo "=== UDP $probe sent ==="

    # A child that connects and sends without exec'ing: it must have its parent's identity.
    echo "=== FORK $probe $("$FORK_PROBE" "$FORK_PORT") ==="

    # DNS over UDP and over TCP from a server the probe runs on 127.0.0.1:53, each answer
    # connected to: the records must name the client and the connections the names.
    dns_out=$("$DNS_PROBE" "$DNS_PORT")
    echo "=== DNS $probe $dns_out status=$? ==="

    # Lifecycle (--lifecycle): a UDP bind, a TCP listen, a connect and its accept with known
    # bytes each way and orderly closes, a refused connect, one with no route (vm/life.rs).
    # shellcheck disable=SC2086 # three port numbers
    life_out=$("$LIFE_PROBE" $LIFE_PORTS)
    echo "=== LIFE $probe $life_out status=$? ==="
    set -- $LIFE_PORTS
    life_closed=$2

    # The monitor flushes each record as it is written: wait for both (the host checks them
    # properly; this only avoids stopping the monitor before it has drained its ring buffer).
    wait_for_words "$out" 150 "\"port\":$TCP_PORT} \"port\":53} \"port\":$FORK_PORT} \"127.0.0.3\" \"port\":$life_closed}"
    # The refused connect's result follows its connect record by a moment.
    usleep 200000
    kill -TERM "$MONITOR_PID" 2>/dev/null
    tries=0
    while kill -0 "$MONITOR_PID" 2>/dev/null && [ "$tries" -lt 150 ]; do
        usleep 100000
        tries=$((tries + 1))
    done
    if kill -0 "$MONITOR_PID" 2>/dev/null; then
        echo "=== TIMEOUT $probe: monitor still running 15 s after SIGTERM, killing it ==="
        kill -KILL "$MONITOR_PID"
    fi
    wait "$MONITOR_PID"
    status=$?
    echo "uptime $(cut -d' ' -f1 /proc/uptime) s: monitor stopped"
    echo "=== STATUS $probe $status ==="
    echo "=== BEGIN $probe log ==="
    cat "$log"
    echo "=== END $probe log ==="
    echo "=== BEGIN $probe ==="
    cat "$out"
    echo "=== END $probe ==="
}

for p in $PROBES; do
    run_probe "$p"
done

echo "=== BEGIN dmesg ==="
dmesg | tail -n 40
echo "=== END dmesg ==="
echo "=== VM DONE ==="
poweroff -f
