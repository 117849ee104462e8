"""A spec is loaded one way: each section read once per load (runner/sections.py holds them,
built as validate checks), the YAML document left YAML, and a spec with generated variables
checked once even when its state keeps their values."""

import textwrap

import pytest

from runner import context, data, environments, models, spec as spec_mod, validate
from runner.sections import Sections
from runner.state import State, state_path

SPEC = """\
name: one-way
variables:
  suffix: {generate: hex, length: 6}
workspace: {name: 'ws-${{vars.suffix}}'}
environments:
  base: {image: 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04', version: '1'}
components:
  say:
    command: echo ${{inputs.x}}
    inputs: {x: {type: string}}
    environment: azureml:base:1
data:
  numbers: {type: uri_file, path: numbers.csv}
models:
  made: {path: '${{jobs.train.outputs.model}}', type: custom_model}
jobs:
  train:
    command: echo hi > ${{outputs.model}}/m.txt && cat ${{inputs.d}}
    environment: azureml:base:1
    inputs: {d: {type: uri_file, path: 'azureml:numbers:1'}}
    outputs: {model: {type: uri_folder}}
  pipe:
    type: pipeline
    jobs:
      a: {type: command, component: azureml:say:1, inputs: {x: hello}}
      b: {type: command, component: azureml:say:1, inputs: {x: world}}
"""


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "numbers.csv").write_text("n\n1\n2\n")
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(SPEC))
    return path


def counting(monkeypatch, module, name) -> list:
    calls: list = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_each_section_is_read_once_per_load(lab, monkeypatch):
    reads = {
        "data": counting(monkeypatch, data, "read"),
        "models": counting(monkeypatch, models, "read"),
        "check": counting(monkeypatch, validate, "check"),
        "environment": counting(monkeypatch, environments.Reader, "job"),
    }
    spec = spec_mod.load(lab)
    assert {k: len(v) for k, v in reads.items()} == {
        "data": 1,
        "models": 1,
        "check": 1,
        # the job's, and the component's once for both of the pipeline's steps that use it
        "environment": 2,
    }
    assert set(spec.data) == {"numbers"} and set(spec.models) == {"made"}
    assert set(spec.components) == {"say"} and set(spec.component_environments) == {"say"}
    steps = spec.jobs["pipe"].pipeline.steps
    assert steps["a"].env is steps["b"].env is spec.component_environments["say"]
    assert spec.jobs["train"].env is spec.environments["base"]  # the defined one, read once
    assert not hasattr(spec.doc, "environments") and not hasattr(spec.doc, "pipelines")


def test_validate_gives_the_sections_it_built(lab):
    doc, _, _ = spec_mod.read_doc(lab)
    sections = validate.check(doc)
    assert isinstance(sections, Sections)
    assert set(sections.data) == {"numbers"} and set(sections.components) == {"say"}
    assert set(sections.pipelines) == {("jobs", "pipe")}
    assert ("jobs", "train") in sections.environments
    assert ("environments", "base") in sections.environments


def test_a_spec_whose_state_keeps_its_generated_values_is_checked_once(lab, monkeypatch):
    first = context.open_context(lab)
    kept_suffix = first.spec.variables["suffix"]
    first.state.set_variables({"suffix": kept_suffix})  # as apply keeps it
    checks = counting(monkeypatch, validate, "check")
    again = context.open_context(lab)
    assert len(checks) == 1
    assert again.spec.variables["suffix"] == kept_suffix  # the kept value, not a new one
    assert again.spec.workspace["name"] == f"ws-{kept_suffix}" and not again.spec.generated
    assert again.state.path == state_path(lab, "one-way", "local")
    assert State.load(again.state.path, "one-way", "local").variables == {"suffix": kept_suffix}
