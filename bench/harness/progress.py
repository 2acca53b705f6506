"""The progress line: one line per step, overwritten in place on a terminal."""
import sys
import threading
import time


class Progress:
    def __init__(self, stream=sys.stderr):
        self.stream, self.start = stream, time.monotonic()
        self.tty = stream.isatty()
        self.phase, self.width = "", 0
        self.lock = threading.Lock()  # agents of the workload report from their threads

    def __call__(self, message):
        with self.lock:
            self._write(message)

    def _write(self, message):
        elapsed = int(time.monotonic() - self.start)
        line = f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {self.phase}: {message}"
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def begin(self, phase):
        if self.tty and self.width:
            self.stream.write("\n")
        self.phase, self.width = phase, 0
        self("starting")

    def end(self):
        if self.tty:
            self.stream.write("\n")
            self.width = 0
        self.stream.flush()
