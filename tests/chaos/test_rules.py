"""The checker's rules on small hand-made histories: each rule fires on the loss it is for, and a
clean history gives none. (The rules' proof on real processes is scripts/chaos itself: on the
code before the fixes it finds each of the losses docs/reliability.md lists.)"""

import unittest

from chaos import report, rules
from chaos.history import Op
from chaos.ledger import Facts


def op(index, f, value, type_, status=None, answer=None):
    made = Op(index, "c0", f, value, float(index))
    made.completed = float(index) + 0.5
    made.type = type_
    made.status = status
    made.answer = answer
    return made


def grab(index, packet, user, type_="ok", amount=10, seq=1, status=200):
    answer = {"amount_cents": amount, "seq": seq} if type_ == "ok" else None
    if status == 409:
        answer = {"error": "conflict", "amount_cents": amount, "seq": seq}
    return op(index, "grab", {"packet": packet, "user": user}, type_, status, answer)


def facts_with_packet(status="refunded", total=30, count=3, grabs=(), refund=None):
    facts = Facts()
    grabbed = 0
    for user, amount, seq in grabs:
        facts.grabs[("1", user)] = (amount, seq)
        grabbed += amount
    facts.packets["1"] = {"sender": 9, "total": total, "count": count, "status": status,
                          "grabbed_count": len(grabs), "grabbed_cents": grabbed,
                          "refund": refund, "receiver": None, "expires_at_ms": 0}
    if refund is not None:
        facts.refunds["1"] = (9, refund)
    facts.idempotency[(9, "p-1", "create_packet")] = "1"
    return facts


def rule_names(violations):
    return sorted({violation.rule for violation in violations})


class GrabRules(unittest.TestCase):
    def test_a_clean_history_has_no_violation(self):
        ops = [grab(0, "1", 5, amount=10, seq=1), grab(1, "1", 6, amount=20, seq=2),
               grab(2, "1", 5, "fail", amount=10, seq=1, status=409)]
        facts = facts_with_packet(grabs=[(5, 10, 1), (6, 20, 2)], refund=0, total=30, count=2)
        self.assertEqual([], rules.check_grabs(ops, facts))
        self.assertEqual([], rules.check_packets(facts, 10**6, 30_000, ops))

    def test_an_acknowledged_grab_never_credited(self):
        ops = [grab(0, "1", 5, amount=10, seq=1)]
        facts = facts_with_packet(grabs=[], refund=30)
        self.assertEqual(["acknowledged-grab-credited"],
                         rule_names(rules.check_grabs(ops, facts)))

    def test_a_conflict_acknowledges_the_earlier_grab(self):
        ops = [grab(0, "1", 5, "info", status=503), grab(1, "1", 5, "fail", amount=10, seq=1,
                                                         status=409)]
        facts = facts_with_packet(grabs=[], refund=20)
        self.assertEqual(["acknowledged-grab-credited"],
                         rule_names(rules.check_grabs(ops, facts)))

    def test_credited_with_another_amount(self):
        ops = [grab(0, "1", 5, amount=10, seq=1)]
        facts = facts_with_packet(grabs=[(5, 11, 1)], refund=19)
        self.assertEqual(["acknowledged-grab-credited"],
                         rule_names(rules.check_grabs(ops, facts)))

    def test_one_share_told_to_two_users(self):
        ops = [grab(0, "1", 5, amount=10, seq=1), grab(1, "1", 6, amount=10, seq=1)]
        facts = facts_with_packet(grabs=[(5, 10, 1)], refund=20)
        self.assertIn("one-share-per-grab", rule_names(rules.check_grabs(ops, facts)))

    def test_a_user_answered_two_different_shares(self):
        ops = [grab(0, "1", 5, amount=10, seq=1), grab(1, "1", 5, amount=20, seq=2)]
        facts = facts_with_packet(grabs=[(5, 10, 1)], refund=20)
        self.assertIn("repeat-first-answer", rule_names(rules.check_grabs(ops, facts)))

    def test_more_users_told_than_shares(self):
        ops = [grab(i, "1", 5 + i, amount=10, seq=i + 1) for i in range(4)]
        facts = facts_with_packet(grabs=[(5 + i, 10, i + 1) for i in range(3)], total=30)
        self.assertIn("no-oversell", rule_names(rules.check_grabs(ops, facts)))

    def test_a_credit_without_a_grab(self):
        facts = facts_with_packet(grabs=[(5, 10, 1)], refund=20)
        self.assertEqual(["no-invented-credit"], rule_names(rules.check_grabs([], facts)))


class PacketRules(unittest.TestCase):
    def test_refunded_short_of_the_total(self):
        ops = [grab(0, "1", 5, "info", status=503)]
        facts = facts_with_packet(grabs=[(6, 10, 2)], refund=10, total=30)
        violations = rules.check_packets(facts, 10**6, 30_000, ops)
        self.assertEqual(["grabs-plus-refund-is-total"], rule_names(violations))
        self.assertIn("10 cents lost", violations[0].text)

    def test_a_packet_that_never_finishes(self):
        facts = facts_with_packet(status="open", grabs=[])
        self.assertEqual(["every-packet-finishes"],
                         rule_names(rules.check_packets(facts, 60_000, 30_000, [])))


class MoneyAndWriteRules(unittest.TestCase):
    def test_conservation(self):
        facts = Facts()
        facts.deposits.append((5, 100, "d-1"))
        facts.accounts[5] = 99
        self.assertEqual(["money-is-conserved"], rule_names(rules.check_money(facts, {})))

    def test_the_api_disagrees_with_the_ledger(self):
        facts = Facts()
        facts.deposits.append((5, 100, "d-1"))
        facts.accounts[5] = 100
        self.assertEqual(["api-agrees-with-ledger"],
                         rule_names(rules.check_money(facts, {5: (90, 10)})))

    def test_deposits(self):
        deposit = {"user": 5, "amount": 100, "request_id": "d-1"}
        ok = op(0, "deposit", deposit, "ok", 200, {"balance_cents": 100})
        facts = Facts()
        self.assertEqual(["acknowledged-deposit-exists"],
                         rule_names(rules.check_writes([ok], facts)))
        facts.deposits += [(5, 100, "d-1"), (5, 100, "d-1")]
        self.assertEqual(["deposit-once"], rule_names(rules.check_writes([ok], facts)))
        facts.deposits = [(5, 100, "d-1")]
        repeat = op(1, "deposit", deposit, "ok", 200, {"balance_cents": 200})
        self.assertEqual(["repeat-first-answer"], rule_names(rules.check_writes([ok, repeat],
                                                                                facts)))
        refused = op(0, "deposit", deposit, "fail", 409, {"error": "idempotency_conflict"})
        self.assertEqual(["refused-write-changes-nothing"],
                         rule_names(rules.check_writes([refused], facts)))

    def test_creates(self):
        value = {"sender": 9, "total": 30, "count": 3, "request_id": "p-1"}
        first = op(0, "create", value, "ok", 201, {"packet_id": "1"})
        again = op(1, "create", value, "ok", 201, {"packet_id": "2"})
        facts = facts_with_packet(status="open", grabs=[])
        self.assertEqual([], rules.check_writes([first], facts))
        self.assertIn("repeat-first-answer", rule_names(rules.check_writes([first, again],
                                                                           facts)))
        facts.packets["3"] = dict(facts.packets["1"])
        self.assertIn("no-invented-packet", rule_names(rules.check_writes([first], facts)))

    def test_a_set_aside_event(self):
        facts = Facts()
        self.assertEqual([], rules.check_set_aside(facts))
        facts.dead_letters.append(("partition 0 offset 7", "g-1-5: seq 9 outside 1..3"))
        self.assertEqual(["nothing-set-aside"], rule_names(rules.check_set_aside(facts)))

    def test_a_refusal_after_a_rolled_back_slot_is_beyond_the_promise(self):
        # Packet 2062's slot was restored from an old copy: shares were paid twice, and its
        # refund no longer conserves money, so the ledger refuses it. That follows from the
        # fault, and is reported in its row; the same refusal on another packet is a violation.
        facts = Facts()
        facts.dead_letters.append(("partition 4 offset 6425", "r-2062: CONSTRAINT failed"))
        facts.dead_letters.append(("partition 1 offset 3", "r-77: CONSTRAINT failed"))
        output = ("checked: money: deposits 100 == balances 100 + escrow -30 + pending 30\n"
                  "audit FAILED: 2 violations\n")
        violations = rules.check_set_aside(facts)
        violations += rules.check_audit(1, output, facts, len(violations))
        rolled_back = {"kind": "redis-slot-rolled-back", "beyond_promise": True, "start": 0.0,
                       "end": 1.0, "handle": {"slot": rules.key_slot("{rp:2062}")}}
        report.attribute(violations, [], [rolled_back])
        beyond = sorted((v.rule, v.packets[0]) for v in violations if v.beyond_promise)
        counted = sorted((v.rule, v.packets[0]) for v in violations if not v.beyond_promise)
        self.assertEqual([("audit-agrees", "2062"), ("nothing-set-aside", "2062")], beyond)
        self.assertEqual([("nothing-set-aside", "77")], counted)

    def test_the_audit_must_agree(self):
        facts = Facts()
        output = "checked: money: deposits 0 == balances 0 + escrow 0 + pending 0\naudit OK\n"
        self.assertEqual([], rules.check_audit(0, output, facts, 0))
        self.assertEqual(["audit-agrees"], rule_names(rules.check_audit(0, output, facts, 3)))


class Report(unittest.TestCase):
    def test_planned_faults_that_were_not_injected_are_listed(self):
        faults = [{"kind": "kill-api", "start": 1.0, "end": 2.0, "beyond_promise": False,
                   "handle": {}}]
        not_injected = [("kill-redis-master", "no time left: earlier faults took longer to heal"),
                        ("kill-api", "could not be taken: no API server is running")]
        text, found = report.render([grab(1, "1", 5)], faults, [], "cmd", "cluster", 43,
                                    not_injected)
        self.assertEqual(found, 0)
        self.assertIn("planned but not injected: 2 of 3 faults", text)
        self.assertIn("kinds never injected in this run: kill-redis-master", text)
        self.assertIn("kill-api: could not be taken: no API server is running", text)
        self.assertTrue(text.splitlines()[-1].startswith("chaos: 1 operations"))
        clean, _ = report.render([grab(1, "1", 5)], faults, [], "cmd", "cluster", 43)
        self.assertNotIn("not injected", clean)


class KeySlot(unittest.TestCase):
    def test_redis_cluster_slots(self):
        self.assertEqual(12182, rules.key_slot("foo"))  # CLUSTER KEYSLOT foo
        self.assertEqual(rules.key_slot("rp:1"), rules.key_slot("{rp:1}:meta"))


if __name__ == "__main__":
    unittest.main()
