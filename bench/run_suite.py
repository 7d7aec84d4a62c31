"""Run the whole benchmark suite, one script at a time, and write its summary table into bench/README.md.

    cd /work/main && make bench                       # or: .venv/bin/python bench/run_suite.py
    make bench BENCH_ARGS='--only poll,claim'         # a subset; the other rows of the table are kept
    make bench BENCH_ARGS=--quick                     # small sizes, a smoke run: prints the table, README untouched

Each benchmark script runs as a subprocess with `--json PATH` (SQLite, then PostgreSQL where the script has
`--postgres`), never two at once: they time work on a 2-core machine. Their output goes to the terminal and
to a log beside the JSON in bench/.results/. The table between the bench-summary markers of bench/README.md
is rewritten, and nothing else in the file.

Exit status: 0 when every target measured is met, 1 when one is missed, 2 when a script failed or crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from benchkit import source_revision

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
README = BENCH / "README.md"
RESULTS = BENCH / ".results"
START_MARK = "<!-- bench-summary:start -->"
END_MARK = "<!-- bench-summary:end -->"
POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"  # where the scripts go


@dataclass(frozen=True)
class Job:
    """One run of one script: the backends its JSON reports, its arguments, and its small sizes for --quick."""

    name: str
    script: str
    backends: tuple[str, ...]
    quick: tuple[str, ...]
    section: str  # the README section explaining the benchmark, and any target it misses
    args: tuple[str, ...] = ()
    postgres_args: tuple[str, ...] = ()  # what makes the script measure PostgreSQL
    one_core: bool = False  # pinned with taskset, as the benchmark's section says to run it


POLL_QUICK = ("--feeds", "20", "--items", "5", "--rounds", "1")
DEDUPE_QUICK = ("--sizes", "1000,3000", "--articles", "10", "--rounds", "1", "--warmup", "2")
DEDUPE_QUICK += ("--per-day", "100", "--pool", "1000")
# --no-cache: the cache holds one archive, and a small one would evict the 1M archive a full run reuses.
SEARCH_QUICK = ("--articles", "10000", "--repeats", "3", "--baseline-repeats", "2", "--warmup", "1", "--no-cache")
JOBS = (
    # Without the per-host delay: the target is about the CPU path (extraction on every core), which one
    # second between requests to each of 48 hosts would hide (the README's Ingest section has that figure).
    Job(
        "ingest",
        "bench_ingest.py",
        ("sqlite",),
        ("--copies", "1", "--runs", "1"),
        "#ingest",
        args=("--host-delay", "0"),
    ),
    Job(
        "ingest-authors",
        "bench_ingest.py",
        ("sqlite",),
        ("--copies", "1", "--runs", "1"),
        "#ingest",
        args=("--host-delay", "0", "--authors"),
    ),
    Job(
        "worker-memory",
        "bench_worker_memory.py",
        ("never replaced",),
        ("--pages", "600"),
        "#extraction-workers-memory",
    ),
    Job("poll", "bench_poll.py", ("sqlite",), POLL_QUICK, "#poll-pass"),
    Job("poll", "bench_poll.py", ("postgresql",), POLL_QUICK, "#poll-pass", postgres_args=("--postgres",)),
    Job("tag", "bench_tag.py", ("none",), ("--megabytes", "0.5"), "#tagging-throughput", one_core=True),
    Job("dedupe", "bench_dedupe.py", ("sqlite",), DEDUPE_QUICK, "#story-dedup-at-10k-100k-and-1m-articles"),
    Job(
        "dedupe",
        "bench_dedupe.py",
        ("postgresql",),
        DEDUPE_QUICK,
        "#story-dedup-at-10k-100k-and-1m-articles",
        postgres_args=("--postgres",),
    ),
    Job("search", "bench_search.py", ("sqlite",), SEARCH_QUICK, "#search"),
    Job("search", "bench_search.py", ("postgresql",), SEARCH_QUICK, "#search", postgres_args=("--postgres",)),
    # One run measures SQLite, and PostgreSQL too with --postgres.
    Job(
        "claim",
        "bench_claim.py",
        ("sqlite", "postgresql"),
        ("--feeds", "300", "--ticks", "30"),
        "#scheduler-claim-tick",
        postgres_args=("--postgres",),
    ),
)
ORDER = [(job.name, backend) for job in JOBS for backend in job.backends]


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure measured, or a benchmark that failed or was not run."""

    benchmark: str
    backend: str
    status: str  # met, missed, failed, not run
    figure: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    seconds: float | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.benchmark, self.backend


# --- Running ------------------------------------------------------------------------------------------------


def postgres_problem() -> str | None:
    """Why PostgreSQL on 127.0.0.1:5432 cannot be used, or None when it answers."""
    try:
        with psycopg.connect(POSTGRES) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL on 127.0.0.1:5432 is unreachable ({str(exc).strip().splitlines()[0]})"
    return None


def command_of(job: Job, backends: Sequence[str], *, quick: bool, json_path: Path) -> list[str]:
    """The script's command line for the backends wanted."""
    command = [sys.executable, str(BENCH / job.script), *job.args]
    if "postgresql" in backends:
        command += job.postgres_args
    if quick:
        command += job.quick
    command += ["--json", str(json_path)]
    if job.one_core and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    return command


def shown(command: Sequence[str]) -> str:
    """A command as a reader types it from the repository's root."""
    words = [os.path.relpath(word, ROOT) if word.startswith(str(ROOT)) else word for word in command]
    return " ".join(words[: words.index("--json")] if "--json" in words else words)


def run_job(job: Job, backends: Sequence[str], *, quick: bool, results: Path) -> list[Row]:
    """Run one script, echoing its output and keeping it in a log; its rows, from the JSON it wrote."""
    stem = f"{job.name}-{'+'.join(backends)}"
    json_path, log_path = results / f"{stem}.json", results / f"{stem}.log"
    json_path.unlink(missing_ok=True)
    command = command_of(job, backends, quick=quick, json_path=json_path)
    print(f"\n=== {job.name} ({', '.join(backends)}): {shown(command)}", flush=True)
    started = time.perf_counter()
    last = ""
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            if line.strip():
                last = line.strip()
        status = process.wait()
    seconds = time.perf_counter() - started
    print(f"=== {job.name}: exit {status} after {duration(seconds)}", flush=True)
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = None
    if document is None or document.get("exit_status") != status or status not in (0, 1):
        error = document.get("error") if document else None
        why = str(error).splitlines()[0] if error else last or "no output"
        note = f"exit {status}: {why} (log: {os.path.relpath(log_path, ROOT)})"
        return [Row(job.name, backend, "failed", seconds=seconds, note=note) for backend in backends]
    figures = document["figures"]
    rows = []
    for figure in figures:
        target = figure.get("target")
        state = "met" if target and target["met"] else "missed" if target else "met"
        note = "; ".join(document.get("notes", []))
        rows.append(Row(job.name, figure["backend"], state, figure, document["peak_rss_mb"], seconds, note))
    reported = {row.backend for row in rows}
    rows += [
        Row(job.name, backend, "failed", seconds=seconds, note="the script reported no figure for it")
        for backend in backends
        if backend not in reported
    ]
    return rows


def selected(only: str | None) -> set[tuple[str, str]]:
    """The (benchmark, backend) pairs --only names: NAME for all its backends, NAME:BACKEND for one."""
    if not only:
        return set(ORDER)
    wanted = set()
    for token in (part.strip() for part in only.split(",") if part.strip()):
        name, _, backend = token.partition(":")
        matches = {key for key in ORDER if key[0] == name and (not backend or key[1] == backend)}
        if not matches:
            known = ", ".join(dict.fromkeys(f"{n}[:{b}]" for n, b in ORDER))
            raise SystemExit(f"--only: no benchmark {token!r}; known: {known}")
        wanted |= matches
    return wanted


# --- The table ------------------------------------------------------------------------------------------------


def number(value: float) -> str:
    """Three significant figures or so, thousands separated."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def cells(row: Row) -> list[str]:
    """benchmark | backend | measured | baseline | ratio | target | met? | peak RSS MB | wall time."""
    wall = duration(row.seconds) if row.seconds is not None else ""
    if row.figure is None:
        verdict = "**failed**" if row.status == "failed" else row.status
        return [row.benchmark, row.backend, "", "", "", "", verdict, "", wall]
    figure = row.figure
    unit = figure["unit"]
    measured = f"{figure['name']}: {number(figure['value'])} {unit} ({figure['statistic']})"
    baseline = ratio = ""
    if figure.get("baseline") is not None:
        baseline = f"{number(figure['baseline'])} {unit} ({figure['baseline_name']})"
    if figure.get("ratio") is not None:
        ratio = f"{figure['ratio']:.2f}×"
    target = ""
    if figure.get("target"):
        target = figure["target"]["text"]
        if figure["target"].get("observed") is not None:
            target += f" (was {number(figure['target']['observed'])} {figure['target']['unit']})"
    verdict = {"met": "yes", "missed": "**no**"}.get(row.status, row.status)
    memory = row.memory or {}
    peak = f"{memory['main']:.0f}" if "main" in memory else ""
    if memory.get("children"):
        peak += f" (children {memory['children']:.0f})"
    return [row.benchmark, row.backend, measured, baseline, ratio, target, verdict, peak, wall]


HEADER = (
    "| benchmark | backend | measured | baseline | ratio | target | met? | peak RSS MB | wall time |\n"
    "|---|---|---|---|---:|---|---|---:|---:|"
)


def table_lines(rows: Sequence[Row]) -> list[str]:
    return [HEADER, *("| " + " | ".join(cells(row)) + " |" for row in rows)]


def note_lines(rows: Sequence[Row], *, rerun: str | None) -> list[str]:
    """A bullet per row that needs a word: a target missed, a failure, a row not run, a re-run."""
    sections = {job.name: job.section for job in JOBS}
    notes = []
    for key in dict.fromkeys(row.key for row in rows):
        group = [row for row in rows if row.key == key]
        words = []
        if rerun:
            words.append(rerun)
        for row in group:
            if row.status == "missed":
                what = row.note or (row.figure or {}).get("name", "")
                words.append(f"target missed: {what}; why: see [its section]({sections[row.benchmark]})")
            elif row.status in ("failed", "not run") and row.note:
                words.append(f"{row.status}: {row.note}")
            elif row.note:  # met, with a word from the benchmark beside its figure
                words.append(row.note)
        if words:
            notes.append(f"- **{key[0]} / {key[1]}**: " + "; ".join(dict.fromkeys(words)))
    return notes


def row_key(line: str) -> tuple[str, str] | None:
    """(benchmark, backend) of a table row or a note bullet written by this script."""
    table = re.match(r"\| ([^|]+?) \| ([^|]+?) \|", line)
    if table and table.group(1) not in ("benchmark", "---"):
        return table.group(1), table.group(2)
    bullet = re.match(r"- \*\*(.+?) / (.+?)\*\*", line)
    return (bullet.group(1), bullet.group(2)) if bullet else None


def section_text(rows: Sequence[Row], *, heading: str, previous: str, partial: bool, rerun: str) -> str:
    """The summary section: the heading line, the table, the notes. A partial run (--only) keeps the previous
    section's heading, and its rows and notes for the benchmarks it did not run."""
    fresh = {row.key for row in rows}
    kept_rows: dict[tuple[str, str], list[str]] = {}
    kept_notes: dict[tuple[str, str], list[str]] = {}
    if partial:
        lines = previous.splitlines()
        heading = next((line for line in lines if line.strip() and line != GENERATED and not row_key(line)), heading)
        for line in lines:
            key = row_key(line)
            if key and key not in fresh:
                (kept_rows if line.startswith("|") else kept_notes).setdefault(key, []).append(line)
    body, notes = [HEADER], []
    for key in [*ORDER, *(key for key in kept_rows if key not in ORDER)]:
        group = [row for row in rows if row.key == key]
        if group:
            body += table_lines(group)[1:]
            notes += note_lines(group, rerun=rerun if partial else None)
        else:
            body += kept_rows.get(key, [])
            notes += kept_notes.get(key, [])
    return "\n".join([GENERATED, heading, "", *body, *(["", *notes] if notes else [])])


GENERATED = "<!-- Written by bench/run_suite.py (`make bench`): change the script, not this section. -->"


def rewrite_readme(path: Path, rows: Sequence[Row], *, heading: str, partial: bool, rerun: str) -> bool:
    """Replace what lies between the markers of path, and nothing else; False when they are missing."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        return False
    previous = text[start + len(START_MARK) : end]
    section = section_text(rows, heading=heading, previous=previous, partial=partial, rerun=rerun)
    path.write_text(text[: start + len(START_MARK)] + "\n" + section + "\n" + text[end:], encoding="utf-8")
    return True


# --- Main -----------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Run every benchmark script in turn (SQLite, then PostgreSQL where the script has it) and write a "
            "summary table between the bench-summary markers of bench/README.md. Exits 0 when every target "
            "measured is met, 1 when one is missed, 2 when a script failed."
        ),
        epilog="example: .venv/bin/python bench/run_suite.py --only poll,claim",
    )
    names = ", ".join(dict.fromkeys(job.name for job in JOBS))
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run these only ({names}; NAME:sqlite or NAME:postgresql for one backend)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for a smoke run; the README is left alone unless --readme names a file",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only; the PostgreSQL rows say not run")
    parser.add_argument("--no-readme", action="store_true", help="print the table; write no README")
    parser.add_argument(
        "--readme", type=Path, help=f"write the table into this file's markers (default {README.relative_to(ROOT)})"
    )
    parser.add_argument(
        "--results", type=Path, help=f"folder for each script's JSON and log (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    if args.no_readme and args.readme:
        parser.error("--no-readme and --readme contradict each other")
    return args


def invocation(arguments: Sequence[str]) -> str:
    """How the suite was started, as the README shows it."""
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f" BENCH_ARGS='{' '.join(arguments)}'" if arguments else "")
    return " ".join([".venv/bin/python bench/run_suite.py", *arguments])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; the exit status says whether every target was met."""
    args = parse_args(argv)
    wanted = selected(args.only)
    revision = source_revision()
    began, started = datetime.now(UTC), time.perf_counter()
    results = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    if results.resolve().is_relative_to(RESULTS):
        (RESULTS / ".gitignore").write_text("*\n")  # results of this machine, not the repository's
    readme = None if args.no_readme or (args.quick and not args.readme) else (args.readme or README)
    problem = "not asked for (--no-postgres)" if args.no_postgres else None
    if not problem and any(backend == "postgresql" for _, backend in wanted):
        problem = postgres_problem()
        if problem:
            print(f"{problem}: the PostgreSQL rows are reported as not run", flush=True)
    rows: list[Row] = []
    for job in JOBS:
        backends = [backend for backend in job.backends if (job.name, backend) in wanted]
        if problem and "postgresql" in backends:
            backends.remove("postgresql")
            rows.append(Row(job.name, "postgresql", "not run", note=problem))
        if backends:
            rows += run_job(job, backends, quick=args.quick, results=results)
    rows.sort(key=lambda row: ORDER.index(row.key))
    command = invocation(sys.argv[1:] if argv is None else argv)
    if args.quick:
        kind = "Quick run (small sizes: not comparable with the targets)"
    else:
        kind = "Run of part of the suite" if args.only else "Last full run"
    heading = (
        f"{kind}: {began:%Y-%m-%d %H:%M} UTC, code at {revision}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, `{command}`, {duration(time.perf_counter() - started)} in all."
    )
    rerun = f"re-run {began:%Y-%m-%d %H:%M} UTC, code at {revision}, by `{command}`"
    print("\n" + heading + "\n")
    print("\n".join(table_lines(rows)))
    notes = note_lines(rows, rerun=None)
    if notes:
        print("\n" + "\n".join(notes))
    if readme is not None:
        written = rewrite_readme(readme, rows, heading=heading, partial=bool(args.only), rerun=rerun)
        if written:
            print(f"\ntable written into {readme}")
        else:
            print(f"\n{readme} has no {START_MARK} ... {END_MARK} section: table not written", file=sys.stderr)
    else:
        print("\nREADME left alone (" + ("--no-readme" if args.no_readme else "--quick") + ")")
    (results / "summary.json").write_text(
        json.dumps({"heading": heading, "rows": [row.__dict__ for row in rows]}, indent=2, ensure_ascii=False) + "\n"
    )
    statuses = {row.status for row in rows}
    return 2 if "failed" in statuses else 1 if "missed" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
