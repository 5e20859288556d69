"""subarray cut-outs and orientation transforms vs jwst.lib.reffile_utils (oracle)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from webbflow.steps.subarray import cut_reference, to_detector_frame, to_dms_frame


def test_cut_reference_rules():
    ref = np.arange(3 * 20 * 30).reshape(3, 20, 30)
    assert cut_reference(ref, None, None, (1, 1), (30, 20)) is ref
    assert_array_equal(cut_reference(ref, None, None, (5, 3), (10, 4)), ref[:, 2:6, 4:14])
    assert_array_equal(cut_reference(ref, (3, 2), (30, 20), (5, 3), (10, 4)), ref[:, 1:5, 2:12])
    with pytest.raises(ValueError):
        cut_reference(ref, (3, 2), (30, 20), (2, 3), (10, 4))
    with pytest.raises(ValueError):
        cut_reference(ref, None, None, (25, 1), (10, 4))


@pytest.mark.parametrize("fast,slow", [(1, 2), (-1, 2), (1, -2), (-1, -2), (2, 1), (-2, 1),
                                       (2, -1), (-2, -1)])
def test_orientation_round_trip(fast, slow):
    from jwst.lib import reffile_utils

    a = np.arange(2 * 4 * 6).reshape(2, 4, 6)
    det = to_detector_frame(a, fast, slow)
    assert_array_equal(det, reffile_utils.science_detector_frame_transform(a, fast, slow))
    assert_array_equal(to_dms_frame(det, fast, slow), a)


@pytest.mark.oracle
def test_oracle_get_subarray_model():
    from stdatamodels.jwst.datamodels import RampModel, SaturationModel

    from jwst.lib import reffile_utils

    rng = np.random.default_rng(0)
    full = rng.random((64, 72)).astype(np.float32)
    sci = RampModel(data=np.zeros((1, 1, 10, 12), np.float32))
    sci.meta.subarray.xstart, sci.meta.subarray.ystart = 21, 33
    sci.meta.subarray.xsize, sci.meta.subarray.ysize = 12, 10
    ref = SaturationModel(data=full.copy(), dq=np.zeros(full.shape, np.uint32))
    ref.meta.subarray.xstart, ref.meta.subarray.ystart = 5, 9
    ref.meta.subarray.xsize, ref.meta.subarray.ysize = 72, 64
    ref.meta.instrument.name = "NIRCAM"
    sub = reffile_utils.get_subarray_model(sci, ref)
    assert_array_equal(cut_reference(full, (5, 9), (72, 64), (21, 33), (12, 10)), sub.data)
