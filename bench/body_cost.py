#!/usr/bin/env python3
"""Measures what large request bodies cost agentkv and llama-server in memory.
Not a test and not in CI: it prints figures, it asserts nothing.

agentkv serves the test model (a real llama-server it starts). For each case
the peak RSS of both processes is reset (/proc/PID/clear_refs), the case's
requests are sent at once, and the peak RSS each process reached is printed
with the statuses answered:

  flat x1, flat x4    inference bodies of --body-mb holding one flat array of
                      small numbers beside a one-message chat
  chat-text           an inference body of --body-mb: one message of that text
  tokenize-text       /tokenize with a text of --body-mb
  tokenize-brackets   /tokenize, text/plain, --body-mb of '['
  tokenize-2MB        /tokenize with a text of 2 MB (the passthrough limit)
  slow-reader         /tokenize of a 2 MB text with pieces (a 23 MB answer)
                      read at 1 KiB a second for 5 s

Usage:

  python3 bench/body_cost.py [--agentkv build/agentkv] [--body-mb 15.8] [--only CASE...]

Run it against an older binary (--agentkv /path/to/old/agentkv) to compare.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HOME_CACHE = os.path.expanduser("~/.cache/agentkv")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=5.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(port, path, body, content_type="application/json", timeout=600.0):
    """Returns the status answered (or the error that ended the exchange),
    and how many bytes of the body were sent: agentkv may answer 413 before
    the body is sent, and close the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = 0
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        view = memoryview(body)
        while sent < len(body):
            sent += s.send(view[sent:sent + (1 << 20)])
    except OSError:
        pass
    try:
        answer = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            answer += chunk
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else "no answer"
    except OSError as e:
        status = type(e).__name__
    s.close()
    return status, f"{sent / 1e6:.1f} MB sent"


def llama_pid(agentkv_pid):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == agentkv_pid:
                return int(pid)
        except OSError:
            continue
    return None


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def at_once(n, send):
    results = [None] * n

    def run(i):
        results[i] = send()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def flat_body(size):
    head = b'{"messages":[{"role":"user","content":"Say hi."}],"max_tokens":2,"extra":['
    count = (size - len(head) - 2) // 2
    return head + b",".join([b"0"] * count) + b"]}"


def slow_reader(port, seconds=5):
    """Sends /tokenize with a 2 MB text, asking for each token's piece (an
    answer of about 23 MB), and reads the answer at 1 KiB a second."""
    body = json.dumps({"content": "a " * 999990, "with_pieces": True}).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    s.settimeout(120)
    got = len(s.recv(1024))  # the first bytes come once llama-server has tokenized
    s.settimeout(1)
    closed = False
    for _ in range(seconds):
        time.sleep(1)
        try:
            chunk = s.recv(1024)
        except OSError:
            continue
        if not chunk:
            closed = True
            break
        got += len(chunk)
    s.close()
    return f"read {got} bytes, then {'closed by agentkv' if closed else 'still open'}"


def run_case(args, name, n, send):
    """Starts agentkv (and its llama-server) afresh, so that what one case
    left allocated does not count in the next, and runs one case."""
    work = tempfile.mkdtemp(prefix="agentkv-body-")
    port = free_port()
    log = open(os.path.join(work, "agentkv.log"), "w")
    proc = subprocess.Popen([args.agentkv, "serve", "--model", args.model, "--port", str(port),
                             "--memory-dir", os.path.join(work, "memory"), "--slots", "2",
                             "--ctx-per-slot", "2048", "--log-level", "warn"],
                            stdout=log, stderr=log)
    try:
        for _ in range(1200):
            try:
                if get(port, "/readyz", 1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        llama = llama_pid(proc.pid)
        start = f"{peak_mb(proc.pid):.0f} + {peak_mb(llama):.0f}"
        reset_peak(proc.pid)
        reset_peak(llama)
        before = time.monotonic()
        answers = at_once(n, lambda: send(port))
        print(f"{name:18} answered {answers} in {time.monotonic() - before:.1f} s; peak RSS "
              f"(after start {start} MB): agentkv {peak_mb(proc.pid):.0f} MB, "
              f"llama-server {peak_mb(llama):.0f} MB", flush=True)
        with open(log.name) as f:
            for line in f:
                if "too slowly" in line:
                    print("   agentkv's log: " + line.strip())
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agentkv", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                      "agentkv"))
    ap.add_argument("--model", default=os.path.join(HOME_CACHE, "models", "agentkv-test.gguf"))
    ap.add_argument("--body-mb", type=float, default=15.8)
    ap.add_argument("--only", nargs="*", help="the cases to run (all by default)")
    args = ap.parse_args()
    size = int(args.body_mb * 1000 * 1000)
    print(f"agentkv {args.agentkv}, model {args.model}; bodies of {size / 1e6:.1f} MB; "
          f"RSS in MB")
    flat = flat_body(size)
    text = json.dumps({"content": "word " * (size // 5 - 4)}).encode()
    text2 = json.dumps({"content": "word " * 399990}).encode()
    chat = "/agents/flat/v1/chat/completions"
    chat_text = json.dumps({"messages": [{"role": "user", "content": "word " * (size // 5 - 20)}],
                            "max_tokens": 2}).encode()
    cases = [
        ("flat x1", 1, lambda port: post(port, chat, flat)),
        ("flat x4", 4, lambda port: post(port, chat, flat)),
        ("chat-text", 1, lambda port: post(port, chat, chat_text)),
        ("tokenize-text", 1, lambda port: post(port, "/tokenize", text)),
        ("tokenize-2MB", 1, lambda port: post(port, "/tokenize", text2)),
        ("tokenize-brackets", 1, lambda port: post(port, "/tokenize", b"[" * size, "text/plain")),
        ("slow-reader", 1, slow_reader),
    ]
    for name, n, send in cases:
        if not args.only or name in args.only:
            run_case(args, name, n, send)


if __name__ == "__main__":
    sys.exit(main())
