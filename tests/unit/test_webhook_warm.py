"""The webhook's warm path keeps what it matched once (issue 18: webhook throughput).

``plan_review`` records on every image site the rule deciding it in the review's
namespace; ``respond`` and the ``require:`` evidence use that rule instead of
matching the policy again, so it must be exactly :meth:`Policy.match` for that
namespace, also when one memo serves reviews from several namespaces.
"""

from __future__ import annotations

from conftest import admission_review as review
from conftest import pod_spec, workload

from trustcheck.core.reference import parse_reference
from trustcheck.policy.load import parse_policy
from trustcheck.webhook.review import Memo, WebhookConfig, parse_review, plan_review, respond

POLICY = """\
version: 1
rules:
  - name: team-a-deny
    pattern: a.io/**
    namespaces: [team-a]
    action: deny
  - name: allow-x
    pattern: a.io/x
    action: allow
  - name: verify-all
    pattern: a.io/**
"""

IMAGES = ["a.io/x:1", "a.io/y:2", "b.io/z:3"]


def test_each_site_carries_the_rule_policy_match_gives_in_its_namespace() -> None:
    policy = parse_policy(POLICY)
    memo = Memo()
    obj = workload("Pod", pod_spec(IMAGES))
    for namespace in ("team-a", "team-b", "team-a"):  # one memo, namespaces alternating
        plan = plan_review(
            parse_review(review("Pod", obj, namespace=namespace)), policy, WebhookConfig(), memo
        )
        got = {site.image: site.rule for site in plan.sites}
        want = {
            image: policy.match(parse_reference(image), namespace=namespace) for image in IMAGES
        }
        assert got == want
        names = {i: (r.name if r is not None else None) for i, r in got.items()}
        if namespace == "team-a":
            # a.io/x is more specific than a.io/**: it decides a.io/x everywhere
            assert names == {"a.io/x:1": "allow-x", "a.io/y:2": "team-a-deny", "b.io/z:3": None}
        else:
            assert names == {"a.io/x:1": "allow-x", "a.io/y:2": "verify-all", "b.io/z:3": None}
        out = respond(plan, policy, WebhookConfig(), {}, mutate=True, memo=memo)
        assert out.allowed is False
        rules = {site.image: d.rule.name if d.rule else None for site, d in out.decisions}
        assert rules == names
