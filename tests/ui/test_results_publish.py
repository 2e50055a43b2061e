"""Publishing from the Results tab: the files in the LoRA folder, the conflict step, bad names."""

from __future__ import annotations

import hashlib
import html
import json

from lib_train_tools.results.outcomes import read_outcomes
from lib_train_tools.ui import publish_actions
from lib_train_tools.ui import results_actions as actions
from lib_train_tools.ui.replies import NO_CHANGE
from lib_train_tools.ui.selection import selection_key
from lib_train_tools.ui.wiring import run_handler

from .completed_run import ACTIVATION, PROJECT, RUN, VERSION

SELECTION = selection_key(PROJECT, VERSION)
OUTPUTS = publish_actions.CONFIRM + ("summary",)
EPOCH_1 = f"{RUN}-000001.safetensors"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(services, name: str, checkpoint: str = EPOCH_1, picture: str | None = None, weight=0.8,
            confirmed: str | None = None, pending: str | None = None):
    picture = picture or publish_actions.NO_IMAGE
    reply = actions.publish(services, SELECTION, RUN, checkpoint, name, ACTIVATION, weight, "my notes", picture,
                            confirmed=confirmed, pending=pending)
    return reply, dict(zip(OUTPUTS, reply.values, strict=True))


def a_cell(completed) -> str:
    cell = next((completed.run_dir / "preview").glob("*/r00_*.png"))
    return f"preview/{cell.parent.name}/{cell.name}"


def test_publish_writes_the_lora_its_card_and_picture(results_services, completed):
    picture = a_cell(completed)
    reply, out = publish(results_services, "my lora", picture=picture)
    lora = completed.lora_dir / "my lora.safetensors"
    assert reply.notice.kind == "ok" and str(lora) in reply.notice.text
    assert digest(lora) == digest(completed.run_dir / EPOCH_1)
    card = json.loads((completed.lora_dir / "my lora.json").read_text(encoding="utf-8"))
    assert card["activation text"] == ACTIVATION and card["preferred weight"] == 0.8
    assert card["sd version"] == "SD1" and card["notes"] == "my notes"
    assert digest(completed.lora_dir / "my lora.preview.png") == digest(completed.run_dir / picture)
    assert out["lora_text"] == f"<lora:my lora:0.8> {ACTIVATION}"
    assert "my lora.preview.png" in out["result"] and out["overwrite"].get("visible") is False
    assert "<b>my lora</b>" in out["summary"] and "from this page" in out["summary"]
    assert [p.name for p in read_outcomes(completed.run_dir).published] == [f"{PROJECT}-{VERSION}", "my lora"]


def test_a_taken_name_asks_and_overwrites_only_after_confirmation(results_services, completed):
    taken = completed.lora_dir / f"{PROJECT}-{VERSION}.safetensors"  # auto-published when the run ended
    before = digest(taken)
    reply, out = publish(results_services, f"{PROJECT}-{VERSION}")
    assert reply.notice.kind == "info" and "already exists" in reply.notice.text
    assert out["overwrite"].get("visible") is True and out["cancel"].get("visible") is True
    assert out["pending"] == f"{PROJECT}-{VERSION}" and "Overwrite" in out["result"]
    assert out["summary"] is NO_CHANGE and digest(taken) == before

    # the name was changed after the question: Overwrite must not replace that other LoRA unasked
    (completed.lora_dir / "other.safetensors").write_bytes(b"someone else's file")
    reply, out = publish(results_services, "other", confirmed=f"{PROJECT}-{VERSION}")
    assert "already exists" in reply.notice.text and out["pending"] == "other"
    assert (completed.lora_dir / "other.safetensors").read_bytes() == b"someone else's file"

    cancelled = dict(zip(publish_actions.CONFIRM, publish_actions.cancel_overwrite().values, strict=True))
    assert cancelled["overwrite"].get("visible") is False and cancelled["pending"] == ""

    reply, out = publish(results_services, f"{PROJECT}-{VERSION}", confirmed=f"{PROJECT}-{VERSION}")
    assert reply.notice.kind == "ok"
    assert digest(taken) == digest(completed.run_dir / EPOCH_1) != before
    card = json.loads((completed.lora_dir / f"{PROJECT}-{VERSION}.json").read_text(encoding="utf-8"))
    assert card["notes"] == "my notes" and card["preferred weight"] == 0.8


def test_the_file_already_published_is_renamed_rather_than_copied_again(results_services, completed):
    final = f"{RUN}.safetensors"
    auto = completed.lora_dir / f"{PROJECT}-{VERSION}.safetensors"  # published when the run ended
    assert digest(auto) == digest(completed.run_dir / final)
    reply, out = publish(results_services, "my name", checkpoint=final)
    assert reply.notice.kind == "info"
    assert f"already in the LoRA folder as “{PROJECT}-{VERSION}”" in reply.notice.text
    assert "published automatically when the run ended" in reply.notice.text
    assert out["overwrite"].get("value") == publish_actions.RENAME_LABEL and out["overwrite"].get("visible") is True
    assert not (completed.lora_dir / "my name.safetensors").exists()

    reply, out = publish(results_services, "my name", checkpoint=final, confirmed=out["pending"])
    assert reply.notice.kind == "ok" and "no second copy" in reply.notice.text
    card = json.loads((completed.lora_dir / "my name.json").read_text(encoding="utf-8"))
    assert card["notes"] == "my notes" and card["preferred weight"] == 0.8  # the form's card, not the old one
    renamed = completed.lora_dir / "my name.safetensors"
    assert not auto.exists() and digest(renamed) == digest(completed.run_dir / final)
    assert (completed.lora_dir / "my name.json").is_file()
    assert not (completed.lora_dir / f"{PROJECT}-{VERSION}.json").exists()
    assert [p.name for p in completed.lora_dir.glob("*.safetensors")].count("my name.safetensors") == 1
    assert read_outcomes(completed.run_dir).published[-1].name == "my name"

    reply, out = publish(results_services, "a copy", checkpoint=final)  # asks again, about the new name
    assert "as “my name”" in reply.notice.text
    reply, out = publish(results_services, "a copy", checkpoint=final, pending=out["pending"])  # Publish again
    assert reply.notice.kind == "ok" and (completed.lora_dir / "a copy.safetensors").is_file() and renamed.is_file()


def test_a_bad_name_is_a_message_in_the_page(results_services, completed):
    for name, message in (("a/b", "slash"), ("", "empty"), ("x<y", "cannot be used")):
        status, *_ = run_handler(lambda n: actions.publish(results_services, SELECTION, RUN, EPOCH_1, n, "", 1.0, "",
                                                           publish_actions.NO_IMAGE), (name,), len(OUTPUTS))
        assert "tt-error" in status and message in html.unescape(status), (name, status)
    assert sorted(p.name for p in completed.lora_dir.iterdir()) == sorted(
        f"{PROJECT}-{VERSION}{suffix}" for suffix in (".json", ".preview.png", ".safetensors"))


def test_bad_weight_and_a_picture_outside_the_run_are_refused(results_services, completed):
    status, *_ = run_handler(lambda: actions.publish(results_services, SELECTION, RUN, EPOCH_1, "x", "", "heavy", "",
                                                     publish_actions.NO_IMAGE), (), len(OUTPUTS))
    assert "preferred weight must be a number" in status
    status, *_ = run_handler(lambda: actions.publish(results_services, SELECTION, RUN, EPOCH_1, "x", "", 1, "",
                                                     "../../../../settings.json"), (), len(OUTPUTS))
    assert "not an image of this run" in html.unescape(status)
    assert not (completed.lora_dir / "x.safetensors").exists()
