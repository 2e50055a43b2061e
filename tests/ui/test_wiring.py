"""Handler outcomes reach the page: notices, errors with the other outputs untouched, unexpected errors."""

from __future__ import annotations

from lib_train_tools.projects import InvalidNameError
from lib_train_tools.ui.replies import Reply, Update, error_notice, notice_html, ok
from lib_train_tools.ui.wiring import run_handler


def is_no_change(value) -> bool:
    return isinstance(value, dict) and set(value) <= {"__type__"}


def test_a_reply_becomes_status_html_and_values():
    out = run_handler(lambda x: Reply(ok(f"made {x}"), (x, Update.of(visible=False))), ("<b>",), 2)
    assert "made &lt;b&gt;" in out[0] and "tt-ok" in out[0]
    assert out[1] == "<b>" and out[2]["visible"] is False


def test_a_library_error_shows_its_message_and_changes_nothing_else():
    def fail(name):
        raise InvalidNameError(name, "it contains a slash, which separates folders", "project name")

    out = run_handler(fail, ("a/b",), 3)
    assert "tt-error" in out[0] and "project name &#x27;a/b&#x27; cannot be used" in out[0]
    assert all(is_no_change(v) for v in out[1:])


def test_an_unexpected_error_names_its_type():
    def broken():
        raise ZeroDivisionError("division by zero")

    notice = error_notice(ZeroDivisionError("division by zero"))
    assert "unexpected error (ZeroDivisionError" in notice.text
    assert "unexpected error" in run_handler(broken, (), 0)[0]


def test_a_notice_of_none_leaves_the_status_line_alone():
    out = run_handler(lambda: Reply(None, ()), (), 0)
    assert is_no_change(out[0])


def test_multi_line_messages_keep_their_lines():
    assert notice_html(ok("one\ntwo")).count("<br>") == 1
