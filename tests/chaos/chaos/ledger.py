"""What the ledger holds, read straight from its tables (SQLite file, or the MariaDB primary
through the `mariadb` client), in one shape for both: the checker holds the history against it."""

import sqlite3
import subprocess


class Facts:
    def __init__(self):
        self.accounts = {}  # user -> balance_cents
        self.deposits = []  # (user, amount, request_id or None)
        self.packets = {}  # packet id (str) -> dict
        self.grabs = {}  # (packet id, user) -> (amount, seq)
        self.refunds = {}  # packet id -> (user, amount)
        self.idempotency = {}  # (user, request_id, kind) -> result
        self.dead_letters = []  # (where, text): events the ledger set aside, when it keeps them

    def escrow(self):
        """What open and expired-but-unrefunded packets still hold."""
        held = 0
        for packet in self.packets.values():
            if packet["status"] in ("open", "expired"):
                held += packet["total"] - packet["grabbed_cents"] - (packet["refund"] or 0)
        return held


_QUERIES = {
    "accounts": "SELECT user_id, balance_cents FROM accounts",
    "deposits": "SELECT user_id, amount_cents, request_id FROM deposits",
    "packets": ("SELECT packet_id, sender_id, total_cents, count, status, grabbed_count, "
                "grabbed_cents, refund_cents, receiver_id, expires_at_ms FROM packets"),
    "grabs": "SELECT packet_id, user_id, amount_cents, seq FROM grabs",
    "refunds": "SELECT packet_id, user_id, amount_cents FROM refunds",
    "idempotency": "SELECT user_id, request_id, kind, result FROM idempotency",
    "dead_letters": "SELECT partition_id, offset_value, coalesce(event_id, ''), reason FROM dead_letters",
}


def _int(value):
    if value is None or value == "NULL" or value == "":
        return None
    return int(value)


def _fill(facts, rows):
    for user, balance in rows["accounts"]:
        facts.accounts[int(user)] = int(balance)
    for user, amount, request_id in rows["deposits"]:
        facts.deposits.append((int(user), int(amount),
                               None if request_id in (None, "NULL") else str(request_id)))
    for (packet_id, sender, total, count, status, grabbed_count, grabbed_cents, refund, receiver,
         expires_at_ms) in rows["packets"]:
        facts.packets[str(packet_id)] = {
            "sender": int(sender), "total": int(total), "count": int(count), "status": status,
            "grabbed_count": int(grabbed_count), "grabbed_cents": int(grabbed_cents),
            "refund": _int(refund), "receiver": _int(receiver),
            "expires_at_ms": int(expires_at_ms)}
    for packet_id, user, amount, seq in rows["grabs"]:
        facts.grabs[(str(packet_id), int(user))] = (int(amount), int(seq))
    for packet_id, user, amount in rows["refunds"]:
        facts.refunds[str(packet_id)] = (int(user), int(amount))
    for user, request_id, kind, result in rows["idempotency"]:
        facts.idempotency[(int(user), str(request_id), str(kind))] = str(result)
    for partition, offset, event_id, reason in rows["dead_letters"]:
        facts.dead_letters.append((f"partition {partition} offset {offset}",
                                   f"{event_id}: {reason}"))
    return facts


def read_sqlite(path):
    """The embedded ledger, read-only, in one transaction (one snapshot)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        connection.execute("BEGIN")
        rows = {name: connection.execute(sql).fetchall() for name, sql in _QUERIES.items()}
        connection.execute("COMMIT")
    finally:
        connection.close()
    return _fill(Facts(), rows)


def read_mariadb(host, port, user="redpacket", password="redpacket", database="redpacket"):
    """The cluster ledger from the primary, every table in one REPEATABLE READ snapshot."""
    script = ["SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;",
              "START TRANSACTION WITH CONSISTENT SNAPSHOT;"]
    for name, sql in _QUERIES.items():
        script.append(f"SELECT '#table {name}';")
        script.append(sql + ";")
    script.append("COMMIT;")
    result = subprocess.run(
        ["mariadb", f"--host={host}", f"--port={port}", f"--user={user}",
         f"--password={password}", "--batch", "--skip-column-names", "--raw", database],
        input="\n".join(script), capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cannot read the MariaDB ledger at {host}:{port}: "
                           f"{result.stderr.strip()}")
    rows = {name: [] for name in _QUERIES}
    current = None
    for line in result.stdout.splitlines():
        if line.startswith("#table "):
            current = line[len("#table "):]
            continue
        if current is None:
            continue
        rows[current].append(tuple(line.split("\t")))
    return _fill(Facts(), rows)
