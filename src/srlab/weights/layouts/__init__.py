"""Foreign key layouts, one module each; importing this package registers them all.

Each module builds a :class:`srlab.weights.registry.KeyLayout` (the names of one code base and
how to rename them to srlab's) and registers it with
:func:`srlab.weights.registry.register_layout` at import. Registration order is the order of
:func:`srlab.weights.registered_layouts`. srlab's own names, which BasicSR's EDSR and RRDBNet
share, need no module: they are the fallback when no layout claims a state dict.

To read another code base's weights, add a module here and import it below.
"""

from srlab.weights.layouts import (  # noqa: F401 - imported to register
    edsr_pytorch,
    esrgan,
    esrgan_old_arch,
    srcnn_matlab,
    vdsr_matconvnet,
)
