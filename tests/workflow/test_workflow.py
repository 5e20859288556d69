"""The workflow driven through the Snakemake CLI on small simulated programs."""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from webbflow.io import read_product
from webbflow.sim.observatory import redeliver, simulate_program
from webbflow.sim.program import demo_program

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
             "--workflow-profile", "none", "--cores", "2"]

pytestmark = pytest.mark.workflow

NIS3 = "jw01234002001_02101_00001_nis"
NIS2 = "jw01234002001_02101_00002_nis"
MIRI = "jw01234003001_02101_00001_mirimage"


@pytest.fixture(scope="module")
def small_program(tmp_path_factory):
    """Two NIRISS exposures and a MIRI one, with their CRDS cache."""
    root = tmp_path_factory.mktemp("program")
    simulate_program(root, [demo_program()[i] for i in (3, 4, 6)], seed=5)
    shutil.rmtree(root / "truth")
    return root


def _copy(program, tmp_path):
    """A private copy: files are hard links (products are replaced, never edited)."""
    target = tmp_path / "jw01234"
    shutil.copytree(program, target, copy_function=os.link)
    return target


def _snakemake(workdir, *args, check=True):
    result = subprocess.run(SNAKEMAKE + ["--directory", str(workdir), *args],
                            capture_output=True, text=True, timeout=1800)
    if check and result.returncode:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _job_counts(output):
    counts = {}
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _planned(workdir, *args):
    result = _snakemake(workdir, "-n", *args)
    return _job_counts(result.stdout + result.stderr), result.stdout + result.stderr


def test_dry_run_plans_one_stage1_job_per_exposure(small_program, tmp_path):
    program = _copy(small_program, tmp_path)
    (program / "nested").mkdir()
    os.link(program / f"{NIS2}_uncal.fits", program / "nested" / "jw01234005001_02101_00001_nis_uncal.fits")
    counts, _ = _planned(program)
    # four level-2 associations and two level-3 ones: the nested copy's header says
    # observation 2, and headers, not names, decide the grouping
    # and each imaging exposure's calwebb_image2 job, each level-3 association's image3 job
    assert counts == {"association": 6, "detector1": 4, "image2": 4, "image3_1": 1,
                      "image3_2": 1, "all": 1, "total": 17}


def test_abs_refcat_file_is_an_image3_input(small_program, tmp_path):
    """tweakreg's absolute reference catalog, a path relative to the program directory,
    is an input of the image3 job (a new catalog reruns it); an online catalog name is
    not a file and is left to the job's one-line error."""
    program = _copy(small_program, tmp_path)
    (program / "refcat.ecsv").write_text("# %ECSV 1.0\n---\nra dec\n")
    for value, listed in (("refcat.ecsv", True), ("GAIADR3", False)):
        extra = tmp_path / "abs.yaml"
        extra.write_text(f"image3:\n  steps:\n    tweakreg:\n      abs_refcat: {value}\n")
        _, text = _planned(program, "--configfile", str(REPO / "config/config.yaml"),
                           str(extra))
        inputs = text.split("rule image3_1:", 1)[1].split("input:", 1)[1].split("\n", 1)[0]
        assert ("refcat.ecsv" in inputs) == listed, inputs


def test_associations_from_headers_unless_delivered(finished_run, tmp_path):
    names = sorted(p.name for p in (finished_run / "asn").iterdir())
    assert names == sorted([
        f"{NIS3}_image2_asn.json", f"{NIS2}_image2_asn.json", f"{MIRI}_image2_asn.json",
        "jw01234-o002_20230110t030000_image3_00001_asn.json",
        "jw01234-o003_20230110t030000_image3_00001_asn.json",
    ])
    import json

    niriss = json.loads((finished_run / "asn" / names[0]).read_text())
    assert niriss["asn_type"] == "image3" and niriss["asn_id"] == "o002"
    assert niriss["products"][0]["name"] == "jw01234-o002_t001_niriss_f150w-sub256"
    assert [m["expname"] for m in niriss["products"][0]["members"]] == [
        f"{NIS3}_cal.fits", f"{NIS2}_cal.fits"]
    # a program delivered with MAST's associations keeps them, gets none generated, and
    # its stage 3 follows the delivered level-3 association
    program = _copy(finished_run, tmp_path)
    shutil.rmtree(program / "asn")
    for product in program.glob("jw01234-o*"):
        product.unlink()
    delivered = "jw01234-o002_20221212t000000_image3_00009_asn.json"
    niriss["asn_id"] = "o009"
    niriss["products"][0]["name"] = "jw01234-o009_t001_niriss_f150w-sub256"
    (program / delivered).write_text(json.dumps(niriss))
    counts, plan = _planned(program)
    assert counts == {"image3_1": 1, "all": 1, "total": 2}
    assert delivered in plan
    assert f"{NIS3}_o009_crf.fits" in plan and "jw01234-o009_t001_niriss_f150w-sub256_i2d.fits" in plan
    # and a delivered association that cannot be read stops the plan with its name
    (program / delivered).write_text("{not json")
    result = _snakemake(program, "-n", check=False)
    assert result.returncode != 0
    assert f"{delivered}: not a readable association" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def finished_run(small_program, tmp_path_factory):
    program = _copy(small_program, tmp_path_factory.mktemp("run"))
    _snakemake(program)
    return program


def test_full_run_writes_products_next_to_inputs(finished_run):
    for stem in (NIS3, NIS2, MIRI):
        rate = read_product(finished_run / f"{stem}_rate.fits")
        assert rate.model_type == "ImageModel"
        assert rate.get("ref_file.crds.context_used") == "jwst_0001.pmap"
        assert rate.get("cal_step.ramp_fit") == "COMPLETE"
        assert rate.get("ref_file.dark.name", "").startswith("crds://jwst_")
        assert np.isfinite(rate["data"]).mean() > 0.9
        assert read_product(finished_run / f"{stem}_rateints.fits").model_type == "CubeModel"
        assert (finished_run / "logs" / "detector1" / f"{stem}.log").exists()
        assert (finished_run / "benchmarks" / "detector1" / f"{stem}.tsv").exists()
    assert (finished_run / "webbflow_crds_context.txt").read_text().strip() == "jwst_0001.pmap"
    assert "Nothing to be done" in _snakemake(finished_run, "-n").stdout


def test_stage3_products_of_each_association(finished_run):
    """Every level-3 imaging product: an i2d, its catalog and its segmentation map, the
    catalog's labels being the map's segments."""
    from astropy.table import Table

    mosaics = sorted(finished_run.glob("jw01234-o*_i2d.fits"))
    assert len(mosaics) == 2
    for i2d_path in mosaics:
        name = i2d_path.name.removesuffix("_i2d.fits")
        i2d = read_product(i2d_path)
        assert i2d.get("cal_step.resample") == "COMPLETE"
        segm = read_product(finished_run / f"{name}_segm.fits")
        assert segm.model_type == "SegmentationMapModel"
        assert segm["data"].shape == i2d["data"].shape
        catalog = Table.read(finished_run / f"{name}_cat.ecsv")
        labels = np.unique(segm["data"][segm["data"] > 0])
        assert np.array_equal(np.sort(np.asarray(catalog["label"])), labels)


def test_report_has_a_preview_of_every_image_product(finished_run):
    """Every rate, cal and i2d product of the run (per exposure and combined) has its
    preview PNG beside it, and the report lists each one."""
    products = sorted(p for suffix in ("rate", "cal", "i2d")
                      for p in finished_run.glob(f"*_{suffix}.fits"))
    # 3 rate, 3 cal, 3 single-exposure i2d and 2 combined i2d
    assert len(products) == 11
    previews = [p.with_suffix(".png") for p in products]
    for png in previews:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG")
        width, height = struct.unpack(">II", data[16:24])
        assert 0 < max(width, height) <= 1024
    _snakemake(finished_run, "--report", "report.html")
    html = (finished_run / "report.html").read_text(errors="replace")
    for png in previews:
        assert png.name in html
    for category in ("Stage 1", "Stage 2", "Stage 3"):
        assert category in html


def test_parameter_edit_reruns_exactly_the_affected_jobs(finished_run, tmp_path):
    miri_only = tmp_path / "rscd.yaml"
    miri_only.write_text("detector1:\n  steps:\n    rscd:\n      skip: true\n")
    counts, text = _planned(finished_run, "--configfile", str(REPO / "config/config.yaml"),
                            str(miri_only))
    assert counts["detector1"] == 1 and MIRI in text and NIS3 not in text.split("Job stats")[0].split("rule all")[0]
    jump = tmp_path / "jump.yaml"
    jump.write_text("detector1:\n  steps:\n    jump:\n      rejection_threshold: 5.0\n")
    counts, _ = _planned(finished_run, "--configfile", str(REPO / "config/config.yaml"), str(jump))
    assert counts["detector1"] == 3
    # a per-instrument override (the list replaces the default one, so extend it)
    overrides = yaml.safe_load((REPO / "config/config.yaml").read_text())["overrides"]
    overrides.append({"when": {"instrument": "NIRISS"},
                      "set": {"detector1": {"steps": {"saturation": {"n_pix_grow_sat": 2}}}}})
    nir_only = tmp_path / "nir.yaml"
    nir_only.write_text(yaml.safe_dump({"overrides": overrides}))
    counts, text = _planned(finished_run, "--configfile", str(REPO / "config/config.yaml"),
                            str(nir_only))
    assert counts["detector1"] == 2


def test_touched_input_reruns_only_its_chain(finished_run):
    # (inputs under 1 MB are compared by checksum, so a touch alone would not count;
    # the MIRI ramp is larger)
    os.utime(finished_run / f"{MIRI}_uncal.fits")
    counts, text = _planned(finished_run)
    assert counts["detector1"] == 1
    assert f"exposure={MIRI}" in text
    _snakemake(finished_run)


def test_new_crds_context_reruns_only_changed_references(small_program, tmp_path):
    program = tmp_path / "jw01234"
    shutil.copytree(small_program, program, copy_function=os.link,
                    ignore=shutil.ignore_patterns("crds_cache"))
    shutil.copytree(small_program / "crds_cache", program / "crds_cache")
    _snakemake(program)
    context = redeliver(program / "crds_cache", "MIRI", "dark", detector="MIRIMAGE")
    assert context == "jwst_0002.pmap"
    new_context = tmp_path / "context.yaml"
    new_context.write_text(f"crds:\n  context: {context}\n")
    counts, text = _planned(program, "--configfile", str(REPO / "config/config.yaml"),
                            str(new_context))
    assert counts["detector1"] == 1 and f"exposure={MIRI}" in text
    _snakemake(program, "--configfile", str(REPO / "config/config.yaml"), str(new_context))
    rate = read_product(program / f"{MIRI}_rate.fits")
    assert rate.get("ref_file.crds.context_used") == context
    assert rate.get("ref_file.dark.name").endswith("_c0002.fits")
    assert (program / "webbflow_crds_context.txt").read_text().strip() == context


def test_corrupt_input_fails_once_and_the_rest_finishes(small_program, tmp_path):
    program = _copy(small_program, tmp_path)
    bad = program / f"{NIS2}_uncal.fits"
    data = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data[: len(data) // 2])
    result = _snakemake(program, "--keep-going", "--show-failed-logs", check=False)
    assert result.returncode != 0
    assert (program / f"{NIS3}_rate.fits").exists() and (program / f"{MIRI}_rate.fits").exists()
    assert not (program / f"{NIS2}_rate.fits").exists()
    assert not list(program.glob(f".{NIS2}*"))
    log = (program / "logs" / "detector1" / f"{NIS2}.log").read_text()
    assert f"{NIS2}_uncal.fits: truncated file" in log
    assert log.count("truncated file") == 1


def test_contradicting_header_is_one_clear_error(small_program, tmp_path):
    program = _copy(small_program, tmp_path)
    target = program / f"{NIS3}_uncal.fits"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data)
    fits.setval(target, "NGROUPS", value=7)
    result = _snakemake(program, "--keep-going", f"{NIS3}_rate.fits", check=False)
    assert result.returncode != 0
    log = (program / "logs" / "detector1" / f"{NIS3}.log").read_text()
    assert "header NGROUPS=7 contradicts the SCI shape" in log
    assert not (program / f"{NIS3}_rate.fits").exists()


def test_killed_job_leaves_no_product_and_the_rerun_resumes(small_program, tmp_path):
    program = _copy(small_program, tmp_path)
    process = subprocess.Popen(SNAKEMAKE + ["--directory", str(program), f"{MIRI}_rate.fits"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    log = program / "logs" / "detector1" / f"{MIRI}.log"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.exists() and "dq_init" in log.read_text()):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (program / f"{MIRI}_rate.fits").exists()
    assert not (program / f"{MIRI}_rateints.fits").exists()
    # SIGKILL leaves Snakemake's lock behind, as it says; unlock, then resume
    _snakemake(program, "--unlock")
    _snakemake(program, "--rerun-incomplete", f"{MIRI}_rate.fits")
    assert read_product(program / f"{MIRI}_rate.fits").model_type == "ImageModel"


def test_bad_config_is_rejected_with_a_clear_message(small_program, tmp_path):
    program = _copy(small_program, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector1:\n  steps:\n    jump:\n      rejection_treshold: 4.0\n")
    result = _snakemake(program, "-n", "--configfile", str(REPO / "config/config.yaml"),
                        str(bad), check=False)
    assert result.returncode != 0
    assert "rejection_treshold" in result.stdout + result.stderr
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("detector1:\n  steps:\n    saturation:\n      n_pix_grow_sat: two\n")
    result = _snakemake(program, "-n", "--configfile", str(REPO / "config/config.yaml"),
                        str(wrong_type), check=False)
    assert result.returncode != 0
    assert "'two' is not of type 'integer'" in result.stdout + result.stderr


def test_dark_exposures_go_through_calwebb_dark(tmp_path):
    """A dark exposure among science ones: its stage-1 job is calwebb_dark (-> _dark), it
    gets no rate product and no association."""
    import dataclasses

    science = demo_program()[3]
    dark = dataclasses.replace(science, exp_type="NIS_DARK", observation=9, seed=91,
                               scene=dict(n_stars=0, n_galaxies=0, background=0.0,
                                          n_saturating=0))
    program = tmp_path / "jw01234"
    simulate_program(program, [science, dark], seed=9)
    counts, _ = _planned(program)
    assert counts == {"association": 2, "dark": 1, "detector1": 1, "image2": 1, "image3_1": 1,
                      "all": 1, "total": 7}
    _snakemake(program)
    stem = "jw01234009001_02101_00001_nis"
    assert read_product(program / f"{stem}_dark.fits").model_type == "RampModel"
    assert not list(program.glob(f"{stem}_rate*"))
    assert not [p for p in (program / "asn").iterdir() if stem in p.read_text()]


def _json_keys(path):
    import json

    return set(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def delivered_rates(imaging_rates, tmp_path_factory):
    """The imaging program as MAST delivers it when stage 1 is done: only our stage-1
    rate files of it (no uncal; the MIRI pair in a sub-folder) and the CRDS cache."""
    simulated, rates = imaging_rates
    root = tmp_path_factory.mktemp("rates") / "jw01234"
    (root / "miri").mkdir(parents=True)
    for rate in rates:
        os.link(rate, root / ("miri" if "_mirimage_" in rate.name else "") / rate.name)
    shutil.copytree(simulated / "crds_cache", root / "crds_cache", copy_function=os.link)
    return root


def test_program_delivered_at_rate_and_at_cal(delivered_rates, tmp_path):
    """A directory of rate files gets an image2 job per imaging rate and an image3 job per
    level-3 association (no stage 1), planned from the rate headers, every product
    beside its input; a directory of the cal files alone gets the image3 jobs."""
    program = _copy(delivered_rates, tmp_path / "rate")
    rates = sorted(program.rglob("*_rate.fits"))
    stems = [rate.relative_to(program).as_posix().removesuffix("_rate.fits") for rate in rates]
    assert len(stems) == 6
    counts, _ = _planned(program)
    # a level-2 association per exposure, a level-3 one per observation (NIRCam, MIRI)
    assert counts == {"association": 8, "image2": 6, "image3_1": 1, "image3_2": 1, "all": 1,
                      "total": 17}
    assert _json_keys(program / ".webbflow" / "headers.json") == {
        f"{stem}_rate.fits" for stem in stems}
    _snakemake(program)
    level3 = sorted((program / "asn").glob("*_image3_*_asn.json"))
    assert len(level3) == 2
    mosaics = sorted(program.glob("jw01234-o*_i2d.fits"))
    assert [p.name.split("_")[0] for p in mosaics] == ["jw01234-o005", "jw01234-o006"]
    for stem in stems:
        cal = read_product(program / f"{stem}_cal.fits")
        assert cal.get("cal_step.photom") == "COMPLETE"
        assert (program / f"{stem}_i2d.fits").exists() and (program / f"{stem}_cal.png").exists()
        assert len(list(program.glob(f"{stem}_o00?_crf.fits"))) == 1
    for mosaic in mosaics:
        name = mosaic.name.removesuffix("_i2d.fits")
        assert (program / f"{name}_cat.ecsv").exists() and (program / f"{name}_segm.fits").exists()
    assert not list(program.rglob("*_uncal.fits")) and not list(program.rglob("*_rateints.fits"))
    assert "Nothing to be done" in _snakemake(program, "-n").stdout

    # the cal files alone (and the cache): stage 3 only, the same mosaics
    cals = tmp_path / "cal" / "jw01234"
    (cals / "miri").mkdir(parents=True)
    for stem in stems:
        os.link(program / f"{stem}_cal.fits", cals / f"{stem}_cal.fits")
    shutil.copytree(program / "crds_cache", cals / "crds_cache", copy_function=os.link)
    counts, _ = _planned(cals)
    assert counts == {"association": 2, "image3_1": 1, "image3_2": 1, "all": 1, "total": 5}
    _snakemake(cals)
    for mosaic in mosaics:
        again = read_product(cals / mosaic.name)
        assert np.array_equal(again["data"], read_product(mosaic)["data"], equal_nan=True)
    for stem in stems:
        assert len(list(cals.glob(f"{stem}_o00?_crf.fits"))) == 1


def test_mixed_program_starts_each_exposure_at_its_earliest_product(small_program,
                                                                     finished_run, tmp_path):
    """Exposures with uncal beside ones delivered as rate only: stage 1 runs for the
    former (also for one whose rate is there too: that rate is its product), stages 2
    and 3 for all."""
    program = tmp_path / "jw01234"
    program.mkdir()
    for name in (f"{NIS3}_uncal.fits", f"{MIRI}_uncal.fits"):
        os.link(small_program / name, program / name)
    for name in (f"{NIS3}_rate.fits", f"{NIS2}_rate.fits"):
        os.link(finished_run / name, program / name)
    shutil.copytree(small_program / "crds_cache", program / "crds_cache",
                    copy_function=os.link)
    counts, text = _planned(program, "--forceall")
    assert counts == {"association": 5, "detector1": 2, "image2": 3, "image3_1": 1,
                      "image3_2": 1, "all": 1, "total": 13}
    assert f"{NIS2}_uncal.fits" not in text
    assert _json_keys(program / ".webbflow" / "headers.json") == {
        f"{NIS3}_uncal.fits", f"{MIRI}_uncal.fits", f"{NIS2}_rate.fits"}
    _snakemake(program)
    for stem in (NIS3, NIS2, MIRI):
        assert read_product(program / f"{stem}_cal.fits").get("cal_step.photom") == "COMPLETE"
    assert (program / f"{MIRI}_rate.fits").exists()
    assert len(list(program.glob("jw01234-o*_i2d.fits"))) == 2
