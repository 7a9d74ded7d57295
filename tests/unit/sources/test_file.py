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
