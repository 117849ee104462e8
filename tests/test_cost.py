"""What a lab costs, in the plan: each compute's price and the lab's per hour, from the Retail
Prices API (the emulator's, paged and filtered as the real one), a day's cache, or the bundled
table when the API is down or silent (within the lookup's timeout); and idle safety: a compute
instance shuts down after 60 idle minutes unless the spec says otherwise."""

import json
import socket
import threading
import time

import pytest
from conftest import run_mlrun

LAB = """\
name: priced
workspace: {name: ws-priced, location: eastus}
computes:
  ci-priced: {type: computeinstance, size: STANDARD_DS11_V2}
  gpu: {type: amlcompute, size: Standard_NC6s_v3, min_instances: 0, max_instances: 2}
"""


def plan(folder, env, *args):
    return run_mlrun("plan", "lab.yaml", *args, cwd=folder, env=env, check=0)


@pytest.fixture
def lab(tmp_path, azure_emulator):
    """A lab folder, and an environment whose prices come from the emulator, with a cache of the
    test's own."""
    (tmp_path / "lab.yaml").write_text(LAB)
    env = {**azure_emulator.env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return tmp_path, env


@pytest.mark.azure
def test_prices_come_live_from_the_api_then_from_the_cache(lab, azure_emulator):
    folder, env = lab
    mark = azure_emulator.mark()
    data = json.loads(plan(folder, env, "--json").stdout)["cost"]
    asked = [p for m, p in calls(azure_emulator, mark) if p.startswith("/api/retail/prices")]
    assert len(asked) == 6  # two sizes, five rows each, two rows a page: three pages each
    # the Linux pay-as-you-go rows, not Windows, Spot, Low Priority or DevTest ones
    assert [(i["address"], i["unit_price"]) for i in data["items"]] == [
        ("compute.ci-priced", 0.2),
        ("compute.gpu", 3.5),
    ]
    assert (data["source"], data["per_hour_running"], data["per_hour_idle"]) == ("live", 7.2, 0.0)
    assert data["as_of"] == time.strftime("%Y-%m-%d")
    text = plan(folder, env).stdout
    assert "compute.ci-priced            computeinstance STANDARD_DS11_V2, idle shutdown" in text
    assert "0 opts out); $0.20/h\n" in text
    assert "amlcompute Standard_NC6s_v3, 0..2 nodes; $0.00/h idle, $7.00/h at 2 nodes" in text
    assert (
        "cost on azure: $7.20/h while running, $0.00/h idle (USD retail, eastus, prices as of "
        f"{data['as_of']}, cache; disks, storage and networking not priced)" in text
    )
    assert not [p for m, p in calls(azure_emulator, mark) if "/retail/" in p][6:]  # cached


@pytest.mark.azure
def test_a_prices_api_that_fails_leaves_the_bundled_table_and_is_not_asked_again(
    lab, azure_emulator
):
    folder, env = lab
    azure_emulator.fault(method="GET", path_regex="/api/retail/prices", status=503, count=1)
    mark = azure_emulator.mark()
    result = plan(folder, env)
    assert result.returncode == 0, result.stderr
    assert "prices as of 2026-12-01, bundled;" in result.stdout
    assert "; $0.19/h\n" in result.stdout  # the table's DS11_v2
    plan(folder, env)  # within ten minutes: the API is left alone
    assert len([p for m, p in calls(azure_emulator, mark) if "/retail/" in p]) == 1


def test_a_silent_prices_api_costs_a_plan_its_timeout_and_no_more(tmp_path):
    """An API that takes the connection and never answers: the plan waits the lookup's timeout
    (MLRUN_PRICES_TIMEOUT), says the prices are the bundled table's, and the next plan does not
    wait again."""
    (tmp_path / "lab.yaml").write_text(LAB)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # and never answered
            except TimeoutError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    env = {
        "MLRUN_PRICES_URL": f"http://127.0.0.1:{server.getsockname()[1]}/api/retail/prices",
        "MLRUN_PRICES_TIMEOUT": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    try:
        started = time.monotonic()
        result = run_mlrun("plan", "lab.yaml", cwd=tmp_path, env=env, check=0, timeout=60)
        took = time.monotonic() - started
        assert "prices as of 2026-12-01, bundled;" in result.stdout
        assert len(held) == 1
        assert took < 30, f"the plan took {took:.1f} s with a 1 s price lookup"  # not hung
        run_mlrun("plan", "lab.yaml", cwd=tmp_path, env=env, check=0, timeout=60)
        assert len(held) == 1  # not asked again
    finally:
        stop.set()
        for conn in held:
            conn.close()
        server.close()


def test_idle_shutdown_is_on_by_default_and_an_explicit_choice_otherwise(mlrun, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text(LAB)
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert (
        "+ compute.ci-priced            computeinstance STANDARD_DS11_V2, idle shutdown after 60 "
        "min (default; idle_time_before_shutdown_minutes: 0 opts out); $0.19/h\n" in out
    )
    spec.write_text(
        LAB.replace(
            "size: STANDARD_DS11_V2}",
            "size: STANDARD_DS11_V2, idle_time_before_shutdown_minutes: 0}",
        )
    )
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert "STANDARD_DS11_V2, no idle shutdown; $0.19/h, idle too (no idle shutdown)\n" in out
    assert "$6.31/h while running, $0.19/h idle" in out

    spec.write_text(
        LAB.replace(
            "size: STANDARD_DS11_V2}",
            "size: STANDARD_DS11_V2, idle_time_before_shutdown_minutes: 10}",
        ).replace("min_instances: 0", "min_instances: 1")
    )
    code, out, err = mlrun("validate", spec, cwd=tmp_path)
    assert code == 1
    assert (
        "lab.yaml:4:97: error: $.computes.ci-priced.idle_time_before_shutdown_minutes: 10 "
        "minutes: Azure ML shuts an idle instance down after 15 to 4320 minutes" in err
    )
    assert (
        "lab.yaml:5:66: warning: $.computes.gpu.min_instances: min_instances: 1 keeps 1 node "
        "running, and billing, while the cluster is idle" in err
    )


def calls(emulator, since):
    return [(r["method"], r["path"]) for r in emulator.requests(since)]


def test_a_local_lab_past_its_expiry_is_warned_of_until_extended_or_destroyed(mlrun, tmp_path):
    spec = tmp_path / "lab.yaml"
    body = (
        "name: brief\nworkspace: {name: ws-brief}\nexpires_after: WHEN\n"
        "jobs:\n  hi: {command: echo hi}\n"
    )
    spec.write_text(body.replace("WHEN", "tomorrow"))
    code, _, err = mlrun("validate", spec, cwd=tmp_path)
    assert code == 1 and "lab.yaml:3:16: error: $.expires_after: 'tomorrow' is neither a " in err
    spec.write_text(body.replace("WHEN", "2026-01-01T00:00:00Z"))
    code, _, err = mlrun("plan", spec, cwd=tmp_path)
    assert (code, err) == (0, "")  # not applied yet: nothing has expired
    assert mlrun("apply", "-y", spec, cwd=tmp_path)[0] == 0
    warned = "warning: this lab expired at 2026-01-01T00:00:00Z (expires_after: 2026-01-01T"
    for command in ("plan", "status"):
        assert warned in mlrun(command, spec, cwd=tmp_path)[2]
    code, out, err = mlrun("apply", "-y", spec, "--extend", "1h", cwd=tmp_path)
    assert code == 0 and "The lab now expires at " in out and "expired" not in err
    expires = out.split("The lab now expires at ")[1].split(".")[0]
    assert 3500 < (moment(expires) - time.time()) < 3700  # an hour from now, not from January
    assert mlrun("plan", spec, cwd=tmp_path)[2] == ""
    code, _, err = mlrun("apply", "-y", spec, "--extend", "soon", cwd=tmp_path)
    assert code == 1 and "--extend soon: a duration, such as 30m, 2h or 1d" in err
    code, _, err = mlrun("destroy", "--expired", "-y", cwd=tmp_path)
    assert code == 1 and "--expired finds labs on Azure by their tags: add --target azure" in err


def moment(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_an_online_deployment_bills_from_its_start_until_deleted(tmp_path, monkeypatch):
    """status's billable list on a target that bills: instance_type x instance_count per hour,
    and the cost since the deployment's servers started (bundled prices: no network)."""
    import datetime as dt

    from runner import cost, spec as spec_mod

    monkeypatch.setenv("MLRUN_PRICES_URL", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {python_function: {}}\n")
    (tmp_path / "lab.yaml").write_text(
        "name: served\nworkspace: {name: ws-served, location: eastus}\nendpoints:\n"
        "  my-ep:\n    traffic: {blue: 100}\n    deployments:\n"
        "      blue: {model: {path: ./model, type: mlflow_model}, instance_type: Standard_DS3_v2,"
        " instance_count: 2}\n"
    )
    spec = spec_mod.load(tmp_path / "lab.yaml")
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    two_hours_ago = "2026-12-07T10:00:00Z"
    got = cost.billable(spec, {}, now.timestamp(), {"my-ep/blue": {"since": two_hours_ago}})
    (item,) = got
    assert (item["address"], item["state"], item["per_hour"]) == (
        "deployment.my-ep/blue",
        "2 instances",
        0.586,
    )
    assert item["cost_so_far"] == round(0.293 * 2 * 2, 2)
    # one the spec no longer has is not priced from a guess: it is left to the plan's destroy
    assert cost.billable(spec, {}, now.timestamp(), {"gone/blue": {}}) == []


def test_an_unknown_price_is_never_shown_as_zero(tmp_path):
    # was: `cost on azure: $0.00/h while running ... not priced: STANDARD_DS11_V2` in westus
    off = {"MLRUN_PRICES_URL": "off"}  # the bundled table answers
    (tmp_path / "lab.yaml").write_text(LAB.replace("eastus", "westus"))
    data = json.loads(plan(tmp_path, off, "--json").stdout)["cost"]
    assert data["not_priced"] == ["STANDARD_DS11_V2", "Standard_NC6s_v3"]
    line = plan(tmp_path, off).stdout.splitlines()[-2]
    assert line == (
        "cost on azure: not known (no westus price for STANDARD_DS11_V2, Standard_NC6s_v3: USD "
        f"retail prices as of {data['as_of']}, bundled)"
    )
    # one size priced, one not: what is known is a floor
    (tmp_path / "lab.yaml").write_text(LAB.replace("Standard_NC6s_v3", "Standard_M128"))
    line = plan(tmp_path, off).stdout.splitlines()[-2]
    assert line.startswith("cost on azure: at least $0.19/h while running, at least $0.00/h idle")
    assert "; not priced: Standard_M128; disks" in line
