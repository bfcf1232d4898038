"""Fixtures of the bad-input tests: the examples (manifests/examples) and the corpus
(tests/functional/data/bad_inputs.yaml), loaded afresh for each test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.bad_input.support import CORPUS, EXAMPLES, load, load_dir


@pytest.fixture
def examples() -> list[dict[str, Any]]:
    return load_dir(EXAMPLES)


@pytest.fixture
def corpus() -> list[dict[str, Any]]:
    return load(CORPUS)
