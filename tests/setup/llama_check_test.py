#!/usr/bin/env python3
"""scripts/llama_check.py against stand-ins for llama-servers that cannot run here.

A machine that has never seen a llama-server die (no AMX, the CPU it was
built on) must still take setup's fallback path: these stand-ins die by
SIGILL while loading, or on their first request, or unless given
--no-repack, in which case they run the real llama-server. The real one on
the test model must pass, so that the check is not one that fails everything.
Needs the llama-server and test model setup installed ($AGENTKV_LLAMA_SERVER,
$AGENTKV_TEST_MODEL override them).
"""
import os
import pathlib
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "llama_check.py"
CACHE = pathlib.Path(os.environ.get("AGENTKV_CACHE_DIR") or
                     pathlib.Path(os.environ.get("XDG_CACHE_HOME") or
                                  pathlib.Path.home() / ".cache") / "agentkv")
REAL = os.environ.get("AGENTKV_LLAMA_SERVER") or str(CACHE / "bin" / "llama-server")
MODEL = os.environ.get("AGENTKV_TEST_MODEL") or str(CACHE / "models" / "agentkv-test.gguf")

# Answers /health, then dies by SIGILL on the first completion, as a build
# whose prefill kernels fault would.
DIES_ON_REQUEST = r'''#!/usr/bin/env python3
import http.server, os, signal, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"status":"ok"}')
    def do_POST(self):
        os.kill(os.getpid(), signal.SIGILL)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


class LlamaCheckTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.access(REAL, os.X_OK), f"{REAL}: run scripts/setup.sh")
        self.assertTrue(os.path.exists(MODEL), f"{MODEL}: run scripts/setup.sh")
        self.dir = tempfile.TemporaryDirectory(prefix="llama-check-test-")
        d = pathlib.Path(self.dir.name)
        self.dies_loading = self.script(d / "dies-loading", "#!/bin/sh\nkill -ILL $$\n")
        self.dies_on_request = self.script(d / "dies-on-request", DIES_ON_REQUEST)
        self.runs_without_repack = self.script(
            d / "runs-without-repack",
            '#!/bin/sh\ncase " $* " in *" --no-repack "*) exec "$REAL" "$@" ;; esac\n'
            "kill -ILL $$\n")

    def tearDown(self):
        self.dir.cleanup()

    @staticmethod
    def script(path, text):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    def run_check(self, *args):
        env = dict(os.environ, REAL=REAL)
        return subprocess.run([sys.executable, str(CHECK), *args, "--model", MODEL,
                               "--timeout", "120"],
                              capture_output=True, text=True, env=env, timeout=600)

    def test_a_server_killed_by_sigill_while_loading_fails_the_check_and_says_so(self):
        r = self.run_check("check", "--server", self.dies_loading)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("was killed by SIGILL (Illegal instruction)", r.stderr)
        self.assertIn("while it loaded the model", r.stderr)

    def test_a_server_killed_by_sigill_on_its_first_request_fails_the_check(self):
        r = self.run_check("check", "--server", self.dies_on_request)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("was killed by SIGILL", r.stderr)
        self.assertIn("on its first request", r.stderr)

    def test_the_real_server_passes_and_reports_its_prefill(self):
        r = self.run_check("check", "--server", REAL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("prompt tokens at", r.stderr)

    def test_pick_takes_the_first_candidate_that_runs_with_its_arguments(self):
        r = self.run_check(
            "pick",
            "--candidate", f"native::echo {self.dies_loading}::",
            "--candidate", "noamx::echo building; exit 1::",
            "--candidate", f"eager::echo {self.dies_on_request}::",
            "--candidate", f"native-no-repack::echo {self.runs_without_repack}::--no-repack")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"native-no-repack\t{self.runs_without_repack}\t--no-repack\n")
        self.assertIn("'native' does not run here", r.stderr)
        self.assertIn("'noamx': build failed", r.stderr)
        self.assertIn("'eager' does not run here", r.stderr)

    def test_pick_fails_when_no_candidate_runs(self):
        r = self.run_check("pick", "--candidate", f"native::echo {self.dies_loading}::",
                           "--candidate", f"plain::echo {self.runs_without_repack}::")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("no llama-server build runs every model on this machine", r.stderr)


if __name__ == "__main__":
    unittest.main()
