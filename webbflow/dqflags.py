"""JWST data-quality bit values by name (stdatamodels' ``dqflags.pixel``).

Algorithms never import this module: they receive the mapping as an argument, as the
stcal kernels do, so the same code serves any flag convention.
"""

PIXEL = {
    "GOOD": 0,
    "DO_NOT_USE": 1 << 0,
    "SATURATED": 1 << 1,
    "JUMP_DET": 1 << 2,
    "DROPOUT": 1 << 3,
    "OUTLIER": 1 << 4,
    "PERSISTENCE": 1 << 5,
    "AD_FLOOR": 1 << 6,
    "CHARGELOSS": 1 << 7,
    "RESERVED_5": 1 << 8,
    "NON_SCIENCE": 1 << 9,
    "DEAD": 1 << 10,
    "HOT": 1 << 11,
    "WARM": 1 << 12,
    "LOW_QE": 1 << 13,
    "RC": 1 << 14,
    "TELEGRAPH": 1 << 15,
    "NONLINEAR": 1 << 16,
    "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18,
    "NO_GAIN_VALUE": 1 << 19,
    "NO_LIN_CORR": 1 << 20,
    "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22,
    "UNRELIABLE_DARK": 1 << 23,
    "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25,
    "OPEN": 1 << 26,
    "ADJ_OPEN": 1 << 27,
    "FLUX_ESTIMATED": 1 << 28,
    "MSA_FAILED_OPEN": 1 << 29,
    "OTHER_BAD_PIXEL": 1 << 30,
    "REFERENCE_PIXEL": 1 << 31,
}

GROUP = {name: PIXEL[name] for name in (
    "GOOD", "DO_NOT_USE", "SATURATED", "JUMP_DET", "DROPOUT",
    "PERSISTENCE", "AD_FLOOR", "CHARGELOSS",
)}


def dq_def_rows():
    """(BIT, VALUE, NAME, DESCRIPTION) rows for a reference file's DQ_DEF table."""
    rows = []
    for name, value in PIXEL.items():
        if value and name != "RESERVED_5":  # bit 8 is unassigned; readers reject its name
            rows.append((value.bit_length() - 1, value, name, name.replace("_", " ").lower()))
    return rows
