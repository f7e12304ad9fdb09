"""Prometheus metrics of the gateway and venue (served at /metrics), plus an optional request log."""

from __future__ import annotations

import csv
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_MS = (5, 10, 20, 30, 40, 50, 60, 70, 80, 100, 125, 150, 200, 300, 500, 1000, 2000)
SLIPPAGE_BUCKETS_BPS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 100, 200)


class GatewayMetrics:
    def __init__(self, request_log: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sim_requests", "Requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "sim_request_latency_ms",
            "Modelled round-trip latency (simulated ms)",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.service = Histogram(
            "sim_request_service_ms",
            "Gateway processing time (clock ms)",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.faults = Counter("sim_faults_injected", "Injected faults", ["kind"], registry=r)
        self.orders = Counter("sim_orders", "Orders accepted by the venue", ["side", "type"], registry=r)
        self.fills = Counter("sim_fills", "Venue fills", ["side", "liquidity"], registry=r)
        self.slippage = Histogram(
            "sim_fill_slippage_bps",
            "Fill price vs mid at arrival, adverse positive (bps)",
            ["side"],
            buckets=SLIPPAGE_BUCKETS_BPS,
            registry=r,
        )
        self.ws_messages = Counter("sim_ws_messages", "Stream messages pushed over WebSocket", registry=r)
        self.ws_connections = Gauge("sim_ws_connections", "Open WebSocket stream connections", registry=r)
        self.ws_pusher_failures = Counter(
            "sim_ws_pusher_failures", "Stream pushers that failed (connection closed, 1011)", registry=r
        )
        self._log = None
        if request_log:
            Path(request_log).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(request_log, "a", newline="")  # noqa: SIM115 (lives as long as the server)
            self._log = csv.writer(self._fh)
            if self._fh.tell() == 0:
                self._log.writerow(["time_ms", "method", "endpoint", "status", "latency_ms", "service_ms", "fault"])

    def observe(
        self,
        time_ms: int,
        method: str,
        endpoint: str,
        status: int,
        latency_ms: float,
        service_ms: float,
        fault: str | None,
    ) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(latency_ms)
        self.service.labels(endpoint).observe(service_ms)
        if fault:
            self.faults.labels(fault).inc()
        if self._log:
            self._log.writerow(
                [time_ms, method, endpoint, status, round(latency_ms, 3), round(service_ms, 3), fault or ""]
            )

    def exposition(self) -> bytes:
        if self._log:
            self._fh.flush()
        return generate_latest(self.registry)

    def close(self) -> None:
        if self._log:
            self._fh.close()
