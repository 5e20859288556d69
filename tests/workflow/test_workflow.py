"""The workflow driven through the Snakemake CLI on small simulated programs."""

import os
import shutil
import signal
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


def test_report_has_a_preview_of_every_rate_product(finished_run):
    for stem in (NIS3, NIS2, MIRI):
        png = (finished_run / f"{stem}_rate.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    _snakemake(finished_run, "--report", "report.html")
    html = (finished_run / "report.html").read_text(errors="replace")
    for stem in (NIS3, NIS2, MIRI):
        assert f"{stem}_rate.png" in html


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
