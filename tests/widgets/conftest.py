"""Widget tests reuse the spoken prompt fixtures of the integration tests."""

from tests.integration.conftest import prompt, second_prompt  # noqa: F401
