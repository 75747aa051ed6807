"""The seeded workload: many client threads, each with its own random stream drawn from the run's
seed, invoking deposits (with request ids, some repeated, some repeated with another amount),
creates (some with the shortest expiry so that refunds happen during the run, some exclusive,
some repeated), grabs (one hot packet, many packets, repeats, exclusive packets) and reads
(balance, details). Every operation goes into the history before it is sent."""

import random
import threading

from . import api as api_module


class Settings:
    def __init__(self, seed, clients, users, senders, hot_shares, min_expiry_s, max_expiry_s,
                 user_base, timeout_s):
        self.seed = seed
        self.clients = clients
        self.users = users
        self.senders = senders
        self.hot_shares = hot_shares
        self.min_expiry_s = min_expiry_s
        self.max_expiry_s = max_expiry_s
        self.user_base = user_base
        self.timeout_s = timeout_s


# Operation mix, in parts of 100.
WEIGHTS = [
    ("grab_hot", 38), ("grab_many", 28), ("grab_repeat", 5), ("grab_exclusive", 3),
    ("create", 8), ("create_repeat", 1), ("deposit_new", 4), ("deposit_repeat", 1),
    ("deposit_conflict", 1), ("balance", 6), ("details", 5),
]


class Shared:
    """What the clients know together: the packets created, the hot one, earlier requests."""

    def __init__(self, settings):
        self.lock = threading.Lock()
        self.settings = settings
        self.packets = {}  # packet id (str) -> create value, with "expires_at" (history time)
        self.open_ids = []  # ids believed grabbable (pruned as they expire or empty)
        self.hot = None
        self.hot_rotating = False
        self.deposits = []  # (user, amount, request_id) sent before
        self.creates = []  # create values sent before
        self.grabbed = []  # (user, packet) whose grab was ok or unknown
        self.exclusive = []  # (packet, receiver)
        self.counter = 0

    def next_id(self, prefix):
        with self.lock:
            self.counter += 1
            return f"{prefix}-{self.settings.seed}-{self.counter}"


class Workload:
    def __init__(self, settings, history, addresses, tokens):
        self.settings = settings
        self.history = history
        self.addresses = addresses
        self.tokens = tokens
        self.shared = Shared(settings)
        self.stop_event = threading.Event()
        self.threads = []
        self.sender_ids = [settings.user_base + i for i in range(settings.senders)]
        self.user_ids = [settings.user_base + i for i in range(settings.users)]

    # --- running ---

    def setup(self):
        """Funds every sender before the clients start (these are operations of the history)."""
        client = _Client(self, "setup", random.Random(f"{self.settings.seed}-setup"))
        for sender in self.sender_ids:
            for _ in range(3):  # a deposit that ends unknown is tried again under a new id
                if client.deposit(sender, 5_000_000, self.shared.next_id("d")) == "ok":
                    break
        client.new_hot_packet()
        client.api.close()

    def start(self):
        for index in range(self.settings.clients):
            rng = random.Random(f"{self.settings.seed}-client-{index}")
            client = _Client(self, f"c{index}", rng)
            thread = threading.Thread(target=client.run, name=f"chaos-c{index}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def stop(self):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=self.settings.timeout_s * 3 + 5)


class _Client:
    def __init__(self, workload, name, rng):
        self.workload = workload
        self.name = name
        self.rng = rng
        self.api = api_module.Api(workload.addresses, workload.settings.timeout_s)
        self.shared = workload.shared
        self.history = workload.history
        self.tokens = workload.tokens
        ops = [name for name, weight in WEIGHTS for _ in range(weight)]
        self.ops = ops

    def run(self):
        try:
            while not self.workload.stop_event.is_set():
                getattr(self, self.rng.choice(self.ops))()
        finally:
            self.api.close()

    # --- plumbing ---

    def _call(self, f, value, method, path, body, token):
        op = self.history.invoke(self.name, f, value)
        outcome = self.api.call(self.rng.randrange(self.api.server_count()), method, path, body,
                                token)
        self.history.complete(op, outcome.type, outcome.status, outcome.body, outcome.error)
        return outcome

    def _user(self):
        return self.rng.choice(self.workload.user_ids)

    # --- writes ---

    def deposit(self, user, amount, request_id):
        value = {"user": user, "amount": amount, "request_id": request_id}
        outcome = self._call("deposit", value, "POST", f"/v1/users/{user}/deposit",
                             {"amount_cents": amount, "request_id": request_id},
                             self.tokens.admin)
        with self.shared.lock:
            self.shared.deposits.append((user, amount, request_id))
        return outcome.type

    def create(self, value=None):
        if value is None:
            settings = self.workload.settings
            count = self.rng.randint(1, 20)
            exclusive = self.rng.random() < 0.15
            if exclusive:
                count = 1
            kind = self.rng.choice(["lucky", "equal"])
            per_share = self.rng.randint(1, 60)
            total = count * per_share if kind == "equal" else self.rng.randint(count, count * 60)
            short = self.rng.random() < 0.8
            expiry = (settings.min_expiry_s if short
                      else self.rng.randint(settings.min_expiry_s, settings.max_expiry_s))
            value = {"sender": self.rng.choice(self.workload.sender_ids), "total": total,
                     "count": count, "kind": kind, "expires_in_s": expiry,
                     "receiver": self._user() if exclusive else None,
                     "request_id": self.shared.next_id("p")}
        body = {"total_cents": value["total"], "count": value["count"], "kind": value["kind"],
                "greeting": "chaos", "expires_in_s": value["expires_in_s"],
                "request_id": value["request_id"]}
        if value["receiver"] is not None:
            body["receiver_id"] = value["receiver"]
        outcome = self._call("create", value, "POST", "/v1/packets", body,
                             self.tokens.user(value["sender"]))
        with self.shared.lock:
            self.shared.creates.append(value)
            if outcome.type == "ok" and isinstance(outcome.body, dict):
                packet_id = str(outcome.body.get("packet_id"))
                if packet_id not in self.shared.packets:
                    self.shared.packets[packet_id] = dict(
                        value, expires_at=self.history.now() + value["expires_in_s"])
                    if value["receiver"] is not None:
                        self.shared.exclusive.append((packet_id, value["receiver"]))
                    else:
                        self.shared.open_ids.append(packet_id)
        return outcome

    def new_hot_packet(self):
        settings = self.workload.settings
        value = {"sender": self.workload.sender_ids[0], "total": settings.hot_shares * 25,
                 "count": settings.hot_shares, "kind": "lucky",
                 "expires_in_s": max(settings.min_expiry_s, min(60, settings.max_expiry_s)),
                 "receiver": None, "request_id": self.shared.next_id("hot")}
        outcome = self.create(value)
        with self.shared.lock:
            if outcome.type == "ok" and isinstance(outcome.body, dict):
                self.shared.hot = str(outcome.body.get("packet_id"))
            self.shared.hot_rotating = False

    def grab(self, packet_id, user):
        outcome = self._call("grab", {"packet": packet_id, "user": user}, "POST",
                             f"/v1/packets/{packet_id}/grab", None, self.tokens.user(user))
        if outcome.type in ("ok", "info"):
            with self.shared.lock:
                self.shared.grabbed.append((user, packet_id))
        return outcome

    # --- the operations of WEIGHTS ---

    def grab_hot(self):
        with self.shared.lock:
            hot = self.shared.hot
            rotate = hot is None and not self.shared.hot_rotating
            if rotate:
                self.shared.hot_rotating = True
        if rotate:
            return self.new_hot_packet()
        if hot is None:
            return self.grab_many()
        outcome = self.grab(hot, self._user())
        if outcome.status == 410 or outcome.status == 404:
            with self.shared.lock:
                if self.shared.hot == hot:
                    self.shared.hot = None

    def grab_many(self):
        with self.shared.lock:
            now = self.history.now()
            open_ids = self.shared.open_ids
            # Drop what expired long ago, so grabs mostly land on live packets.
            if len(open_ids) > 400 or (open_ids and self.rng.random() < 0.05):
                open_ids[:] = [p for p in open_ids
                               if self.shared.packets[p]["expires_at"] > now - 5][-400:]
            packet_id = self.rng.choice(open_ids) if open_ids else None
        if packet_id is None:
            return self.create()
        self.grab(packet_id, self._user())

    def grab_repeat(self):
        with self.shared.lock:
            pair = self.rng.choice(self.shared.grabbed) if self.shared.grabbed else None
        if pair is None:
            return self.grab_many()
        user, packet_id = pair
        self.grab(packet_id, user)

    def grab_exclusive(self):
        with self.shared.lock:
            pair = self.rng.choice(self.shared.exclusive) if self.shared.exclusive else None
        if pair is None:
            return self.create()
        packet_id, receiver = pair
        self.grab(packet_id, receiver if self.rng.random() < 0.6 else self._user())

    def create_repeat(self):
        with self.shared.lock:
            value = self.rng.choice(self.shared.creates) if self.shared.creates else None
        if value is None or value["request_id"].startswith("hot"):
            return self.create()
        self.create(dict(value))

    def deposit_new(self):
        user = (self.rng.choice(self.workload.sender_ids) if self.rng.random() < 0.5
                else self._user())
        self.deposit(user, self.rng.randint(1, 100_000), self.shared.next_id("d"))

    def deposit_repeat(self):
        with self.shared.lock:
            earlier = self.rng.choice(self.shared.deposits) if self.shared.deposits else None
        if earlier is None:
            return self.deposit_new()
        self.deposit(*earlier)

    def deposit_conflict(self):
        """An earlier request id with another amount: 409 idempotency_conflict, nothing applied."""
        with self.shared.lock:
            earlier = self.rng.choice(self.shared.deposits) if self.shared.deposits else None
        if earlier is None:
            return self.deposit_new()
        user, amount, request_id = earlier
        self.deposit(user, amount + 1, request_id)

    def balance(self):
        user = self._user()
        self._call("balance", {"user": user}, "GET", f"/v1/users/{user}/balance", None,
                   self.tokens.user(user))

    def details(self):
        with self.shared.lock:
            ids = list(self.shared.packets)
            packet_id = self.rng.choice(ids) if ids else None
        if packet_id is None:
            return self.create()
        self._call("details", {"packet": packet_id}, "GET", f"/v1/packets/{packet_id}", None,
                   self.tokens.user(self._user()))

