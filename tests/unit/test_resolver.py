"""Tag resolution is shared: apps prepared together ask the registry once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from shoal_operator.resolver import DigestResolver

pytestmark = pytest.mark.unit


class SlowRegistry:
    def __init__(self) -> None:
        self.asked = 0

    async def resolve(self, image: str, secrets: list[Mapping[str, Any]]) -> str:
        self.asked += 1
        await asyncio.sleep(0.01)
        return "sha256:" + "1" * 64


async def test_concurrent_resolutions_of_one_tag_ask_the_registry_once() -> None:
    resolver = DigestResolver()
    registry = SlowRegistry()
    resolver._registry = registry  # type: ignore[assignment]
    digests = await asyncio.gather(*(resolver.resolve("r/m:v1") for _ in range(50)))
    assert set(digests) == {"sha256:" + "1" * 64}
    assert registry.asked == 1
    await resolver.resolve("r/m:v1")
    assert registry.asked == 1, "remembered for the ttl"
