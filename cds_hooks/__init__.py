"""cds_hooks: the CDS Hooks 2.0.1 wire protocol for a CDS Service (reusable; knows nothing of pain or genes).

Declare services in a ``ServiceRegistry``, install ``CDSHooks`` on a Flask app, build responses with the card
model. Modules: ``cards`` (response model), ``registry`` (services, discovery), ``request`` (HookRequest),
``templates`` and ``prefetch`` (prefetch templates, fetch fallback), ``fhir_client``, ``auth`` (JWT trust),
``schemas`` (JSON Schemas + validators), ``endpoints`` (Flask), ``openapi``, ``errors``.
"""
from .cards import (Action, ActionType, Card, CDSResponse, Coding, Indicator, Link, LinkType, SelectionBehavior,
                    Source, Suggestion)
from .registry import Service, ServiceRegistry
from .request import HookRequest

__all__ = ["Action", "ActionType", "Card", "CDSResponse", "Coding", "Indicator", "Link", "LinkType",
           "SelectionBehavior", "Service", "ServiceRegistry", "Source", "Suggestion", "HookRequest"]
