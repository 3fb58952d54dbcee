"""The browser tests share the JupyterLab server fixture of ``test_jupyterlab``."""

from tests.browser.test_jupyterlab import jupyterlab  # noqa: F401
