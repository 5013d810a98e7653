from __future__ import annotations

import pytest

from nmmfast.testing import devices


@pytest.fixture(params=devices())
def device(request: pytest.FixtureRequest) -> str:
    return request.param
