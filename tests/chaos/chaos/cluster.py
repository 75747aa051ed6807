"""Cluster mode under test: the whole topology of `scripts/cluster up` on ports of its own (2 API
servers, 2 workers in one consumer group, a Redis Cluster of 3 masters, 3 replicas and a spare,
Kafka, MariaDB primary + replica), and the faults a fleet meets: kill -9 and restart of each kind
of process, SIGSTOP pauses, a Redis master killed for good, a packet's Redis keys lost or its slot
rolled back to an older copy, the broker stopped or paused across packets' expiry, the MariaDB
primary or replica stopped."""

import os
import signal
import subprocess
import time

from . import ledger, resp
from .embedded import Fault
from .processes import ChaosError, kill_and_wait, metric, read_pid, run, send

HOST = "127.0.0.1"


class ClusterTopology:
    mode = "cluster"

    # scripts/cluster's default ports; a run adds its --port-offset to every one of them.
    DEFAULT_PORTS = {"redis": 7001, "mariadb": 3307, "kafka": 9092, "nginx": 8080,
                     "api": (8081, 8082), "worker": (9100, 9101)}

    def __init__(self, repo, binary, run_dir, port_offset, server_flags):
        self.repo = repo
        self.binary = binary
        self.run_dir = run_dir
        self.cluster_dir = os.path.join(run_dir, "cluster")
        self.log = os.path.join(run_dir, "logs", "scripts.log")
        ports = self.DEFAULT_PORTS
        self.redis_ports = [ports["redis"] + port_offset + i for i in range(7)]
        self.mariadb_port = ports["mariadb"] + port_offset  # the replica: +1
        self.kafka_port = ports["kafka"] + port_offset  # the controller: +1
        self.nginx_port = ports["nginx"] + port_offset
        self.api_ports = [port + port_offset for port in ports["api"]]
        self.worker_ports = [port + port_offset for port in ports["worker"]]
        self.server_flags = server_flags
        self.secret = None
        self.dead_for_good = None  # the port of a Redis master killed for the rest of the run

    def _env(self):
        return dict(os.environ,
                    REDPACKET_REDIS_BASE_PORT=str(self.redis_ports[0]),
                    REDPACKET_MARIADB_PORT=str(self.mariadb_port),
                    REDPACKET_KAFKA_PORT=str(self.kafka_port),
                    REDPACKET_NGINX_PORT=str(self.nginx_port),
                    REDPACKET_API_PORTS=" ".join(map(str, self.api_ports)),
                    REDPACKET_WORKER_PORT=str(self.worker_ports[0]),
                    REDPACKET_WORKER_PORTS=" ".join(map(str, self.worker_ports)),
                    REDPACKET_BINARY=self.binary,
                    REDPACKET_SERVE_EXTRA_FLAGS=" ".join(self.server_flags))

    def _cluster(self, *args, timeout_s=600):
        run([os.path.join(self.repo, "scripts", "cluster"), *args, "--run-dir", self.cluster_dir],
            self.log, env=self._env(), timeout_s=timeout_s)

    # --- life cycle ---

    def addresses(self):
        return [(HOST, port) for port in self.api_ports]

    def start(self):
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        self._cluster("up")
        with open(os.path.join(self.cluster_dir, "token_secret"), encoding="utf-8") as file:
            self.secret = file.read().strip()

    def stop(self):
        """Nothing to drain by hand: the workers apply what Kafka holds while they run."""

    def teardown(self, keep_evidence):
        del keep_evidence  # the run directory keeps every log and data directory
        for port in self.redis_ports:  # SIGCONT whatever a fault left paused, before `down`
            self._signal_pid(os.path.join(self.cluster_dir, "redis-cluster", str(port),
                                          "redis.pid"), signal.SIGCONT)
        for pid_file in self._pid_files().values():
            self._signal_pid(pid_file, signal.SIGCONT)
        try:
            self._cluster("down", timeout_s=300)
        except ChaosError as error:
            print(f"chaos: cluster down: {error}")

    @staticmethod
    def _signal_pid(path, sig):
        pid = read_pid(path)
        if pid is not None:
            send(pid, sig)

    def _pid_files(self):
        pids = os.path.join(self.cluster_dir, "pids")
        files = {f"api-{port}": os.path.join(pids, f"api-{port}.pid") for port in self.api_ports}
        for index, port in enumerate(self.worker_ports):
            name = "worker" if index == 0 else f"worker-{port}"
            files[name] = os.path.join(pids, f"{name}.pid")
        files["kafka"] = os.path.join(self.cluster_dir, "kafka", "kafka.pid")
        files["mariadb-primary"] = os.path.join(self.cluster_dir, "mariadb", "primary",
                                                "mariadb.pid")
        files["mariadb-replica"] = os.path.join(self.cluster_dir, "mariadb", "replica",
                                                "mariadb.pid")
        return files

    def _pid(self, name):
        pid = read_pid(self._pid_files()[name])
        if pid is None:
            raise ChaosError(f"{name} is not running")
        return pid

    def _redis_pid(self, port):
        pid = read_pid(os.path.join(self.cluster_dir, "redis-cluster", str(port), "redis.pid"))
        if pid is None:
            raise ChaosError(f"redis {port} is not running")
        return pid

    def _masters(self):
        return [node["port"] for node in resp.cluster_nodes(HOST, self._live_redis_ports())
                if node["role"] == "master" and not node["failed"] and node["slots"]]

    def _live_redis_ports(self):
        return [port for port in self.redis_ports if port != self.dead_for_good]

    # --- faults ---

    def faults(self, workload_shared):
        self.shared = workload_shared
        return [
            Fault("kill-api", (1, 5), lambda rng: self._kill(rng, "api"),
                  lambda h, hist: self._up("api")),
            Fault("kill-worker", (1, 5), lambda rng: self._kill(rng, "worker"),
                  lambda h, hist: self._up("workers")),
            Fault("kill-kafka", (2, 12), lambda rng: self._kill(rng, "kafka"),
                  lambda h, hist: self._up("kafka")),
            Fault("stop-kafka", (6, 15), self._stop_kafka, lambda h, hist: self._up("kafka")),
            # The promise says "the broker down for minutes": long runs meet this one.
            Fault("stop-kafka-long", (60, 100), self._stop_kafka,
                  lambda h, hist: self._up("kafka")),
            Fault("kill-mariadb-primary", (2, 10), lambda rng: self._kill(rng, "mariadb-primary"),
                  lambda h, hist: self._up("mariadb")),
            Fault("stop-mariadb-replica", (2, 15),
                  lambda rng: self._kill(rng, "mariadb-replica"),
                  lambda h, hist: self._up("mariadb")),
            Fault("kill-redis-master", (2, 8), self._kill_redis_master, self._restart_redis),
            Fault("kill-redis-master-for-good", (1, 1), self._kill_redis_for_good,
                  lambda h, hist: "left dead"),
            Fault("pause-api", (1, 15), lambda rng: self._pause(rng, "api"), self._resume),
            Fault("pause-worker", (1, 15), lambda rng: self._pause(rng, "worker"), self._resume),
            Fault("pause-kafka", (1, 15), lambda rng: self._pause(rng, "kafka"), self._resume),
            Fault("pause-mariadb-primary", (1, 15),
                  lambda rng: self._pause(rng, "mariadb-primary"), self._resume),
            Fault("pause-redis-master", (1, 15), self._pause_redis_master, self._resume),
            Fault("redis-keys-lost", (12, 15), self._lose_keys, self._resume_workers),
            Fault("redis-slot-rolled-back", (5, 10), self._snapshot_slot, self._roll_back_slot,
                  beyond_promise=True),
        ]

    def _names(self, kind):
        return [name for name in self._pid_files() if name.startswith(kind)]

    def _kill(self, rng, kind):
        name = rng.choice(self._names(kind))
        pid = self._pid(name)
        kill_and_wait(pid)
        return {"target": name, "detail": f"kill -9 {pid}"}

    def _stop_kafka(self, rng):
        del rng
        pid = self._pid("kafka")
        send(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while read_pid(self._pid_files()["kafka"]) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        return {"target": "kafka", "detail": f"SIGTERM {pid} (stopped)"}

    def _up(self, part):
        self._cluster("up", part)
        return f"up {part}"

    def _pause(self, rng, kind):
        name = rng.choice(self._names(kind))
        pid = self._pid(name)
        send(pid, signal.SIGSTOP)
        return {"target": name, "detail": f"SIGSTOP {pid}", "pids": [pid]}

    def _resume(self, handle, history):
        for pid in handle["pids"]:
            send(pid, signal.SIGCONT)
        return "SIGCONT"

    def _hot_master(self, rng):
        """The master of the hot packet's slot (else any master)."""
        masters = self._masters()
        if not masters:
            raise ChaosError("no Redis master answers")
        hot = self.shared.hot
        if hot is not None:
            slot = resp.key_slot(HOST, self._live_redis_ports(), packet_tag(hot))
            port = resp.master_of_slot(HOST, self._live_redis_ports(), slot)
            if port is not None and rng.random() < 0.7:
                return port
        return rng.choice(masters)

    def _kill_redis_master(self, rng):
        if self.dead_for_good is not None:
            raise ChaosError("skipped: a master is dead for good; no restart until the end")
        port = self._hot_master(rng)
        pid = self._redis_pid(port)
        kill_and_wait(pid)
        return {"target": f"redis-{port}", "detail": f"kill -9 {pid} (master)"}

    def _restart_redis(self, handle, history):
        return self._up("redis")

    def _kill_redis_for_good(self, rng):
        if self.dead_for_good is not None:
            raise ChaosError("skipped: a master is already dead for good")
        port = self._hot_master(rng)
        pid = self._redis_pid(port)
        kill_and_wait(pid)
        self.dead_for_good = port
        return {"target": f"redis-{port}", "detail": f"kill -9 {pid} (master, for good)"}

    def _pause_redis_master(self, rng):
        port = self._hot_master(rng)
        pid = self._redis_pid(port)
        send(pid, signal.SIGSTOP)
        return {"target": f"redis-{port}", "detail": f"SIGSTOP {pid} (master)", "pids": [pid]}

    def _pause_workers(self):
        pids = [self._pid(name) for name in self._names("worker")]
        for pid in pids:
            send(pid, signal.SIGSTOP)
        return pids

    def _busy_packet(self, rng):
        with self.shared.lock:
            if self.shared.hot is not None and rng.random() < 0.7:
                return self.shared.hot
            ids = self.shared.open_ids[-50:]
            return rng.choice(ids) if ids else self.shared.hot

    def _lose_keys(self, rng):
        """The workers paused (the ledger lags), then every key of a busy packet deleted on its
        master (and so on its replica): a shard that lost the packet."""
        packet_id = self._busy_packet(rng)
        if packet_id is None:
            raise ChaosError("skipped: no packet to lose")
        pids = self._pause_workers()
        time.sleep(2)
        slot = resp.key_slot(HOST, self._live_redis_ports(), packet_tag(packet_id))
        port = resp.master_of_slot(HOST, self._live_redis_ports(), slot)
        with resp.Redis(HOST, port) as redis:
            keys = [key for key in slot_keys(redis, slot) if packet_tag(packet_id).encode() in key]
            # One DEL: the packet is lost whole (a grab between two DELs would see half a packet,
            # which no real loss of a shard produces).
            if keys:
                redis.call("DEL", *keys)
        deleted = [key.decode() for key in keys]
        return {"target": f"packet-{packet_id}", "packet": packet_id, "slot": slot,
                "detail": f"workers paused; deleted {len(deleted)} keys on redis-{port}: "
                          + " ".join(deleted[:6]), "pids": pids}

    def _resume_workers(self, handle, history):
        return self._resume(handle, history)

    def _snapshot_slot(self, rng):
        """A copy of every key in a busy packet's slot, restored when the fault ends: the shard
        restarted from an old copy (master and replica both lose what came after)."""
        packet_id = self._busy_packet(rng)
        if packet_id is None:
            raise ChaosError("skipped: no packet")
        slot = resp.key_slot(HOST, self._live_redis_ports(), packet_tag(packet_id))
        port = resp.master_of_slot(HOST, self._live_redis_ports(), slot)
        copy = []
        with resp.Redis(HOST, port) as redis:
            keys = slot_keys(redis, slot)
            # One transaction, so the copy is of one moment (a grab between two DUMPs would
            # leave a copy no shard ever held).
            redis.call("MULTI")
            for key in keys:
                redis.call("DUMP", key)
                redis.call("PTTL", key)
            replies = redis.call("EXEC") or []
            for index, key in enumerate(keys):
                dump, ttl = replies[2 * index], replies[2 * index + 1]
                if dump is not None:
                    copy.append((key, dump, max(0, ttl)))
        return {"target": f"slot-{slot}", "packet": packet_id, "slot": slot, "copy": copy,
                "detail": f"copied {len(copy)} keys of slot {slot} (packet {packet_id})"}

    def _roll_back_slot(self, handle, history):
        port = resp.master_of_slot(HOST, self._live_redis_ports(), handle["slot"])
        with resp.Redis(HOST, port) as redis:
            current = slot_keys(redis, handle["slot"])
            # One transaction: as a shard that restarts from a copy, no command sees half of it.
            redis.call("MULTI")
            if current:
                redis.call("DEL", *current)
            for key, dump, ttl in handle["copy"]:
                redis.call("RESTORE", key, ttl, dump, "REPLACE")
            redis.call("EXEC")
        return f"slot {handle['slot']} restored from the copy on redis-{port}"

    def heal(self, history):
        """Everything back: paused processes continued, every dead part restarted (the master
        killed for good included: it rejoins as a replica)."""
        for port in self.redis_ports:
            self._signal_pid(os.path.join(self.cluster_dir, "redis-cluster", str(port),
                                          "redis.pid"), signal.SIGCONT)
        for pid_file in self._pid_files().values():
            self._signal_pid(pid_file, signal.SIGCONT)
        self.dead_for_good = None
        self._cluster("up")
        history.note("healed: scripts/cluster up")

    def ensure_running(self, history):
        """Between faults: nothing to do (each fault restarts what it stopped)."""

    # --- reading what the money did ---

    def read_facts(self):
        return ledger.read_mariadb(HOST, self.mariadb_port)

    def lag(self):
        total = 0
        for port in self.worker_ports:
            value = metric(HOST, port, "redpacket_worker_lag_events")
            if value is None:
                return None
            total += int(value)
        return total

    def audit(self):
        result = subprocess.run(
            [self.binary, "audit", "--mode", "cluster", "--redis-nodes",
             f"{HOST}:{self.redis_ports[0]}", "--mariadb-primary",
             f"{HOST}:{self.mariadb_port}"],
            capture_output=True, text=True, timeout=600, check=False)
        return result.returncode, result.stdout + result.stderr

    def alive(self):
        return True


def packet_tag(packet_id):
    """The hash tag of a packet's keys (src/store/redis/keys.h)."""
    return "{rp:" + str(packet_id) + "}"


def slot_keys(redis, slot):
    return redis.call("CLUSTER", "GETKEYSINSLOT", slot, 1_000_000) or []
