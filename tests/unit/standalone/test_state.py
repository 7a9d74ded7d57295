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
