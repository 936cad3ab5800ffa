"""The expression language: values worked out by hand, including the shared IceProd configs' parameters."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from iceprod_dag.common.exceptions import ExpressionError
from iceprod_dag.common.expressions import Context, check_syntax, references, resolve

DATA = Path(__file__).parent / "data" / "iceprod"
PY38 = Path(os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python"))


def steering(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())["steering"]["parameters"]


def ctx(**kw) -> Context:
    return Context(**{"job": 7, "dataset_id": 30004, "jobs": 10, "task": "generate", **kw})


# --- built-ins and types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$(job)", 7),
        ("$(dataset)", 30004),
        ("$(jobs_submitted)", 10),
        ("$(task)", "generate"),
        ("$(iter)", 0),
        ("job $(job) of $(jobs_submitted)", "job 7 of 10"),
        ("$eval(5//2)", 2),
        ("$eval(4/2)", 2.0),  # Python's (and IceProd's) true division
        ("$eval(-3 + 2*(1+1))", 1),
        ("$eval(2**10 % 1000)", 24),
        ("$eval(1e5 + 1)", 100001.0),
        ("x$eval(7//2)y", "x3y"),
        ("$eval($eval($(dataset)*100000 + $(job))%100000000 + 1)", 400008),
        ("$sprintf('%06d', $(job))", "000007"),
        ("$sprintf('%s-%03d', abc, 5)", "abc-005"),
        ("$sprintf('%x|%5.2f', 255, '1.5')", "ff| 1.50"),
        ('$sprintf("%d%%", 50)', "50%"),
        ("$sprintf('(%s)', x)", "(x)"),  # quotes protect the parentheses
        ("$len([1, 2, 3])", 3),
        ("$max([4, 9, 2])", 9),
        ("$HOME stays, ${X} too, and \\$(job) is literal", "$HOME stays, ${X} too, and $(job) is literal"),
        ("python -c 'print(1)'", "python -c 'print(1)'"),
    ],
)
def test_builtins_and_functions(text, expected):
    value = resolve(text, ctx())
    assert value == expected
    assert type(value) is type(expected)


def test_non_strings_and_containers():
    value = resolve({"a": ["$(job)", 3, None, True], "b": {"c": "$(task)-x"}}, ctx())
    assert value == {"a": [7, 3, None, True], "b": {"c": "generate-x"}}


def test_parameters_refer_to_each_other():
    c = ctx(
        parameters={"a": "$(b)-$steering(c)", "b": "$eval($(job)*2)", "c": "x", "n": 5, "l": [1, "$(job)"]}
    )
    assert resolve("$(a)", c) == "14-x"
    assert resolve("$(b)", c) == 14  # one expression: the raw number
    assert resolve("$eval($(n)+1)", c) == 6
    assert resolve("$(l)", c) == [1, 7]
    assert resolve("v=$(l)", c) == "v=[1, 7]"


def test_builtins_win_over_parameters():
    assert resolve("$(job)", ctx(parameters={"job": 99})) == 7


def test_choice_is_deterministic_per_job():
    picks = {resolve("$choice(a,b,c,d)", ctx(job=j)) for j in range(40)}
    assert picks == {"a", "b", "c", "d"}
    for j in range(5):
        first = resolve("$choice(a,b,c,d)", ctx(job=j))
        assert resolve("$choice(a,b,c,d)", ctx(job=j, task="other", iteration=3)) == first


def test_extra_lookups():
    c = ctx(extra={"system": {"gpu_opts": "--gpu"}, "args": {"debug": "$(job)"}, "metadata": {"m": 1}})
    assert resolve("$system(gpu_opts) $args(debug) $options(debug) $metadata(m)", c) == "--gpu 7 7 1"
    with pytest.raises(ExpressionError, match="system"):
        resolve("$system(nope)", c)


# --- the shared IceProd configs, values worked out by hand -------------------------------------------------


def test_corsika_le_job_7():
    c = ctx(parameters=steering("corsika_le"))
    # (30004*100000 + 7) % 100000000 = 3000400007 % 100000000 = 400007
    assert resolve("$(CORSIKA::run)", c) == 400008
    assert resolve("$steering(CORSIKA::seed)", c) == 400007
    assert resolve("$(seed)", c) == 30004
    assert resolve("$(outfile)", c) == "IC86.2015_corsika.030004.000007"
    assert resolve("$(FILTER::infile)", c) == "PFFilt_IC86.2015_corsika.030004.000007.i3.gz"
    assert resolve("$(subdirectory)", c) == "0000000-0000999"
    assert resolve("$(gcdfile)", c) == (
        "/cvmfs/icecube.opensciencegrid.org/data/GCD/GeoCalibDetectorStatus_2015.57161_V0.i3.gz"
    )
    assert resolve("$eval($steering(CORSIKA::showers)//2)", c) == 2500


def test_corsika_le_job_1234_and_99999():
    c = ctx(job=1234, parameters=steering("corsika_le"))
    # 3000401234 % 100000000 = 401234
    assert resolve("$(CORSIKA::run)", c) == 401235
    assert resolve("$(subdirectory)", c) == "0001000-0001999"
    assert resolve("$(TARGET::2012)", c) == (
        "gsiftp://gridftp.icecube.wisc.edu/data/sim/IceCube/2015/generated/CORSIKA-in-ice/30004/0001000-0001999"
    )
    c = ctx(job=99999, parameters=steering("corsika_le"))
    # 3000499999 % 100000000 = 499999
    assert resolve("$(CORSIKA::run)", c) == 500000
    assert resolve("$(subdirectory)", c) == "0099000-0099999"


def test_corsika_me_job_42():
    c = ctx(job=42, dataset_id=30003, parameters=steering("corsika_me"))
    # 3000300042 % 100000000 = 300042
    assert resolve("$(CORSIKA::run)", c) == 300043
    assert resolve("$(FILTER::outfile)", c) == "Level2_IC86.2016_corsika.030003.000042.i3.bz2"
    assert resolve("$(CORSIKA::eprimarymax)", c) == 1000000


def test_numu_me_iterations():
    params = steering("numu_me")
    c = ctx(job=5, dataset_id=30006, parameters=params)
    # 3000600005 % 100000000 = 600005
    assert resolve("$(RunID)", c) == 600006
    assert resolve("$(DOMefficiency::high)", c) == 1.089
    assert resolve("$eval($steering(nevents)*30)", c) == 450
    assert resolve("$(outfile::3)", c) == "IC86.2016_nugen_numu_mcpes.030006.000005.ellipse-abs-scat.m071"
    base = "/cvmfs/icecube.opensciencegrid.org/data/icevariations/clsim-4.0.5/"
    assert resolve("$(IceModelLocation)", c) == base + "base"
    assert resolve("$(IceModelLocation)", c.replace(iteration=2)) == base + "ellipse-abs.1"
    assert resolve("hits_$(iter).i3.gz", c.replace(iteration=3)) == "hits_3.i3.gz"


# --- errors ------------------------------------------------------------------------------------------------


def test_cycles_name_the_chain():
    c = ctx(parameters={"a": "$(b)", "b": "x$(c)", "c": "$steering(a)"})
    with pytest.raises(ExpressionError, match="a -> b -> c -> a"):
        resolve("$(a)", c)
    with pytest.raises(ExpressionError, match="self -> self"):
        resolve("$(self)", ctx(parameters={"self": "$(self)"}))


@pytest.mark.parametrize(
    "text, match",
    [
        ("$(nope)", "unknown name 'nope'"),
        ("a $(outfile) b", "unknown name 'outfile'"),
        ("$eval(__import__('os'))", "not Call"),
        ("$eval(open)", "not Name"),
        ("$eval('a'*3)", "not Constant"),
        ("$eval((1).__class__)", "not Attribute"),
        ("$eval(1 if 1 else 2)", "not IfExp"),
        ("$eval(1/0)", "division by zero"),
        ("$eval(9**9**9)", "too large"),
        ("$eval(1+)", "not arithmetic"),
        ("$eval(1+2", "unclosed parenthesis"),
        ("$sprintf('%d %d', 1)", "takes 2 values, got 1"),
        ("$sprintf('%d', abc)", "not a number"),
        ("$foo(1)", r"unknown function \$foo"),
        ("$()", "empty name"),
        ("a $(x)", "has no value"),
    ],
)
def test_errors(text, match):
    with pytest.raises(ExpressionError, match=match) as info:
        resolve(text, ctx(parameters={"x": None}))
    assert text in str(info.value) or "has no value" in match


def test_eval_never_runs_python(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ExpressionError):
        resolve(f"$eval(__import__('os').system('touch {marker}'))", ctx())
    assert not marker.exists()


def test_check_syntax():
    check_syntax("$eval($eval($(dataset)*100000 + $(job))%100000000 + 1) and (plain) text")
    check_syntax("$sprintf('%07d-%07d',$eval($(job)//1000*1000),$eval($(job)//1000*1000+999))")
    for bad in ("$eval(1+2", "$steering(x", "$nope(1)", "$eval(__import__('os'))", "$sprintf('%d, 1)"):
        with pytest.raises(ExpressionError):
            check_syntax(bad)


def test_references():
    text = "$(a) $steering(b::c) $(job) $(x::$(iter)) $eval($(d)+1) $sprintf('%s', $(e))"
    assert references(text) == {"a", "b::c", "d", "e"}
    assert references("no expressions") == set()


@pytest.mark.skipif(not PY38.exists(), reason="no Python 3.8 interpreter at ~/.pyenv/versions/3.8.18")
def test_runs_on_python38():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from iceprod_dag.common.expressions import Context, resolve\n"
        "print(resolve(\"$sprintf('%06d', $eval($(job)*2))-$choice(a,b)\", Context(job=21)))\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([str(PY38), "-c", code, root], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("000042-")
