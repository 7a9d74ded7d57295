"""Where the supervisor puts an Envoy's admin socket: in the node's directory, or a private
temporary directory when that path would not fit a Unix socket address."""

from __future__ import annotations

import os
from pathlib import Path

from kubelb.envoy import supervisor


def test_in_the_node_directory_with_a_stale_socket_removed(tmp_path: Path) -> None:
    node = tmp_path / "tenant-a"
    node.mkdir()
    (node / "admin.sock").write_text("stale")
    path = supervisor._admin_socket(node)
    assert path == str(node / "admin.sock")
    assert not os.path.exists(path)


def test_a_path_too_long_for_a_unix_socket_moves_to_a_private_directory(tmp_path: Path) -> None:
    node = tmp_path / ("x" * 120)
    path = Path(supervisor._admin_socket(node))
    assert len(os.fsencode(path)) < 108
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    path.parent.rmdir()
