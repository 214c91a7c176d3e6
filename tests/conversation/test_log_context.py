"""The log context: set per turn, updated in place, and left as it was found, even from another context."""

from __future__ import annotations

import contextvars

from sessionforce._logging import enter_log_context, log_context, restore_log_context, update_log_context


def test_a_block_leaves_the_context_as_it_found_it() -> None:
    def run() -> None:
        before = contextvars.copy_context()
        token = enter_log_context(conversationId="c1")
        update_log_context(sessionId="s1")
        assert log_context()["conversationId"] == "c1"
        assert log_context()["sessionId"] == "s1"
        restore_log_context(token)
        assert log_context()["conversationId"] is None
        # Reset, not set back: the context holds no value of ours any more (nothing for a long-lived task
        # to keep alive).
        assert len(contextvars.copy_context()) == len(before)

    contextvars.Context().run(run)


def test_a_block_finished_from_another_context_restores_the_ids_there() -> None:
    token = contextvars.Context().run(enter_log_context, conversationId="c1")

    def finish_elsewhere() -> None:
        enter_log_context(conversationId="other")  # this context has ids of its own
        restore_log_context(token)  # not this context's token: cannot reset, sets the old value back
        assert log_context()["conversationId"] is None

    contextvars.Context().run(finish_elsewhere)


def test_updates_outside_a_block_never_change_the_shared_default() -> None:
    def run() -> None:
        update_log_context(sequenceId=3)
        assert log_context()["sequenceId"] == 3

    contextvars.Context().run(run)
    assert log_context()["sequenceId"] is None
