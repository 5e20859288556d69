"""Generated associations are standard association JSON the official tools load."""

import json

import pytest

from webbflow.associations import Exposure, dumps, level2_associations, level3_associations
from webbflow.sim.program import demo_program, exposure_meta


def _exposures():
    out = []
    for spec in demo_program():
        meta = exposure_meta(spec, 1, 2)
        for segment, first, last in spec.segment_ranges():
            out.append(Exposure(spec.segment_basename(segment), meta))
    return out


def test_level3_groups_by_observation_and_optical_elements():
    made = level3_associations(_exposures())
    products = {a["products"][0]["name"]: a for a in made.values()}
    assert sorted(products) == [
        "jw01234-o001_t001_nircam_f200w-sub320",
        "jw01234-o002_t001_niriss_f150w-sub256",
        "jw01234-o003_t001_miri_f770w-sub256",
        "jw01234-o004_t001_nircam_f210m-sub64p",
    ]
    tso = products["jw01234-o004_t001_nircam_f210m-sub64p"]
    assert tso["asn_type"] == "tso3"
    assert [m["expname"] for m in tso["products"][0]["members"]] == [
        "jw01234004001_02101_00001-seg001_nrca1_calints.fits",
        "jw01234004001_02101_00001-seg002_nrca1_calints.fits"]
    assert len(products["jw01234-o002_t001_niriss_f150w-sub256"]["products"][0]["members"]) == 3


def test_level2_one_product_per_exposure():
    made = level2_associations(_exposures())
    assert len(made) == 9
    for name, asn in made.items():
        (product,) = asn["products"]
        assert name == f"{product['name']}_{asn['asn_type']}_asn.json"
        assert product["members"] == [{"expname": f"{product['name']}_rate.fits",
                                        "exptype": "science"}]


@pytest.mark.oracle
def test_official_loader_accepts_them(tmp_path):
    from jwst.associations import load_asn

    made = level2_associations(_exposures())
    made.update(level3_associations(_exposures()))
    for name, asn in made.items():
        path = tmp_path / name
        path.write_text(dumps(asn))
        with open(path) as handle:
            loaded = load_asn(handle)
        assert loaded["products"][0]["name"] == asn["products"][0]["name"]
        assert json.loads(path.read_text()) == asn
