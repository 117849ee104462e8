"""Hourly prices of VM sizes (USD retail, Linux, pay as you go: what an Azure ML compute bills per
node), from Azure's Retail Prices API (no sign-in; MLRUN_PRICES_URL points elsewhere). An answer is
cached a day under the user's cache folder; with neither the API nor a cached answer, the bundled
table (prices.json, dated) answers. A lookup never fails and never takes longer than its timeout
(MLRUN_PRICES_TIMEOUT seconds, default 2); an API that did not answer is not asked again for ten
minutes. MLRUN_PRICES_URL=off asks nothing, reads and writes no cache: the bundled table answers.
Stdlib only: plan uses it.

`python -m runner.prices [REGION ...]` regenerates the bundled table from the API."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_dir, digest

URL = "https://prices.azure.com/api/retail/prices"
BUNDLED = Path(__file__).with_name("prices.json")
TIMEOUT = 2.0
DAY = 86_400
RETRY_AFTER = 600  # seconds an unanswered API is left alone
SIZES = (  # the bundled table's: what the DP-100 labs and Azure's examples use
    "Standard_DS11_v2",
    "Standard_DS12_v2",
    "Standard_DS2_v2",
    "Standard_DS3_v2",
    "Standard_D2as_v4",
    "Standard_D4s_v3",
    "Standard_E4ds_v4",
    "Standard_F4s_v2",
    "Standard_NC6s_v3",
    "Standard_NC4as_T4_v3",
)


@dataclass(frozen=True)
class Quote:
    prices: dict[str, float | None]  # size, as asked -> $/h per node (None: not found)
    source: str  # live, cache or bundled
    as_of: str  # YYYY-MM-DD
    currency: str = "USD"


def sku(size: str) -> str:
    """The API's name of a size (its filter is case-sensitive): STANDARD_NC6S_V3 ->
    Standard_NC6s_v3, standard_ds11_v2 -> Standard_DS11_v2."""
    parts = size.split("_")
    if parts[0].lower() == "standard":
        parts = parts[1:]
    out = []
    for i, part in enumerate(parts):
        m = re.fullmatch(r"([A-Za-z]+)(\d+)([A-Za-z]*)(-\d+[A-Za-z]*)?", part)
        if i == 0 and m:
            out.append(
                m.group(1).upper() + m.group(2) + m.group(3).lower() + (m.group(4) or "").lower()
            )
        elif re.fullmatch(r"[vV]\d+", part):
            out.append(part.lower())
        else:
            out.append(part.upper())
    return "_".join(["Standard", *out])


def quote(region: str, sizes: Iterable[str], timeout: float | None = None) -> Quote:
    """The price of each size in `region`: live, else cached, else bundled."""
    sizes = sorted({s for s in sizes if s})
    region = region.lower()
    url = os.environ.get("MLRUN_PRICES_URL") or URL
    offline = url == "off"
    # an answer is kept per region and per API (an emulator's prices are not Azure's)
    path = cache_dir() / "prices" / f"{region}-{digest(url.encode())[:12]}.json"
    cached = {} if offline else _read(path)
    known = cached.get("prices") or {}
    fresh = time.time() - cached.get("fetched", 0) < DAY
    if fresh and all(sku(s) in known for s in sizes):
        return Quote({s: known[sku(s)] for s in sizes}, "cache", cached["as_of"])
    if not offline and time.time() - cached.get("failed", 0) >= RETRY_AFTER:
        limit = (
            timeout
            if timeout is not None
            else float(os.environ.get("MLRUN_PRICES_TIMEOUT", TIMEOUT))
        )
        try:
            found = fetch(region, [sku(s) for s in sizes], time.monotonic() + limit)
        except (OSError, ValueError):  # unreachable, slow, or not the API's answer
            _write(path, {**cached, "failed": time.time()})
        else:
            today = dt.date.today().isoformat()
            merged = {**(known if fresh else {}), **found}
            _write(path, {"as_of": today, "fetched": time.time(), "prices": merged})
            return Quote({s: found[sku(s)] for s in sizes}, "live", today)
    if known and all(sku(s) in known for s in sizes):
        return Quote({s: known[sku(s)] for s in sizes}, "cache", cached["as_of"])
    table = _read(BUNDLED)
    listed = {k.lower(): v for k, v in ((table.get("regions") or {}).get(region) or {}).items()}
    return Quote({s: listed.get(sku(s).lower()) for s in sizes}, "bundled", table.get("as_of", "?"))


def fetch(region: str, skus: list[str], deadline: float) -> dict[str, float | None]:
    """Each SKU's hourly Linux pay-as-you-go price in `region` (None: the API has none), asked of
    the API before `deadline` (else TimeoutError)."""
    base = os.environ.get("MLRUN_PRICES_URL") or URL
    found: dict[str, float | None] = {}
    for name in skus:
        query = (
            f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and "
            f"armSkuName eq '{name}' and priceType eq 'Consumption'"
        )
        url: str | None = f"{base}?{urllib.parse.urlencode({'$filter': query})}"
        prices = []
        while url:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the prices API did not answer in time")
            with urllib.request.urlopen(url, timeout=left) as response:
                page = json.loads(response.read())
            prices += [i["retailPrice"] for i in page.get("Items") or [] if _linux_hourly(i)]
            url = page.get("NextPageLink")
        found[name] = min(prices) if prices else None
    return found


def _linux_hourly(item: dict) -> bool:
    """A pay-as-you-go Linux rate per hour: not Spot, not Low Priority, not Windows."""
    return (
        item.get("type") == "Consumption"
        and item.get("unitOfMeasure") == "1 Hour"
        and not str(item.get("skuName", "")).endswith((" Spot", " Low Priority"))
        and "Windows" not in str(item.get("productName", ""))
        and isinstance(item.get("retailPrice"), (int, float))
    )


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is a cache not used


def main(argv: list[str]) -> int:
    """Regenerate the bundled table: the sizes in SIZES, in each region given (default eastus,
    westeurope), live from the API."""
    regions = argv or ["eastus", "westeurope"]
    table: dict = {"as_of": dt.date.today().isoformat(), "currency": "USD", "regions": {}}
    for region in regions:
        found = fetch(region, list(SIZES), time.monotonic() + 120)
        table["regions"][region] = {k: v for k, v in found.items() if v is not None}
        print(f"{region}: {len(table['regions'][region])} of {len(SIZES)} sizes priced")
    BUNDLED.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
