"""Per-version request figures scraped from the Prometheus endpoints of a fleet."""
from typing import Dict, List, Optional, Sequence, Tuple

from common.serving_contract import REQUEST_COUNT, REQUEST_LATENCY
from engine.rollout import RolloutError


def fetch_metrics_text(url: str, timeout_seconds: float = 5.0) -> str:
    """The Prometheus exposition text at `url`."""
    import urllib.error  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as reply:
            return reply.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as err:
        raise RolloutError(f"cannot read metrics from {url}: {err}") from err


def fleet_version_metrics(urls: Sequence[str], model_name: str) -> Dict[str, Dict[str, float]]:
    """Per-version request figures over the Prometheus endpoints of a fleet.

    Reads riskpipe serve's metrics, which carry a `version` label beside TF
    Serving's names (tensorflow_model_server's own carry none, so a canary
    cannot be told from stable there). Counts are summed over the servers and
    their latency histograms merged; a percentile is the upper bound of the
    bucket it falls in. Requests naming no version (status calls) are left out.
    """
    return version_metrics_from_texts([fetch_metrics_text(url) for url in urls], model_name)


def version_metrics_from_texts(texts: Sequence[str],
                               model_name: str) -> Dict[str, Dict[str, float]]:
    from prometheus_client.parser import (  # pylint: disable=import-outside-toplevel
        text_string_to_metric_families)

    out: Dict[str, Dict[str, float]] = {}
    buckets: Dict[str, Dict[float, float]] = {}
    latency_sums: Dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                version = labels.get("version")
                if labels.get("model_name") != model_name or not version:
                    continue
                figures = out.setdefault(version, {"requests": 0.0, "errors": 0.0})
                if family.name == REQUEST_COUNT:
                    figures["requests"] += sample.value
                    if labels.get("status") != "OK":
                        figures["errors"] += sample.value
                elif family.name == REQUEST_LATENCY and sample.name.endswith("_bucket"):
                    merged = buckets.setdefault(version, {})
                    bound = float(labels["le"])
                    merged[bound] = merged.get(bound, 0.0) + sample.value
                elif family.name == REQUEST_LATENCY and sample.name.endswith("_sum"):
                    latency_sums[version] = latency_sums.get(version, 0.0) + sample.value
    for version, figures in out.items():
        cumulative = sorted(buckets.get(version, {}).items())
        figures["latency_us_p50"] = _bucket_percentile(cumulative, 0.50)
        figures["latency_us_p99"] = _bucket_percentile(cumulative, 0.99)
        figures["latency_us_mean"] = (latency_sums[version] / figures["requests"]
                                      if version in latency_sums and figures["requests"]
                                      else None)
    return out


def _bucket_percentile(cumulative: List[Tuple[float, float]], q: float) -> Optional[float]:
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    target = q * cumulative[-1][1]
    for bound, count in cumulative:
        if count >= target:
            return bound
    return cumulative[-1][0]
