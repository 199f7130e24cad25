"""The keyless brain: fixed prompts spoken by local TTS, a DTMF menu, message taking.

It is what answers when no OpenAI key is configured, and what a call falls
back to when the AI brain fails mid-call, so it must work with nothing but the
process itself: prompts come from eSpeak NG (rendered once, cached as μ-law),
messages go to local WAV files.

`ScriptedCore` is the state machine: plain calls in (caller audio, turn end,
digit, barge-in, clock) and actions out (`Speak`, `StopSpeaking`,
`SaveMessage`, `EndCall`, `Transfer`). `ScriptedBrain` is the thin asyncio
shell that implements the `Brain` seam: one task speaks queued prompts in
200 ms chunks (so the call's playout bounds see what a streaming brain would
send), and message files are written in a worker thread.

Menu actions (`[scripted] menu`, digit → action):
  "message"          prompt, tone, record until '#' or `max_message_s`, save, goodbye
  "repeat"           say the last prompt again
  "hangup"           end the call
  "transfer:NUMBER"  hand the caller to NUMBER
A digit not in the menu, or mapped to an unknown action, is answered with
`reply`, which is where the menu is explained to the caller.

Hearing (`[scripted] stt`, agents/stt): the shell keeps the caller audio since
the last turn (at most `stt_max_turn_s`); at the end of a turn the core asks for
it to be recognised (`Recognize`), off the event loop in the shared recognizer
pool. The text goes out as the caller's transcript first — so the call's
observers (triage and the safety line, capture answers, the dialer's phone-tree
navigator and do-not-call, the outcome) run as on a realtime call — then the core
answers it (`heard`): the sales script's next line when the call has one, else
the business's next capture question, else its end-call message once they are
all asked, else `reply`. A turn not recognised (failure, timeout, pool busy,
nothing said) is answered as if unheard, exactly as with `stt = "off"`.

On an outbound dialer call (a `DialKey` parameter) the brain starts in phone-tree
mode: it says nothing while the dialer's navigator (telephony/dialer/observer.py,
fed by the same transcripts) listens to the menu and presses keys, and greets
only when a turn sounds like a person ("front desk, this is Sarah", "hello?").
Without recognition it cannot tell, so it greets at once as before.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import os
import re
import time
import wave
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents import memory
from agents.brain import Brain, BrainOutput, CallContext
from agents.business.flow import CallFlow
from agents.business.registry import greeting as business_greeting
from agents.business.settings import BusinessSettings
from agents.compliance.consent import classify_consent
from agents.nlu.ivr import is_live_person, normalise, parse_menu
from agents.settings import ScriptedSettings
from agents.stt import Recognizer, available, shared_pool
from agents.tts import synthesize_ulaw_async
from media.codecs import ulaw

log = logging.getLogger(__name__)

# Agent audio is handed to the call in chunks of this length.
CHUNK_MS = 200
CHUNK_BYTES = ulaw.SAMPLE_RATE * CHUNK_MS // 1000
# Responses queued but not yet spoken; more means the caller is mashing keys.
MAX_PENDING_SPEECH = 8
# How many items' heard-lengths are remembered (for tests and logs).
MAX_HEARD_ITEMS = 32
# Said when a message could not be written (no setting: it should never happen).
SAVE_FAILED_TEXT = "Sorry, your message could not be saved. Please call again later."


def _beep() -> bytes:
    """The 'tone' after the message prompt: 150 ms pause, 400 ms of 1 kHz, faded."""
    rate = ulaw.SAMPLE_RATE
    t = np.arange(int(rate * 0.4)) / rate
    wave_ = 0.25 * np.sin(2 * np.pi * 1000.0 * t)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    pcm = (wave_ * fade * 32767).astype("<i2").tobytes()
    return ulaw.SILENT_FRAME * 7 + ulaw.encode(pcm) + ulaw.SILENT_FRAME


MESSAGE_TONE = _beep()


class State(enum.Enum):
    GREETING = "greeting"
    LISTENING = "listening"
    REPLYING = "replying"
    MESSAGE_PROMPT = "message_prompt"  # prompt playing, not yet recording
    RECORDING_MESSAGE = "recording_message"
    SAVING = "saving"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Speak:
    item_id: str
    text: str
    # Follow the words with the message tone.
    tone: bool = False


@dataclass(frozen=True, slots=True)
class StopSpeaking:
    """Produce no more audio for `item_id`, or for anything queued when None."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SaveMessage:
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class EndCall:
    reason: str


@dataclass(frozen=True, slots=True)
class Transfer:
    number: str


@dataclass(frozen=True, slots=True)
class Recognize:
    """Recognise the caller's turn that just ended, then call `heard` with the text."""


Action = Speak | StopSpeaking | SaveMessage | EndCall | Transfer | Recognize
_NOTHING: tuple[Action, ...] = ()
_TALKING = (State.GREETING, State.LISTENING, State.REPLYING)
_ITEM_RE = re.compile(r"scripted-([0-9]{1,9})")


class ScriptedCore:
    """The keyless brain's decisions, without I/O; `now` is the only clock."""

    def __init__(
        self,
        settings: ScriptedSettings,
        *,
        fallback: bool = False,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.fallback = fallback
        self.state = State.GREETING
        self.heard_ms: dict[str, int] = {}
        self._now = now
        self._items = 0
        self._last_text: str | None = None
        self._prompt_item: str | None = None
        # When the prompt (and tone) will have played out and recording starts.
        self._record_at: float | None = None
        self._message = bytearray()
        self._max_message = max(0, settings.max_message_s) * ulaw.SAMPLE_RATE
        self.business: BusinessSettings | None = None
        self.flow: CallFlow | None = None
        # A recognizer turns caller turns into text (`Recognize` → `heard`).
        self.hears = False
        # The sales script's follower (opening, caller_turn, done) when the call has one.
        self.sales: Any = None
        # Outbound call still in a phone tree: say nothing until a person answers.
        self.phone_tree = False
        # A dialer call: its observer says goodbye and hangs up on "don't call us again".
        self.dialed = False
        self._caller_name: str | None = None
        self._last_issue = ""

    @property
    def message_bytes(self) -> int:
        return len(self._message)

    def _speak(self, text: str, tone: bool = False) -> Speak:
        self._items += 1
        if not tone:
            self._last_text = text
        return Speak(f"scripted-{self._items}", text, tone)

    def _known(self, item_id: str) -> bool:
        match = _ITEM_RE.fullmatch(item_id)
        return match is not None and 0 < int(match.group(1)) <= self._items

    # -- events ------------------------------------------------------------

    def begin(self, caller_name: str | None = None,
              business: BusinessSettings | None = None,
              flow: CallFlow | None = None, *, sales: Any = None,
              phone_tree: bool = False, last_issue: str = "") -> tuple[Action, ...]:
        """The call is connected: the first thing the caller hears.

        `caller_name` and `last_issue` are caller memory as `CallContext` carries it
        (`agents.memory` decides the greeting); a call for a business greets with that business's
        words. A fallback brain apologises instead: the caller has been greeted
        already, by the brain that failed.
        """
        self.business = business
        self.flow = flow
        self.sales = sales
        self._caller_name = caller_name
        self._last_issue = last_issue
        self.dialed = phone_tree
        if phone_tree and self.hears and not self.fallback:
            # Quiet until a person answers (`heard`): talking over a menu loses it.
            self.phone_tree = True
            self.state = State.LISTENING
            return _NOTHING
        self.state = State.GREETING
        return (self._speak(self._opening()),)

    def _opening(self) -> str:
        s = self.settings
        business = self.business
        caller_name = self._caller_name
        sales = self.sales
        if self.fallback:
            text = s.apology
        elif sales is not None:
            try:
                text = str(sales.opening() or "") or s.greeting
            except Exception:
                log.exception("sales opening failed; greeting instead")
                text = s.greeting
        elif business is not None:
            text = business_greeting(business, memory.recall(caller_name, self._last_issue),
                                     s.greeting)
        else:
            text = memory.greeting(memory.recall(caller_name, self._last_issue), s.greeting,
                                   s.ask_name)
        return text

    def audio(self, ulaw_audio: bytes) -> tuple[Action, ...]:
        """Caller audio (every frame of the call): kept only while taking a message."""
        state = self.state
        if state is State.RECORDING_MESSAGE:
            return self._record(ulaw_audio)
        if state is State.MESSAGE_PROMPT:
            at = self._record_at
            if at is not None and self._now() >= at:
                self.state = State.RECORDING_MESSAGE
                return self._record(ulaw_audio)
        return _NOTHING

    def turn_ended(self) -> tuple[Action, ...]:
        """The caller finished a turn. While a message is taken, '#' ends it, not silence."""
        if self.state not in _TALKING:
            return _NOTHING
        if self.hears:
            return (Recognize(),)
        if self.phone_tree:
            return _NOTHING
        self.state = State.REPLYING
        question = self.flow.next_question() if self.flow is not None else None
        return (self._speak(question.text if question is not None else self.settings.reply),)

    def heard(self, text: str | None) -> tuple[Action, ...]:
        """The turn `Recognize` asked for, as text (None: not recognised).

        The shell has already emitted it as the caller's transcript, so the flow has
        taken it as the answer to the pending question (and the safety line, if it
        called for one, is queued ahead of what this returns).
        """
        if self.state not in _TALKING:
            return _NOTHING
        text = " ".join(text.split()) if text else ""
        if self.phone_tree:
            if not text or not sounds_like_person(text):
                return _NOTHING
            self.phone_tree = False
            self.state = State.GREETING
            return (StopSpeaking(), self._speak(self._opening()))
        if self.dialed and text and classify_consent(text) == "opt_out":
            # The dialer records the do-not-call, says its goodbye and hangs up; a line
            # of ours now would only talk over it.
            self.state = State.LISTENING
            return _NOTHING
        s = self.settings
        sales = self.sales
        if sales is not None and text:
            try:
                line = sales.caller_turn(text)
                done = bool(sales.done)
            except Exception:
                log.exception("sales follower failed on a caller turn")
                line, done = None, False
            actions: list[Action] = []
            if line:
                self.state = State.REPLYING
                actions.append(self._speak(str(line)))
            if done:
                self.state = State.DONE
                actions.append(EndCall("sales script done"))
            return tuple(actions)
        flow = self.flow
        if flow is not None:
            question = flow.next_question()
            self.state = State.REPLYING
            if question is not None:
                return (self._speak(question.text),)
            if flow.asked and text:
                # Every capture question asked and this turn answered the last one.
                self.state = State.DONE
                return (self._speak(flow.business.end_call_message),
                        EndCall("capture questions answered"))
        self.state = State.REPLYING
        return (self._speak(s.reply),)

    def safety(self, line: str) -> tuple[Action, ...]:
        """Life is at risk: stop whatever is said or taken and say `line` now.

        A message being recorded is saved as it is (nothing said is lost), but the
        caller's safety comes before the rest of their voicemail.
        """
        if self.state is State.DONE or not line.strip():
            return _NOTHING
        actions: list[Action] = []
        if self.state is State.RECORDING_MESSAGE and self._message:
            actions.append(SaveMessage(bytes(self._message)))
        self._message.clear()
        self.state = State.REPLYING
        actions += (StopSpeaking(), self._speak(line))
        return tuple(actions)

    def digit(self, digit: str) -> tuple[Action, ...]:
        state = self.state
        if state in (State.MESSAGE_PROMPT, State.RECORDING_MESSAGE):
            return self._finish_message() if digit == "#" else _NOTHING
        if state not in _TALKING:
            return _NOTHING
        s = self.settings
        action = s.menu.get(digit, "")
        stop = StopSpeaking()
        if action == "message":
            self.state = State.MESSAGE_PROMPT
            self._record_at = None
            self._message.clear()
            speak = self._speak(s.message_prompt, tone=True)
            self._prompt_item = speak.item_id
            return (stop, speak)
        if action == "repeat":
            self.state = State.REPLYING
            return (stop, self._speak(self._last_text or s.greeting))
        if action == "hangup":
            self.state = State.DONE
            return (stop, EndCall("caller chose hang up"))
        if action.startswith("transfer:") and action[9:].strip():
            self.state = State.DONE
            return (stop, Transfer(action[9:].strip()))
        self.state = State.REPLYING
        return (stop, self._speak(s.reply))

    def produced(self, item_id: str, duration_ms: int) -> None:
        """The shell handed all of `item_id`'s audio (`duration_ms` long) to the call."""
        if item_id == self._prompt_item and self.state is State.MESSAGE_PROMPT:
            if self._record_at is None:
                self._record_at = self._now() + duration_ms / 1000
        elif self.state in (State.GREETING, State.REPLYING) and item_id == self._latest():
            self.state = State.LISTENING

    def interrupted(
        self, item_id: str | None = None, heard_ms: int | None = None
    ) -> tuple[Action, ...]:
        """Barge-in: `cancel` (item None: whatever is playing) or `truncate`."""
        if item_id is not None:
            if not self._known(item_id):
                return _NOTHING
            if heard_ms is not None:
                self._remember_heard(item_id, max(0, heard_ms))
        target = item_id or self._latest()
        if self.state is State.MESSAGE_PROMPT and target == self._prompt_item:
            # The caller talks over the prompt: that is the message starting.
            self.state = State.RECORDING_MESSAGE
        elif self.state in (State.GREETING, State.REPLYING) and target == self._latest():
            self.state = State.LISTENING
        return (StopSpeaking(item_id),)

    def saved(self, ok: bool) -> tuple[Action, ...]:
        """The message file was written (or could not be)."""
        if self.state is not State.SAVING:
            return _NOTHING
        self.state = State.DONE
        if ok:
            return (self._speak(self.settings.message_saved), EndCall("message saved"))
        return (self._speak(SAVE_FAILED_TEXT), EndCall("message not saved"))

    def close(self) -> SaveMessage | None:
        """The call is over: a message being recorded is kept, not dropped."""
        keep = self.state is State.RECORDING_MESSAGE and len(self._message) > 0
        self.state = State.DONE
        if not keep:
            return None
        audio = bytes(self._message)
        self._message.clear()
        return SaveMessage(audio)

    # -- internals ---------------------------------------------------------

    def _latest(self) -> str:
        return f"scripted-{self._items}"

    def _remember_heard(self, item_id: str, ms: int) -> None:
        heard = self.heard_ms
        heard.pop(item_id, None)
        heard[item_id] = ms
        if len(heard) > MAX_HEARD_ITEMS:
            del heard[next(iter(heard))]

    def _record(self, ulaw_audio: bytes) -> tuple[Action, ...]:
        message = self._message
        room = self._max_message - len(message)
        if len(ulaw_audio) < room:
            message += ulaw_audio
            return _NOTHING
        message += ulaw_audio[:room]
        return self._finish_message()

    def _finish_message(self) -> tuple[Action, ...]:
        if not self._message:
            # '#' before a word was said: nothing to save, back to the menu.
            self.state = State.REPLYING
            return (StopSpeaking(), self._speak(self.settings.reply))
        self.state = State.SAVING
        audio = bytes(self._message)
        self._message.clear()
        return (SaveMessage(audio),)


_PERSON_OPENERS = frozenset({"hello", "hi", "hey", "yes", "yeah", "speaking", "hola"})


def sounds_like_person(text: str) -> bool:
    """A turn heard in a phone tree that means a person picked up, not a recording:
    the IVR rules' live-person test, or a bare "hello?" / "yes?" with no menu in it."""
    if is_live_person(text):
        return True
    words = normalise(text).replace(".", " ").split()
    return (bool(words) and len(words) <= 4 and words[0] in _PERSON_OPENERS
            and not parse_menu(text).keyed)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def write_message(directory: str, call_sid: str, ulaw_audio: bytes) -> str:
    """Save a message as `{call_sid}-{n}.wav` (PCM16 8 kHz mono); returns the path.

    Blocking (run it in a thread). `n` is the first free number: an existing
    message is never overwritten. The call sid is reduced to [A-Za-z0-9_-] so
    it cannot name a path outside `directory`.
    """
    os.makedirs(directory, exist_ok=True)
    stem = _UNSAFE.sub("_", call_sid)[:64] or "call"
    pcm = ulaw.decode(ulaw_audio)
    n = 1
    while True:
        path = os.path.join(directory, f"{stem}-{n}.wav")
        try:
            f = open(path, "xb")  # closed by the with below
        except FileExistsError:
            n += 1
            continue
        try:
            with f, wave.open(f, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(ulaw.SAMPLE_RATE)
                wav.writeframes(pcm)
        except BaseException:
            os.unlink(path)
            raise
        return path


def greeting_asking_name(settings: ScriptedSettings) -> str:
    """What a new caller hears first (rendered at start-up with the other prompts)."""
    return memory.greeting_asking_name(settings.greeting, settings.ask_name)


async def prerender(settings: ScriptedSettings) -> None:
    """Render every fixed prompt once at start-up so no call waits on eSpeak.

    A bad voice raises `TtsError` here, at start-up, rather than in a call.
    """
    texts = (
        settings.greeting,
        settings.reply,
        settings.message_prompt,
        settings.message_saved,
        settings.apology,
        SAVE_FAILED_TEXT,
        greeting_asking_name(settings) if settings.ask_name.strip() else "",
    )
    for text in dict.fromkeys(texts):
        if text.strip():
            await synthesize_ulaw_async(text, settings.voice, settings.rate)
    _warm_recognizer(settings)


_warming: set[asyncio.Task[None]] = set()


def _warm_recognizer(settings: ScriptedSettings) -> None:
    """Start the recognizer's workers (spawn, LM, decoder: ~1 s) in the background, so the
    first caller turn is not the one that waits; a failure here is only logged."""
    recognizer = default_recognizer(settings)
    warm_up = getattr(recognizer, "warm_up", None)
    if warm_up is None or _warming:
        return

    async def warm() -> None:
        try:
            await warm_up()
        except Exception:
            log.exception("speech recognizer warm-up failed; turns will try again")

    task = asyncio.ensure_future(warm())
    _warming.add(task)


def default_recognizer(settings: ScriptedSettings) -> Recognizer | None:
    """The process's shared pocketsphinx pool, or None (`stt = "off"`, or not installed)."""
    if settings.stt != "pocketsphinx":
        return None
    if not available():
        _warn_no_stt()
        return None
    return shared_pool(settings.stt_workers)


@functools.cache
def _warn_no_stt() -> None:
    log.warning("[scripted] stt = pocketsphinx but the package does not import; "
                "the keyless brain hears only keys")


class ScriptedBrain(Brain):
    """`[brain] kind = "scripted"`, and the fallback when the AI brain fails."""

    kind = "scripted"

    def __init__(
        self,
        settings: ScriptedSettings,
        *,
        fallback: bool = False,
        now: Callable[[], float] = time.monotonic,
        recognizer: Recognizer | None = None,
    ) -> None:
        self.settings = settings
        self.core = ScriptedCore(settings, fallback=fallback, now=now)
        if recognizer is None:
            recognizer = default_recognizer(settings)
        self.recognizer = recognizer
        self.core.hears = recognizer is not None
        self.message_paths: list[str] = []
        # Failures caught (TTS, output, disk, recognition); the call goes on without them.
        self.errors = 0
        self.stt_failures = 0
        self.dropped_speech = 0
        # Caller audio since the last turn ended (bounded: the last `stt_max_turn_s`).
        self._turn: deque[bytes] = deque()
        self._turn_bytes = 0
        self._max_turn_bytes = int(settings.stt_max_turn_s * ulaw.SAMPLE_RATE)
        self._hearing: set[asyncio.Task[None]] = set()
        self._hear_lock = asyncio.Lock()
        self._context: CallContext | None = None
        self._output: BrainOutput | None = None
        self._queue: asyncio.Queue[Speak | EndCall | Transfer] = asyncio.Queue()
        # Speech queued or being produced, and those told to stop.
        self._pending: set[str] = set()
        self._stopped: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        self._saves: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def state(self) -> State:
        return self.core.state

    @property
    def heard_ms(self) -> dict[str, int]:
        """item id → ms of it the caller heard, from `truncate`."""
        return self.core.heard_ms

    # -- Brain ---------------------------------------------------------------

    async def start(self, context: CallContext, output: BrainOutput) -> None:
        if self._runner is not None or self._closed:
            raise RuntimeError("a ScriptedBrain is started once")
        self._context = context
        self._output = output
        self._runner = asyncio.create_task(self._run(), name=f"scripted-brain-{context.call_sid}")
        phone_tree = context.direction == "outbound" and bool(context.parameters.get("DialKey"))
        self._apply(self.core.begin(context.caller_name, context.business, context.flow,
                                    sales=getattr(context, "sales", None),
                                    phone_tree=phone_tree, last_issue=context.last_issue))

    def push_audio(self, ulaw_audio: bytes) -> None:
        core = self.core
        if core.hears and core.state in _TALKING:
            # Hot path: one append, and a pop only once the turn is at its bound.
            turn = self._turn
            turn.append(ulaw_audio)
            self._turn_bytes += len(ulaw_audio)
            while self._turn_bytes > self._max_turn_bytes and len(turn) > 1:
                self._turn_bytes -= len(turn.popleft())
            return
        actions = core.audio(ulaw_audio)
        if actions:
            self._apply(actions)

    def commit(self) -> None:
        self._apply(self.core.turn_ended())

    def cancel(self) -> None:
        self._apply(self.core.interrupted())

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self._apply(self.core.interrupted(item_id, audio_end_ms))

    def dtmf(self, digit: str) -> None:
        self._apply(self.core.digit(digit))

    def safety_first(self, line: str) -> None:
        self._apply(self.core.safety(line))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._hearing):
            task.cancel()
        leftover = self.core.close()
        if leftover is not None:
            self._start_save(leftover.ulaw)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        # Saves are never cancelled: the file is what the caller said.
        while self._saves:
            await asyncio.gather(*self._saves, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Until every queued prompt is produced and every save done (tests, shutdown)."""
        while True:
            if self._saves or self._hearing:
                await asyncio.gather(*self._saves, *self._hearing, return_exceptions=True)
                continue
            runner = self._runner
            if runner is None or runner.done():
                return
            joined = asyncio.ensure_future(self._queue.join())
            await asyncio.wait((joined, runner), return_when=asyncio.FIRST_COMPLETED)
            joined.cancel()
            if not self._saves and not self._hearing:
                return

    # -- shell -----------------------------------------------------------------

    def _apply(self, actions: Sequence[Action]) -> None:
        if self._closed:
            return
        for action in actions:
            if isinstance(action, Speak):
                if self._queue.qsize() >= MAX_PENDING_SPEECH:
                    self.dropped_speech += 1
                    continue
                self._pending.add(action.item_id)
                self._queue.put_nowait(action)
            elif isinstance(action, StopSpeaking):
                if action.item_id is None:
                    self._stopped |= self._pending
                elif action.item_id in self._pending:
                    self._stopped.add(action.item_id)
            elif isinstance(action, SaveMessage):
                self._start_save(action.ulaw)
            elif isinstance(action, Recognize):
                self._start_hearing()
            else:
                self._queue.put_nowait(action)

    def _start_hearing(self) -> None:
        audio = b"".join(self._turn)
        self._turn.clear()
        self._turn_bytes = 0
        task = asyncio.create_task(self._hear(audio))
        self._hearing.add(task)
        task.add_done_callback(self._hearing.discard)

    async def _hear(self, audio: bytes) -> None:
        """Recognise one turn, emit it, answer it; turns of one call in order."""
        async with self._hear_lock:
            text: str | None = None
            sid = self._context.call_sid if self._context else "call"
            recognizer = self.recognizer
            if audio and recognizer is not None:
                try:
                    heard = await asyncio.wait_for(recognizer.recognize(audio),
                                                   self.settings.stt_timeout_s)
                    text = heard.text.strip() or None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stt_failures += 1
                    log.warning("caller turn not recognised; answering as unheard",
                                extra={"call_sid": sid, "error": repr(exc)})
                else:
                    log.info("caller turn recognised", extra={
                        "call_sid": sid, "confidence": round(heard.confidence, 3),
                        "audio_s": round(heard.audio_s, 2), "cpu_s": round(heard.cpu_s, 3)})
            if self._closed:
                return
            if text is not None:
                try:
                    self._out().transcript("caller", text)
                except Exception:
                    self.errors += 1
                    log.exception("caller transcript observers failed", extra={"call_sid": sid})
            self._apply(self.core.heard(text))

    def _start_save(self, audio: bytes) -> None:
        task = asyncio.create_task(self._save(audio))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _save(self, audio: bytes) -> None:
        sid = self._context.call_sid if self._context else "call"
        try:
            path = await asyncio.to_thread(
                write_message, self.settings.messages_directory, sid, audio
            )
        except Exception:
            self.errors += 1
            log.exception("could not save a message of call %s", sid)
            ok = False
        else:
            self.message_paths.append(path)
            log.info("message saved", extra={"call_sid": sid, "path": path})
            ok = True
        self._apply(self.core.saved(ok))

    async def _run(self) -> None:
        queue = self._queue
        while True:
            action = await queue.get()
            try:
                if isinstance(action, Speak):
                    await self._say(action)
                elif isinstance(action, EndCall):
                    self._out().end_call(action.reason)
                else:
                    self._out().transfer_call(action.number)
            except Exception:
                self.errors += 1
                log.exception("scripted brain failed to carry out %r", action)
            finally:
                queue.task_done()

    def _out(self) -> BrainOutput:
        assert self._output is not None
        return self._output

    async def _say(self, action: Speak) -> None:
        item = action.item_id
        stopped = self._stopped
        out = self._out()
        sent = 0
        try:
            if item in stopped:
                return
            s = self.settings
            audio = (
                await synthesize_ulaw_async(action.text, s.voice, s.rate)
                if action.text.strip()
                else b""
            )
            if action.tone:
                audio += MESSAGE_TONE
            if item in stopped:
                return
            if action.text.strip():
                out.transcript("agent", action.text, item)
            for offset in range(0, len(audio), CHUNK_BYTES):
                if offset:
                    # Let barge-in (cancel/truncate from the media tick) land.
                    await asyncio.sleep(0)
                    if item in stopped:
                        break
                chunk = audio[offset : offset + CHUNK_BYTES]
                out.agent_audio(item, chunk)
                sent += len(chunk)
            out.agent_audio_done(item)
        finally:
            self._pending.discard(item)
            stopped.discard(item)
            self.core.produced(item, sent * 1000 // ulaw.SAMPLE_RATE)
