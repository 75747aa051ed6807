"""Small process and HTTP helpers shared by the topologies: signals by pid file, readiness polls,
running the project's scripts with their output kept in the run's log."""

import http.client
import os
import signal
import socket
import subprocess
import time


class ChaosError(RuntimeError):
    """A setup or fault step that could not be taken (not a violation: the run is void)."""


def http_status(host, port, path, timeout_s=2.0):
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def metric(host, port, name, path="/metrics"):
    """The value of one unlabelled Prometheus sample, None when it cannot be read."""
    connection = http.client.HTTPConnection(host, port, timeout=3)
    try:
        connection.request("GET", path)
        text = connection.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def port_in_use(host, port):
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def wait_ready(host, port, timeout_s, what, alive=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_status(host, port, "/readyz") == 200:
            return
        if alive is not None and not alive():
            raise ChaosError(f"{what} exited while starting")
        time.sleep(0.2)
    raise ChaosError(f"{what} ({host}:{port}) not ready within {timeout_s} s")


def read_pid(path):
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read().strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid):
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def send(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_and_wait(pid, timeout_s=10.0):
    send(pid, signal.SIGCONT)  # a paused process must be able to die
    send(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def run(command, log, env=None, timeout_s=300, check=True):
    """Runs a script, its output appended to `log`; raises ChaosError with the log's tail."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        try:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as error:
            raise ChaosError(f"{' '.join(command)} did not finish within {timeout_s} s") from error
    if check and result.returncode != 0:
        raise ChaosError(f"{' '.join(command)} failed ({result.returncode}); see {log}:\n"
                         + tail(log))
    return result.returncode


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""
