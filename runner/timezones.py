"""Azure's time zone names (Windows names: "Pacific Standard Time", as azure-ai-ml's TimeZone enum
has them, the only ones a schedule's trigger takes) and the IANA zone each is, which Python's
zoneinfo reads: the bundled table (timezones.json, dated) made from Unicode CLDR's
windowsZones.xml (each Windows name's territory "001" zone). Stdlib only: validate and plan read
it.

`python -m runner.timezones SOURCE` regenerates the table from CLDR's
common/supplemental/windowsZones.xml, or from cldr-json's supplemental/windowsZones.json (the
same data as JSON, as Unicode publishes it in the cldr-core package), for the names of the
installed azure-ai-ml's TimeZone enum."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BUNDLED = Path(__file__).with_name("timezones.json")
# Windows names the SDK still lists that CLDR no longer maps (Windows retired them): the zone each
# was, from Windows' own description of it
RETIRED = {
    "Mid-Atlantic Standard Time": "Etc/GMT+2",  # (UTC-02:00) Mid-Atlantic - Old
    "Kamchatka Standard Time": "Asia/Kamchatka",  # (UTC+12:00) Petropavlovsk-Kamchatsky - Old
}


@functools.cache
def table() -> dict[str, str]:
    """Windows name -> IANA name, as bundled."""
    return dict(json.loads(BUNDLED.read_text(encoding="utf-8"))["zones"])


def names() -> list[str]:
    """The time zone names a schedule takes (Azure's)."""
    return list(table())


def zone(name: str) -> ZoneInfo | None:
    """The zone Azure means by `name` (a Windows name; the IANA zone it maps to); None for a
    name Azure does not take, or one this machine's time zone database lacks."""
    iana = table().get(name)
    try:
        return ZoneInfo(iana) if iana else None
    except ZoneInfoNotFoundError:
        return None


# --- the generator -------------------------------------------------------------------------------

_XML_ZONE = re.compile(r'<mapZone\s+other="([^"]+)"\s+territory="001"\s+type="([^"]+)"\s*/>')


def parse(text: str) -> tuple[dict[str, str], str]:
    """CLDR's windowsZones (XML or cldr-json) -> (Windows name -> IANA name, CLDR's version)."""
    if text.lstrip().startswith("{"):
        data = json.loads(text)["supplemental"]
        zones = {
            z["mapZone"]["_other"]: z["mapZone"]["_type"].split()[0]
            for z in data["windowsZones"]["mapTimezones"]
            if z["mapZone"]["_territory"] == "001"
        }
        return zones, str(data.get("version", {}).get("_cldrVersion", "unknown"))
    version = re.search(r'typeVersion="([^"]+)"', text)
    zones = {other: kind.split()[0] for other, kind in _XML_ZONE.findall(text)}
    return zones, f"tz {version[1]}" if version else "unknown"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m runner.timezones windowsZones.xml|windowsZones.json")
        return 2
    from azure.ai.ml.constants import TimeZone  # the names Azure takes

    mapped, version = parse(Path(argv[0]).read_text(encoding="utf-8"))
    zones, missing = {}, []
    for tz in TimeZone:
        iana = mapped.get(tz.value) or RETIRED.get(tz.value)
        if iana is None:
            missing.append(tz.value)
        else:
            zones[tz.value] = iana
    out = {
        "as_of": dt.date.today().isoformat(),
        "source": (
            f"Unicode CLDR {version} windowsZones (territory 001), for the names of "
            "azure-ai-ml's TimeZone enum; names CLDR no longer maps from runner/timezones.py "
            "RETIRED; regenerate with python -m runner.timezones SOURCE"
        ),
        "zones": zones,
    }
    BUNDLED.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"{len(zones)} time zones mapped" + (f"; not mapped: {missing}" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
