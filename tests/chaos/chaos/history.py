"""The history of a run: every operation as an invocation and its completion, every fault, as JSON
lines (Jepsen's shape). An operation completes as `ok` (the server said it happened), `fail` (the
server said it did not, or the request never reached it) or `info` (unknown: a timeout, a reset,
a 5xx). Thread-safe."""

import json
import threading
import time


class Op:
    """One operation: what was asked, and what came back."""

    __slots__ = ("index", "process", "f", "value", "invoked", "completed", "type", "answer",
                 "status", "error")

    def __init__(self, index, process, f, value, invoked):
        self.index = index
        self.process = process
        self.f = f
        self.value = value
        self.invoked = invoked
        self.completed = None
        self.type = None  # ok | fail | info
        self.answer = None  # the decoded JSON body, when there was one
        self.status = None  # the HTTP status, when there was one
        self.error = None  # why there is no status (timeout, reset, refused)

    def describe(self):
        """One line for a violation's report."""
        outcome = self.type or "pending"
        detail = f"HTTP {self.status}" if self.status is not None else (self.error or "")
        answer = json.dumps(self.answer, sort_keys=True) if self.answer is not None else ""
        return (f"op {self.index} [{self.process}] t={self.invoked:.3f}s {self.f} "
                f"{json.dumps(self.value, sort_keys=True)} -> {outcome} {detail} {answer}").rstrip()


class History:
    def __init__(self, path):
        self._file = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.wall_start = time.time()
        self.ops = []
        self.faults = []  # dicts: kind, target, start, end, detail

    def now(self):
        return time.monotonic() - self._start

    def _write(self, record):
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def invoke(self, process, f, value):
        with self._lock:
            op = Op(len(self.ops), process, f, value, self.now())
            self.ops.append(op)
            self._write({"type": "invoke", "index": op.index, "process": process, "f": f,
                         "value": value, "time": round(op.invoked, 6)})
        return op

    def complete(self, op, type_, status=None, answer=None, error=None):
        with self._lock:
            op.completed = self.now()
            op.type = type_
            op.status = status
            op.answer = answer
            op.error = error
            record = {"type": type_, "index": op.index, "process": op.process, "f": op.f,
                      "value": op.value, "time": round(op.completed, 6)}
            if status is not None:
                record["status"] = status
            if answer is not None:
                record["answer"] = answer
            if error is not None:
                record["error"] = error
            self._write(record)

    def fault_started(self, kind, target, detail="", start=None, beyond_promise=False,
                      handle=None):
        with self._lock:
            fault = {"kind": kind, "target": target,
                     "start": self.now() if start is None else start, "end": None,
                     "detail": detail, "beyond_promise": beyond_promise, "handle": handle or {}}
            self.faults.append(fault)
            self._write({"type": "fault", "phase": "start", "kind": kind, "target": target,
                         "detail": detail, "time": round(fault["start"], 6)})
        return fault

    def fault_ended(self, fault, detail=""):
        with self._lock:
            fault["end"] = self.now()
            if detail:
                fault["detail"] = (fault["detail"] + "; " + detail).strip("; ")
            self._write({"type": "fault", "phase": "end", "kind": fault["kind"],
                         "target": fault["target"], "detail": detail,
                         "time": round(fault["end"], 6)})

    def note(self, text):
        with self._lock:
            self._write({"type": "note", "text": text, "time": round(self.now(), 6)})

    def close(self):
        with self._lock:
            self._file.flush()
            self._file.close()
