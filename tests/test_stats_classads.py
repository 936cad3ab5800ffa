"""Reading and writing job ClassAds in the condor_history -long format."""

from __future__ import annotations

import classad2
import pytest

from iceprod_dag.common.exceptions import ClassAdError
from iceprod_dag.stats.classads import ad_to_dict, format_ad, parse_ads, read_ads, split_ads, write_ad

ADS = [
    {
        "ClusterId": 101,
        "ProcId": 0,
        "DAGNodeName": "generate_0",
        "Owner": "alice",
        "ExitCode": 0,
        "Args": "-c 'echo hi'",
        "RemoteWallClockTime": 12.5,
        "MemoryUsage": classad2.ExprTree("ResidentSetSize / 1024"),
        "ResidentSetSize": 2048,
    },
    {"ClusterId": 102, "ProcId": 0, "DAGNodeName": "generate_1", "JobStatus": 4},
    {"ClusterId": 103, "ProcId": 0, "DAGNodeName": "FINAL", "Owner": "bob", "ExitCode": 1},
]


def history_text(banners: bool) -> str:
    parts = []
    for i, ad in enumerate(ADS):
        text = format_ad(ad)
        parts.append(f"*** ad {i}\n{text.rstrip()}\n" if banners else text.rstrip() + "\n")
    return "".join(parts)


def test_parse_ads_alone_loses_ads_that_we_keep():
    text = history_text(banners=True)
    merged = list(classad2.parseAds(text))
    assert len(merged) < 3  # classad2 stops at the first banner: two ads silently lost
    ours = parse_ads(text)
    assert [ad["ClusterId"] for ad in ours] == [101, 102, 103]
    assert "Owner" not in ours[1]  # nothing leaked from the neighbouring ads
    assert ours[0].eval("MemoryUsage") == 2


def test_ads_without_separators_are_merged_by_classad2_but_not_by_blank_line_split():
    glued = "".join(format_ad(ad).rstrip() + "\n" for ad in ADS)
    assert len(list(classad2.parseAds(glued))) == 1  # later values overwrite earlier ones
    separated = "".join(format_ad(ad) for ad in ADS)  # what format_ad writes: a blank line after each ad
    assert [ad["DAGNodeName"] for ad in parse_ads(separated)] == ["generate_0", "generate_1", "FINAL"]


def test_split_reports_the_first_line_of_each_ad():
    starts = [start for start, _ in split_ads(history_text(banners=True))]
    assert starts[0] == 2 and len(starts) == 3


def test_written_file_reads_back_with_every_attribute(tmp_path):
    path = tmp_path / "history.ad"
    for i, ad in enumerate(ADS):
        write_ad(path, ad, append=i > 0)
    ads = read_ads(path)
    assert len(ads) == 3
    first = ad_to_dict(ads[0])
    assert first["Args"] == "-c 'echo hi'" and first["MemoryUsage"] == "ResidentSetSize / 1024"
    assert first["RemoteWallClockTime"] == 12.5 and first["Owner"] == "alice"


def test_values_classad2_cannot_write_on_one_line_are_made_safe():
    text = format_ad(
        {"Note": "two\nlines", "Missing": None, "Bad": float("nan"), "L": [1, "a"], "D": {"x": 1}}
    )
    (ad,) = parse_ads(text)
    values = ad_to_dict(ad)
    assert values["Note"] == "two\\nlines" and values["Missing"] is None and values["Bad"] is None
    assert values["L"] == [1, "a"] and values["D"] == {"x": 1}


def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.ad"
    path.write_text('ClusterId = 1\nProcId = 0\n\nClusterId = 2\nOwner = = "x"\n')
    with pytest.raises(ClassAdError, match=r"bad\.ad:5:"):
        read_ads(path)
    path.write_text("ClusterId = 1\nthis is not an attribute\n")
    with pytest.raises(ClassAdError, match=r"bad\.ad:2: not a 'Name = value'"):
        read_ads(path)
