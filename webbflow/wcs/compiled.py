"""astropy transform chains -> programs for webbflow.kernels.transform.

Only the models imaging WCSs are made of are translated (shifts, scales, mappings,
1-D and 2-D polynomials and affine maps, the spherical <-> Cartesian conversions and rotations
of gwcs and astropy, the gnomonic projection); anything else raises
:class:`Unsupported`, and the caller evaluates the chain with astropy instead. Mappings
and identities cost nothing: they only re-route registers while the program is built.
"""

import numpy as np
from astropy.modeling import CompoundModel, models
from astropy.modeling.rotations import _SkyRotation

from webbflow.kernels.transform import OPCODES

__all__ = ["Program", "Unsupported", "compile_chain"]


class Unsupported(ValueError):
    """A model the program cannot express."""


class Program:
    """Instructions, constants and register count of a compiled chain from (x, y) to
    two outputs.

    A Cartesian -> spherical conversion is held back until something needs the angles:
    when the next model turns them back into a vector (a sky rotation, a gnomonic
    projection, a spherical -> Cartesian conversion), it works on the vector instead,
    which saves most of the trigonometry (two rotations and a projection become two
    matrix products and a division)."""

    def __init__(self):
        self.rows = []
        self.params = []
        self.nreg = 0
        self.deferred = {}   # longitude register -> (x, y, z, latitude register, wrap)

    def register(self):
        self.nreg += 1
        return self.nreg - 1

    def emit(self, name, inputs, n_out, constants=()):
        for reg in inputs:
            self._materialize(reg)
        outputs = [self.register() for _ in range(n_out)]
        self._append(name, inputs, outputs, constants)
        return outputs

    def _append(self, name, inputs, outputs, constants):
        ins = list(inputs) + [0] * (3 - len(inputs))
        outs = list(outputs) + [0] * (3 - len(outputs))
        self.rows.append([OPCODES[name], *ins, *outs, len(self.params)])
        self.params.extend(float(c) for c in constants)

    def defer_angles(self, vector, wrap):
        lon, lat = self.register(), self.register()
        self.deferred[lon] = (*vector, lat, wrap)
        return [lon, lat]

    def vector_of(self, lanes):
        """The unit vector behind (lon, lat) lanes still held back, else None."""
        held = self.deferred.get(lanes[0])
        if held is not None and held[3] == lanes[1]:
            return list(held[:3])
        return None

    def _materialize(self, reg):
        for lon, (x, y, z, lat, wrap) in list(self.deferred.items()):
            if reg in (lon, lat):
                del self.deferred[lon]
                self._append("c2s", [x, y, z], [lon, lat], [wrap])

    def arrays(self, outputs):
        for reg in outputs:
            self._materialize(reg)
        return (np.array(self.rows, np.int64).reshape(-1, 8),
                np.array(self.params or [0.0], np.float64))


def compile_chain(*transforms):
    """The program evaluating ``transforms`` one after the other from pixel (x, y):
    (program, params, nreg, input registers, output registers)."""
    program = Program()
    inputs = [program.register(), program.register()]
    lanes = inputs
    for transform in transforms:
        lanes = _emit(transform, lanes, program)
    if len(lanes) != 2:
        raise Unsupported(f"the chain ends with {len(lanes)} outputs, not 2")
    rows, params = program.arrays(lanes)
    return rows, params, program.nreg, np.array(inputs, np.int64), np.array(lanes, np.int64)


def _emit(model, lanes, program):
    if len(lanes) != model.n_inputs:
        raise Unsupported(f"{model.name or type(model).__name__}: {len(lanes)} inputs "
                          f"for {model.n_inputs}")
    if isinstance(model, CompoundModel):
        if model.op == "|":
            return _emit(model.right, _emit(model.left, lanes, program), program)
        if model.op == "&":
            split = model.left.n_inputs
            return (_emit(model.left, lanes[:split], program)
                    + _emit(model.right, lanes[split:], program))
        raise Unsupported(f"compound operator {model.op!r}")
    if len(model) != 1:
        raise Unsupported("model sets")
    kind = type(model)
    name = kind.__name__
    from_gwcs = kind.__module__.startswith("gwcs")
    if kind is models.Mapping:
        return [lanes[i] for i in model.mapping]
    if kind is models.Identity:
        return list(lanes)
    if kind is models.Shift:
        return program.emit("add", lanes, 1, [model.offset.value])
    if kind is models.Scale:
        if model.factor.unit is not None:
            raise Unsupported("Scale with units")
        return program.emit("mul", lanes, 1, [model.factor.value])
    if kind is models.Polynomial1D:
        return program.emit("poly1d", lanes, 1, _poly1d_constants(model))
    if kind is models.Polynomial2D:
        return program.emit("poly2d", lanes, 1, _poly2d_constants(model))
    if kind is models.AffineTransformation2D:
        matrix, translation = model.matrix.value, model.translation.value
        return program.emit("affine2d", lanes, 2, [*np.ravel(matrix), *np.ravel(translation)])
    if kind is models.RotationSequence3D:
        # the matrix the model applies, column by column
        columns = [np.ravel(model(*basis)) for basis in np.eye(3)]
        return program.emit("matvec3", lanes, 3, np.column_stack(columns).ravel())
    vector = program.vector_of(lanes)
    if isinstance(model, _SkyRotation):
        matrix = _sky_rotation_matrix(model).ravel()
        if vector is None:
            return program.emit("skyrot", lanes, 2, matrix)
        return program.defer_angles(program.emit("matvec3", vector, 3, matrix), 360)
    if kind is models.Sky2Pix_Gnomonic:
        if vector is None:
            return program.emit("tan_s2x", lanes, 2)
        return program.emit("vec_tan", vector, 2)
    if kind is models.Pix2Sky_Gnomonic:
        return program.emit("tan_x2s", lanes, 2)
    if name == "SphericalToCartesian" and from_gwcs:
        return vector if vector is not None else program.emit("s2c", lanes, 3)
    if name == "CartesianToSpherical" and from_gwcs:
        return program.defer_angles(lanes, model.wrap_lon_at)
    raise Unsupported(f"{name} ({kind.__module__})")


def _poly1d_constants(model):
    if model.domain is not None and model.window is not None and \
            tuple(model.domain) != tuple(model.window):
        raise Unsupported("Polynomial1D with a domain mapping")
    return [model.degree, *model.parameters]


def _poly2d_constants(model):
    for axis in "xy":
        domain, window = getattr(model, f"{axis}_domain"), getattr(model, f"{axis}_window")
        if domain is not None and window is not None and tuple(domain) != tuple(window):
            raise Unsupported("Polynomial2D with a domain mapping")
    degree = model.degree
    dense = np.zeros((degree + 1, degree + 1))
    for name, value in zip(model.param_names, model.parameters):
        i, j = (int(v) for v in name[1:].split("_"))
        dense[i, j] = value
    return [degree, *dense.ravel()]


def _sky_rotation_matrix(model):
    """The Euler-angle matrix astropy's celestial <-> native rotations apply."""
    from astropy.modeling.rotations import _create_matrix  # noqa: PLC0415

    lon, lat, lon_pole = (_radians(p) for p in (model.lon, model.lat, model.lon_pole))
    if isinstance(model, models.RotateCelestial2Native):
        angles = [np.pi / 2 + lon, np.pi / 2 - lat, -(lon_pole - np.pi / 2)]
    elif isinstance(model, models.RotateNative2Celestial):
        angles = [lon_pole - np.pi / 2, -(np.pi / 2 - lat), -(np.pi / 2 + lon)]
    else:
        raise Unsupported(type(model).__name__)
    return _create_matrix([np.float64(a) for a in angles], model.axes_order)


def _radians(parameter):
    """The radians a rotation parameter keeps (its degrees converted back could differ in
    the last bit)."""
    internal = getattr(parameter, "_internal_value", None)
    return float(internal) if internal is not None else float(np.deg2rad(parameter.value))
