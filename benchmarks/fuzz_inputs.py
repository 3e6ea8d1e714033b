"""Feed mutated copies of every input that is not a program to the public commands, and count.

    .venv/bin/python -m benchmarks.fuzz_inputs [-n 300] [--kinds manifest,prompts] [--seed 0]
        [--workdir DIR] [--cpu-seconds 60] [--wall-seconds 600] [--memory-gib 6]
        [--keep-failures] [--replay KIND:INDEX]

Mutated ``manifest.json``, ``adapter_config.json``, base ``config.json``, GGUF headers,
tokenizer files (``tokenizer.json``, ``tokenizer_config.json`` and its chat template),
prompt sets and results files (``tests/support/mutations.py``, the fields each reader looks
at in ``benchmarks/fuzz_kinds.py``), made from the integration tier's tiny fixtures
(``benchmarks/fuzz_fixtures.py``, built once into the work folder, about three minutes).
Each case runs one public command as a subprocess in a session of its own, each process
under a CPU-time and an address-space limit, the case under a wall-clock limit:
``lora-tui bench``, ``eval`` and ``compare`` (the app, headless, quit once it has drawn),
``lora-export``, ``lora-tui eval --resume`` and the app's results export. Each case is
refused in one line (non-zero exit, no Python error; one line on stderr, else it is listed
with the failures), handled (exit 0), traceback (a Python traceback or error on either
stream, an internal error whose traceback went to a log, or a crash), hang (a limit of
time) or out of memory (MemoryError, std::bad_alloc, or killed). Prints a table per kind
and the distinct failures, one example each (``--replay`` runs it again and prints what
it said); writes ``benchmarks/results/fuzz_inputs.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fuzz_fixtures import Fixtures, build_fixtures
from benchmarks.fuzz_kinds import APP_RESULTS, BIN, KINDS, Kind, command, prepare
from benchmarks.record import write_results

REFUSED, HANDLED, TRACEBACK, HANG, OOM = (
    "refused in one line",
    "handled",
    "traceback",
    "hang",
    "out of memory",
)
VERDICTS = (REFUSED, HANDLED, TRACEBACK, HANG, OOM)
NOT_ONE_LINE = "refused, not in one line"  # counted as refused, listed among the failures

# --- classifying what a command left ------------------------------------------------------

_MEMORY = re.compile(r"MemoryError|std::bad_alloc|[Oo]ut of memory|Cannot allocate memory")
# A Python error on either stream: a traceback (Python's or Rich's), a fatal error, an
# exception line, an error Python could only report on the way out, or lora-export's
# "internal error", whose traceback went to its log.
_PYTHON_ERROR = re.compile(
    r"Traceback|Fatal Python error|Exception ignored in|: internal error: "
    r"|^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): ",
    re.M,
)
_NOT_THE_ERROR = ("Traceback", "During handling", "The above exception", "╭", "│", "╰", "~", "^")


def classify(returncode: int | None, stdout: str, stderr: str) -> tuple[str, str]:
    """(verdict, detail) of one run: ``returncode`` None means it was stopped at the time
    limit; a negative one, killed by that signal. A non-zero exit without a Python error is
    a refusal however many lines it took (``Outcome.stderr_lines`` keeps the count)."""
    text = f"{stdout}\n{stderr}"
    if returncode is None:
        return HANG, "still running at the wall-clock limit"
    if returncode == -signal.SIGXCPU:
        return HANG, "stopped at the CPU-time limit"
    memory = _MEMORY.search(text)
    if memory or returncode == -signal.SIGKILL:
        return OOM, _line_around(text, memory.start()) if memory else "killed by SIGKILL"
    if _PYTHON_ERROR.search(text) or returncode < 0:
        return TRACEBACK, error_line(text, returncode)
    if returncode == 0:
        return HANDLED, _first_line(stdout) or _first_line(stderr)
    return REFUSED, _first_line(stderr) or f"exit {returncode}, nothing said"


def error_line(text: str, returncode: int = 1) -> str:
    """The line that names the error: the exception line after the last traceback (Python's
    or Rich's), or the line that says what went wrong."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if "Traceback" in line]
    if headers:
        for line in lines[headers[-1] + 1 :]:
            if line.strip() and not line[0].isspace() and not line.startswith(_NOT_THE_ERROR):
                return line.strip()[:300]
    match = _PYTHON_ERROR.search(text)
    if match and "Traceback" not in match.group(0):
        return _line_around(text, match.start())
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return _first_line(text)


def _line_around(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start : end if end != -1 else len(text)].strip()[:300]


def _first_line(text: str) -> str:
    return next((line.strip()[:300] for line in text.splitlines() if line.strip()), "")


def signature(verdict: str, detail: str) -> str:
    """What makes two failures the same: the exception and its message with the values
    that differ from case to case (quoted text, numbers) left out; else the verdict."""
    if verdict != TRACEBACK:
        return verdict
    error = detail.rsplit(LOGGED, 1)[-1].split(": internal error: ", 1)[-1]
    error = re.sub(r"\s*\(details in [^)]*\)", "", error)
    return _VALUES.sub("…", error)[:100]


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+\b")
LOGGED = " | logged: "  # joins an internal error's line to the exception its log holds


# --- running one command --------------------------------------------------------------------


@dataclass
class Limits:
    """Per process: CPU seconds (a busy machine slows a healthy run, not its CPU time) and
    address space; for the whole run: wall-clock seconds (a run blocked, burning nothing)."""

    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float


@dataclass
class Run:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float  # the command's and the children it waited for


def _limit(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_limited(
    argv: list[str], cwd: Path, env: dict[str, str], limits: Limits, quit_after: Path | None = None
) -> Run:
    """Run ``argv`` in a session of its own under the limits; whatever it started is killed
    with it, at the time limit or when it ends. With ``quit_after``, the command is an app:
    once that file exists (the app is past its checks) and it has had time to draw, it is
    sent SIGTERM, which it takes as Ctrl+Q."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    started, cpu_before = time.monotonic(), _children_cpu()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_limit(limits),
        )
        try:
            returncode = _wait(process, started + limits.wall_seconds, quit_after)
        finally:
            _kill_session(process.pid)
            process.wait()
    seconds, cpu = time.monotonic() - started, _children_cpu() - cpu_before
    return Run(returncode, _read(out), _read(err), seconds, cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


APP_SETTLE_S = 8.0  # from the app's results file opening to its panes drawn, on a busy machine


def _wait(process: subprocess.Popen, deadline: float, quit_after: Path | None) -> int | None:
    """The exit status, or None at the deadline."""
    up_since: float | None = None
    while (left := deadline - time.monotonic()) > 0:
        try:
            return process.wait(timeout=min(left, 0.5))
        except subprocess.TimeoutExpired:
            pass
        if quit_after is None or up_since == -1.0:
            continue
        if up_since is None and quit_after.exists():
            up_since = time.monotonic()
        if up_since is not None and time.monotonic() - up_since > APP_SETTLE_S:
            process.send_signal(signal.SIGTERM)
            up_since = -1.0
    return None


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: Path, keep: int = 1 << 20) -> str:
    """The first and last ``keep`` bytes of an output (a command may echo a huge input)."""
    with path.open("rb") as handle:
        data = handle.read(keep)
        size = path.stat().st_size
        if size > 2 * keep:
            handle.seek(size - keep)
            data += b"\n[...]\n" + handle.read()
        else:
            data += handle.read()
    return data.decode("utf-8", "replace")


# --- the run -------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    index: int
    command: str
    mutation: str
    verdict: str
    detail: str
    seconds: float
    cpu_seconds: float
    stderr_lines: int = 0


def case_rng(seed: int, kind: Kind, index: int) -> random.Random:
    """Each case's own, so any one can be made again alone."""
    return random.Random(f"{seed}:{kind.name}:{index}")


def run_case(
    kind: Kind, index: int, fixtures: Fixtures, scratch: Path, seed: int, limits: Limits
) -> tuple[Outcome, Path]:
    """One mutated input through one of the kind's commands."""
    case = scratch / f"{kind.name}-{index}"
    shutil.rmtree(case, ignore_errors=True)
    (case / "tmp").mkdir(parents=True)
    inputs, mutation = prepare(kind, fixtures, case, index, case_rng(seed, kind, index))
    name = kind.command_for(index)
    argv, extra = command(name, inputs, case)
    env = {**os.environ, **extra, "TMPDIR": str(case / "tmp")}
    # What the commands keep for the user (default results, logs) stays in the scratch.
    env |= {
        "XDG_DATA_HOME": str(scratch / "xdg-data"),
        "XDG_STATE_HOME": str(scratch / "xdg-state"),
    }
    quit_after = case / APP_RESULTS if name == "compare" else None
    run = run_limited(argv, case, env, limits, quit_after)
    verdict, detail = classify(run.returncode, run.stdout, run.stderr)
    if ": internal error: " in detail:  # the traceback is in the command's log
        for log in (case / "tmp").glob("*.log"):
            detail = f"{detail}{LOGGED}{error_line(log.read_text(errors='replace'))}"
    lines = sum(1 for line in run.stderr.splitlines() if line.strip())
    outcome = Outcome(
        kind.name, index, name, mutation, verdict, detail, run.seconds, run.cpu_seconds, lines
    )
    return outcome, case


def failures(outcomes: list[Outcome]) -> list[dict]:
    """The distinct failures (traceback, hang, out of memory, a refusal not in one line):
    by kind, command and error."""
    found: dict[tuple[str, str, str, str], list[Outcome]] = {}
    for o in outcomes:
        if o.verdict in (TRACEBACK, HANG, OOM):
            key = (o.kind, o.command, o.verdict, signature(o.verdict, o.detail))
        elif o.verdict == REFUSED and o.stderr_lines != 1:
            key = (o.kind, o.command, NOT_ONE_LINE, f"{o.stderr_lines} lines on stderr")
        else:
            continue
        found.setdefault(key, []).append(o)
    return [
        {
            "kind": kind,
            "command": name,
            "verdict": verdict,
            "error": error,
            "cases": [{"case": o.index, "mutation": o.mutation, "detail": o.detail} for o in cases],
        }
        for (kind, name, verdict, error), cases in found.items()
    ]


def report(outcomes: list[Outcome], args: argparse.Namespace, seconds: float) -> dict:
    kinds: dict[str, dict] = {}
    for o in outcomes:
        entry = kinds.setdefault(o.kind, {"cases": 0, "verdicts": Counter(), "by_command": {}})
        entry["cases"] += 1
        entry["verdicts"][o.verdict] += 1
        entry["by_command"].setdefault(o.command, Counter())[o.verdict] += 1
    for entry in kinds.values():
        entry["verdicts"] = {v: entry["verdicts"][v] for v in VERDICTS}
        entry["by_command"] = {c: dict(n) for c, n in entry["by_command"].items()}
    totals = Counter(o.verdict for o in outcomes)
    refused = [o for o in outcomes if o.verdict == REFUSED]
    return {
        "cases_per_kind": args.n,
        "seed": args.seed,
        "limits": {
            "cpu_s_per_process": args.cpu_seconds,
            "wall_s_per_case": args.wall_seconds,
            "address_space_gib_per_process": args.memory_gib,
        },
        "seconds": round(seconds),
        "kinds": kinds,
        "totals": {v: totals[v] for v in VERDICTS},
        "refused_not_in_one_line": sum(1 for o in refused if o.stderr_lines != 1),
        "cpu_s_median_by_command": _cpu_medians(outcomes),
        "failures": failures(outcomes),
    }


def _cpu_medians(outcomes: list[Outcome]) -> dict[str, float]:
    """What a case that ended by itself costs each command, to set the CPU limit by."""
    ended: dict[str, list[float]] = {}
    for o in outcomes:
        if o.verdict in (REFUSED, HANDLED):
            ended.setdefault(o.command, []).append(o.cpu_seconds)
    return {name: round(statistics.median(cpu), 1) for name, cpu in ended.items()}


def print_tables(result: dict) -> None:
    width = max(len(k) for k in [*result["kinds"], "total"])
    header = f"{'kind':<{width}}  {'cases':>5}  " + "  ".join(
        f"{v:>{max(len(v), 5)}}" for v in VERDICTS
    )
    print(f"\n{header}\n{'-' * len(header)}")
    rows = [(k, e["cases"], e["verdicts"]) for k, e in result["kinds"].items()]
    rows.append(("total", sum(r[1] for r in rows), result["totals"]))
    for name, cases, verdicts in rows:
        cells = "  ".join(f"{verdicts[v]:>{max(len(v), 5)}}" for v in VERDICTS)
        print(f"{name:<{width}}  {cases:>5}  {cells}")
    print(f"\n{len(result['failures'])} distinct failures:")
    for f in result["failures"]:
        example = f["cases"][0]
        print(f"  {f['kind']} / {f['command']}: {f['verdict']} ×{len(f['cases'])}: {f['error']}")
        print(f"      e.g. case {example['case']}: {example['mutation']}")
        print(f"      -> {example['detail']}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="cases per kind (default 300)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"of {','.join(KINDS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=60, help="CPU time per process")
    parser.add_argument("--wall-seconds", type=float, default=600.0, help="time per case")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="address space per process")
    parser.add_argument("--workdir", type=Path, help="keep the fixtures here between runs")
    parser.add_argument("--keep-failures", action="store_true", help="keep failing cases' folders")
    parser.add_argument("--replay", metavar="KIND:INDEX", help="run one case, print what it said")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument("--dry-run", action="store_true", help="list the cases' mutations only")
    args = parser.parse_args()
    unknown = [k for k in args.kinds.split(",") if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]}; kinds: {', '.join(KINDS)}")
    return args


def replay(
    spec: str, fixtures: Fixtures, scratch: Path, args: argparse.Namespace, limits: Limits
) -> None:
    name, _, index = spec.partition(":")
    outcome, case = run_case(KINDS[name], int(index), fixtures, scratch, args.seed, limits)
    print(f"{outcome.kind}-{outcome.index} {outcome.command}: {outcome.mutation}")
    print(f"--- stdout ---\n{_read(case / 'stdout.txt')[-4000:]}")
    print(f"--- stderr ---\n{_read(case / 'stderr.txt')[-4000:]}")
    took = f"{outcome.seconds:.1f} s ({outcome.cpu_seconds:.1f} s CPU)"
    print(f"=> {outcome.verdict} in {took}: {outcome.detail}\n(files in {case})")


def main() -> None:
    args = _parse_args()
    limits = Limits(args.cpu_seconds, int(args.memory_gib * 2**30), args.wall_seconds)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz-inputs-"))
    started = time.monotonic()
    fixtures = build_fixtures(workdir / "fixtures", BIN / "lora-tui")
    print(f"fixtures in {fixtures.root} ({time.monotonic() - started:.0f} s)", flush=True)
    scratch = workdir / "cases"
    if args.replay:
        replay(args.replay, fixtures, scratch, args, limits)
    elif args.dry_run:
        list_mutations(args, fixtures, scratch)
    else:
        started = time.monotonic()
        outcomes = run_all(args, fixtures, workdir, limits)
        result = report(outcomes, args, time.monotonic() - started)
        print_tables(result)
        if not args.no_write:
            write_results("fuzz_inputs", result)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def run_all(
    args: argparse.Namespace, fixtures: Fixtures, workdir: Path, limits: Limits
) -> list[Outcome]:
    """Every case of every kind asked for, one at a time, each printed as it ends."""
    outcomes: list[Outcome] = []
    for kind in (KINDS[k] for k in args.kinds.split(",")):
        for index in range(args.n):
            outcome, case = run_case(kind, index, fixtures, workdir / "cases", args.seed, limits)
            outcomes.append(outcome)
            print(
                f"{kind.name:<14} {index:4d} {outcome.command:<14} {outcome.verdict:<19} "
                f"{outcome.seconds:5.0f} s ({outcome.cpu_seconds:3.0f} s CPU)  "
                f"{outcome.mutation[:70]}  -> {outcome.detail[:100]}",
                flush=True,
            )
            failed = outcome.verdict in (TRACEBACK, HANG, OOM)
            if failed and args.keep_failures:
                shutil.rmtree(workdir / "failures" / case.name, ignore_errors=True)
                shutil.move(case, workdir / "failures" / case.name)
            else:
                shutil.rmtree(case, ignore_errors=True)
    return outcomes


def list_mutations(args: argparse.Namespace, fixtures: Fixtures, scratch: Path) -> None:
    """Each case's command and mutation, without running anything (to pick one to replay).
    In a folder of its own: a run may be going on in ``scratch``."""
    scratch = scratch / "dry-run"
    for kind in (KINDS[k] for k in args.kinds.split(",")):
        for index in range(args.n):
            case = scratch / f"{kind.name}-{index}"
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir(parents=True)
            _, mutation = prepare(kind, fixtures, case, index, case_rng(args.seed, kind, index))
            print(f"{kind.name}:{index} {kind.command_for(index)}: {mutation}")
            shutil.rmtree(case)


if __name__ == "__main__":
    main()
