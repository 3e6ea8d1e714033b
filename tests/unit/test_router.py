"""The engine worker's router, over stand-in hosts (tests/support/fake_lanes.py) in real
forked lanes: a long pre-flight check holds up no other pane, and a step that never returns
becomes that pane's error while the others go on answering."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

from lora_tui.engine.lanes import Lane, Router
from lora_tui.engine.protocol import (
    Cancel,
    Departure,
    EngineEvent,
    EngineFailed,
    FoundationPacked,
    Idle,
    Load,
    Loaded,
    LoadFailed,
    NoEffect,
    Piece,
    Probed,
    Replied,
    ReplyDone,
    Score,
    Send,
    Shutdown,
    Unload,
    UseBase,
    UseThreads,
)
from lora_tui.engine.threads import LaneLayout
from lora_tui.engine.types import GenerationSettings, Message, ReplyEnd
from lora_tui.engine.worker import _lane_main
from tests.support import fake_lanes

HELLO = (Message("user", "Hello there"),)
SETTINGS = GenerationSettings()


@contextmanager
def router(max_lanes: int, step_limit_s: float | None = None) -> Iterator[Connection]:
    """The router in a process of its own, as the worker runs it; its connection to the app."""
    context = mp.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=fake_lanes.serve_router, args=(theirs, max_lanes, step_limit_s), daemon=True
    )
    process.start()
    theirs.close()
    try:
        yield ours
    finally:
        tree = psutil.Process(process.pid).children(recursive=True)
        ours.send(Shutdown())
        process.join(10)
        if process.is_alive():
            process.kill()
        _, alive = psutil.wait_procs(tree, timeout=10)
        for left in alive:
            left.kill()
        assert not alive, f"lanes left behind: {alive}"


class Events:
    """What the router sent back so far."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.got = conn, []

    def wait_for(self, done: Callable[[list[EngineEvent]], bool], timeout: float = 30):
        while not done(self.got):
            assert self.conn.poll(timeout), f"nothing more within {timeout} s; got {self.got}"
            self.got.extend(self.conn.recv())
        return self.got


def loaded(name: str) -> Callable[[list[EngineEvent]], bool]:
    return lambda got: any(isinstance(e, Loaded) and e.adapter == name for e in got)


def ended(name: str, count: int = 1) -> Callable[[list[EngineEvent]], bool]:
    return lambda got: sum(isinstance(e, ReplyDone) and e.adapter == name for e in got) >= count


def programs(folder: Path, *names: str) -> list[str]:
    for name in names:
        (folder / f"{name}.pte").write_bytes(b"")
    return [str(folder / f"{name}.pte") for name in names]


def test_a_long_check_holds_up_no_other_pane(tmp_path: Path) -> None:
    """While one program is checked (for as long as the test holds it), the panes already
    loaded stream and a Cancel is routed; loads that arrive meanwhile wait their turn."""
    fast, endless, slow, third = programs(tmp_path, "fast", "endless", "slow", "third")
    with router(max_lanes=2) as app:
        events = Events(app)
        app.send(Load(fast))
        app.send(Load(endless))
        events.wait_for(lambda got: loaded("fast")(got) and loaded("endless")(got))
        app.send(Load(slow))
        app.send(Load(third))
        app.send(Load(str(tmp_path / "missing.pte")))
        app.send(Send("endless", HELLO, SETTINGS))
        app.send(Send("fast", HELLO, SETTINGS))  # streams while "slow" is checked...
        events.wait_for(ended("fast"))
        app.send(Cancel(("endless",)))  # ...and a Cancel reaches its lane
        events.wait_for(ended("endless"))
        assert not any(
            isinstance(e, Loaded | LoadFailed) and e.adapter not in ("fast", "endless")
            for e in events.got
        )
        (tmp_path / "slow.go").write_bytes(b"")  # the check of "slow" ends
        got = events.wait_for(lambda got: sum(isinstance(e, Loaded | LoadFailed) for e in got) == 5)
    # "third" and "missing" were checked only after "slow": none came before it was let go.
    outcomes = [e.adapter for e in got if isinstance(e, Loaded | LoadFailed)]
    assert sorted(outcomes[2:]) == ["missing", "slow", "third"]
    assert [type(e) for e in got if getattr(e, "adapter", "") == "missing"] == [LoadFailed]
    done = {e.adapter: e for e in got if isinstance(e, ReplyDone)}
    assert done["fast"].text == "hello" and done["endless"].end is ReplyEnd.CANCELLED
    # The seed's load (with the first check) is told once, before any lane loads: where the
    # worker's packing lies, for the memory panel.
    packed = [e for e in got if isinstance(e, FoundationPacked)]
    first_load = next(e for e in got if isinstance(e, Loaded))
    assert len(packed) == 1 and got.index(packed[0]) < got.index(first_load)
    assert packed[0].foundation == str(fake_lanes.FakeFoundation.path)


def test_a_send_right_after_a_load_waits_for_it(tmp_path: Path) -> None:
    """A script loads and sends at once: each Send waits for its adapter's check instead of
    being dropped (both replies end), and a Cancel of every reply, sent after them, reaches
    them after them."""
    slow, endless = programs(tmp_path, "slow", "endless")
    with router(max_lanes=1) as app:
        events = Events(app)
        app.send(Load(slow))
        app.send(Send("slow", HELLO, SETTINGS))
        app.send(Load(endless))
        app.send(Send("endless", HELLO, SETTINGS))
        app.send(Cancel(None))
        (tmp_path / "slow.go").write_bytes(b"")
        got = events.wait_for(lambda got: ended("slow")(got) and ended("endless")(got))
    done = {e.adapter: e for e in got if isinstance(e, ReplyDone)}
    assert done["endless"].end is ReplyEnd.CANCELLED  # the Cancel came after its Send


def test_a_step_that_never_returns_is_that_panes_error(tmp_path: Path) -> None:
    """A reply stuck in one step (native code that never returns): the watchdog stops its
    lane, the pane gets one line saying so, and the adapter in the other lane answers on."""
    stuck, fine = programs(tmp_path, "stuck", "fine")
    with router(max_lanes=2, step_limit_s=2.0) as app:
        events = Events(app)
        app.send(Load(stuck))
        app.send(Load(fine))
        events.wait_for(lambda got: loaded("stuck")(got) and loaded("fine")(got))
        app.send(Send("stuck", HELLO, SETTINGS))
        app.send(Send("fine", HELLO, SETTINGS))
        events.wait_for(lambda got: ended("stuck")(got) and ended("fine")(got))
        events.wait_for(lambda got: any(isinstance(e, LoadFailed) for e in got))
        app.send(Send("fine", HELLO, SETTINGS))  # the other lane still answers
        got = events.wait_for(ended("fine", 2))
    assert not any(isinstance(e, EngineFailed) for e in got)
    done = [e for e in got if isinstance(e, ReplyDone)]
    [stuck_done] = [e for e in done if e.adapter == "stuck"]
    assert stuck_done.end is ReplyEnd.ERROR
    assert "did not finish a step within 2 s" in stuck_done.error
    assert "\n" not in stuck_done.error
    assert [e.text for e in done if e.adapter == "fine"] == ["hello", "hello"]
    [failed] = [e for e in got if isinstance(e, LoadFailed)]
    assert failed.adapter == "stuck" and failed.path == stuck  # it is unloaded: load it again


def test_an_adapter_whose_probe_equals_the_bases_is_flagged_once(tmp_path: Path) -> None:
    """Issue 44: each load's probe goes to the router, never to the app; an adapter in any
    lane whose logits equal the base program's gets one NoEffect, loaded before the base or
    after it, and a trained one none. With the base unloaded, nothing is compared."""
    zero, base, trained, late = programs(tmp_path, "zero", "base", "trained", "zero_late")
    with router(max_lanes=2) as app:
        events = Events(app)
        app.send(Load(zero))  # before any base: nothing to compare with yet
        events.wait_for(loaded("zero"))
        app.send(Load(base))
        app.send(Load(trained))
        events.wait_for(lambda got: loaded("base")(got) and loaded("trained")(got))
        app.send(Unload("base"))
        app.send(Load(late))  # no base open any more
        got = events.wait_for(loaded("zero_late"))
    assert not any(isinstance(e, Probed) for e in got)
    flagged = [e for e in got if isinstance(e, NoEffect)]
    assert flagged == [NoEffect("zero", "base", 0.0)]
    # The base's Loaded comes first, so the pane it names is known when the warning comes.
    kinds = [(type(e).__name__, e.adapter) for e in got if isinstance(e, Loaded | NoEffect)]
    assert kinds.index(("NoEffect", "zero")) > kinds.index(("Loaded", "base"))


def departed(name: str) -> Callable[[list[EngineEvent]], bool]:
    return lambda got: any(isinstance(e, Departure) and e.adapter == name for e in got)


def test_a_reply_is_scored_in_the_bases_lane_after_it_ends(tmp_path: Path) -> None:
    """Issue 44: an adapter's whole reply goes (as tokens, never to the app) to the lane of
    the base program, which scores it; the Departure follows the reply's ReplyDone. The
    base's own replies are not scored, and with no base open nothing is. ``UseBase`` names
    another program the base."""
    base, nobel, other = programs(tmp_path, "base", "nobel", "other")
    with router(max_lanes=2) as app:
        events = Events(app)
        app.send(Load(nobel))
        events.wait_for(loaded("nobel"))
        app.send(Send("nobel", HELLO, SETTINGS))  # no base yet
        events.wait_for(ended("nobel"))
        app.send(Load(base))
        app.send(Load(other))
        events.wait_for(lambda got: loaded("base")(got) and loaded("other")(got))
        app.send(Send("base", HELLO, SETTINGS))
        app.send(Send("nobel", HELLO, SETTINGS))
        got = events.wait_for(lambda got: departed("nobel")(got) and ended("base")(got))
        assert not departed("base")(got)
        app.send(UseBase("other"))
        app.send(Send("nobel", HELLO, SETTINGS))
        got = events.wait_for(lambda got: sum(isinstance(e, Departure) for e in got) == 2)
    assert not any(isinstance(e, Replied) for e in got)
    first, second = [e for e in got if isinstance(e, Departure)]
    assert (first.adapter, first.base) == ("nobel", "base")
    assert (second.adapter, second.base) == ("nobel", "other")
    assert first.summary == "departs from base at token 2 ('lo'; base would say 'p')"
    nobel_events = [type(e) for e in got if getattr(e, "adapter", "") == "nobel"]
    assert nobel_events.index(Departure) > nobel_events.index(ReplyDone)


# --- threads: every core for a lane working alone, a share each for several -----------------


def readings(got: list[EngineEvent], name: str) -> list[str]:
    """What a ``gauge`` program's pieces said: its lane's thread count, step by step."""
    return [e.text for e in got if isinstance(e, Piece) and e.adapter == name]


def test_a_lane_answering_alone_uses_every_core_and_its_share_beside_another(
    tmp_path: Path,
) -> None:
    """Issue 45: on two cores, a lane answering alone runs on both; once a second lane
    answers too, each runs on one, the newcomer from its first step; once that one is done,
    the first has both again. Each lane reads its count between steps."""
    first, second = programs(tmp_path, "gauge_a", "gauge_b")
    with router(max_lanes=2) as app:
        events = Events(app)
        app.send(Load(first))
        app.send(Load(second))
        events.wait_for(lambda got: loaded("gauge_a")(got) and loaded("gauge_b")(got))
        app.send(Send("gauge_a", HELLO, SETTINGS))
        events.wait_for(lambda got: len(readings(got, "gauge_a")) >= 3)
        app.send(Send("gauge_b", HELLO, SETTINGS))
        events.wait_for(lambda got: len(readings(got, "gauge_b")) >= 3)
        events.wait_for(lambda got: readings(got, "gauge_a")[-1] == "1")
        alone_then_beside = readings(events.got, "gauge_a")
        app.send(Cancel(("gauge_b",)))
        events.wait_for(ended("gauge_b"))
        mark = len(readings(events.got, "gauge_a"))
        events.wait_for(lambda got: "2" in readings(got, "gauge_a")[mark:])
        app.send(Cancel(("gauge_a",)))
        got = events.wait_for(ended("gauge_a"))
    assert set(readings(got, "gauge_b")) == {"1"}  # told before its Send: never both cores
    shared_from = alone_then_beside.index("1")
    assert set(alone_then_beside[:shared_from]) == {"2"} and shared_from >= 3
    assert set(alone_then_beside[shared_from:]) == {"1"}
    assert readings(got, "gauge_a")[-1] == "2"
    assert not any(isinstance(e, Idle | UseThreads) for e in got)  # between router and lanes


class Told:
    """A lane the router talks to over a pipe, in this process: what it was told."""

    def __init__(self, router: Router, *adapters: str) -> None:
        self.ours, theirs = mp.Pipe()
        self.lane = Lane(0, theirs, router.layout.pool, {a: f"{a}.pte" for a in adapters})
        router.lanes.append(self.lane)

    def told(self) -> list[object]:
        got = []
        while self.ours.poll(0):
            got.append(self.ours.recv())
        return got


def test_the_router_shares_the_cores_among_lanes_that_answer_or_score() -> None:
    """The router's bookkeeping, lane by lane: a Send or a Score makes a lane busy until it
    says Idle after it (an Idle older than a Send told since does not count), and each
    change in how many are busy tells the busy lanes whose share changed, before the work
    that changed it. Scoring a reply is work as answering one is."""
    app, ui = mp.Pipe()
    router = Router(app, fake_lanes.FakeHost(), _lane_main, LaneLayout(2, 2, 2, True), 15.0)  # type: ignore[arg-type]
    a, b = Told(router, "nobel"), Told(router, "base")
    router.route(UseBase("base"))
    assert ui.recv() == []  # (no adapter to compare with the base yet)
    send = Send("nobel", HELLO, SETTINGS)

    router.route(send)  # alone: its pool's every thread, as a fresh pool uses already
    assert a.told() == [send] and b.told() == []
    replied = Replied("nobel", (1, 2), (3, 4), True)
    a.ours.send([ReplyDone("nobel", "hello", ReplyEnd.STOP, None), replied, Idle(1)])
    router.forward(a.lane)  # a is done; its reply goes to the base's lane to score, alone
    assert a.told() == [] and b.told() == [Score("base", replied)]
    assert [type(e) for e in ui.recv()] == [ReplyDone]  # no Idle, no Replied for the UI

    router.route(send)  # a answers again while b scores: one core each, told first
    assert a.told() == [UseThreads(1), send] and b.told() == [UseThreads(1)]
    b.ours.send([Idle(0)])  # an Idle from before its Score: still busy
    router.forward(b.lane)
    assert a.told() == [] and b.told() == []
    departure = Departure("nobel", "base", ("hel", "lo"), (-0.2, -3.0), 1, "p", False)
    b.ours.send([departure, Idle(1)])
    router.forward(b.lane)  # b has scored: a has both cores again
    assert a.told() == [UseThreads(2)] and b.told() == []
    assert [type(e) for e in ui.recv()] == [Departure]

    router.route(send)  # a was busy already: nothing changes
    assert a.told() == [send] and b.told() == []
    base_send = Send("base", HELLO, SETTINGS)
    router.route(base_send)
    # An idle lane kept its last count: b, told one when it scored, needs no telling again.
    assert a.told() == [UseThreads(1)] and b.told() == [base_send]
