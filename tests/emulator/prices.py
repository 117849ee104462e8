"""The Azure Retail Prices API (`GET /api/retail/prices?$filter=...`, no sign-in) as mlrun's plan
asks it: `eq` terms joined by `and`, values compared case-sensitively as the real API does, pages
of PAGE items linked by NextPageLink. Each size has the rows a real answer mixes in: Windows,
Spot, Low Priority and DevTest rates beside the Linux pay-as-you-go one (the price to take)."""

import re
import urllib.parse

from server import Reply, error, route

PAGE = 2
LINUX = {  # (region, armSkuName) -> $/h: made up for the emulator, shaped like the real ones
    ("eastus", "Standard_DS11_v2"): 0.2,
    ("eastus", "Standard_DS3_v2"): 0.3,
    ("eastus", "Standard_NC6s_v3"): 3.5,
    ("westeurope", "Standard_DS11_v2"): 0.25,
}
TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$")


def _rows(region: str, sku: str, price: float) -> list[dict]:
    meter = sku.removeprefix("Standard_").replace("_", " ")
    series = f"Virtual Machines {meter.split()[0]} Series"
    base = {
        "currencyCode": "USD",
        "serviceName": "Virtual Machines",
        "armRegionName": region,
        "armSkuName": sku,
        "unitOfMeasure": "1 Hour",
        "priceType": "Consumption",
    }
    return [
        {
            **base,
            "type": "Consumption",
            "skuName": meter,
            "productName": f"{series} Windows",
            "retailPrice": round(price * 1.8, 4),
        },
        {
            **base,
            "type": "Consumption",
            "skuName": f"{meter} Spot",
            "productName": series,
            "retailPrice": round(price * 0.2, 4),
        },
        {
            **base,
            "type": "Consumption",
            "skuName": meter,
            "productName": series,
            "retailPrice": price,
        },
        {
            **base,
            "type": "DevTestConsumption",
            "skuName": meter,
            "productName": series,
            "retailPrice": round(price * 0.5, 4),
        },
        {
            **base,
            "type": "Consumption",
            "skuName": f"{meter} Low Priority",
            "productName": series,
            "retailPrice": round(price * 0.25, 4),
        },
    ]


@route("GET", r"/api/retail/prices")
def retail_prices(ctx):
    terms = {}
    for part in re.split(r"\s+and\s+", ctx.q("$filter") or "", flags=re.I):
        m = TERM.match(part)
        if not m:
            return error(400, "BadRequest", f"The emulator filters by eq terms only: '{part}'.")
        terms[m.group(1)] = m.group(2)
    items = [
        row
        for (region, sku), price in LINUX.items()
        for row in _rows(region, sku, price)
        if all(row.get(k) == v for k, v in terms.items())
    ]
    skip = int(ctx.q("$skip") or 0)
    page = items[skip : skip + PAGE]
    more = skip + PAGE < len(items)
    query = urllib.parse.urlencode({"$filter": ctx.q("$filter") or "", "$skip": skip + PAGE})
    link = f"{ctx.app.base}/api/retail/prices?{query}" if more else None
    return Reply(
        200,
        {"BillingCurrency": "USD", "Items": page, "NextPageLink": link, "Count": len(page)},
    )
