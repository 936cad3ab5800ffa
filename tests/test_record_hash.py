"""Record hashes: canonical under key order, and a hash stored by an older release (the json-module scheme)
still recognises a repeat on every report path: ingest, the web's direct path and its inbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from webui_support import record

from iceprod_dag.common.exceptions import StaleUpdateError
from iceprod_dag.stats import inbox, ingest, reports
from iceprod_dag.stats.db import init_db
from iceprod_dag.stats.models import Attempt, Dataset
from iceprod_dag.stats.records import legacy_record_hash, record_hash


def test_equal_content_equal_hash_in_any_key_order():
    rec = record("gen_0", 0, transfers=[{"url": "u", "ok": True}], host="wörker")
    shuffled = dict(reversed(list(rec.items())))
    assert record_hash(shuffled) == record_hash(rec)
    assert record_hash({**rec, "wall_s": rec["wall_s"] + 1}) != record_hash(rec)
    # what orjson cannot write gets the legacy scheme, still deterministic
    huge = {**rec, "exit_code": 2**70}
    assert record_hash(huge) == legacy_record_hash(huge) == record_hash(dict(huge))


@pytest.fixture
def old_db(tmp_path):
    """A dataset whose gen_0 attempt 0 was recorded with a legacy hash, as a database of 0.1 holds it."""
    engine = init_db(f"sqlite:///{tmp_path / 'stats.sqlite'}")
    run_dir = tmp_path / "run"
    ingest.register_dataset(engine, run_dir=run_dir, site="local", name="old", nodes=[("gen_0", "gen", 0)])
    rec = record("gen_0", 0, host="wörker")  # non-ASCII: the two schemes' texts differ
    ingest.ingest_records(engine, [rec], run_dir=run_dir, site="local")
    assert legacy_record_hash(rec) != record_hash(rec)
    with engine.begin() as conn:
        conn.execute(update(Attempt).values(record_hash=legacy_record_hash(rec)))
    with engine.connect() as conn:
        ds = dict(conn.execute(select(Dataset.id, Dataset.run_dir, Dataset.site)).one()._mapping)
    yield engine, ds, rec
    engine.dispose()


def test_ingest_knows_a_legacy_hash(old_db):
    engine, ds, rec = old_db
    again = ingest.ingest_records(engine, [dict(rec)], run_dir=ds["run_dir"], site="local", on_stale="skip")
    assert (again.unchanged, again.rejected) == (1, [])
    changed = ingest.ingest_records(
        engine, [{**rec, "wall_s": 1.0}], run_dir=ds["run_dir"], site="local", on_stale="skip"
    )
    assert changed.rejected == [("gen_0", 0, "a different final report was already recorded")]


def test_direct_report_knows_a_legacy_hash(old_db):
    engine, ds, rec = old_db
    assert reports.report(engine, ds, [dict(rec)]).unchanged == 1
    assert reports.report(engine, ds, [{**rec, "wall_s": 1.0}]).rejected


def test_inbox_knows_a_legacy_hash(old_db):
    engine, ds, rec = old_db
    assert inbox.accept(engine, ds["id"], dict(rec)) == "unchanged"
    with pytest.raises(StaleUpdateError, match="different final report"):
        inbox.accept(engine, ds["id"], {**rec, "wall_s": 1.0})
