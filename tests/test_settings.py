"""The pydantic-free config check (dsv.settings) gives the verdicts of the model (dsv.config.RepoConfig).

commit, checkout and tag read the lock timeout and the author through
dsv.settings; the model defines the format. On valid configs and on every
kind of damage, both must accept or refuse, and agree on the values.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from dsv.base.errors import CorruptMetadataError
from dsv.config import RepoConfig
from dsv.settings import read_settings

VALID: list[dict[str, Any]] = [
    {"format": 2},
    {"format": 1, "user": {}, "core": {}},
    {"format": 2, "user": {"name": "Ada", "email": "a@x"}, "core": {"lock_timeout": 5}},
    {"format": 2, "user": {"name": None}, "core": {"lock_timeout": 0.25}},
    {"format": 2, "remotes": {"origin": {"url": "s3://b/p", "options": {"anon": "true"}}}, "promisor": "origin"},
    {"format": 2, "remotes": {}, "promisor": None},
    {"format": 2, "core": {"fsmonitor": True, "lock_timeout": 1}},
    {"format": 2, "core": {"fsmonitor": False}},
]
BAD_VALUES: list[Any] = [None, True, False, 0, 1, 2.5, -3, float("nan"), float("inf"), "", "x", "1", [], {}, ["a"], {"x": 1}, {"url": "u"}, {"url": 1}]


def _variants() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i, doc in enumerate(VALID):
        out.append((f"valid {i}", doc))
    full = {"format": 2, "user": {"name": "Ada", "email": "e"}, "core": {"lock_timeout": 3.0},
            "remotes": {"origin": {"url": "/r", "options": {"k": "v"}}}, "promisor": "origin"}
    for key in ["format", "user", "core", "remotes", "promisor", "extra"]:
        for v in BAD_VALUES:
            d = copy.deepcopy(full)
            d[key] = v
            out.append((f"{key}={v!r}", d))
    for section, key in [("user", "name"), ("user", "email"), ("user", "extra"), ("core", "lock_timeout"), ("core", "fsmonitor"), ("core", "extra")]:
        for v in BAD_VALUES:
            d = copy.deepcopy(full)
            d[section][key] = v
            out.append((f"{section}.{key}={v!r}", d))
    for key in ["url", "options", "extra"]:
        for v in BAD_VALUES:
            d = copy.deepcopy(full)
            d["remotes"]["origin"][key] = v
            out.append((f"remotes.origin.{key}={v!r}", d))
        d = copy.deepcopy(full)
        d["remotes"]["origin"].pop(key, None)
        out.append((f"remotes.origin without {key}", d))
    for v in BAD_VALUES:
        d = copy.deepcopy(full)
        d["remotes"]["origin"]["options"]["k"] = v
        out.append((f"remotes.origin.options.k={v!r}", d))
    return out


@pytest.mark.parametrize("name,doc", _variants(), ids=[n for n, _ in _variants()])
def test_same_verdict_and_values_as_the_model(name: str, doc: dict[str, Any]) -> None:
    data = json.dumps(doc).encode()
    try:
        model = RepoConfig.from_json_bytes(data, what="config")
    except CorruptMetadataError:
        model = None
    except Exception as err:  # FormatVersionError for format > 2 is a verdict too
        model = err  # type: ignore[assignment]
    try:
        light = read_settings(data, what="config")
    except CorruptMetadataError as err:
        light = err  # type: ignore[assignment]
    if isinstance(model, RepoConfig):
        assert not isinstance(light, Exception), (name, light)
        assert (light.lock_timeout, light.user_name, light.user_email, light.fsmonitor) == (
            model.core.lock_timeout, model.user.name, model.user.email, model.core.fsmonitor)
    elif doc.get("format") in (1, 2) or "format" not in doc:
        assert isinstance(light, CorruptMetadataError), name


def test_a_damaged_config_stops_a_commit_with_one_line(tmp_path: Any) -> None:
    import dsv

    dsv.Repo.init(tmp_path)
    (tmp_path / "f").write_text("x")
    cfg = tmp_path / ".dsv" / "config.json"
    cfg.write_text(json.dumps({"format": 2, "core": {"lock_timeout": "soon"}}))
    with pytest.raises(dsv.DsvError) as info:
        dsv.Repo(tmp_path).commit("m")
    assert "core.lock_timeout" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("core.fsmonitor", "maybe", "true or false"),
        ("core.server", "2", "true or false"),
        ("core.lock_timeout", "abc", "number of seconds"),
        ("core.lock_timeout", "-5", "number of seconds"),
        ("core.lock_timeout", "nan", "number of seconds"),
        ("core.lock_timeout", "inf", "number of seconds"),  # used to be written as null: every command then failed
        ("core.lock_timeout", "1e400", "number of seconds"),
    ],
)
def test_a_bad_config_value_names_the_key_and_what_it_takes_and_changes_nothing(tmp_path: Any, key: str, value: str, expected: str) -> None:
    from conftest import run_dsv

    import dsv

    dsv.Repo.init(tmp_path)
    before = (tmp_path / ".dsv" / "config.json").read_bytes()
    proc = run_dsv("config", key, value, cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert f"invalid value '{value}' for {key}" in err and expected in err, err
    assert (tmp_path / ".dsv" / "config.json").read_bytes() == before
    assert run_dsv("status", cwd=tmp_path).returncode == 0


def test_a_good_lock_timeout_is_kept(tmp_path: Any) -> None:
    from conftest import run_dsv

    import dsv

    dsv.Repo.init(tmp_path)
    assert run_dsv("config", "core.lock_timeout", "0.5", cwd=tmp_path, check=True).returncode == 0
    assert run_dsv("config", "core.lock_timeout", cwd=tmp_path, check=True).stdout.decode().strip() == "0.5"


@pytest.mark.parametrize("text", ["{x", "[]", '{"format": "2"}', '{"format": 2, "core": {"lock_timeout": NaN}}'])
def test_a_malformed_config_says_to_fix_it_by_hand_not_to_run_fsck(tmp_path: Any, text: str) -> None:
    from conftest import run_dsv

    import dsv

    dsv.Repo.init(tmp_path)
    (tmp_path / ".dsv" / "config.json").write_text(text)
    for cmd in (["status"], ["fsck"]):
        proc = run_dsv(*cmd, cwd=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 3 and err.count("\n") == 1 and "fix .dsv/config.json by hand" in err, err
        assert "run 'dsv fsck'" not in err
