"""Key schedule and SK payload protection against stdlib hmac and `cryptography`.

Targets (issue: C crypto core): keymat >= 4x stdlib hmac; SK seal+open AES-GCM
>= 1.2x and AES-CBC + HMAC >= 5x `cryptography`. The measured pairs live in
ikecore.benchmarks.crypto, shared with `ikecore bench`.
"""
import pytest

from ikecore.benchmarks.crypto import (KEYMAT_SUITES, keymat_pair, sk_cbc_message_pair, sk_gcm_bare_pair,
                                       sk_gcm_message_pair)


@pytest.mark.parametrize("api", ["schedule", "function"])
@pytest.mark.parametrize("suite", KEYMAT_SUITES)
def test_ike_keymat(compare, suite, api):
    ours, baseline = keymat_pair(suite, api)
    compare(ours, baseline, label=f"IKE keymat prf-sha256 {suite} ({api})",
            target=4.0 if api == "schedule" else None, baseline_name="stdlib hmac")


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_message_aes_gcm(compare, size):
    """The targeted figure: protect and open a whole IKE message."""
    ours, baseline = sk_gcm_message_pair(size)
    compare(ours, baseline, label=f"SK message seal+open AES-256-GCM-16 {size} B", target=1.2,
            baseline_name="cryptography AESGCM")


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_message_aes_cbc_hmac(compare, size):
    ours, baseline = sk_cbc_message_pair(size)
    compare(ours, baseline, label=f"SK message seal+open AES-256-CBC+HMAC-SHA256-128 {size} B", target=5.0,
            baseline_name="cryptography Cipher+HMAC")


@pytest.mark.parametrize("size", [200, 1200])
def test_sk_aes_gcm(compare, size):
    """Informational: the bare split-form calls against bare AEAD calls."""
    ours, baseline = sk_gcm_bare_pair(size)
    compare(ours, baseline, label=f"SK seal+open (bare) AES-256-GCM-16 {size} B",
            baseline_name="cryptography AESGCM")
