"""Embedded mode under test: one `redpacket serve`, its data dir on a small tmpfs that the checker
mounts, with `journal/` a symlink to a second tmpfs (operators may put the journal on another
disk). Faults: kill -9 and restart, SIGSTOP/SIGCONT pauses, and either disk (or both) filled to
the last byte and freed."""

import os
import shutil
import signal
import subprocess
import time

from . import ledger
from .processes import (ChaosError, alive, kill_and_wait, metric, port_in_use, send, tail,
                        wait_ready)

HOST = "127.0.0.1"


class Fault:
    """A kind of fault: start() takes it, stop() heals it; `beyond_promise` marks what the
    written durability promise does not cover (reported in a row of its own)."""

    def __init__(self, kind, durations, start, stop, beyond_promise=False):
        self.kind = kind
        self.durations = durations
        self.start = start
        self.stop = stop
        self.beyond_promise = beyond_promise


def _mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    if os.path.ismount(path):
        subprocess.run(["umount", path], check=False)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs",
                             path], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ChaosError(f"cannot mount a {size_mb} MiB tmpfs at {path} (the embedded run needs "
                         f"root to mount its small disks): {result.stderr.strip()}")


def _fill(directory):
    """Writes a file until the disk answers ENOSPC; returns its path and size."""
    path = os.path.join(directory, "chaos-fill")
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        free = shutil.disk_usage(directory).free
        if free > (1 << 20):
            try:
                os.posix_fallocate(fd, 0, free - (1 << 20))
                written = free - (1 << 20)
            except OSError:
                pass
        chunk = 65536
        while True:
            try:
                written += os.pwrite(fd, b"\0" * chunk, written)
            except OSError:
                if chunk == 1:
                    break
                chunk = max(1, chunk // 8)
    finally:
        os.close(fd)
    return path, written


class EmbeddedTopology:
    mode = "embedded"

    def __init__(self, binary, run_dir, port, secret, server_flags, ledger_disk_mb=256,
                 journal_disk_mb=256):
        self.binary = binary
        self.run_dir = run_dir
        self.port = port
        self.secret = secret
        self.server_flags = server_flags
        self.ledger_disk = os.path.join(run_dir, "disk-ledger")
        self.journal_disk = os.path.join(run_dir, "disk-journal")
        self.data_dir = os.path.join(self.ledger_disk, "data")
        self.log = os.path.join(run_dir, "logs", "server.log")
        self.ledger_disk_mb = ledger_disk_mb
        self.journal_disk_mb = journal_disk_mb
        self.process = None
        self.restarts_failed = 0
        self.crashes = []  # (time, exit code) of exits the checker did not cause

    # --- life cycle ---

    def addresses(self):
        return [(HOST, self.port)]

    def start(self):
        if port_in_use(HOST, self.port):
            raise ChaosError(f"port {self.port} is in use (another run?): --port moves it")
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        _mount_tmpfs(self.ledger_disk, self.ledger_disk_mb)
        _mount_tmpfs(self.journal_disk, self.journal_disk_mb)
        os.makedirs(self.data_dir)
        os.makedirs(os.path.join(self.journal_disk, "journal"))
        os.symlink(os.path.join(self.journal_disk, "journal"),
                   os.path.join(self.data_dir, "journal"))
        self._start_server()

    def _start_server(self):
        with open(self.log, "a", encoding="utf-8") as out:
            out.write(f"\n--- chaos: starting the server at {time.strftime('%H:%M:%S')}\n")
        out = open(self.log, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        env = dict(os.environ, REDPACKET_TOKEN_SECRET=self.secret)
        self.process = subprocess.Popen(
            [self.binary, "serve", "--host", HOST, "--port", str(self.port), "--data-dir",
             self.data_dir, *self.server_flags],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        wait_ready(HOST, self.port, 120, "the embedded server",
                   alive=lambda: self.process.poll() is None)

    def ensure_running(self, history):
        """Restarts the server when it is not running (a crash the checker did not cause is
        noted); a server that will not start again three times is a crash loop."""
        if self.process is not None and self.process.poll() is None:
            return
        if self.process is not None:
            code = self.process.returncode
            self.crashes.append((history.now(), code))
            history.note(f"the server had exited (code {code}); restarting it")
        for _ in range(3):
            try:
                self._start_server()
                return
            except ChaosError as error:
                self.restarts_failed += 1
                history.note(f"restart failed: {error}")
                time.sleep(1)
        raise ChaosError("the embedded server does not start again (a crash loop); log tail:\n"
                         + tail(self.log))

    def stop(self):
        """Graceful stop (SIGTERM: the journal is flushed and applied)."""
        if self.process is not None and self.process.poll() is None:
            send(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_and_wait(self.process.pid)
                self.process.wait()

    def teardown(self, keep_evidence):
        if self.process is not None and self.process.poll() is None:
            kill_and_wait(self.process.pid)
            self.process.wait()
        if keep_evidence:
            evidence = os.path.join(self.run_dir, "evidence")
            shutil.rmtree(evidence, ignore_errors=True)
            shutil.copytree(self.data_dir, os.path.join(evidence, "data"), symlinks=False,
                            ignore_dangling_symlinks=True, dirs_exist_ok=True)
        for disk in (self.ledger_disk, self.journal_disk):
            if os.path.ismount(disk):
                subprocess.run(["umount", "-l", disk], check=False)

    # --- faults ---

    def faults(self):
        return [
            Fault("kill", (0.5, 3), self._kill, self._restart),
            Fault("pause", (1, 15), self._pause, self._resume),
            Fault("disk-full-ledger", (5, 15), lambda rng: self._fill([self.ledger_disk]),
                  self._free),
            Fault("disk-full-journal", (5, 15), lambda rng: self._fill([self.journal_disk]),
                  self._free),
            Fault("disk-full-both", (5, 15),
                  lambda rng: self._fill([self.ledger_disk, self.journal_disk]), self._free),
        ]

    def _kill(self, rng):
        pid = self.process.pid
        kill_and_wait(pid)
        self.process.wait()
        self.process = None
        return {"target": "server", "detail": f"kill -9 {pid}"}

    def _restart(self, handle, history):
        self.ensure_running(history)
        return "restarted"

    def _pause(self, rng):
        send(self.process.pid, signal.SIGSTOP)
        return {"target": "server", "detail": f"SIGSTOP {self.process.pid}",
                "pid": self.process.pid}

    def _resume(self, handle, history):
        send(handle["pid"], signal.SIGCONT)
        return "SIGCONT"

    def _fill(self, disks):
        files = []
        for disk in disks:
            path, size = _fill(disk)
            files.append((path, size))
        return {"target": "+".join(os.path.basename(d)[5:] for d in disks),
                "detail": ", ".join(f"{os.path.basename(os.path.dirname(p))} +{s >> 20} MiB"
                                    for p, s in files),
                "files": [p for p, _ in files]}

    def _free(self, handle, history):
        for path in handle["files"]:
            try:
                os.unlink(path)
            except OSError:
                pass
        return "freed"

    def heal(self, history):
        if self.process is not None and self.process.poll() is None:
            send(self.process.pid, signal.SIGCONT)
        for disk in (self.ledger_disk, self.journal_disk):
            try:
                os.unlink(os.path.join(disk, "chaos-fill"))
            except OSError:
                pass
        self.ensure_running(history)

    # --- reading what the money did ---

    def read_facts(self):
        return ledger.read_sqlite(os.path.join(self.data_dir, "ledger.sqlite"))

    def lag(self):
        """Journal events not yet applied to the ledger (None: cannot tell)."""
        return metric(HOST, self.port, "redpacket_ledger_lag_events")

    def audit(self):
        result = subprocess.run([self.binary, "audit", "--data-dir", self.data_dir],
                                capture_output=True, text=True, timeout=300, check=False)
        return result.returncode, result.stdout + result.stderr

    def alive(self):
        return self.process is not None and alive(self.process.pid)
