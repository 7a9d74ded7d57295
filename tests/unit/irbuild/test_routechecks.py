import pytest

from kubelb.irbuild import routechecks


@pytest.mark.parametrize("hostname", ["example.com", "*.example.com", "a-1.b.c", "localhost"])
def test_valid_hostnames(hostname):
    assert routechecks.hostname_problem(hostname) is None


@pytest.mark.parametrize(
    "hostname",
    ["*", "example.com\n", "a.*.com", "*a.com", "a b.com", "-a.com", "a..com", "A.com", "a" * 254],
)
def test_invalid_hostnames(hostname):
    assert routechecks.hostname_problem(hostname) is not None


def test_a_rewrite_hostname_may_not_be_a_wildcard():
    assert routechecks.hostname_problem("*.example.com", wildcard=False) is not None


@pytest.mark.parametrize(
    ("regex", "valid"),
    [
        ("/items/[0-9]+", True),
        ("/(?P<id>[a-z]+)/x", True),
        ("/a(?=b)", False),  # lookahead
        ("/a(?<!b)", False),  # lookbehind
        ("/(a)\\1", False),  # backreference
        ("/a++", False),  # possessive
        ("/a(", False),
    ],
)
def test_regular_expressions_both_planes_take(regex, valid):
    assert (routechecks.regex_problem(regex) is None) is valid


@pytest.mark.parametrize(
    ("path", "valid"),
    [("/", True), ("/a/b%20c", True), ("a", False), ("/a b", False), ("/a\n", False)],
)
def test_paths(path, valid):
    assert (routechecks.path_problem(path) is None) is valid


def test_header_names_and_values():
    assert routechecks.header_name_problem("X-Custom_1") is None
    assert routechecks.header_name_problem("X Custom") is not None
    assert routechecks.header_name_problem("") is not None
    assert routechecks.header_name_problem("X-A\n") is not None
    assert routechecks.header_value_problem("a, b") is None
    assert routechecks.header_value_problem("a\r\nInjected: 1") is not None


def test_grpc_names():
    assert routechecks.grpc_problem("echo.v1.Echo", "Ping") is None
    assert routechecks.grpc_problem("echo/x", "") is not None
    assert routechecks.grpc_problem("", "Ping.x") is not None
