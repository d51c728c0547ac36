"""JWT test material: generated keys and a minter that signs tokens the way CDS Clients do (header
alg/kid/typ/jku; claims iss/aud/exp/iat/jti). A uniquely named module so test files can import it."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

EHR_ISS = "https://fhir-ehr.example.com"
EHR_JKU = "https://fhir-ehr.example.com/jwk_uri"


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any

    def public_jwk(self) -> dict:
        algo = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = algo.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def jwks(self) -> dict:
        return {"keys": [self.public_jwk()]}


def mint(key: SigningKey, aud: str | list[str], *, iss: str = EHR_ISS, jku: str | None = EHR_JKU,
         lifetime: int = 300, iat: float | None = None, claims: dict | None = None, header: dict | None = None,
         drop: tuple[str, ...] = ()) -> str:
    now = int(time.time() if iat is None else iat)
    payload = {"iss": iss, "aud": aud, "exp": now + lifetime, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": key.kid, "typ": "JWT", **({"jku": jku} if jku else {}), **(header or {})}
    headers = {k: v for k, v in headers.items() if v is not None}  # header={"kid": None} drops the kid
    return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)
