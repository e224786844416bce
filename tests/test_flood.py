"""A flood of never-seen ECS subnets cannot flush what steady traffic is answered from (issue 15 item 3).

Behaviour, not speed: the caches' hit counters say whether the steady set was answered from
them after the flood.  (bench/run measures the rates.)
"""

from __future__ import annotations

import random

import dns.edns
import dns.message

from geodns.answer.fastpath import MEMO_ENTRIES
from geodns.segmented import Segmented
from tests.test_fastpath import engines


def test_one_time_keys_pass_through_probation_and_leave_protected_alone():
    cache = Segmented(1000)
    steady = [("steady", i) for i in range(100)]
    for key in steady:
        cache.put(key, key)
        assert cache.get(key) == key  # the second sight promotes it
    for i in range(50_000):
        cache.put(("flood", i), i)
    assert len(cache) <= 1000
    assert all(cache.hit(key) == key for key in steady)  # still in protected, each of them


def test_weight_bound_holds():
    cache = Segmented(1000, weigh=len, max_weight=100)
    for i in range(500):
        cache.put(i, b"x" * 7)
    assert cache.weight <= 100 and cache.weight == sum(len(v) for _, v in cache.items())


def _query(subnet: int, qid: int) -> bytes:
    address = f"{subnet >> 16 & 255}.{subnet >> 8 & 255}.{subnet & 255}.0"
    q = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0, options=[dns.edns.ECSOption(address, 24)])
    q.id = qid
    return q.to_wire()


def test_a_flood_of_random_subnets_leaves_the_steady_set_in_the_memo(tmp_path_factory):
    fast, _slow = engines(tmp_path_factory)
    rng = random.Random(15)
    steady = [_query(rng.randrange(1 << 24), i) for i in range(100)]
    for _ in range(2):  # seen twice: promoted out of probation
        for wire in steady:
            fast.handle(wire, "127.0.0.1", False)
    before = [fast.handle(wire, "127.0.0.1", False) for wire in steady]
    flood = MEMO_ENTRIES + 10_000  # more than the whole memo: clearing when full would have emptied it
    for i in range(flood):
        fast.handle(_query(rng.randrange(1 << 24), i & 0xFFFF), "127.0.0.1", False)
    memo = fast.fast.memo
    assert all(memo.hit(wire[2:]) is not None for wire in steady)  # each still in the memo's protected part
    after = [fast.handle(wire, "127.0.0.1", False) for wire in steady]
    assert after == before  # [healthy, geo]: the same answers as before the flood
