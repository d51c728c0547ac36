"""FHIR Subscriptions: register rest-hook Subscriptions (``fhir-pain subscribe``) and receive their
notifications in the service (receiver.py), which queue the changed patients for the workers."""
