"""Pieces of the IceProd conversion: the class runner, value formatting and walking nested values."""

from __future__ import annotations

import json
from typing import Any

#: the parameter holding RUN_CLASS_CODE, so the code appears once in a converted dataset
RUN_CLASS_PARAMETER = "ICEPROD::run_class"
#: Runs an IceProd v1 class like IceProd's exe_helper; Python 2.7 and 3 (IceProd's env_shells are py2 too).
RUN_CLASS_CODE = (
    "import sys,json,inspect,importlib\n"
    "def t(v):\n"
    " try: return json.loads(v.replace(\"'\",'\"'))\n"
    " except Exception: return {'true':True,'false':False}.get(v.lower(),v)\n"
    "name,src=sys.argv[1],sys.argv[2]\n"
    "kw=dict((a.lstrip('-').split('=',1)[0],t(a.split('=',1)[1]) if '=' in a else None)\n"
    "        for a in sys.argv[3:])\n"
    "mod,_,cl=name.rpartition('.')\n"
    "if src:\n"
    " try:\n"
    "  import importlib.util as u; s=u.spec_from_file_location(mod or 'module',src)\n"
    "  m=u.module_from_spec(s); s.loader.exec_module(m)\n"
    " except ImportError:\n"
    "  import imp; m=imp.load_source(mod or 'module',src)\n"
    "else: m=importlib.import_module(mod)\n"
    "c=getattr(m,cl)\n"
    "if inspect.isclass(c) and any(b.__name__=='IPBaseClass' for b in inspect.getmro(c)):\n"
    " o=c()\n"
    " for k in kw: o.SetParameter(k,kw[k])\n"
    " sys.exit(1 if o.Execute({}) else 0)\n"
    "c(**kw)\n"
)


def as_number(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def fmt(number: int | float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def arg_text(value: Any) -> str:
    """IceProd passes str(value) for scripts; JSON for lists and bools so the class runner can read them."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, list, dict)) or value is None:
        return json.dumps(value)
    return str(value)


def per_iteration(data: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Data of a tray with iterations: one entry per iteration when its names use $(iter)."""
    out: list[dict[str, Any]] = []
    for entry in data:
        if count > 1 and "$(iter)" in json.dumps(entry):
            out += [set_iter(entry, i) for i in range(count)]
        else:
            out.append(entry)
    return out


def set_iter(value: Any, i: int) -> Any:
    if isinstance(value, str):
        return value.replace("$(iter)", str(i))
    if isinstance(value, list):
        return [set_iter(v, i) for v in value]
    if isinstance(value, dict):
        return {k: set_iter(v, i) for k, v in value.items()}
    return value


def strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in strings(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(v, f"{path}.{k}")]
    return []
