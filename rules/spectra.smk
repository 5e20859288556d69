# Plots of the spectra MAST delivered with the program (x1d, x1dints, c1d files present
# in the program directory and not made by a rule here), so that the report shows every
# spectrum of the program. A spectroscopy rule plots its own products instead: it
# declares ``<suffix>_preview=preview("<product>_<suffix>.fits", caption)`` and calls
# ``write_previews`` (category "Spectra"); products a rule makes are never taken as
# delivered here.
import re


def delivered_spectra():
    made = set(get_made_outputs())
    return [path for path in planning.find_products(PROGRAM, SPECTRAL_SUFFIXES)
            if path not in made]


DELIVERED_SPECTRA = delivered_spectra()


def get_spectrum_plot_outputs():
    return [path.removesuffix(".fits") + ".png" for path in DELIVERED_SPECTRA]


if DELIVERED_SPECTRA:

    rule spectrum_plot:
        input:
            "{product}_{suffix}.fits",
        output:
            plot=preview("{product}_{suffix}.fits", "spectrum_delivered.rst", "Spectra",
                         product="{product}"),
        wildcard_constraints:
            # only the delivered files: a product a rule makes has that rule's preview
            product="|".join(re.escape(path.rsplit("_", 1)[0]) for path in DELIVERED_SPECTRA),
            suffix="|".join(SPECTRAL_SUFFIXES),
        log:
            "logs/spectrum_plot/{product}_{suffix}.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            "../envs/webbflow.yaml"
        script:
            "../scripts/spectrum_plot.py"
