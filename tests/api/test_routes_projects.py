"""Projects, versions, settings and dataset routes on a real Store."""

from __future__ import annotations

import io
import zipfile

from lib_train_tools.projects import load_settings

from .fakes import png_bytes

P = "/train-tools/v1"


def _make_version(client, project="Cat", version="v1"):
    assert client.post(f"{P}/projects", json={"name": project}).status_code == 201
    assert client.post(f"{P}/projects/{project}/versions", json={"name": version}).status_code == 201


def test_create_and_list_projects_and_versions(client):
    _make_version(client, "ねこ 🐱", "v1")
    projects = client.get(f"{P}/projects").json()
    assert [p["name"] for p in projects] == ["ねこ 🐱"]
    assert projects[0]["versions"] == ["v1"]
    versions = client.get(f"{P}/projects/ねこ 🐱/versions").json()
    assert [v["name"] for v in versions] == ["v1"]


def test_duplicate_name_is_409_and_bad_name_is_400(client):
    _make_version(client)
    taken = client.post(f"{P}/projects", json={"name": "cat"})
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    bad = client.post(f"{P}/projects", json={"name": "a/b"})
    assert bad.status_code == 400
    missing = client.post(f"{P}/projects", json={})
    assert missing.status_code == 400 and "'name' is required" in missing.json()["detail"]


def test_unknown_project_or_version_is_404(client):
    assert client.get(f"{P}/projects/nope/versions").status_code == 404
    _make_version(client)
    assert client.get(f"{P}/projects/Cat/versions/v9").status_code == 404


def test_settings_are_merged_and_saved(client, services):
    _make_version(client)
    client.patch(f"{P}/projects/Cat/versions/v1/settings", json={"network_dim": 8})
    answer = client.patch(f"{P}/projects/Cat/versions/v1/settings", json={"learning_rate": 0.001})
    assert answer.json() == {"network_dim": 8, "learning_rate": 0.001}
    assert load_settings(services.store.version("Cat", "v1")) == {"network_dim": 8, "learning_rate": 0.001}
    assert client.get(f"{P}/projects/Cat/versions/v1").json()["settings"]["network_dim"] == 8


def test_duplicate_version_copies_settings(client):
    _make_version(client)
    client.patch(f"{P}/projects/Cat/versions/v1/settings", json={"network_dim": 8})
    answer = client.post(f"{P}/projects/Cat/versions", json={"name": "v2", "copy_from": "v1"})
    assert answer.status_code == 201
    assert answer.json()["settings"] == {"network_dim": 8}


def test_upload_files_and_zip_then_preprocess(client, services):
    _make_version(client)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/b.png", png_bytes((0, 0, 255)))
        zf.writestr("inner/b.txt", "blue square")
    files = [("files", ("a.png", png_bytes(), "image/png")),
             ("files", ("a.txt", b"red square", "text/plain")),
             ("files", ("notes.exe", b"MZ...", "application/octet-stream")),
             ("files", ("set.zip", archive.getvalue(), "application/zip"))]
    answer = client.post(f"{P}/projects/Cat/versions/v1/dataset", files=files)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(result["added"]) == ["a.png", "a.txt", "b.png", "b.txt"]
    assert [r["name"] for r in result["refused"]] == ["notes.exe"]
    origin = services.store.version("Cat", "v1").origin
    assert (origin / "a.txt").read_text() == "red square"

    done = client.post(f"{P}/projects/Cat/versions/v1/dataset/preprocess",
                       json={"width": 32, "height": 32, "mode": "crop", "repeats": 3})
    assert done.status_code == 200, done.text
    assert done.json()["repeats"] == 3 and len(done.json()["outputs"]) == 2
    summary = client.get(f"{P}/projects/Cat/versions/v1").json()["dataset"]
    assert summary == {"origin_images": 2, "processed_folder": "3_Cat", "processed_images": 2, "repeats": 3}


def test_preprocess_refuses_unknown_or_invalid_options(client):
    _make_version(client)
    unknown = client.post(f"{P}/projects/Cat/versions/v1/dataset/preprocess", json={"size": 32})
    assert unknown.status_code == 400 and "unknown preprocess options: size" in unknown.json()["detail"]
    invalid = client.post(f"{P}/projects/Cat/versions/v1/dataset/preprocess", json={"width": 2})
    assert invalid.status_code == 400 and "below 8 pixels" in invalid.json()["detail"]


def test_upload_to_missing_version_is_404(client):
    files = [("files", ("a.png", png_bytes(), "image/png"))]
    assert client.post(f"{P}/projects/x/versions/y/dataset", files=files).status_code == 404
