"""Fleet simulation: backend requests per second from a company's laptops over a working
day, with and without the advisory refresh window (``refresh_window``).

    .venv/bin/python benchmarks/fleet.py [--laptops 10000] [--seed 1] [--json FILE]
        [--plot docs/fleet.png | --no-plot] [--window 5m] [--ttl 3600] [--code-share 0.25]

Every run's decision (serve the cached entry, renew it early, renew it) is made by
``credhelper.cache.decide``, the function the hot path and the full path call, on real
``credhelper.cache.Entry`` objects, with each laptop's place in the window from
``credhelper.cache.spread_of`` (its random machine id and its cache key) and the
defaults of ``min_validity``, ``refresh_window`` and ``refresh_grace`` read from
``credhelper.provider.COMMON_SETTINGS``. The rest is the model of a working day:

- **Arrivals**: 90% of the laptops start their day around 9:00 (normal, sd 45 min), 10%
  are early birds around 7:00 (sd 30 min); a day lasts 8.5 h (sd 45 min). Half of the
  people close the lid for lunch (start around 12:15, sd 30 min, 30 to 75 min long).
  Laptops sleep outside these sessions; yesterday's entries have expired by morning.
- **Claude Desktop** on every laptop runs the helper when it starts, then keeps the
  credential for its TTL (``inferenceCredentialHelperTtlSec``, default 3600 s; for a
  credential that lives shorter, the ``lifetime - 5 min`` that ``mdm export`` and
  ``doctor`` advise) and runs the helper again at the person's next request after that
  (requests come every 10 min on average while the lid is open). When the credential it
  holds expires first and the gateway refuses it, the next request gets a 401 and the
  app runs the helper in ``mid-session-refresh`` (a forced refresh).
- **Claude Code** on a share of the laptops (``--code-share``, default 25%) runs
  ``apiKeyHelper`` at the next request (every 2 min on average) after its own TTL
  (``CLAUDE_CODE_API_KEY_HELPER_TTL_MS``, default 5 min), sharing the laptop's cache entry.
- **Backends**: a fetch always succeeds and returns a credential of the backend's real
  lifetime: a Vault KV secret (``max_age`` default 2 h; the gateway does not refuse it
  when that ends), an OIDC or Azure access token or a Vault identity token (1 h), an AWS
  presigned identity (15 min).

Reported per backend, window off and on: backend requests per second in 1-minute bins
(peak over the day; p99 and mean over the busy part, the span of the day in which at
least half of the laptops are awake), requests per laptop, and the share of helper runs
that waited on the network (runs that fetched, early or due). Writes a PNG plot of
requests per second over the day with matplotlib when it is installed (``pip install
'.[bench]'``); without it, says so and writes no plot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

from credhelper.cache import EARLY, SERVE, Entry, decide, spread_of
from credhelper.durations import format_duration, parse_duration
from credhelper.provider import COMMON_SETTINGS

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = {s.name: s.default for s in COMMON_SETTINGS}
HOUR, MINUTE, DAY = 3600.0, 60.0, 86400.0

# label, credential lifetime (s), does the gateway refuse it once it has expired?
BACKENDS = (
    ("Vault KV secret (max_age 2h)", 7200.0, False),
    ("OIDC / Azure access token, Vault identity token (1h)", 3600.0, True),
    ("AWS presigned identity (15 min)", 900.0, True),
)
DESKTOP_GAP = 10 * MINUTE  # mean time between a person's requests in Claude Desktop
CODE_TTL, CODE_GAP = 5 * MINUTE, 2 * MINUTE  # Claude Code: apiKeyHelper TTL, request gap


class Options:
    def __init__(self, args: argparse.Namespace):
        self.laptops = args.laptops
        self.seed = args.seed
        self.bin = args.bin
        self.ttl = args.ttl
        self.code_share = args.code_share
        self.min_validity = args.min_validity
        self.window = args.window
        self.grace = DEFAULTS["refresh_grace"]
        self.json = args.json
        self.plot = None if args.no_plot else args.plot


def desktop_ttl(opts: Options, lifetime: float) -> float:
    """The app's TTL as an administrator sets it after ``mdm export`` or ``doctor``: at
    most the credential's lifetime less min_validity."""
    return opts.ttl if lifetime >= opts.ttl else max(60.0, lifetime - opts.min_validity)


def sessions_of(rng: random.Random) -> list[tuple[float, float]]:
    """One person's day: when the lid is open, in seconds since midnight."""
    if rng.random() < 0.10:
        arrival = rng.gauss(7 * HOUR, 30 * MINUTE)
    else:
        arrival = rng.gauss(9 * HOUR, 45 * MINUTE)
    arrival = min(max(arrival, 5 * HOUR), 13 * HOUR)
    departure = arrival + min(max(rng.gauss(8.5 * HOUR, 45 * MINUTE), 4 * HOUR), 11 * HOUR)
    if rng.random() < 0.5:
        lunch = rng.gauss(12.25 * HOUR, 30 * MINUTE)
        back = lunch + rng.uniform(30 * MINUTE, 75 * MINUTE)
        if arrival + HOUR < lunch and back < departure - HOUR:
            return [(arrival, lunch), (back, departure)]
    return [(arrival, departure)]


def next_request(sessions: list[tuple[float, float]], t: float, gap: float,
                 rng: random.Random) -> float | None:
    """The person's first request at or after ``t`` (None: not today): requests come
    ``gap`` apart on average while the lid is open, the first one soon after it opens."""
    for start, end in sessions:
        if t < start:
            t = start
        if t < end:
            at = t + rng.expovariate(1.0 / gap)
            if at < end:
                return at
    return None


def simulate(opts: Options, lifetime: float, refused_when_expired: bool,
             window: float) -> dict:
    """One backend, one window setting: every laptop's day, run by run."""
    bins = [0] * int(DAY // opts.bin + 1)
    awake = [0] * len(bins)
    runs = fetched = early = forced_runs = 0
    ttl = desktop_ttl(opts, lifetime)
    mv, grace, size = opts.min_validity, opts.grace, opts.bin
    for laptop in range(opts.laptops):
        # Same people, machines and days whatever the window (paired comparison).
        rng = random.Random(opts.seed * 1_000_003 + laptop)
        sessions = sessions_of(rng)
        for start, end in sessions:
            for b in range(int(start // size), int(end // size)):
                awake[b] += 1
        spread = spread_of(f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(128):032x}")
        uses_code = rng.random() < opts.code_share
        entry: Entry | None = None
        desktop: float | None = sessions[0][0]  # the app starts with the day
        desktop_forced = False
        code = next_request(sessions, sessions[0][0], CODE_GAP, rng) if uses_code else None
        while desktop is not None or code is not None:
            is_desktop = code is None or (desktop is not None and desktop <= code)
            t: float = desktop if is_desktop else code  # type: ignore[assignment]
            forced = is_desktop and desktop_forced
            verdict = decide(entry, t, mv, window, spread, grace if forced else None)
            runs += 1
            forced_runs += forced
            if verdict != SERVE:
                fetched += 1
                early += verdict == EARLY
                bins[int(t // size)] += 1
                entry = Entry("fleet", "key", "token", {}, t + lifetime, t, {})
            held = entry.expires_at  # type: ignore[union-attr]
            if is_desktop:
                due, desktop_forced = t + ttl, False
                if refused_when_expired and held < due:
                    due, desktop_forced = held, True  # a 401, then mid-session-refresh
                desktop = next_request(sessions, due, DESKTOP_GAP, rng)
            else:
                due = min(t + CODE_TTL, held) if refused_when_expired else t + CODE_TTL
                code = next_request(sessions, due, CODE_GAP, rng)
    return figures(opts, bins, awake, runs, fetched, early, forced_runs, ttl)


def figures(opts: Options, bins: list[int], awake: list[int], runs: int, fetched: int,
            early: int, forced_runs: int, ttl: float) -> dict:
    busy = [i for i, n in enumerate(awake) if n >= opts.laptops / 2]
    first, last = (busy[0], busy[-1]) if busy else (0, len(bins) - 1)
    rates = [n / opts.bin for n in bins]
    busy_rates = sorted(rates[first:last + 1])
    p99 = busy_rates[min(len(busy_rates) - 1, math.ceil(0.99 * len(busy_rates)) - 1)]
    mean = sum(busy_rates) / len(busy_rates)
    peak = max(rates)
    return {
        "ttl": ttl,
        "busy": [first * opts.bin, (last + 1) * opts.bin],
        "peak": peak,
        "peak_at": rates.index(peak) * opts.bin,
        "p99": p99,
        "mean": mean,
        "peak_over_mean": peak / mean if mean else float("nan"),
        "requests": fetched,
        "per_laptop": fetched / opts.laptops,
        "runs": runs,
        "waited": fetched / runs if runs else 0.0,
        "early": early,
        "forced_runs": forced_runs,
        "rates": rates,
    }


def clock_text(seconds: float) -> str:
    return f"{int(seconds // HOUR):02d}:{int(seconds % HOUR // MINUTE):02d}"


def table(opts: Options, results: list[dict]) -> str:
    lines = [
        "| backend (Desktop TTL) | window | requests/s: peak (at) | p99 | mean | peak / mean "
        "| requests per laptop | runs that waited on the network | of which early "
        "| Desktop runs after a 401 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r["figures"]
        window = format_duration(r["window"]) if r["window"] else "off"
        lines.append(
            f"| {r['backend']} ({format_duration(f['ttl'])}) | {window} "
            f"| {f['peak']:.2f} ({clock_text(f['peak_at'])}) | {f['p99']:.2f} "
            f"| {f['mean']:.2f} | {f['peak_over_mean']:.2f}x | {f['per_laptop']:.2f} "
            f"| {100 * f['waited']:.1f}% of {f['runs']:,} | {f['early']:,} "
            f"| {f['forced_runs']:,} |")
    return "\n".join(lines)


def plot(results: list[dict], opts: Options, path: str) -> bool:
    """Requests per second over the day, one panel per backend, window off and on. Only
    this function imports matplotlib (a benchmark-only dependency: the `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nNo plot: matplotlib is not installed (it is the `bench` extra: "
              "pip install '.[bench]').")
        print("fleet: matplotlib is not installed: no plot written", file=sys.stderr)
        return False
    backends = list(dict.fromkeys(r["backend"] for r in results))
    fig, axes = plt.subplots(len(backends), 1, figsize=(10, 3.2 * len(backends)), sharex=True)
    hours = [i * opts.bin / HOUR for i in range(len(results[0]["figures"]["rates"]))]
    for ax, backend in zip(axes, backends, strict=True):
        mine = [r for r in results if r["backend"] == backend]
        for r in mine:
            f = r["figures"]
            on = bool(r["window"])
            label = (f"refresh_window {format_duration(r['window'])}" if on
                     else "no advisory window") + (
                f": peak {f['peak']:.2f}/s, mean {f['mean']:.2f}/s")
            ax.plot(hours, f["rates"], linewidth=0.9 if on else 1.4, label=label,
                    color="tab:blue" if on else "tab:orange", alpha=0.9 if on else 0.6)
        ax.axvspan(*(x / HOUR for x in results[0]["figures"]["busy"]), color="0.93", zorder=0)
        ax.set_title(f"{backend}, Desktop TTL {format_duration(mine[0]['figures']['ttl'])}",
                     fontsize=10)
        ax.set_ylabel("backend requests/s")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlim(5, 21)
    axes[-1].set_xticks(range(5, 22))
    axes[-1].set_xlabel(f"time of day (1-minute bins; grey: the busy part); {opts.laptops:,} "
                        f"laptops, {100 * opts.code_share:.0f}% also running Claude Code")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laptops", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bin", type=float, default=60.0, help="seconds per time bin")
    parser.add_argument("--ttl", type=float, default=3600.0,
                        help="Claude Desktop's inferenceCredentialHelperTtlSec")
    parser.add_argument("--code-share", type=float, default=0.25,
                        help="share of the laptops that also run Claude Code")
    parser.add_argument("--min-validity", type=parse_duration,
                        default=DEFAULTS["min_validity"])
    parser.add_argument("--window", type=parse_duration, default=DEFAULTS["refresh_window"],
                        help="refresh_window for the runs with the window on")
    parser.add_argument("--plot", default=os.path.join(HERE, "..", "docs", "fleet.png"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    opts = Options(parser.parse_args())
    if not opts.window:
        parser.error("--window must be more than 0 (the runs without it are simulated anyway)")
    started = time.monotonic()
    results = []
    for backend, lifetime, refused in BACKENDS:
        for window in (0.0, opts.window):
            results.append({"backend": backend, "lifetime": lifetime, "window": window,
                            "figures": simulate(opts, lifetime, refused, window)})
    seconds = time.monotonic() - started
    busy = results[0]["figures"]["busy"]
    print(f"{opts.laptops:,} laptops, seed {opts.seed}; min_validity "
          f"{format_duration(opts.min_validity)}, refresh_grace {format_duration(opts.grace)}; "
          f"{100 * opts.code_share:.0f}% also run Claude Code; busy part of the day "
          f"{clock_text(busy[0])}-{clock_text(busy[1])}; simulated in {seconds:.1f} s.\n")
    print(table(opts, results))
    on = [r["figures"]["peak_over_mean"] for r in results if r["window"]]
    print(f"\nTarget, peak at most 2x the mean with the window on: "
          f"{'met' if max(on) <= 2 else 'missed'} (at most {max(on):.2f}x).")
    if opts.plot and plot(results, opts, opts.plot):
        print(f"\nPlot: {os.path.relpath(opts.plot, os.path.join(HERE, '..'))}")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump({"laptops": opts.laptops, "seed": opts.seed, "seconds": seconds,
                       "target_met": max(on) <= 2,
                       "results": [{**r, "figures": {k: v for k, v in r["figures"].items()
                                                     if k != "rates"}} for r in results]},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
