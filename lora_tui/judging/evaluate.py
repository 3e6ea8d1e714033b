"""What ``lora-tui eval`` does: run a prompt set on every program and score each answer.

A prompt file is JSON Lines, one prompt per line::

    {"prompt": "Who won the 2025 Nobel Prize in Physics?", "keywords": ["Clarke", "Devoret"]}
    {"prompt": "Name a backend.", "regex": "XNNPACK|Core ?ML|Vulkan", "group": "executorch"}

``question`` is read as ``prompt`` (the demo's eval sets use it). An answer is right when it
contains every keyword (case-insensitive) and matches the regex (searched, case-insensitive);
a prompt with neither is run and saved but not scored. A regex that does not compile refuses
the file; one that takes over ``REGEX_SECONDS`` on an answer marks it wrong, with a note. A
prompt's group, for the totals, is its ``group`` field, else its file's name (its folder's,
when files share a name). Prompts that ask for one fact in different words may share a
``fact`` id, and are then also scored per fact. Each prompt runs greedy in a fresh conversation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import regex
from rich.table import Table
from rich.text import Text

from lora_tui.common.literal import literal, printable
from lora_tui.engine.foundations import NAME_SEPARATOR, FoundationPrograms, with_label
from lora_tui.engine.protocol import Departure, ReplyDone
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    Message,
    ReplyEnd,
)
from lora_tui.format import MANIFEST_FILE, ArtifactError, Manifest, quoted
from lora_tui.judging.records import AnswerRecord
from lora_tui.judging.store import ResultsStore

if TYPE_CHECKING:
    from lora_tui.engine.host import ModelHost

# A prompt's regex is a stranger's, and some backtrack for ever (``(.*.*)*X`` under ``re``).
# It runs under ``regex``, which stops a match at this limit and lets other threads run while
# it matches (``concurrent``), so such a pattern costs one answer a wrong mark, not a hang.
REGEX_SECONDS = 1.0


@dataclass(frozen=True)
class Mark:
    """How an answer scored: right, wrong, or None when the prompt checks nothing; with a
    note when its regex ran out of time."""

    right: bool | None
    note: str | None = None


@dataclass(frozen=True)
class PromptCase:
    prompt: str
    group: str
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    fact: str | None = None

    @property
    def scored(self) -> bool:
        return bool(self.keywords) or self.regex is not None

    def is_right(self, answer: str) -> bool | None:
        """None for a prompt with nothing to check."""
        return self.mark(answer).right

    def mark(self, answer: str) -> Mark:
        """Bounded by ``REGEX_SECONDS``; call it off an event loop, as it may take that long."""
        if not self.scored:
            return Mark(None)
        lowered = answer.lower()
        if not all(keyword.lower() in lowered for keyword in self.keywords):
            return Mark(False)
        if self.regex is None:
            return Mark(True)
        try:
            found = regex.search(
                self.regex, answer, regex.IGNORECASE, timeout=REGEX_SECONDS, concurrent=True
            )
        except TimeoutError:
            note = f"regex {quoted(self.regex)} took over {REGEX_SECONDS:g} s; counted wrong"
            return Mark(False, note)
        return Mark(found is not None)


def score(case: PromptCase, answer: str, end: ReplyEnd) -> Mark:
    """How an answer scores: by its prompt's keywords and regex, and wrong when its reply
    failed. The one place an answer is scored (``eval``, ``--resume`` and the app alike); it
    may take ``REGEX_SECONDS``, so call it off an event loop."""
    return Mark(False) if end is ReplyEnd.ERROR else case.mark(answer)


@dataclass
class EvalResult:
    case: PromptCase
    adapter: str
    done: ReplyDone
    right: bool | None
    settings: GenerationSettings
    resumed: bool = False  # read back from a results file (``--resume``), not answered now
    note: str | None = None  # why the mark may be wrong (its regex ran out of time)
    from_base: FromBase | None = None  # scored under the base program, when one is open

    @classmethod
    def scored(
        cls, case: PromptCase, adapter: str, done: ReplyDone, settings: GenerationSettings
    ) -> EvalResult:
        """A reply just given, scored (``score``)."""
        mark = score(case, done.text, done.end)
        return cls(case, adapter, done, mark.right, settings, note=mark.note)

    @classmethod
    def from_record(
        cls, case: PromptCase, adapter: str, record: AnswerRecord, settings: GenerationSettings
    ) -> EvalResult:
        """An answer an earlier run saved, scored again by this run's prompt."""
        done = ReplyDone(adapter, record.answer, record.end, None)
        mark = score(case, done.text, record.end)
        return cls(
            case,
            adapter,
            done,
            mark.right,
            settings,
            resumed=True,
            note=mark.note,
            from_base=FromBase.of_record(record),
        )

    def record(self, info: AdapterInfo | None = None, round: str | None = None) -> AnswerRecord:
        """Its line in a results file: the reply, its mark, and (``info``) the foundation it
        ran over; the app's has its ``round``."""
        case = self.case
        marked = {"group": case.group, "fact": case.fact, "right": self.right, "note": self.note}
        base = asdict(self.from_base) if self.from_base else {}
        return AnswerRecord.reply(
            case.prompt, self.adapter, self.done, self.settings, info, round=round, **marked, **base
        )


@dataclass(frozen=True)
class FromBase:
    """An answer scored under the base program (a ``Departure``), as its results line has it."""

    departs_at: int | None
    same_as_base: bool
    base_logprob: float | None  # the mean over its tokens

    @classmethod
    def of(cls, departure: Departure) -> FromBase:
        mean = departure.mean_logprob
        return cls(departure.departs_at, departure.same_as_base, _rounded(mean))

    @classmethod
    def of_record(cls, record: AnswerRecord) -> FromBase | None:
        if record.same_as_base is None:
            return None
        return cls(record.departs_at, record.same_as_base, record.base_logprob)


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


@dataclass
class EvalReport:
    adapters: list[str]
    results: list[EvalResult] = field(default_factory=list)
    # Each adapter's foundation label, when several foundations are compared: "nobel · fp32"
    # and "nobel · 8da4w g32" are then one adapter at two quantizations.
    labels: dict[str, str] = field(default_factory=dict)
    # A training run's checkpoints: program -> (the run's adapter, with its label; the step).
    steps: dict[str, tuple[str, int]] = field(default_factory=dict)

    def score(self, group: str, adapter: str, fact: str | None = None) -> tuple[int, int]:
        """(right, scored) for one adapter on one group, or on one fact of it."""
        marks = [
            r.right
            for r in self.results
            if r.adapter == adapter
            and r.case.group == group
            and (fact is None or r.case.fact == fact)
            and r.right is not None
        ]
        return sum(marks), len(marks)

    @property
    def notes(self) -> list[str]:
        """Each distinct note on a mark (a regex that ran out of time), in order."""
        return list(dict.fromkeys(r.note for r in self.results if r.note))

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.case.group for r in self.results))

    @property
    def facts(self) -> list[tuple[str, str]]:
        """(group, fact) of every fact id, in order."""
        return list(dict.fromkeys((r.case.group, r.case.fact) for r in self.results if r.case.fact))

    @property
    def foundations(self) -> list[str]:
        """The foundations' labels in order, when several were compared; else []."""
        labels = list(dict.fromkeys(self.labels.values()))
        return labels if len(labels) > 1 else []

    @property
    def reference(self) -> str | None:
        """The foundation the others are measured against: fp32's, else the first."""
        labels = self.foundations
        return ("fp32" if "fp32" in labels else labels[0]) if labels else None

    def by_foundation(self) -> dict[str, dict[str, str]]:
        """Adapter (its program's name) -> foundation label -> its full name here."""
        table: dict[str, dict[str, str]] = {}
        for adapter in self.adapters:
            label = self.labels.get(adapter, "")
            program = adapter.removesuffix(f"{NAME_SEPARATOR}{label}")
            table.setdefault(program, {})[label] = adapter
        return table

    def total(self, adapter: str) -> tuple[int, int]:
        """(right, scored) for one adapter over every group."""
        marks = [r.right for r in self.results if r.adapter == adapter and r.right is not None]
        return sum(marks), len(marks)

    def by_step(self) -> dict[str, list[tuple[int, int, int]]]:
        """Each run's checkpoints in step order: adapter -> [(step, right, scored), ...]."""
        series: dict[str, list[tuple[int, int, int]]] = {}
        for program in self.adapters:
            if program in self.steps:
                adapter, step = self.steps[program]
                series.setdefault(adapter, []).append((step, *self.total(program)))
        return {adapter: sorted(points) for adapter, points in series.items()}

    def from_base(self, adapter: str) -> tuple[int, int, float | None] | None:
        """(answers the same as the base's, answers scored under it, the mean base
        log-probability of its tokens over them); None when none was scored."""
        scored = [r.from_base for r in self.results if r.adapter == adapter and r.from_base]
        if not scored:
            return None
        logprobs = [s.base_logprob for s in scored if s.base_logprob is not None]
        mean = sum(logprobs) / len(logprobs) if logprobs else None
        return sum(s.same_as_base for s in scored), len(scored), _rounded(mean)

    def as_json(self) -> dict[str, Any]:
        return {
            "adapters": self.adapters,
            "labels": self.labels,
            "scores": {
                group: {
                    adapter: dict(zip(("right", "scored"), self.score(group, adapter), strict=True))
                    for adapter in self.adapters
                }
                for group in self.groups
            },
            # Foundation label ("" for one) -> group -> program -> [right, scored].
            "by_foundation": {
                label: {
                    group: {
                        program: list(self.score(group, names[label]))
                        for program, names in self.by_foundation().items()
                        if label in names
                    }
                    for group in self.groups
                }
                for label in self.foundations or [""]
            },
            # Program -> how far its answers are from the base's, when a base was open.
            "from_base": {
                adapter: dict(zip(("same", "scored", "mean_logprob"), found, strict=True))
                for adapter in self.adapters
                if (found := self.from_base(adapter)) is not None
            },
            # A training run's checkpoints: adapter -> [[step, right, scored], ...] by step.
            "by_step": {
                adapter: [list(point) for point in points]
                for adapter, points in self.by_step().items()
            },
            "results": [r.record().to_json() for r in self.results],
        }


def load_prompts(paths: list[Path]) -> list[PromptCase]:
    """Every prompt of every file, in order; a bad line is one error naming file and line."""
    stems = [p.stem for p in paths]
    cases: list[PromptCase] = []
    for path in paths:
        # Files with the same name (nobel/eval.jsonl, executorch/eval.jsonl) keep apart.
        default_group = path.stem if stems.count(path.stem) == 1 else path.parent.name
        for number, line in enumerate(_read_lines(path), start=1):
            if line.strip():
                cases.append(_case(line, default_group, f"{path}:{number}"))
    if not cases:
        raise EngineError(f"{', '.join(map(str, paths))}: no prompts")
    return cases


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EngineError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EngineError(f"{path}: cannot be read ({err})") from None


def _case(line: str, default_group: str, where: str) -> PromptCase:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise EngineError(f"{where}: not a JSON object ({err.msg})") from None
    if not isinstance(row, dict):
        raise EngineError(f"{where}: not a JSON object")
    prompt = row.get("prompt", row.get("question"))
    if not isinstance(prompt, str) or not prompt.strip():
        raise EngineError(f"{where}: needs a 'prompt' string")
    keywords = row.get("keywords", [])
    if isinstance(keywords, str):
        keywords = [keywords]
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise EngineError(f"{where}: 'keywords' must be a list of strings")
    pattern = row.get("regex")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise EngineError(f"{where}: 'regex' must be a string")
        try:
            regex.compile(pattern, regex.IGNORECASE)
        except (regex.error, RecursionError, ValueError) as err:
            raise EngineError(f"{where}: 'regex' does not compile ({err})") from None
    group = row.get("group", default_group)
    fact = row.get("fact")
    return PromptCase(
        prompt, str(group), tuple(keywords), pattern, None if fact is None else str(fact)
    )


@dataclass(frozen=True)
class Program:
    """A program a run asks: its name in the report, its file, and its foundation's label
    ("8da4w g32" when several foundations are compared, else "")."""

    name: str
    path: Path
    label: str = ""


@dataclass(frozen=True)
class Answered:
    """An answer a backend gives: to the prompt at ``index`` of the set, with its program's
    facts and, when the backend knows it, the SHA-256 of the program file that answered."""

    index: int
    result: EvalResult
    info: AdapterInfo | None = None
    sha256: str | None = None


class Backend(Protocol):
    """Where a run's answers come from: programs loaded in this process (``LocalBackend``)
    or a Ray cluster's actors (``lora_tui.judging.sweep.RayBackend``)."""

    @property
    def programs(self) -> Sequence[Program]: ...

    def answer(
        self,
        cases: Sequence[PromptCase],
        wanted: Callable[[int, str], bool],
        settings: GenerationSettings,
        answered: Callable[[Answered], None],
    ) -> None:
        """Each prompt on each program that ``wanted(index, name)`` asks for, answered once
        in a fresh conversation and handed to ``answered`` as it comes."""


class RunStopped(EngineError):
    """The run cannot go on (a Ray cluster lost its nodes); every answer saved stays."""


@dataclass(frozen=True)
class Loaded:
    """A program loaded here: on the host of its foundation, with what loading it said."""

    program: Program
    host: ModelHost
    info: AdapterInfo | None = None


class LocalBackend:
    """Programs loaded in this process, each on the ``ModelHost`` of its foundation."""

    def __init__(self, loaded: Sequence[Loaded]) -> None:
        self.loaded = {each.program.name: each for each in loaded}
        # Each host's base program (the first a manifest calls one), that answers are
        # scored under (``Departure``); the base's own answers too: "same as base".
        self.bases: dict[int, str] = {}
        for each in loaded:
            if each.info is not None and each.info.kind == "base":
                self.bases.setdefault(id(each.host), each.program.name)

    @classmethod
    def open(
        cls,
        foundations: Sequence[FoundationPrograms],
        tokenizer: Path | None,
        share: bool,
        threads: int | None,
    ) -> LocalBackend:
        """Every program over its foundation, a host per foundation, named with its label."""
        from lora_tui.engine.host import open_hosts

        loaded = []
        for group, host in open_hosts(foundations, tokenizer, share, threads):
            for path in group.programs:
                info = host.load(path, with_label(host.foundation.entry_for(path)[0], group.label))
                loaded.append(Loaded(Program(info.name, path, group.label), host, info))
            host.end_checks()  # the pre-flight child is not needed any more
        return cls(loaded)

    @property
    def programs(self) -> list[Program]:
        return [each.program for each in self.loaded.values()]

    def answer(
        self,
        cases: Sequence[PromptCase],
        wanted: Callable[[int, str], bool],
        settings: GenerationSettings,
        answered: Callable[[Answered], None],
    ) -> None:
        """Prompt by prompt, so a run stopped halfway has asked every program the same."""
        for index, case in enumerate(cases):
            for name, each in self.loaded.items():
                if wanted(index, name):
                    each.host.clear([name])  # a full prefill: the same whatever came before
                    done = each.host.answer(name, [Message("user", case.prompt)], settings)
                    result = EvalResult.scored(case, name, done, settings)
                    if (base := self.bases.get(id(each.host))) is not None:
                        departure = each.host.departure(base, name)
                        result.from_base = FromBase.of(departure) if departure else None
                    answered(Answered(index, result, each.info))


def run_eval(
    backend: Backend,
    cases: Sequence[PromptCase],
    settings: GenerationSettings,
    store: ResultsStore | None = None,
    on_result: Callable[[EvalResult], None] = lambda _: None,
) -> EvalReport:
    """Every prompt on every program of ``backend``. Each new answer is saved in ``store``
    as it comes; an answer the store has already (``--resume``) is taken instead of asked,
    and scored again by this run's prompt. ``on_result`` hears of each, taken or given."""
    store = store or ResultsStore(None, [], None, settings)
    programs = {program.name: program for program in backend.programs}
    found: dict[tuple[int, str], EvalResult] = {}
    for index, case in enumerate(cases):
        for name, program in programs.items():
            if (record := store.earlier(case.prompt, program.path)) is not None:
                found[index, name] = EvalResult.from_record(case, name, record, settings)
                on_result(found[index, name])
    todo = {(index, name) for index in range(len(cases)) for name in programs} - found.keys()

    def answered(answer: Answered) -> None:
        result = answer.result
        store.save(result.record(answer.info), programs[result.adapter].path, answer.sha256)
        found[answer.index, result.adapter] = result
        on_result(result)

    try:
        backend.answer(cases, lambda index, name: (index, name) in todo, settings, answered)
    except RunStopped as err:
        total = len(cases) * len(programs)
        raise type(err)(f"{err}; {store.kept(len(found), total)}") from None
    labels = {n: p.label for n, p in programs.items()}
    report = EvalReport(list(programs), labels=labels, steps=checkpoint_steps(programs.values()))
    report.results = [found[index, name] for index in range(len(cases)) for name in programs]
    return report


def checkpoint_steps(programs: Iterable[Program]) -> dict[str, tuple[str, int]]:
    """Which programs are a training run's checkpoints, by the manifest lora-export wrote
    beside them: program name -> (its run's adapter, labelled as the program is; its step).
    A program with no manifest, or not listed in it, is no checkpoint."""
    manifests: dict[Path, Manifest | None] = {}
    steps = {}
    for program in programs:
        folder = program.path.parent
        if folder not in manifests:
            try:
                is_export = (folder / MANIFEST_FILE).is_file()
                manifests[folder] = Manifest.read(folder) if is_export else None
            except ArtifactError:
                manifests[folder] = None  # loading it said so already, or will
        manifest = manifests[folder]
        listed = manifest.program_named(program.path.name) if manifest else None
        if listed is not None and (checkpoint := listed[1].checkpoint_of(listed[0])):
            steps[program.name] = (with_label(checkpoint[0], program.label), checkpoint[1])
    return steps


def expand_folders(group: FoundationPrograms) -> FoundationPrograms:
    """``group`` with each folder among its programs replaced by programs of its
    foundation's folder: an export folder (one with a manifest) gives every program it
    lists; any other folder is a training run, and gives the programs exported from its
    checkpoints (the manifest's ``source`` inside it), by step."""
    if not any(path.is_dir() for path in group.programs):
        return group
    folder = group.weights.parent
    manifest = Manifest.read(folder) if (folder / MANIFEST_FILE).is_file() else None
    programs: list[Path] = []
    for path in group.programs:
        if not path.is_dir():
            programs.append(path)
            continue
        if (path / MANIFEST_FILE).is_file():
            listed = Manifest.read(path)
            programs += [path / entry.file for entry in listed.programs.values()]
            continue
        run = path.resolve()
        found = [
            (entry.step, folder / entry.file)
            for entry in (manifest.programs.values() if manifest else ())
            if entry.step is not None
            and entry.source is not None
            and Path(entry.source).resolve().parent == run
        ]
        if not found:
            raise ArtifactError(
                f"{path}: no program over {group.weights} was exported from its "
                "checkpoints (export them with lora-export --adapter NAME={path})"
            )
        programs += [program for _, program in sorted(found)]
    return replace(group, programs=tuple(dict.fromkeys(programs)))


def report_tables(report: EvalReport) -> list[Table]:
    """Each prompt's marks, the marks per fact (when prompts name facts) and the totals.
    Prompts, groups, facts and adapter names are the files' text, never markup: a prompt
    that mentions ``[/INST]`` shows as written."""
    answers = Table(title="Each prompt (✓ right, ✗ wrong, · not scored)", title_justify="left")
    answers.add_column("group")
    answers.add_column("prompt")
    for adapter in report.adapters:
        answers.add_column(literal(adapter), justify="center")
    marks = {True: ("✓", "green"), False: ("✗", "red"), None: ("·", "")}
    for index in range(0, len(report.results), len(report.adapters)):
        row = report.results[index : index + len(report.adapters)]
        shown = [literal(row[0].case.group), literal(row[0].case.prompt)]
        answers.add_row(*shown, *(Text(*marks[r.right]) for r in row))
    tables = [answers]
    if report.facts:
        per_fact = Table(title="Per fact", title_justify="left")
        per_fact.add_column("group")
        per_fact.add_column("fact")
        for adapter in report.adapters:
            per_fact.add_column(literal(adapter), justify="right")
        for group, fact in report.facts:
            cells = ["{}/{}".format(*report.score(group, a, fact)) for a in report.adapters]
            per_fact.add_row(literal(group), literal(fact), *cells)
        tables.append(per_fact)
    if report.foundations:
        tables.append(_by_foundation_table(report))
    if report.steps:
        tables.append(_by_step_table(report))
    totals = Table(title="Answered right", title_justify="left")
    totals.add_column("group")
    for adapter in report.adapters:
        totals.add_column(literal(adapter), justify="right")
    for group in report.groups:
        cells = ["{}/{}".format(*report.score(group, adapter)) for adapter in report.adapters]
        totals.add_row(literal(group), *cells)
    tables.append(totals)
    if any(report.from_base(adapter) for adapter in report.adapters):
        tables.append(_from_base_table(report))
    return tables


def _from_base_table(report: EvalReport) -> Table:
    """How far each program's answers are from the base program's: how many are its greedy
    answer token for token, and the base's mean log-probability of their tokens (0 is the
    base's own certainty; the lower, the further)."""
    table = Table(title="Distance from base", title_justify="left")
    table.add_column("program")
    table.add_column("same as base", justify="right")
    table.add_column("mean base log-prob", justify="right")
    for adapter in report.adapters:
        if (found := report.from_base(adapter)) is None:
            table.add_row(literal(adapter), "—", "—")
            continue
        same, scored, mean = found
        table.add_row(literal(adapter), f"{same}/{scored}", "—" if mean is None else f"{mean:.2f}")
    return table


def _by_foundation_table(report: EvalReport) -> Table:
    """Adapter x quantization: each adapter's score on every foundation, with its drop
    against the reference foundation's (fp32's)."""
    reference = report.reference
    title = literal(f"By foundation (change against {reference})")
    table = Table(title=title, title_justify="left")
    table.add_column("group")
    table.add_column("adapter")
    for label in report.foundations:
        table.add_column(literal(label), justify="right")
    for group in report.groups:
        for program, names in report.by_foundation().items():
            base = report.score(group, names[reference])[0] if reference in names else None
            cells = []
            for label in report.foundations:
                if label not in names:
                    cells.append("—")
                    continue
                right, scored = report.score(group, names[label])
                change = f" ({right - base:+d})" if base is not None and label != reference else ""
                cells.append(f"{right}/{scored}{change}")
            table.add_row(literal(group), literal(program), *cells)
    return table


def _by_step_table(report: EvalReport) -> Table:
    """A run's checkpoints, step by step: each group's score and the total."""
    table = Table(title="Scores by step", title_justify="left")
    table.add_column("adapter")
    table.add_column("step", justify="right")
    for group in report.groups:
        table.add_column(literal(group), justify="right")
    table.add_column("total", justify="right")
    by_program = {(adapter, step): name for name, (adapter, step) in report.steps.items()}
    for adapter, points in report.by_step().items():
        for step, right, scored in points:
            name = by_program[adapter, step]
            cells = ["{}/{}".format(*report.score(group, name)) for group in report.groups]
            share = f" ({100 * right / scored:.0f}%)" if scored else ""
            table.add_row(literal(adapter), str(step), *cells, f"{right}/{scored}{share}")
    return table


_CHART_COLORS = ("blue+", "red+", "green+", "magenta+", "cyan+", "yellow+")


def step_chart(report: EvalReport, width: int = 80, height: int = 16) -> Text | None:
    """The share answered right against the step, a line per run, drawn by plotext; None
    when no program is a checkpoint. Names reach plotext printable, and its colours come
    back as Rich styles, so a piped report is plain text."""
    series = {a: [(s, r, n) for s, r, n in points if n] for a, points in report.by_step().items()}
    series = {adapter: points for adapter, points in series.items() if points}
    if not series:
        return None
    import plotext as plt

    plt.clear_figure()
    plt.plot_size(width, height)
    plt.theme("pro")
    for index, (adapter, points) in enumerate(series.items()):
        steps = [step for step, _, _ in points]
        shares = [100 * right / scored for _, right, scored in points]
        color = _CHART_COLORS[index % len(_CHART_COLORS)]
        plt.plot(steps, shares, label=printable(adapter), marker="braille", color=color)
        plt.scatter(steps, shares, marker="●", color=color)  # the checkpoints themselves
    plt.ylim(0, 100)
    plt.title("Answered right by step (%)")
    plt.xlabel("step")
    chart = plt.build()
    plt.clear_figure()
    return Text.from_ansi(chart)
