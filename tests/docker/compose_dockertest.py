#!/usr/bin/env python3
"""The Docker topology end to end (label docker), as a user starts it: build every image (from the
build cache when it is warm), `up`, then a stampede of users with bearer tokens through nginx on
the host's loopback, `docker kill` of one API server and of the worker mid-stampede (both started
again), every answered grab credited exactly, `redpacket audit --mode cluster` inside the stack,
the alert rules checked with promtool against the metrics the stack really exports, the data kept
across `down`/`up`, and `down -v` leaving no container, network or volume of the project.

Runs `scripts/docker compose -p <project> ...` (the engine and the base image are made ready on
the way). Only 127.0.0.1:<port> and the project's own containers are ever sent traffic. The stack
is taken down (with its volumes) however the test ends; its logs are kept on failure.
Python 3 standard library only.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

PACKETS = 10  # packets in the stampede (6 in the first wave, 4 in the second) ...
SHARES = 100  # ... of this many shares each (the servers' default max_count) ...
TOTAL_CENTS = 10000  # ... and this much money each
CROWD = 500  # users, each trying every packet: 5,000 grabs for 1,000 shares
CROWD_FIRST_USER = 100_000  # the crowd's user ids (a grab needs no account)
THREADS = 24
FIRST_WAVE_PACKETS = 6
KILL_AFTER_SHARES = 50  # answered shares of the first wave before api-1 and the worker die
DOWN_SECONDS = 2  # how long they stay dead while the first wave goes on
RETRYABLE = {0, 429, 502, 503, 504}  # not a decision: the client tries again


class Failure(Exception):
    pass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Stack:
    """The project's compose stack, driven through scripts/docker compose."""

    def __init__(self, source_dir, project, port):
        self.source_dir = source_dir
        self.project = project
        self.port = port
        self.env = dict(os.environ, REDPACKET_DOCKER_PORT=str(port))

    def compose(self, *args, check=True, capture=False, timeout=900, input_text=None):
        command = [os.path.join(self.source_dir, "scripts/docker"), "compose", "-p", self.project,
                   *args]
        result = subprocess.run(command, cwd=self.source_dir, env=self.env, text=True,
                                input=input_text, timeout=timeout,
                                stdout=subprocess.PIPE if capture else None,
                                stderr=subprocess.STDOUT if capture else None)
        if check and result.returncode != 0:
            raise Failure(f"`{' '.join(command[1:])}` exited {result.returncode}"
                          + (f":\n{result.stdout}" if capture else ""))
        return result

    def exec(self, service, *command, check=True):
        """Runs a command in a running service's container; returns (exit code, output)."""
        result = self.compose("exec", "-T", service, *command, check=False, capture=True,
                              timeout=300)
        if check and result.returncode != 0:
            raise Failure(f"`{' '.join(command)}` in {service} exited {result.returncode}:\n"
                          f"{result.stdout}")
        return result.returncode, result.stdout

    def healthy(self, service):
        result = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}",
                                 self.container(service)], text=True, stdout=subprocess.PIPE)
        return result.stdout.strip() == "healthy"

    def container(self, service):
        result = self.compose("ps", "-q", service, capture=True)
        ids = result.stdout.split()
        if len(ids) != 1:
            raise Failure(f"expected one container of {service}, got {ids}")
        return ids[0]

    def leftovers(self, volumes_before):
        """The project's containers, networks and volumes that still exist, and any volume made
        since `volumes_before` (an anonymous one carries no project label)."""
        label = f"label=com.docker.compose.project={self.project}"
        left = {}
        new_volumes = set(all_volumes()) - set(volumes_before)
        if new_volumes:
            left["volumes made during the run"] = sorted(new_volumes)
        for kind, command in (("containers", ["docker", "ps", "-aq", "--filter", label]),
                              ("networks", ["docker", "network", "ls", "-q", "--filter", label]),
                              ("volumes", ["docker", "volume", "ls", "-q", "--filter", label])):
            out = subprocess.run(command, text=True, stdout=subprocess.PIPE, check=True).stdout
            if out.split():
                left[kind] = out.split()
        return left

    def save_logs(self, path):
        with open(path, "w") as file:
            subprocess.run([os.path.join(self.source_dir, "scripts/docker"), "compose", "-p",
                            self.project, "ps"], cwd=self.source_dir, env=self.env, stdout=file,
                           stderr=subprocess.STDOUT, timeout=120)
            subprocess.run([os.path.join(self.source_dir, "scripts/docker"), "compose", "-p",
                            self.project, "logs", "--no-color", "--tail", "300"],
                           cwd=self.source_dir, env=self.env, stdout=file,
                           stderr=subprocess.STDOUT, timeout=300)


class Client:
    """HTTP/1.1 to nginx on 127.0.0.1:<port>, one keep-alive connection per thread."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def call(self, method, path, token=None, body=None):
        """Returns (status, parsed JSON body or None); status 0 when the connection failed."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body) if body is not None else None
        for attempt in range(2):  # a keep-alive connection nginx closed meanwhile: once more
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                self.local.connection = connection
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 0 and method == "GET":
                    continue
                return 0, None
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return response.status, parsed
        return 0, None


def all_volumes():
    return subprocess.run(["docker", "volume", "ls", "-q"], text=True, stdout=subprocess.PIPE,
                          check=True).stdout.split()


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(what, predicate, seconds, interval=0.5):
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {seconds} s waiting for {what}")
        time.sleep(interval)


def expect(condition, message):
    if not condition:
        raise Failure(message)


def make_tokens(stack, users, admin):
    """Bearer tokens signed inside the stack, with its secret: {user: token}."""
    script = "; ".join(
        [f"redpacket token --user {admin} --admin"]
        + [f"redpacket token --user {user}" for user in users])
    # One exec for all: a process start costs milliseconds there, an exec a lot more.
    _, output = stack.exec("api-1", "sh", "-c", script)
    lines = output.split()
    expect(len(lines) == len(users) + 1, f"expected {len(users) + 1} tokens, got:\n{output}")
    return lines[0], dict(zip(users, lines[1:]))


def create_packets(client, admin_token, sender_token, sender):
    status, body = client.call("POST", f"/v1/users/{sender}/deposit", admin_token,
                               {"amount_cents": PACKETS * TOTAL_CENTS,
                                "request_id": "dockertest-deposit"})
    expect(status == 200, f"deposit: {status} {body}")
    packets = []
    for i in range(PACKETS):
        status, body = client.call("POST", "/v1/packets", sender_token,
                                   {"total_cents": TOTAL_CENTS, "count": SHARES, "kind": "lucky",
                                    "request_id": f"dockertest-packet-{i}"})
        expect(status == 201, f"create packet {i}: {status} {body}")
        packets.append(body["packet_id"])
    return packets


def stampede(stack, client, tokens, packets, kill):
    """Every user tries every packet, retrying until a decision. With `kill`, api-1 and the worker
    are killed once KILL_AFTER_SHARES shares are answered and started again DOWN_SECONDS later.
    Returns {(user, packet): (amount, seq)} of the grabs answered 200, or 409 to a retry of a grab
    whose first answer was lost."""
    attempts = [(user, packet) for user in tokens for packet in packets]
    random.Random(20261206).shuffle(attempts)
    granted = {}
    lock = threading.Lock()
    retries = [0]
    unexpected = []
    answered_at = {}  # answered shares when the victims were killed, and started again
    victims = [stack.container("api-1"), stack.container("worker")] if kill else []
    deadline = time.monotonic() + 240

    def grab(attempt):
        user, packet = attempt
        first = True
        while time.monotonic() < deadline:
            status, body = client.call("POST", f"/v1/packets/{packet}/grab", tokens[user])
            if status in RETRYABLE:
                with lock:
                    retries[0] += 1
                time.sleep(0.05)
                first = False
                continue
            with lock:
                if status == 200 or (status == 409 and not first):
                    granted[attempt] = (body["amount_cents"], body["seq"])
                elif status != 410:
                    unexpected.append(f"user {user} packet {packet}: {status} {body}")
            return
        with lock:
            unexpected.append(f"user {user} packet {packet}: no decision within the deadline")

    def killer():
        while len(granted) < KILL_AFTER_SHARES and time.monotonic() < deadline:
            time.sleep(0.01)
        asked = len(granted)
        subprocess.run(["docker", "kill", *victims], check=True, stdout=subprocess.DEVNULL)
        answered_at["kill"] = len(granted)
        log(f"killed api-1 and the worker ({asked} answered grabs when asked, "
            f"{answered_at['kill']} when docker kill returned)")
        time.sleep(DOWN_SECONDS)
        subprocess.run(["docker", "start", *victims], check=True, stdout=subprocess.DEVNULL)
        answered_at["start"] = len(granted)
        log(f"started api-1 and the worker again ({answered_at['start']} answered grabs by then)")

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(THREADS + 1) as pool:
        killing = pool.submit(killer) if kill else None
        list(pool.map(grab, attempts))
        if killing:
            killing.result()
    log(f"{len(attempts)} grabs in {time.monotonic() - started:.1f} s: "
        f"{len(granted)} shares answered, {retries[0]} retries (cut off by the kill, rate "
        f"limited or unavailable)")
    shares = len(packets) * SHARES
    expect(not kill or answered_at["kill"] < shares,
           f"the kill did not happen mid-stampede: {answered_at}")
    expect(not unexpected, "unexpected answers:\n" + "\n".join(unexpected[:20]))
    expect(len(granted) == shares, f"{len(granted)} shares answered, expected all {shares}")
    return granted


def check_packets(client, sender_token, packets, granted):
    """Every share of every packet taken once, each listed with what its taker was told."""
    for packet in packets:
        status, details = client.call("GET", f"/v1/packets/{packet}", sender_token)
        expect(status == 200, f"packet {packet}: {status} {details}")
        listed = {grab["user_id"]: (grab["amount_cents"], grab["seq"]) for grab in details["grabs"]}
        told = {user: answer for (user, p), answer in granted.items() if p == packet}
        expect(details["status"] == "exhausted", f"packet {packet} is {details['status']}")
        expect(len(details["grabs"]) == SHARES, f"packet {packet} lists {len(details['grabs'])}")
        expect(listed == told, f"packet {packet}: the listed grabs differ from the answers")
        expect(sum(amount for amount, _ in told.values()) == TOTAL_CENTS,
               f"packet {packet}: the shares do not add up to {TOTAL_CENTS}")


def check_credited(client, tokens, granted, seconds=120):
    """Each user's balance, through nginx, is the sum of what its grabs were answered."""
    owed = {user: 0 for user in tokens}
    for (user, _), (amount, _) in granted.items():
        owed[user] += amount
    pending = dict(owed)
    last = {}
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for user in list(pending):
            status, body = client.call("GET", f"/v1/users/{user}/balance", tokens[user])
            if status == 200 and body["balance_cents"] == pending[user]:
                del pending[user]
            else:
                last[user] = (status, body)
        if pending:
            time.sleep(1)
    expect(not pending, f"{len(pending)} users not credited what they were answered within "
           f"{seconds} s, e.g. " + "; ".join(f"user {u}: owed {pending[u]}, {last.get(u)}"
                                            for u in list(pending)[:5]))
    return sum(owed.values())


def check_monitoring(stack):
    """The alert rules pass promtool, and every metric they name is one the stack exports."""
    for name, command in (
            ("check config", ["promtool", "check", "config", "prometheus.yml"]),
            ("check rules", ["promtool", "check", "rules", "alerts.yml"]),
            ("test rules", ["promtool", "test", "rules", "alerts_test.yml"])):
        _, output = stack.exec("prometheus", "sh", "-c",
                               "cd /etc/redpacket/prometheus && " + " ".join(command))
        log(f"promtool {name}: {' '.join(output.split())}")
    _, rules = stack.exec("prometheus", "cat", "/etc/redpacket/prometheus/alerts.yml")
    expressions = re.findall(r"expr: (?:>-\n)?((?:.*\n)*?)\s+(?:for|labels):", rules)
    named = set()
    for expression in expressions:
        named |= set(re.findall(r"\b((?:redpacket|redis)_[a-z_]+)\b", expression))
    expect(named, "no metric names found in alerts.yml")

    def exported():
        _, output = stack.exec("prometheus", "curl", "-fsS",
                               "http://127.0.0.1:9090/api/v1/label/__name__/values")
        return set(json.loads(output)["data"])

    def targets_up():
        _, output = stack.exec("prometheus", "curl", "-fsS", "http://127.0.0.1:9090/api/v1/targets")
        targets = json.loads(output)["data"]["activeTargets"]
        return len(targets) == 11 and all(t["health"] == "up" for t in targets)

    wait_until("every scrape target up in Prometheus", targets_up, 90, interval=2)
    wait_until("every metric of the alert rules in Prometheus", lambda: named <= exported(), 60,
               interval=2)
    log(f"Prometheus scrapes all 11 targets; the rules' {len(named)} metrics are all exported")


def wait_ready(client, seconds):
    wait_until("nginx /readyz 200 through to the API servers",
               lambda: client.call("GET", "/readyz")[0] == 200, seconds, interval=1)


def run(stack, timings):
    client = Client(stack.port)
    volumes_before = all_volumes()
    log("building the images (scripts/docker compose build)")
    started = time.monotonic()
    # One service per image, in parallel: the C++ build takes the cores while the others mostly
    # download.
    stack.compose("build", "--parallel", "migrate", "redis-1", "mariadb-primary", "kafka", "nginx",
                  "prometheus")
    timings["build"] = time.monotonic() - started

    started = time.monotonic()
    stack.compose("up", "-d")
    wait_ready(client, 300)
    timings["up"] = time.monotonic() - started
    log(f"up and ready after {timings['up']:.0f} s")

    crowd = list(range(CROWD_FIRST_USER, CROWD_FIRST_USER + CROWD))
    admin_token, _ = make_tokens(stack, [], 1)
    status, body = client.call("POST", "/v1/users", None, {"name": "nobody"})
    expect(status == 401, f"a request without a token: {status} {body}")
    status, body = client.call("POST", "/v1/users", admin_token, {"name": "sender"})
    expect(status == 201, f"create the sender: {status} {body}")
    sender = body["user_id"]
    admin_token, tokens = make_tokens(stack, [sender, *crowd], 1)
    sender_token = tokens.pop(sender)
    packets = create_packets(client, admin_token, sender_token, sender)

    # Two waves: api-1 and the worker killed mid-first, then, once they are back, a second that
    # the restarted api-1 serves its part of (nginx found its new address).
    started = time.monotonic()
    first = FIRST_WAVE_PACKETS
    log(f"first wave: {CROWD} users on {first} packets of {SHARES} shares; kills mid-wave")
    granted = stampede(stack, client, tokens, packets[:first], kill=True)
    wait_until("api-1 and the worker healthy again",
               lambda: stack.healthy("api-1") and stack.healthy("worker"), 120)
    log(f"second wave: {CROWD} users on {PACKETS - first} more packets")
    granted.update(stampede(stack, client, tokens, packets[first:], kill=False))
    timings["stampede"] = time.monotonic() - started
    _, metrics = stack.exec("api-1", "curl", "-fsS", "http://127.0.0.1:8081/metrics")
    served = sum(float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith('redpacket_http_requests_total{route="grab"'))
    expect(served > 0, "the restarted api-1 served no grab of the second wave")
    log(f"the restarted api-1 served {served:.0f} grabs of the second wave")
    check_packets(client, sender_token, packets, granted)
    wait_ready(client, 120)
    credited = check_credited(client, tokens, granted)
    log(f"every answered grab credited: {len(granted)} grabs, {credited} cents to "
        f"{len({user for user, _ in granted})} users")
    status, body = client.call("GET", f"/v1/users/{sender}/balance", sender_token)
    expect(status == 200 and body["balance_cents"] == 0, f"the sender's balance: {status} {body}")

    code, output = stack.exec("worker", "redpacket", "audit", "--mode", "cluster", check=False)
    expect(code == 0, f"redpacket audit --mode cluster exited {code}:\n{output}")
    log(f"audit: {output.strip().splitlines()[-1] if output.strip() else 'ok'}")

    check_monitoring(stack)

    # Data kept across down/up: the same balances after the containers are made anew.
    started = time.monotonic()
    stack.compose("down")
    stack.compose("up", "-d")
    wait_ready(client, 300)
    timings["down and up"] = time.monotonic() - started
    sample = dict(random.Random(7).sample(sorted(tokens.items()), 20))
    check_credited(client, sample, {k: v for k, v in granted.items() if k[0] in sample}, 30)
    status, details = client.call("GET", f"/v1/packets/{packets[0]}", sender_token)
    expect(status == 200 and len(details["grabs"]) == SHARES,
           f"packet {packets[0]} after down/up: {status}")
    log(f"down, up: data kept ({timings['down and up']:.0f} s)")

    started = time.monotonic()
    stack.compose("down", "-v")
    timings["down -v"] = time.monotonic() - started
    left = stack.leftovers(volumes_before)
    expect(not left, f"left after down -v: {left}")
    log("down -v: no container, network or volume of the project left")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--log-dir", required=True, help="where the stack's logs go on failure")
    parser.add_argument("--project", default="redpacket-dockertest")
    parser.add_argument("--port", type=int, default=18680)
    args = parser.parse_args()

    # ctest ends a test that runs past its TIMEOUT with SIGTERM: clean up then too.
    def terminated(signum, _frame):
        raise Failure(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, terminated)

    if not port_is_free(args.port):
        print(f"FAIL: 127.0.0.1:{args.port} is in use; pass another --port", file=sys.stderr)
        return 1
    stack = Stack(args.source_dir, args.project, args.port)
    timings = {}
    started = time.monotonic()
    failed = False
    try:
        # What an earlier run left (a kill -9 of this test): gone before starting.
        stack.compose("down", "-v", "--remove-orphans", capture=True)
        run(stack, timings)
    except (Failure, subprocess.SubprocessError, OSError, KeyError, TypeError) as error:
        failed = True
        print(f"FAIL: {error}", file=sys.stderr, flush=True)
        os.makedirs(args.log_dir, exist_ok=True)
        path = os.path.join(args.log_dir, "compose.log")
        try:
            stack.save_logs(path)
            print(f"the stack's state and logs: {path}", file=sys.stderr)
        except (subprocess.SubprocessError, OSError) as log_error:
            print(f"could not save the logs: {log_error}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        down = stack.compose("down", "-v", "--remove-orphans", check=False, capture=True)
        if down.returncode != 0:
            print(f"down -v failed:\n{down.stdout}", file=sys.stderr)
            failed = True
    timings["total"] = time.monotonic() - started
    log("timings: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    print("0 passed, 1 failed" if failed else "1 passed, 0 failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
