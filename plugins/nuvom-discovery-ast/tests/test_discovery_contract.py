"""The kernel's DiscovererContract, run against the ``ast`` discoverer."""

from __future__ import annotations

import pytest
from nuvom_discovery_ast import AstDiscoverer

from nuvom_kernel.contracts import Discoverer
from nuvom_kernel.testing import DiscovererContract


class TestAstDiscovererContract(DiscovererContract):
    @pytest.fixture
    def discoverer(self) -> Discoverer:
        return AstDiscoverer()
