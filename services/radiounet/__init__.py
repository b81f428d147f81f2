"""radiounet: Radio U-Net segmentation of diffuse radio emission in survey images.

The data flow, one subpackage per stage: ``core`` (pure science: normalisation,
tiling, reassembly, detection ratio, components), ``model`` (the network and
its SavedModel), ``io`` (FITS and quicklooks), ``cli`` (the ``radiounet``
command).
"""

__version__ = "0.1.0"
