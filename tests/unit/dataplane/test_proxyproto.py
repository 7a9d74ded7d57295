import asyncio

import pytest

from kubelb.dataplane import proxyproto
from tests.integration.dataplane import backends


async def parse(header: bytes) -> backends.ProxyHeader:
    reader = asyncio.StreamReader()
    reader.feed_data(header)
    reader.feed_eof()
    return await backends.read_proxy_v2(reader)


@pytest.mark.parametrize(
    ("source", "destination", "family_byte"),
    [
        (("192.0.2.10", 40000), ("198.51.100.1", 443), 0x11),
        (("2001:db8::1", 40000), ("2001:db8::2", 8080), 0x21),
    ],
)
async def test_v2_header_round_trips(source, destination, family_byte):
    header = proxyproto.v2_header(source, destination)
    assert header[:12] == proxyproto.SIGNATURE
    assert header[12] == 0x21
    assert header[13] == family_byte
    parsed = await parse(header)
    assert (parsed.command, parsed.source, parsed.destination) == ("PROXY", source, destination)


async def test_mixed_families_use_mapped_ipv6():
    parsed = await parse(proxyproto.v2_header(("192.0.2.10", 1), ("2001:db8::2", 2)))
    assert parsed.source == ("::ffff:c000:20a", 1)


async def test_unknown_addresses_give_local():
    parsed = await parse(proxyproto.v2_header(None, None))
    assert parsed.command == "LOCAL"
