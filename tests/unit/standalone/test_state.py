from kubelb.standalone import state


def service(name, address=None):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"envoy-{name}", "namespace": "demo", "uid": "u",
                     "labels": {"kubelb.k8c.io/lb-name": name}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": address}]} if address else {}},
    }  # fmt: skip


def test_round_trip_and_skip_unchanged_writes(tmp_path):
    store = state.StateStore(tmp_path / "s")
    assert store.load() == []
    store.save([service("b", "127.0.0.2"), service("a", "127.0.0.1")])
    loaded = state.StateStore(tmp_path / "s").load()
    assert [r["metadata"]["name"] for r in loaded] == ["envoy-a", "envoy-b"]
    assert loaded[0] == state.record_of(service("a", "127.0.0.1"))
    assert "uid" not in loaded[0]["metadata"]
    mtime = store.path.stat().st_mtime_ns
    store.save([service("a", "127.0.0.1"), service("b", "127.0.0.2")])
    assert store.path.stat().st_mtime_ns == mtime
    assert not [p for p in store.path.parent.iterdir() if p.suffix == ".tmp"]


def test_corrupt_state_is_ignored_not_fatal(tmp_path, caplog):
    store = state.StateStore(tmp_path)
    store.path.write_text("{not json")
    assert store.load() == []
    assert "ignoring unreadable state file" in caplog.text


def names(records):
    return [r["metadata"]["name"] for r in records]


def test_corrupt_state_falls_back_to_the_previous_good_copy(tmp_path, caplog):
    store = state.StateStore(tmp_path)
    store.save([service("a", "127.0.0.1"), service("b", "127.0.0.2")])
    store.save([service("a", "127.0.0.1"), service("b", "127.0.0.2"), service("c", "127.0.0.3")])
    store.path.write_text('{"version": 2, "servi')  # e.g. a disk or an editor cut it short
    assert names(state.StateStore(tmp_path).load()) == ["envoy-a", "envoy-b"]
    assert "using its previous good copy" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".bak"))]


def test_a_corrupt_file_never_becomes_the_previous_copy(tmp_path):
    store = state.StateStore(tmp_path)
    store.save([service("a", "127.0.0.1")])
    store.save([service("a", "127.0.0.1"), service("b", "127.0.0.2")])
    store.path.write_text("garbage")
    state.StateStore(tmp_path).save([service("c", "127.0.0.3")])
    store.path.write_text("garbage again")
    assert names(state.StateStore(tmp_path).load()) == ["envoy-a"]
