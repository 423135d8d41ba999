#!/bin/bash
# The guest half of `cargo xtask debvm`, run by debvm-check.service in a booted Debian 12
# (systemd as init) from the payload disk. It installs the monitor package and checks the
# service as an operator meets it. Each check prints one line on the serial console,
#   DEBVM CHECK <name> ok|FAIL [detail]
# which the host reads (xtask/src/debvm.rs has the list it expects); then it powers off.
set -u
P=/payload
# shellcheck source=/dev/null
. "$P/env" # INTERVAL COUNT DEB1 DEB2 VERSION1 VERSION2
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
FAILED=0
ok() { echo "DEBVM CHECK $1 ok${2:+ $2}"; }
fail() {
    echo "DEBVM CHECK $1 FAIL${2:+ $2}"
    FAILED=1
}
info() { echo "DEBVM INFO $*"; }
# wait_for SECONDS CMD...: until CMD succeeds, once a second.
wait_for() {
    local n=$1
    shift
    for ((i = 0; i < n; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}
journal() { journalctl -u monitor.service -o cat --no-pager; }
count_log() { journal | grep -c -- "$1"; }
# wait_log SECONDS TEXT N: until the daemon's log holds TEXT more than N times.
wait_log() { wait_for "$1" sh -c "[ \$(journalctl -u monitor.service -o cat --no-pager | grep -c -- '$2') -gt $3 ]"; }
dump_journal() { journal | tail -n "${1:-30}" | sed 's/^/DEBVM LOG /'; }
progs() { bpftool prog show --json 2>/dev/null || echo '[]'; }
links() { bpftool link show --json 2>/dev/null || echo '[]'; }
# new_ids NEW_JSON BASE_JSON: "id:name" of the entries in NEW that are not in BASE, leaving
# out systemd's own cgroup programs (sd_devices for DevicePolicy, sd_fw_* for IPAddressDeny),
# which it makes for units starting at any time, the monitor's among them.
new_ids() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
new, base = (json.load(open(p)) for p in sys.argv[1:3])
old = {e["id"] for e in base}
print(" ".join("%s:%s" % (e["id"], e.get("name", e.get("type", "?"))) for e in new
               if e["id"] not in old and not e.get("name", "").startswith("sd_")))
EOF
}
finish() {
    echo "DEBVM DONE failed=$FAILED"
    sync
    systemctl poweroff --no-block
    exit 0
}

echo "DEBVM START kernel=$(uname -r) $(systemctl --version | head -1)"

# The test host: an address that is neither loopback nor private (T1571 leaves those out),
# on lo, with a python3 HTTP listener on 8088 (the seed's 8088 beacon test).
ip addr add 192.0.2.10/32 dev lo
mkdir -p /srv/beacon && echo ok >/srv/beacon/beacon
(cd /srv/beacon && exec python3 -m http.server --bind 192.0.2.10 8088 >/dev/null 2>&1) &
progs >/tmp/progs-base.json
links >/tmp/links-base.json

# 1. Installing enables and starts the service.
if dpkg -i "$P/$DEB1" </dev/null >/tmp/dpkg1.log 2>&1; then
    ok install "$VERSION1"
else
    fail install "$(tail -5 /tmp/dpkg1.log | tr '\n' ' ')"
fi
state=$(systemctl is-enabled monitor.service 2>&1)
[ "$state" = enabled ] && ok enabled || fail enabled "$state"
if wait_log 240 "monitor running" 0 && [ "$(systemctl is-active monitor.service)" = active ]; then
    ok active "$(journal | grep -m1 'monitor running')"
else
    fail active "$(systemctl is-active monitor.service)"
    dump_journal 40
    finish
fi
missing=""
for f in /usr/sbin/monitor /usr/lib/systemd/system/monitor.service /etc/monitor/monitor.toml \
    /etc/monitor/rules.d/README /usr/share/man/man8/monitor.8.gz /usr/share/man/man8/monitor-run.8.gz \
    /usr/share/bash-completion/completions/monitor /usr/share/zsh/vendor-completions/_monitor \
    /usr/share/fish/vendor_completions.d/monitor.fish /usr/share/doc/monitor/copyright \
    /usr/share/monitor/rules/t1571_non_standard_port.yml /var/lib/monitor; do
    [ -e "$f" ] || missing="$missing $f"
done
conffiles=$(dpkg-query -W -f='${Conffiles}' monitor)
for f in /etc/monitor/monitor.toml /etc/monitor/rules.d/README; do
    echo "$conffiles" | grep -q " $f " || missing="$missing conffile:$f"
done
grep -q "^Files: usr/share/monitor/rules/\*" /usr/share/doc/monitor/copyright || missing="$missing copyright:rules"
[ -z "$missing" ] && ok package-files || fail package-files "missing:$missing"

# 2. The hardened unit: exposure, and what the daemon holds after attach.
systemd-analyze security monitor.service >/tmp/security.txt 2>&1
sed 's/^/DEBVM SECURITY /' /tmp/security.txt
exposure=$(sed -n 's/.*Overall exposure level for monitor.service: \([0-9.]*\).*/\1/p' /tmp/security.txt)
if [ -n "$exposure" ] && python3 -c "import sys; sys.exit(0 if float('$exposure') <= 3.0 else 1)"; then
    ok exposure "$exposure"
else
    fail exposure "${exposure:-unreadable}"
fi
pid=$(systemctl show -p MainPID --value monitor.service)
status=$(grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "/proc/$pid/status" | tr -s '\t ' ' ' | tr '\n' ' ')
info "daemon $pid: $status"
# After attach: CAP_DAC_READ_SEARCH (2) and CAP_SYS_PTRACE (19) only, no_new_privs, seccomp.
want="CapPrm: 0000000000080004 CapEff: 0000000000080004 CapBnd: 0000000000080004 CapAmb: 0000000000000000 NoNewPrivs: 1 Seccomp: 2 "
[ "$status" = "$want" ] && ok capabilities "$status" || fail capabilities "$status (want $want)"

# 3. The 8088 beacon test: curl (a shell loop, root) and python3 (as nobody), COUNT
# check-ins every INTERVAL s; T1571 and beacon alerts in auth.log and in the journal.
url=http://192.0.2.10:8088/beacon
sh -c "i=0; while [ \$i -lt $COUNT ]; do curl -s -o /dev/null --max-time 5 $url; i=\$((i+1)); [ \$i -lt $COUNT ] && sleep $INTERVAL; done" &
curl_loop=$!
setpriv --reuid=nobody --regid=nogroup --clear-groups python3 "$P/beacon.py" "$url" "$COUNT" "$INTERVAL" &
py=$!
wait "$curl_loop" "$py"
if wait_for 90 python3 "$P/alerts.py" beacon /var/log/auth.log "$COUNT"; then
    ok beacon-syslog "auth.log (rsyslog, facility authpriv)"
else
    fail beacon-syslog
fi
python3 "$P/alerts.py" beacon /var/log/auth.log "$COUNT" | sed 's/^/DEBVM SYSLOG /'
journalctl -t monitor -o cat --no-pager >/tmp/journal-alerts.txt
if python3 "$P/alerts.py" beacon /tmp/journal-alerts.txt "$COUNT" >/tmp/journal-check.txt; then
    ok beacon-journal
else
    fail beacon-journal
    sed 's/^/DEBVM JOURNAL /' /tmp/journal-check.txt
fi

# 4. Reload: a broken operator rule is rejected with its file and line, the old set stays;
# a good one is added to the built-in set.
n=$(count_log "new rules rejected")
cat >/etc/monitor/rules.d/broken.yml <<'EOF'
title: Broken operator rule
logsource:
    category: network_connection
    product: linux
detection:
    sel:
        DestinationPort|bogus: 7
    condition: sel
EOF
systemctl reload monitor.service
if wait_log 120 "new rules rejected" "$n"; then
    line=$(journal | grep "new rules rejected" | tail -1)
    if echo "$line" | grep -q "/etc/monitor/rules.d/broken.yml:7"; then
        ok reload-rejected "$line"
    else
        fail reload-rejected "no file:line in: $line"
    fi
else
    fail reload-rejected "no rejection logged"
    dump_journal 20
fi
[ "$(systemctl is-active monitor.service)" = active ] && ok reload-still-active || fail reload-still-active
rm -f /etc/monitor/rules.d/broken.yml
cat >/etc/monitor/rules.d/local.yml <<'EOF'
title: Operator rule for the debvm test (port 7)
id: 4a7d2f0e-8c1b-4e6a-9f3d-2b5c7e1a0d94
status: test
logsource:
    category: network_connection
    product: linux
detection:
    sel:
        DestinationPort: 7
    condition: sel
level: low
EOF
n=$(count_log "rules reloaded")
systemctl reload monitor.service
if wait_log 120 "rules reloaded" "$n"; then
    info "$(journal | grep 'rules reloaded' | tail -1)"
    curl -s --max-time 3 http://192.0.2.10:7/operator-rule-check
    # The built-in set is still there beside it: T1571 for a new group (new parent).
    bash -c 'curl -s --max-time 3 http://192.0.2.10:4444/builtin-rule-check'
    if wait_for 60 python3 "$P/alerts.py" marker /var/log/auth.log operator-rule-check &&
        wait_for 30 python3 "$P/alerts.py" marker /var/log/auth.log builtin-rule-check; then
        ok reload-operator-rules "operator rule and built-in rule both alert"
    else
        fail reload-operator-rules "$(python3 "$P/alerts.py" marker /var/log/auth.log rule-check | tail -3 | tr '\n' ' ')"
    fi
else
    fail reload-operator-rules "no reload logged"
    dump_journal 20
fi

# 5. Upgrade: an edited config is kept, and an alert queued while the collector is down
# survives the restart in the spool. The edit adds a TCP syslog output to a local rsyslog
# input, which is then stopped.
cat >/etc/rsyslog.d/90-debvm-tcp.conf <<'EOF'
module(load="imtcp")
ruleset(name="debvm_tcp") { action(type="omfile" file="/var/log/monitor-tcp.log") }
input(type="imtcp" address="127.0.0.1" port="6514" ruleset="debvm_tcp")
EOF
systemctl restart rsyslog.service
sed -i 's|^outputs = \["syslog"\]|outputs = ["syslog", "syslog+tcp://127.0.0.1:6514"] # edited by debvm|' /etc/monitor/monitor.toml
n=$(count_log "monitor running")
systemctl restart monitor.service
wait_log 240 "monitor running" "$n" || fail upgrade "no restart after the config edit"
curl -s --max-time 3 http://192.0.2.10:7/tcp-output-check
if wait_for 60 python3 "$P/alerts.py" marker /var/log/monitor-tcp.log tcp-output-check; then
    ok tcp-output
else
    fail tcp-output
    dump_journal 20
fi
# The collector goes away (the socket too, or journald's forwarding would start it again).
systemctl stop syslog.socket rsyslog.service
curl -s --max-time 3 http://192.0.2.10:7/spool-check
sleep 5
n=$(count_log "monitor running")
if dpkg -i "$P/$DEB2" </dev/null >/tmp/dpkg2.log 2>&1; then
    version=$(dpkg-query -W -f='${Version}' monitor)
    [ "$version" = "$VERSION2" ] && ok upgrade "$VERSION1 -> $version" || fail upgrade "version $version"
else
    fail upgrade "$(tail -5 /tmp/dpkg2.log | tr '\n' ' ')"
fi
grep -q "edited by debvm" /etc/monitor/monitor.toml && ok config-kept || fail config-kept
[ -e /etc/monitor/rules.d/local.yml ] && ok rules-kept || fail rules-kept
wait_log 240 "monitor running" "$n" || fail upgrade-restart "the daemon did not start again"
info "spool: $(find /var/lib/monitor -type f -printf '%p %s bytes; ' 2>/dev/null)"
journal | grep -iE "spool" | tail -5 | sed 's/^/DEBVM LOG /'
systemctl start syslog.socket rsyslog.service
if wait_for 120 python3 "$P/alerts.py" marker /var/log/monitor-tcp.log spool-check; then
    ok spool-delivered "the alert queued before the upgrade reached the collector after it"
else
    fail spool-delivered
    dump_journal 30
fi

# 6. Restart=on-failure: a killed daemon comes back.
n=$(count_log "monitor running")
systemctl kill -s KILL monitor.service
if wait_log 240 "monitor running" "$n" && [ "$(systemctl is-active monitor.service)" = active ]; then
    ok restart-on-failure
else
    fail restart-on-failure "$(systemctl is-active monitor.service)"
fi

# 7. `systemctl stop` leaves no program or link of the daemon attached.
progs >/tmp/progs-run.json
links >/tmp/links-run.json
running="$(new_ids /tmp/progs-run.json /tmp/progs-base.json)"
running_links="$(new_ids /tmp/links-run.json /tmp/links-base.json)"
info "programs while running: $running"
info "links while running: $running_links"
systemctl stop monitor.service
progs >/tmp/progs-stop.json
links >/tmp/links-stop.json
left="$(new_ids /tmp/progs-stop.json /tmp/progs-base.json)"
left_links="$(new_ids /tmp/links-stop.json /tmp/links-base.json)"
if [ -z "$running" ]; then
    fail stop-detaches "no programs seen while running (bpftool prog show)"
elif [ -n "$left$left_links" ]; then
    fail stop-detaches "left after stop: programs [$left] links [$left_links]"
else
    ok stop-detaches "$(echo "$running" | wc -w) programs, $(echo "$running_links" | wc -w) links, none left"
fi

# 8. Removing stops the service and detaches; purging removes the spool and /etc/monitor.
n=$(count_log "monitor running")
# The checks above started it 4 times within the unit's 5-minute start limit.
systemctl reset-failed monitor.service
systemctl start monitor.service
wait_log 240 "monitor running" "$n"
if dpkg -r monitor </dev/null >/tmp/dpkg-r.log 2>&1 && ! systemctl is-active --quiet monitor.service; then
    left="$(progs >/tmp/progs-rm.json; new_ids /tmp/progs-rm.json /tmp/progs-base.json)"
    [ -z "$left" ] && ok remove || fail remove "programs left: $left"
else
    fail remove "$(tail -5 /tmp/dpkg-r.log | tr '\n' ' ')"
fi
if dpkg -P monitor </dev/null >/tmp/dpkg-p.log 2>&1 && [ ! -e /var/lib/monitor ] && [ ! -e /etc/monitor ]; then
    ok purge
else
    fail purge "$(ls -d /var/lib/monitor /etc/monitor 2>&1 | tr '\n' ' ')"
fi
finish
