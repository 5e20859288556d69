"""Discovery of a program directory's exposures and the product each starts from."""

from webbflow import planning

NIS = "jw01234002001_02101_0000{}_nis"


def test_each_exposure_starts_at_its_earliest_product(tmp_path):
    names = [f"{NIS.format(1)}_uncal.fits", f"{NIS.format(1)}_rate.fits",  # rate: its product
             f"sub/{NIS.format(2)}_rate.fits", f"sub/{NIS.format(2)}_cal.fits",
             f"{NIS.format(3)}_cal.fits", f"{NIS.format(3)}_o002_crf.fits",
             f"{NIS.format(4)}_cal.fits.gz", "notanexposure_cal.fits",
             f"logs/{NIS.format(5)}_rate.fits", f".snakemake/{NIS.format(6)}_rate.fits"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    found = planning.discover(tmp_path)
    assert found == {NIS.format(1): "uncal", NIS.format(3): "cal", f"sub/{NIS.format(2)}": "rate"}
    assert list(found) == sorted(found)
    assert planning.discover(tmp_path, ("uncal",)) == {NIS.format(1): "uncal"}


def test_stages_run_from_the_starting_product_on():
    runs = {start: [stage for stage in planning.STAGE_INPUTS if planning.runs_stage(start, stage)]
            for start in planning.STARTS}
    assert runs == {"uncal": ["detector1", "image2", "image3"], "rate": ["image2", "image3"],
                    "cal": ["image3"]}
