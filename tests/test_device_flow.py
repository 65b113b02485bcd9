"""device_flow's numbers, in-process: what a provider (or a damaged state file) sends as
a poll interval, a code lifetime or a saved sign-in's end is clamped or refused, never
taken as it is. The same answers from the real provider: tests/oidc/test_device_flow_answers.py."""

from __future__ import annotations

import math

import pytest
from test_request import MemoryState as _State, Quiet as _Quiet

from credhelper.log import Log
from credhelper.provider import Request
from credhelper.providers.device_flow import CODE_LIFETIME, POLL_INTERVAL, PendingSignIn, bounded


@pytest.mark.parametrize("value, expected", [
    (None, 5.0), (math.nan, 5.0), (math.inf, 5.0), (-math.inf, 5.0), ("abc", 5.0),
    ("nan", 5.0), (True, 5.0), ([1], 5.0), ({}, 5.0),
    (-5, 1.0), (0, 1.0), (0.2, 1.0), (1e300, 60.0), (7, 7.0), ("7", 7.0), (2.5, 2.5),
])
def test_a_poll_interval_is_clamped_or_the_default(value, expected):
    assert bounded(value, 5.0, *POLL_INTERVAL) == expected


@pytest.mark.parametrize("value, expected", [
    (math.nan, 600.0), ("abc", 600.0), (math.inf, 600.0), (-5, 10.0), (1e9, 3600.0),
    (900, 900.0),
])
def test_a_code_lifetime_is_clamped_or_the_default(value, expected):
    assert bounded(value, 600.0, *CODE_LIFETIME) == expected


@pytest.mark.parametrize("expires_at", [math.nan, math.inf, "soon", True])
def test_a_saved_sign_in_whose_end_is_no_time_is_forgotten(expires_at):
    """A damaged pending sign-in (NaN would never expire, and printing how long it
    stays valid would fail) is forgotten, not resumed."""
    request = Request(context="background", interactive=False, deadline=1e9,
                      login_deadline=1e9, log=Log("test", _Quiet(), False), state=_State())
    pending = PendingSignIn(request, "issuer\0client")
    pending.save({"device_code": "dc", "user_code": "ABCD-EFGH",
                  "verification_uri": "https://idp/device", "expires_at": expires_at})
    assert pending.load() is None
    assert request.state.docs == {}
