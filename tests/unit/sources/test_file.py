import asyncio

import pytest

from kubelb.sources import file

LB = """\
apiVersion: kubelb.k8c.io/v1alpha1
kind: LoadBalancer
metadata: {name: one, namespace: default}
"""


def test_folder_multi_document_with_origins(tmp_path):
    (tmp_path / "a.yaml").write_text(LB + "---\n---\n" + LB.replace("one", "two"))
    (tmp_path / "b.yml").write_text(LB.replace("one", "three"))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.yaml").write_text("ignored: true")
    snap = file.FileSource(tmp_path).load()
    names = [d.body["metadata"]["name"] for d in snap.documents]
    assert names == ["one", "two", "three"]
    assert snap.documents[1].origin.endswith("a.yaml#2")
    assert not snap.errors


def test_broken_file_keeps_last_good_documents_and_reports_line(tmp_path):
    path = tmp_path / "lb.yaml"
    path.write_text(LB)
    source = file.FileSource(path)
    assert len(source.load().documents) == 1
    path.write_text(LB + "  bad: [unclosed\n")
    snap = source.load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one"]
    (error,) = snap.errors
    assert error.using_last_good
    assert "line" in error.message


def test_broken_new_file_has_no_last_good(tmp_path):
    (tmp_path / "x.yaml").write_text("- just\n- a list\n")
    snap = file.FileSource(tmp_path).load()
    assert not snap.documents
    assert "not a mapping" in snap.errors[0].message
    assert not snap.errors[0].using_last_good


def test_missing_path_is_a_source_error(tmp_path):
    with pytest.raises(file.SourceError, match="does not exist"):
        file.FileSource(tmp_path / "nope").load()


async def test_watch_yields_initial_and_changed_snapshots(tmp_path):
    path = tmp_path / "lb.yaml"
    path.write_text(LB)
    source = file.FileSource(tmp_path)
    stream = source.watch(poll_seconds=0.02)
    first = await anext(stream)
    assert len(first.documents) == 1
    (tmp_path / "second.yaml").write_text(LB.replace("one", "two"))
    second = await asyncio.wait_for(anext(stream), timeout=30)
    assert len(second.documents) == 2
    # An editor's rename-on-save replaces the inode: still a change.
    tmp = tmp_path / ".lb.yaml.swp"
    tmp.write_text(LB.replace("one", "renamed"))
    tmp.rename(path)
    third = await asyncio.wait_for(anext(stream), timeout=30)
    assert {d.body["metadata"]["name"] for d in third.documents} == {"renamed", "two"}
    await stream.aclose()


def test_deeply_nested_file_is_an_error_of_its_own(tmp_path):
    """4 KB of brackets used to raise RecursionError out of the loader."""
    (tmp_path / "a.yaml").write_text(LB)
    (tmp_path / "deep.yaml").write_text("[" * 2048 + "]" * 2048)
    (tmp_path / "deep-map.yaml").write_text(LB + "spec: " + "{a: " * 200 + "1" + "}" * 200 + "\n")
    snap = file.FileSource(tmp_path).load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one"]
    errors = {e.path.name: e.message for e in snap.errors}
    assert set(errors) == {"deep.yaml", "deep-map.yaml"}
    assert all("deeper than" in m for m in errors.values()), errors


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (error,) = file.FileSource(tmp_path).load().errors
    assert "more than" in error.message


def test_deep_file_keeps_its_last_good_version(tmp_path):
    path = tmp_path / "lb.yaml"
    path.write_text(LB)
    source = file.FileSource(tmp_path)
    source.load()
    path.write_text("[" * 4096 + "]" * 4096)
    snap = source.load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one"]
    assert snap.errors[0].using_last_good


def test_vanished_folder_keeps_last_good_documents_and_says_why(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "a.yaml").write_text(LB)
    (folder / "b.yaml").write_text(LB.replace("one", "two"))
    source = file.FileSource(folder)
    assert len(source.load().documents) == 2
    folder.rename(tmp_path / "renamed")
    snap = source.load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one", "two"]
    (error,) = snap.errors
    assert error.path == folder
    assert error.using_last_good
    assert "does not exist" in error.message
    # Back, changed: the folder's content is served again.
    (tmp_path / "renamed").rename(folder)
    (folder / "b.yaml").unlink()
    snap = source.load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one"]
    assert not snap.errors


async def test_watch_serves_last_good_while_the_folder_is_gone(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "a.yaml").write_text(LB)
    source = file.FileSource(folder)
    stream = source.watch(poll_seconds=0.02)
    try:
        assert len((await anext(stream)).documents) == 1
        folder.rename(tmp_path / "elsewhere")
        gone = await asyncio.wait_for(anext(stream), timeout=30)
        assert len(gone.documents) == 1
        assert gone.errors[0].using_last_good
        folder.mkdir()  # back, empty: that is a change, and it is served
        back = await asyncio.wait_for(anext(stream), timeout=30)
        assert not back.documents
        assert not back.errors
    finally:
        await stream.aclose()


@pytest.mark.parametrize("kind", ["folder", "loop", "dangling"])
def test_unreadable_entries_are_reported_and_keep_their_last_good(tmp_path, kind):
    path = tmp_path / "lb.yaml"
    path.write_text(LB)
    source = file.FileSource(tmp_path)
    source.load()
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(tmp_path / "loop.yaml")
        (tmp_path / "loop.yaml").symlink_to(path)
    else:
        path.symlink_to(tmp_path / "missing")
    assert source.signature(), "the entry is part of the signature"
    snap = source.load()
    assert [d.body["metadata"]["name"] for d in snap.documents] == ["one"]
    errors = {e.path.name: e for e in snap.errors}
    assert errors["lb.yaml"].using_last_good
    assert ("folder" if kind == "folder" else "symlink") in errors["lb.yaml"].message


def test_unreadable_entry_without_last_good_is_reported(tmp_path):
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (error,) = file.FileSource(tmp_path).load().errors
    assert not error.using_last_good
    assert "dangling" in error.message
