"""A pulled model's records are found where they lie (models.store.Entry.located), so `model verify`
checks parts kept in a folder of the repository and the companions beside them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.models.store import Entry, FileRecord


def test_records_named_under_a_folder_of_the_repository_are_located_from_the_first_part() -> None:
    root = Path("/m/stepfun-ai/Step-3.7-Flash-GGUF")
    files = (
        FileRecord("Q4_K_S/m-Q4_K_S-00001-of-00002.gguf", 1),
        FileRecord("Q4_K_S/m-Q4_K_S-00002-of-00002.gguf", 2),
        FileRecord("Q4_K_S/mmproj-m-f16.gguf", 3),
    )
    entry = Entry("m", str(root / files[0].name), "pull", True, files)
    assert entry.located() == {root / f.name: f for f in files}


def test_records_at_the_repository_root_and_entries_without_records() -> None:
    files = (FileRecord("a-00001-of-00002.gguf", 1), FileRecord("a-00002-of-00002.gguf", 2))
    entry = Entry("a", "/m/o/r/a-00001-of-00002.gguf", "pull", True, files)
    assert entry.located() == {Path("/m/o/r") / f.name: f for f in files}
    assert Entry("b", "/m/b.gguf", "added", False).located() == {}


def test_a_record_that_leaves_the_pull_folder_or_holds_a_nul_is_not_located() -> None:
    files = (FileRecord("a.gguf", 1), FileRecord("../k.json", 2), FileRecord("b\0.gguf", 3))
    entry = Entry("a", "/m/o/r/a.gguf", "pull", True, files)
    assert entry.located() == {Path("/m/o/r/a.gguf"): files[0]}


def test_model_rm_deletes_nothing_outside_the_models_folder_whatever_the_registry_says(
    tmp_path: Path,
) -> None:
    """A registry entry marked as the store's own but lying outside the models folder is only forgotten."""
    from orchestrator.models import store
    from tests.tiny_gguf import write_tiny_moe

    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = write_tiny_moe(elsewhere / "a.gguf")
    keys = elsewhere / "k.json"
    keys.write_text("{}")
    files = (FileRecord("a.gguf", 1), FileRecord("k.json", 2))
    store.record_pull(models, "a", Entry("a", str(first), "hub a/b@main", True, files))
    assert store.remove(models, "a", lambda _q: True, {}) == []
    assert first.is_file() and keys.is_file() and store.find(models, "a") is None
