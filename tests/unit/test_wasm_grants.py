"""The operator's bounds on WASM grants (executor_wasm/grants.py), without running a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_wasm.grants import NO_GRANTS, GrantDenied, GrantPolicy

pytestmark = pytest.mark.unit


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    (tmp_path / "shared" / "team").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "shared")
    return tmp_path / "shared"


def test_no_grant_annotation_means_no_grants(shared: Path) -> None:
    policy = GrantPolicy([shared], ["TZ"], net=True)
    assert policy.grant({"description": "x", "executor": "wasm"}) is NO_GRANTS


def test_a_subdirectory_and_a_symlink_into_the_list_are_granted_at_the_requested_path(shared: Path) -> None:
    policy = GrantPolicy([shared], [], net=False)
    alias = shared.parent / "alias"
    grants = policy.grant({"dir": [f"{shared}/team", f"{alias}/team/"]})
    assert grants.preopens == ((f"{shared}/team", f"{shared}/team"), (f"{alias}/team", f"{shared}/team"))


def test_a_directory_beside_the_list_is_refused_even_by_a_shared_prefix(shared: Path, tmp_path: Path) -> None:
    (tmp_path / "shared-not").mkdir()
    policy = GrantPolicy([shared], [], net=False)
    for requested in (tmp_path / "private", tmp_path / "shared-not", Path(f"{shared}/team/../../private")):
        with pytest.raises(GrantDenied, match="is not granted by the operator"):
            policy.grant({"dir": str(requested)})


def test_env_grants_take_the_host_value_and_skip_unset_names() -> None:
    policy = GrantPolicy([], ["TZ", "LANG"], net=False)
    grants = policy.grant({"env": ["TZ", "LANG"]}, environ={"TZ": "UTC", "HOME": "/root"})
    assert dict(grants.env) == {"TZ": "UTC"}
    with pytest.raises(GrantDenied, match="HOME is not granted"):
        policy.grant({"env": "HOME"}, environ={"HOME": "/root"})


def test_net_access_false_or_absent_grants_nothing_even_when_refused() -> None:
    policy = GrantPolicy([], [], net=False)
    assert not policy.grant({"net_access": False}).net_access
    assert not policy.grant({"net_access": "false"}).net_access
    with pytest.raises(GrantDenied, match="not granted by the operator"):
        policy.grant({"net_access": "true"})
