"""Ray started by nas-convnext listens on loopback only and starts no dashboard."""
from __future__ import annotations

import logging

import pytest

from nas_convnext.search import SearchConfig, raytune

from .conftest import is_loopback

DASHBOARD_PORT = 8265


def _ours(search_run):
    # Sockets of the search's own session that were not listening before it started (a
    # port reused by an unrelated process could otherwise be blamed on it).
    return [s for s in search_run.listeners.values()
            if (s.ip, s.port) not in search_run.before]


def test_the_search_ran_and_ray_served(search_run):
    assert search_run.returncode == 0, search_run.stderr[-3000:]
    names = " ".join(s.cmdline for s in _ours(search_run))
    # Not vacuous: we saw Ray's own servers listening while the search ran.
    assert "gcs_server" in names and "raylet" in names, names
    assert not search_run.left, f"Ray processes outlived the search by 15 s: {search_run.left}"


def test_local_ray_listens_on_loopback_only(search_run):
    exposed = [f"{s.ip}:{s.port} ({s.cmdline[:80]})" for s in _ours(search_run)
               if not is_loopback(s.ip)]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)


def test_no_dashboard_is_started(search_run):
    on_dashboard_port = [s for s in _ours(search_run) if s.port == DASHBOARD_PORT]
    assert not on_dashboard_port
    # Ray runs its dashboard head process even without the dashboard (for the modules that
    # are not the dashboard's); it must then serve nothing over the network.
    head = [s for s in _ours(search_run) if "dashboard/dashboard.py" in s.cmdline]
    assert not head, head


class _Stop(Exception):
    pass


def _captured_init(monkeypatch, cfg, existing_cluster=None):
    import ray
    from ray._private import services

    seen = {}

    def fake_init(*args, **kwargs):
        seen.update(kwargs)
        # While Ray starts, a localhost node address must stay what it is.
        seen["resolved"] = services.resolve_ip_for_localhost("127.0.0.1")
        raise _Stop

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    if existing_cluster is None:  # whatever `ray start` may have left on this machine
        monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda addr: None)
    with pytest.raises(_Stop):
        raytune.init_ray(cfg)
    return seen


def test_init_ray_asks_for_loopback_and_no_dashboard(monkeypatch):
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    original = services.resolve_ip_for_localhost
    seen = _captured_init(monkeypatch, SearchConfig(budget=4.5e9))
    assert seen["include_dashboard"] is False
    assert seen["_node_ip_address"] == "127.0.0.1" and seen["resolved"] == "127.0.0.1"
    assert "address" not in seen
    # Ray's helper is put back, even though ray.init raised.
    assert services.resolve_ip_for_localhost is original


def test_joining_a_cluster_keeps_ray_defaults_but_no_dashboard(monkeypatch):
    seen = _captured_init(monkeypatch, SearchConfig(budget=4.5e9, address="10.0.0.5:6379"),
                          existing_cluster=True)
    assert seen["address"] == "10.0.0.5:6379" and seen["include_dashboard"] is False
    assert "_node_ip_address" not in seen
    assert seen["logging_level"] == logging.WARNING


def test_ray_address_in_the_environment_is_joined_as_ray_would(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    seen = _captured_init(monkeypatch, SearchConfig(budget=4.5e9), existing_cluster=True)
    assert "_node_ip_address" not in seen and seen["include_dashboard"] is False
