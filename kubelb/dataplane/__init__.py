"""The built-in Python data plane: TCP, UDP, HTTP and HTTPS proxying, and TLS passed through by
SNI, driven by the IR.

It serves the same IR as Envoy and behaves the same wherever the cross-data-plane suite
(tests/integration/dataplanes) can tell; the deliberate differences (502/504 where Envoy answers
503, whole-segment path prefixes, X-Forwarded-For details, a TCP connect retry) and the known
Envoy-path defect are listed in docs/dataplane-differences.md.

In standalone mode it runs as a process of its own (`daemon`), configured over a Unix socket
(`control`), so that it outlives a crash of kubelb as Envoy does.
"""
