"""Ops files checked structurally (no Docker daemon here) and the live-trading preflight."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from urllib.parse import urlparse

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_ops.live import (
    CONFIRM_ENV,
    TRADING_APIS,
    NotLoopbackError,
    assert_loopback,
    is_real_exchange,
    preflight,
)
from simulation.gateway.metrics import GatewayMetrics
from simulation.paths import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.live.yml")
# what `docker compose -f docker-compose.yml -f docker-compose.live.yml` sees: the services of both
COMPOSE = {
    "services": {n: s for f in COMPOSE_FILES for n, s in yaml.safe_load((DOCKER / f).read_text())["services"].items()}
}
LIVE_ONLY_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "CRYPTOBOT_I_UNDERSTAND_LIVE")


def test_dockerfile_pins_the_tested_freqtrade():
    base = re.search(r"^FROM (\S+)", (DOCKER / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert base == f"freqtradeorg/freqtrade:{version('freqtrade')}_freqai"


def test_compose_profiles_services_and_healthchecks():
    services = COMPOSE["services"]
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    assert profiles == {"historical", "simulation", "paper", "live"}
    for name in ("gateway", "bot-simulation", "bot-paper", "bot-live", "prometheus", "grafana", "testbench"):
        assert name in services
    for name, svc in services.items():
        if name != "testbench":  # a batch job, not a service
            assert "healthcheck" in svc, name
    # each profile brings a bot or the bench, and monitoring where a bot runs
    by_profile = {p: {n for n, s in services.items() if p in s.get("profiles", [])} for p in profiles}
    assert {"gateway", "testbench"} <= by_profile["historical"]
    for p in ("simulation", "paper", "live"):
        assert {"prometheus", "grafana"} <= by_profile[p] and any(n.startswith("bot-") for n in by_profile[p])
    assert "gateway" not in by_profile["live"]


def test_no_two_services_of_any_profile_combination_bind_one_host_port():
    """Issue 36 §5: the simulation and paper bots both bound 127.0.0.1:8080, so the two profiles could
    not run together. The spec's ports: simulation 8080, paper 8081, live 8082."""
    services = COMPOSE["services"]
    bots = {n: s["ports"][0].split(":")[1] for n, s in services.items() if n.startswith("bot-")}
    assert bots == {"bot-simulation": "8080", "bot-paper": "8081", "bot-live": "8082"}
    bound: dict[str, str] = {}
    for name, svc in services.items():
        for port in svc.get("ports", []):
            host = ":".join(str(port).split(":")[:-1])
            assert host not in bound, f"{name} and {bound.get(host)} both bind {host}"
            bound[host] = name


ENV_NAMES = [
    line.split("=", 1)[0]
    for line in (DOCKER / ".env.example").read_text().splitlines()
    if "=" in line and not line.startswith("#")
]
PROFILE_FILES = {
    "historical": ("docker-compose.yml",),
    "simulation": ("docker-compose.yml",),
    "paper": ("docker-compose.yml",),
    "live": COMPOSE_FILES,
}


def _compose_config(tmp_path, files, profiles, env: dict) -> subprocess.CompletedProcess:
    """`podman-compose config`: a real compose implementation (from PyPI; --dry-run needs no container
    runtime) reads the files, interpolates the environment, merges and filters by profile."""
    empty = tmp_path / "empty.env"  # an operator's docker/.env must not decide the outcome here
    empty.write_text("")
    cmd = [sys.executable, "-m", "podman_compose", "--dry-run", "--env-file", str(empty)]
    cmd += [a for f in files for a in ("-f", str(DOCKER / f))]
    cmd += [a for p in profiles for a in ("--profile", p)] + ["config"]
    base = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    return subprocess.run(cmd, cwd=DOCKER, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("profile", sorted(PROFILE_FILES))
def test_a_real_compose_renders_each_profile_with_the_environment_it_documents(tmp_path, profile):
    """Issue 36 §5: each profile renders with exactly the variables docker/.env.example lists (the live
    ones only for live), brings the services its profile names, leaves no variable unresolved, and
    refuses, naming the variable, when any one it needs is unset."""
    files = PROFILE_FILES[profile]
    needed = [n for n in ENV_NAMES if profile == "live" or n not in LIVE_ONLY_VARS]
    env = {n: f"value-of-{n.lower()}" for n in needed}
    done = _compose_config(tmp_path, files, [profile], env)
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = yaml.safe_load(done.stdout)
    raw = {n: sv for f in files for n, sv in yaml.safe_load((DOCKER / f).read_text())["services"].items()}
    assert set(rendered["services"]) == {n for n, sv in raw.items() if profile in sv.get("profiles", [])}
    assert "${" not in done.stdout and "value-of-" in done.stdout
    for name in needed:
        missing = _compose_config(tmp_path, files, [profile], {k: v for k, v in env.items() if k != name})
        assert missing.returncode != 0 and f"required variable {name} is missing" in missing.stderr, name


def test_the_simulation_and_paper_profiles_run_together_without_a_port_clash(tmp_path):
    env = {n: "x" for n in ENV_NAMES if n not in LIVE_ONLY_VARS}
    done = _compose_config(tmp_path, PROFILE_FILES["paper"], ["simulation", "paper"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    services = yaml.safe_load(done.stdout)["services"]
    assert {"bot-simulation", "bot-paper", "gateway"} <= set(services)
    host_ports = [":".join(str(p).split(":")[:-1]) for sv in services.values() for p in sv.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), host_ports


def _env_values(svc: dict) -> dict:
    env = svc.get("environment") or {}
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_non_live_profiles_need_no_live_secrets_and_env_files_are_ignored():
    """compose interpolates every variable of every file it reads before it filters profiles: the
    simulation and paper profiles must not read a file that names the live keys or confirmation."""
    main = (DOCKER / "docker-compose.yml").read_text()
    assert not [v for v in LIVE_ONLY_VARS if v in main]
    main_services = yaml.safe_load(main)["services"]
    assert "bot-live" not in main_services
    live = (DOCKER / "docker-compose.live.yml").read_text()
    assert all(v in live for v in LIVE_ONLY_VARS)
    for path in ("docker/.env", ".env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored: operators keep real keys there"


def test_compose_secrets_come_from_the_environment_without_defaults():
    text = "".join((DOCKER / f).read_text() for f in COMPOSE_FILES)
    secret = re.compile(r"(PASSWORD|SECRET|KEY|TOKEN)", re.IGNORECASE)
    for name, svc in COMPOSE["services"].items():
        for key, value in _env_values(svc).items():
            if secret.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(value)), f"{name}.{key} = {value!r}"
    assert ":-" not in text  # no ${VAR:-default} anywhere
    example = (DOCKER / ".env.example").read_text()
    assert all(line.endswith("=") for line in example.splitlines() if line and not line.startswith("#"))
    assert COMPOSE["services"]["bot-live"]["environment"][CONFIRM_ENV].startswith("${" + CONFIRM_ENV + ":?")


def test_grafana_dashboard_queries_metrics_the_gateway_exports():
    exported = {m.name for m in GatewayMetrics().registry.collect()}
    dash = json.loads((DOCKER / "grafana" / "dashboards" / "cryptobot-gateway.json").read_text())
    assert dash["panels"]
    for panel in dash["panels"]:
        names = set(re.findall(r"\b(sim_[a-z_]+?)(?:_total|_bucket)?\b", panel["targets"][0]["expr"]))
        assert names and names <= exported, (panel["title"], names - exported)
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    gateway = next(j for j in prom["scrape_configs"] if j["job_name"] == "gateway")
    assert gateway["dns_sd_configs"][0]["names"] == ["gateway"] and gateway["dns_sd_configs"][0]["port"] == 8765
    provisioning = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" / "cryptobot.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


LIVE = {
    "dry_run": False,
    "exchange": {"name": "binance", "key": "k", "secret": "s", "ccxt_config": {}},
    "risk": {"max_drawdown": 0.1, "daily_loss": 0.03, "portfolio_heat": 0.15, "correlation_limit": 0.7},
}


def test_live_preflight(monkeypatch):
    monkeypatch.delenv(CONFIRM_ENV, raising=False)
    assert any("--i-understand-live" in p for p in preflight(LIVE))
    assert preflight(LIVE, flag=True) == []
    monkeypatch.setenv(CONFIRM_ENV, "yes")
    assert preflight(LIVE) == []
    assert any("keys" in p for p in preflight({**LIVE, "exchange": {"name": "binance", "key": ""}}))
    assert any(
        "correlation_limit" in p
        for p in preflight({**LIVE, "risk": {"max_drawdown": 0.1, "daily_loss": 0.03, "portfolio_heat": 0.15}})
    )
    assert preflight({**LIVE, "dry_run": True}) == []


LOCAL_API = {
    "public": "http://127.0.0.1:8765/api/v3",
    "private": "http://127.0.0.1:8765/api/v3",
    "v1": "http://127.0.0.1:8765/api/v1",
    "sapi": "http://localhost:8765/sapi/v1",
}


def _exchange(sync_urls, async_urls=None) -> dict:
    ex = {"name": "binance", "ccxt_config": {"urls": sync_urls}}
    ex["ccxt_async_config"] = {"urls": sync_urls if async_urls is None else async_urls}
    return {"dry_run": False, "exchange": ex}


@pytest.mark.parametrize(
    ("urls", "async_urls"),
    [
        ({"logo": "x"}, None),  # a URL override that changes nothing ccxt calls
        ({"logo": "http://127.0.0.1/logo.png"}, None),
        ({"api": {"sapi": "http://127.0.0.1:8765/sapi/v1"}}, None),  # sapi only: orders go to the exchange
        ({"api": {**LOCAL_API, "private": "https://api.binance.com/api/v3"}}, None),  # the real exchange's own URL
        ({"api": {**LOCAL_API, "public": "http://gateway:8765/api/v3"}}, None),  # a host that is not loopback
        ({"api": LOCAL_API}, {"api": {"public": "https://api.binance.com/api/v3"}}),  # candles from the exchange
    ],
)
def test_live_guard_has_no_url_bypass(urls, async_urls):
    assert is_real_exchange(_exchange(urls, async_urls))
    assert not _all_loopback(_freqtrade_clients(_exchange(urls, async_urls)["exchange"]))


def test_an_empty_async_overlay_inherits_ccxt_config():
    """freqtrade merges ccxt_config into every client: an empty ccxt_async_config is local too."""
    exchange = _exchange({"api": LOCAL_API}, {})["exchange"]
    assert not is_real_exchange({"dry_run": False, "exchange": exchange})
    assert _all_loopback(_freqtrade_clients(exchange))


def test_live_guard_accepts_a_local_simulator():
    assert not is_real_exchange(_exchange({"api": LOCAL_API}))
    assert is_real_exchange({"dry_run": False, "exchange": {"name": "binance"}})


@pytest.mark.parametrize("env_confirm", [None, "no"])
def test_live_launcher_refuses_without_confirmation(tmp_path, env_confirm):
    env = {k: v for k, v in __import__("os").environ.items() if k != CONFIRM_ENV}
    env.update({"FREQTRADE__EXCHANGE__KEY": "k", "FREQTRADE__EXCHANGE__SECRET": "s"})
    if env_confirm:
        env[CONFIRM_ENV] = env_confirm
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.live",
            "--config",
            "config/trend-following.json",
            "--config",
            "config/live.json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "refusing to start live: live trading needs --i-understand-live" in run.stderr
    assert "freqtrade" not in run.stdout.lower() or "Bot heartbeat" not in run.stdout


def test_live_launcher_resolves_a_config_for_the_real_exchange(tmp_path):
    env = {
        **__import__("os").environ,
        "FREQTRADE__EXCHANGE__KEY": "live-key-from-env",
        "FREQTRADE__EXCHANGE__SECRET": "live-secret-from-env",
        "FREQTRADE__API_SERVER__PASSWORD": "x" * 20,
    }
    out = tmp_path / "live.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.live",
            "--config",
            "config/trend-following.json",
            "--config",
            "config/live.json",
            "--i-understand-live",
            "--preflight-only",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert "live-key-from-env" not in text and "live-secret-from-env" not in text and "x" * 20 not in text
    cfg = json.loads(text)
    assert cfg["dry_run"] is False and "urls" not in cfg["exchange"].get("ccxt_config", {})
    assert cfg["risk"] == LIVE["risk"] and cfg["strategy"] == "TrendFollowingEnsemble"


def _launch(
    tmp_path, extra_cfg: dict | None, args: list[str] = (), env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    env = {
        **__import__("os").environ,
        "FREQTRADE__EXCHANGE__KEY": "k-from-env",
        "FREQTRADE__EXCHANGE__SECRET": "s-from-env",
        "FREQTRADE__API_SERVER__PASSWORD": "x" * 20,
        **(env_extra or {}),
    }
    configs = ["--config", "config/trend-following.json", "--config", "config/live.json"]
    if extra_cfg is not None:
        (tmp_path / "extra.json").write_text(json.dumps(extra_cfg))
        configs += ["--config", str(tmp_path / "extra.json")]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.live",
            *configs,
            "--i-understand-live",
            "--preflight-only",
            "--out",
            str(tmp_path / "out.json"),
            *args,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"exchange": {"secret": "in-a-file"}}, "secrets in the config files (exchange.secret)"),
        ({"api_server": {"jwt_secret_key": "in-a-file-too-long-enough"}}, "api_server.jwt_secret_key"),
        ({"telegram": {"enabled": True, "token": "123:abc", "chat_id": "1"}}, "telegram.token"),
        ({"risk": {"max_drawdown": -0.5}}, "invalid risk limits: risk.max_drawdown must be a fraction"),
        ({"risk": {"daily_loss": 5}}, "invalid risk limits: risk.daily_loss must be a fraction"),
    ],
)
def test_live_launcher_refuses_secrets_in_files_and_invalid_limits(tmp_path, extra, message):
    run = _launch(tmp_path, extra)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert not (tmp_path / "out.json").exists()


def test_live_launcher_refuses_configs_after_the_preflight_and_blank_passwords(tmp_path):
    (tmp_path / "late.json").write_text(json.dumps({"dry_run": True}))
    for late in (["-c", str(tmp_path / "late.json")], [f"-c{tmp_path / 'late.json'}"]):
        run = _launch(tmp_path, None, late)
        assert run.returncode == 2 and "would reach freqtrade after the preflight" in run.stderr, run.stderr
    run = _launch(tmp_path, None, env_extra={"FREQTRADE__API_SERVER__PASSWORD": "   "})
    assert run.returncode == 2 and "FREQTRADE__API_SERVER__PASSWORD" in run.stderr


def test_live_launcher_output_is_owner_only(tmp_path):
    run = _launch(tmp_path, None)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.json").stat().st_mode & 0o077 == 0


# --- every ccxt client freqtrade builds (freqtrade 2026.9 `Exchange.__init__`) ---------------------------
REAL = "https://api.binance.com/api/v3"
CCXT_KEYS = ("ccxt_config", "ccxt_sync_config", "ccxt_async_config")


def _freqtrade_clients(exchange: dict) -> list:
    """The ccxt objects stock freqtrade builds from this exchange section: orders, candles, websocket."""
    from freqtrade.enums import RunMode
    from freqtrade.resolvers import ExchangeResolver

    config = {
        "dry_run": False,
        "runmode": RunMode.LIVE,
        "stake_currency": "USDT",
        "exchange": {"name": "binance", **copy.deepcopy(exchange)},
    }
    ex = ExchangeResolver.load_exchange(config, validate=False)
    try:
        return [{g: c.urls["api"][g] for g in TRADING_APIS} for c in (ex._api, ex._api_async, ex._ws_async)]
    finally:
        ex.close()


def _all_loopback(clients: list) -> bool:
    return all(urlparse(u).hostname in {"127.0.0.1", "localhost"} for c in clients for u in c.values())


@pytest.mark.parametrize("key", CCXT_KEYS)
def test_live_guard_sees_a_real_url_in_each_ccxt_config(key):
    """The bypass: ccxt_config and ccxt_async_config on loopback, ccxt_sync_config (merged into the
    client that signs orders) pointing at the real exchange. Each of the three configs, checked."""
    exchange = {k: {"urls": {"api": dict(LOCAL_API)}} for k in ("ccxt_config", "ccxt_async_config")}
    exchange.setdefault(key, {"urls": {"api": {}}})["urls"]["api"]["private"] = REAL
    assert not _all_loopback(_freqtrade_clients(exchange))  # freqtrade really would sign there
    assert is_real_exchange({"dry_run": False, "exchange": exchange})
    with pytest.raises(NotLoopbackError, match=r"not a loopback|cannot resolve"):  # CI has no DNS
        assert_loopback(exchange)


_overlay = st.fixed_dictionaries(
    {},
    optional={
        "urls": st.fixed_dictionaries(
            {},
            optional={
                "api": st.dictionaries(
                    st.sampled_from(TRADING_APIS),
                    st.sampled_from([LOCAL_API["public"], REAL, "http://localhost:8765/sapi/v1"]),
                    max_size=3,
                )
            },
        )
    },
)


@settings(max_examples=25, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: _overlay for k in CCXT_KEYS}))
def test_live_guard_agrees_with_the_clients_freqtrade_builds(exchange):
    """Property: the guard calls a config local exactly when every trading URL of every ccxt client
    stock freqtrade constructs from it (orders, candles, websocket) is loopback."""
    assert is_real_exchange({"dry_run": False, "exchange": exchange}) != _all_loopback(_freqtrade_clients(exchange))


def test_live_guard_fails_closed_on_odd_input():
    assert is_real_exchange({"dry_run": False, "exchange": "binance"})
    assert is_real_exchange({"dry_run": False, "exchange": {"name": "binance", "ccxt_sync_config": "x"}})
    long_label = {"api": {g: f"http://{'a' * 64}.localhost/api" for g in TRADING_APIS}}
    with pytest.raises(NotLoopbackError, match="cannot resolve"):  # idna refuses a 64-character label
        assert_loopback({"ccxt_config": {"urls": long_label}})


@pytest.mark.parametrize("key", CCXT_KEYS)
def test_live_preflight_refuses_url_overlays_in_any_ccxt_config(monkeypatch, key):
    """A live bot talks to the exchange's own URLs only, whatever brought an overlay in (a file, an
    environment variable freqtrade merges): our strategies' bot_start runs this preflight too."""
    monkeypatch.setenv(CONFIRM_ENV, "yes")
    config = copy.deepcopy(LIVE)
    config["exchange"][key] = {"urls": {"api": {"private": "https://elsewhere.example/api/v3"}}}
    assert any(f"remove exchange.{key}.urls" in p for p in preflight(config))


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (
            {"exchange": {"ccxt_sync_config": {"apiKey": "k-in-a-file", "secret": "s-in-a-file"}}},
            "exchange.ccxt_sync_config.apiKey, exchange.ccxt_sync_config.secret",
        ),
        (
            {"exchange": {"ccxt_config": {"headers": {"X-MBX-APIKEY": "k-in-a-header"}}}},
            "exchange.ccxt_config.headers.X-MBX-APIKEY",
        ),
        (
            {"exchange": {"ccxt_async_config": {"options": {"privateKey": "pk"}}}},
            "exchange.ccxt_async_config.options.privateKey",
        ),
        ({"db_url": "postgresql://bot:db-password@db.internal/trades"}, "db_url"),
        ({"discord": {"enabled": True, "webhook_url": "https://discord.example/hook"}}, "discord.webhook_url"),
    ],
)
def test_live_launcher_refuses_credentials_wherever_they_sit(tmp_path, extra, where):
    run = _launch(tmp_path, extra)
    assert run.returncode == 2 and f"secrets in the config files ({where})" in run.stderr, run.stderr
    assert not (tmp_path / "out.json").exists()


def test_live_launcher_drops_every_url_overlay(tmp_path):
    """No overlay survives into the live config: the order client must talk to the exchange itself."""
    redirect = {"urls": {"api": {"private": "https://elsewhere.example/api/v3"}}, "hostname": "elsewhere.example"}
    run = _launch(tmp_path, {"exchange": {k: copy.deepcopy(redirect) for k in CCXT_KEYS}})
    assert run.returncode == 0, run.stderr
    exchange = json.loads((tmp_path / "out.json").read_text())["exchange"]
    assert "elsewhere" not in json.dumps(exchange)
    assert all(c["private"] == REAL for c in _freqtrade_clients(exchange))
