"""The run's report: a table per fault kind, the violations with the operations involved and the
command that reproduces them, and the last line that CI and people grep for."""

from collections import Counter, defaultdict

from .rules import key_slot

_SETTLE_S = 2.0  # effects of a fault outlive its healing by a moment


def _kinds_at(faults, start, end):
    return {fault["kind"] for fault in faults
            if fault["start"] <= end and (fault["end"] or float("inf")) + _SETTLE_S >= start}


def attribute(violations, ops, faults):
    """Fault kinds around each violation's operations (or its packets' grabs), and whether it
    follows from a fault beyond the written durability promise."""
    grabs_by_packet = defaultdict(list)
    for op in ops:
        if op.f == "grab":
            grabs_by_packet[str(op.value["packet"])].append(op)
    rolled_back_slots = {fault["handle"].get("slot") for fault in faults
                         if fault["beyond_promise"]}
    for violation in violations:
        involved = list(violation.ops)
        if not involved:
            for packet in violation.packets:
                involved.extend(grabs_by_packet.get(packet, []))
        for op in involved:
            violation.kinds |= _kinds_at(faults, op.invoked, op.completed or op.invoked)
        for packet in violation.packets:
            if key_slot("{rp:" + packet + "}") in rolled_back_slots:
                violation.beyond_promise = True


def render(ops, faults, violations, command, mode, seed, not_injected=()):
    """The report's text and its number of violations. `not_injected`: (kind, why) of each planned
    fault that was not injected."""
    lines = []
    kinds = sorted({fault["kind"] for fault in faults})
    injected = Counter(fault["kind"] for fault in faults)
    rows = {kind: Counter() for kind in kinds}
    rows["(no fault)"] = Counter()
    for op in ops:
        active = _kinds_at(faults, op.invoked, op.completed or op.invoked) or {"(no fault)"}
        for kind in active:
            rows[kind][op.type or "info"] += 1
    in_promise = [v for v in violations if not v.beyond_promise]
    beyond = [v for v in violations if v.beyond_promise]
    per_kind = Counter()
    for violation in in_promise:
        for kind in violation.kinds or {"(no fault)"}:
            per_kind[kind] += 1
    header = f"{'fault kind':30} {'injected':>8} {'ok':>8} {'failed':>8} {'unknown':>8} " \
             f"{'violations':>10}"
    lines += [f"chaos report: mode {mode}, seed {seed}", "", header, "-" * len(header)]
    for kind in kinds + ["(no fault)"]:
        counts = rows[kind]
        lines.append(f"{kind:30} {injected.get(kind, 0):>8} {counts['ok']:>8} "
                     f"{counts['fail']:>8} {counts['info']:>8} {per_kind.get(kind, 0):>10}")
    lines.append(f"{'beyond the durability promise':30} {'':>8} {'':>8} {'':>8} {'':>8} "
                 f"{len(beyond):>10}")
    if not_injected:
        lines += ["", f"planned but not injected: {len(not_injected)} of "
                      f"{len(faults) + len(not_injected)} faults"]
        never = sorted({kind for kind, _ in not_injected} - set(kinds))
        if never:
            lines.append(f"  kinds never injected in this run: {', '.join(never)}")
        lines += [f"  {kind}: {why}" for kind, why in not_injected]
    by_rule = Counter(v.rule for v in in_promise)
    if by_rule:
        lines += ["", "violations by invariant:"]
        lines += [f"  {rule}: {count}" for rule, count in by_rule.most_common()]
    for title, group in (("violations", in_promise),
                         ("beyond the durability promise (a fault the promise does not cover; "
                          "not counted as violations)", beyond)):
        if not group:
            continue
        lines += ["", f"{title}:"]
        for violation in group[:60]:
            around = ", ".join(sorted(violation.kinds)) or "no fault"
            lines.append(f"- [{violation.rule}] {violation.text} (around: {around})")
            for op in violation.ops[:6]:
                lines.append(f"    {op.describe()}")
        if len(group) > 60:
            lines.append(f"  ... and {len(group) - 60} more (violations.json)")
    if in_promise:
        lines += ["", f"reproduce: {command}"]
    totals = Counter(op.type or "info" for op in ops)
    lines += ["", f"chaos: {len(ops)} operations ({totals['ok']} ok, {totals['fail']} failed, "
                  f"{totals['info']} unknown), {len(faults)} faults of {len(kinds)} kinds, "
                  f"{len(in_promise)} violations"]
    return "\n".join(lines), len(in_promise)
