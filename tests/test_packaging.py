"""What a run records about its code when it runs from the wheel (no checkout): the commit that
scripts/package.sh stamps into the package as smar/_commit.txt."""

from __future__ import annotations

import types

from smar.reranker import registry


def _package_holding(folder):
    return types.SimpleNamespace(files=lambda package: folder)


def test_the_stamped_commit_wins_over_the_checkout(tmp_path, monkeypatch):
    # Given a package with the commit stamped at package time
    (tmp_path / "_commit.txt").write_text("0123456789abcdef0123456789abcdef01234567\n")
    monkeypatch.setattr(registry, "resources", _package_holding(tmp_path))
    # Then git_commit reports it, without asking git
    monkeypatch.setattr(registry.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("git ran")))
    assert registry.git_commit() == "0123456789abcdef0123456789abcdef01234567"


def test_without_a_stamp_the_checkout_answers_and_outside_one_it_is_unknown(tmp_path, monkeypatch):
    # Given no stamp (code run from a checkout)
    monkeypatch.setattr(registry, "resources", _package_holding(tmp_path))
    # Then the checkout's HEAD is reported
    commit = registry.git_commit()
    assert len(commit) == 40 and int(commit, 16) >= 0
    # And a stamp saying "unknown" (package.sh outside git) does not hide the checkout
    (tmp_path / "_commit.txt").write_text("unknown\n")
    assert registry.git_commit() == commit
    # And outside any checkout it is "unknown"
    outside = tmp_path / "not-a-checkout"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert registry.git_commit(outside) == "unknown"
