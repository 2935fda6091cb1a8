"""The staff console's dashboard, worklist and participant page beside the JSON API calls
they draw on, measured at a fixed arrival rate in the same run.

Run from the project root (see benchmarks/README.md):

    python benchmarks/console.py [--participants 10000] [--rate 1] [--worklist-rate 20]
        [--participant-rate 10] [--seconds 20] [--rounds 2] [--skip-postgres]

For each backend (SQLite always; PostgreSQL when it answers):

1. Setup. A fresh database (`trialdesk db upgrade`, `trialdesk demo` for the admin's
   token), the study of `export.py` (`export-bench`: three timepoints of 40 items, here
   as four instruments of 10 items and a sum score each, sites PHL and PIT) created and
   activated through the API, then filled straight into the database by `export.fill`
   (`--participants` randomized participants, three completed surveys each). Then, so
   that the worklist and the dashboard have work to show: the month_12 survey of every
   tenth participant is made open (its window around today), the month_4 survey of
   another tenth missed (never completed), and 30 safety alerts (20 open) and 10
   failed emails are written.
2. A server (uvicorn, one process) on that database. The demo admin signs in to the
   console the way a browser does (a one-time link issued in this process, its page
   fetched, its form posted back with the csrf token): the `trialdesk_session` cookie.
   The API calls use the admin's bearer token: the same user, so the same groups (arms)
   and sites on both sides. Five of the participants with an alert are chosen (fixed
   seed) for the participant page and given a history through the API: a baseline
   answer corrected, their alert acknowledged (see `console_setup.py`).
3. Each of these, one after the other, for `--seconds` in all at a fixed arrival rate
   (open loop: `driver.open_loop`, latency counted from the scheduled start), in
   `--rounds` turns (all of them for a share of the time, then again) so that a change
   in the machine's load weighs on both sides:
   - at `--rate` a second: `GET /console/studies/{slug}` (the dashboard);
     `GET .../reports/consort` (JSON), the heaviest call the dashboard draws on; and the
     four JSON calls a client would make to draw the dashboard, one after the other as
     one operation (`reports/consort`, `reports/retention`, `alerts?open=true&limit=100`,
     `messages?limit=100`; the dashboard's recruitment table has no JSON endpoint);
   - at `--worklist-rate` a second: `GET /console/studies/{slug}/worklist?status=open`
     (by closing date, 50 a page) and `GET .../schedule?status=open&limit=50` (JSON);
   - at `--participant-rate` a second, the chosen participants in turn:
     `GET /console/studies/{slug}/participants/{code}` (the record: grid of timepoints x
     instruments, answers and scores, alerts, history), and the JSON calls a client
     makes to draw it, one after the other as one operation: the participant, the
     study's alerts (`alerts?open=false&limit=100`: the API has no filter by
     participant), each completed survey (`participants/{code}/surveys/{timepoint}`:
     answers, scores, corrections) and the study's audit trail (`audit?limit=1000`,
     for the history; no filter by participant either).

It prints, per backend, p50, p99 and max of each, whether the server kept up with the
rate, and the ratios console / API (target: the console within 2x of the API).

Exit status: 0 when the measurement ran (whatever the figures); 1 when it could not run;
2 when some measured requests failed (the figures are then not valid).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.console_setup import (
    API,
    STUDY,
    console_cookie,
    on_both_backends,
    page_participants,
    setup,
)
from benchmarks.driver import (
    Figures,
    Recorder,
    figures,
    open_loop,
    print_table,
)
from tests.live import running_servers

CONSOLE = f"/console/studies/{STUDY}"
RATIO_TARGET = 2.0
DASHBOARD, WORKLIST = "console dashboard", "console worklist"
CONSORT, SEQUENCE = "API consort", "API 4 calls in a row"
SCHEDULE = "API schedule"
PARTICIPANT, RECORD_CALLS = "console participant", "API participant's calls"
KEEP_UP = 0.9  # answered at least this share of the arrival rate: the server kept up

Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


# --- the measurements -----------------------------------------------------------------
def get(path: str, headers: dict[str, str]) -> Call:
    async def call(client: httpx.AsyncClient, index: int) -> httpx.Response:
        return await client.get(path, headers=headers)

    return call


def one_after_another(paths: list[str], headers: dict[str, str]) -> Call:
    """The paths one after the other, as one operation: its answer is the first that is
    not a 200, or the last."""

    async def call(client: httpx.AsyncClient, index: int) -> httpx.Response:
        response: httpx.Response | None = None
        for path in paths:
            response = await client.get(path, headers=headers)
            if response.status_code != 200:
                break
        assert response is not None
        return response

    return call


def each(paths: list[str], headers: dict[str, str]) -> Call:
    """GET the paths in turn, one per request (the participants of the page)."""

    async def call(client: httpx.AsyncClient, index: int) -> httpx.Response:
        return await client.get(paths[index % len(paths)], headers=headers)

    return call


def record_calls(codes: list[str], headers: dict[str, str]) -> Call:
    """What a client of the API calls, one after the other, to draw the participant page
    of each code in turn: the participant (status, strata, contact, arm, surveys), the
    study's alerts (the API has no filter by participant: all of them, 100 a page, to
    keep the participant's), each completed survey's answers and scores (with its
    corrections), and the study's audit trail for the history (no filter by participant
    either: 1000 records a page). The answer is the first that is not a 200, or the last."""

    async def call(client: httpx.AsyncClient, index: int) -> httpx.Response:
        code = codes[index % len(codes)]
        response = await client.get(f"{API}/participants/{code}", headers=headers)
        if response.status_code != 200:
            return response
        surveys = [s["timepoint"] for s in response.json()["surveys"] if s["status"] == "completed"]
        paths = [f"{API}/alerts?open=false&limit=100"]
        paths += [f"{API}/participants/{code}/surveys/{timepoint}" for timepoint in surveys]
        paths.append(f"{API}/audit?limit=1000")
        for path in paths:
            response = await client.get(path, headers=headers)
            if response.status_code != 200:
                break
        return response

    return call


@dataclass(frozen=True)
class Target:
    label: str
    call: Call
    rate: float


def targets(cookie: str, token: str, codes: list[str], args: argparse.Namespace) -> list[Target]:
    browser = {"Cookie": f"trialdesk_session={cookie}"}
    bearer = {"Authorization": f"Bearer {token}"}
    consort = f"{API}/reports/consort"
    sequence = [consort, f"{API}/reports/retention", f"{API}/alerts?open=true&limit=100",
                f"{API}/messages?limit=100"]  # fmt: skip
    slow, fast, record = args.rate, args.worklist_rate, args.participant_rate
    pages = [f"{CONSOLE}/participants/{code}" for code in codes]
    return [
        Target(DASHBOARD, get(CONSOLE, browser), slow),
        Target(CONSORT, get(consort, bearer), slow),
        Target(SEQUENCE, one_after_another(sequence, bearer), slow),
        Target(WORKLIST, get(f"{CONSOLE}/worklist?status=open", browser), fast),
        Target(SCHEDULE, get(f"{API}/schedule?status=open&limit=50", bearer), fast),
        Target(PARTICIPANT, each(pages, browser), record),
        Target(RECORD_CALLS, record_calls(codes, bearer), record),
    ]


@dataclass(frozen=True)
class Measured:
    target: Target
    figures: Figures

    @property
    def kept_up(self) -> bool:
        """Whether the answers kept pace with the arrivals (else the figures are mostly
        the queue's growth: lower the rate)."""
        return self.figures.per_second >= KEEP_UP * self.target.rate


def measure_all(
    url: str, cookie: str, token: str, codes: list[str], args: argparse.Namespace
) -> list[Measured]:
    """Each target for `args.seconds` in all, in `args.rounds` turns (the targets one
    after the other, then again), so that a machine whose load drifts during the run
    weighs on the console pages and on the API alike."""
    chosen = targets(cookie, token, codes, args)
    recorders = {target.label: Recorder() for target in chosen}
    for turn in range(1, args.rounds + 1):
        for target in chosen:
            done = open_loop(
                url,
                target.call,
                rate=target.rate,
                count=max(1, round(target.rate * args.seconds / args.rounds)),
                expect=lambda status: status == 200,
            )
            _merge(recorders[target.label], done)
            row = figures(target.label, done, ["request"])
            print(
                f"  round {turn}, {target.label} at {target.rate:g}/s: "
                f"p50 {row.p50:.1f} ms, p99 {row.p99:.1f} ms, max {row.max:.1f} ms",
                flush=True,
            )
    measured = []
    for target in chosen:
        recorder = recorders[target.label]
        for example in recorder.failure_examples:
            print(f"  {target.label} failure: {example}")
        label = f"{target.label} @{target.rate:g}/s"
        measured.append(Measured(target, figures(label, recorder, ["request"])))
    return measured


def _merge(into: Recorder, done: Recorder) -> None:
    for kind, values in done.latencies_ms.items():
        into.latencies_ms.setdefault(kind, []).extend(values)
    into.failures.update(done.failures)
    into.failure_examples.extend(done.failure_examples[: 5 - len(into.failure_examples)])
    into.wall_s += done.wall_s


def report(name: str, measured: list[Measured], args: argparse.Namespace) -> None:
    print_table(
        f"{name}: {args.participants} participants; each for {args.seconds:g} s "
        f"({args.rounds} turns) at a fixed arrival rate (open loop; latency from the "
        "scheduled start)",
        [m.figures for m in measured],
    )
    for m in measured:
        if not m.kept_up:
            print(
                f"  {m.target.label}: answered {m.figures.per_second:.2f}/s of "
                f"{m.target.rate:g}/s: the server did not keep up (its queue grew); "
                "a lower rate, or a quieter machine, is needed to read its latency"
            )
    by = {m.target.label: m.figures for m in measured}
    print()
    print(f"{'console / API':48} {'p50':>6} {'p99':>6}   target <= {RATIO_TARGET:g}x")
    for page, api in ((DASHBOARD, CONSORT), (DASHBOARD, SEQUENCE), (WORKLIST, SCHEDULE),
                      (PARTICIPANT, RECORD_CALLS)):  # fmt: skip
        p50 = by[page].p50 / by[api].p50 if by[api].p50 else float("inf")
        p99 = by[page].p99 / by[api].p99 if by[api].p99 else float("inf")
        verdict = "met" if max(p50, p99) <= RATIO_TARGET else "NOT met"
        print(f"{page + ' / ' + api:48} {p50:6.2f} {p99:6.2f}   {verdict}")


def bench(name: str, env: dict[str, str], workdir: Path, args: argparse.Namespace) -> int:
    """Set up, measure and report one backend; the number of failed requests."""
    env = {**os.environ, **env}
    log = workdir / "trialdesk.log"
    print(f"{name}: setting up ...", flush=True)
    token, work = setup(env, participants=args.participants, log=log)
    with running_servers(env, log=log) as (url,):
        cookie = console_cookie(url, env)
        codes = page_participants(url, token, work)
        print(f"  participant page: {', '.join(codes)}", flush=True)
        measured = measure_all(url, cookie, token, codes, args)
    report(name, measured, args)
    return sum(m.figures.failed for m in measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument(
        "--rate", type=float, default=1.0, help="requests/s of the dashboard and its API calls"
    )
    parser.add_argument(
        "--worklist-rate", type=float, default=20.0, help="requests/s of the worklist and its API"
    )
    parser.add_argument(
        "--participant-rate",
        type=float,
        default=10.0,
        help="requests/s of the participant page and its API calls",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per endpoint")
    parser.add_argument("--rounds", type=int, default=2, help="turns the seconds are split in")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    if (
        min(args.participants, args.rounds) < 1
        or min(args.rate, args.worklist_rate, args.participant_rate) <= 0
    ):
        parser.error("participants and rounds must be 1 or more, rates more than 0")
    if args.seconds <= 0:
        parser.error("seconds must be more than 0")
    return on_both_backends(bench, args, database="console")


if __name__ == "__main__":
    sys.exit(main())
