import datetime
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kubelb.ir import codec, proxy, tls
from tests.support import tlscerts


@pytest.fixture(scope="module")
def ca() -> tlscerts.CA:
    return tlscerts.make_ca()


def secret(issued: tlscerts.Issued, name: str = "s") -> tls.TLSSecret:
    return tls.TLSSecret(name=name, certificate_chain=issued.cert_pem, private_key=issued.key_pem)


def test_a_valid_pair_has_no_problems(ca):
    assert tls.secret_problems(secret(ca.issue("a.example.com")), time.time()) == []


def test_a_key_of_another_certificate_is_a_problem(ca):
    a, b = ca.issue("a.example.com"), ca.issue("b.example.com")
    mixed = tls.TLSSecret(name="s", certificate_chain=a.cert_pem, private_key=b.key_pem)
    assert tls.secret_problems(mixed, time.time()) == [
        "the private key does not belong to the certificate"
    ]


def test_expiry_and_not_yet_valid_follow_the_given_clock(ca):
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(hours=2)
    issued = secret(ca.issue("a.example.com", not_before=now, not_after=later))
    assert tls.secret_problems(issued, now.timestamp() + 60) == []
    (expired,) = tls.secret_problems(issued, later.timestamp() + 1)
    assert expired.startswith("the certificate expired at ")
    (early,) = tls.secret_problems(issued, now.timestamp() - 60)
    assert early.startswith("the certificate is not valid before ")


@pytest.mark.parametrize(
    ("chain", "key", "expected"),
    [
        ("", "k", "the certificate chain holds no PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "k", "does not parse"),
    ],
)
def test_garbage_is_a_problem_not_an_exception(chain, key, expected):
    (problem,) = tls.secret_problems(
        tls.TLSSecret(name="s", certificate_chain=chain, private_key=key), time.time()
    )
    assert expected in problem


def test_a_garbage_key_is_a_problem(ca):
    issued = ca.issue("a.example.com")
    bad = tls.TLSSecret(name="s", certificate_chain=issued.cert_pem, private_key="nonsense")
    (problem,) = tls.secret_problems(bad, time.time())
    assert problem.startswith("the certificate or key does not load")


def test_an_encrypted_key_fails_instead_of_prompting(ca):
    from cryptography.hazmat.primitives import serialization

    issued = ca.issue("a.example.com")
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    bad = tls.TLSSecret(name="s", certificate_chain=issued.cert_pem, private_key=key.decode())
    assert tls.secret_problems(bad, time.time())


def test_key_material_stays_out_of_repr(ca):
    issued = ca.issue("a.example.com")
    assert "PRIVATE" not in repr(secret(issued))


def _https_config(*certs: proxy.ServerCertificate, secrets=("a",)) -> proxy.ProxyConfig:
    vh = proxy.VirtualHost(name="*", domains=("*",), routes=())
    return proxy.ProxyConfig(
        node_id="n",
        listeners=(
            proxy.Listener(
                name="l", address="0.0.0.0", port=443, protocol=proxy.Protocol.HTTP,
                virtual_hosts=(vh,), tls=proxy.ListenerTLS(certificates=certs),
            ),
        ),
        secrets=tuple(tls.TLSSecret(name=n, certificate_chain="c", private_key="k")
                      for n in secrets),
    )  # fmt: skip


def test_listener_tls_validation():
    ok = _https_config(
        proxy.ServerCertificate(server_names=("a.example.com", "*.example.com"), secret="a"),
        proxy.ServerCertificate(server_names=(), secret="a"),
    )
    assert ok.validate() == []
    bad = _https_config(
        proxy.ServerCertificate(server_names=("a.example.com",), secret="a"),
        proxy.ServerCertificate(server_names=("a.example.com", "A.x", "a.*.x"), secret="gone"),
        proxy.ServerCertificate(server_names=(), secret="a"),
        proxy.ServerCertificate(server_names=(), secret="a"),
    )
    assert bad.validate() == [
        "listener 'l': server name 'a.example.com' is given twice",
        "listener 'l': more than one default (no server names)",
        "listener 'l': server name 'A.x' must be lower-case, with `*.` only at its start",
        "listener 'l': server name 'a.*.x' must be lower-case, with `*.` only at its start",
        "listener 'l': refers to unknown secret 'gone'",
    ]


def test_passthrough_listener_validation_and_clusters():
    route = proxy.SNIRoute(
        name="r", server_names=("a.example.com",),
        backends=(proxy.WeightedCluster(cluster="c"),),
    )  # fmt: skip
    li = proxy.Listener(
        name="p", address="0.0.0.0", port=8443, protocol=proxy.Protocol.TLS, sni_routes=(route,)
    )
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(li,),
        clusters=(proxy.Cluster(name="c", protocol=proxy.Protocol.TCP),),
    )
    assert config.validate() == []
    assert li.route_clusters == ("c",)
    empty = proxy.ProxyConfig(node_id="n", listeners=(proxy.Listener(
        name="p", address="0.0.0.0", port=8443, protocol=proxy.Protocol.TLS),))  # fmt: skip
    assert empty.validate() == ["listener 'p': a TLS listener needs at least one SNI route"]


def test_codec_round_trips_tls():
    config = _https_config(proxy.ServerCertificate(server_names=("a.x",), secret="a"))
    assert codec.proxy_config_from_dict(codec.to_dict(config)) == config


def test_dropping_a_conflicting_listener_drops_the_secrets_only_it_named():
    vh = proxy.VirtualHost(name="*", domains=("*",), routes=())

    def https(name: str, secret: str) -> proxy.Listener:
        return proxy.Listener(
            name=name, address="0.0.0.0", port=443, protocol=proxy.Protocol.HTTP,
            virtual_hosts=(vh,), tls=proxy.ListenerTLS(
                certificates=(proxy.ServerCertificate(server_names=(), secret=secret),)),
        )  # fmt: skip

    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(https("a", "kept"), https("b", "gone")),
        secrets=tuple(tls.TLSSecret(name=n, certificate_chain="c", private_key="k")
                      for n in ("gone", "kept")),
    )  # fmt: skip
    kept = proxy.drop_conflicting_listeners(config)
    assert [li.name for li in kept.listeners] == ["a"]
    assert [s.name for s in kept.secrets] == ["kept"]
