#!/bin/bash
# Kernel cost of the DNS programs per answer: kernel.bpf_stats_enabled=1, a loopback UDP DNS
# flood (flood.py) and a dig +tcp loop (responder.py), run_time_ns / run_cnt from bpftool
# before and after. As root, with nothing on 127.0.0.1:53, after `cargo build --release`:
#   xtask/bench/dns/kernel_cost.sh [SECONDS]      (BENCHMARKS.md, section 7)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
MON=${MONITOR:-$HERE/../../../target/release/monitor}
OUT=$(mktemp -d)
prev=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
$MON run --output file:/dev/null --metrics-interval 1 > $OUT/metrics.jsonl 2>$OUT/monitor.log &
MP=$!
for i in $(seq 50); do grep -q "monitor running" $OUT/monitor.log && break; sleep 0.2; done
snap() { bpftool prog show -j | python3 -c "
import json,sys
for p in json.load(sys.stdin):
    n=p.get('name','')
    if n.startswith('dns_') or n.startswith('udp_cgroup_c') or n.startswith('udp_cgroup_s'):
        print(n, p.get('run_cnt',0), p.get('run_time_ns',0))"; }
snap > $OUT/k0
N=$(python3 $HERE/flood.py ${1:-5})
snap > $OUT/k1
python3 $HERE/responder.py 127.0.0.1 >/dev/null 2>&1 &
RP=$!
sleep 1
for i in $(seq 200); do dig +tcp +short +tries=1 @127.0.0.1 t$i.kcost.test >/dev/null; done
snap > $OUT/k2
kill $RP
sleep 2
kill $MP; wait $MP || true
sysctl -qw kernel.bpf_stats_enabled=$prev
echo "udp answers: $N"
python3 - "$N" "$OUT" <<'PY'
import sys
def load(f):
    d={}
    for l in open(f):
        n,c,t=l.split(); d[n]=(int(c),int(t))
    return d
out=sys.argv[2]
k0,k1,k2=load(out+'/k0'),load(out+'/k1'),load(out+'/k2')
n=int(sys.argv[1])
for name in sorted(set(k0)|set(k1)):
    c=k1.get(name,(0,0))[0]-k0.get(name,(0,0))[0]; t=k1.get(name,(0,0))[1]-k0.get(name,(0,0))[1]
    if c: print(f"UDP flood: {name}: runs {c}, {t/c:.0f} ns/run, {t/n:.0f} ns per answer")
for name in sorted(set(k1)|set(k2)):
    c=k2.get(name,(0,0))[0]-k1.get(name,(0,0))[0]; t=k2.get(name,(0,0))[1]-k1.get(name,(0,0))[1]
    if c: print(f"dig +tcp x200: {name}: runs {c}, {t/c:.0f} ns/run, {t/200:.0f} ns per answer")
PY
rm -rf "$OUT"
