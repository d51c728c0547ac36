"""Logging for the running service: one JSON object per line on stderr.

``cds_hooks.access`` already logs each call as a JSON object; its fields are merged into the line rather than
nested as a string. Nothing here adds request data: what reaches a record is what the loggers chose to log
(never tokens or patient data).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        if message.startswith("{"):
            try:
                fields = orjson.loads(message)
            except orjson.JSONDecodeError:
                fields = None
            if isinstance(fields, dict):
                line.update(fields)
                return orjson.dumps(line).decode()
        line["message"] = message
        return orjson.dumps(line).decode()


def configure(level: str | int = "INFO") -> None:
    """Route every logger through one JSON handler on stderr (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_fhir_pain", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    handler._fhir_pain = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
