"""Stdout access logs for TCP, UDP and HTTP listeners (upstream KubeLB logs every connection,
session and request to stdout with the client address and the chosen upstream host)."""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2

from kubelb.xds.translate import common

STDOUT_LOGGER = "envoy.access_loggers.stdout"

TCP_FORMAT = (
    "[%START_TIME%] tcp %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% "
    "upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% flags=%RESPONSE_FLAGS% "
    "rx=%BYTES_RECEIVED% tx=%BYTES_SENT% duration=%DURATION%ms\n"
)
UDP_FORMAT = (
    "[%START_TIME%] udp %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% "
    "upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% flags=%RESPONSE_FLAGS% "
    "rx=%BYTES_RECEIVED% tx=%BYTES_SENT%\n"
)
HTTP_FORMAT = (
    '[%START_TIME%] http %DOWNSTREAM_REMOTE_ADDRESS% "%REQ(:METHOD)% '
    '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% flags=%RESPONSE_FLAGS% '
    "upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% "
    'duration=%DURATION%ms host="%REQ(:AUTHORITY)%" id=%REQ(X-REQUEST-ID)%\n'
)


def build_stdout_access_log(text_format: str) -> accesslog_pb2.AccessLog:
    logger = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(
            text_format_source=base_pb2.DataSource(inline_string=text_format)
        )
    )
    return accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=common.pack(logger))
