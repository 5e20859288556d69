"""webbflow: the JWST calibration pipeline as a Snakemake workflow."""

__version__ = "0.1.0"
