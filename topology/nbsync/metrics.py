"""Prometheus metrics of the NB side: transactions, their size and latency, owned rows."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NB_TRANSACTIONS = Counter(
    "ycloud_nb_transactions_total", "NB transactions committed by the controller", ["result"])
NB_TRANSACTION_SIZE = Histogram(
    "ycloud_nb_transaction_size", "Row operations per NB transaction",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000))
NB_TRANSACTION_SECONDS = Histogram(
    "ycloud_nb_transaction_seconds", "Latency of NB transactions (plan + commit)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
NB_OWNED_ROWS = Gauge("ycloud_nb_owned_rows", "NB rows owned by the controller", ["table"])


def observe_transaction(size: int, seconds: float, result: str) -> None:
    NB_TRANSACTIONS.labels(result=result).inc()
    if result == "ok":
        NB_TRANSACTION_SIZE.observe(size)
        NB_TRANSACTION_SECONDS.observe(seconds)


def set_owned_rows(counts: dict[str, int]) -> None:
    for table, count in counts.items():
        NB_OWNED_ROWS.labels(table=table).set(count)
