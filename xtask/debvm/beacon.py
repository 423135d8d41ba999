# A beacon: COUNT HTTP GETs to URL, one every INTERVAL seconds on a fixed schedule (the
# seed's python3 beacon of the 8088 test).
import sys
import time
import urllib.request

url, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
for i in range(count):
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except Exception as e:  # a failed check-in is still a connection
        print("beacon", i, "failed:", e, file=sys.stderr)
    if i + 1 < count:
        time.sleep(max(0.0, start + (i + 1) * interval - time.monotonic()))
