"""JWT trust (2.0.1 §Trusting CDS Clients): the acceptance matrix of JWTVerifier."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds_hooks.auth import JWTVerifier, MemoryReplayCache, TrustedIssuer
from cds_hooks.errors import Unauthorized

from cds_jwt_keys import EHR_ISS, EHR_JKU, SigningKey, mint

AUD = "https://cds.example.org/cds-services/pain-pgx-order-sign"


def verifier(*keys: SigningKey, **issuer) -> JWTVerifier:
    jwks = {"keys": [k.public_jwk() for k in keys]}
    entry = {"iss": EHR_ISS, "jku": [EHR_JKU], "jwks": jwks, **issuer}
    return JWTVerifier([TrustedIssuer.from_config(entry)])


def reason(v: JWTVerifier, token: str | None, aud: str = AUD) -> str:
    with pytest.raises(Unauthorized) as info:
        v.verify(None if token is None else f"Bearer {token}", aud)
    assert info.value.message == "Unauthorized"  # the caller never learns why
    return info.value.reason


@pytest.mark.parametrize("key_fixture", ["es384_key", "rs384_key"])
def test_valid_tokens_of_both_recommended_algorithms(request, key_fixture):
    key = request.getfixturevalue(key_fixture)
    v = verifier(key)
    claims = v.verify("Bearer " + mint(key, AUD, claims={"tenant": "2ddd6c3a"}), AUD)
    assert claims["iss"] == EHR_ISS and claims["tenant"] == "2ddd6c3a"
    assert v.verify("Bearer " + mint(key, [AUD, "https://other"]), AUD)["aud"][0] == AUD  # aud as an array
    assert v.verify("Bearer " + mint(key, AUD, jku=None), AUD)  # jku is optional


def _spec(fixture_json):
    header = fixture_json("cds-hooks/spec201-L1034-example.json")
    payload = fixture_json("cds-hooks/spec201-L1045-example.json")
    private = ECAlgorithm.from_jwk(json.dumps(fixture_json("cds-hooks/spec201-L1076-example.json")))
    jwks = fixture_json("cds-hooks/spec201-L1058-example.json")
    return header, payload, private, jwks


def test_the_spec_example_token(fixture_json):
    """The spec's header and payload signed with its published example key, checked against its JWK Set."""
    header, payload, private, jwks = _spec(fixture_json)
    token = jwt.encode(payload, private, algorithm="ES384", headers=header)
    assert jwt.get_unverified_header(token) == header
    # the signature verifies with the spec's public JWK Set...
    assert jwt.decode(token, jwt.PyJWKSet.from_dict(jwks)["example-kid"].key, algorithms=["ES384"],
                      audience=payload["aud"], options={"verify_exp": False}) == payload
    v = JWTVerifier([TrustedIssuer.from_config({"iss": payload["iss"], "jku": [header["jku"]], "jwks": jwks})])
    # ...but it expired in 2015
    assert reason(v, token, payload["aud"]) == "expired"
    fresh = {**payload, "iat": int(time.time()), "exp": int(time.time()) + 300}
    claims = v.verify("Bearer " + jwt.encode(fresh, private, algorithm="ES384", headers=header), payload["aud"])
    assert claims["tenant"] == payload["tenant"]


def test_expired_and_not_yet_valid(es384_key):
    v = verifier(es384_key)
    assert reason(v, mint(es384_key, AUD, iat=time.time() - 400, lifetime=300)) == "expired"
    v.verify("Bearer " + mint(es384_key, AUD, iat=time.time() - 320, lifetime=300), AUD)  # within 30 s leeway
    assert reason(v, mint(es384_key, AUD, iat=time.time() + 120)) == "not-yet-valid"


def test_wrong_audience(es384_key):
    v = verifier(es384_key)
    assert reason(v, mint(es384_key, "https://cds.example.org/cds-services/another-service")) == "wrong-audience"
    assert reason(v, mint(es384_key, AUD + "/feedback")) == "wrong-audience"


def test_unknown_issuer(es384_key):
    assert reason(verifier(es384_key), mint(es384_key, AUD, iss="https://evil.example")) == "unknown-issuer"


def test_unlisted_jku_is_refused_before_any_fetch(es384_key):
    assert reason(verifier(es384_key), mint(es384_key, AUD, jku="https://evil.example/jwks")) == "jku-not-allowed"


def test_alg_none_is_refused(es384_key):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", "kid": es384_key.kid}).encode())
    payload = base64.urlsafe_b64encode(json.dumps({"iss": EHR_ISS, "aud": AUD, "exp": time.time() + 300,
                                                   "iat": time.time(), "jti": "x"}).encode())
    token = header.rstrip(b"=").decode() + "." + payload.rstrip(b"=").decode() + "."
    assert reason(verifier(es384_key), token) == "algorithm-not-allowed"


def test_hmac_is_refused_even_keyed_with_the_public_key(es384_key):
    # classic algorithm confusion: HS384 "signed" with the issuer's public key as the shared secret
    public_pem = es384_key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac
    signing_input = (base64.urlsafe_b64encode(json.dumps({"alg": "HS384", "typ": "JWT", "kid": es384_key.kid})
                                              .encode()).rstrip(b"=") + b"." +
                     base64.urlsafe_b64encode(json.dumps({"iss": EHR_ISS, "aud": AUD, "exp": time.time() + 300,
                                                          "iat": time.time(), "jti": "y"}).encode()).rstrip(b"="))
    sig = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha384).digest()).rstrip(b"=")
    assert reason(verifier(es384_key), (signing_input + b"." + sig).decode()) == "algorithm-not-allowed"
    assert reason(verifier(es384_key), jwt.encode({"iss": EHR_ISS}, "s" * 48, algorithm="HS256",
                                                  headers={"kid": es384_key.kid})) == "algorithm-not-allowed"


def test_other_asymmetric_algorithms_are_refused():
    es256 = SigningKey("ES256", "k256", ec.generate_private_key(ec.SECP256R1()))
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": es256.jwks()})])
    assert reason(v, mint(es256, AUD)) == "algorithm-not-allowed"


def test_replayed_jti(es384_key):
    v = verifier(es384_key)
    token = mint(es384_key, AUD)
    v.verify("Bearer " + token, AUD)
    assert reason(v, token) == "replayed-jti"
    # the same jti in a new token is a replay too
    again = mint(es384_key, AUD, claims={"jti": jwt.decode(token, options={"verify_signature": False})["jti"]})
    assert reason(v, again) == "replayed-jti"


def test_replay_cache_forgets_expired_entries():
    cache = MemoryReplayCache()
    assert cache.claim("iss", "a", time.time() + 60)
    assert not cache.claim("iss", "a", time.time() + 60)
    assert cache.claim("other-iss", "a", time.time() + 60)  # keyed per issuer
    assert cache.claim("iss", "b", time.time() - 1)
    assert cache.claim("iss", "b", time.time() + 60)  # the first entry had expired


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_required_claims(es384_key, claim):
    got = reason(verifier(es384_key), mint(es384_key, AUD, drop=(claim,)))
    assert got in {f"missing-claim-{claim}", "unknown-issuer"}


def test_header_requirements(es384_key):
    v = verifier(es384_key)
    assert reason(v, mint(es384_key, AUD, header={"kid": None})) == "missing-kid"
    assert reason(v, mint(es384_key, AUD, header={"typ": "at+jwt"})) == "bad-typ"
    # keys given out of band only (no jku to fetch from): an unknown kid cannot be resolved
    static_only = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": es384_key.jwks()})])
    assert reason(static_only, mint(es384_key, AUD, jku=None, header={"kid": "rotated-away"})) == "unknown-kid"


def test_signature_from_another_key_with_the_same_kid(es384_key):
    impostor = SigningKey("ES384", es384_key.kid, ec.generate_private_key(ec.SECP384R1()))
    assert reason(verifier(es384_key), mint(impostor, AUD)) == "bad-signature"


def test_key_type_must_match_the_algorithm(es384_key, rs384_key):
    # an RS384 token whose kid names the issuer's EC key
    token = mint(rs384_key, AUD, header={"kid": es384_key.kid})
    assert reason(verifier(es384_key, rs384_key), token) == "key-algorithm-mismatch"


def test_lifetime_and_tenant_limits(es384_key):
    assert reason(verifier(es384_key), mint(es384_key, AUD, lifetime=7200)) == "lifetime-too-long"
    v = verifier(es384_key, tenants=["2ddd6c3a-8e9a-44c6-a305-52111ad302a2"])
    assert reason(v, mint(es384_key, AUD, claims={"tenant": "someone-else"})) == "tenant-not-allowed"
    assert reason(v, mint(es384_key, AUD)) == "tenant-not-allowed"
    v.verify("Bearer " + mint(es384_key, AUD, claims={"tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"}), AUD)


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer not.a.jwt", "Bearer x"])
def test_malformed_authorization(es384_key, header):
    v = verifier(es384_key)
    with pytest.raises(Unauthorized):
        v.verify(header, AUD)


def test_static_keys_from_a_file(tmp_path, rs384_key):
    path = tmp_path / "epic-jwks.json"
    path.write_text(json.dumps(rs384_key.jwks()))
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks_file": str(path)})])
    assert v.verify("Bearer " + mint(rs384_key, AUD, jku=None), AUD)["iss"] == EHR_ISS


def test_issuer_configuration_is_checked_at_startup():
    with pytest.raises(ValueError, match="jku' or 'jwks"):
        TrustedIssuer.from_config({"iss": EHR_ISS})
    with pytest.raises(ValueError, match="iss"):
        TrustedIssuer.from_config({"jku": EHR_JKU})
    with pytest.raises(jwt.PyJWKSetError):
        TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": {"keys": []}})


# -- keys fetched from an allowlisted jku (PyJWKClient uses urllib: a real loopback server) ---------------------

def test_keys_are_fetched_from_the_listed_jku_and_cached(httpserver, es384_key, rs384_key):
    httpserver.expect_request("/jwks.json").respond_with_json(
        {"keys": [es384_key.public_jwk(), rs384_key.public_jwk()]})
    jku = httpserver.url_for("/jwks.json")
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})])
    for key in (es384_key, rs384_key, es384_key):
        v.verify("Bearer " + mint(key, AUD, jku=jku), AUD)
    v.verify("Bearer " + mint(es384_key, AUD, jku=None), AUD)  # the one listed jku is the issuer's key set
    assert len(httpserver.log) == 1  # one fetch, then the cache


def test_rotated_key_triggers_one_refetch(httpserver, es384_key, rs384_key):
    jku = httpserver.url_for("/jwks.json")
    httpserver.expect_ordered_request("/jwks.json").respond_with_json(es384_key.jwks())
    httpserver.expect_ordered_request("/jwks.json").respond_with_json(
        {"keys": [es384_key.public_jwk(), rs384_key.public_jwk()]})
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})], jwks_cooldown_s=0)
    v.verify("Bearer " + mint(es384_key, AUD, jku=jku), AUD)
    v.verify("Bearer " + mint(rs384_key, AUD, jku=jku), AUD)
    assert len(httpserver.log) == 2


def test_unreachable_jku_is_a_401(es384_key):
    jku = "http://127.0.0.1:9/jwks.json"  # discard port: nothing listens
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})], jwks_timeout_s=0.5)
    assert reason(v, mint(es384_key, AUD, jku=jku)) == "jwks-unavailable"


# -- regressions from the protocol and security review ---------------------------------------------------------

def _unsigned_token(header: dict | bytes, payload: dict | bytes) -> str:
    def part(value) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{part(header)}.{part(payload)}.c2ln"


def test_typ_is_required_and_compared_as_a_media_type(es384_key):
    """2.0.1 makes typ REQUIRED (= JWT); it was optional here, so any JWT of the issuer without one passed."""
    v = verifier(es384_key)
    assert reason(v, mint(es384_key, AUD, header={"typ": ""})) == "bad-typ"  # PyJWT drops an empty typ
    assert reason(v, mint(es384_key, AUD, header={"typ": ["JWT"]})) == "bad-typ"
    for typ in ("jwt", "application/jwt", "JWT"):  # RFC 7515 §4.1.9: case-insensitive, "application/" optional
        assert v.verify("Bearer " + mint(es384_key, AUD, header={"typ": typ}), AUD)["iss"] == EHR_ISS


def test_jwk_labelled_rs256_does_not_verify_an_rs384_token(rs384_key):
    """The key check let "RS256" through for every RSA key, so a JWK that says alg RS256 verified RS384 tokens."""
    labelled = {**rs384_key.public_jwk(), "alg": "RS256"}
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": {"keys": [labelled]}})])
    assert reason(v, mint(rs384_key, AUD, jku=None)) == "key-algorithm-mismatch"
    unlabelled = {k: val for k, val in rs384_key.public_jwk().items() if k != "alg"}  # no alg: fine
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": {"keys": [unlabelled]}})])
    assert v.verify("Bearer " + mint(rs384_key, AUD, jku=None), AUD)


def test_encryption_key_does_not_verify_signatures(es384_key):
    """Out-of-band keys were used whatever their "use"; PyJWKClient filters fetched ones, the static set did not."""
    enc = {**es384_key.public_jwk(), "use": "enc"}
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": {"keys": [enc]}})])
    assert reason(v, mint(es384_key, AUD, jku=None)) == "key-not-for-signing"


def test_exp_beyond_float_range_is_a_401_not_a_500(es384_key):
    """exp = 10**400 passes PyJWT (int compare) and then crashed float(exp) with OverflowError."""
    assert reason(verifier(es384_key), mint(es384_key, AUD, claims={"exp": 10 ** 400})) == "invalid-token"


def test_overlong_jti_is_refused_before_the_replay_cache(es384_key):
    """The replay table holds VARCHAR(512): an unbounded jti could fail the insert (PostgreSQL) with a 500."""
    assert reason(verifier(es384_key), mint(es384_key, AUD, claims={"jti": "j" * 10_000})) == "bad-jti"
    assert verifier(es384_key).verify("Bearer " + mint(es384_key, AUD, claims={"jti": "j" * 255}), AUD)


@pytest.mark.parametrize("header,payload", [
    (b"[" * 5000, {"iss": EHR_ISS}),  # nesting deeper than Python's recursion limit
    ({"alg": "ES384", "typ": "JWT", "kid": "k"}, b"{" * 5000),
    ({"alg": "ES384", "typ": "JWT", "kid": "k"}, b'{"iss": "' + EHR_ISS.encode() + b'", "exp": Infinity}'),
    (b"\xff\xfe", {"iss": EHR_ISS}),
    ({"alg": "ES384", "typ": "JWT", "kid": "k"}, b"[1, 2]"),
])
def test_garbage_tokens_are_malformed_not_a_crash(es384_key, header, payload):
    if isinstance(header, dict):
        header = {**header, "kid": es384_key.kid}
    static_only = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": es384_key.jwks()})])
    assert reason(static_only, _unsigned_token(header, payload)) in {
        "malformed-token", "unknown-issuer", "invalid-token", "bad-signature"}


def test_iat_and_nbf_leeway(es384_key):
    v = verifier(es384_key)  # leeway 30 s
    assert v.verify("Bearer " + mint(es384_key, AUD, iat=time.time() + 20), AUD)  # a client clock 20 s ahead
    assert reason(v, mint(es384_key, AUD, iat=time.time() + 90)) == "not-yet-valid"
    now = int(time.time())
    assert v.verify("Bearer " + mint(es384_key, AUD, claims={"nbf": now + 20}), AUD)
    assert reason(v, mint(es384_key, AUD, claims={"nbf": now + 90})) == "not-yet-valid"
    # Epic's nbf = iat - 5 min is fine
    assert v.verify("Bearer " + mint(es384_key, AUD, claims={"nbf": now - 300}), AUD)


@pytest.mark.parametrize("aud", [AUD + "/", AUD.replace("/cds-services/", "/cds-services//"),
                                 AUD.replace("https://", "http://"), AUD.upper(), AUD[:-1], [AUD + "/"]])
def test_aud_is_an_exact_match(es384_key, aud):
    assert reason(verifier(es384_key), mint(es384_key, aud)) == "wrong-audience"


def test_replay_is_caught_across_workers(store_url, es384_key):
    """Two worker processes each build their own verifier; the replay cache they share is the store (SQLite,
    PostgreSQL)."""
    from fhir_pain.store import Store
    url = store_url
    workers = [JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": es384_key.jwks()})],
                           replay_cache=Store(url)) for _ in range(2)]
    token = mint(es384_key, AUD, jku=None)
    assert workers[0].verify("Bearer " + token, AUD)
    assert reason(workers[1], token) == "replayed-jti"
    for worker in workers:
        worker.replay_cache.dispose()


@pytest.mark.parametrize("jti", ["a\u0000b", "a\ud800b", "line\nbreak"])
def test_a_jti_no_database_can_store_is_refused_not_an_error(store_url, es384_key, jti):
    """NUL (PostgreSQL text cannot hold it) and lone surrogates (not UTF-8) reached the shared cache as a 500."""
    from fhir_pain.store import Store
    store = Store(store_url)
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jwks": es384_key.jwks()})], replay_cache=store)
    try:
        assert reason(v, mint(es384_key, AUD, jku=None, claims={"jti": jti})) == "bad-jti"
        assert v.verify("Bearer " + mint(es384_key, AUD, jku=None, claims={"jti": "é-ü-\u4e2d"}), AUD)
    finally:
        store.dispose()


def test_listed_jku_that_redirects_is_not_followed(httpserver, es384_key):
    """A listed jku answering 302 (an open redirect on the EHR's host) must not lead to keys fetched elsewhere."""
    httpserver.expect_request("/jwks.json").respond_with_data("", status=302,
                                                              headers={"Location": "/attacker-keys.json"})
    httpserver.expect_request("/attacker-keys.json").respond_with_json(es384_key.jwks())
    jku = httpserver.url_for("/jwks.json")
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})])
    assert reason(v, mint(es384_key, AUD, jku=jku)) == "jwks-unavailable"
    assert [entry[0].path for entry in httpserver.log] == ["/jwks.json"]


def test_iss_is_checked_before_any_key_fetch(httpserver, es384_key):
    """An unknown iss naming a listed jku fetches nothing."""
    httpserver.expect_request("/jwks.json").respond_with_json(es384_key.jwks())
    jku = httpserver.url_for("/jwks.json")
    v = JWTVerifier([TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})])
    assert reason(v, mint(es384_key, AUD, iss="https://evil.example", jku=jku)) == "unknown-issuer"
    assert len(httpserver.log) == 0


@pytest.mark.parametrize("jku", ["http://ehr.example.com/jwks.json", "ftp://ehr.example.com/jwks.json", "jwks.json"])
def test_a_jku_must_be_https(jku):
    """Listed jku URLs were taken as given: keys fetched over plain HTTP can be replaced on the way."""
    with pytest.raises(ValueError, match="must be https"):
        TrustedIssuer.from_config({"iss": EHR_ISS, "jku": [jku]})
    TrustedIssuer.from_config({"iss": EHR_ISS, "jku": ["http://127.0.0.1:8123/jwks.json"]})  # local tests
