"""How far off this machine's clock may be before a run says so, and doctor's verdict on a
measured skew: shared by the core (fresh-token lifetimes) and the backends' checks."""

# Beyond this many seconds between our clock and an issuer's, a run says so (NTP keeps
# real machines within a second; a minute is a broken clock, not jitter).
CLOCK_SKEW_WARNING = 60
# doctor's verdict on a measured skew: JWT validation often allows about 30 s of leeway,
# and signed requests (SigV4, Kerberos) are refused beyond about 5 minutes.
SKEW_WARN, SKEW_FAIL = 30, 300


def skew_verdict(seconds: float) -> str:
    """ok, warn or fail, for doctor, of a clock skew in seconds (either sign)."""
    return "fail" if abs(seconds) >= SKEW_FAIL else "warn" if abs(seconds) >= SKEW_WARN else "ok"
