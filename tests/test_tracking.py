"""W&B mode choice: offline by default, online with a key, WANDB_MODE and config win."""

from __future__ import annotations

from pathlib import Path

import pytest

from srlab.tracking import has_api_key, resolve_mode


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_offline_without_key(clean_env: Path) -> None:
    assert not has_api_key()
    assert resolve_mode() == "offline"


def test_online_with_key_in_env_or_netrc(clean_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    clean_env.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    clean_env.chmod(0o600)
    assert has_api_key() and resolve_mode() == "online"


def test_env_mode_then_config_mode_win(clean_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode() == "disabled"
    assert resolve_mode("offline") == "offline"
