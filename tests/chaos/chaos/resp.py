"""A minimal, binary-safe Redis client (RESP2) for the faults that reach into Redis: DUMP and
RESTORE need bytes that redis-cli would mangle."""

import socket


class RedisError(Exception):
    pass


class Redis:
    def __init__(self, host, port, timeout_s=5.0):
        self._socket = socket.create_connection((host, port), timeout=timeout_s)
        self._buffer = b""

    def close(self):
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._socket.sendall(b"".join(parts))
        return self._read()

    def _line(self):
        while b"\r\n" not in self._buffer:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size):
        while len(self._buffer) < size + 2:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size + 2:]
        return data

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise RedisError(f"unexpected reply {line!r}")


def cluster_nodes(host, ports):
    """[{id, port, role ('master'|'slave'), master_id, failed, slots: [(lo, hi)]}] as seen by
    the first node of `ports` that answers."""
    for port in ports:
        try:
            with Redis(host, port, timeout_s=2) as redis:
                text = redis.call("CLUSTER", "NODES").decode()
        except (OSError, RedisError, ConnectionError):
            continue
        nodes = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            flags = fields[2].split(",")
            slots = []
            for item in fields[8:]:
                if item.startswith("["):
                    continue
                lo, _, hi = item.partition("-")
                slots.append((int(lo), int(hi or lo)))
            nodes.append({"id": fields[0], "port": int(fields[1].split(":")[1].split("@")[0]),
                          "role": "master" if "master" in flags else "slave",
                          "master_id": fields[3], "failed": "fail" in flags or "fail?" in flags,
                          "slots": slots})
        return nodes
    return []


def master_of_slot(host, ports, slot):
    for node in cluster_nodes(host, ports):
        if node["role"] == "master" and not node["failed"]:
            if any(lo <= slot <= hi for lo, hi in node["slots"]):
                return node["port"]
    return None


def key_slot(host, ports, key):
    for port in ports:
        try:
            with Redis(host, port, timeout_s=2) as redis:
                return redis.call("CLUSTER", "KEYSLOT", key)
        except (OSError, RedisError, ConnectionError):
            continue
    return None
