from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_pain.poller.smart_auth import ASSERTION_TYPE, SmartAuthError, SmartBackendAuth

FHIR = "https://ehr.example.org/fhir"
TOKEN_URL = "https://ehr.example.org/auth/token"


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def _token_response(token="tok-1", expires_in=300):
    return {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": "system/*.read"}


def _form(call) -> dict:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@responses.activate
def test_discovers_the_token_endpoint_and_sends_a_signed_assertion(rsa_key):
    responses.get(f"{FHIR}/.well-known/smart-configuration", json={"token_endpoint": TOKEN_URL})
    responses.post(TOKEN_URL, json=_token_response())
    clock = Clock()
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), fhir_base=FHIR + "/", kid="k1",
                            jku="https://poller.example.org/jwks.json", clock=clock)
    assert auth() == "tok-1"
    form = _form(responses.calls[1])
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert "system/DetectedIssue.write" in form["scope"].split()
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header == {"alg": "RS384", "typ": "JWT", "kid": "k1", "jku": "https://poller.example.org/jwks.json"}
    claims = jwt.decode(form["client_assertion"], rsa_key.public_key(), algorithms=["RS384"], audience=TOKEN_URL,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "poller"
    assert claims["exp"] - claims["iat"] <= 300 and claims["iat"] == int(clock.t)
    assert claims["jti"]


@responses.activate
def test_token_is_cached_until_shortly_before_expiry_with_a_fresh_jti_each_time(ec_key):
    responses.post(TOKEN_URL, json=_token_response("tok-1", expires_in=300))
    clock = Clock()
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(ec_key), token_url=TOKEN_URL, alg="ES384",
                            clock=clock)
    assert auth() == "tok-1"
    clock.t += 200
    assert auth() == "tok-1"
    assert len(responses.calls) == 1
    responses.replace(responses.POST, TOKEN_URL, json=_token_response("tok-2", expires_in=300))
    clock.t += 75  # 275 s after issue: inside the renewal margin
    assert auth() == "tok-2"
    assert len(responses.calls) == 2
    jtis = {jwt.decode(_form(c)["client_assertion"], options={"verify_signature": False})["jti"]
            for c in responses.calls}
    assert len(jtis) == 2
    jwt.decode(_form(responses.calls[1])["client_assertion"], ec_key.public_key(), algorithms=["ES384"],
               audience=TOKEN_URL, options={"verify_exp": False, "verify_iat": False})


@responses.activate
def test_a_short_lived_token_is_still_reused_for_half_its_life(rsa_key):
    responses.post(TOKEN_URL, json=_token_response(expires_in=20))
    clock = Clock()
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), token_url=TOKEN_URL, clock=clock)
    auth()
    clock.t += 9
    auth()
    assert len(responses.calls) == 1
    clock.t += 2
    auth()
    assert len(responses.calls) == 2


@responses.activate
def test_invalidate_forces_a_new_token(rsa_key):
    responses.post(TOKEN_URL, json=_token_response())
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), token_url=TOKEN_URL, clock=Clock())
    auth()
    auth.invalidate()
    auth()
    assert len(responses.calls) == 2


@responses.activate
def test_refusal_is_a_typed_error_that_leaks_nothing(rsa_key):
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "bad signature"})
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), token_url=TOKEN_URL)
    with pytest.raises(SmartAuthError) as err:
        auth()
    assert "401" in str(err.value) and "invalid_client" in str(err.value)
    assert "eyJ" not in str(err.value)  # no assertion (a JWT) in the message


@pytest.mark.parametrize("body", [{"token_type": "bearer"}, {"access_token": "x", "token_type": "mac"}, ["x"]])
@responses.activate
def test_a_response_without_a_bearer_token_is_refused(rsa_key, body):
    responses.post(TOKEN_URL, json=body)
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), token_url=TOKEN_URL)
    with pytest.raises(SmartAuthError):
        auth()


@pytest.mark.parametrize("config", [{"status": 404}, {"json": {"issuer": "x"}},
                                    {"json": {"token_endpoint": "ftp://x/token"}}, {"body": "not json"}])
@responses.activate
def test_unusable_smart_configuration(rsa_key, config):
    responses.get(f"{FHIR}/.well-known/smart-configuration", **config)
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), fhir_base=FHIR)
    with pytest.raises(SmartAuthError):
        auth()


@responses.activate
def test_unreachable_token_endpoint(rsa_key):
    responses.post(TOKEN_URL, body=requests.ConnectionError("refused"))
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(rsa_key), token_url=TOKEN_URL)
    with pytest.raises(SmartAuthError, match="unreachable"):
        auth()


def test_a_key_that_does_not_fit_the_algorithm_is_a_clear_error(ec_key):
    auth = SmartBackendAuth(client_id="poller", private_key=_pem(ec_key), token_url=TOKEN_URL, alg="RS384")
    with pytest.raises(SmartAuthError, match="cannot sign"):
        auth.assertion()


def test_configuration_errors():
    with pytest.raises(ValueError):
        SmartBackendAuth(client_id="p", private_key=b"", token_url=TOKEN_URL, alg="HS256")
    with pytest.raises(ValueError):
        SmartBackendAuth(client_id="p", private_key=b"")
