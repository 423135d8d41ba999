# Finds the monitor's alerts in a syslog file or `journalctl -o cat` output and checks them
# (the guest half of `cargo xtask debvm`; xtask/debvm/check.sh calls it).
#   alerts.py beacon FILE COUNT   T1571 rule and beacon alerts for curl and python3 on 8088
#   alerts.py marker FILE TEXT    an alert whose command line holds TEXT
# Prints what it found; exit 0 when everything expected is there.
import json
import sys


def records(path):
    with open(path, errors="replace") as f:
        for line in f:
            i = line.find("{")
            if i < 0:
                continue
            try:
                r = json.loads(line[i:])
            except ValueError:
                continue
            if isinstance(r, dict):
                yield r


def get(r, dotted):
    for k in dotted.split("."):
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def brief(r):
    return "%s %s pid=%s user=%s exe=%s %s:%s %s" % (
        get(r, "monitor.detector"), get(r, "threat.technique.id"), get(r, "process.pid"),
        get(r, "user.name"), get(r, "process.executable"), get(r, "destination.ip"),
        get(r, "destination.port"), get(r, "monitor.level"))


def main():
    mode, path = sys.argv[1], sys.argv[2]
    alerts = [r for r in records(path) if get(r, "event.kind") == "alert"]
    print("alerts.py: %d alerts in %s" % (len(alerts), path))
    for a in alerts:
        print("alerts.py:   " + brief(a))
    problems = []
    if mode == "beacon":
        count = int(sys.argv[3])
        for name, user in (("curl", "root"), ("python3", "nobody")):
            # By executable: /usr/bin/python3 is a link to python3.11, and the kernel's
            # file is what identifies the process.
            mine = [a for a in alerts
                    if (get(a, "process.executable") or "").startswith("/usr/bin/" + name)]
            if not any(get(a, "monitor.detector") == "rule"
                       and "T1571" in (get(a, "threat.technique.id") or [])
                       and get(a, "destination.port") == 8088 for a in mine):
                problems.append("%s: no T1571 rule alert for port 8088" % name)
            if not any(get(a, "monitor.detector") == "beacon"
                       and (get(a, "monitor.beacon.connections") or 0) >= count - 1
                       for a in mine):
                problems.append("%s: no beacon alert with %d connections" % (name, count - 1))
            # Identity from the kernel and /proc, also for another user's process (the
            # unit's ProtectProc=invisible must not hide it from the daemon).
            if not any(get(a, "user.name") == user
                       and (get(a, "process.executable") or "").startswith("/usr/bin/" + name)
                       for a in mine):
                problems.append("%s: no alert with user %s and executable /usr/bin/%s*"
                                % (name, user, name))
    elif mode == "marker":
        text = sys.argv[3]
        if not any(text in (get(a, "process.command_line") or "") for a in alerts):
            problems.append("no alert whose command line holds %r" % text)
    else:
        problems.append("unknown mode %r" % mode)
    for p in problems:
        print("alerts.py: MISSING " + p)
    sys.exit(1 if problems else 0)


main()
