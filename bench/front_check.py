#!/usr/bin/env python3
"""Measures agentkv's http front under hostile clients. Not a test and not in
CI: it prints figures, it asserts nothing.

  1. peak RSS of agentkv for a 2 GB chunked body to an inference route (/agents/big/v1/chat/completions);
  2. /healthz latency with 200 clients that sent half a request line and stalled;
  3. /healthz latency with every slot busy and the wait queue full
     (and then with the 200 stalled clients as well).

agentkv runs in front of a fake llama-server started here (its completions
are held until the script lets them go), so no model computes and the CPU
stays free. Usage:

  python3 bench/front_check.py [--agentkv build/agentkv] [--body-gb 2]

Run it against an older binary (--agentkv /path/to/old/agentkv) to compare.
"""
import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOTS = 2


class FakeLlama(BaseHTTPRequestHandler):
    """Just enough of llama-server for agentkv to start and place agents."""
    protocol_version = "HTTP/1.1"
    release = threading.Event()
    model_path = ""

    def log_message(self, *args):
        pass

    def answer(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self.answer({"status": "ok"})
        if self.path == "/props":
            return self.answer({"total_slots": SLOTS, "model_path": self.model_path,
                                "build_info": "fake",
                                "default_generation_settings": {"n_ctx": 4096}})
        return self.answer({"data": []})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.path.startswith("/slots/"):
            slot = int(self.path.split("/")[2].split("?")[0])
            return self.answer({"id_slot": slot, "filename": "x", "n_saved": 0, "n_written": 0,
                                "n_restored": 0, "n_read": 0, "n_erased": 0,
                                "timings": {"save_ms": 0, "restore_ms": 0}})
        FakeLlama.release.wait()  # a long prefill, until the script says
        return self.answer({"content": "x", "timings": {"cache_n": 0, "prompt_n": 1,
                                                        "predicted_n": 1}})


def get(port, path, timeout=10.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def healthz_ms(port, timeout=10.0):
    """Milliseconds from connect to a whole /healthz answer, or None past `timeout`."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                s.settimeout(max(0.001, timeout - (time.monotonic() - start)))
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        status = data.split(b" ", 2)[1].decode() if data else "none"
        return (time.monotonic() - start) * 1000, status
    except (socket.timeout, OSError) as e:
        return None, type(e).__name__


def latencies(port, n=5):
    out = [healthz_ms(port) for _ in range(n)]
    text = ", ".join("timeout" if ms is None else f"{ms:.1f} ms ({st})" for ms, st in out)
    return text


def chunked_body(port, total):
    """Sends a chunked body of `total` bytes until agentkv answers or drops it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /agents/big/v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"100000\r\n" + b" " * 0x100000 + b"\r\n"
    sent, start, answer = 0, time.monotonic(), b""
    s.setblocking(False)
    while sent < total:
        readable, writable, _ = select.select([s], [s], [], 60)
        if readable or not writable:
            break
        try:
            s.sendall(piece)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
        sent += 0x100000
    else:
        try:
            s.setblocking(True)
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
    s.setblocking(True)
    s.settimeout(120)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and len(answer) > 200:
                break
    except OSError:
        pass
    s.close()
    status = answer.split(b" ", 2)[1].decode() if answer else "none"
    return status, sent, time.monotonic() - start


def stall(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /hea")
        socks.append(s)
    return socks


def fill_queue(port, n):
    """n inference requests of distinct agents, sent and left waiting."""
    socks = []
    for i in range(n):
        body = json.dumps({"prompt": "hello", "n_predict": 1}).encode()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"POST /agents/q{i}/completion HTTP/1.1\r\nHost: localhost\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body)
        socks.append(s)
    return socks


def waiting(port):
    _, text = get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith("agentkv_waiting_requests "):
            return int(float(line.split()[1]))
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentkv", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                      "agentkv"))
    ap.add_argument("--body-gb", type=float, default=2.0)
    ap.add_argument("--stalled", type=int, default=200)
    ap.add_argument("--max-queue", type=int, default=64)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="agentkv-front-")
    model = os.path.join(work, "model.bin")  # agentkv fingerprints the model file
    with open(model, "wb") as f:
        f.write(os.urandom(2 << 20))
    FakeLlama.model_path = model
    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeLlama)
    fake.daemon_threads = True
    threading.Thread(target=fake.serve_forever, daemon=True).start()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(work, "agentkv.log"), "w")
    proc = subprocess.Popen([args.agentkv, "serve", "--upstream",
                             f"http://127.0.0.1:{fake.server_address[1]}", "--port", str(port),
                             "--memory-dir", work, "--prefix-min-tokens", "0",
                             "--max-queue", str(args.max_queue), "--log-level", "warn"],
                            stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                if get(port, "/readyz", 1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        print(f"agentkv {args.agentkv} pid {proc.pid} on port {port}")
        print(f"peak RSS after start: {peak_rss_mb(proc.pid)[0]:.1f} MB")

        total = int(args.body_gb * (1 << 30))
        status, sent, secs = chunked_body(port, total)
        hwm, rss = peak_rss_mb(proc.pid)
        print(f"1. chunked body of {total / (1 << 30):.1f} GiB to /agents/big/v1/chat/completions: answered {status} "
              f"after {sent / (1 << 20):.0f} MiB sent, {secs:.2f} s; "
              f"peak RSS {hwm:.1f} MB, RSS now {rss:.1f} MB")
        print(f"   /healthz then: {latencies(port, 3)}")

        stalled = stall(port, args.stalled)
        time.sleep(0.5)  # let the daemon take them in
        print(f"2. {args.stalled} stalled clients: /healthz {latencies(port)}")
        for s in stalled:
            s.close()
        time.sleep(0.5)

        queued = fill_queue(port, SLOTS + args.max_queue)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and waiting(port) < args.max_queue:
            time.sleep(0.05)
        start = time.monotonic()
        extra = fill_queue(port, 1)[0]
        extra.settimeout(10)
        try:
            refused = extra.recv(200).split(b" ", 2)[1].decode()
        except OSError as e:
            refused = type(e).__name__
        print(f"3. {SLOTS} slots busy, {waiting(port)} waiting (queue {args.max_queue}): "
              f"one more request answered {refused} in {(time.monotonic() - start) * 1000:.1f} "
              f"ms; /healthz {latencies(port)}")
        stalled = stall(port, args.stalled)
        time.sleep(0.5)
        print(f"   and {args.stalled} stalled clients too: /healthz {latencies(port)}")
        print(f"peak RSS at the end: {peak_rss_mb(proc.pid)[0]:.1f} MB")
        for s in stalled + queued + [extra]:
            s.close()
    finally:
        FakeLlama.release.set()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        fake.shutdown()
        print(f"log: {log.name}")


if __name__ == "__main__":
    sys.exit(main())
