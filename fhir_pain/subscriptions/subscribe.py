"""``fhir-pain subscribe``: register rest-hook Subscriptions for the resources the rules read.

    fhir-pain subscribe --fhir-server https://fhir.example.org/r4 --endpoint https://cds.example.org \\
        --database-url postgresql://...

One Subscription per resource type the rules read (``WATCHED_TYPES``), each with a secret of its own that the
server sends as ``Authorization: Bearer <secret>`` on every notification (the store keeps its hash). Where the
server offers a topic (R4 Subscriptions Backport: ``Basic`` resources coded ``SubscriptionTopic``) whose trigger
fires on every create and update of a type, that topic is used; otherwise R4 ``criteria`` (``<Type>?``).
Notifications carry the full resource by default (``--content id-only`` for servers that should send less).
Run it with the service up: a backport server sends a handshake to the endpoint before it activates the
Subscription. Running it again adds new Subscriptions; the old ones keep working until deleted on the server.
"""
from __future__ import annotations

import argparse
import sys

from fhir_pain.subscriptions.receiver import NOTIFY_PATH

# what the rules read, as the poller's change feed watches it: Procedures (the FDA tonsillectomy limit) and the
# Patient (a birth date feeds the FDA age limits) included
WATCHED_TYPES = ("MedicationRequest", "Observation", "Condition", "Procedure", "Patient")
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TOPIC = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
REASON = "fhir-pain: re-evaluate the patient's pain pharmacogenomics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fhir_pain.population.worker import copy_auth_arguments

    parser.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR base URL to subscribe to")
    parser.add_argument("--endpoint", required=True, metavar="PUBLIC_URL",
                        help="the service's public base URL, as the FHIR server reaches it (https)")
    parser.add_argument("--database-url", metavar="URL",
                        help="the service's store (default $FHIR_PAIN_DATABASE_URL or its instance folder)")
    parser.add_argument("--content", choices=("full-resource", "id-only"), default="full-resource",
                        help="what a notification carries (full-resource)")
    parser.add_argument("--topics", choices=("auto", "never"), default="auto",
                        help="use the server's backport topics where they cover a type (auto), or R4 criteria only")
    parser.add_argument("--heartbeat", type=int, default=0, metavar="S",
                        help="backport heartbeat period in seconds (0: none)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="read timeout per call (10)")
    copy_auth_arguments(parser)


# ---- what the server offers ---------------------------------------------------------------------------------------

def _ext(node: dict, url: str) -> list[dict]:
    return [e for e in node.get("extension") or () if isinstance(e, dict) and e.get("url") == url]


def _value(ext: dict):
    return next((v for k, v in ext.items() if k.startswith("value")), None)


def topic_coverage(basic: dict) -> tuple[str, set[str]] | None:
    """(canonical URL, types it fires on for every create and update) of a topic encoded as a ``Basic`` with the
    R5 cross-version extensions; a trigger narrowed by FHIRPath or query criteria covers nothing (it would miss
    changes the rules need, e.g. an order being stopped)."""
    urls = _ext(basic, f"{TOPIC}.url")
    if not urls or not isinstance(_value(urls[0]), str):
        return None
    covered = set()
    for trigger in _ext(basic, f"{TOPIC}.resourceTrigger"):
        parts = trigger.get("extension") or []
        names = {p.get("url") for p in parts if isinstance(p, dict)}
        resource = next((_value(p) for p in parts if isinstance(p, dict) and p.get("url") == "resource"), "")
        interactions = {_value(p) for p in parts if isinstance(p, dict) and p.get("url") == "supportedInteraction"}
        narrowed = [p for p in parts if isinstance(p, dict) and p.get("url") in ("fhirPathCriteria",
                                                                                  "queryCriteria")
                    and _value(p) not in (None, "true")]
        if "resource" in names and not narrowed and (not interactions or {"create", "update"} <= interactions):
            covered.add(str(resource).rsplit("/", 1)[-1])
    return _value(urls[0]), covered


def offered_topics(client) -> dict[str, str]:
    """type -> topic canonical URL, for the watched types a topic of the server covers."""
    from cds_hooks.fhir_client import FHIRError

    try:
        basics = client.search("Basic?code=SubscriptionTopic&_count=200")
    except FHIRError:
        return {}   # no topics (or Basic not searchable): R4 criteria
    out: dict[str, str] = {}
    for basic in basics:
        coverage = topic_coverage(basic) if isinstance(basic, dict) else None
        if coverage:
            url, types = coverage
            for rtype in sorted(types & set(WATCHED_TYPES)):
                out.setdefault(rtype, url)
    return out


# ---- the Subscription resources -------------------------------------------------------------------------------

def r4_subscription(rtype: str, endpoint: str, secret: str) -> dict:
    return {"resourceType": "Subscription", "status": "requested", "reason": REASON, "criteria": f"{rtype}?",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                        "header": [f"Authorization: Bearer {secret}"]}}


def backport_subscription(topic: str, endpoint: str, secret: str, content: str, heartbeat: int) -> dict:
    channel = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
               "_payload": {"extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": content}]},
               "header": [f"Authorization: Bearer {secret}"]}
    if heartbeat > 0:
        channel["extension"] = [{"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": heartbeat}]
    return {"resourceType": "Subscription", "meta": {"profile": [f"{BACKPORT}/backport-subscription"]},
            "status": "requested", "reason": REASON, "criteria": topic, "channel": channel}


def subscribe(client, registry, *, server: str, endpoint: str, content: str = "full-resource",
              topics: bool = True, heartbeat: int = 0) -> list[tuple[str, str, str]]:
    """Register the Subscriptions; returns (kind, criteria, Subscription id) for each."""
    offered = offered_topics(client) if topics else {}
    plan: dict[tuple[str, str], None] = {}
    for rtype in WATCHED_TYPES:
        plan[("backport", offered[rtype]) if rtype in offered else ("r4", f"{rtype}?")] = None
    done = []
    for kind, criteria in plan:
        key, secret = registry.add(server=server, criteria=criteria, kind=kind)
        url = f"{endpoint.rstrip('/')}{NOTIFY_PATH}/{key}"
        resource = (backport_subscription(criteria, url, secret, content, heartbeat) if kind == "backport"
                    else r4_subscription(criteria.rstrip("?"), url, secret))
        try:
            created = client.create(resource)
        except Exception:
            registry.remove(key)
            raise
        registry.set_remote_id(key, created.get("id"))
        done.append((kind, criteria, str(created.get("id"))))
    return done


def run(args: argparse.Namespace) -> int:
    from cds_hooks.fhir_client import FHIRClient, FHIRError, URLNotAllowed, normalize_base
    from fhir_pain.poller import cli as poll_cli
    from fhir_pain.store import Store
    from fhir_pain.subscriptions.registry import SubscriptionRegistry

    if not args.endpoint.startswith(("https://", "http://")):
        print("fhir-pain subscribe: --endpoint must be an http(s) URL", file=sys.stderr)
        return 2
    try:
        base = normalize_base(args.fhir_server)
        store = Store(poll_cli._database_url(args))
        client = FHIRClient(base, auth=poll_cli._auth(args), timeout=(3.05, args.timeout), retries=2)
    except (URLNotAllowed, ValueError, OSError) as exc:
        print(f"fhir-pain subscribe: {exc}", file=sys.stderr)
        return 2
    try:
        done = subscribe(client, SubscriptionRegistry(store), server=base, endpoint=args.endpoint,
                         content=args.content, topics=args.topics == "auto", heartbeat=args.heartbeat)
    except FHIRError as exc:
        print(f"fhir-pain subscribe: the FHIR server refused ({type(exc).__name__}"
              f"{' HTTP ' + str(exc.status) if exc.status else ''})", file=sys.stderr)
        return 1
    finally:
        client.close()
        store.dispose()
    for kind, criteria, rid in done:
        print(f"Subscription/{rid}: {kind} {criteria}")
    return 0
