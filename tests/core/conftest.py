import pytest

from dvlm.core.plugins import add_plugin, remove_plugin
from tests.core.toy_plugin import ToyPlugin


@pytest.fixture
def toy_plugin():
    add_plugin(ToyPlugin(), name="toy")
    try:
        yield
    finally:
        remove_plugin("toy")
