"""Proactive evaluation: poll a FHIR server for changed data, run the services' rules, write DetectedIssues.

``fhir-pain poll`` (cli.py) drives :class:`~fhir_pain.poller.cycle.Poller`; ``detected_issue`` renders findings
as FHIR R4 DetectedIssues; ``smart_auth`` obtains SMART Backend Services tokens.
"""
from fhir_pain.poller.cycle import CycleStats, Poller

__all__ = ["CycleStats", "Poller"]
