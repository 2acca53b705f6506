"""Scenario 10, connections: what open client connections cost agentkv.

agentkv in front of the fake llama-server (as in scale.py), with C client
connections held open beside one measured client: each of the C sends
`GET /healthz` on its kept-alive connection every `ping_s` seconds (agentkv
closes a connection idle for 5 s), as a gateway's pooled connections or
clients between turns do. With them open, the measured client runs turns
of two resident agents for `duration_s` seconds (no restore: what is timed
is the front and the proxy), and agentkv's RSS and threads are read. `--max-connections` and
`--max-connections-per-client` are raised above C: the limits are not what
is measured."""
import selectors
import socket
import threading
import time

from . import scale

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class HeldConnections:
    """`count` kept-alive connections, each asking /healthz every `ping_s` s,
    served by one thread with a selector."""

    def __init__(self, port, count, ping_s=2.0):
        self.port, self.count, self.ping_s = port, count, ping_s
        self.answers, self.failures, self.stopping = 0, 0, False
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        sel = selectors.DefaultSelector()
        conns = {}  # socket -> [buffer, time of next ask or None while one is out]
        answered_once = set()

        def ask(s):
            try:
                s.sendall(REQUEST)
                conns[s] = [b"", None]
                sel.modify(s, selectors.EVENT_READ)
            except OSError:
                drop(s)

        def drop(s):
            self.failures += 1
            sel.unregister(s)
            conns.pop(s, None)
            s.close()
            open_one()

        def open_one():
            if self.stopping:
                return
            s = socket.create_connection(("127.0.0.1", self.port))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            conns[s] = [b"", None]
            ask(s)

        for _ in range(self.count):
            open_one()
        while not self.stopping:
            now = time.monotonic()
            for s, state in list(conns.items()):
                if state[1] is not None and now >= state[1]:
                    ask(s)
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    drop(s)
                    continue
                state = conns[s]
                state[0] += data
                head, sep, body = state[0].partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(body) < length:
                    continue
                if not head.startswith(b"HTTP/1.1 200"):
                    self.failures += 1
                self.answers += 1
                answered_once.add(s)
                if len(answered_once) >= self.count:
                    self.ready.set()
                if b"connection: close" in head.lower():
                    drop(s)
                    continue
                state[0], state[1] = b"", time.monotonic() + self.ping_s
        for s in list(conns):
            s.close()

    def stop(self):
        self.stopping = True
        self.thread.join()


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return None


def run(tools, counts, work, progress, duration_s=10):
    most = max(counts) + 64
    results = []
    with scale.served(tools, work, "clients", 4, ["--max-connections", str(most),
                                                  "--max-connections-per-client",
                                                  str(most)]) as (_, a):
        c = scale.Client(a.port)
        for i in range(2):
            scale.turn(c, f"/agents/{scale.agent_id(i)}/completion", i)
        for count in [0] + list(counts):
            progress(f"{count:,} connections held open")
            held = HeldConnections(a.port, count) if count else None
            if held and not held.ready.wait(120):
                raise RuntimeError(f"{count} connections did not all get an answer")
            turns, deadline = [], time.monotonic() + duration_s
            while time.monotonic() < deadline:
                i = len(turns) % 2
                turns.append(scale.turn(c, f"/agents/{scale.agent_id(i)}/completion", i)[0])
            results.append({"connections": count, "turn_ms": turns, "rss_kib": a.rss_kib(),
                            "threads": threads_of(a.proc.pid),
                            "pings": held.answers if held else 0,
                            "ping_failures": held.failures if held else 0})
            if held:
                held.stop()
        c.close()
    return results


def summary(raw, pct):
    base = pct(raw[0]["turn_ms"], 50)
    return [{"connections": r["connections"], "turn_p50_ms": pct(r["turn_ms"], 50),
             "turn_p99_ms": pct(r["turn_ms"], 99),
             "added_p50_ms": round(pct(r["turn_ms"], 50) - base, 2),
             "rss_mib": round(r["rss_kib"] / 1024, 1), "threads": r["threads"],
             "pings": r["pings"], "ping_failures": r["ping_failures"]} for r in raw]
