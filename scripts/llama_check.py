#!/usr/bin/env python3
"""Checks that a llama-server build runs on this machine, and picks one that does.

A llama-server built for one CPU can die on another (SIGILL), or on the
very CPU it was built for when the compiler got it wrong (GCC 12 and ggml's
AMX kernels: see docs/operations.md, "Any CPU"). This starts llama-server on each model with a prompt of a few
hundred tokens and asks for a few generated tokens, the way agentkv's first
request would.

  check   one build: exits 0 if every model served, 1 with the reason if not
  pick    candidates in order, each built only when the ones before it
          failed; prints the first that serves every model as
          "NAME<TAB>SERVER<TAB>ARGS" and exits 0, or exits 1
  measure every candidate on one model: prefill tokens/s (median of 3)

A candidate is "NAME::COMMAND::ARGS": a name, a shell command that builds
it and prints the path of its llama-server on its last line of output, and
llama-server arguments (e.g. --no-repack; may be empty). Standard library
only: setup runs it with /usr/bin/python3.
"""
import argparse
import json
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

WORDS = ("river stone planner window garden quickly seven blue market engine silent "
         "winter paper bridge orange forest signal castle memory yellow travel number "
         "simple museum across before circle doctor energy family guitar island").split()


def text(seed, n_words):
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(code):
    """How the process ended, as agentkv's own log says it."""
    if code >= 0:
        return f"exited with status {code}"
    sig = -code
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    what = signal.strsignal(sig) or ""
    out = f"was killed by {name} ({what})"
    if sig == signal.SIGILL:
        out += (": it ran an instruction this CPU cannot run, or one that fails here "
                "(ggml's AMX kernels built by GCC 12)")
    return out


class Failed(Exception):
    pass


def post(url, body, timeout):
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def serve_once(server, args, model, prompts, predict, threads, timeout, log):
    """Starts llama-server on `model`, sends each prompt, returns their timings."""
    port = free_port()
    cmd = [server, "--model", model, "--host", "127.0.0.1", "--port", str(port),
           "--ctx-size", "2048", "--parallel", "1", "--threads", str(threads)] + args
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise Failed(f"llama-server {describe_exit(proc.returncode)} while it loaded "
                             "the model")
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise Failed(f"llama-server did not answer /health within {timeout} s")
            time.sleep(0.1)
        timings = []
        for prompt in prompts:
            try:
                answer = post(base + "/completion",
                              {"prompt": prompt, "n_predict": predict, "temperature": 0,
                               "cache_prompt": False}, timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                try:
                    proc.wait(timeout=2)  # a death cuts the answer: let it be reaped
                except subprocess.TimeoutExpired:
                    pass
                if proc.poll() is not None:
                    raise Failed(f"llama-server {describe_exit(proc.returncode)} on its first "
                                 "request") from None
                raise Failed(f"llama-server did not answer a request: {e}") from None
            t = answer.get("timings", {})
            if answer.get("tokens_predicted", 0) < 1 or t.get("prompt_n", 0) < 50:
                raise Failed(f"llama-server answered without computing: {json.dumps(t)}")
            timings.append(t)
        return timings
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def check(server, args, models, words, predict, threads, timeout, quiet=False):
    """None if every model served, else the reason."""
    with tempfile.NamedTemporaryFile("w+", prefix="llama-check-", suffix=".log") as log:
        for model in models:
            try:
                t = serve_once(server, args, model, [text(1, words)], predict, threads,
                               timeout, log)[0]
            except Failed as e:
                log.flush()
                log.seek(0)
                tail = log.read().splitlines()[-3:]
                return f"{os.path.basename(model)}: {e}" + (
                    "; its last lines: " + " | ".join(tail) if tail else "")
            if not quiet:
                print(f"  {os.path.basename(model)}: {t['prompt_n']} prompt tokens at "
                      f"{t['prompt_per_second']:.0f} tokens/s, {t['predicted_n']} generated",
                      file=sys.stderr)
    return None


def build(command):
    """Runs a candidate's build command; its last line of output names llama-server."""
    out = subprocess.run(command, shell=True, stdout=subprocess.PIPE, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
        raise Failed(f"build failed ({command}, status {out.returncode})")
    return lines[-1]


def candidate(spec):
    parts = spec.split("::")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"not NAME::COMMAND::ARGS: {spec!r}")
    return tuple(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "pick", "measure"])
    ap.add_argument("--server", help="check: the llama-server to run")
    ap.add_argument("--args", default="", help="check: llama-server arguments, one string")
    ap.add_argument("--candidate", action="append", default=[], type=candidate,
                    metavar="NAME::COMMAND::ARGS")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--words", type=int, default=200,
                    help="prompt length in words (about 1.5 tokens each)")
    ap.add_argument("--predict", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()

    if a.mode == "check":
        why = check(a.server, shlex.split(a.args), a.model, a.words, a.predict, a.threads,
                    a.timeout)
        if why:
            print(f"llama-server {a.server} {a.args}: {why}", file=sys.stderr)
            return 1
        return 0

    if a.mode == "pick":
        for name, command, args in a.candidate:
            try:
                server = build(command)
            except Failed as e:
                print(f"llama-server '{name}': {e}", file=sys.stderr)
                continue
            print(f"llama-server '{name}' ({server} {args}):", file=sys.stderr)
            why = check(server, shlex.split(args), a.model, a.words, a.predict, a.threads,
                        a.timeout)
            if why is None:
                print(f"{name}\t{server}\t{args}")
                return 0
            print(f"llama-server '{name}' does not run here: {why}", file=sys.stderr)
        print("no llama-server build runs every model on this machine", file=sys.stderr)
        return 1

    # measure: prefill speed of each candidate that runs, on the first model
    for name, command, args in a.candidate:
        try:
            server = build(command)
            with tempfile.TemporaryFile("w+") as log:
                prompts = [text(seed, a.words) for seed in (1, 2, 3, 4)]
                timings = serve_once(server, shlex.split(args), a.model[0], prompts, a.predict,
                                     a.threads, a.timeout, log)[1:]  # the first warms up
        except Failed as e:
            print(f"{name}\t{args}\tdoes not run: {e}")
            continue
        prefill = statistics.median(t["prompt_per_second"] for t in timings)
        decode = statistics.median(t["predicted_per_second"] for t in timings)
        print(f"{name}\t{args or '-'}\tprefill {prefill:.1f} tokens/s "
              f"({timings[0]['prompt_n']} tokens), decode {decode:.1f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
