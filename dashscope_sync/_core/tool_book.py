"""Which function calls of a reply the library answers: the tool book, pure.

Fed every function-call event by `SessionState.receive`, under the session's
lock, once the program registered a tool (`RealtimeSession.tool`). When a
reply ends (``response.done``, status ``completed``) it says which calls
are due: the ``function_call`` items of the reply's output, else the
``response.function_call_arguments.done`` events seen for it (a server that
leaves the items out of ``response.done``). A cancelled or failed reply's
calls are not due: the model did not finish asking.

It also holds, until the calls have run, the `ResponseTrack` of each reply
that made them, so that its handle's ``wait()`` returns only then, with
the `ToolCall` records (`SessionState.tools_ran`); and what decides whether
their outputs get a next reply (`SessionState.plan_tool_answers`): the
reply's place in its turn's tool loop (at most `MAX_TOOL_ROUNDS` replies
that call tools, then the outputs go with no next reply), and whether
``interrupt()`` came while they ran (then their answer must not play).
Replies whose answer nobody hears (`silenced`) make no calls that are due.

A reply that calls a registered tool and one the program declared by hand
(`owns` says which are the library's) is booked until the library's outputs
go: under server VAD the server answers each output, and only the answer to
the output that completes the reply's calls saw them all. The program's
outputs that go first get a silenced answer (`program_output`); the
library's outputs then complete the set, and the answer to the last one is
heard, taken by whoever follows the server's next answer (the program's
``respond()``). When the library's outputs go first, the program's complete
it: the library's answers are silenced, the program's is heard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

import attrs

from .._wire.events import ResponseDone, ResponseFunctionCallArgumentsDone, ServerEvent

if TYPE_CHECKING:
    from .state import ResponseTrack

__all__ = ["MAX_TOOL_ROUNDS", "DueCall", "ToolAnswers", "ToolBook"]

#: How many replies of one turn may call registered tools: the outputs of the
#: last go back, but no reply is asked for (or heard) after them, so a model
#: stuck calling tools stops spending tokens and running functions.
MAX_TOOL_ROUNDS: Final = 8

#: How many replies' argument events are kept while their response.done is
#: awaited (a reply whose end was lost must not keep them forever).
_SEEN_KEPT: Final = 16


@attrs.frozen
class DueCall:
    """One function call of a finished reply that the library must answer.

    Attributes:
        name: The function the model called.
        call_id: The id the output must answer.
        arguments: The arguments as the model wrote them (JSON text).
        response_id: The reply that made the call.
    """

    name: str
    call_id: str
    arguments: str
    response_id: str


class ToolAnswers:
    """How the outputs of one reply's calls are answered (`SessionState.plan_tool_answers`).

    Attributes:
        answers: Per output, in order, the track that takes the server's own
            answer to it (server VAD with automatic responses: one answer per
            output); None in manual mode.
        follow_up: The answer the turn goes on with (the last output's,
            under server VAD), else None.
        create: Send ``response.create`` (manual mode) for the next reply.
        round: The replies of the turn that called tools, this one included.
        stopped: Why no next reply is wanted: ``"limit"`` (`MAX_TOOL_ROUNDS`),
            ``"interrupted"``, or None.
    """

    __slots__ = ("answers", "create", "follow_up", "round", "stopped")

    def __init__(self, round: int) -> None:
        self.answers: list[ResponseTrack | None] = []
        self.follow_up: ResponseTrack | None = None
        self.create = False
        self.round = round
        self.stopped: str | None = None


class ToolBook:
    """See the module docstring. Not thread-safe: the session's lock serialises it."""

    __slots__ = (
        "_early",
        "_last_answer",
        "_seen",
        "_theirs",
        "answering",
        "cut",
        "owns",
        "rounds",
        "silenced",
        "waiting",
    )

    def __init__(self, owns: Callable[[str], bool] = lambda name: True) -> None:
        #: Is a call of this name the library's (a registered tool)? Read
        #: under the session's lock, of a registry the program may add to.
        self.owns = owns
        # A reply calling both registered and hand-declared tools -> the call
        # ids of the program's calls it has not answered yet, until the
        # library's outputs go (`plan`): see the module docstring.
        self._theirs: dict[str, set[str]] = {}
        # Those of them whose program's outputs went first (their answers
        # silenced): the answer heard is still due, to the library's outputs.
        self._early: set[str] = set()
        # Reply id -> its calls from the arguments' done events, in arrival order.
        self._seen: dict[str, dict[str, DueCall]] = {}
        #: Reply id -> the track of the reply whose calls are running (None:
        #: nobody follows it), until `SessionState.tools_ran`.
        self.waiting: dict[str, ResponseTrack | None] = {}
        #: Reply id -> its place in its turn's tool loop (1 for the first reply
        #: that calls tools), while its calls run.
        self.rounds: dict[str, int] = {}
        #: Replies whose calls were running when ``interrupt()`` came: their
        #: outputs go, but no answer to them may play.
        self.cut: set[str] = set()
        #: The answers the tool worker planned (`ToolAnswers.answers`), kept
        #: until they start, so that ``interrupt()`` can silence them.
        self.answering: list[ResponseTrack] = []
        # The last answer of the latest plan, when every call of its reply was
        # the library's: the one answer a cut may cancel (see `cut_turns`).
        self._last_answer: ResponseTrack | None = None
        #: Running replies nobody hears (an answer superseded or not wanted):
        #: their calls are not due, until their ``response.done``.
        self.silenced: set[str] = set()

    def plan(
        self,
        response_id: str,
        outputs: int,
        ask_next: bool,
        auto: bool,
        new_track: Callable[[], ResponseTrack],
    ) -> ToolAnswers:
        """How the tool worker answers the ``outputs`` outputs of a reply's calls.

        The turn goes on (``ask_next``: every call was the library's) unless
        the reply was the `MAX_TOOL_ROUNDS`-th of its turn to call tools, or
        ``interrupt()`` came while they ran. In manual mode it goes on with a
        ``response.create``. Under server VAD with automatic responses
        (``auto``) the server answers each output by itself, each answer a
        ``new_track()``: the answers before the last saw only some of the
        outputs, so they are silenced (never heard, never followed, their
        calls not run; not cancelled, as ``response.cancel`` names no
        response and one that arrived after its reply ended would cancel the
        next, the answer that saw every output). The last is followed, or,
        when the turn must not go on, silenced, and cancelled as it starts
        (not when the program still owes outputs of its own: their answer
        comes next, and a late cancel would hit it). When the program's own
        outputs of the reply all went first, the library's last output
        completes the reply's calls: its answer is left to whoever follows
        the server's next answer (``None`` in ``answers``), to be heard.
        """
        round = self.rounds.pop(response_id, 1)
        plan = ToolAnswers(round)
        theirs = self._theirs.pop(response_id, None)
        self._early.discard(response_id)
        # The program answered every call of its own first: the answer to the
        # library's last output saw every output, so it is the one heard (the
        # program follows it: not this plan's).
        completes = not ask_next and theirs is not None and not theirs
        if response_id in self.cut:
            plan.stopped = "interrupted"
        elif round >= MAX_TOOL_ROUNDS:
            plan.stopped = "limit"
        go_on = (ask_next or completes) and plan.stopped is None
        if not auto:
            go_on = ask_next and plan.stopped is None
            plan.answers = [None] * outputs
            plan.create = go_on and outputs > 0
            return plan
        for index in range(outputs):
            if index == outputs - 1 and go_on and completes:
                plan.answers.append(None)  # for the program's follower (`SessionState`)
                break
            track = new_track()
            track.tool_round = round
            if index < outputs - 1 or not go_on:
                track.silent = True
                track.cancel_wanted = index == outputs - 1 and plan.stopped is not None
            else:
                plan.follow_up = track
            plan.answers.append(track)
        unstarted = [t for t in self.answering if t.id is None and not t.finished]
        self.answering = [*unstarted, *(t for t in plan.answers if t is not None)]
        self._last_answer = plan.answers[-1] if ask_next and plan.answers else None
        return plan

    def program_output(self, call_id: str) -> bool:
        """The program sends the output of its call ``call_id`` (server VAD):
        True when its answer must be silenced, as the library's outputs of
        the same reply still go after it (see the module docstring)."""
        for response_id, calls in self._theirs.items():
            if call_id in calls:
                calls.discard(call_id)
                self._early.add(response_id)
                return True
        return False

    @property
    def answer_owed(self) -> bool:
        """Did the program's output go before the library's, whose answer it will hear?"""
        return bool(self._early)

    def forget(self, response_id: str) -> None:
        """The reply's calls were answered, or will never be: book it no longer."""
        self._theirs.pop(response_id, None)
        self._early.discard(response_id)

    def cut_turns(self, requested: Iterable[ResponseTrack], cancel: bool) -> None:
        """``interrupt()`` came: no answer to the outputs of tools running now may play.

        The tools cannot be stopped, and their outputs still go (the history
        stays whole), but no reply is asked for after them; an answer asked
        for already (``requested``: the tracks of the ``response.create``
        requests waiting) or planned, not started yet, is silenced (and, with
        ``cancel``, cancelled as it starts). Of the planned answers only the
        last of the latest plan is cancelled, and only when every call of its
        reply was the library's, as `plan` decides: ``response.cancel`` names
        no response, so a cancel sent as an earlier answer starts could land
        after it ended and cancel the next reply, the program's own answer to
        its calls included.
        """
        self.cut.update(self.waiting)
        for track in requested:
            if track.id is None and track.tool_round and not track.silent:
                track.silent = True
                track.cancel_wanted = track.cancel_wanted or cancel
        for track in self.answering:
            if track.id is None and track.tool_round and not track.silent:
                track.silent = True
                if track is self._last_answer:
                    track.cancel_wanted = track.cancel_wanted or cancel

    def receive(self, event: ServerEvent) -> tuple[DueCall, ...]:
        """Take a function-call event or a ``response.done``; the calls now due, if any."""
        if type(event) is ResponseFunctionCallArgumentsDone:
            assert isinstance(event, ResponseFunctionCallArgumentsDone)
            calls = self._seen.setdefault(event.response_id, {})
            calls[event.call_id] = DueCall(
                event.name, event.call_id, event.arguments, event.response_id
            )
            while len(self._seen) > _SEEN_KEPT:
                del self._seen[next(iter(self._seen))]
            return ()
        if type(event) is not ResponseDone:
            return ()
        assert isinstance(event, ResponseDone)
        info = event.response
        seen = self._seen.pop(info.id, {})
        if info.id in self.silenced:
            self.silenced.discard(info.id)
            return ()  # nobody hears this reply: the loop does not go on from it
        if (info.status or "completed") != "completed":
            return ()
        items = [item for item in info.output if item.type == "function_call"]
        if not items:
            return tuple(seen.values())
        owns = self.owns
        theirs = {item.call_id or "" for item in items if not owns(item.name or "")}
        if theirs and len(theirs) < len(items):
            self._theirs[info.id] = theirs
            while len(self._theirs) > _SEEN_KEPT:
                self.forget(next(iter(self._theirs)))
        due = []
        for item in items:
            earlier = seen.get(item.call_id or "")
            name = item.name or (earlier.name if earlier else "")
            arguments = item.arguments
            if arguments is None:
                arguments = earlier.arguments if earlier else ""
            due.append(DueCall(name, item.call_id or "", arguments, info.id))
        return tuple(due)
