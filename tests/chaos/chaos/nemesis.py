"""The nemesis: a seeded schedule of faults, one at a time, each taken, held for a seeded time and
healed, with its kind, target and times in the history. The schedule cycles through every kind
the topology offers (shuffled by the seed) before it repeats one, so that a short run still meets
most of them."""

import threading
import time

from .processes import ChaosError


class Nemesis:
    def __init__(self, topology, faults, history, rng, duration_s, start_after_s=5.0,
                 gap_s=(2.0, 6.0)):
        self.topology = topology
        self.faults = faults
        self.history = history
        self.rng = rng
        self.duration_s = duration_s
        self.start_after_s = start_after_s
        self.gap_s = gap_s
        self.thread = None
        self.stop_event = threading.Event()
        self.error = None
        self.plan = self._plan()
        # Planned faults that were not injected, as (kind, why): the report lists them, so that a
        # run that met fewer faults than it planned says so.
        self.not_injected = []

    def _plan(self):
        plan = []
        at = self.start_after_s
        deck = []
        while True:
            if not deck:
                deck = list(self.faults)
                self.rng.shuffle(deck)
            fault = deck.pop()
            low, high = fault.durations
            hold = self.rng.uniform(low, high)
            if at + hold > self.duration_s - 2:
                break
            plan.append((at, fault, hold))
            at += hold + self.rng.uniform(*self.gap_s)
        return plan

    def describe(self):
        return [f"{at:7.1f}s {fault.kind} for {hold:.1f}s" for at, fault, hold in self.plan]

    def start(self):
        self.thread = threading.Thread(target=self._run, name="chaos-nemesis", daemon=True)
        self.thread.start()

    def join(self):
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()

    def _sleep_until(self, at):
        while not self.stop_event.is_set():
            left = at - self.history.now()
            if left <= 0:
                return True
            time.sleep(min(left, 0.2))
        return False

    def _run(self):
        """Faults one at a time: each starts at its planned time, or a gap after the previous one
        is healed (healing can take long: a broker restarts in 10-15 s), and none starts that
        would not be healed before the workload ends."""
        try:
            ready_at = 0.0
            for index, (at, fault, hold) in enumerate(self.plan):
                start = max(at, ready_at)
                if start + hold > self.duration_s:
                    self._skip(index, "no time left: earlier faults took longer to heal")
                    return
                if not self._sleep_until(start):
                    self._skip(index, "the workload ended first")
                    return
                self._one(fault, hold)
                ready_at = self.history.now() + self.rng.uniform(*self.gap_s)
        except Exception as error:  # pylint: disable=broad-except
            # A fault that could not be taken or healed voids the run.
            self.error = error if isinstance(error, ChaosError) else ChaosError(
                f"the nemesis failed: {type(error).__name__}: {error}")
            self.history.note(f"nemesis stopped: {error}")

    def _skip(self, index, why):
        for _, fault, _ in self.plan[index:]:
            self.not_injected.append((fault.kind, why))
            self.history.note(f"nemesis: {fault.kind} not injected: {why}")

    def _one(self, fault, hold):
        started = self.history.now()
        try:
            handle = fault.start(self.rng)
        except ChaosError as error:
            self.not_injected.append((fault.kind, f"could not be taken: {error}"))
            self.history.note(f"{fault.kind}: {error}")
            return
        record = self.history.fault_started(fault.kind, handle.get("target", ""),
                                            handle.get("detail", ""), start=started,
                                            beyond_promise=fault.beyond_promise,
                                            handle={k: v for k, v in handle.items()
                                                    if k in ("packet", "slot", "target")})
        # Held for its time even when the workload stops meanwhile: a fault is always healed.
        time.sleep(max(0.0, started + hold - self.history.now()))
        result = fault.stop(handle, self.history)
        self.history.fault_ended(record, result if isinstance(result, str) else "")
        self.topology.ensure_running(self.history)
