#!/usr/bin/env python3
"""Returning agents' turns while a client polls /admin/agents: how long
listing holds the index's lock against placements. Standard library only.

Needs a running agentkv on a scale directory of 100,000 agents (scenario
10's, as bench/harness/scale.py synthesises it) in front of the fake:

  cp -al ~/.cache/agentkv/scale/100000 /tmp/s5
  build/tests/agentkv-fake-llama --slots 2 --dir /tmp/s5 --port 18575 &
  build/agentkv serve --port 18576 --upstream http://127.0.0.1:18575 --memory-dir /tmp/s5 &
  python3 bench/admin_poll_check.py 18576

Prints p50, p99 and max of 400 turns of random agents, one after the
other, while another thread asks for a middle page of /admin/agents back to
back."""
import http.client
import json
import random
import sys
import threading
import time

port = int(sys.argv[1])
stop = False


def poll():
    c = http.client.HTTPConnection("127.0.0.1", port)
    while not stop:
        c.request("GET", "/admin/agents?offset=50000&limit=50")
        c.getresponse().read()


poller = threading.Thread(target=poll)
poller.start()
c = http.client.HTTPConnection("127.0.0.1", port)
rng = random.Random(1)
lat = []
for _ in range(400):
    i = rng.randrange(100000)
    body = json.dumps({"prompt": f"agent:scale-{i}|the notes agent {i} keeps between its turns next",
                       "n_predict": 1})
    t0 = time.perf_counter()
    c.request("POST", f"/agents/scale-{i}/completion", body, {"Content-Type": "application/json"})
    c.getresponse().read()
    lat.append((time.perf_counter() - t0) * 1000)
stop = True
poller.join()
lat.sort()
print(f"turns with a poller: p50 {lat[200]:.1f} ms, p99 {lat[396]:.1f} ms, max {lat[-1]:.1f}")
