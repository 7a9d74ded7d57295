from kubelb.standalone import state


def test_round_trip_and_skip_unchanged_writes(tmp_path):
    store = state.StateStore(tmp_path / "s")
    assert store.load() == {}
    store.save({"b": "127.0.0.2", "a": "127.0.0.1"})
    assert state.StateStore(tmp_path / "s").load() == {"a": "127.0.0.1", "b": "127.0.0.2"}
    mtime = store.path.stat().st_mtime_ns
    store.save({"a": "127.0.0.1", "b": "127.0.0.2"})
    assert store.path.stat().st_mtime_ns == mtime
    assert not [p for p in store.path.parent.iterdir() if p.suffix == ".tmp"]


def test_corrupt_state_is_ignored_not_fatal(tmp_path, caplog):
    store = state.StateStore(tmp_path)
    store.path.write_text("{not json")
    assert store.load() == {}
    assert "ignoring unreadable state file" in caplog.text


def test_corrupt_state_falls_back_to_the_previous_good_copy(tmp_path, caplog):
    store = state.StateStore(tmp_path)
    store.save({"a": "127.0.0.1", "b": "127.0.0.2"})
    store.save({"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"})
    store.path.write_text('{"version": 1, "addre')  # e.g. a disk or an editor cut it short
    assert state.StateStore(tmp_path).load() == {"a": "127.0.0.1", "b": "127.0.0.2"}
    assert "using its previous good copy" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".bak"))]


def test_a_corrupt_file_never_becomes_the_previous_copy(tmp_path):
    store = state.StateStore(tmp_path)
    store.save({"a": "127.0.0.1"})
    store.save({"a": "127.0.0.1", "b": "127.0.0.2"})
    store.path.write_text("garbage")
    state.StateStore(tmp_path).save({"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"})
    store.path.write_text("garbage again")
    assert state.StateStore(tmp_path).load() == {"a": "127.0.0.1"}
