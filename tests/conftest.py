"""Shared fixtures: an isolated workspace and one digits run reused across tests."""

from __future__ import annotations

import shutil

import pytest

from lsi_app.pipeline import PipelineResult, run_pipeline
from lsi_app.store.cache import HOME_VARIABLE


@pytest.fixture(scope="session")
def shared_workspace(tmp_path_factory):
    """A workspace directory holding the default digits result, computed once per session."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def digits_result(shared_workspace) -> PipelineResult:
    return run_pipeline(workspace=shared_workspace)


@pytest.fixture
def digits_workspace(shared_workspace, digits_result, monkeypatch):
    """Point ``LSI_APP_HOME`` at the workspace that already contains the digits result."""
    monkeypatch.setenv(HOME_VARIABLE, str(shared_workspace))
    return shared_workspace


@pytest.fixture
def empty_workspace(tmp_path, monkeypatch):
    """Point ``LSI_APP_HOME`` at a new empty directory."""
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def dashboard_template(tmp_path_factory):
    """A workspace with the dashboard's default digits result and map, computed once per session."""
    from lsi_app.ui.state import default_settings

    root = tmp_path_factory.mktemp("dashboard")
    run_pipeline(default_settings(), workspace=root, dashboard=True)
    return root


@pytest.fixture
def dashboard_workspace(dashboard_template, tmp_path, monkeypatch):
    """A private copy of the dashboard workspace, so that curation state never leaks between tests."""
    root = tmp_path / "dashboard"
    shutil.copytree(dashboard_template, root)
    monkeypatch.setenv(HOME_VARIABLE, str(root))
    return root
