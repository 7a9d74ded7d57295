"""The xDS server's side of mTLS: gRPC server credentials that demand a client certificate of our
CA and present a server certificate that is re-issued before it expires.

gRPC asks `ServerCertificates` for its configuration at each new handshake
(`grpc.dynamic_ssl_server_credentials`); a due certificate is replaced then, so the server never
presents an expired one and no restart is needed. Open connections keep theirs.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Sequence

import grpc

from kubelb.pki import model

logger = logging.getLogger(__name__)


class ServerCertificates:
    def __init__(
        self,
        authority: model.Authority,
        *,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        validity: datetime.timedelta = model.LEAF_VALIDITY,
    ) -> None:
        self.authority = authority
        self.dns_names = tuple(dns_names)
        self.ips = tuple(ips)
        self.validity = validity
        self.issued = 0
        self._lock = threading.Lock()  # gRPC may call the fetcher from its own threads
        self.leaf = self._issue()

    def _issue(self) -> model.Leaf:
        leaf = self.authority.issue_server(self.dns_names, self.ips, validity=self.validity)
        self.issued += 1
        logger.info("xDS server certificate issued, valid until %s", leaf.not_after)
        return leaf

    def _configuration(self, leaf: model.Leaf) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(leaf.key, leaf.cert)], root_certificates=self.authority.cert_pem
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None: keep the current configuration."""
        with self._lock:
            if not self.authority.due(self.leaf.cert):
                return None
            self.leaf = self._issue()
            return self._configuration(self.leaf)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self.leaf), self._fetch, require_client_authentication=True
        )
