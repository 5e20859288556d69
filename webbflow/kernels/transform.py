"""A compiled chain of coordinate transforms, evaluated pixel by pixel.

The pixel map of resample (input pixel -> sky -> output pixel) goes through a dozen
astropy models; evaluated by astropy, each makes whole-array temporaries, so a 2048x2048
map costs seconds. Here the chain is a short program (built by webbflow.wcs.compiled from
the models) run for each pixel in registers: the same formulas, in one pass over memory.

An instruction is a row of ``program``: (opcode, in0, in1, in2, out0, out1, out2, p),
register indices and the offset ``p`` of its constants in ``params``.
"""

import math

import numpy as np
from numba import prange

from webbflow.kernels._options import njit

__all__ = ["run_program", "OPCODES"]

OPCODES = {
    "add": 0,        # out0 = in0 + c
    "mul": 1,        # out0 = c * in0
    "poly2d": 2,     # out0 = sum c_ij in0^i in1^j (c: degree, then (degree+1)^2 values)
    "affine2d": 3,   # (out0, out1) = M (in0, in1) + t  (c: m00 m01 m10 m11 t0 t1)
    "s2c": 4,        # (lon, lat) deg -> unit vector (gwcs SphericalToCartesian)
    "c2s": 5,        # unit vector -> (lon, lat) deg (gwcs CartesianToSpherical; c: wrap)
    "matvec3": 6,    # 3-vector -> M v (c: 9 values, row major)
    "skyrot": 7,     # (lon, lat) -> rotated (lon, lat): astropy's celestial/native rotation
    "tan_s2x": 8,    # native (phi, theta) deg -> gnomonic projection plane (x, y)
    "tan_x2s": 9,    # projection plane (x, y) -> native (phi, theta) deg
    "vec_tan": 10,   # native unit vector -> gnomonic plane (tan_s2x of its c2s, no trig)
    "poly1d": 11,    # out0 = sum c_i in0^i (c: degree, then degree+1 values)
}

_R2D = 180.0 / math.pi
_D2R = math.pi / 180.0


@njit
def _poly2d(x, y, params, p):
    degree = int(params[p])
    size = degree + 1
    total = 0.0
    for i in range(degree, -1, -1):
        inner = 0.0
        for j in range(degree - i, -1, -1):
            inner = inner * y + params[p + 1 + i * size + j]
        total = total * x + inner
    return total


@njit
def _poly1d(x, params, p):
    degree = int(params[p])
    total = params[p + 1 + degree]
    for i in range(degree - 1, -1, -1):
        total = params[p + 1 + i] + total * x
    return total


@njit
def _execute(program, params, reg):
    for k in range(program.shape[0]):
        op = program[k, 0]
        a = program[k, 1]
        b = program[k, 2]
        c = program[k, 3]
        p = program[k, 7]
        if op == 0:
            reg[program[k, 4]] = reg[a] + params[p]
        elif op == 1:
            reg[program[k, 4]] = params[p] * reg[a]
        elif op == 2:
            reg[program[k, 4]] = _poly2d(reg[a], reg[b], params, p)
        elif op == 3:
            x = reg[a]
            y = reg[b]
            reg[program[k, 4]] = params[p] * x + params[p + 1] * y + params[p + 4]
            reg[program[k, 5]] = params[p + 2] * x + params[p + 3] * y + params[p + 5]
        elif op == 4:
            lon = reg[a] * _D2R
            lat = reg[b] * _D2R
            cs = math.cos(lat)
            reg[program[k, 4]] = cs * math.cos(lon)
            reg[program[k, 5]] = cs * math.sin(lon)
            reg[program[k, 6]] = math.sin(lat)
        elif op == 5:
            x = reg[a]
            y = reg[b]
            h = math.hypot(x, y)
            lat = math.atan2(reg[c], h) * _R2D
            lon = math.atan2(y, x) * _R2D
            if h == 0.0:
                lon = 0.0 * lon
            if params[p] != 180.0 and math.isfinite(lon):
                lon = lon % 360.0
            reg[program[k, 4]] = lon
            reg[program[k, 5]] = lat
        elif op == 6:
            x = reg[a]
            y = reg[b]
            z = reg[c]
            reg[program[k, 4]] = params[p] * x + params[p + 1] * y + params[p + 2] * z
            reg[program[k, 5]] = params[p + 3] * x + params[p + 4] * y + params[p + 5] * z
            reg[program[k, 6]] = params[p + 6] * x + params[p + 7] * y + params[p + 8] * z
        elif op == 7:
            alpha = reg[a] * _D2R
            delta = reg[b] * _D2R
            cosd = math.cos(delta)
            x = math.cos(alpha) * cosd
            y = cosd * math.sin(alpha)
            z = math.sin(delta)
            xr = params[p] * x + params[p + 1] * y + params[p + 2] * z
            yr = params[p + 3] * x + params[p + 4] * y + params[p + 5] * z
            zr = params[p + 6] * x + params[p + 7] * y + params[p + 8] * z
            lon = math.atan2(yr, xr) * _R2D
            if lon < 0:
                lon += 360.0
            reg[program[k, 4]] = lon
            reg[program[k, 5]] = math.atan2(zr, math.hypot(xr, yr)) * _R2D
        elif op == 8:
            phi = reg[a] * _D2R
            theta = reg[b] * _D2R
            r = _R2D * math.cos(theta) / math.sin(theta)
            reg[program[k, 4]] = r * math.sin(phi)
            reg[program[k, 5]] = -r * math.cos(phi)
        elif op == 9:
            x = reg[a]
            y = reg[b]
            r = math.hypot(x, y)
            reg[program[k, 4]] = 0.0 if r == 0.0 else math.atan2(x, -y) * _R2D
            reg[program[k, 5]] = math.atan2(_R2D, r) * _R2D
        elif op == 10:
            z = reg[c]
            if z > 0.0:
                reg[program[k, 4]] = _R2D * reg[b] / z
                reg[program[k, 5]] = -_R2D * reg[a] / z
            else:   # the far hemisphere does not project
                reg[program[k, 4]] = np.nan
                reg[program[k, 5]] = np.nan
        elif op == 11:
            reg[program[k, 4]] = _poly1d(reg[a], params, p)


@njit(parallel=True)
def run_program(program, params, nreg, inputs, outputs, y0, ny, nx, out):
    """Run the program for pixel centres x = 0..nx-1, y = y0..y0+ny-1: registers
    ``inputs`` start as (x, y); ``out[j, i, :]`` receives the ``outputs`` registers."""
    for j in prange(ny):
        reg = np.empty(nreg, np.float64)
        for i in range(nx):
            reg[inputs[0]] = float(i)
            reg[inputs[1]] = float(y0 + j)
            _execute(program, params, reg)
            out[j, i, 0] = reg[outputs[0]]
            out[j, i, 1] = reg[outputs[1]]
