"""Fixtures of the protocol tests: generated ES384 (P-384) and RS384 (RSA 2048) signing keys."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# the test modules here import cds_jwt_keys; make that work under pytest's importlib import mode too
sys.path.insert(0, str(Path(__file__).parent))
from cds_jwt_keys import SigningKey  # noqa: E402


@pytest.fixture(scope="session")
def es384_key() -> SigningKey:
    return SigningKey("ES384", "ehr-es384-2026", ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="session")
def rs384_key() -> SigningKey:
    return SigningKey("RS384", "ehr-rs384-2026", rsa.generate_private_key(public_exponent=65537, key_size=2048))
