"""scripts/chaos: run a seeded workload and seeded faults against the real processes, then heal,
quiesce and check every invariant against the history. Exit 0: no violation; 1: violations;
2: the run could not be made (setup), so it proves nothing."""

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time

from . import rules
from .api import Api, Tokens
from .cluster import ClusterTopology
from .embedded import EmbeddedTopology
from .history import History
from .nemesis import Nemesis
from .processes import ChaosError
from .report import attribute, render
from .workload import Settings, Workload

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/chaos",
        description="Seeded faults against the real processes, a client-side history, and a "
                    "checker that holds what every client was told against the money. The last "
                    "line is 'chaos: <N> operations (...), <F> faults of <K> kinds, <V> "
                    "violations'; exit 0 only when V is 0 (2: the run could not be made).")
    parser.add_argument("--mode", choices=["embedded", "cluster"], required=True)
    parser.add_argument("--seed", type=int, help="drives the workload and faults (required)")
    parser.add_argument("--duration", type=float,
                        help="seconds of workload under faults, then heal, quiesce, check "
                             "(required)")
    parser.add_argument("--faults", default="all",
                        help="comma-separated fault kinds, 'all' (default) or 'none'; "
                             "--list-faults names them")
    parser.add_argument("--list-faults", action="store_true", help="print the kinds and exit")
    parser.add_argument("--plan", action="store_true",
                        help="print the seed's fault schedule and exit (faults start at these "
                             "times or, when healing the previous one took longer, later)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients [16]")
    parser.add_argument("--users", type=int, default=3000, help="distinct grabbers [3000]")
    parser.add_argument("--hot-shares", type=int, default=1500,
                        help="shares of each hot packet [1500]")
    parser.add_argument("--min-expiry", type=int, default=10,
                        help="the shortest expiry, given to the servers too [10 s]")
    parser.add_argument("--max-expiry", type=int, default=30, help="the longest expiry [30 s]")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="a request without an answer after this is unknown [10 s]")
    parser.add_argument("--out", help="history and report [run/chaos/<mode>-<seed>]")
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "redpacket"))
    parser.add_argument("--port", type=int, default=18880,
                        help="embedded: the server's port [18880]")
    parser.add_argument("--port-offset", type=int, default=700,
                        help="cluster: added to every port of scripts/cluster [700: Redis "
                             "7701-7707, MariaDB 4007-4008, Kafka 9792, API 8781-8782, "
                             "workers 9800-9801]")
    parser.add_argument("--expect-violations", metavar="WHY",
                        help="a known failure: exit 0 when violations are found (and 1 when "
                             "none are: the mark should go), naming WHY")
    parser.add_argument("--keep", action="store_true",
                        help="cluster: leave the topology up after the run")
    args = parser.parse_args(argv)
    if not args.list_faults and (args.seed is None or args.duration is None):
        parser.error("--seed and --duration are required")
    return args


def make_topology(args, out):
    flags = ["--min-expires-in-s", str(args.min_expiry), "--max-count", str(args.hot_shares),
             "--max-total-cents", str(args.hot_shares * 25 + 100_000),
             "--rate-limit-per-user", "0"]
    if args.mode == "embedded":
        secret = os.urandom(16).hex()
        return EmbeddedTopology(args.binary, out, args.port, secret, flags)
    return ClusterTopology(REPO, args.binary, out, args.port_offset, flags)


def command_line(args):
    parts = ["scripts/chaos", "--mode", args.mode, "--seed", str(args.seed), "--duration",
             str(int(args.duration) if args.duration == int(args.duration) else args.duration)]
    if args.faults != "all":
        parts += ["--faults", args.faults]
    for flag, default in (("clients", 16), ("users", 3000), ("hot_shares", 1500)):
        if getattr(args, flag) != default:
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return " ".join(shlex.quote(part) for part in parts)


def select_faults(available, wanted):
    if wanted == "all":
        return available
    if wanted == "none":
        return []
    by_kind = {fault.kind: fault for fault in available}
    chosen = []
    for kind in wanted.split(","):
        if kind not in by_kind:
            raise ChaosError(f"unknown fault kind '{kind}' (known: {', '.join(by_kind)})")
        chosen.append(by_kind[kind])
    return chosen


def quiesce(topology, history, last_expiry_s, log):
    """Waits until every packet has finished, nothing is left to apply, and the ledger stops
    changing (or the deadline: what is still unfinished then is reported)."""
    deadline = max(history.now(), last_expiry_s) + 90
    previous, stable = None, 0
    while history.now() < deadline:
        try:
            facts = topology.read_facts()
        except (RuntimeError, OSError) as error:
            log(f"quiesce: cannot read the ledger yet: {error}")
            time.sleep(2)
            continue
        unfinished = sum(1 for p in facts.packets.values() if p["status"] in ("open", "expired"))
        lag = topology.lag()
        signature = (len(facts.grabs), len(facts.refunds), len(facts.deposits),
                     sum(facts.accounts.values()), unfinished)
        stable = stable + 1 if signature == previous else 0
        previous = signature
        if unfinished == 0 and lag == 0 and stable >= 2:
            return
        if history.now() > last_expiry_s + 20 and lag == 0 and stable >= 5:
            return  # what is still unfinished will not finish by waiting
        time.sleep(2)
    log("quiesce: deadline reached; checking what there is")


def read_balances(topology, tokens, users, timeout_s):
    api = Api(topology.addresses(), timeout_s)
    balances = {}
    try:
        for user in sorted(users):
            for _ in range(5):
                outcome = api.call(0, "GET", f"/v1/users/{user}/balance", None, tokens.user(user))
                if outcome.type == "ok":
                    balances[user] = (outcome.body["balance_cents"],
                                      outcome.body.get("pending_cents", 0))
                    break
                time.sleep(0.5)
            else:
                balances[user] = (None, f"{outcome.status or outcome.error} "
                                        f"{json.dumps(outcome.body) if outcome.body else ''}")
    finally:
        api.close()
    return balances


def _unmount_under(path):
    """Unmounts what is mounted under `path` (deepest first), e.g. the tmpfs disks that a run
    killed before its cleanup left behind; rmtree cannot remove a mount point."""
    root = os.path.realpath(path) + os.sep
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(root)), key=len, reverse=True):
        subprocess.run(["umount", point], check=False)


def main(argv):
    args = parse_args(argv)
    out = os.path.abspath(args.out or os.path.join(REPO, "run", "chaos",
                                                   f"{args.mode}-{args.seed}"))
    topology = make_topology(args, out)
    if args.list_faults:
        faults = topology.faults(None) if args.mode == "cluster" else topology.faults()
        print("\n".join(f"{f.kind}{' (beyond the durability promise)' if f.beyond_promise else ''}"
                        for f in faults))
        return 0
    if args.plan:
        faults = select_faults(topology.faults(None) if args.mode == "cluster"
                               else topology.faults(), args.faults)
        plan = Nemesis(topology, faults, None, random.Random(args.seed), args.duration)
        print("\n".join(plan.describe()))
        return 0
    if not os.access(args.binary, os.X_OK):
        print(f"chaos: no redpacket binary at {args.binary} (make build)", file=sys.stderr)
        return 2
    if os.path.isdir(out):
        if args.mode == "cluster":
            topology.teardown(False)
        _unmount_under(out)  # the small disks of an earlier run that was killed
        shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def log(text):
        print(f"chaos [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    history = None
    rng = random.Random(args.seed)
    settings = Settings(seed=args.seed, clients=args.clients, users=args.users,
                        senders=max(8, args.clients), hot_shares=args.hot_shares,
                        min_expiry_s=args.min_expiry, max_expiry_s=args.max_expiry,
                        user_base=1000, timeout_s=args.timeout)
    violations_found = 0
    keep = False
    try:
        log(f"starting the {args.mode} topology in {out}")
        topology.start()
        # The history's clock starts with the workload: fault times are relative to it.
        history = History(os.path.join(out, "history.jsonl"))
        tokens = Tokens(topology.secret)
        workload = Workload(settings, history, topology.addresses(), tokens)
        available = (topology.faults(workload.shared) if args.mode == "cluster"
                     else topology.faults())
        faults = select_faults(available, args.faults)
        workload.setup()
        nemesis = Nemesis(topology, faults, history, rng, args.duration) if faults else None
        if nemesis:
            log("faults planned:\n  " + "\n  ".join(nemesis.describe()))
            nemesis.start()
        log(f"workload: {args.clients} clients for {args.duration:.0f} s")
        workload.start()
        started = time.monotonic()
        while time.monotonic() - started < args.duration:
            time.sleep(min(10.0, args.duration - (time.monotonic() - started)))
            ops = len(history.ops)
            log(f"{time.monotonic() - started:5.0f}/{args.duration:.0f} s: {ops} operations, "
                f"{len(history.faults)} faults")
        workload.stop()
        if nemesis:
            nemesis.join()
            if nemesis.error:
                raise nemesis.error
        log("healing")
        topology.heal(history)
        last_expiry = max((p["expires_at"] for p in workload.shared.packets.values()),
                          default=history.now())
        log("quiescing: waiting for every packet to finish and the ledger to settle")
        quiesce(topology, history, last_expiry, log)
        users = {op.value["user"] for op in history.ops if "user" in op.value}
        users |= {op.value["sender"] for op in history.ops if "sender" in op.value}
        facts = topology.read_facts()
        users |= set(facts.accounts)
        log(f"reading {len(users)} balances through the API")
        balances = read_balances(topology, tokens, users, args.timeout)
        topology.stop()
        facts = topology.read_facts()
        now_ms = int(time.time() * 1000)
        log("checking")
        violations = []
        violations += rules.check_grabs(history.ops, facts)
        violations += rules.check_packets(facts, now_ms, 30_000, history.ops)
        violations += rules.check_money(facts, balances)
        violations += rules.check_writes(history.ops, facts)
        violations += rules.check_set_aside(facts)
        if getattr(topology, "crashes", None):
            for at, code in topology.crashes:
                violations.append(rules.Violation(
                    "no-crash", f"the server exited on its own (code {code}) at {at:.1f} s"))
        code, output = topology.audit()
        with open(os.path.join(out, "audit.txt"), "w", encoding="utf-8") as file:
            file.write(output)
        violations += rules.check_audit(code, output, facts, len(violations))
        attribute(violations, history.ops, history.faults)
        text, violations_found = render(history.ops, history.faults, violations,
                                        command_line(args), args.mode, args.seed,
                                        nemesis.not_injected if nemesis else ())
        with open(os.path.join(out, "violations.json"), "w", encoding="utf-8") as file:
            json.dump([{"rule": v.rule, "text": v.text, "kinds": sorted(v.kinds),
                        "beyond_promise": v.beyond_promise, "packets": v.packets,
                        "ops": [op.index for op in v.ops]} for v in violations], file, indent=1)
        with open(os.path.join(out, "report.txt"), "w", encoding="utf-8") as file:
            file.write(text + "\n")
        keep = violations_found > 0
        print(text, flush=True)
    except ChaosError as error:
        log(f"the run could not be made: {error}")
        if history is not None:
            history.close()
        topology.teardown(True)
        return 2
    except BaseException:  # an interrupt or a bug: still stop what was started
        topology.teardown(True)
        raise
    history.close()
    if args.keep and args.mode == "cluster":
        log(f"the topology stays up: scripts/cluster status --run-dir {out}/cluster")
    else:
        topology.teardown(keep)
    if args.expect_violations:
        if violations_found:
            log(f"known failure ({args.expect_violations}): {violations_found} violations, as "
                f"expected")
            return 0
        log(f"expected violations ({args.expect_violations}) but found none: remove the mark")
        return 1
    return 1 if violations_found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
