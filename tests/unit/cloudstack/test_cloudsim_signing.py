"""The test cloud verifies signatures as CloudStack's ApiServer.verifyRequest does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cs.client import CloudStack
from hypothesis import given
from hypothesis import strategies as st

from tests.cloudsim.signing import SignatureError, canonical_string, java_urlencode, sign, verify

SECRETS = {"key-1": "secret-1"}


def _cs_sign(params: dict[str, str], secret: str) -> str:
    client = CloudStack(endpoint="http://127.0.0.1:1/client/api", key="key-1", secret=secret)
    data = dict(params)
    client._sign(data)
    return data["signature"]


def test_java_urlencoder_rules() -> None:
    assert java_urlencode("a b") == "a%20b"  # space -> "+" -> "%20"
    assert java_urlencode("a.b-c_d*e") == "a.b-c_d*e"  # the only safe punctuation
    assert java_urlencode("~") == "%7E"  # unlike Python's quote()
    assert java_urlencode("10.0.0.0/8,a=b") == "10.0.0.0%2F8%2Ca%3Db"
    assert java_urlencode("é") == "%C3%A9"


def test_canonical_string_is_sorted_case_sensitively_and_lowercased() -> None:
    params = {"zoneid": "Z", "apiKey": "K", "command": "listZones", "signature": "ignored"}
    assert canonical_string(params) == "apikey=k&command=listzones&zoneid=z"


# Values the cs client encodes exactly like java.net.URLEncoder (it leaves "~" alone).
_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="~"), max_size=30
)
_names = st.from_regex(r"[a-z][a-zA-Z0-9]{0,12}(\[[0-9]\]\.[a-z]{1,5})?", fullmatch=True)


@given(st.dictionaries(_names, _values, min_size=1, max_size=8))
def test_same_signature_as_the_cs_client(params: dict[str, str]) -> None:
    params = {k: v for k, v in params.items() if k.lower() != "signature"}
    assert sign(params, "s3cr3t/with+chars") == _cs_sign(params, "s3cr3t/with+chars")


def _signed(**params: str) -> dict[str, str]:
    params.setdefault("apiKey", "key-1")
    params["signature"] = sign(params, "secret-1")
    return params


def test_verify_accepts_and_rejects() -> None:
    assert verify(_signed(command="listZones", response="json"), SECRETS) == "key-1"
    good = _signed(command="listZones", name="a b")
    with pytest.raises(SignatureError):
        verify({**good, "name": "a c"}, SECRETS)  # tampered value
    with pytest.raises(SignatureError):
        verify({**good, "apiKey": "other"}, SECRETS)  # unknown key
    with pytest.raises(SignatureError):
        verify({k: v for k, v in good.items() if k != "signature"}, SECRETS)
    # the comparison is on the whole signature, case-sensitively (base64)
    with pytest.raises(SignatureError):
        verify({**good, "signature": good["signature"].swapcase()}, SECRETS)


def test_signature_version_3_expires() -> None:
    future = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S%z")
    assert verify(_signed(command="listZones", signatureVersion="3", expires=future), SECRETS)
    with pytest.raises(SignatureError, match="expired"):
        verify(_signed(command="listZones", signatureVersion="3", expires=past), SECRETS)
    with pytest.raises(SignatureError, match="Expires"):
        verify(_signed(command="listZones", signatureVersion="3"), SECRETS)
    with pytest.raises(SignatureError, match="date format"):
        verify(_signed(command="listZones", signatureVersion="3", expires="tomorrow"), SECRETS)
    # without signatureVersion=3 an old "expires" is not checked (as in CloudStack)
    assert verify(_signed(command="listZones", expires=past), SECRETS)
