"""Starts and stops llama-server and agentkv on loopback, and waits for them."""
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=2.0):
    """The status code of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None


class Server:
    """One child process serving HTTP on a loopback port; its output goes to log_path."""

    def __init__(self, name, argv, port, log_path, ready_path):
        self.name, self.argv, self.port = name, argv, port
        self.log_path, self.ready_path = log_path, ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self, timeout=300):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            self.wait_status(200, timeout)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def wait_status(self, status, timeout=300):
        """Polls ready_path until it answers `status` (None: nothing answers)."""
        deadline = time.monotonic() + timeout
        while True:
            if http_status(self.url + self.ready_path) == status:
                return
            if self.proc is not None and self.proc.poll() is not None and status is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {status} on {self.ready_path} "
                                   f"within {timeout} s; see {self.log_path}")
            time.sleep(0.05)

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wrapped(binary):
    """(real binary, added arguments) of a llama-server that is setup's two-line
    wrapper script (a build that runs here only with some arguments), else
    (binary, [])."""
    try:
        with open(binary, "rb") as f:
            if f.read(2) != b"#!":
                return binary, []
            f.seek(0)
            for line in f.read(4096).decode(errors="replace").splitlines():
                if line.startswith("exec "):
                    parts = shlex.split(line)
                    return parts[1], [a for a in parts[2:] if a != "$@"]
    except OSError:
        pass
    return binary, []


def llama_build(binary):
    """The CMake options of interest of the build a llama-server binary came from."""
    real, added = wrapped(binary)
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(real))),
                         "CMakeCache.txt")
    found = {"runtime_args": " ".join(added)} if added else {}
    try:
        with open(cache) as f:
            for line in f:
                for key in ("GGML_CPU_KLEIDIAI", "GGML_NATIVE", "GGML_AVX2", "CMAKE_C_FLAGS",
                            "CMAKE_BUILD_TYPE"):
                    if line.startswith(key + ":"):
                        found[key] = line.split("=", 1)[1].strip()
    except OSError:
        return None
    return found


def llama_server(tools, args, log_path, port=None):
    """A llama-server on the benchmark's model with the common arguments plus `args`."""
    port = port or free_port()
    argv = [tools.llama_server, "--model", tools.model, "--host", "127.0.0.1",
            "--port", str(port), "--threads", str(tools.threads), "--seed", "1"] + args
    return Server("llama-server", argv, port, log_path, "/health")


def agentkv(tools, upstream, memory_dir, log_path, args=()):
    """agentkv fronting an already running llama-server, with extra `args`."""
    port = free_port()
    argv = [tools.agentkv, "serve", "--port", str(port), "--upstream", upstream.url,
            "--memory-dir", memory_dir] + list(args)
    return Server("agentkv", argv, port, log_path, "/readyz")
