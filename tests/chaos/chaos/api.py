"""An HTTP/1.1 keep-alive client for the redpacket API, one per client thread, and the bearer tokens
it sends (the format of src/http/access/token.cc: rp1.<user>.<expiry>.<admin>.<hex HMAC-SHA256>).
Every call returns an Outcome: the HTTP status and body, or why there is none, sorted the way the
history needs it: `ok`, `fail` (definite: it did not happen) or `info` (unknown)."""

import hashlib
import hmac
import http.client
import json
import socket
import time


def sign_token(secret, user_id, admin=False, ttl_s=86400):
    payload = f"rp1.{user_id}.{int(time.time()) + ttl_s}.{1 if admin else 0}"
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


class Tokens:
    """Tokens by user, signed once (the signature is the same for the whole run)."""

    def __init__(self, secret):
        self._secret = secret
        self._cache = {}
        self.admin = sign_token(secret, 1, admin=True)

    def user(self, user_id):
        token = self._cache.get(user_id)
        if token is None:
            token = sign_token(self._secret, user_id)
            self._cache[user_id] = token
        return token


class Outcome:
    __slots__ = ("type", "status", "body", "error")

    def __init__(self, type_, status=None, body=None, error=None):
        self.type = type_
        self.status = status
        self.body = body
        self.error = error


def classify(status):
    if 200 <= status < 300:
        return "ok"
    if 400 <= status < 500:
        return "fail"
    return "info"  # 5xx: the API says the outcome is unknown


class Connection:
    """One keep-alive connection to one server. Not thread-safe: one per client thread."""

    def __init__(self, host, port, timeout_s):
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._conn = None

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def request(self, method, path, body=None, token=None):
        headers = {"Connection": "keep-alive"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (ConnectionRefusedError, socket.timeout, OSError) as error:
                conn.close()
                # Nothing was sent: a definite failure, except a connect that timed out (a paused
                # server's backlog may still accept and later read... but not this request).
                return Outcome("fail", error=f"connect: {type(error).__name__}")
            self._conn = conn
        try:
            self._conn.request(method, path, body=data, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
        except (socket.timeout, TimeoutError):
            self.close()
            return Outcome("info", error="timeout")
        except (http.client.HTTPException, OSError) as error:
            self.close()
            return Outcome("info", error=f"{type(error).__name__}: {error}"[:200])
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = {"raw": raw[:200].decode("utf-8", "replace")}
        return Outcome(classify(response.status), status=response.status, body=decoded)


class Api:
    """The client thread's view of the servers: a connection per address."""

    def __init__(self, addresses, timeout_s):
        self._connections = [Connection(host, port, timeout_s) for host, port in addresses]

    def close(self):
        for connection in self._connections:
            connection.close()

    def server_count(self):
        return len(self._connections)

    def call(self, server, method, path, body=None, token=None):
        return self._connections[server % len(self._connections)].request(method, path, body,
                                                                          token)
