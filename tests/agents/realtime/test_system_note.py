"""Coach guidance as a `system` item: never mid-response, never a response of its own."""

from __future__ import annotations

from tests.agents.realtime.test_protocol import created, done, make, opened, sent, speak, types


def note_texts(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [e["item"]["content"][0]["text"] for e in events
            if e["type"] == "conversation.item.create" and e["item"]["role"] == "system"]


def test_a_note_while_idle_is_sent_at_once_as_a_system_item_without_a_response() -> None:
    session, _, _ = opened()
    created(session, "resp_greet")
    done(session, "resp_greet")
    sent(session)
    session.system_note("Ask about the carrier.")
    events = sent(session)  # every event checked against the SDK's GA client types
    assert types(events) == ["conversation.item.create"]
    assert events[0]["item"] == {"type": "message", "role": "system",
                                 "content": [{"type": "input_text",
                                              "text": "Ask about the carrier."}]}
    assert session.counts["system_notes"] == 1


def test_a_note_during_a_response_waits_for_response_done() -> None:
    session, _, _ = opened()  # the greeting's response.create is out
    session.system_note("first")
    assert note_texts(sent(session)) == []
    created(session, "resp_greet")
    session.system_note("second")
    assert sent(session) == []
    done(session, "resp_greet")
    events = sent(session)
    assert note_texts(events) == ["first", "second"]
    assert "response.create" not in types(events)


def test_a_waiting_note_goes_before_the_deferred_response() -> None:
    session, _, _ = opened()
    created(session, "resp_greet")
    session.system_note("guidance")
    speak(session)
    session.commit()  # a caller turn while the greeting plays: its response is deferred
    sent(session)
    done(session, "resp_greet")
    kinds = [(e["type"], e.get("item", {}).get("role")) for e in sent(session)]
    assert kinds == [("conversation.item.create", "system"), ("response.create", None)]


def test_waiting_notes_are_bounded_and_blank_ones_dropped() -> None:
    session, _, _ = opened()
    created(session, "resp_greet")
    for i in range(10):
        session.system_note(f"note {i}")
    session.system_note("   ")
    done(session, "resp_greet")
    assert note_texts(sent(session)) == ["note 6", "note 7", "note 8", "note 9"]


def test_a_note_while_disconnected_is_sent_on_the_new_connection() -> None:
    session, _, _ = opened()
    created(session, "resp_greet")
    done(session, "resp_greet")
    sent(session)
    session.connection_lost()
    session.system_note("after the drop")
    assert sent(session) == []
    session.connection_made()
    assert note_texts(sent(session)) == ["after the drop"]


def test_the_conversation_history_keeps_no_notes() -> None:
    session, _, _ = make()
    session.connection_made()
    session.system_note("stale soon")
    assert all(t.text != "stale soon" for t in session.history)
