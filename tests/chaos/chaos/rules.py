"""The invariants, each held against the history (what every client was told) and what the money
did (the ledger's rows, the API's reads, the audit). Pure: no I/O."""

import re
from collections import defaultdict


class Violation:
    def __init__(self, rule, text, ops=(), packets=()):
        self.rule = rule
        self.text = text
        self.ops = list(ops)
        self.packets = [str(p) for p in packets]
        self.kinds = set()  # fault kinds active around its operations
        self.beyond_promise = False


def _answer_code(op):
    return op.answer.get("error") if isinstance(op.answer, dict) else None


def grab_acks(ops):
    """(packet, user) -> the operations that acknowledged a share: a 200, or a 409 `conflict`
    that carries the amount of an earlier grab (that grab took a share, whatever its client
    heard)."""
    acks = defaultdict(list)
    for op in ops:
        if op.f != "grab":
            continue
        key = (str(op.value["packet"]), op.value["user"])
        if op.type == "ok":
            acks[key].append(op)
        elif op.status == 409 and _answer_code(op) == "conflict" and \
                isinstance(op.answer, dict) and "amount_cents" in op.answer:
            acks[key].append(op)
    return acks


def check_grabs(ops, facts):
    violations = []
    acks = grab_acks(ops)
    invoked = {(str(op.value["packet"]), op.value["user"]) for op in ops if op.f == "grab"}
    for (packet, user), acked in sorted(acks.items()):
        amounts = {op.answer["amount_cents"] for op in acked}
        seqs = {op.answer.get("seq") for op in acked if op.type == "ok"}
        if len(amounts) > 1 or len(seqs) > 1:
            violations.append(Violation(
                "repeat-first-answer",
                f"packet {packet}, user {user}: the grab's answers disagree (amounts "
                f"{sorted(amounts)}, seqs {sorted(s for s in seqs if s is not None)})",
                acked, [packet]))
        credited = facts.grabs.get((packet, user))
        amount = acked[0].answer["amount_cents"]
        if credited is None:
            violations.append(Violation(
                "acknowledged-grab-credited",
                f"packet {packet}, user {user}: a grab acknowledged with {amount} cents was never "
                f"credited", acked, [packet]))
        elif credited[0] != amount or (seqs and credited[1] not in seqs):
            violations.append(Violation(
                "acknowledged-grab-credited",
                f"packet {packet}, user {user}: acknowledged {amount} cents (seq "
                f"{sorted(s for s in seqs if s is not None)}) but credited {credited[0]} cents "
                f"(seq {credited[1]})", acked, [packet]))
    # Per packet: no two users acknowledged the same share, no more acknowledged than shares.
    by_packet = defaultdict(list)
    for (packet, user), acked in acks.items():
        by_packet[packet].append((user, acked))
    for packet, entries in sorted(by_packet.items()):
        seq_owner = {}
        for user, acked in entries:
            for op in acked:
                seq = op.answer.get("seq") if op.type == "ok" else None
                if seq is None:
                    continue
                other = seq_owner.setdefault(seq, (user, op))
                if other[0] != user:
                    violations.append(Violation(
                        "one-share-per-grab",
                        f"packet {packet}: share seq {seq} acknowledged to users {other[0]} and "
                        f"{user}", [other[1], op], [packet]))
        shape = facts.packets.get(packet)
        if shape is not None and len(entries) > shape["count"]:
            violations.append(Violation(
                "no-oversell",
                f"packet {packet}: {len(entries)} users were told they hold a share of a "
                f"{shape['count']}-share packet",
                [acked[0] for _, acked in entries][:20], [packet]))
    # The ledger's grabs: each made by a grab that was invoked, at most count, one per seq.
    seqs_by_packet = defaultdict(dict)
    for (packet, user), (amount, seq) in sorted(facts.grabs.items()):
        if (packet, user) not in invoked:
            violations.append(Violation(
                "no-invented-credit",
                f"packet {packet}: user {user} credited {amount} cents for a grab nobody made",
                [], [packet]))
        owner = seqs_by_packet[packet].setdefault(seq, user)
        if owner != user:
            violations.append(Violation(
                "one-share-per-grab",
                f"packet {packet}: the ledger pays share {seq} to users {owner} and {user}", [],
                [packet]))
    return violations


def check_packets(facts, now_ms, finish_grace_ms, ops):
    """Every finished packet: grabs + refund == total; every packet past its expiry finished."""
    violations = []
    grabs_by_packet = defaultdict(list)
    for (packet, user), (amount, seq) in facts.grabs.items():
        grabs_by_packet[packet].append((user, amount, seq))
    grab_ops = defaultdict(list)
    for op in ops:
        if op.f == "grab" and op.type in ("ok", "info"):
            grab_ops[str(op.value["packet"])].append(op)
    for packet, shape in sorted(facts.packets.items(), key=lambda item: int(item[0])):
        grabs = grabs_by_packet.get(packet, [])
        grabbed = sum(amount for _, amount, _ in grabs)
        involved = grab_ops.get(packet, [])
        unknown = [op for op in involved if op.type == "info"]
        if len(grabs) > shape["count"]:
            violations.append(Violation(
                "no-oversell", f"packet {packet}: {len(grabs)} grabs credited on "
                f"{shape['count']} shares", involved[:20], [packet]))
        if grabbed != shape["grabbed_cents"] or len(grabs) != shape["grabbed_count"]:
            violations.append(Violation(
                "packet-accounts",
                f"packet {packet}: its row says {shape['grabbed_count']} grabs / "
                f"{shape['grabbed_cents']} cents, its grabs are {len(grabs)} / {grabbed}",
                [], [packet]))
        status = shape["status"]
        if status == "exhausted" and (grabbed != shape["total"] or
                                      len(grabs) != shape["count"]):
            violations.append(Violation(
                "grabs-plus-refund-is-total",
                f"packet {packet}: exhausted with {len(grabs)}/{shape['count']} grabs of "
                f"{grabbed}/{shape['total']} cents", unknown[:20] or involved[:20], [packet]))
        if status == "refunded":
            refund = shape["refund"] or 0
            if grabbed + refund != shape["total"]:
                lost = shape["total"] - grabbed - refund
                violations.append(Violation(
                    "grabs-plus-refund-is-total",
                    f"packet {packet}: grabs {grabbed} + refund {refund} != total "
                    f"{shape['total']} ({lost:+d} cents {'lost' if lost > 0 else 'invented'}; "
                    f"{len(unknown)} grabs of unknown outcome)",
                    unknown[:20] or involved[:20], [packet]))
        if status in ("open", "expired") and shape["expires_at_ms"] + finish_grace_ms < now_ms:
            violations.append(Violation(
                "every-packet-finishes",
                f"packet {packet}: still {status} {(now_ms - shape['expires_at_ms']) // 1000} s "
                f"after its expiry ({len(grabs)}/{shape['count']} grabs credited)",
                unknown[:20], [packet]))
    return violations


_EVENT_PACKET = re.compile(r"^[gr]-(\d+)")


def _packet_of(set_aside_text):
    """The packet of a set-aside event (event ids g-<packet>-<user>, r-<packet>), or None."""
    match = _EVENT_PACKET.match(set_aside_text)
    return match.group(1) if match else None


def set_aside_packets(facts):
    """The packets of the events the ledger set aside."""
    return [p for p in (_packet_of(what) for _, what in facts.dead_letters) if p is not None]


def check_set_aside(facts):
    """An event the ledger's rules refused is money decided and never credited. Each names its
    packet: a refusal that follows a fault beyond the promise (a rolled-back slot paid a share
    twice, so its refund no longer conserves money) is reported in that row."""
    violations = []
    for where, what in facts.dead_letters:
        packet = _packet_of(what)
        violations.append(Violation("nothing-set-aside", f"the ledger set aside {where}: {what}",
                                    packets=[packet] if packet is not None else []))
    return violations


def check_money(facts, balances):
    """Conservation in the ledger, and the API's balances equal to the ledger's."""
    violations = []
    deposits = sum(amount for _, amount, _ in facts.deposits)
    balances_sum = sum(facts.accounts.values())
    escrow = facts.escrow()
    if deposits != balances_sum + escrow:
        violations.append(Violation(
            "money-is-conserved",
            f"deposits {deposits} != balances {balances_sum} + escrow {escrow} "
            f"(difference {deposits - balances_sum - escrow:+d})"))
    unreadable = [(user, why) for user, (balance, why) in sorted(balances.items())
                  if balance is None]
    if unreadable:
        violations.append(Violation(
            "api-agrees-with-ledger",
            f"after healing, the API cannot tell the balance of {len(unreadable)} users, e.g. "
            f"user {unreadable[0][0]}: {unreadable[0][1]}"))
    for user, (balance, pending) in sorted(balances.items()):
        if balance is None:
            continue
        in_ledger = facts.accounts.get(user, 0)
        if balance != in_ledger or pending != 0:
            violations.append(Violation(
                "api-agrees-with-ledger",
                f"user {user}: the API says balance {balance} (pending {pending}), the ledger "
                f"{in_ledger}"))
    return violations


def check_writes(ops, facts):
    """Acknowledged creates and deposits exist exactly once; a repeated request_id gets its
    first answer; what the server refused never happened; nothing was made without a request."""
    violations = []
    deposit_groups = defaultdict(list)
    create_groups = defaultdict(list)
    for op in ops:
        if op.f == "deposit":
            deposit_groups[(op.value["user"], op.value["request_id"])].append(op)
        elif op.f == "create":
            create_groups[(op.value["sender"], op.value["request_id"])].append(op)
    rows = defaultdict(list)
    for user, amount, request_id in facts.deposits:
        rows[(user, request_id)].append(amount)
    for key, amounts in sorted(rows.items(), key=lambda item: str(item[0])):
        group = deposit_groups.get(key, [])
        if not group:
            violations.append(Violation("no-invented-deposit",
                                        f"deposit {key} of {amounts} cents nobody asked for"))
            continue
        if len(amounts) > 1:
            violations.append(Violation("deposit-once",
                                        f"deposit {key} applied {len(amounts)} times", group))
    for key, group in sorted(deposit_groups.items(), key=lambda item: str(item[0])):
        applied = rows.get(key, [])
        oks = [op for op in group if op.type == "ok"]
        if oks and not applied:
            violations.append(Violation("acknowledged-deposit-exists",
                                        f"deposit {key} acknowledged but not in the ledger", oks))
        if not oks and applied and all(op.type == "fail" for op in group):
            violations.append(Violation("refused-write-changes-nothing",
                                        f"deposit {key} refused every time, yet applied", group))
        for op in oks:
            if applied and op.value["amount"] != applied[0]:
                violations.append(Violation(
                    "repeat-first-answer",
                    f"deposit {key}: {op.value['amount']} cents answered ok, but the request id "
                    f"holds {applied[0]}", [op]))
        answers = {op.answer.get("balance_cents") for op in oks if isinstance(op.answer, dict)}
        if len(answers) > 1:
            violations.append(Violation("repeat-first-answer",
                                        f"deposit {key}: repeats answered {sorted(answers)}", oks))
    # Creates: the idempotency rows name the packet of each (sender, request_id).
    packet_of = {}
    for (user, request_id, kind), result in facts.idempotency.items():
        if kind == "create_packet":
            packet_of[(user, request_id)] = str(result)
    claimed = set(packet_of.values())
    for packet in sorted(facts.packets, key=int):
        if packet not in claimed:
            violations.append(Violation("no-invented-packet",
                                        f"packet {packet} debited without a request behind it",
                                        [], [packet]))
    for key, group in sorted(create_groups.items(), key=lambda item: str(item[0])):
        oks = [op for op in group if op.type == "ok" and isinstance(op.answer, dict)]
        answered = {str(op.answer.get("packet_id")) for op in oks}
        stored = packet_of.get(key)
        if len(answered) > 1:
            violations.append(Violation("repeat-first-answer",
                                        f"create {key}: repeats answered packets "
                                        f"{sorted(answered)}", oks, answered))
        for packet in answered:
            shape = facts.packets.get(packet)
            if shape is None or stored != packet:
                violations.append(Violation(
                    "acknowledged-create-exists",
                    f"create {key} answered packet {packet}, the ledger has "
                    f"{'no such packet' if shape is None else 'it'} and request id -> {stored}",
                    oks, [packet]))
            elif (shape["sender"], shape["total"], shape["count"]) != \
                    (key[0], oks[0].value["total"], oks[0].value["count"]):
                violations.append(Violation(
                    "acknowledged-create-exists",
                    f"create {key}: packet {packet} is {shape['total']}/{shape['count']} of "
                    f"sender {shape['sender']}", oks, [packet]))
        if stored is not None and all(op.type == "fail" for op in group):
            violations.append(Violation("refused-write-changes-nothing",
                                        f"create {key} refused every time, yet packet {stored} "
                                        f"exists", group, [stored]))
    return violations


_MONEY_LINE = re.compile(r"money: deposits (-?\d+) == balances (-?\d+) \+ escrow (-?\d+) \+ "
                         r"pending (-?\d+)")


def check_audit(code, output, facts, checker_violations):
    violations = []
    match = _MONEY_LINE.search(output)
    if match is None:
        return [Violation("audit-agrees", f"the audit printed no money line (exit {code}): "
                                          f"{output.strip()[-300:]}")]
    deposits, balances, escrow, pending = map(int, match.groups())
    mine = (sum(a for _, a, _ in facts.deposits), sum(facts.accounts.values()), facts.escrow(), 0)
    if (deposits, balances, escrow, pending) != mine:
        # The audit counts set-aside events as pending (decided, never credited): the packets
        # of those events explain the difference.
        violations.append(Violation(
            "audit-agrees",
            f"the audit sums deposits {deposits}, balances {balances}, escrow {escrow}, pending "
            f"{pending}; the checker {mine[0]}, {mine[1]}, {mine[2]}, {mine[3]}",
            packets=set_aside_packets(facts) if pending else []))
    if code == 0 and checker_violations:
        violations.append(Violation(
            "audit-agrees",
            f"the audit says OK, the checker finds {checker_violations} violations"))
    if code != 0 and not checker_violations:
        violations.append(Violation("audit-agrees",
                                    f"the audit fails (exit {code}) where the checker finds "
                                    f"nothing: {output.strip()[-300:]}"))
    return violations


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """Redis Cluster's slot of a key (its hash tag's, when it has one)."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return crc16(data) % 16384
