"""Signed tokens: bound to a purpose, expiring, tamper-proof, surviving key rotation."""

from __future__ import annotations

import pytest

from crmcore.clock import FrozenClock
from crmcore.settings import Settings
from crmcore.signing import InvalidToken, Signer

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-0123456789abcdef"


def signer(clock=None, **options):
    return Signer(Settings.load(environ={}, **options), clock or FrozenClock())


def test_round_trip_and_purpose_binding():
    s = signer(secret_key=NEW)
    token = s.dumps("unsubscribe", {"contact": 7})
    assert s.loads("unsubscribe", token) == {"contact": 7}
    with pytest.raises(InvalidToken):
        s.loads("survey", token)


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: "x" + t, lambda t: "", lambda t: t * 300])
def test_tampered_tokens_are_refused(mangle):
    s = signer(secret_key=NEW)
    with pytest.raises(InvalidToken, match="invalid link"):
        s.loads("p", mangle(s.dumps("p", [1, 2])))


def test_tokens_expire_by_the_crm_clock():
    clock = FrozenClock()
    s = signer(clock, secret_key=NEW)
    token = s.dumps("p", 1)
    clock.advance(seconds=3600)
    assert s.loads("p", token, max_age=3600) == 1
    clock.advance(seconds=1)
    with pytest.raises(InvalidToken) as info:
        s.loads("p", token, max_age=3600)
    assert info.value.expired


def test_key_rotation_keeps_old_links_working_and_signs_with_the_new_key():
    old_token = signer(secret_key=OLD).dumps("p", "data")
    rotated = signer(secret_key=NEW, old_secret_keys=OLD)
    assert rotated.loads("p", old_token) == "data"
    assert signer(secret_key=NEW).loads("p", rotated.dumps("p", "x")) == "x"
    with pytest.raises(InvalidToken):
        signer(secret_key=NEW).loads("p", old_token)
